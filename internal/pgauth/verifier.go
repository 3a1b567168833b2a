package pgauth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// MechanismSCRAMSHA256 is the SASL mechanism name implemented by SCRAMServer,
// as listed in an AuthenticationSASL message and chosen in the client's
// SASLInitialResponse.
const MechanismSCRAMSHA256 = "SCRAM-SHA-256"

// DefaultIterations is the PBKDF2 iteration count VerifierFor uses for
// plain-text passwords; it is PostgreSQL's default (scram_iterations).
const DefaultIterations = 4096

// MaxIterations is the largest iteration count accepted in a verifier. It
// bounds the work a stored verifier can make the client (and DeriveVerifier)
// do.
const MaxIterations = 10_000_000

// verifierPrefix starts PostgreSQL's rolpassword text for a SCRAM-SHA-256
// secret.
const verifierPrefix = MechanismSCRAMSHA256 + "$"

// keyLen is the size of SaltedPassword, StoredKey and ServerKey: the output
// size of SHA-256.
const keyLen = sha256.Size

// processSaltLen is the size of the salt VerifierFor uses for plain-text
// passwords, the same as PostgreSQL's default (SCRAM_DEFAULT_SALT_LEN).
const processSaltLen = 16

// b64 is the base64 alphabet SCRAM and PostgreSQL use: standard, padded.
// Strict decoding rejects non-canonical encodings (non-zero padding bits).
// Decode with decodeB64, which also rejects the line breaks that
// encoding/base64 skips.
var b64 = base64.StdEncoding.Strict()

// decodeB64 decodes canonical, padded, standard base64 without line breaks.
func decodeB64[S string | []byte](s S) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' {
			return nil, errors.New("line break in base64")
		}
	}
	return b64.AppendDecode(nil, []byte(s))
}

// Verifier is the secret a server keeps for SCRAM-SHA-256 authentication:
// enough to check a client's proof and to prove itself to the client, but
// not enough to impersonate the client elsewhere.
type Verifier struct {
	// Iterations is the PBKDF2 iteration count.
	Iterations int
	// Salt is the PBKDF2 salt sent to the client.
	Salt []byte
	// StoredKey is H(HMAC(SaltedPassword, "Client Key")).
	StoredKey []byte
	// ServerKey is HMAC(SaltedPassword, "Server Key").
	ServerKey []byte
}

// NewVerifier derives a verifier from a plain-text password, salt and PBKDF2
// iteration count. The password is used as its UTF-8 bytes without SASLprep
// (see the package documentation). The salt is copied.
//
// NewVerifier panics if the arguments are invalid (iterations outside
// 1..MaxIterations, empty salt) or the derivation fails (a salt shorter
// than 16 bytes in FIPS 140-only mode); DeriveVerifier returns an error
// instead.
func NewVerifier(password string, salt []byte, iterations int) *Verifier {
	v, err := DeriveVerifier(password, salt, iterations)
	if err != nil {
		panic(err)
	}
	return v
}

// DeriveVerifier is like NewVerifier but returns an error instead of
// panicking when the arguments are invalid.
func DeriveVerifier(password string, salt []byte, iterations int) (*Verifier, error) {
	if iterations < 1 || iterations > MaxIterations {
		return nil, fmt.Errorf("pgauth: iteration count %d outside 1..%d", iterations, MaxIterations)
	}
	if len(salt) == 0 {
		return nil, errors.New("pgauth: empty salt")
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, keyLen)
	if err != nil {
		return nil, fmt.Errorf("pgauth: deriving salted password: %w", err)
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	return &Verifier{
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  storedKey[:],
		ServerKey:  hmacSHA256(salted, []byte("Server Key")),
	}, nil
}

// ParseVerifier parses a verifier in PostgreSQL's rolpassword format:
//
//	SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
//
// The iteration count must be a decimal number in 1..MaxIterations, the salt
// must not be empty, both keys must be 32 bytes, and base64 must be standard,
// padded and canonical.
func ParseVerifier(s string) (*Verifier, error) {
	rest, ok := strings.CutPrefix(s, verifierPrefix)
	if !ok {
		return nil, invalidVerifier("missing %q prefix", verifierPrefix)
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return nil, invalidVerifier("missing '$' between parameters and keys")
	}
	iterText, saltText, ok := strings.Cut(params, ":")
	if !ok {
		return nil, invalidVerifier("missing ':' between iteration count and salt")
	}
	storedText, serverText, ok := strings.Cut(keys, ":")
	if !ok {
		return nil, invalidVerifier("missing ':' between StoredKey and ServerKey")
	}

	iter, err := parseIterations(iterText)
	if err != nil {
		return nil, err
	}
	salt, err := decodeB64(saltText)
	if err != nil {
		return nil, invalidVerifier("salt is not valid base64")
	}
	if len(salt) == 0 {
		return nil, invalidVerifier("empty salt")
	}
	storedKey, err := decodeKey(storedText, "StoredKey")
	if err != nil {
		return nil, err
	}
	serverKey, err := decodeKey(serverText, "ServerKey")
	if err != nil {
		return nil, err
	}
	return &Verifier{Iterations: iter, Salt: salt, StoredKey: storedKey, ServerKey: serverKey}, nil
}

// String formats v in PostgreSQL's rolpassword format, the one ParseVerifier
// reads.
func (v *Verifier) String() string {
	return fmt.Sprintf("%s%d:%s$%s:%s", verifierPrefix, v.Iterations,
		b64.EncodeToString(v.Salt), b64.EncodeToString(v.StoredKey), b64.EncodeToString(v.ServerKey))
}

// VerifierFor returns the verifier for a configured secret. A secret that
// starts with "SCRAM-SHA-256$" is a stored verifier and is parsed with
// ParseVerifier. Anything else is a plain-text password, derived with
// DefaultIterations and a salt chosen at random once per process, so the
// same password always yields the same verifier within a process (results
// are cached).
//
// An empty secret and a PostgreSQL MD5 hash ("md5" followed by 32 hex
// digits, which PostgreSQL never treats as a plain-text password) are
// rejected: neither can authenticate a SCRAM client.
func VerifierFor(secret string) (*Verifier, error) {
	if strings.HasPrefix(secret, verifierPrefix) {
		return ParseVerifier(secret)
	}
	if secret == "" {
		return nil, errors.New("pgauth: empty password")
	}
	if isMD5Hash(secret) {
		return nil, errors.New("pgauth: an MD5 password hash cannot be used for SCRAM-SHA-256 authentication")
	}
	return plainCache.get(secret)
}

// validateVerifier reports whether v can be used by a SCRAMServer: iteration
// count in 1..MaxIterations, non-empty salt, 32-byte keys.
func validateVerifier(v *Verifier) error {
	switch {
	case v == nil:
		return invalidVerifier("nil verifier")
	case v.Iterations < 1 || v.Iterations > MaxIterations:
		return invalidVerifier("iteration count %d outside 1..%d", v.Iterations, MaxIterations)
	case len(v.Salt) == 0:
		return invalidVerifier("empty salt")
	case len(v.StoredKey) != keyLen:
		return invalidVerifier("StoredKey is %d bytes, want %d", len(v.StoredKey), keyLen)
	case len(v.ServerKey) != keyLen:
		return invalidVerifier("ServerKey is %d bytes, want %d", len(v.ServerKey), keyLen)
	}
	return nil
}

func invalidVerifier(format string, args ...any) error {
	return fmt.Errorf("pgauth: invalid SCRAM-SHA-256 verifier: "+format, args...)
}

// parseIterations accepts only ASCII digits (no sign, no spaces).
func parseIterations(s string) (int, error) {
	if s == "" {
		return 0, invalidVerifier("empty iteration count")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, invalidVerifier("iteration count is not a decimal number")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxIterations {
		return 0, invalidVerifier("iteration count outside 1..%d", MaxIterations)
	}
	return n, nil
}

func decodeKey(s, name string) ([]byte, error) {
	k, err := decodeB64(s)
	if err != nil {
		return nil, invalidVerifier("%s is not valid base64", name)
	}
	if len(k) != keyLen {
		return nil, invalidVerifier("%s is %d bytes, want %d", name, len(k), keyLen)
	}
	return k, nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// isMD5Hash reports whether s has the form of PostgreSQL's stored MD5
// password: "md5" followed by 32 lower-case hex digits.
func isMD5Hash(s string) bool {
	h, ok := strings.CutPrefix(s, "md5")
	if !ok || len(h) != 32 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// plainCacheMax bounds the number of plain-text passwords whose verifiers
// are cached; the cache is emptied when it is full.
const plainCacheMax = 1024

// plainCache holds the per-process salt and the verifiers derived from
// plain-text passwords with it, so each password costs one PBKDF2 run per
// process instead of one per connection.
var plainCache verifierCache

type verifierCache struct {
	saltOnce sync.Once
	salt     []byte

	mu sync.Mutex
	m  map[string]*Verifier
}

func (c *verifierCache) get(password string) (*Verifier, error) {
	c.saltOnce.Do(func() {
		c.salt = make([]byte, processSaltLen)
		// crypto/rand.Read never returns an error (it crashes the program
		// if the system's random source fails).
		_, _ = rand.Read(c.salt)
	})

	c.mu.Lock()
	v, ok := c.m[password]
	c.mu.Unlock()
	if !ok {
		var err error
		// Derive outside the lock; concurrent misses for the same password
		// compute the same result.
		v, err = DeriveVerifier(password, c.salt, DefaultIterations)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.m == nil || len(c.m) >= plainCacheMax {
			c.m = make(map[string]*Verifier)
		}
		c.m[password] = v
		c.mu.Unlock()
	}
	return v.clone(), nil
}

// clone returns a deep copy, so callers cannot modify a cached verifier.
func (v *Verifier) clone() *Verifier {
	return &Verifier{
		Iterations: v.Iterations,
		Salt:       append([]byte(nil), v.Salt...),
		StoredKey:  append([]byte(nil), v.StoredKey...),
		ServerKey:  append([]byte(nil), v.ServerKey...),
	}
}
