//go:build !linux

package backends

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not available.
func setUserTimeout(_, _ string, _ syscall.RawConn) error { return nil }
