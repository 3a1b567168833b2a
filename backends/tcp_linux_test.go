package backends

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBackendDialerSetsUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := backendDialer().Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with the backend dialer: %v", err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got, keep int
	var gerr error
	rc.Control(func(fd uintptr) {
		got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		if gerr == nil {
			keep, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		}
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	if got != int(userTimeout.Milliseconds()) || keep != 1 {
		t.Fatalf("TCP_USER_TIMEOUT = %d ms, SO_KEEPALIVE = %d; want %d ms and 1", got, keep, userTimeout.Milliseconds())
	}
}
