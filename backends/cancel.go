package backends

import (
	"context"
	"fmt"
	"net"

	"github.com/sluicedb/sluice/internal/pgwire"
)

// CancelPostgres asks the PostgreSQL server at addr to cancel whatever the
// backend process pid is running, over a new connection, as the protocol
// prescribes. It does not wait for the cancellation to take effect.
func CancelPostgres(ctx context.Context, addr string, pid uint32, secret []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("cancel on %s: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(pgwire.AppendCancelRequest(nil, pid, secret)); err != nil {
		return fmt.Errorf("cancel on %s: %w", addr, err)
	}
	// The server closes the connection after reading the request; waiting for
	// that makes sure the request was delivered before we return.
	var b [1]byte
	c.Read(b[:])
	return nil
}
