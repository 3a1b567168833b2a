package pgwire

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/sluicedb/sluice/internal/bufpool"
	"github.com/sluicedb/sluice/internal/rawread"
)

// bigRetainLimit is the capacity above which a ConnReader does not keep its
// scratch buffer for large messages once the message has been returned.
const bigRetainLimit = 1 << 20

// ConnReader reads typed messages from a net.Conn with the same contract as
// Reader, but without owning a read buffer while the peer is silent: it
// borrows a buffer from a shared bufpool.Pool when bytes arrive and gives it
// back as soon as everything received has been consumed, so an idle
// connection holds no buffer at all.
//
// For connections that implement syscall.Conn (*net.TCPConn, *net.UnixConn)
// ConnReader waits for readability through syscall.RawConn.Read, with no
// buffer; it borrows one only when the socket has data. Such connections are
// read through their file descriptor: a type that embeds a *net.TCPConn and
// overrides Read (to count or transform bytes) is bypassed, so wrap such
// connections in a type that does not expose SyscallConn. Other connections
// (*tls.Conn, net.Pipe, ...) are read with conn.Read into a borrowed buffer,
// which stays borrowed while Read blocks: the idle saving then only applies
// to whatever the connection itself buffers.
//
// A message being received keeps the buffer until it is complete; a message
// returned by Next stays valid until the next call to Next, which is when an
// exhausted buffer goes back to the pool. Read deadlines set on the conn
// apply (Next then fails with an error for which errors.Is(err,
// os.ErrDeadlineExceeded) holds, and may be called again to resume, partial
// messages included); closing the conn from another goroutine makes a
// blocked Next fail with an error matching net.ErrClosed.
//
// A ConnReader is not safe for concurrent use.
type ConnReader struct {
	conn net.Conn
	raw  *rawread.Reader // nil: fallback path through conn.Read
	pool *bufpool.Pool
	max  int

	bufp *[]byte // borrowed buffer, nil while none is held
	buf  []byte  // *bufp
	r, w int     // unread bytes are buf[r:w]

	big      []byte // scratch for messages larger than the pool's buffers
	pendHave int    // bytes of an unfinished large message already in big
	pendLen  int    // total size of that message; 0 when none is pending

	waitHook func() // test hook: called when about to wait with nothing held
}

// NewConnReader returns a ConnReader over c that borrows its buffers from
// pool and rejects messages whose body exceeds max bytes
// (DefaultMaxMessageSize when max <= 0). Messages up to pool.Size() bytes,
// header included, are returned as views into a pooled buffer; larger ones
// are assembled in a scratch slice. pool should be shared by all the
// connections of a listener; nil gives the reader a private 16 KiB pool
// (which works, but shares nothing).
//
// The reader must see every byte the peer sends after the point where it is
// created: do not read from c directly while the ConnReader is in use.
func NewConnReader(c net.Conn, pool *bufpool.Pool, max int) *ConnReader {
	if pool == nil {
		pool = bufpool.New(bufpool.Size16K)
	}
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	r := &ConnReader{conn: c, pool: pool, max: max}
	r.raw = rawread.New(c, r.rawBuf, r.rawEmpty)
	return r
}

// SetMaxMessageSize changes the body size limit (DefaultMaxMessageSize when
// max <= 0).
func (r *ConnReader) SetMaxMessageSize(max int) {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	r.max = max
}

// Buffered reports how many bytes have been received but not yet returned by
// Next, i.e. can be consumed without touching the socket. When it is zero the
// peer has nothing more in flight and pending output should be flushed.
func (r *ConnReader) Buffered() int { return r.w - r.r + r.pendHave }

// Release gives any held buffer back to the pool and drops the large-message
// scratch. Call it when the session ends (after the last use of the last
// message); the reader stays usable, but unread buffered bytes are lost.
func (r *ConnReader) Release() {
	r.releaseBuf()
	r.big = nil
	r.pendHave, r.pendLen = 0, 0
}

// Next returns the next message. Its Raw field aliases a buffer owned by the
// reader and is valid only until the next call to Next. After an error the
// reader keeps the bytes received so far: when the error is transient (a
// read deadline) Next may be called again to resume.
func (r *ConnReader) Next() (Message, error) {
	if r.pendLen > 0 {
		return r.finishBig()
	}
	if r.r == r.w {
		// The previous message is dead: nothing to keep while we wait.
		r.releaseBuf()
	}
	if err := r.ensure(HeaderLen); err != nil {
		return Message{}, err
	}
	hdr := r.buf[r.r : r.r+HeaderLen]
	typ := hdr[0]
	n := int(binary.BigEndian.Uint32(hdr[1:5]))
	if n < 4 {
		return Message{}, fmt.Errorf("%w: type %q length %d", ErrBadLength, typ, n)
	}
	if n-4 > r.max {
		return Message{}, fmt.Errorf("%w: type %q announces %d bytes, limit %d", ErrMessageTooLarge, typ, n-4, r.max)
	}
	total := n + 1
	if total <= len(r.buf) {
		if err := r.ensure(total); err != nil {
			return Message{}, err
		}
		raw := r.buf[r.r : r.r+total : r.r+total]
		r.r += total
		return Message{Type: typ, Raw: raw}, nil
	}
	// Larger than a pooled buffer: move what we have into the scratch slice,
	// give the buffer back and read the rest straight into the scratch.
	if cap(r.big) < total {
		r.big = make([]byte, total)
	}
	r.pendLen = total
	r.pendHave = copy(r.big[:total], r.buf[r.r:r.w])
	r.r += r.pendHave
	r.releaseBuf()
	return r.finishBig()
}

// finishBig completes the pending large message.
func (r *ConnReader) finishBig() (Message, error) {
	raw := r.big[:r.pendLen:r.pendLen]
	for r.pendHave < len(raw) {
		n, err := r.conn.Read(raw[r.pendHave:])
		r.pendHave += n
		if r.pendHave == len(raw) {
			break
		}
		if err != nil {
			return Message{}, unexpected(err)
		}
	}
	r.pendHave, r.pendLen = 0, 0
	if cap(r.big) > bigRetainLimit {
		r.big = nil // the caller's view keeps it alive until it is done
	}
	return Message{Type: raw[0], Raw: raw}, nil
}

// ensure makes at least n (<= pool size) unread bytes available in buf.
func (r *ConnReader) ensure(n int) error {
	for r.w-r.r < n {
		if r.bufp != nil && len(r.buf)-r.r < n {
			// Not enough room after the unread bytes: slide them to the
			// front. Only done inside Next, when no returned view is alive.
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		}
		if err := r.fill(); err != nil {
			if err == io.EOF && r.w > r.r {
				err = io.ErrUnexpectedEOF
			}
			if r.r == r.w {
				r.releaseBuf()
			}
			return err
		}
	}
	return nil
}

// rawBuf is where the raw path reads: the free part of buf, borrowed for
// the attempt.
func (r *ConnReader) rawBuf() []byte {
	r.borrow()
	return r.buf[r.w:]
}

// rawEmpty runs when the socket had nothing to read: with nothing unread,
// every buffer goes back before the goroutine waits.
func (r *ConnReader) rawEmpty() {
	if r.r != r.w {
		return
	}
	r.releaseBuf()
	if r.pendLen == 0 {
		r.big = nil
	}
	if r.waitHook != nil {
		r.waitHook()
	}
}

// fill reads once from the connection, appending to buf (borrowing it first
// if none is held). On the raw path the wait for readability happens with no
// buffer held when nothing is buffered.
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
			return nil // a sticky error will come back on the next Read
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
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
