package pg

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/frontend/serve"
	"github.com/sluicedb/sluice/internal/bufpool"
	"github.com/sluicedb/sluice/router"
)

// Options configures a Server (one listener). Zero durations take the
// defaults named on each field.
type Options struct {
	// Name is the listener's name, used in logs and metric labels.
	Name string
	// Route is the endpoint kind: auto read/write split, writer only, or
	// reader only.
	Route router.Route
	// Auth is the client authentication method: "scram-sha-256" (default),
	// "md5", or "password" (cleartext, refused unless the client is on TLS).
	Auth string
	// TLS, when set, is offered to clients that send SSLRequest or start
	// with a TLS handshake (direct TLS). Nil answers 'N' to SSLRequest.
	TLS *tls.Config
	// Cluster is the cluster this listener routes to.
	Cluster *backends.Cluster
	// Classifier classifies statements for routing.
	Classifier *router.Classifier
	// ReadYourWrites sends a session's reads to a replica only once the
	// replica has replayed the session's last committed write (consistency:
	// session). Default false here; config defaults it to true.
	ReadYourWrites bool
	// FallbackToWriter lets the writer serve reads when no reader is
	// usable; otherwise such reads fail with SQLSTATE 08006.
	FallbackToWriter bool
	// Password returns the password of a configured user; it is used both
	// to authenticate the client and towards the backends.
	Password func(user string) (string, bool)
	// BackendTLS is the TLS mode towards the backends: "disable" (default),
	// "prefer" or "require".
	BackendTLS string
	// MaxMessageSize bounds a client message's body (default 64 MiB).
	MaxMessageSize int
	// AuthFailureDelay delays every failed login answer (default 100ms), so
	// that a wrong password and an unknown database look alike.
	AuthFailureDelay time.Duration
	// ConnectTimeout bounds dialing a backend and waiting for a writer
	// (default 5s).
	ConnectTimeout time.Duration
	// WriterHold is how long a statement that needs the writer waits for
	// one while there is none (during a failover) before it fails
	// (default 10s).
	WriterHold time.Duration
	// StartupTimeout bounds a client's TLS negotiation, startup and
	// authentication (default 10s).
	StartupTimeout time.Duration
	// Pools are the cluster's backend connection pools. Share one among
	// all PostgreSQL listeners of a cluster so that they share its
	// connections. Nil makes a private one with session pooling and no
	// limits, closed by Shutdown.
	Pools *Pools
	// Cancels maps the keys handed to clients to sessions. Share one
	// registry among all PostgreSQL listeners of a process so that a
	// CancelRequest may arrive on any of them. Nil makes a private one.
	Cancels *CancelRegistry
	// Metrics receives the listener's metrics. Required.
	Metrics *admin.Metrics
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
}

// Server serves the PostgreSQL protocol on one listener.
type Server struct {
	opts  Options
	log   *slog.Logger
	verif verifierCache

	statWriter, statReader, rywFallbacks prometheus.Counter

	life         serve.Lifecycle
	privatePools bool
	bufs         *bufpool.Pool // client read and write buffers, borrowed while in use
}

// NewServer returns a Server for o. It does not listen yet.
func NewServer(o Options) *Server {
	if o.Auth == "" {
		o.Auth = "scram-sha-256"
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 64 << 20
	}
	if o.AuthFailureDelay <= 0 {
		o.AuthFailureDelay = 100 * time.Millisecond
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.StartupTimeout <= 0 {
		o.StartupTimeout = 10 * time.Second
	}
	if o.WriterHold <= 0 {
		o.WriterHold = 10 * time.Second
	}
	if o.Cancels == nil {
		o.Cancels = NewCancelRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	private := o.Pools == nil
	if private {
		o.Pools = NewPools(PoolsOptions{Cluster: o.Cluster, Password: o.Password, BackendTLS: o.BackendTLS,
			ConnectTimeout: o.ConnectTimeout, Metrics: o.Metrics, Logger: o.Logger})
	}
	s := &Server{
		privatePools: private,
		bufs:         bufpool.New(bufpool.Size16K),
		opts:         o,
		log:          o.Logger.With("listener", o.Name),
		statWriter:   o.Metrics.Statements.WithLabelValues(o.Name, "writer"),
		statReader:   o.Metrics.Statements.WithLabelValues(o.Name, "reader"),
		rywFallbacks: o.Metrics.ReadYourWritesFallbacks.WithLabelValues(o.Name),
	}
	s.life = serve.Lifecycle{Name: o.Name, Metrics: o.Metrics, Log: s.log, Startup: s.startSession}
	return s
}

// startSession adapts startup to serve.Lifecycle.
func (s *Server) startSession(c net.Conn) (serve.Session, error) {
	sess, err := s.startup(c)
	if sess == nil {
		return nil, err // a nil *session must not become a non-nil interface
	}
	return sess, err
}

// Serve accepts connections on ln until ln is closed or Shutdown is called.
// It returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.life.Serve(ln) }

// Shutdown stops accepting, lets sessions finish their current work until
// ctx ends, then closes the remaining client connections. It waits for every
// goroutine the server started.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.life.Shutdown(ctx)
	if s.privatePools {
		s.opts.Pools.Close()
	}
	return err
}
