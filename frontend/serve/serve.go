// Package serve is the connection lifecycle shared by Sluice's protocol
// servers: accepting with back-off, tracking connections still in startup
// and sessions after it, client connection metrics, and a graceful shutdown
// that lets sessions finish their current work before closing them.
//
// A protocol server (frontend/pg, frontend/mysql) supplies the Startup hook;
// everything between Accept and the end of a session is handled here once.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sluicedb/sluice/admin"
)

// ErrHandled marks a startup failure that was already answered to the
// client and needs no log line.
var ErrHandled = errors.New("handled")

// Session is a client session after a successful startup.
type Session interface {
	// Run serves the session until the client leaves or it is closed, then
	// releases what the session holds. Run after Close returns promptly.
	Run()
	// ShutdownWhenIdle ends the session at its next idle moment.
	ShutdownWhenIdle()
	// Close ends the session now. It must be safe to call more than once
	// and concurrently with Run.
	Close()
}

// Lifecycle accepts connections for one listener and runs their sessions.
// Set the fields before Serve; do not change them afterwards.
type Lifecycle struct {
	// Name is the listener's name (logs, metrics).
	Name string
	// Metrics receives client connection counts. Required.
	Metrics *admin.Metrics
	// Log receives diagnostics. Required.
	Log *slog.Logger
	// Startup runs the protocol's startup phase on a new connection. It
	// returns a nil Session (and nil error) for a connection that was served
	// without one (a PostgreSQL CancelRequest).
	Startup func(net.Conn) (Session, error)

	mu       sync.Mutex
	ln       net.Listener
	sessions map[Session]struct{}
	conns    map[net.Conn]struct{} // connections still in startup
	closing  bool
	wg       sync.WaitGroup
}

// Serve accepts connections on ln until ln is closed or Shutdown is called.
// It returns nil after Shutdown.
func (l *Lifecycle) Serve(ln net.Listener) error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		ln.Close()
		return nil
	}
	l.ln = ln
	l.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			l.mu.Lock()
			closing := l.closing
			l.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("listener %s: accept: %w", l.Name, err)
		}
		delay = 0
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			c.Close()
			return nil
		}
		if l.conns == nil {
			l.conns = make(map[net.Conn]struct{})
			l.sessions = make(map[Session]struct{})
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			l.handle(c)
		}()
	}
}

// handle runs one client connection's startup, then hands the session to
// a goroutine of its own: the startup's deep stack (authentication, a
// backend dial) is not kept for the whole life of an idle session.
func (l *Lifecycle) handle(c net.Conn) {
	m := l.Metrics
	m.ClientConnsTotal.WithLabelValues(l.Name).Inc()
	m.ClientConnections.WithLabelValues(l.Name).Inc()
	ran := false
	defer func() {
		if !ran {
			c.Close()
			m.ClientConnections.WithLabelValues(l.Name).Dec()
		}
	}()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
	}
	sess, err := l.Startup(c)
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	if err != nil {
		if !errors.Is(err, ErrHandled) {
			l.Log.Debug("startup failed", "remote", c.RemoteAddr(), "err", err)
		}
		return
	}
	if sess == nil {
		return
	}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		sess.Close()
		sess.Run() // returns at once, releasing the session's backends
		return
	}
	l.sessions[sess] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	ran = true
	go func() {
		defer l.wg.Done()
		defer m.ClientConnections.WithLabelValues(l.Name).Dec()
		defer c.Close()
		sess.Run()
		l.mu.Lock()
		delete(l.sessions, sess)
		l.mu.Unlock()
	}()
}

// Shutdown stops accepting, asks sessions to end when idle, waits for them
// until ctx ends, then closes the remaining ones. It waits for every
// goroutine it started, and never holds its lock while calling a session.
func (l *Lifecycle) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	if l.ln != nil {
		l.ln.Close()
	}
	for c := range l.conns {
		c.Close()
	}
	sessions := l.snapshot()
	l.mu.Unlock()
	for _, sess := range sessions {
		sess.ShutdownWhenIdle()
	}
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	sessions = l.snapshot()
	l.mu.Unlock()
	for _, sess := range sessions {
		sess.Close()
	}
	<-done
	return ctx.Err()
}

func (l *Lifecycle) snapshot() []Session {
	out := make([]Session, 0, len(l.sessions))
	for sess := range l.sessions {
		out = append(out, sess)
	}
	return out
}
