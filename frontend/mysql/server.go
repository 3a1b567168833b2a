// Package mysql is Sluice's MySQL / MariaDB front end: it speaks the MySQL
// client/server protocol to clients (HandshakeV10, optional TLS,
// mysql_native_password and caching_sha2_password), routes every command
// with router.Decide, and relays the backends' result packets untouched.
//
// A session is served synchronously: MySQL clients wait for each response
// before the next command, so the session goroutine sends a command to the
// backend connection it chose and relays the response until the server
// says it is complete (OK/ERR/EOF without SERVER_MORE_RESULTS_EXISTS).
// Backend connections are per session, one per backend used, dialed with
// the client's credentials, database and capability profile.
package mysql

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/backends"
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
	// ConnectTimeout bounds dialing a backend and waiting for a writer
	// (default 5s).
	ConnectTimeout time.Duration
	// StartupTimeout bounds the handshake and authentication (default 10s).
	StartupTimeout time.Duration
	// ConnIDs hands out the connection ids clients see (and KILL takes).
	// Share one among all MySQL listeners of a process. Nil makes a private
	// one.
	ConnIDs *ConnRegistry
	// Metrics receives the listener's metrics. Required.
	Metrics *admin.Metrics
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
}

// Server serves the MySQL protocol on one listener.
type Server struct {
	opts Options
	log  *slog.Logger

	statWriter, statReader, rywFallbacks prometheus.Counter

	mu       sync.Mutex
	ln       net.Listener
	sessions map[*session]struct{}
	conns    map[net.Conn]struct{}
	closing  bool
	wg       sync.WaitGroup
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
	if o.StartupTimeout <= 0 {
		o.StartupTimeout = 10 * time.Second
	}
	if o.ConnIDs == nil {
		o.ConnIDs = NewConnRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Server{
		opts:         o,
		log:          o.Logger.With("listener", o.Name),
		sessions:     make(map[*session]struct{}),
		conns:        make(map[net.Conn]struct{}),
		statWriter:   o.Metrics.Statements.WithLabelValues(o.Name, "writer"),
		statReader:   o.Metrics.Statements.WithLabelValues(o.Name, "reader"),
		rywFallbacks: o.Metrics.ReadYourWritesFallbacks.WithLabelValues(o.Name),
	}
}

// Serve accepts connections on ln until ln is closed or Shutdown is called.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("listener %s: accept: %w", s.opts.Name, err)
		}
		delay = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	m := s.opts.Metrics
	m.ClientConnsTotal.WithLabelValues(s.opts.Name).Inc()
	m.ClientConnections.WithLabelValues(s.opts.Name).Inc()
	defer m.ClientConnections.WithLabelValues(s.opts.Name).Dec()
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
	}
	sess, err := s.startup(c)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if err != nil {
		s.log.Debug("startup failed", "remote", c.RemoteAddr(), "err", err)
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		sess.close()
		sess.closeBackends()
		return
	}
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	sess.run()
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// Shutdown stops accepting, lets sessions finish their current command
// until ctx ends, then closes the remaining client connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	for sess := range s.sessions {
		sess.shutdownWhenIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sess := range s.sessions {
		sess.close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
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

func (r *ConnRegistry) lookup(id uint32) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}
