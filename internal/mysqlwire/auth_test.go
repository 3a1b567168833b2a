package mysqlwire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

var testScramble = []byte("abcdefghij0123456789")

func TestNativePasswordVector(t *testing.T) {
	password := []byte("s3cret")
	// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))), computed
	// here directly from the formula.
	p1 := sha1.Sum(password)
	p2 := sha1.Sum(p1[:])
	h := sha1.Sum(append(append([]byte{}, testScramble...), p2[:]...))
	want := make([]byte, 20)
	for i := range want {
		want[i] = p1[i] ^ h[i]
	}
	got := ScrambleNativePassword(testScramble, password)
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	// A trailing NUL (as in handshake auth data) does not change it.
	if !bytes.Equal(ScrambleNativePassword(append(append([]byte{}, testScramble...), 0), password), want) {
		t.Fatal("trailing NUL changed the response")
	}
	if !CheckNativePassword(testScramble, got, password) {
		t.Fatal("CheckNativePassword rejected the right response")
	}
	if CheckNativePassword(testScramble, got, []byte("s3creT")) {
		t.Fatal("CheckNativePassword accepted a wrong password")
	}
	if !bytes.Equal(NativePasswordHash(password), p2[:]) || !CheckNativePasswordHash(testScramble, got, p2[:]) {
		t.Fatal("hash-based check")
	}
	bad := bytes.Clone(got)
	bad[0] ^= 1
	if CheckNativePasswordHash(testScramble, bad, p2[:]) || CheckNativePasswordHash(testScramble, got[:19], p2[:]) {
		t.Fatal("hash-based check accepted a wrong response")
	}
	// Empty password: empty response, and only an empty response.
	if r := ScrambleNativePassword(testScramble, nil); len(r) != 0 {
		t.Fatalf("empty password response % x", r)
	}
	if !CheckNativePassword(testScramble, nil, nil) || CheckNativePassword(testScramble, got, nil) || CheckNativePassword(testScramble, nil, password) {
		t.Fatal("empty password checks")
	}
}

func TestCachingSHA2Vector(t *testing.T) {
	password := []byte("pässword")
	// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
	p1 := sha256.Sum256(password)
	p2 := sha256.Sum256(p1[:])
	h := sha256.Sum256(append(append([]byte{}, p2[:]...), testScramble...))
	want := make([]byte, 32)
	for i := range want {
		want[i] = p1[i] ^ h[i]
	}
	got := ScrambleCachingSHA2(testScramble, password)
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	if !CheckCachingSHA2(testScramble, got, password) || CheckCachingSHA2(testScramble, got, []byte("password")) {
		t.Fatal("CheckCachingSHA2")
	}
	if !bytes.Equal(CachingSHA2Hash(password), p2[:]) || !CheckCachingSHA2Hash(testScramble, got, p2[:]) {
		t.Fatal("hash-based check")
	}
	if len(ScrambleCachingSHA2(testScramble, nil)) != 0 || !CheckCachingSHA2(testScramble, nil, nil) || CheckCachingSHA2(testScramble, nil, password) {
		t.Fatal("empty password")
	}
}

func TestNewScramble(t *testing.T) {
	a, err := NewScramble()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewScramble()
	if len(a) != ScrambleLength || bytes.Equal(a, b) {
		t.Fatalf("scrambles % x / % x", a, b)
	}
	for i := 0; i < 200; i++ {
		s, _ := NewScramble()
		if bytes.IndexByte(s, 0) >= 0 || bytes.IndexByte(s, '$') >= 0 || bytes.ContainsFunc(s, func(r rune) bool { return r >= 0x80 }) {
			t.Fatalf("bad scramble byte in % x", s)
		}
	}
}

func TestRSAPasswordRoundTrip(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := MarshalPublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(pemKey)
	if err != nil || !pub.Equal(&key.PublicKey) {
		t.Fatalf("PEM round trip: %v", err)
	}
	for _, pw := range []string{"", "x", "a longer password than the twenty byte scramble"} {
		ct, err := EncryptPasswordRSA(pub, []byte(pw), append(bytes.Clone(testScramble), 0))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecryptPasswordRSA(key, ct, testScramble)
		if err != nil || string(got) != pw {
			t.Fatalf("%q: got %q, %v", pw, got, err)
		}
		if got, err := DecryptPasswordRSA(key, ct, []byte("01234567890123456789")); err == nil && string(got) == pw {
			t.Fatalf("%q: decrypted with the wrong scramble", pw)
		}
	}
	if _, err := DecryptPasswordRSA(key, []byte("garbage"), testScramble); err == nil {
		t.Fatal("garbage decrypted")
	}
	if _, err := ParsePublicKeyPEM([]byte("not pem")); err == nil {
		t.Fatal("bad PEM accepted")
	}
}

func TestAuthSwitchAndMoreData(t *testing.T) {
	p := AppendAuthSwitchRequest(nil, AuthNativePassword, testScramble)
	plugin, data, err := ParseAuthSwitchRequest(p)
	if err != nil || plugin != AuthNativePassword || !bytes.Equal(data, testScramble) {
		t.Fatalf("%q % x %v", plugin, data, err)
	}
	if plugin, _, err := ParseAuthSwitchRequest([]byte{0xfe}); err != nil || plugin != AuthOldPassword {
		t.Fatalf("old form: %q %v", plugin, err)
	}
	for _, bad := range [][]byte{nil, {0x01}, []byte("\xfemysql_native_password")} {
		if _, _, err := ParseAuthSwitchRequest(bad); err == nil {
			t.Fatalf("% x accepted", bad)
		}
	}
	m := AppendAuthMoreData(nil, []byte{CachingSHA2FastAuthSuccess})
	if d, err := ParseAuthMoreData(m); err != nil || !bytes.Equal(d, []byte{3}) {
		t.Fatalf("more data % x %v", d, err)
	}
	if _, err := ParseAuthMoreData([]byte{0}); err == nil {
		t.Fatal("non-AuthMoreData accepted")
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string][]byte{
		"pkcs1": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"pkcs8": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	} {
		got, err := ParsePrivateKeyPEM(p)
		if err != nil || !got.Equal(key) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"not pem":  []byte("not pem"),
		"ec key":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"bad der":  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("xx")}),
		"bad der8": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("xx")}),
	} {
		if _, err := ParsePrivateKeyPEM(bad); err == nil {
			t.Fatalf("%s accepted", name)
		}
	}
}
