package mysqlwire

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Authentication plugin names.
const (
	// AuthNativePassword is mysql_native_password (SHA1 challenge-response).
	AuthNativePassword = "mysql_native_password"
	// AuthCachingSHA2Password is caching_sha2_password (MySQL 8 default):
	// SHA256 challenge-response against a server-side cache, else the
	// password in clear over TLS or RSA-encrypted.
	AuthCachingSHA2Password = "caching_sha2_password"
	// AuthSHA256Password is sha256_password (always full authentication).
	AuthSHA256Password = "sha256_password"
	// AuthClearPassword is mysql_clear_password (the password in clear).
	AuthClearPassword = "mysql_clear_password"
	// AuthOldPassword is mysql_old_password (pre-4.1; refused by this package).
	AuthOldPassword = "mysql_old_password"
)

// ScrambleLength is the length of the authentication challenge.
const ScrambleLength = 20

// caching_sha2_password exchange bytes.
const (
	// CachingSHA2RequestPublicKey is sent by the client (as a one-byte
	// packet) to ask for the server's RSA public key during full
	// authentication without TLS.
	CachingSHA2RequestPublicKey byte = 0x02
	// CachingSHA2FastAuthSuccess is sent by the server in AuthMoreData when
	// the scramble matched its cache; an OK packet follows.
	CachingSHA2FastAuthSuccess byte = 0x03
	// CachingSHA2PerformFullAuth is sent by the server in AuthMoreData when
	// it needs the password itself (in clear over TLS, else RSA-encrypted).
	CachingSHA2PerformFullAuth byte = 0x04
	// SHA256PasswordRequestPublicKey is sha256_password's request for the
	// server's RSA public key.
	SHA256PasswordRequestPublicKey byte = 0x01
)

// Connection-phase packet headers.
const (
	// AuthSwitchRequestHeader starts an AuthSwitchRequest (same byte as
	// EOFHeader; only the connection phase tells them apart).
	AuthSwitchRequestHeader byte = 0xfe
	// AuthMoreDataHeader starts an AuthMoreData packet.
	AuthMoreDataHeader byte = 0x01
)

// NewScramble returns a fresh 20-byte challenge for the handshake, drawn
// from crypto/rand and, as MySQL's own, limited to printable-range bytes
// without NUL (clients read it as a NUL-terminated string) or '$'.
func NewScramble() ([]byte, error) {
	s := make([]byte, ScrambleLength)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	for i, c := range s {
		c &= 0x7f
		if c == 0 || c == '$' {
			c++
		}
		s[i] = c
	}
	return s, nil
}

// scramble20 returns the 20-byte challenge inside auth plugin data (which
// may carry a trailing NUL or be longer).
func scramble20(s []byte) []byte {
	if len(s) > ScrambleLength {
		return s[:ScrambleLength]
	}
	return s
}

func xorInto(dst, a, b []byte) {
	for i := range dst {
		dst[i] = a[i] ^ b[i]
	}
}

// ScrambleNativePassword computes the mysql_native_password response:
// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))). An empty
// password gives an empty response.
func ScrambleNativePassword(scramble, password []byte) []byte {
	if len(password) == 0 {
		return []byte{}
	}
	stage1 := sha1.Sum(password)
	stage2 := sha1.Sum(stage1[:])
	return nativeResponse(scramble20(scramble), stage1[:], stage2[:])
}

func nativeResponse(scramble, stage1, stage2 []byte) []byte {
	h := sha1.New()
	h.Write(scramble)
	h.Write(stage2)
	out := h.Sum(nil)
	xorInto(out, out, stage1)
	return out
}

// NativePasswordHash returns SHA1(SHA1(password)), the stored form of a
// mysql_native_password password (mysql.user shows it as '*' + hex). An
// empty password has an empty hash.
func NativePasswordHash(password []byte) []byte {
	if len(password) == 0 {
		return []byte{}
	}
	stage1 := sha1.Sum(password)
	stage2 := sha1.Sum(stage1[:])
	return stage2[:]
}

// CheckNativePassword reports whether response is the mysql_native_password
// answer to scramble for password (in constant time).
func CheckNativePassword(scramble, response, password []byte) bool {
	return CheckNativePasswordHash(scramble, response, NativePasswordHash(password))
}

// CheckNativePasswordHash checks a mysql_native_password response against
// the stored hash SHA1(SHA1(password)) (NativePasswordHash), so that the
// proxy need not keep clear-text passwords: it recovers SHA1(password) from
// the response and verifies that it hashes to the stored value.
func CheckNativePasswordHash(scramble, response, hash []byte) bool {
	if len(hash) == 0 {
		return len(response) == 0
	}
	if len(hash) != sha1.Size || len(response) != sha1.Size {
		return false
	}
	h := sha1.New()
	h.Write(scramble20(scramble))
	h.Write(hash)
	stage1 := h.Sum(nil)
	xorInto(stage1, stage1, response)
	got := sha1.Sum(stage1)
	return subtle.ConstantTimeCompare(got[:], hash) == 1
}

// ScrambleCachingSHA2 computes the caching_sha2_password fast-path response:
// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble). An
// empty password gives an empty response.
func ScrambleCachingSHA2(scramble, password []byte) []byte {
	if len(password) == 0 {
		return []byte{}
	}
	stage1 := sha256.Sum256(password)
	stage2 := sha256.Sum256(stage1[:])
	return sha2Response(scramble20(scramble), stage1[:], stage2[:])
}

func sha2Response(scramble, stage1, stage2 []byte) []byte {
	h := sha256.New()
	h.Write(stage2)
	h.Write(scramble)
	out := h.Sum(nil)
	xorInto(out, out, stage1)
	return out
}

// CachingSHA2Hash returns SHA256(SHA256(password)), what a
// caching_sha2_password server keeps in its cache to check fast-path
// responses. An empty password has an empty hash.
func CachingSHA2Hash(password []byte) []byte {
	if len(password) == 0 {
		return []byte{}
	}
	stage1 := sha256.Sum256(password)
	stage2 := sha256.Sum256(stage1[:])
	return stage2[:]
}

// CheckCachingSHA2 reports whether response is the caching_sha2_password
// fast-path answer to scramble for password (in constant time).
func CheckCachingSHA2(scramble, response, password []byte) bool {
	return CheckCachingSHA2Hash(scramble, response, CachingSHA2Hash(password))
}

// CheckCachingSHA2Hash checks a caching_sha2_password fast-path response
// against SHA256(SHA256(password)) (CachingSHA2Hash).
func CheckCachingSHA2Hash(scramble, response, hash []byte) bool {
	if len(hash) == 0 {
		return len(response) == 0
	}
	if len(hash) != sha256.Size || len(response) != sha256.Size {
		return false
	}
	h := sha256.New()
	h.Write(hash)
	h.Write(scramble20(scramble))
	stage1 := h.Sum(nil)
	xorInto(stage1, stage1, response)
	got := sha256.Sum256(stage1)
	return subtle.ConstantTimeCompare(got[:], hash) == 1
}

// xorScramble returns (password + NUL) XOR scramble, the scramble repeated
// as needed: what caching_sha2_password and sha256_password encrypt.
func xorScramble(password, scramble []byte) []byte {
	out := make([]byte, len(password)+1)
	copy(out, password)
	if len(scramble) == 0 {
		return out
	}
	for i := range out {
		out[i] ^= scramble[i%len(scramble)]
	}
	return out
}

// EncryptPasswordRSA encrypts password for full authentication without TLS
// (caching_sha2_password, sha256_password): the NUL-terminated password
// XOR the 20-byte scramble (repeated), RSA-OAEP with SHA1.
func EncryptPasswordRSA(pub *rsa.PublicKey, password, scramble []byte) ([]byte, error) {
	if pub == nil {
		return nil, errors.New("mysqlwire: no RSA public key")
	}
	return rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, xorScramble(password, scramble20(scramble)), nil)
}

// DecryptPasswordRSA reverses EncryptPasswordRSA on the server side and
// returns the clear-text password (without its NUL terminator).
func DecryptPasswordRSA(priv *rsa.PrivateKey, ciphertext, scramble []byte) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("mysqlwire: no RSA private key")
	}
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, priv, ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("mysqlwire: RSA password decryption: %w", err)
	}
	s := scramble20(scramble)
	if len(s) > 0 {
		for i := range plain {
			plain[i] ^= s[i%len(s)]
		}
	}
	if len(plain) == 0 || plain[len(plain)-1] != 0 {
		return nil, errors.New("mysqlwire: RSA password is not NUL-terminated (wrong scramble?)")
	}
	return plain[:len(plain)-1], nil
}

// MarshalPublicKeyPEM encodes pub as a PEM "PUBLIC KEY" (PKIX) block, the
// form in which a server sends its key in AuthMoreData.
func MarshalPublicKeyPEM(pub *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM decodes a server's RSA public key from PEM (PKIX
// "PUBLIC KEY" or PKCS#1 "RSA PUBLIC KEY").
func ParsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("mysqlwire: no PEM block in public key data")
	}
	if block.Type == "RSA PUBLIC KEY" {
		return x509.ParsePKCS1PublicKey(block.Bytes)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("mysqlwire: public key is %T, not RSA", key)
	}
	return pub, nil
}

// ParsePrivateKeyPEM decodes an RSA private key from PEM: PKCS#1 ("RSA
// PRIVATE KEY") or PKCS#8 ("PRIVATE KEY").
func ParsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("mysqlwire: no PEM block in private key data")
	}
	if block.Type == "RSA PRIVATE KEY" {
		key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("mysqlwire: PKCS#1 private key: %w", err)
		}
		return key, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("mysqlwire: private key (PEM %q): %w", block.Type, err)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("mysqlwire: private key is %T, not RSA", key)
	}
	return priv, nil
}

// AppendAuthSwitchRequest appends an AuthSwitchRequest payload: 0xfe, the
// plugin name, and the plugin data NUL-terminated (as servers send the
// scramble).
func AppendAuthSwitchRequest(dst []byte, plugin string, data []byte) []byte {
	dst = append(dst, AuthSwitchRequestHeader)
	dst = AppendNulString(dst, plugin)
	dst = append(dst, data...)
	return append(dst, 0)
}

// ParseAuthSwitchRequest parses an AuthSwitchRequest payload, returning the
// plugin name and its data without the trailing NUL (a sub-slice of
// payload). The one-byte pre-4.1 form (0xfe alone) reports
// AuthOldPassword.
func ParseAuthSwitchRequest(payload []byte) (plugin string, data []byte, err error) {
	if len(payload) == 0 || payload[0] != AuthSwitchRequestHeader {
		return "", nil, fmt.Errorf("%w: not an AuthSwitchRequest", ErrMalformed)
	}
	if len(payload) == 1 {
		return AuthOldPassword, nil, nil
	}
	d := NewDecoder(payload[1:])
	name := d.NulBytes()
	if d.Err() != nil {
		return "", nil, fmt.Errorf("%w: AuthSwitchRequest plugin name", ErrMalformed)
	}
	data = d.Rest()
	if n := len(data); n > 0 && data[n-1] == 0 {
		data = data[: n-1 : n-1]
	}
	return string(name), data, nil
}

// AppendAuthMoreData appends an AuthMoreData payload: 0x01 followed by data
// (a caching_sha2_password status byte, or a PEM public key).
func AppendAuthMoreData(dst []byte, data []byte) []byte {
	return append(append(dst, AuthMoreDataHeader), data...)
}

// ParseAuthMoreData returns the data of an AuthMoreData payload (a
// sub-slice). Only meaningful in the connection phase: in the command phase
// a 0x01 packet is a column count.
func ParseAuthMoreData(payload []byte) ([]byte, error) {
	if len(payload) == 0 || payload[0] != AuthMoreDataHeader {
		return nil, fmt.Errorf("%w: not an AuthMoreData packet", ErrMalformed)
	}
	return payload[1:len(payload):len(payload)], nil
}
