package pg

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
	// StartupTimeout bounds a client's TLS negotiation, startup and
	// authentication (default 10s).
	StartupTimeout time.Duration
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

	mu       sync.Mutex
	ln       net.Listener
	sessions map[*session]struct{}
	conns    map[net.Conn]struct{} // connections still in startup
	closing  bool
	wg       sync.WaitGroup
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
	if o.Cancels == nil {
		o.Cancels = NewCancelRegistry()
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
// It returns nil after Shutdown.
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
		if !s.track(c) {
			c.Close()
			return nil
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// handle runs one client connection from startup to the end of its session.
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
	s.untrack(c)
	if err != nil {
		if !errors.Is(err, errHandled) {
			s.log.Debug("startup failed", "remote", c.RemoteAddr(), "err", err)
		}
		return
	}
	if sess == nil {
		return // a CancelRequest, served
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		sess.close()
		return
	}
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	sess.run()
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// Shutdown stops accepting, lets sessions finish their current work until
// ctx ends, then closes the remaining client connections. It waits for every
// goroutine the server started.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	sessions := s.snapshotSessions()
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.shutdownWhenIdle()
	}
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
	sessions = s.snapshotSessions()
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.close()
	}
	<-done
	return ctx.Err()
}

func (s *Server) snapshotSessions() []*session {
	out := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}
