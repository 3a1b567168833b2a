package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the admin HTTP server. Scrapes and status requests are small;
// these only keep a slow or stuck client from holding a connection forever.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	gatherTimeout     = 20 * time.Second // below writeTimeout so the 503 can still be written
	maxHeaderBytes    = 64 << 10
	maxScrapesAtOnce  = 8
)

// StatusFunc returns a JSON-serialisable value describing the instance (its
// listeners, clusters, topology snapshots, ...). It is called once per
// /status request, possibly concurrently, and must not block for long.
type StatusFunc func() any

// ServerOptions configure a Server.
type ServerOptions struct {
	// Address is the TCP address to listen on, e.g. "127.0.0.1:9187", or
	// "127.0.0.1:0" for any free port (Start returns the one chosen). It
	// must not be empty.
	Address string
	// Metrics is served on GET /metrics. When nil, /metrics answers 404.
	Metrics *Metrics
	// Status is served as indented JSON on GET /status. When nil, /status
	// answers 404.
	Status StatusFunc
	// Healthy reports whether the instance is healthy: GET /healthz answers
	// 200 "ok" when it returns nil and 503 with the error's text otherwise.
	// When nil, the instance is always healthy. Called once per request,
	// possibly concurrently.
	Healthy func() error
	// Logger receives the server's own messages (listening, serve errors,
	// metric gathering errors). When nil, nothing is logged.
	Logger *slog.Logger
}

// Server is the admin HTTP server serving /metrics, /status and /healthz.
// Create it with NewServer, run it with Start and stop it with Shutdown; the
// serving goroutine belongs to the Server and is gone when Shutdown
// returns. A Server is started at most once.
type Server struct {
	address string
	log     *slog.Logger
	handler http.Handler

	mu      sync.Mutex
	srv     *http.Server  // set by Start
	done    chan struct{} // closed when the serving goroutine has returned
	stopped bool          // Shutdown was called
}

// NewServer builds a Server from o. It does not listen yet; see Start.
func NewServer(o ServerOptions) *Server {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{address: o.Address, log: log}
	s.handler = s.routes(o)
	return s
}

// Handler returns the HTTP handler with the admin routes, for embedding in
// another server or for tests. It is the handler Start serves.
func (s *Server) Handler() http.Handler { return s.handler }

// routes builds the request multiplexer. Paths other than the three routes
// answer 404; a known path with a method other than GET or HEAD answers 405.
func (s *Server) routes(o ServerOptions) http.Handler {
	mux := http.NewServeMux()
	if o.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics.Registry, promhttp.HandlerOpts{
			ErrorLog:            promLogger{s.log},
			ErrorHandling:       promhttp.ContinueOnError,
			MaxRequestsInFlight: maxScrapesAtOnce,
			Timeout:             gatherTimeout,
		}))
	}
	if o.Status != nil {
		mux.HandleFunc("GET /status", s.statusHandler(o.Status))
	}
	mux.HandleFunc("GET /healthz", healthHandler(o.Healthy))
	return mux
}

// statusHandler serves the JSON encoding of status(). The value is encoded
// in full before anything is written, so an encoding failure is a clean 500
// rather than a truncated document.
func (s *Server) statusHandler(status StatusFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		body, err := json.MarshalIndent(status(), "", "  ")
		if err != nil {
			s.log.Error("admin: cannot encode /status", "error", err)
			noCache(w)
			http.Error(w, "cannot encode status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		body = append(body, '\n')
		noCache(w)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
}

// healthHandler serves "ok\n" with 200 when healthy is nil or returns nil,
// and the error's text with 503 otherwise.
func healthHandler(healthy func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		noCache(w)
		var err error
		if healthy != nil {
			err = healthy()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	}
}

// noCache marks a response as never to be cached: status and health describe
// the present moment only.
func noCache(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}

// promLogger adapts slog to promhttp's Println-style logger.
type promLogger struct{ log *slog.Logger }

// Println logs a metrics gathering or serving error.
func (l promLogger) Println(v ...any) {
	l.log.Error("admin: serving /metrics: " + fmt.Sprint(v...))
}

// Start listens on the configured address and serves in a goroutine owned
// by the Server. It returns the bound address, which tells the port chosen
// when the address ends in ":0". Start fails if the address is empty or
// cannot be bound, or if the Server was already started or shut down.
func (s *Server) Start() (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return nil, errors.New("admin: server already shut down")
	case s.srv != nil:
		return nil, errors.New("admin: server already started")
	case s.address == "":
		return nil, errors.New("admin: no listen address configured")
	}
	ln, err := net.Listen("tcp", s.address)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w", s.address, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	s.srv, s.done = srv, done
	addr := ln.Addr()
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin: HTTP server stopped", "address", addr.String(), "error", err)
		}
	}()
	s.log.Info("admin: HTTP server listening", "address", addr.String())
	return addr, nil
}

// Shutdown stops the Server gracefully: it closes the listener, lets
// in-flight requests finish until ctx is done, then closes whatever
// connections remain, and returns once the serving goroutine has exited.
// It returns ctx's error if requests were still running when ctx ended.
// Shutdown on a Server never started returns nil and prevents a later
// Start; calling it more than once is harmless.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		// The deadline passed with requests still running: cut them off.
		_ = srv.Close()
	}
	<-done
	return err
}
