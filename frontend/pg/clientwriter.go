package pg

import (
	"net"

	"github.com/sluicedb/sluice/internal/bufpool"
)

// clientWriter buffers output to a client in a buffer borrowed from a pool
// only while there is unflushed output, so that an idle client holds none.
// It is not safe for concurrent use (the session serialises it with cwMu).
type clientWriter struct {
	conn net.Conn
	pool *bufpool.Pool
	buf  *[]byte // nil while nothing is buffered
	n    int
}

// write buffers b, and writes everything out when flush is set or the
// buffer is full. A message larger than the buffer is written directly.
func (w *clientWriter) write(b []byte, flush bool) error {
	if w.buf == nil && len(b) > 0 {
		if len(b) >= w.pool.Size() {
			_, err := w.conn.Write(b)
			return err
		}
		w.buf = w.pool.Get()
	}
	for len(b) > 0 {
		buf := *w.buf
		c := copy(buf[w.n:], b)
		w.n += c
		b = b[c:]
		if len(b) == 0 {
			break
		}
		if err := w.flush(); err != nil {
			return err
		}
		if len(b) >= w.pool.Size() {
			_, err := w.conn.Write(b)
			return err
		}
		w.buf = w.pool.Get()
	}
	if flush {
		return w.flush()
	}
	return nil
}

// flush writes out what is buffered and gives the buffer back.
func (w *clientWriter) flush() error {
	if w.buf == nil {
		return nil
	}
	var err error
	if w.n > 0 {
		_, err = w.conn.Write((*w.buf)[:w.n])
	}
	w.n = 0
	w.pool.Put(w.buf)
	w.buf = nil
	return err
}
