//go:build !unix

package rawread

import "net"

type impl struct{}

// New returns nil: waiting for readability without a buffer is only
// implemented for Unix descriptors; read with c.Read.
func New(c net.Conn, buf func() []byte, empty func()) *Reader { return nil }

// Read is never called (New returns nil).
func (r *Reader) Read() (int, error) { panic("rawread: not supported on this platform") }
