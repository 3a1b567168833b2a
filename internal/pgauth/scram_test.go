package pgauth_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/internal/pgauth"
)

// RFC 7677 §3 example exchange.
const (
	rfcPassword     = "pencil"
	rfcSalt         = "W22ZaJ0SNY7soEsUEjb6gQ=="
	rfcIterations   = 4096
	rfcClientNonce  = "rOprNGfwEbeRWgbNEkqO"
	rfcServerSuffix = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcClientFirst  = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst  = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal  = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal  = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfcServer returns a server for the RFC 7677 example whose random source
// yields exactly the RFC's server nonce suffix.
func rfcServer(t testing.TB) *pgauth.SCRAMServer {
	t.Helper()
	v := pgauth.NewVerifier(rfcPassword, mustB64(t, rfcSalt), rfcIterations)
	return pgauth.NewSCRAMServer(v, strings.NewReader(rfcServerSuffix))
}

func TestRFC7677Vector(t *testing.T) {
	s := rfcServer(t)
	first, err := s.ClientFirst([]byte(rfcClientFirst))
	if err != nil {
		t.Fatalf("ClientFirst: %v", err)
	}
	if string(first) != rfcServerFirst {
		t.Fatalf("server-first-message\n got %s\nwant %s", first, rfcServerFirst)
	}
	final, err := s.ClientFinal([]byte(rfcClientFinal))
	if err != nil {
		t.Fatalf("ClientFinal: %v", err)
	}
	if string(final) != rfcServerFinal {
		t.Fatalf("server-final-message\n got %s\nwant %s", final, rfcServerFinal)
	}
}

// The test client reproduces the RFC's client messages, so it can be
// trusted in the other tests.
func TestTestClientMatchesRFC7677(t *testing.T) {
	c := newTestClient(rfcPassword, rfcClientNonce)
	c.user = "user"
	if got := string(c.first()); got != rfcClientFirst {
		t.Fatalf("client-first %q, want %q", got, rfcClientFirst)
	}
	final, err := c.final([]byte(rfcServerFirst))
	if err != nil {
		t.Fatal(err)
	}
	if string(final) != rfcClientFinal {
		t.Fatalf("client-final %q, want %q", final, rfcClientFinal)
	}
	if err := c.verify([]byte(rfcServerFinal)); err != nil {
		t.Fatal(err)
	}
}

// roundTrip runs a whole exchange between the test client and a server.
func roundTrip(t *testing.T, c *testClient, s *pgauth.SCRAMServer) error {
	t.Helper()
	first, err := s.ClientFirst(c.first())
	if err != nil {
		t.Fatalf("ClientFirst: %v", err)
	}
	clientFinal, err := c.final(first)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	final, err := s.ClientFinal(clientFinal)
	if err != nil {
		return err
	}
	if err := c.verify(final); err != nil {
		t.Fatalf("client: %v", err)
	}
	return nil
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name, password, gs2, user string
		iterations                int
		salt                      []byte
	}{
		{"n flag", "correct horse battery staple", "n,,", "", 4096, []byte("0123456789abcdef")},
		{"y flag", "s3cret", "y,,", "", 4096, []byte("0123456789abcdef")},
		{"username ignored", "s3cret", "n,,", "someone=2Celse", 1, []byte{1}},
		{"empty password", "", "n,,", "", 2, []byte("salt")},
		{"punctuation", `a,b=c$d:e"f'g\h`, "n,,", "", 10, []byte("saltsaltsaltsalt")},
		{"non-ASCII raw UTF-8", "pässwörd✓", "n,,", "", 100, []byte("saltsaltsaltsalt")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := pgauth.NewVerifier(tt.password, tt.salt, tt.iterations)
			c := newTestClient(tt.password, "fyko+d2lbbFgONRv9qkxdawL")
			c.gs2, c.user = tt.gs2, tt.user
			if err := roundTrip(t, c, pgauth.NewSCRAMServer(v, nil)); err != nil {
				t.Fatalf("ClientFinal: %v", err)
			}
		})
	}
}

func TestRoundTripVerifierFor(t *testing.T) {
	for _, secret := range []string{"hunter2", pgVerifierString("hunter2", []byte("0123456789abcdef"), 4096)} {
		v, err := pgauth.VerifierFor(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(t, newTestClient("hunter2", "abc"), pgauth.NewSCRAMServer(v, nil)); err != nil {
			t.Fatalf("secret %q: %v", secret, err)
		}
	}
}

func TestWrongPassword(t *testing.T) {
	v := pgauth.NewVerifier("right", []byte("0123456789abcdef"), 4096)
	s := pgauth.NewSCRAMServer(v, nil)
	err := roundTrip(t, newTestClient("wrong", "abc"), s)
	if !errors.Is(err, pgauth.ErrAuthFailed) {
		t.Fatalf("got %v, want ErrAuthFailed", err)
	}
	if errors.Is(err, pgauth.ErrProtocol) {
		t.Fatalf("wrong password also reported as protocol violation: %v", err)
	}
	// The conversation is over.
	if _, err := s.ClientFinal([]byte(rfcClientFinal)); err == nil {
		t.Fatal("ClientFinal after failure succeeded")
	}
}

// A correct proof for a different conversation (the RFC one) must not
// authenticate: the nonce differs.
func TestReplayRejected(t *testing.T) {
	v := pgauth.NewVerifier(rfcPassword, mustB64(t, rfcSalt), rfcIterations)
	s := pgauth.NewSCRAMServer(v, nil)
	if _, err := s.ClientFirst([]byte(rfcClientFirst)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientFinal([]byte(rfcClientFinal)); !errors.Is(err, pgauth.ErrProtocol) {
		t.Fatalf("replayed client-final: got %v, want ErrProtocol (nonce mismatch)", err)
	}
}

func TestClientFirstErrors(t *testing.T) {
	tests := []struct {
		name, msg, wantText string
	}{
		{"empty", "", "empty"},
		{"channel binding", "p=tls-server-end-point,,n=,r=abc", "channel binding"},
		{"channel binding no name", "p,,n=,r=abc", "channel binding"},
		{"bad flag", "x,,n=,r=abc", "flag"},
		{"flag only", "n", "GS2"},
		{"flag comma", "n,", "GS2"},
		{"authzid", "n,a=admin,n=,r=abc", "authorization identity"},
		{"authzid garbage", "n,b,n=,r=abc", "GS2"},
		{"no bare", "n,,", "username"},
		{"mandatory extension", "n,,m=foo,n=,r=abc", "mandatory extension"},
		{"missing username", "n,,r=abc", "username"},
		{"missing nonce", "n,,n=", "nonce"},
		{"wrong order", "n,,r=abc,n=", "username"},
		{"empty nonce", "n,,n=,r=", "empty client nonce"},
		{"nonce with space", "n,,n=,r=a c", "non-printable"},
		{"nonce with DEL", "n,,n=,r=a\x7f", "non-printable"},
		{"nonce non-ASCII", "n,,n=,r=é", "non-printable"},
		{"NUL", "n,,n=,r=abc\x00", "NUL"},
		{"trailing comma", "n,,n=,r=abc,", "malformed attribute"},
		{"bad extension", "n,,n=,r=abc,1=x", "malformed attribute"},
		{"too long", "n,,n=,r=" + strings.Repeat("a", 10000), "longer than"},
	}
	v := pgauth.NewVerifier("pw", []byte("salt"), 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := pgauth.NewSCRAMServer(v, nil)
			out, err := s.ClientFirst([]byte(tt.msg))
			if err == nil {
				t.Fatalf("ClientFirst(%q) = %q, want error", tt.msg, out)
			}
			if !errors.Is(err, pgauth.ErrProtocol) {
				t.Errorf("error %v does not wrap ErrProtocol", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if _, err := s.ClientFirst([]byte("n,,n=,r=abc")); err == nil {
				t.Error("ClientFirst succeeded after a failure")
			}
		})
	}
}

func TestClientFirstAcceptsExtensions(t *testing.T) {
	v := pgauth.NewVerifier("pw", []byte("salt"), 1)
	first, err := pgauth.NewSCRAMServer(v, nil).ClientFirst([]byte("y,,n=x,r=abc,e=ext,f="))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(first, []byte("r=abc")) || !bytes.HasSuffix(first, []byte(",s=c2FsdA==,i=1")) {
		t.Fatalf("server-first %q", first)
	}
}

func TestClientFinalErrors(t *testing.T) {
	const nonce = "r=" + rfcClientNonce + rfcServerSuffix
	const proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	tests := []struct {
		name, msg, wantText string
	}{
		{"empty", "", "empty"},
		{"NUL", "c=biws," + nonce + "," + proof + "\x00", "NUL"},
		{"missing c", nonce + "," + proof, "channel binding attribute"},
		{"wrong order", nonce + ",c=biws," + proof, "channel binding attribute"},
		{"c bad base64", "c=biw," + nonce + "," + proof, "base64"},
		{"c non-canonical base64", "c=eR==," + nonce + "," + proof, "base64"},
		{"c line break", "c=bi\nws," + nonce + "," + proof, "base64"},
		{"proof line break", "c=biws," + nonce + "," + proof[:10] + "\n" + proof[10:], "base64"},
		{"c is y", "c=eSws," + nonce + "," + proof, "does not match the GS2 header"},
		{"c with binding data", "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws," + nonce + "," + proof, "does not match"},
		{"missing nonce", "c=biws," + proof, "nonce attribute"},
		{"only c", "c=biws", "nonce attribute"},
		{"client nonce only", "c=biws,r=" + rfcClientNonce + "," + proof, "nonce does not match"},
		{"nonce longer", "c=biws," + nonce + "x," + proof, "nonce does not match"},
		{"missing proof", "c=biws," + nonce, "no proof"},
		{"missing proof trailing comma", "c=biws," + nonce + ",", "malformed attribute"},
		{"proof not last", "c=biws," + nonce + "," + proof + ",e=x", "not the last"},
		{"trailing comma", "c=biws," + nonce + "," + proof + ",", "not the last"},
		{"proof bad base64", "c=biws," + nonce + ",p=!!!!", "base64"},
		{"proof short", "c=biws," + nonce + ",p=AAAA", "proof is 3 bytes"},
		{"proof empty", "c=biws," + nonce + ",p=", "proof is 0 bytes"},
		{"bad extension", "c=biws," + nonce + ",9=x," + proof, "malformed attribute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := rfcServer(t)
			if _, err := s.ClientFirst([]byte(rfcClientFirst)); err != nil {
				t.Fatal(err)
			}
			out, err := s.ClientFinal([]byte(tt.msg))
			if err == nil {
				t.Fatalf("ClientFinal(%q) = %q, want error", tt.msg, out)
			}
			if !errors.Is(err, pgauth.ErrProtocol) {
				t.Errorf("error %v does not wrap ErrProtocol", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if _, err := s.ClientFinal([]byte(rfcClientFinal)); err == nil {
				t.Error("ClientFinal succeeded after a failure")
			}
		})
	}
}

func TestClientFinalWrongProof(t *testing.T) {
	s := rfcServer(t)
	if _, err := s.ClientFirst([]byte(rfcClientFirst)); err != nil {
		t.Fatal(err)
	}
	msg := strings.Replace(rfcClientFinal, "p=dHzb", "p=dHza", 1)
	if _, err := s.ClientFinal([]byte(msg)); !errors.Is(err, pgauth.ErrAuthFailed) {
		t.Fatalf("got %v, want ErrAuthFailed", err)
	}
}

// Optional extensions in the client-final-message are accepted; they are
// covered by the proof.
func TestClientFinalIgnoresExtensions(t *testing.T) {
	v := pgauth.NewVerifier("pw", []byte("salt"), 1)
	c := newTestClient("pw", "abc")
	c.finalExt = ",x=ext,y="
	if err := roundTrip(t, c, pgauth.NewSCRAMServer(v, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestOutOfOrder(t *testing.T) {
	v := pgauth.NewVerifier("pw", []byte("salt"), 1)

	s := pgauth.NewSCRAMServer(v, nil)
	if _, err := s.ClientFinal([]byte(rfcClientFinal)); err == nil {
		t.Fatal("ClientFinal before ClientFirst succeeded")
	}

	s = pgauth.NewSCRAMServer(v, nil)
	if _, err := s.ClientFirst([]byte("n,,n=,r=abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientFirst([]byte("n,,n=,r=abc")); err == nil {
		t.Fatal("second ClientFirst succeeded")
	}

	// After success, nothing more is accepted.
	s = pgauth.NewSCRAMServer(v, nil)
	c := newTestClient("pw", "abc")
	if err := roundTrip(t, c, s); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientFirst(c.first()); err == nil {
		t.Fatal("ClientFirst after success succeeded")
	}
}

func TestInvalidVerifier(t *testing.T) {
	good := pgauth.NewVerifier("pw", []byte("salt"), 1)
	tests := map[string]*pgauth.Verifier{
		"nil":            nil,
		"zero":           {},
		"no iterations":  {Salt: good.Salt, StoredKey: good.StoredKey, ServerKey: good.ServerKey},
		"too many":       {Iterations: pgauth.MaxIterations + 1, Salt: good.Salt, StoredKey: good.StoredKey, ServerKey: good.ServerKey},
		"no salt":        {Iterations: 1, StoredKey: good.StoredKey, ServerKey: good.ServerKey},
		"short stored":   {Iterations: 1, Salt: good.Salt, StoredKey: good.StoredKey[:31], ServerKey: good.ServerKey},
		"missing server": {Iterations: 1, Salt: good.Salt, StoredKey: good.StoredKey},
	}
	for name, v := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := pgauth.NewSCRAMServer(v, nil).ClientFirst([]byte("n,,n=,r=abc"))
			if err == nil {
				t.Fatal("ClientFirst with invalid verifier succeeded")
			}
			if errors.Is(err, pgauth.ErrProtocol) || errors.Is(err, pgauth.ErrAuthFailed) {
				t.Fatalf("server-side problem reported as client's: %v", err)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestServerNonce(t *testing.T) {
	v := pgauth.NewVerifier("pw", []byte("salt"), 1)
	seen := map[string]bool{}
	for range 100 {
		first, err := pgauth.NewSCRAMServer(v, nil).ClientFirst([]byte("n,,n=,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		nonce, _, _ := strings.Cut(string(first), ",")
		suffix := strings.TrimPrefix(nonce, "r=abc")
		if len(suffix) != 30 {
			t.Fatalf("server nonce %q: length %d", suffix, len(suffix))
		}
		for _, c := range []byte(suffix) {
			if c < 0x21 || c > 0x7e || c == ',' {
				t.Fatalf("server nonce %q contains %q", suffix, c)
			}
		}
		if seen[suffix] {
			t.Fatalf("server nonce %q repeated", suffix)
		}
		seen[suffix] = true
	}

	// Bytes outside the alphabet are skipped: 0x80|'A' maps to 'A', ','
	// and control characters are dropped.
	r := io.MultiReader(strings.NewReader(",\x01\x00\x7f\x20"+"\xc1"), strings.NewReader(strings.Repeat("B", 40)))
	first, err := pgauth.NewSCRAMServer(v, r).ClientFirst([]byte("n,,n=,r=abc"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "r=abcA" + strings.Repeat("B", 29) + ","; !strings.HasPrefix(string(first), want) {
		t.Fatalf("server-first %q, want prefix %q", first, want)
	}

	for name, r := range map[string]io.Reader{"error": errReader{}, "zeros": zeroReader{}, "short": strings.NewReader("abc")} {
		_, err := pgauth.NewSCRAMServer(v, r).ClientFirst([]byte("n,,n=,r=abc"))
		if err == nil {
			t.Errorf("%s random source: ClientFirst succeeded", name)
		} else if errors.Is(err, pgauth.ErrProtocol) {
			t.Errorf("%s random source reported as protocol violation: %v", name, err)
		}
	}
}
