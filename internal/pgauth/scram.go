package pgauth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrAuthFailed is returned (possibly wrapped) by SCRAMServer.ClientFinal
// when the client's proof does not match the verifier: the password is
// wrong.
var ErrAuthFailed = errors.New("pgauth: password authentication failed")

// ErrProtocol is wrapped by SCRAMServer errors caused by what the client
// sent: a malformed message, an unsupported feature (channel binding,
// authorization identity, mandatory extensions) or a nonce mismatch. Errors
// that wrap neither ErrProtocol nor ErrAuthFailed are the server's own
// problem: an unusable verifier, a failing random source, or calls out of
// order.
var ErrProtocol = errors.New("pgauth: SCRAM protocol violation")

// maxSCRAMMessage bounds the size of a client message. Real ones are around
// a hundred bytes.
const maxSCRAMMessage = 8 << 10

// serverNonceLen is the number of characters the server appends to the
// client's nonce. Each is drawn uniformly from the 93 printable ASCII
// characters other than ',' (about 6.5 bits each).
const serverNonceLen = 30

// maxNonceRandom bounds how many random bytes generating a server nonce may
// consume, so a broken random source that never yields a usable byte
// produces an error rather than a hang.
const maxNonceRandom = 1024

type scramState uint8

const (
	stateStart       scramState = iota // expecting client-first-message
	stateServerFirst                   // server-first-message sent, expecting client-final-message
	stateDone                          // authenticated
	stateFailed                        // an error was returned; the conversation is over
)

// SCRAMServer runs the server side of one SCRAM-SHA-256 conversation. Call
// ClientFirst with the payload of the client's SASLInitialResponse, then
// ClientFinal with the payload of its SASLResponse; the client is
// authenticated when ClientFinal returns a nil error. After any error the
// conversation is over and further calls fail.
//
// A SCRAMServer is not safe for concurrent use.
type SCRAMServer struct {
	v     Verifier
	vErr  error
	rand  io.Reader
	state scramState

	gs2Header []byte // as sent by the client, e.g. "n,,"
	nonce     []byte // client nonce followed by server nonce
	// authPrefix is client-first-message-bare "," server-first-message ","
	// — the AuthMessage up to client-final-message-without-proof.
	authPrefix []byte
}

// NewSCRAMServer starts a conversation that authenticates against v. The
// server nonce is read from rand; nil means crypto/rand.Reader. An invalid
// or nil verifier is reported by ClientFirst. v is copied shallowly: its
// byte slices must not be modified during the conversation.
func NewSCRAMServer(v *Verifier, rand io.Reader) *SCRAMServer {
	s := &SCRAMServer{rand: rand, vErr: validateVerifier(v)}
	if s.vErr == nil {
		s.v = *v
	}
	return s
}

// ClientFirst processes the client-first-message and returns the
// server-first-message:
//
//	client: gs2-header client-first-message-bare, e.g. "n,,n=,r=<client nonce>"
//	server: "r=<client nonce><server nonce>,s=<base64 salt>,i=<iterations>"
//
// The GS2 header must be "n,," or "y,,"; channel binding ("p=..."), an
// authorization identity ("a=...") and mandatory extensions ("m=...") are
// rejected. The username (n=) is ignored: PostgreSQL clients send an empty
// one and the user comes from the startup packet. Optional extensions after
// the nonce are ignored.
func (s *SCRAMServer) ClientFirst(msg []byte) (serverFirst []byte, err error) {
	if s.state != stateStart {
		return nil, s.outOfOrder("ClientFirst")
	}
	s.state = stateFailed
	if s.vErr != nil {
		return nil, s.vErr
	}
	if err := checkMessage(msg, "client-first-message"); err != nil {
		return nil, err
	}

	gs2Header, bare, err := parseGS2Header(msg)
	if err != nil {
		return nil, err
	}
	clientNonce, err := parseClientFirstBare(bare)
	if err != nil {
		return nil, err
	}

	serverNonce, err := s.newServerNonce()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 0, len(clientNonce)+len(serverNonce))
	nonce = append(append(nonce, clientNonce...), serverNonce...)

	first := make([]byte, 0, 2+len(nonce)+4+b64.EncodedLen(len(s.v.Salt))+3+10)
	first = append(first, "r="...)
	first = append(first, nonce...)
	first = append(first, ",s="...)
	first = b64.AppendEncode(first, s.v.Salt)
	first = append(first, ",i="...)
	first = strconv.AppendInt(first, int64(s.v.Iterations), 10)

	authPrefix := make([]byte, 0, len(bare)+1+len(first)+1)
	authPrefix = append(authPrefix, bare...)
	authPrefix = append(authPrefix, ',')
	authPrefix = append(authPrefix, first...)
	authPrefix = append(authPrefix, ',')

	s.gs2Header = append([]byte(nil), gs2Header...)
	s.nonce = nonce
	s.authPrefix = authPrefix
	s.state = stateServerFirst
	return first, nil
}

// ClientFinal processes the client-final-message and, if the client's proof
// is valid, returns the server-final-message "v=<base64 ServerSignature>":
//
//	client: "c=<base64 gs2-header>,r=<nonce>[,extensions],p=<base64 ClientProof>"
//
// c= must encode the GS2 header of the client-first-message ("biws" for
// "n,,", "eSws" for "y,,") and r= must be the nonce the server sent. A wrong
// proof (wrong password) returns ErrAuthFailed; every other failure wraps
// ErrProtocol.
func (s *SCRAMServer) ClientFinal(msg []byte) (serverFinal []byte, err error) {
	if s.state != stateServerFirst {
		return nil, s.outOfOrder("ClientFinal")
	}
	s.state = stateFailed
	if err := checkMessage(msg, "client-final-message"); err != nil {
		return nil, err
	}

	// Channel binding: base64 of the GS2 header (no binding data, since
	// channel binding is not supported).
	cbind, rest, err := nextAttr(msg, 'c', "channel binding")
	if err != nil {
		return nil, err
	}
	header, err := decodeB64(cbind)
	if err != nil {
		return nil, protocolError("channel binding attribute is not valid base64")
	}
	if !bytes.Equal(header, s.gs2Header) {
		return nil, protocolError("channel binding attribute does not match the GS2 header of the client-first-message")
	}

	nonce, rest, err := nextAttr(rest, 'r', "nonce")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(nonce, s.nonce) {
		return nil, protocolError("nonce does not match")
	}

	// Skip optional extensions; the proof is the last attribute.
	for rest != nil && !bytes.HasPrefix(rest, []byte("p=")) {
		if _, rest, err = nextAnyAttr(rest); err != nil {
			return nil, err
		}
	}
	if rest == nil {
		return nil, protocolError("client-final-message has no proof (p=)")
	}
	proofText, rest, err := nextAttr(rest, 'p', "proof")
	if err != nil {
		return nil, err
	}
	if rest != nil {
		return nil, protocolError("proof (p=) is not the last attribute")
	}
	proof, err := decodeB64(proofText)
	if err != nil {
		return nil, protocolError("proof is not valid base64")
	}
	if len(proof) != keyLen {
		return nil, protocolError("proof is %d bytes, want %d", len(proof), keyLen)
	}

	// client-final-message-without-proof is everything before ",p=".
	withoutProof := msg[:len(msg)-len(proofText)-len(",p=")]
	authMessage := make([]byte, 0, len(s.authPrefix)+len(withoutProof))
	authMessage = append(append(authMessage, s.authPrefix...), withoutProof...)

	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client
	// knows the password iff H(ClientKey) == StoredKey.
	clientKey := hmacSHA256(s.v.StoredKey, authMessage)
	subtle.XORBytes(clientKey, clientKey, proof)
	storedKey := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(storedKey[:], s.v.StoredKey) != 1 {
		return nil, ErrAuthFailed
	}

	sig := hmacSHA256(s.v.ServerKey, authMessage)
	final := make([]byte, 0, 2+b64.EncodedLen(len(sig)))
	final = append(final, "v="...)
	final = b64.AppendEncode(final, sig)
	s.state = stateDone
	return final, nil
}

func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

func (s *SCRAMServer) outOfOrder(call string) error {
	var why string
	switch s.state {
	case stateStart:
		why = "ClientFirst has not been called"
	case stateServerFirst:
		why = "ClientFirst was already called"
	case stateDone:
		why = "the conversation is complete"
	default:
		why = "the conversation already failed"
	}
	s.state = stateFailed
	return fmt.Errorf("pgauth: SCRAMServer.%s called out of order: %s", call, why)
}

// checkMessage applies the checks common to both client messages.
func checkMessage(msg []byte, what string) error {
	switch {
	case len(msg) == 0:
		return protocolError("empty %s", what)
	case len(msg) > maxSCRAMMessage:
		return protocolError("%s is longer than %d bytes", what, maxSCRAMMessage)
	case bytes.IndexByte(msg, 0) >= 0:
		return protocolError("%s contains a NUL byte", what)
	}
	return nil
}

// parseGS2Header splits the GS2 header ("n,," or "y,,", with its trailing
// comma) off a client-first-message.
func parseGS2Header(msg []byte) (header, bare []byte, err error) {
	switch {
	case msg[0] == 'p':
		return nil, nil, protocolError("client requested channel binding (%q), which is not supported: the server offers SCRAM-SHA-256 only, not SCRAM-SHA-256-PLUS", cut(msg))
	case msg[0] != 'n' && msg[0] != 'y':
		return nil, nil, protocolError("invalid channel binding flag in GS2 header (want 'n' or 'y')")
	case len(msg) < 2 || msg[1] != ',':
		return nil, nil, protocolError("malformed GS2 header: missing ',' after channel binding flag")
	}
	// Authorization identity.
	switch {
	case len(msg) < 3:
		return nil, nil, protocolError("malformed GS2 header: truncated")
	case bytes.HasPrefix(msg[2:], []byte("a=")):
		return nil, nil, protocolError("authorization identity (a=) is not supported")
	case msg[2] != ',':
		return nil, nil, protocolError("malformed GS2 header: missing ',' after authorization identity")
	}
	return msg[:3], msg[3:], nil
}

// cut returns the attribute at the start of msg, up to the first comma.
func cut(msg []byte) []byte {
	if i := bytes.IndexByte(msg, ','); i >= 0 {
		return msg[:i]
	}
	return msg
}

// parseClientFirstBare validates client-first-message-bare:
//
//	[reserved-mext ","] username "," nonce ["," extensions]
//
// and returns the client nonce.
func parseClientFirstBare(bare []byte) (clientNonce []byte, err error) {
	if bytes.HasPrefix(bare, []byte("m=")) {
		return nil, protocolError("mandatory extension (m=) is not supported")
	}
	_, rest, err := nextAttr(bare, 'n', "username")
	if err != nil {
		return nil, err
	}
	clientNonce, rest, err = nextAttr(rest, 'r', "nonce")
	if err != nil {
		return nil, err
	}
	if len(clientNonce) == 0 {
		return nil, protocolError("empty client nonce")
	}
	for _, c := range clientNonce {
		if c < 0x21 || c > 0x7e { // ',' cannot occur: it ends the attribute
			return nil, protocolError("client nonce contains a non-printable character")
		}
	}
	// Optional extensions: validated for syntax, otherwise ignored.
	for rest != nil {
		if _, rest, err = nextAnyAttr(rest); err != nil {
			return nil, err
		}
	}
	return clientNonce, nil
}

// nextAttr reads the attribute "<name>=<value>" at the start of msg and
// returns its value and the text after the following comma; rest is nil if
// the attribute is the last one (and non-nil, possibly empty, otherwise: a
// trailing comma leaves an empty attribute that the next read rejects).
func nextAttr(msg []byte, name byte, what string) (value, rest []byte, err error) {
	if len(msg) < 2 || msg[0] != name || msg[1] != '=' {
		return nil, nil, protocolError("expected %s attribute (%c=)", what, name)
	}
	value, rest = splitAttr(msg[2:])
	return value, rest, nil
}

// nextAnyAttr reads an extension attribute, "<letter>=<value>".
func nextAnyAttr(msg []byte) (value, rest []byte, err error) {
	if len(msg) < 2 || !isAlpha(msg[0]) || msg[1] != '=' {
		return nil, nil, protocolError("malformed attribute (want <letter>=<value>)")
	}
	value, rest = splitAttr(msg[2:])
	return value, rest, nil
}

func splitAttr(b []byte) (value, rest []byte) {
	if i := bytes.IndexByte(b, ','); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// newServerNonce draws serverNonceLen characters uniformly from the
// printable ASCII characters other than ',' by rejection sampling: a random
// byte's low 7 bits are kept if they are such a character.
func (s *SCRAMServer) newServerNonce() ([]byte, error) {
	r := s.rand
	if r == nil {
		r = rand.Reader
	}
	nonce := make([]byte, 0, serverNonceLen)
	buf := make([]byte, serverNonceLen)
	for used := 0; len(nonce) < serverNonceLen; {
		need := buf[:serverNonceLen-len(nonce)]
		if used += len(need); used > maxNonceRandom {
			return nil, errors.New("pgauth: generating server nonce: random source yields no usable bytes")
		}
		if _, err := io.ReadFull(r, need); err != nil {
			return nil, fmt.Errorf("pgauth: generating server nonce: %w", err)
		}
		for _, b := range need {
			if c := b & 0x7f; c >= 0x21 && c <= 0x7e && c != ',' {
				nonce = append(nonce, c)
			}
		}
	}
	return nonce, nil
}
