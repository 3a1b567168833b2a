package health

import (
	"context"
	"time"

	"github.com/sluicedb/sluice/topology"
)

// Promoter changes replication roles on the backends of one cluster during
// a failover. Implementations open their own short-lived administrative
// connections (the monitoring connections of the Probers are not used), so
// a Promoter may be called from any goroutine, also concurrently.
//
// Choosing the backend is the caller's job: promote the healthy replica
// with the highest topology.Backend.Received, so that no transaction that
// any surviving replica received (with synchronous / semi-synchronous
// replication: no acknowledged commit) is lost, and so that the other
// replicas can follow it. Fencing the old writer is the caller's job too.
type Promoter interface {
	// Promote makes b the writer. Idempotent: promoting a backend that
	// already accepts writes succeeds.
	// It must not lose transactions the backend has already received
	// (PostgreSQL: pg_promote replays all received WAL; MariaDB: wait,
	// bounded by ctx, until the SQL thread has applied everything the IO
	// thread received (gtid_slave_pos covers Gtid_IO_Pos) before STOP
	// SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=OFF).
	Promote(ctx context.Context, b topology.Backend) error
	// Follow re-points replica r to replicate from writer w. Idempotent.
	// PostgreSQL: read the replica's current primary_conninfo, replace
	// host and port with w's, ALTER SYSTEM SET primary_conninfo, SELECT
	// pg_reload_conf().
	// MariaDB: STOP SLAVE; CHANGE MASTER TO MASTER_HOST=...,
	// MASTER_PORT=..., MASTER_USE_GTID=slave_pos (MariaDB keeps user and
	// password when omitted); START SLAVE.
	Follow(ctx context.Context, r, w topology.Backend) error
}

// Interface checks.
var (
	_ Promoter = (*PGPromoter)(nil)
	_ Promoter = (*MySQLPromoter)(nil)
)

// backendLabel names b in error messages: "name (addr)", or the address
// alone when the name is the address or empty.
func backendLabel(b topology.Backend) string {
	if b.Name == "" || b.Name == b.Addr {
		return b.Addr
	}
	return b.Name + " (" + b.Addr + ")"
}

// defaultPromoteWait is how long a promotion may take when ctx has no
// deadline.
const defaultPromoteWait = 60 * time.Second

// waitSeconds returns the whole seconds left until ctx's deadline (at
// least 1), or def's when ctx has none.
func waitSeconds(ctx context.Context, def time.Duration) int {
	d := def
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return max(1, int(d/time.Second))
}
