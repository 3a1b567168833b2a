// Package mysql is Sluice's MySQL / MariaDB front end: it speaks the MySQL
// client/server protocol to clients (HandshakeV10, optional TLS,
// mysql_native_password and caching_sha2_password), routes every command
// with router.Decide, and relays the backends' result packets untouched.
//
// A session is served synchronously: MySQL clients wait for each response
// before the next command, so the session goroutine sends a command to the
// backend connection it chose and relays the response until the server
// says it is complete (OK/ERR/EOF without SERVER_MORE_RESULTS_EXISTS).
// Backend connections come from the cluster's Pools (one pool per user,
// keyed by backend and capability profile): under session pooling a
// session holds one per backend it uses until it leaves; under
// transaction pooling only for a transaction or a single statement.
package mysql

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/frontend/serve"
	"github.com/sluicedb/sluice/internal/bufpool"
	"github.com/sluicedb/sluice/internal/mysqlwire"
	"github.com/sluicedb/sluice/router"
)

// Options configures a Server (one listener).
type Options struct {
	// Name is the listener's name, used in logs and metric labels.
	Name string
	// Route is the endpoint kind.
	Route router.Route
	// Auth is the plugin offered to clients: "caching_sha2_password"
	// (default) or "mysql_native_password". Clients asking for the other
	// one are switched.
	Auth string
	// TLS, when set, is offered to clients (CLIENT_SSL).
	TLS *tls.Config
	// LocalInfile offers CLIENT_LOCAL_FILES to clients (and to the backends
	// of the sessions whose client takes it): LOAD DATA LOCAL INFILE's
	// file request and content are relayed. Off, a LOCAL INFILE request a
	// backend sends anyway is answered with an empty file (the backend's
	// error reaches the client).
	LocalInfile bool
	// RSAKey is the key caching_sha2_password clients without TLS fetch
	// (its public half) to encrypt their password for full
	// authentication. Nil uses an ephemeral 2048-bit key generated once
	// per process (logged).
	RSAKey *rsa.PrivateKey
	// BackendTLS is the TLS mode towards the backends: "disable" (or ""),
	// "prefer" (TLS when the server offers it) or "require"; neither
	// verifies the server's certificate.
	BackendTLS string
	// Cluster is the cluster this listener routes to.
	Cluster *backends.Cluster
	// Classifier classifies statements (dialect router.MySQL).
	Classifier *router.Classifier
	// ReadYourWrites: after a write, a session's reads go to replicas only
	// once they have replayed its last GTID (domain 0 sequence number).
	ReadYourWrites bool
	// FallbackToWriter lets the writer serve reads when no reader is usable.
	FallbackToWriter bool
	// Password returns the password of a configured user.
	Password func(user string) (string, bool)
	// MaxMessageSize bounds a client packet's payload (default 64 MiB).
	MaxMessageSize int
	// AuthFailureDelay delays every failed login answer (default 100ms).
	AuthFailureDelay time.Duration
	// WriterHold is how long a statement that needs the writer waits for
	// one while there is none (during a failover) before it fails
	// (default 10s).
	WriterHold time.Duration
	// ConnectTimeout bounds dialing a backend and waiting for a writer
	// (default 5s).
	ConnectTimeout time.Duration
	// StartupTimeout bounds the handshake and authentication (default 10s).
	StartupTimeout time.Duration
	// Pools holds the cluster's backend connections, shared by its MySQL
	// listeners. Nil makes private pools (session pooling, no limits).
	Pools *Pools
	// ConnIDs hands out the connection ids clients see (and KILL takes).
	// Share one among all MySQL listeners of a process. Nil makes a private
	// one.
	ConnIDs *ConnRegistry
	// Metrics receives the listener's metrics. Required.
	Metrics *admin.Metrics
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
}

var (
	ephemeralOnce sync.Once
	ephemeralKey  *rsa.PrivateKey
	ephemeralErr  error
)

// ephemeralRSAKey returns the process's ephemeral 2048-bit RSA key,
// generating it on first use (shared by every listener without rsa_key, so
// that starting many listeners stays fast).
func ephemeralRSAKey() (*rsa.PrivateKey, error) {
	ephemeralOnce.Do(func() {
		ephemeralKey, ephemeralErr = rsa.GenerateKey(rand.Reader, 2048)
		if ephemeralErr != nil {
			ephemeralErr = fmt.Errorf("generating an RSA key: %w", ephemeralErr)
		}
	})
	return ephemeralKey, ephemeralErr
}

// Server serves the MySQL protocol on one listener.
type Server struct {
	opts Options
	log  *slog.Logger

	statWriter, statReader, rywFallbacks prometheus.Counter

	// pubKeyPEM is the PEM public half of opts.RSAKey (nil without a key),
	// sent to clients that ask for it during full authentication.
	pubKeyPEM []byte

	life serve.Lifecycle

	ownPools bool // opts.Pools was made by NewServer: Shutdown closes it

	// readBufs and writeBufs lend the sessions their client read and write
	// buffers, only while bytes are in flight: an idle client holds none.
	readBufs, writeBufs *bufpool.Pool
}

// NewServer returns a Server for o. It does not listen yet.
func NewServer(o Options) *Server {
	if o.Auth == "" {
		o.Auth = "caching_sha2_password"
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
	if o.WriterHold <= 0 {
		o.WriterHold = 10 * time.Second
	}
	if o.StartupTimeout <= 0 {
		o.StartupTimeout = 10 * time.Second
	}
	if o.ConnIDs == nil {
		o.ConnIDs = NewConnRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ownPools := false
	if o.Pools == nil {
		o.Pools = NewPools(PoolsOptions{Cluster: o.Cluster, Password: o.Password, BackendTLS: o.BackendTLS,
			ConnectTimeout: o.ConnectTimeout, Metrics: o.Metrics, Logger: o.Logger})
		ownPools = true
	}
	s := &Server{
		ownPools:     ownPools,
		readBufs:     bufpool.New(bufpool.Size16K),
		writeBufs:    bufpool.New(bufpool.Size16K),
		opts:         o,
		log:          o.Logger.With("listener", o.Name),
		statWriter:   o.Metrics.Statements.WithLabelValues(o.Name, "writer"),
		statReader:   o.Metrics.Statements.WithLabelValues(o.Name, "reader"),
		rywFallbacks: o.Metrics.ReadYourWritesFallbacks.WithLabelValues(o.Name),
	}
	if o.Auth == "caching_sha2_password" {
		if s.opts.RSAKey == nil {
			key, err := ephemeralRSAKey()
			if err != nil {
				s.log.Error("no RSA key: caching_sha2_password full authentication without TLS will fail", "err", err)
			} else {
				s.opts.RSAKey = key
				s.log.Info("using an ephemeral RSA key for caching_sha2_password without TLS (set rsa_key to keep one across restarts)")
			}
		}
		if s.opts.RSAKey != nil {
			pemKey, err := mysqlwire.MarshalPublicKeyPEM(&s.opts.RSAKey.PublicKey)
			if err != nil {
				s.log.Error("RSA public key", "err", err)
			} else {
				s.pubKeyPEM = pemKey
			}
		}
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
func (s *Server) Serve(ln net.Listener) error { return s.life.Serve(ln) }

// Shutdown stops accepting, lets sessions finish their current command
// until ctx ends, then closes the remaining client connections.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.life.Shutdown(ctx)
	if s.ownPools {
		s.opts.Pools.Close()
	}
	return err
}

// ConnRegistry hands out the connection ids that clients see in the
// handshake (and CONNECTION_ID()), and maps them back to sessions for KILL.
type ConnRegistry struct {
	mu   sync.Mutex
	next uint32
	m    map[uint32]*session
}

// NewConnRegistry returns an empty registry.
func NewConnRegistry() *ConnRegistry {
	return &ConnRegistry{m: make(map[uint32]*session)}
}

func (r *ConnRegistry) register(s *session) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		r.next++
		if r.next == 0 {
			r.next = 1
		}
		if _, taken := r.m[r.next]; !taken {
			r.m[r.next] = s
			return r.next
		}
	}
}

func (r *ConnRegistry) unregister(id uint32) {
	r.mu.Lock()
	delete(r.m, id)
	r.mu.Unlock()
}

// Pinned lists the pinned sessions of every listener sharing the registry,
// in no particular order.
func (r *ConnRegistry) Pinned() []serve.PinnedSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []serve.PinnedSession
	for _, s := range r.m {
		if v := s.pinView.Load(); v != nil {
			out = append(out, *v)
		}
	}
	return out
}

func (r *ConnRegistry) lookup(id uint32) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}
