package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/health"
	"github.com/sluicedb/sluice/health/fleet"
)

// gossip is the instance's fleet membership as the monitors see it
// (health.Fleet). The memberlist node starts with the proxy (Start), after
// the monitors are built, so calls before that see a fleet of one.
type gossip struct {
	cfg  config.Gossip
	name string
	log  *slog.Logger
	f    atomic.Pointer[fleet.Fleet]
}

var _ health.Fleet = (*gossip)(nil)

func newGossip(cfg config.Gossip, log *slog.Logger) *gossip {
	return &gossip{cfg: cfg, name: memberName(cfg), log: log}
}

// memberName is gossip.name, else the advertised address, else the bind
// address when it names one host and port, else the host name (with the
// port): every instance's default must differ from the others'.
func memberName(cfg config.Gossip) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	if cfg.Advertise != "" {
		return cfg.Advertise
	}
	host, port, err := net.SplitHostPort(cfg.Bind)
	if err == nil && port != "0" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			return cfg.Bind
		}
	}
	h, herr := os.Hostname()
	if herr != nil || h == "" {
		return cfg.Bind
	}
	if err == nil && port != "0" {
		return h + ":" + port
	}
	return h
}

// Name implements health.Fleet.
func (g *gossip) Name() string { return g.name }

// FleetSize implements health.Fleet.
func (g *gossip) FleetSize() int { return g.cfg.FleetSize }

// Publish implements health.Fleet.
func (g *gossip) Publish(cluster string, v fleet.Verdict) error {
	if f := g.f.Load(); f != nil {
		return f.Publish(cluster, v)
	}
	return nil
}

// Members implements health.Fleet.
func (g *gossip) Members(cluster string) map[string]fleet.Verdict {
	if f := g.f.Load(); f != nil {
		return f.Members(cluster)
	}
	return nil
}

// start binds the memberlist node and joins the configured peers (run
// keeps trying those it could not reach).
func (g *gossip) start() error {
	fc := fleet.DefaultConfig()
	fc.Name = g.name
	fc.FleetSize = g.cfg.FleetSize
	fc.Logger = g.log
	fc.UpdateTimeout = 200 * time.Millisecond // a probe round must not stall on gossip
	host, port, err := splitHostPort(g.cfg.Bind)
	if err != nil {
		return fmt.Errorf("gossip.bind: %w", err)
	}
	fc.BindAddr, fc.BindPort = host, port
	if fc.BindAddr == "" {
		fc.BindAddr = "0.0.0.0"
	}
	if g.cfg.Advertise != "" {
		if fc.AdvertiseAddr, fc.AdvertisePort, err = splitHostPort(g.cfg.Advertise); err != nil {
			return fmt.Errorf("gossip.advertise: %w", err)
		}
	}
	if fc.SecretKey, err = g.cfg.Key(); err != nil {
		return fmt.Errorf("gossip.secret_key: %w", err)
	}
	f, err := fleet.New(fc)
	if err != nil {
		return err
	}
	g.f.Store(f)
	if len(g.cfg.Join) > 0 {
		if _, err := f.Join(g.cfg.Join); err != nil {
			g.log.Warn("gossip: no peer reached yet; retrying in the background", "err", err)
		}
	}
	return nil
}

// Addr returns the address other members can join, once started.
func (g *gossip) Addr() string {
	if f := g.f.Load(); f != nil {
		return f.Addr()
	}
	return ""
}

// run keeps the instance joined: while it sees fewer members than the
// fleet size it contacts the configured peers again (a restarted peer, or
// one on the far side of a healed partition, is not found otherwise).
func (g *gossip) run(ctx context.Context) {
	f := g.f.Load()
	if f == nil || len(g.cfg.Join) == 0 {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if len(f.LiveMembers()) < g.cfg.FleetSize {
			if n, err := f.Join(g.cfg.Join); err != nil {
				g.log.Debug("gossip join", "reached", n, "err", err)
			}
		}
	}
}

// stop announces the departure and stops memberlist.
func (g *gossip) stop() {
	if f := g.f.Load(); f != nil {
		if err := f.Leave(time.Second); err != nil {
			g.log.Debug("gossip leave", "err", err)
		}
		f.Shutdown()
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}
