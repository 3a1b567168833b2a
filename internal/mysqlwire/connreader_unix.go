//go:build unix

package mysqlwire

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
	r.dirFn = r.readDirect
}

// readFD is the syscall.RawConn.Read callback of fill: one non-blocking
// read into the buffer, borrowed only for the attempt. On EAGAIN with
// nothing unread it gives the buffer back and returns false, so that the
// goroutine parks on the poller holding no buffer.
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
				if r.waitHook != nil {
					r.waitHook()
				}
			}
			return false
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		case n == 0:
			r.err = io.EOF
		default:
			r.w += n
		}
		return true
	}
}

// readDirect is the callback of readInto: one non-blocking read into dst.
func (r *ConnReader) readDirect(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), r.dst)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if r.waitHook != nil {
				r.waitHook()
			}
			return false
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		case n == 0:
			r.err = io.EOF
		default:
			r.dstN = n
		}
		return true
	}
}
