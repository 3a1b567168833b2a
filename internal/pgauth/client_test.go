package pgauth_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file holds a minimal SCRAM-SHA-256 client written from RFC 5802
// §3 and §7, used to drive the server in tests. It derives SaltedPassword
// with its own Hi() rather than crypto/pbkdf2 so that it checks the
// package's derivation instead of repeating it.

// hi is Hi(str, salt, i) from RFC 5802 §2.2: PBKDF2 with HMAC-SHA-256 and a
// single output block.
func hi(password string, salt []byte, iterations int) []byte {
	var block [4]byte
	binary.BigEndian.PutUint32(block[:], 1)
	u := hmacSum([]byte(password), append(append([]byte(nil), salt...), block[:]...))
	out := append([]byte(nil), u...)
	for range iterations - 1 {
		u = hmacSum([]byte(password), u)
		for j := range out {
			out[j] ^= u[j]
		}
	}
	return out
}

func hmacSum(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// pgVerifierString computes PostgreSQL's rolpassword text for a password,
// as PostgreSQL's scram_build_secret does, from the RFC definitions.
func pgVerifierString(password string, salt []byte, iterations int) string {
	salted := hi(password, salt, iterations)
	storedKey := sha256.Sum256(hmacSum(salted, []byte("Client Key")))
	serverKey := hmacSum(salted, []byte("Server Key"))
	enc := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + strconv.Itoa(iterations) + ":" + enc(salt) + "$" +
		enc(storedKey[:]) + ":" + enc(serverKey)
}

type testClient struct {
	password string
	user     string // sent in n=; PostgreSQL clients send ""
	gs2      string // "n,," or "y,,"
	nonce    string
	finalExt string // extensions appended to client-final-message-without-proof, e.g. ",x=1"

	firstBare   string
	salted      []byte
	authMessage string
}

func newTestClient(password, nonce string) *testClient {
	return &testClient{password: password, gs2: "n,,", nonce: nonce}
}

func (c *testClient) first() []byte {
	c.firstBare = "n=" + c.user + ",r=" + c.nonce
	return []byte(c.gs2 + c.firstBare)
}

// final parses the server-first-message and returns the
// client-final-message.
func (c *testClient) final(serverFirst []byte) ([]byte, error) {
	attrs := strings.Split(string(serverFirst), ",")
	if len(attrs) != 3 || !strings.HasPrefix(attrs[0], "r=") ||
		!strings.HasPrefix(attrs[1], "s=") || !strings.HasPrefix(attrs[2], "i=") {
		return nil, fmt.Errorf("malformed server-first-message %q", serverFirst)
	}
	nonce := attrs[0][2:]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, fmt.Errorf("server nonce %q does not extend client nonce %q", nonce, c.nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(attrs[1][2:])
	if err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	iter, err := strconv.Atoi(attrs[2][2:])
	if err != nil || iter < 1 {
		return nil, fmt.Errorf("bad iteration count %q", attrs[2])
	}

	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2)) + ",r=" + nonce + c.finalExt
	c.authMessage = c.firstBare + "," + string(serverFirst) + "," + withoutProof
	c.salted = hi(c.password, salt, iter)
	clientKey := hmacSum(c.salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	proof := hmacSum(storedKey[:], []byte(c.authMessage))
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks the server-final-message's signature.
func (c *testClient) verify(serverFinal []byte) error {
	sig, ok := bytes.CutPrefix(serverFinal, []byte("v="))
	if !ok {
		return fmt.Errorf("malformed server-final-message %q", serverFinal)
	}
	serverKey := hmacSum(c.salted, []byte("Server Key"))
	want := base64.StdEncoding.EncodeToString(hmacSum(serverKey, []byte(c.authMessage)))
	if string(sig) != want {
		return errors.New("server signature does not verify")
	}
	return nil
}
