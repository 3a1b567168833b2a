package serve

import (
	"log/slog"
	"time"

	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/backends/pool"
)

// PoolsOptions configures the backend connection pools of one cluster, as
// both front ends (frontend/pg and frontend/mysql) keep them.
type PoolsOptions struct {
	// Cluster is the cluster whose backends the pools connect to. Required.
	Cluster *backends.Cluster
	// Config returns the pooling of a user. Nil means session pooling
	// without limits for everyone.
	Config func(user string) pool.Settings
	// Password returns a configured user's password, used towards the
	// backends. Required.
	Password func(user string) (string, bool)
	// BackendTLS is the TLS mode towards the backends: "disable" (default),
	// "prefer" or "require".
	BackendTLS string
	// ConnectTimeout bounds dialing and authenticating one backend
	// connection (default 5s).
	ConnectTimeout time.Duration
	// Metrics receives dial and connection metrics. Required.
	Metrics *admin.Metrics
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
}
