package pgwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Startup-phase request codes (the 4 bytes after the length of an untyped
// startup packet).
const (
	ProtocolVersion30 uint32 = 3 << 16
	SSLRequestCode    uint32 = 80877103
	GSSENCRequestCode uint32 = 80877104
	CancelRequestCode uint32 = 80877102
)

// MaxStartupPacket bounds the size of a startup packet (PostgreSQL uses 10000).
const MaxStartupPacket = 10000

// ErrBadStartup is returned (wrapped) for a malformed startup packet.
var ErrBadStartup = errors.New("pgwire: malformed startup packet")

// ReadStartupPacket reads one untyped startup-phase packet (length, code,
// payload) directly from r, which should be the raw connection: nothing may
// be buffered past it because a TLS handshake may follow. It returns the
// packet without its length word.
func ReadStartupPacket(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	return ReadStartupRest(r, hdr)
}

// ReadStartupRest is ReadStartupPacket for a caller that already read the
// 4-byte length word.
func ReadStartupRest(r io.Reader, lenWord [4]byte) ([]byte, error) {
	n := int(binary.BigEndian.Uint32(lenWord[:]))
	if n < 8 || n > MaxStartupPacket {
		return nil, fmt.Errorf("%w: length %d", ErrBadStartup, n)
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, unexpected(err)
	}
	return buf, nil
}

// Startup is a decoded startup-phase packet.
type Startup struct {
	Code uint32 // ProtocolVersion30, SSLRequestCode, GSSENCRequestCode or CancelRequestCode
	// Params holds the StartupMessage parameters (user, database, options,
	// application_name, …) in the order the client sent them.
	Params []Param
	// Cancel holds the process ID and secret key of a CancelRequest.
	CancelPID uint32
	CancelKey []byte
}

// Param is one name/value pair of a StartupMessage.
type Param struct{ Name, Value string }

// Get returns the value of the named startup parameter.
func (s *Startup) Get(name string) (string, bool) {
	for _, p := range s.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// ParseStartup decodes a packet returned by ReadStartupPacket. Unknown
// protocol versions are returned with their code and no parameters; the
// caller decides how to answer.
func ParseStartup(pkt []byte) (*Startup, error) {
	if len(pkt) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadStartup, len(pkt))
	}
	s := &Startup{Code: binary.BigEndian.Uint32(pkt)}
	rest := pkt[4:]
	switch s.Code {
	case SSLRequestCode, GSSENCRequestCode:
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: %d trailing bytes after request code", ErrBadStartup, len(rest))
		}
		return s, nil
	case CancelRequestCode:
		if len(rest) < 8 || len(rest) > 256+4 {
			return nil, fmt.Errorf("%w: cancel request of %d bytes", ErrBadStartup, len(rest))
		}
		s.CancelPID = binary.BigEndian.Uint32(rest)
		s.CancelKey = append([]byte(nil), rest[4:]...)
		return s, nil
	}
	if s.Code>>16 != 3 {
		return s, nil
	}
	for {
		if len(rest) == 0 {
			return nil, fmt.Errorf("%w: missing terminator", ErrBadStartup)
		}
		if rest[0] == 0 {
			if len(rest) != 1 {
				return nil, fmt.Errorf("%w: %d bytes after terminator", ErrBadStartup, len(rest)-1)
			}
			return s, nil
		}
		name, r, ok := cstring(rest)
		if !ok {
			return nil, fmt.Errorf("%w: unterminated parameter name", ErrBadStartup)
		}
		value, r, ok := cstring(r)
		if !ok {
			return nil, fmt.Errorf("%w: unterminated value of parameter %q", ErrBadStartup, name)
		}
		s.Params = append(s.Params, Param{Name: name, Value: value})
		rest = r
	}
}

// cstring splits a NUL-terminated string off the front of b.
func cstring(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}
