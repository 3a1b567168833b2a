package pgauth_test

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/internal/pgauth"
)

func TestParseVerifierPostgresFormat(t *testing.T) {
	tests := []struct {
		password   string
		salt       []byte
		iterations int
	}{
		{rfcPassword, mustB64(t, rfcSalt), rfcIterations},
		{"secret", []byte("0123456789abcdef"), 4096},
		{"x", []byte{0xff}, 1},
		{"longer salt", bytes.Repeat([]byte{0xa5}, 33), 17},
	}
	for _, tt := range tests {
		s := pgVerifierString(tt.password, tt.salt, tt.iterations)
		parsed, err := pgauth.ParseVerifier(s)
		if err != nil {
			t.Fatalf("ParseVerifier(%q): %v", s, err)
		}
		derived := pgauth.NewVerifier(tt.password, tt.salt, tt.iterations)
		if !reflect.DeepEqual(parsed, derived) {
			t.Fatalf("password %q: ParseVerifier = %+v, NewVerifier = %+v", tt.password, parsed, derived)
		}
		if got := derived.String(); got != s {
			t.Fatalf("String() = %q, want %q", got, s)
		}
	}
}

// The RFC 7677 exchange authenticates against the verifier in its
// PostgreSQL text form, i.e. without knowledge of the password.
func TestParseVerifierRFC7677(t *testing.T) {
	v, err := pgauth.ParseVerifier(pgVerifierString(rfcPassword, mustB64(t, rfcSalt), rfcIterations))
	if err != nil {
		t.Fatal(err)
	}
	s := pgauth.NewSCRAMServer(v, strings.NewReader(rfcServerSuffix))
	if _, err := s.ClientFirst([]byte(rfcClientFirst)); err != nil {
		t.Fatal(err)
	}
	final, err := s.ClientFinal([]byte(rfcClientFinal))
	if err != nil {
		t.Fatal(err)
	}
	if string(final) != rfcServerFinal {
		t.Fatalf("server-final %q, want %q", final, rfcServerFinal)
	}
}

func TestParseVerifierErrors(t *testing.T) {
	good := pgVerifierString("pw", []byte("0123456789abcdef"), 4096)
	_, rest, _ := strings.Cut(good, "$") // "4096:<salt>$<stored>:<server>"
	params, keys, _ := strings.Cut(rest, "$")
	_, salt, _ := strings.Cut(params, ":")
	stored, server, _ := strings.Cut(keys, ":")
	key31 := base64.StdEncoding.EncodeToString(make([]byte, 31))
	key33 := base64.StdEncoding.EncodeToString(make([]byte, 33))

	tests := map[string]string{
		"empty":                   "",
		"md5":                     "md5" + strings.Repeat("0", 32),
		"plain":                   "password",
		"lower-case prefix":       "scram-sha-256$" + rest,
		"prefix only":             "SCRAM-SHA-256$",
		"no keys":                 "SCRAM-SHA-256$" + params,
		"no salt separator":       "SCRAM-SHA-256$4096" + salt + "$" + keys,
		"no key separator":        "SCRAM-SHA-256$" + params + "$" + stored + server,
		"extra dollar":            good + "$",
		"extra colon":             good + ":",
		"zero iterations":         "SCRAM-SHA-256$0:" + salt + "$" + keys,
		"negative iterations":     "SCRAM-SHA-256$-1:" + salt + "$" + keys,
		"plus sign":               "SCRAM-SHA-256$+4096:" + salt + "$" + keys,
		"space":                   "SCRAM-SHA-256$ 4096:" + salt + "$" + keys,
		"empty iterations":        "SCRAM-SHA-256$:" + salt + "$" + keys,
		"too many iterations":     "SCRAM-SHA-256$10000001:" + salt + "$" + keys,
		"overflowing iterations":  "SCRAM-SHA-256$99999999999999999999999:" + salt + "$" + keys,
		"hex iterations":          "SCRAM-SHA-256$0x1000:" + salt + "$" + keys,
		"empty salt":              "SCRAM-SHA-256$4096:$" + keys,
		"salt bad base64":         "SCRAM-SHA-256$4096:***$" + keys,
		"salt unpadded":           "SCRAM-SHA-256$4096:" + strings.TrimRight(salt, "=") + "$" + keys,
		"salt non-canonical":      "SCRAM-SHA-256$4096:QR==$" + keys,
		"salt url alphabet":       "SCRAM-SHA-256$4096:-_-_$" + keys,
		"stored bad base64":       "SCRAM-SHA-256$" + params + "$" + stored[1:] + ":" + server,
		"stored short":            "SCRAM-SHA-256$" + params + "$" + key31 + ":" + server,
		"server long":             "SCRAM-SHA-256$" + params + "$" + stored + ":" + key33,
		"server empty":            "SCRAM-SHA-256$" + params + "$" + stored + ":",
		"trailing newline":        good + "\n",
		"line break in salt":      "SCRAM-SHA-256$4096:" + salt[:4] + "\r\n" + salt[4:] + "$" + keys,
		"line break in key":       "SCRAM-SHA-256$" + params + "$" + stored[:4] + "\n" + stored[4:] + ":" + server,
		"leading space":           " " + good,
		"keys swapped separators": "SCRAM-SHA-256$" + strings.Replace(params, ":", "$", 1) + ":" + keys,
	}
	if _, err := pgauth.ParseVerifier(good); err != nil {
		t.Fatalf("ParseVerifier(good): %v", err)
	}
	if _, err := pgauth.ParseVerifier("SCRAM-SHA-256$10000000:" + salt + "$" + keys); err != nil {
		t.Fatalf("ParseVerifier at MaxIterations: %v", err)
	}
	for name, s := range tests {
		if v, err := pgauth.ParseVerifier(s); err == nil {
			t.Errorf("%s: ParseVerifier(%q) = %+v, want error", name, s, v)
		}
	}
}

func TestNewVerifierPanicsOnInvalidArguments(t *testing.T) {
	for name, f := range map[string]func(){
		"zero iterations": func() { pgauth.NewVerifier("pw", []byte("salt"), 0) },
		"too many":        func() { pgauth.NewVerifier("pw", []byte("salt"), pgauth.MaxIterations+1) },
		"empty salt":      func() { pgauth.NewVerifier("pw", nil, 4096) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: NewVerifier did not panic", name)
				}
			}()
			f()
		}()
	}
	if _, err := pgauth.DeriveVerifier("pw", nil, 4096); err == nil {
		t.Error("DeriveVerifier with empty salt succeeded")
	}
	if _, err := pgauth.DeriveVerifier("pw", []byte("salt"), -1); err == nil {
		t.Error("DeriveVerifier with negative iterations succeeded")
	}
}

func TestNewVerifierCopiesSalt(t *testing.T) {
	salt := []byte("0123456789abcdef")
	v := pgauth.NewVerifier("pw", salt, 1)
	salt[0] = 'X'
	if v.Salt[0] != '0' {
		t.Fatal("NewVerifier kept a reference to the caller's salt")
	}
}

func TestVerifierFor(t *testing.T) {
	a, err := pgauth.VerifierFor("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if a.Iterations != pgauth.DefaultIterations || len(a.Salt) != 16 {
		t.Fatalf("plain-text verifier: %d iterations, %d-byte salt", a.Iterations, len(a.Salt))
	}
	if want := pgauth.NewVerifier("hunter2", a.Salt, pgauth.DefaultIterations); !reflect.DeepEqual(a, want) {
		t.Fatalf("VerifierFor = %+v, want %+v", a, want)
	}

	// Deterministic within the process, and callers get their own copy.
	a.Salt[0] ^= 0xff
	b, err := pgauth.VerifierFor("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	a.Salt[0] ^= 0xff
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("second VerifierFor = %+v, want %+v", b, a)
	}
	other, err := pgauth.VerifierFor("hunter3")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(other.Salt, a.Salt) || bytes.Equal(other.StoredKey, a.StoredKey) {
		t.Fatal("per-process salt not shared, or different passwords give the same key")
	}

	// Stored verifiers are parsed, not treated as passwords.
	stored := pgVerifierString("hunter2", []byte("0123456789abcdef"), 4096)
	v, err := pgauth.VerifierFor(stored)
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != stored {
		t.Fatalf("VerifierFor(stored) = %s", v)
	}

	for _, secret := range []string{
		"",
		"SCRAM-SHA-256$bogus",
		"md5" + strings.Repeat("0123456789abcdef", 2),
	} {
		if v, err := pgauth.VerifierFor(secret); err == nil {
			t.Errorf("VerifierFor(%q) = %+v, want error", secret, v)
		}
	}
	// Strings that merely resemble other formats are passwords.
	for _, secret := range []string{"md5", "md5" + strings.Repeat("A", 32), "SCRAM-SHA-256"} {
		if _, err := pgauth.VerifierFor(secret); err != nil {
			t.Errorf("VerifierFor(%q): %v", secret, err)
		}
	}
}
