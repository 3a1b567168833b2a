package mysqlwire

import (
	"bufio"
	"io"
	"net"

	"github.com/sluicedb/sluice/internal/bufpool"
	"github.com/sluicedb/sluice/internal/rawread"
)

// bufferedReader is what a PacketReader needs from its source: the subset
// of *bufio.Reader's methods it uses, also implemented by *ConnReader.
type bufferedReader interface {
	io.Reader
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	Buffered() int
	Size() int
}

var (
	_ bufferedReader = (*bufio.Reader)(nil)
	_ bufferedReader = (*ConnReader)(nil)
)

// ConnReader is a buffered reader over a net.Conn, with the semantics of
// the *bufio.Reader methods a PacketReader uses (Peek, Discard, Read,
// Buffered, Size), that owns no buffer while the peer is silent: it borrows
// one from a bufpool.Pool when bytes arrive and gives it back when it has to
// wait for more with nothing unread, so an idle connection holds none. It
// is the MySQL counterpart of pgwire.ConnReader; see NewConnPacketReader.
//
// For connections that implement syscall.Conn (*net.TCPConn, *net.UnixConn)
// it waits for readability through syscall.RawConn.Read with no buffer and
// reads with a non-blocking read(2) into a borrowed one; such connections
// are read through their descriptor, so a type that embeds a *net.TCPConn
// and overrides Read is bypassed. Other connections (*tls.Conn, net.Pipe)
// are read with conn.Read into a borrowed buffer, which stays borrowed while
// Read blocks.
//
// As with bufio.Reader, bytes returned by Peek are valid only until the next
// call that reads (Peek, Read, Discard); the buffer goes back to the pool
// only inside such a call. Read deadlines set on the conn apply, and closing
// the conn makes a blocked call fail with an error matching net.ErrClosed.
//
// A ConnReader is not safe for concurrent use.
type ConnReader struct {
	conn net.Conn
	raw  *rawread.Reader // nil: fallback path through conn.Read (fills buf)
	dir  *rawread.Reader // the same descriptor, reading straight into dst
	pool *bufpool.Pool

	bufp *[]byte // borrowed buffer, nil while none is held
	buf  []byte  // *bufp
	r, w int     // unread bytes are buf[r:w]

	dst []byte // readInto's target on the raw path

	waitHook func() // test hook: called when about to wait with nothing held
}

// NewConnReader returns a ConnReader over c borrowing buffers from pool,
// which should be shared by all the connections of a listener (nil gives
// the reader a private 16 KiB pool). The reader must see every byte the
// peer sends from now on: do not read from c directly while it is in use.
func NewConnReader(c net.Conn, pool *bufpool.Pool) *ConnReader {
	if pool == nil {
		pool = bufpool.New(bufpool.Size16K)
	}
	r := &ConnReader{conn: c, pool: pool}
	if r.raw = rawread.New(c, r.rawBuf, r.rawEmpty); r.raw != nil {
		r.dir = rawread.New(c, func() []byte { return r.dst }, r.dirEmpty)
	}
	return r
}

// Size returns the size of the borrowed buffers: the most Peek can return.
func (r *ConnReader) Size() int { return r.pool.Size() }

// Buffered returns the number of bytes received and not yet consumed.
func (r *ConnReader) Buffered() int { return r.w - r.r }

// Holding reports whether the reader holds a borrowed buffer.
func (r *ConnReader) Holding() bool { return r.bufp != nil }

// Release gives the buffer back to the pool, dropping unread bytes. Call it
// when the connection is done with, after the last use of a peeked slice.
func (r *ConnReader) Release() { r.releaseBuf() }

// Peek returns the next n bytes without consuming them, reading as needed.
// With fewer than n bytes available it returns them with the error that
// stopped it (bufio.ErrBufferFull when n exceeds Size).
func (r *ConnReader) Peek(n int) ([]byte, error) {
	if n < 0 {
		return nil, bufio.ErrNegativeCount
	}
	if n > r.pool.Size() {
		return r.buf[r.r:r.w], bufio.ErrBufferFull
	}
	if err := r.ensure(n); err != nil {
		return r.buf[r.r:r.w], err
	}
	return r.buf[r.r : r.r+n], nil
}

// Discard skips the next n bytes, reading (into the borrowed buffer) as
// needed, and returns how many it skipped.
func (r *ConnReader) Discard(n int) (int, error) {
	if n < 0 {
		return 0, bufio.ErrNegativeCount
	}
	done := 0
	for {
		k := min(n-done, r.w-r.r)
		r.r += k
		done += k
		if done == n {
			return done, nil
		}
		if err := r.ensure(1); err != nil {
			return done, err
		}
	}
}

// Read reads into p: buffered bytes first; with none, a read of at least
// Size bytes goes straight into p (no buffer borrowed).
func (r *ConnReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.r == r.w {
		if len(p) >= r.pool.Size() {
			r.releaseBuf()
			return r.readInto(p)
		}
		if err := r.ensure(1); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// ensure makes at least n (<= pool size) unread bytes available in buf.
func (r *ConnReader) ensure(n int) error {
	for r.w-r.r < n {
		if r.bufp != nil && len(r.buf)-r.r < n {
			// Slide the unread bytes to the front: no peeked view is alive
			// (the caller is reading again).
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		}
		if err := r.fill(); err != nil {
			if r.r == r.w {
				r.releaseBuf()
			}
			return err
		}
	}
	return nil
}

// fill reads once from the connection, appending to buf (borrowing it
// first if none is held). On the raw path the wait for readability happens
// with no buffer held when nothing is unread.
func (r *ConnReader) fill() error {
	if r.raw != nil {
		n, err := r.raw.Read()
		r.w += n
		return err
	}
	r.borrow()
	for range 100 {
		n, err := r.conn.Read(r.buf[r.w:])
		r.w += n
		if n > 0 {
			return nil // a sticky error comes back on the next Read
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// readInto reads once from the connection straight into p.
func (r *ConnReader) readInto(p []byte) (int, error) {
	if r.dir == nil {
		return r.conn.Read(p)
	}
	r.dst = p
	n, err := r.dir.Read()
	r.dst = nil
	return n, err
}

// rawBuf is where the raw path reads: the free part of buf, borrowed for
// the attempt.
func (r *ConnReader) rawBuf() []byte {
	r.borrow()
	return r.buf[r.w:]
}

// rawEmpty runs when the socket had nothing to read: with nothing unread,
// the buffer goes back before the goroutine waits.
func (r *ConnReader) rawEmpty() {
	if r.r == r.w {
		r.releaseBuf()
		if r.waitHook != nil {
			r.waitHook()
		}
	}
}

// dirEmpty runs when a direct read found nothing to read.
func (r *ConnReader) dirEmpty() {
	if r.waitHook != nil {
		r.waitHook()
	}
}

func (r *ConnReader) borrow() {
	if r.bufp == nil {
		r.bufp = r.pool.Get()
		r.buf = *r.bufp
		r.r, r.w = 0, 0
	}
}

func (r *ConnReader) releaseBuf() {
	if r.bufp != nil {
		r.pool.Put(r.bufp)
		r.bufp, r.buf = nil, nil
	}
	r.r, r.w = 0, 0
}
