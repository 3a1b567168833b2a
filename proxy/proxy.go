// Package proxy assembles one running Sluice instance from a configuration:
// a routing view and a health monitor per cluster, a protocol server per
// listener, and the admin HTTP server. cmd/sluice and the integration tests
// both start Sluice through it.
package proxy

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/backends/pool"
	"github.com/sluicedb/sluice/config"
	mysqlfe "github.com/sluicedb/sluice/frontend/mysql"
	"github.com/sluicedb/sluice/frontend/pg"
	"github.com/sluicedb/sluice/health"
	"github.com/sluicedb/sluice/internal/mysqlwire"
	"github.com/sluicedb/sluice/router"
	"github.com/sluicedb/sluice/topology"
)

type clusterRuntime struct {
	name    string
	cfg     config.Cluster
	cluster *backends.Cluster
	monitor *health.Monitor
	pgPools *pg.Pools      // the backend connections of a PostgreSQL cluster, shared by its listeners
	myPools *mysqlfe.Pools // the backend connections of a MySQL cluster, shared by its listeners
}

// server is a protocol server of one listener.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

type listenerRuntime struct {
	cfg config.Listener
	ln  net.Listener
	srv server
}

// Proxy is one Sluice instance.
type Proxy struct {
	cfg       *config.Config
	log       *slog.Logger
	metrics   *admin.Metrics
	clusters  map[string]*clusterRuntime
	order     []string
	listeners []*listenerRuntime
	cancels   *pg.CancelRegistry
	connIDs   *mysqlfe.ConnRegistry
	admin     *admin.Server
	httpAddr  net.Addr
	gossip    *gossip // nil when gossip is off

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New builds an instance from a configuration as config.Load or config.Parse
// return it (validated, defaults applied). Nothing listens or
// probes until Start.
func New(cfg *config.Config, log *slog.Logger) (*Proxy, error) {
	if log == nil {
		log = slog.Default()
	}
	p := &Proxy{
		cfg:      cfg,
		log:      log,
		metrics:  admin.NewMetrics(),
		clusters: make(map[string]*clusterRuntime),
		cancels:  pg.NewCancelRegistry(),
		connIDs:  mysqlfe.NewConnRegistry(),
	}
	passwords := make(map[string]string, len(cfg.Users))
	userMax := make(map[string]int)
	for _, u := range cfg.Users {
		passwords[u.Name] = u.Password
		if u.Pool.MaxClientConns > 0 {
			userMax[u.Name] = u.Pool.MaxClientConns
		}
	}
	var fl health.Fleet
	if cfg.Gossip.Enabled() {
		p.gossip = newGossip(cfg.Gossip, log)
		fl = p.gossip
	}
	for name, cc := range cfg.Clusters {
		if cc.Protocol != config.ProtocolPostgres && cc.Protocol != config.ProtocolMySQL {
			return nil, fmt.Errorf("cluster %s: protocol %q is not supported yet", name, cc.Protocol)
		}
		var bs []topology.Backend
		for _, b := range cc.Backends {
			bs = append(bs, topology.Backend{Name: b.Name, Addr: b.Address})
		}
		bal, err := backends.ParseBalance(cc.ReaderBalance)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
		cr := &clusterRuntime{name: name, cfg: cc}
		cr.cluster = backends.NewCluster(backends.ClusterOptions{Name: name, Backends: bs, Balance: bal, MaxReplicaLag: cc.MaxReplicaLag,
			MaxClientConns: cc.Pool.MaxClientConns, UserMaxClientConns: userMax})
		monUser := cc.MonitorUser
		monPass := passwords[monUser]
		tlsMode := cc.BackendTLS
		var promoter health.Promoter
		if cfg.Failover.Promote {
			adminUser := cc.AdminUser
			if cc.Protocol == config.ProtocolMySQL {
				promoter = &health.MySQLPromoter{User: adminUser, Password: passwords[adminUser], TLS: mysqlDriverTLS(tlsMode)}
			} else {
				promoter = &health.PGPromoter{User: adminUser, Password: passwords[adminUser], Database: cc.MonitorDatabase, TLS: tlsMode}
			}
		}
		cr.monitor = health.NewMonitor(health.MonitorOptions{
			Cluster:  name,
			Backends: bs,
			NewProber: func(b topology.Backend) health.Prober {
				if cc.Protocol == config.ProtocolMySQL {
					return &health.MySQLProber{Addr: b.Addr, User: monUser, Password: monPass, Database: cc.MonitorDatabase, TLS: mysqlDriverTLS(tlsMode)}
				}
				return &health.PGProber{Addr: b.Addr, User: monUser, Password: monPass, Database: cc.MonitorDatabase, TLS: tlsMode}
			},
			Interval:  cfg.Health.Interval,
			Timeout:   cfg.Health.Timeout,
			Failures:  cfg.Health.Failures,
			Successes: cfg.Health.Successes,
			Publish:   func(s *topology.Snapshot) { cr.cluster.Publish(s) },
			Metrics:   p.metrics,
			Logger:    log,
			Fleet:     fl,
			Promoter:  promoter,
		})
		p.clusters[name] = cr
		p.order = append(p.order, name)
	}
	slices.Sort(p.order)
	for _, lc := range cfg.Listeners {
		cr := p.clusters[lc.Cluster]
		if cr == nil {
			return nil, fmt.Errorf("listener %s: unknown cluster %q", lc.Name, lc.Cluster)
		}
		route, err := router.ParseRoute(lc.Route)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
		}
		var tlsCfg *tls.Config
		if lc.TLS.Enabled() {
			cert, err := tls.LoadX509KeyPair(lc.TLS.Cert, lc.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("listener %s: tls: %w", lc.Name, err)
			}
			tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		passwordOf := func(u string) (string, bool) {
			pw, ok := passwords[u]
			return pw, ok
		}
		if cr.cfg.Protocol == config.ProtocolMySQL {
			var rsaKey *rsa.PrivateKey
			if lc.RSAKey != "" {
				b, err := os.ReadFile(lc.RSAKey)
				if err == nil {
					rsaKey, err = mysqlwire.ParsePrivateKeyPEM(b)
				}
				if err != nil {
					return nil, fmt.Errorf("listener %s: rsa_key: %w", lc.Name, err)
				}
			}
			if cr.myPools == nil {
				cr.myPools = mysqlfe.NewPools(mysqlfe.PoolsOptions{
					Cluster:        cr.cluster,
					Config:         poolSettings(cfg, cr.name),
					Password:       passwordOf,
					BackendTLS:     cr.cfg.BackendTLS,
					ConnectTimeout: cfg.Server.ConnectTimeout,
					Metrics:        p.metrics,
					Logger:         log,
				})
			}
			srv := mysqlfe.NewServer(mysqlfe.Options{
				Name:             lc.Name,
				Route:            route,
				Auth:             lc.Auth,
				TLS:              tlsCfg,
				Cluster:          cr.cluster,
				Classifier:       router.NewClassifier(router.Options{Dialect: router.MySQL, WriterFunctions: cr.cfg.WriterFunctions}),
				ReadYourWrites:   cr.cfg.Consistency != "eventual",
				FallbackToWriter: cr.cfg.ReaderFallback != "error",
				Password:         passwordOf,
				LocalInfile:      lc.LocalInfile,
				RSAKey:           rsaKey,
				BackendTLS:       cr.cfg.BackendTLS,
				MaxMessageSize:   int(cfg.Server.MaxMessageSize),
				AuthFailureDelay: cfg.Server.AuthFailureDelay,
				ConnectTimeout:   cfg.Server.ConnectTimeout,
				StartupTimeout:   cfg.Server.StartupTimeout,
				WriterHold:       cfg.Failover.Hold,
				Pools:            cr.myPools,
				ConnIDs:          p.connIDs,
				Metrics:          p.metrics,
				Logger:           log,
			})
			p.listeners = append(p.listeners, &listenerRuntime{cfg: lc, srv: srv})
			continue
		}
		if cr.pgPools == nil {
			cr.pgPools = pg.NewPools(pg.PoolsOptions{
				Cluster: cr.cluster,
				Config:  poolSettings(cfg, cr.name),
				Password: func(u string) (string, bool) {
					pw, ok := passwords[u]
					return pw, ok
				},
				BackendTLS:     cr.cfg.BackendTLS,
				ConnectTimeout: cfg.Server.ConnectTimeout,
				Metrics:        p.metrics,
				Logger:         log,
			})
		}
		srv := pg.NewServer(pg.Options{
			Name:             lc.Name,
			Route:            route,
			Auth:             lc.Auth,
			TLS:              tlsCfg,
			Cluster:          cr.cluster,
			Classifier:       router.NewClassifier(router.Options{Dialect: router.Postgres, WriterFunctions: cr.cfg.WriterFunctions}),
			ReadYourWrites:   cr.cfg.Consistency != "eventual",
			FallbackToWriter: cr.cfg.ReaderFallback != "error",
			Password: func(u string) (string, bool) {
				pw, ok := passwords[u]
				return pw, ok
			},
			BackendTLS:       cr.cfg.BackendTLS,
			MaxMessageSize:   int(cfg.Server.MaxMessageSize),
			AuthFailureDelay: cfg.Server.AuthFailureDelay,
			ConnectTimeout:   cfg.Server.ConnectTimeout,
			StartupTimeout:   cfg.Server.StartupTimeout,
			WriterHold:       cfg.Failover.Hold,
			Pools:            cr.pgPools,
			Cancels:          p.cancels,
			Metrics:          p.metrics,
			Logger:           log,
		})
		p.listeners = append(p.listeners, &listenerRuntime{cfg: lc, srv: srv})
	}
	p.metrics.Registry.MustRegister(admin.NewPoolCollector(p.poolStats))
	return p, nil
}

// poolSettings returns the pooling of each user in cluster, from the
// configuration (config.PoolFor).
func poolSettings(cfg *config.Config, cluster string) func(user string) pool.Settings {
	return func(user string) pool.Settings {
		pc := cfg.PoolFor(cluster, user)
		return pool.Settings{
			Transaction:     pc.Mode == config.PoolTransaction,
			MaxServerConns:  pc.MaxServerConns,
			MinIdle:         pc.MinIdle,
			IdleTimeout:     pc.IdleTimeout,
			MaxLifetime:     pc.MaxLifetime,
			CheckoutTimeout: pc.CheckoutTimeout,
		}
	}
}

// poolStats returns the pools of every cluster, by cluster name.
func (p *Proxy) poolStats() map[string][]pool.Stats {
	out := make(map[string][]pool.Stats)
	for name, cr := range p.clusters {
		if cr.pgPools != nil {
			out[name] = cr.pgPools.Stats()
		}
		if cr.myPools != nil {
			out[name] = cr.myPools.Stats()
		}
	}
	return out
}

// Start probes every cluster once (so the first clients find a topology),
// binds every listener and the HTTP server, and starts serving. On error
// nothing is left running.
func (p *Proxy) Start(ctx context.Context) error {
	if p.gossip != nil {
		if err := p.gossip.start(); err != nil {
			return fmt.Errorf("gossip: %w", err)
		}
	}
	for _, name := range p.order {
		cr := p.clusters[name]
		s := cr.monitor.ProbeOnce(ctx)
		switch _, ok := s.WriterBackend(); {
		case ok:
		case s.Held != "":
			p.log.Info("writes held at start until the fleet forms", "cluster", name, "why", s.Held)
		default:
			p.log.Warn("no writer found at start; clients will wait for one", "cluster", name)
		}
	}
	for _, l := range p.listeners {
		ln, err := net.Listen("tcp", l.cfg.Address)
		if err != nil {
			p.closeListeners()
			p.stopBackground()
			return fmt.Errorf("listener %s: %w", l.cfg.Name, err)
		}
		l.ln = ln
	}
	if p.cfg.HTTP.Address != "" {
		p.admin = admin.NewServer(admin.ServerOptions{
			Address: p.cfg.HTTP.Address,
			Metrics: p.metrics,
			Status:  func() any { return p.Status() },
			Healthy: p.healthy,
			Logger:  p.log,
		})
		addr, err := p.admin.Start()
		if err != nil {
			p.closeListeners()
			p.stopBackground()
			return fmt.Errorf("http: %w", err)
		}
		p.httpAddr = addr
	}
	runCtx, stop := context.WithCancel(context.Background())
	p.stop = stop
	if p.gossip != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.gossip.run(runCtx)
		}()
	}
	for _, name := range p.order {
		cr := p.clusters[name]
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			cr.monitor.Run(runCtx)
		}()
	}
	for _, l := range p.listeners {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := l.srv.Serve(l.ln); err != nil {
				p.log.Error("listener stopped", "listener", l.cfg.Name, "err", err)
			}
		}()
		p.log.Info("listening", "listener", l.cfg.Name, "address", l.ln.Addr().String(), "route", l.cfg.Route, "cluster", l.cfg.Cluster)
	}
	return nil
}

// stopBackground stops gossip and closes the probers' connections: after a
// failed Start, and at the end of Shutdown.
func (p *Proxy) stopBackground() {
	if p.gossip != nil {
		p.gossip.stop()
	}
	for _, cr := range p.clusters {
		cr.monitor.Close()
		if cr.pgPools != nil {
			cr.pgPools.Close()
		}
		if cr.myPools != nil {
			cr.myPools.Close()
		}
	}
}

// FleetAddr returns the address other instances can join (gossip.join),
// or "" when gossip is off or not started.
func (p *Proxy) FleetAddr() string {
	if p.gossip == nil {
		return ""
	}
	return p.gossip.Addr()
}

func (p *Proxy) closeListeners() {
	for _, l := range p.listeners {
		if l.ln != nil {
			l.ln.Close()
			l.ln = nil
		}
	}
}

// healthy reports an error when some cluster has no usable writer.
func (p *Proxy) healthy() error {
	var errs []error
	for _, name := range p.order {
		if _, ok := p.clusters[name].cluster.Snapshot().WriterBackend(); !ok {
			errs = append(errs, fmt.Errorf("cluster %s has no healthy writer", name))
		}
	}
	return errors.Join(errs...)
}

// Addr returns the bound address of the named listener (nil before Start).
func (p *Proxy) Addr(listener string) net.Addr {
	for _, l := range p.listeners {
		if l.cfg.Name == listener && l.ln != nil {
			return l.ln.Addr()
		}
	}
	return nil
}

// HTTPAddr returns the admin server's bound address (nil if disabled).
func (p *Proxy) HTTPAddr() net.Addr { return p.httpAddr }

// Metrics returns the instance's metrics.
func (p *Proxy) Metrics() *admin.Metrics { return p.metrics }

// Cluster returns the routing view of the named cluster.
func (p *Proxy) Cluster(name string) *backends.Cluster {
	if cr := p.clusters[name]; cr != nil {
		return cr.cluster
	}
	return nil
}

// Shutdown stops accepting clients, drains sessions until ctx ends (then
// closes them), and stops the monitors and the HTTP server.
func (p *Proxy) Shutdown(ctx context.Context) error {
	var (
		errs []error
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	for _, l := range p.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("listener %s: %w", l.cfg.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if p.stop != nil {
		p.stop()
	}
	if p.admin != nil {
		hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.admin.Shutdown(hctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	p.wg.Wait()
	p.stopBackground()
	return errors.Join(errs...)
}

// mysqlDriverTLS maps a backend_tls mode to go-sql-driver/mysql's tls
// parameter (for the MySQL probes and promoter): require encrypts without
// verifying ("skip-verify"), prefer uses TLS when offered ("preferred").
func mysqlDriverTLS(mode string) string {
	switch mode {
	case config.BackendTLSRequire:
		return "skip-verify"
	case config.BackendTLSPrefer:
		return "preferred"
	}
	return ""
}
