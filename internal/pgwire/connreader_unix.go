//go:build unix

package pgwire

import (
	"io"
	"os"
	"syscall"
)

// initRaw selects the raw path when the connection exposes its descriptor.
func (r *ConnReader) initRaw() {
	sc, ok := r.conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	r.raw = raw
	r.readFn = r.readFD
}

// readFD is the syscall.RawConn.Read callback: it performs one non-blocking
// read into buf, borrowing a buffer only for the attempt. On EAGAIN with
// nothing buffered it gives everything back and returns false, so the
// runtime parks the goroutine on the poller with no buffer held; the read
// deadline and Close are handled by the poller around the callback.
func (r *ConnReader) readFD(fd uintptr) bool {
	r.borrow()
	for {
		n, err := syscall.Read(int(fd), r.buf[r.w:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if r.r == r.w {
				r.releaseBuf()
				if r.pendLen == 0 {
					r.big = nil
				}
				if r.waitHook != nil {
					r.waitHook()
				}
			}
			return false
		case err != nil:
			r.readErr = os.NewSyscallError("read", err)
		case n == 0:
			r.readErr = io.EOF
		default:
			r.w += n
		}
		return true
	}
}
