//go:build !unix

package mysqlwire

// initRaw leaves the reader on the conn.Read path: waiting for readability
// without a buffer is only implemented for Unix descriptors.
func (r *ConnReader) initRaw() {}
