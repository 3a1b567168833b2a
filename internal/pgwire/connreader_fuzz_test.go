package pgwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/bufpool"
)

// chunkConn is a net.Conn (not a syscall.Conn, so ConnReader takes its
// conn.Read path) that returns the bytes of src at most chunk bytes per Read.
type chunkConn struct {
	src   []byte
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.src) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.chunk, len(c.src))
	copy(p, c.src[:n])
	c.src = c.src[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *chunkConn) Close() error                     { return nil }
func (c *chunkConn) LocalAddr() net.Addr              { return nil }
func (c *chunkConn) RemoteAddr() net.Addr             { return nil }
func (c *chunkConn) SetDeadline(time.Time) error      { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConnReader checks ConnReader against Reader: fed the same bytes, in
// reads of arbitrary sizes, with a 64-byte pool buffer (so that the
// large-message path runs), both must frame the same messages and stop with
// the same kind of error.
func FuzzConnReader(f *testing.F) {
	f.Add(uint8(3), crFrame('Q', []byte("select 1\x00")))
	f.Add(uint8(1), append(crFrame('P', []byte("s\x00select $1\x00\x00\x01\x00\x00\x00\x17")), crFrame('S', nil)...))
	f.Add(uint8(7), append(crFrame('d', bytes.Repeat([]byte("z"), 200)), crFrame('c', nil)...))
	f.Add(uint8(0), []byte{'Q', 0x7f, 0xff, 0xff, 0xff})
	f.Add(uint8(2), []byte{'D', 0, 0, 0, 2})
	f.Add(uint8(5), []byte{'Q', 0, 0, 0, 9, 'a'})
	pool := bufpool.New(64)
	f.Fuzz(func(t *testing.T, chunk uint8, in []byte) {
		const max = 1 << 12
		want := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 64), max)
		got := NewConnReader(&chunkConn{src: in, chunk: int(chunk%67) + 1}, pool, max)
		for i := 0; ; i++ {
			wm, werr := want.Next()
			gm, gerr := got.Next()
			if (werr == nil) != (gerr == nil) || errClass(werr) != errClass(gerr) {
				t.Fatalf("message %d: Reader error %v, ConnReader error %v", i, werr, gerr)
			}
			if werr != nil {
				if errClass(gerr) == "other" {
					t.Fatalf("unexpected error %v", gerr)
				}
				if got.bufp != nil && got.Buffered() == 0 {
					t.Fatal("buffer held after a final error with nothing buffered")
				}
				got.Release()
				return
			}
			if gm.Type != wm.Type || !bytes.Equal(gm.Raw, wm.Raw) {
				t.Fatalf("message %d: ConnReader %q, Reader %q", i, gm.Raw, wm.Raw)
			}
			if b := got.Buffered(); b < 0 || b > len(in) {
				t.Fatalf("message %d: Buffered %d", i, b)
			}
		}
	})
}

func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "eof"
	case err == io.ErrUnexpectedEOF:
		return "unexpected eof"
	case errors.Is(err, ErrMessageTooLarge):
		return "too large"
	case errors.Is(err, ErrBadLength):
		return "bad length"
	}
	return "other"
}
