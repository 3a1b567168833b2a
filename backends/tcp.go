package backends

import (
	"net"
	"time"
)

// Backend connections must notice a server that vanished without a reset
// (host down, network partition) in seconds, not after the kernel's
// retransmission timeout of about 15 minutes: sessions blocked on such a
// connection would otherwise wait that long, failover or not.
const (
	keepAliveIdle     = 10 * time.Second // idle time before the first keepalive probe
	keepAliveInterval = 2 * time.Second  // between probes
	keepAliveCount    = 3                // unanswered probes before the connection is dead
	// userTimeout bounds how long sent data may stay unacknowledged
	// (Linux TCP_USER_TIMEOUT). A long-running query sends nothing and
	// keeps answering keepalives, so it is not affected.
	userTimeout = 15 * time.Second
)

// backendDialer returns the dialer of backend connections: keepalives as
// above, and on Linux TCP_USER_TIMEOUT.
func backendDialer() *net.Dialer {
	return &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount},
		Control:         setUserTimeout,
	}
}
