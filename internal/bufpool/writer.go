package bufpool

import "io"

// Writer buffers output to an io.Writer (typically a client connection) in
// a buffer borrowed from a Pool only while there is unflushed output: Flush
// gives it back, so a connection with nothing pending holds no buffer. It
// is the pooled counterpart of a bufio.Writer of the pool's size: writes
// accumulate until the buffer is full (then it is written out and reused)
// or Flush is called; a write of at least the buffer's size with nothing
// buffered goes straight to the underlying writer.
//
// After a write error the buffered bytes are dropped, the buffer goes back
// to the pool, and every later Write and Flush returns that error.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	w    io.Writer
	pool *Pool
	buf  *[]byte // nil while nothing is buffered
	n    int
	err  error
}

// NewWriter returns a Writer to w that borrows its buffer from pool.
func NewWriter(w io.Writer, pool *Pool) *Writer {
	return &Writer{w: w, pool: pool}
}

// Buffered returns the number of bytes written and not yet flushed.
func (w *Writer) Buffered() int { return w.n }

// Holding reports whether the writer holds a borrowed buffer.
func (w *Writer) Holding() bool { return w.buf != nil }

// Write buffers p, writing out full buffers. It returns len(p) unless an
// error occurred.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	size := w.pool.Size()
	total := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			if len(p) >= size {
				// Nothing buffered and a large write: no copy.
				if _, err := w.w.Write(p); err != nil {
					w.err = err
					return total - len(p), err
				}
				return total, nil
			}
			w.buf = w.pool.Get()
		}
		c := copy((*w.buf)[w.n:], p)
		w.n += c
		p = p[c:]
		if w.n == size && len(p) > 0 {
			if err := w.writeOut(); err != nil {
				return total - len(p), err
			}
			if len(p) >= size {
				w.release() // the rest goes out directly
			}
		}
	}
	return total, nil
}

// Flush writes out what is buffered and gives the buffer back.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.buf == nil {
		return nil
	}
	err := w.writeOut()
	w.release()
	return err
}

// writeOut writes the buffered bytes, keeping the buffer (emptied).
func (w *Writer) writeOut() error {
	if w.n > 0 {
		if _, err := w.w.Write((*w.buf)[:w.n]); err != nil {
			w.err = err
			w.release()
			return err
		}
	}
	w.n = 0
	return nil
}

func (w *Writer) release() {
	if w.buf != nil {
		w.pool.Put(w.buf)
		w.buf = nil
	}
	w.n = 0
}
