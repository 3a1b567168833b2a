package pgwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the framer and to the body parsers of
// every message it frames: nothing may panic, and every framed message must
// be exactly what its header announced.
func FuzzReader(f *testing.F) {
	f.Add(frame('Q', []byte("select 1\x00")))
	f.Add(append(frame('P', []byte("s\x00select $1\x00\x00\x01\x00\x00\x00\x17")), frame('S', nil)...))
	f.Add(frame('B', []byte("\x00s\x00\x00\x00\x00\x00\x00\x00")))
	f.Add([]byte{'Q', 0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte{'D', 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 64), 1<<16)
		for {
			m, err := r.Next()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrMessageTooLarge) && !errors.Is(err, ErrBadLength) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(m.Raw) < HeaderLen || m.Raw[0] != m.Type {
				t.Fatalf("bad frame %q", m.Raw)
			}
			body := m.Body()
			ParseQuery(body)
			ParseParse(body)
			ParseBind(body)
			ParseTarget(body)
			ParseExecute(body)
			ErrorField(body, 'C')
			CommandTag(body)
			ParseParameterStatus(body)
			DataRowColumn(body, 0)
			DataRowColumn(body, 3)
			ParseSASLInitialResponse(body)
			PasswordPayload(body)
		}
	})
}

// FuzzStartup feeds arbitrary startup packets to ReadStartupPacket and
// ParseStartup: errors are fine, panics are not, and accepted parameters
// never contain NUL bytes.
func FuzzStartup(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x21\x00\x03\x00\x00user\x00app\x00database\x00db\x00\x00"))
	f.Add([]byte("\x00\x00\x00\x08\x04\xd2\x16\x2f"))
	f.Add([]byte("\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x2a\x01\x02\x03\x04"))
	f.Add([]byte("\x00\x00\x00\x09\x00\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		pkt, err := ReadStartupPacket(bytes.NewReader(in))
		if err != nil {
			return
		}
		st, err := ParseStartup(pkt)
		if err != nil {
			return
		}
		for _, p := range st.Params {
			if bytes.IndexByte([]byte(p.Name), 0) >= 0 || bytes.IndexByte([]byte(p.Value), 0) >= 0 {
				t.Fatalf("parameter with NUL: %q", p)
			}
		}
	})
}
