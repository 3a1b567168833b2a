package pgauth_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/internal/pgauth"
)

// The committed seed corpora live in testdata/fuzz/<FuzzName>/.

// fuzzVerifier is cheap to use (one iteration) so the fuzzer runs fast.
var fuzzVerifier = pgauth.NewVerifier("pw", []byte("0123456789abcdef"), 1)

// fuzzServerNonce is the server nonce of every fuzzed conversation.
const fuzzServerNonce = "ServerNonce0123456789~!@#$%^&*"

// Client side of the fixed conversation FuzzClientFinal continues.
const fuzzClientNonce = "fuzzClientNonce"

func fuzzServer() *pgauth.SCRAMServer {
	return pgauth.NewSCRAMServer(fuzzVerifier, strings.NewReader(fuzzServerNonce))
}

func FuzzClientFirst(f *testing.F) {
	for _, seed := range []string{
		rfcClientFirst,
		"n,,n=,r=abc",
		"y,,n=,r=abc,x=ext",
		"p=tls-server-end-point,,n=,r=abc",
		"n,a=admin,n=,r=abc",
		"n,,m=ext,n=,r=abc",
		"n,,r=abc",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := fuzzServer()
		first, err := s.ClientFirst(msg)
		if err != nil {
			if !errors.Is(err, pgauth.ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			if first != nil {
				t.Fatalf("error with output %q", first)
			}
			return
		}
		// The reply echoes the client nonce, extended by the server's.
		nonceStart := bytes.Index(msg, []byte(",r=")) + len(",r=")
		clientNonce, _, _ := bytes.Cut(msg[nonceStart:], []byte(","))
		want := "r=" + string(clientNonce) + fuzzServerNonce + ",s=MDEyMzQ1Njc4OWFiY2RlZg==,i=1"
		if string(first) != want {
			t.Fatalf("ClientFirst(%q) = %q, want %q", msg, first, want)
		}
		// The conversation continues safely with garbage.
		if _, err := s.ClientFinal(msg); err == nil {
			t.Fatal("client-first-message accepted as client-final-message")
		}
	})
}

// validFuzzClientFinal returns the correct client-final-message for the
// conversation FuzzClientFinal runs.
func validFuzzClientFinal(tb testing.TB) []byte {
	c := newTestClient("pw", fuzzClientNonce)
	first, err := fuzzServer().ClientFirst(c.first())
	if err != nil {
		tb.Fatal(err)
	}
	final, err := c.final(first)
	if err != nil {
		tb.Fatal(err)
	}
	return final
}

// The committed seed for the valid message must stay valid.
func TestFuzzClientFinalSeed(t *testing.T) {
	valid := validFuzzClientFinal(t)
	const want = "c=biws,r=fuzzClientNonceServerNonce0123456789~!@#$%^&*,p=8ewbkyj80bHjQpWxNQ5KwG0eDcVut87y6GTYmqYZJK8="
	if string(valid) != want {
		t.Fatalf("valid client-final-message is now %q; update testdata/fuzz/FuzzClientFinal and this test", valid)
	}
	seed, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzClientFinal", "valid"))
	if err != nil {
		t.Fatal(err)
	}
	if wantSeed := "go test fuzz v1\n[]byte(" + strconv.Quote(want) + ")\n"; string(seed) != wantSeed {
		t.Fatalf("testdata/fuzz/FuzzClientFinal/valid is\n%s\nwant\n%s", seed, wantSeed)
	}
	s := fuzzServer()
	if _, err := s.ClientFirst([]byte("n,,n=,r=" + fuzzClientNonce)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientFinal(valid); err != nil {
		t.Fatal(err)
	}
}

func FuzzClientFinal(f *testing.F) {
	valid := validFuzzClientFinal(f)
	f.Add(valid)
	f.Add([]byte(strings.Replace(string(valid), "p=", "e=ext,p=", 1)))
	f.Add([]byte("c=eSws,r=" + fuzzClientNonce + fuzzServerNonce + ",p=AAAA"))
	f.Add([]byte(rfcClientFinal))
	f.Add([]byte("c=biws"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := fuzzServer()
		if _, err := s.ClientFirst([]byte("n,,n=,r=" + fuzzClientNonce)); err != nil {
			t.Fatal(err)
		}
		final, err := s.ClientFinal(msg)
		if err != nil {
			if !errors.Is(err, pgauth.ErrProtocol) && !errors.Is(err, pgauth.ErrAuthFailed) {
				t.Fatalf("error %v wraps neither ErrProtocol nor ErrAuthFailed", err)
			}
			if final != nil {
				t.Fatalf("error with output %q", final)
			}
			return
		}
		// Every attribute is covered by the proof and every encoding is
		// canonical, so only the one valid message authenticates.
		if !bytes.Equal(msg, valid) {
			t.Fatalf("ClientFinal accepted %q", msg)
		}
		if !bytes.HasPrefix(final, []byte("v=")) {
			t.Fatalf("server-final-message %q", final)
		}
	})
}

func FuzzParseVerifier(f *testing.F) {
	f.Add(pgVerifierString("pw", []byte("0123456789abcdef"), 4096))
	f.Add(pgVerifierString(rfcPassword, []byte("x"), 1))
	f.Add("SCRAM-SHA-256$10000001:c2FsdA==$AAAA:AAAA")
	f.Add("SCRAM-SHA-256$4096:$:")
	f.Add("md5" + strings.Repeat("0", 32))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := pgauth.ParseVerifier(s)
		if err != nil {
			if v != nil {
				t.Fatal("error with non-nil verifier")
			}
			return
		}
		if v.Iterations < 1 || v.Iterations > pgauth.MaxIterations || len(v.Salt) == 0 ||
			len(v.StoredKey) != 32 || len(v.ServerKey) != 32 {
			t.Fatalf("ParseVerifier(%q) accepted %+v", s, v)
		}
		again, err := pgauth.ParseVerifier(v.String())
		if err != nil {
			t.Fatalf("ParseVerifier(String()) of %q: %v", s, err)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip of %q: %+v != %+v", s, v, again)
		}
		// The verifier is usable by a server.
		if _, err := pgauth.NewSCRAMServer(v, nil).ClientFirst([]byte("n,,n=,r=abc")); err != nil {
			t.Fatalf("verifier %q unusable: %v", s, err)
		}
	})
}
