// Package rawread reads from a socket without holding a buffer while it
// waits: the wait for readability happens on the runtime's poller through
// syscall.RawConn, and the buffer to read into is asked for only when a
// read is attempted, so a caller can lend it from a pool and take it back
// as soon as the socket turns out to be empty.
//
// The client-facing readers of both protocols (pgwire.ConnReader,
// mysqlwire.ConnReader) use it so that idle client connections hold no
// read buffer.
package rawread

// Reader performs single non-blocking reads on one connection's file
// descriptor. It is not safe for concurrent use.
type Reader struct {
	impl // the platform part: the RawConn and the bound callback
	// buf returns the slice the next read fills; called for every attempt.
	buf func() []byte
	// empty is called when an attempt found nothing to read, just before
	// the goroutine parks on the poller: the place to give buffers back.
	empty func()
	n     int
	err   error
}
