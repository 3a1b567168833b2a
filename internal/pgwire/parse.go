package pgwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is returned (wrapped) when a message body does not match its
// type's layout.
var ErrMalformed = errors.New("pgwire: malformed message")

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// nextCString splits a NUL-terminated byte string off the front of b without
// copying.
func nextCString(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// ParseQuery returns the SQL text of a Query body (without the NUL). The
// result aliases body.
func ParseQuery(body []byte) ([]byte, error) {
	s, _, ok := nextCString(body)
	if !ok {
		return nil, malformed("Query without terminator")
	}
	return s, nil
}

// ParseParse returns the statement name and SQL text of a Parse body. The
// results alias body.
func ParseParse(body []byte) (name, query []byte, err error) {
	name, rest, ok := nextCString(body)
	if !ok {
		return nil, nil, malformed("Parse statement name")
	}
	query, rest, ok = nextCString(rest)
	if !ok {
		return nil, nil, malformed("Parse query")
	}
	if len(rest) < 2 {
		return nil, nil, malformed("Parse parameter count")
	}
	n := int(binary.BigEndian.Uint16(rest))
	if len(rest)-2 != 4*n {
		return nil, nil, malformed("Parse parameter types")
	}
	return name, query, nil
}

// ParseBind returns the portal and statement names of a Bind body. The
// results alias body; the parameters are not inspected.
func ParseBind(body []byte) (portal, stmt []byte, err error) {
	portal, rest, ok := nextCString(body)
	if !ok {
		return nil, nil, malformed("Bind portal name")
	}
	stmt, _, ok = nextCString(rest)
	if !ok {
		return nil, nil, malformed("Bind statement name")
	}
	return portal, stmt, nil
}

// ParseTarget returns the kind ('S' statement or 'P' portal) and name of a
// Describe or Close body. The name aliases body.
func ParseTarget(body []byte) (kind byte, name []byte, err error) {
	if len(body) < 2 {
		return 0, nil, malformed("Describe/Close too short")
	}
	kind = body[0]
	if kind != 'S' && kind != 'P' {
		return 0, nil, malformed("Describe/Close kind")
	}
	name, rest, ok := nextCString(body[1:])
	if !ok || len(rest) != 0 {
		return 0, nil, malformed("Describe/Close name")
	}
	return kind, name, nil
}

// ParseExecute returns the portal name of an Execute body. It aliases body.
func ParseExecute(body []byte) ([]byte, error) {
	portal, rest, ok := nextCString(body)
	if !ok || len(rest) != 4 {
		return nil, malformed("Execute")
	}
	return portal, nil
}

// ErrorField returns the value of one field (for example 'C' for SQLSTATE,
// 'M' for the message) of an ErrorResponse or NoticeResponse body. It
// aliases body.
func ErrorField(body []byte, field byte) []byte {
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		v, rest, ok := nextCString(body[1:])
		if !ok {
			return nil
		}
		if f == field {
			return v
		}
		body = rest
	}
	return nil
}

// CommandTag returns the tag of a CommandComplete body (for example
// "INSERT 0 1"). It aliases body.
func CommandTag(body []byte) []byte {
	s, _, ok := nextCString(body)
	if !ok {
		return body
	}
	return s
}

// ParseParameterStatus returns the name and value of a ParameterStatus body.
func ParseParameterStatus(body []byte) (name, value string, err error) {
	n, rest, ok := nextCString(body)
	if !ok {
		return "", "", malformed("ParameterStatus name")
	}
	v, _, ok := nextCString(rest)
	if !ok {
		return "", "", malformed("ParameterStatus value")
	}
	return string(n), string(v), nil
}

// DataRowColumn returns column i of a DataRow body; null reports SQL NULL.
// The value aliases body.
func DataRowColumn(body []byte, i int) (value []byte, null bool, err error) {
	if len(body) < 2 {
		return nil, false, malformed("DataRow column count")
	}
	n := int(binary.BigEndian.Uint16(body))
	if i >= n {
		return nil, false, malformed("DataRow column index")
	}
	p := body[2:]
	for c := 0; ; c++ {
		if len(p) < 4 {
			return nil, false, malformed("DataRow column length")
		}
		l := int32(binary.BigEndian.Uint32(p))
		p = p[4:]
		if l < 0 {
			if c == i {
				return nil, true, nil
			}
			continue
		}
		if int(l) > len(p) {
			return nil, false, malformed("DataRow column value")
		}
		if c == i {
			return p[:l], false, nil
		}
		p = p[l:]
	}
}

// PasswordPayload returns the payload of a PasswordMessage-family body
// ('p'): for a cleartext or MD5 password the NUL-terminated string without
// its terminator.
func PasswordPayload(body []byte) ([]byte, error) {
	s, _, ok := nextCString(body)
	if !ok {
		return nil, malformed("password message")
	}
	return s, nil
}

// ParseSASLInitialResponse returns the mechanism name and initial client
// data of a SASLInitialResponse body.
func ParseSASLInitialResponse(body []byte) (mechanism string, data []byte, err error) {
	mech, rest, ok := nextCString(body)
	if !ok || len(rest) < 4 {
		return "", nil, malformed("SASLInitialResponse")
	}
	n := int32(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if n < 0 {
		return string(mech), nil, nil
	}
	if int(n) != len(rest) {
		return "", nil, malformed("SASLInitialResponse data length")
	}
	return string(mech), rest, nil
}
