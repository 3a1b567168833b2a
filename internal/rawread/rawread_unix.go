//go:build unix

package rawread

import (
	"io"
	"net"
	"os"
	"syscall"
)

type impl struct {
	raw syscall.RawConn
	fn  func(fd uintptr) bool // r.attempt, bound once so reads do not allocate
}

// New returns a Reader for c, or nil when c does not expose its descriptor
// (TLS, pipes): then read with c.Read. buf gives the slice each attempt
// reads into; empty (may be nil) is called when an attempt found the
// socket empty, before waiting.
func New(c net.Conn, buf func() []byte, empty func()) *Reader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &Reader{buf: buf, empty: empty}
	r.raw = raw
	r.fn = r.attempt
	return r
}

// Read waits until the connection is readable, then reads once into the
// slice buf returns. It honours the connection's read deadline and returns
// net.ErrClosed (wrapped) once the connection is closed; end of stream is
// io.EOF.
func (r *Reader) Read() (int, error) {
	r.n, r.err = 0, nil
	if err := r.raw.Read(r.fn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

// attempt is the syscall.RawConn.Read callback: one non-blocking read. On
// EAGAIN it reports false, so that the runtime parks the goroutine until
// the descriptor is readable and calls it again.
func (r *Reader) attempt(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), r.buf())
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if r.empty != nil {
				r.empty()
			}
			return false
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		case n == 0:
			r.err = io.EOF
		default:
			r.n = n
		}
		return true
	}
}
