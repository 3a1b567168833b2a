package fleet

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Fleet. Start from DefaultConfig; the comment on each
// field gives its DefaultConfig value and how New treats the zero value.
type Config struct {
	// Name is this instance's member name, unique in the fleet.
	// Default: the host name. New uses the host name when empty.
	Name string
	// BindAddr is the IP address memberlist listens on (TCP and UDP).
	// Default: "0.0.0.0". New uses "0.0.0.0" when empty and rejects
	// anything that is not an IP address (no host names).
	BindAddr string
	// BindPort is the port memberlist listens on. Default: 7946. 0 lets the
	// operating system choose a free port (see Fleet.Addr).
	BindPort int
	// AdvertiseAddr is the IP address announced to the other members.
	// Default: "" (BindAddr, or a private address of this host when bound
	// to 0.0.0.0).
	AdvertiseAddr string
	// AdvertisePort is the port announced to the other members.
	// Default: 0 (the bound port).
	AdvertisePort int
	// FleetSize is the configured number of Sluice instances, M. Quorum is
	// ⌊M/2⌋+1 of it, never of the current member count. Default: 1. New
	// rejects values below 1.
	FleetSize int
	// SecretKey, when set, encrypts and authenticates gossip; it must be 16,
	// 24 or 32 bytes (AES-128/192/256) and the same on every member.
	// Default: nil (no encryption).
	SecretKey []byte
	// Tuned selects fast failure detection (~1 s): probe interval 250ms,
	// probe timeout 100ms, gossip interval 50ms, suspicion multiplier 2.
	// When false memberlist's LAN defaults apply (~5 s). Default: true.
	Tuned bool
	// UpdateTimeout bounds how long Publish waits for the metadata update to
	// be handed to gossip. Default: 1s. New uses 1s when zero or negative.
	UpdateTimeout time.Duration
	// Logger receives memberlist's log lines (mapped to slog levels) and the
	// fleet's own. Default: nil, meaning slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the default Config. Name is the host name.
func DefaultConfig() Config {
	name, _ := os.Hostname()
	return Config{
		Name:          name,
		BindAddr:      "0.0.0.0",
		BindPort:      7946,
		FleetSize:     1,
		Tuned:         true,
		UpdateTimeout: time.Second,
	}
}

// Fleet is this instance's membership in the fleet of Sluice instances: it
// publishes the local Verdict for each cluster the instance serves in
// memberlist node metadata (see EncodeState) and reads every live member's.
// It is safe for concurrent use. Shutdown stops the memberlist goroutines
// it owns.
type Fleet struct {
	cfg  Config
	log  *slog.Logger
	ml   *memberlist.Memberlist
	del  *delegate
	addr string
	// pub serializes Publish. memberlist.UpdateNode is not safe for
	// concurrent use, and two overlapping calls could announce the older
	// metadata under the newer incarnation number, so that it would win.
	pub sync.Mutex
}

// New validates cfg, starts memberlist listening on BindAddr:BindPort, and
// returns the Fleet. It joins nobody; call Join.
func New(cfg Config) (*Fleet, error) {
	if cfg.FleetSize < 1 {
		return nil, fmt.Errorf("fleet: fleet size %d, must be at least 1", cfg.FleetSize)
	}
	switch len(cfg.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return nil, fmt.Errorf("fleet: secret key of %d bytes, must be 16, 24 or 32", len(cfg.SecretKey))
	}
	if cfg.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf("fleet: no name configured and no host name: %v", err)
		}
		cfg.Name = h
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "0.0.0.0"
	}
	// memberlist would bind every interface for an address it cannot parse.
	if net.ParseIP(cfg.BindAddr) == nil {
		return nil, fmt.Errorf("fleet: bind address %q is not an IP address", cfg.BindAddr)
	}
	if cfg.AdvertiseAddr != "" && net.ParseIP(cfg.AdvertiseAddr) == nil {
		return nil, fmt.Errorf("fleet: advertise address %q is not an IP address", cfg.AdvertiseAddr)
	}
	if cfg.UpdateTimeout <= 0 {
		cfg.UpdateTimeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	lg := cfg.Logger.With("component", "fleet", "member", cfg.Name)

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if cfg.AdvertisePort == 0 {
		mc.AdvertisePort = cfg.BindPort
	}
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = bytes.Clone(cfg.SecretKey)
	}
	if cfg.Tuned {
		mc.ProbeInterval = 250 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
		mc.SuspicionMult = 2
	}
	mc.LogOutput = nil
	mc.Logger = log.New(&logBridge{log: lg}, "", 0)
	d := &delegate{members: make(map[string][]byte), state: make(map[string]Verdict)}
	mc.Delegate = d
	mc.Events = d
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("fleet: start memberlist: %w", err)
	}
	// Read the advertised address once, before any peer can make memberlist
	// rewrite the local node.
	addr := ml.LocalNode().Address()
	return &Fleet{cfg: cfg, log: lg, ml: ml, del: d, addr: addr}, nil
}

// Name returns this instance's member name.
func (f *Fleet) Name() string { return f.cfg.Name }

// FleetSize returns the configured fleet size M.
func (f *Fleet) FleetSize() int { return f.cfg.FleetSize }

// Addr returns the "host:port" other members can Join, as advertised.
func (f *Fleet) Addr() string { return f.addr }

// Join contacts the given "host:port" members and returns how many were
// reached. Reaching one is enough; the error lists those that failed when
// none was reached.
func (f *Fleet) Join(addrs []string) (int, error) {
	n, err := f.ml.Join(addrs)
	if err != nil {
		err = fmt.Errorf("fleet: join: %w", err)
	}
	return n, err
}

// Publish makes v this instance's verdict for cluster, keeping its verdicts
// for the other clusters: the whole state is re-encoded (EncodeState) into
// the node metadata and announced with UpdateNode, waiting up to
// UpdateTimeout for the update to be handed to gossip. Even when that wait
// times out the new metadata is in place and spreads with the next gossip
// and push-pull rounds. When the state does not encode (an invalid cluster
// or backend name, more than MaxClusters clusters, or more than MetaLimit
// bytes: the error wraps ErrVerdictTooLarge) Publish returns the error and
// the previous metadata stays. Publish keeps a copy of v; the caller may
// reuse it. Concurrent calls (say one per cluster) are serialized, so one
// may wait for another's UpdateNode.
func (f *Fleet) Publish(cluster string, v Verdict) error {
	f.pub.Lock()
	defer f.pub.Unlock()
	if err := f.del.publish(cluster, v); err != nil {
		return err
	}
	if err := f.ml.UpdateNode(f.cfg.UpdateTimeout); err != nil {
		return fmt.Errorf("fleet: publish verdict for %q: %w", cluster, err)
	}
	return nil
}

// Members returns the latest verdict for cluster of every live member
// (alive or suspected, not dead or left), this instance included, keyed by
// member name. A member that has published nothing for cluster, or whose
// metadata does not decode, appears with a zero Verdict: it counts as live
// but never votes. The map is the caller's.
func (f *Fleet) Members(cluster string) map[string]Verdict {
	raw := f.raw()
	out := make(map[string]Verdict, len(raw))
	for name, meta := range raw {
		var v Verdict
		if len(meta) > 0 {
			state, err := DecodeState(meta)
			if err != nil {
				f.log.Debug("undecodable fleet state", "from", name, "err", err)
			}
			v = state[cluster]
		}
		out[name] = v
	}
	return out
}

// LiveMembers returns the names of the live members (alive or suspected,
// not dead or left), this instance included, in ascending order.
func (f *Fleet) LiveMembers() []string {
	return slices.Sorted(maps.Keys(f.raw()))
}

// raw returns every live member's metadata, this instance's current one
// included.
func (f *Fleet) raw() map[string][]byte {
	raw := f.del.snapshot()
	raw[f.cfg.Name] = f.del.NodeMeta(MetaLimit)
	return raw
}

// CanAct reports whether this instance currently sees a majority of the
// configured fleet, itself included.
func (f *Fleet) CanAct() bool { return CanAct(f.cfg.FleetSize, len(f.raw())) }

// WriterDown applies WriterDownQuorum to Members(cluster) with the
// configured fleet size.
func (f *Fleet) WriterDown(cluster, writer string, now time.Time, maxAge time.Duration) (bool, string) {
	return WriterDownQuorum(f.cfg.FleetSize, f.cfg.Name, f.Members(cluster), writer, now, maxAge)
}

// Leave announces this instance's departure and waits up to timeout for
// the announcement to be sent. It does not stop memberlist; call Shutdown.
func (f *Fleet) Leave(timeout time.Duration) error {
	return f.ml.Leave(timeout)
}

// Shutdown stops memberlist's listeners and goroutines without announcing
// a departure (others will detect the failure; call Leave first for a
// graceful exit). Afterwards Members and LiveMembers hold only this
// instance. It is safe to call more than once.
func (f *Fleet) Shutdown() error {
	err := f.ml.Shutdown()
	f.del.mu.Lock()
	clear(f.del.members)
	f.del.mu.Unlock()
	return err
}

// delegate serves this node's metadata to memberlist and keeps a copy of
// every live member's. memberlist.Members hands out pointers into state its
// goroutines keep writing, so the fleet never reads those: it copies what
// the event callbacks (called under memberlist's node lock) deliver.
type delegate struct {
	mu      sync.Mutex
	state   map[string]Verdict // this node's verdicts, by cluster
	meta    []byte             // state, encoded
	members map[string][]byte  // live members' metadata, self included
}

// publish sets this node's verdict for cluster and re-encodes the state;
// when that fails, state and metadata stay as they were.
func (d *delegate) publish(cluster string, v Verdict) error {
	v.Down = slices.Clone(v.Down)
	v.Positions = maps.Clone(v.Positions)
	d.mu.Lock()
	defer d.mu.Unlock()
	next := maps.Clone(d.state)
	if next == nil {
		next = make(map[string]Verdict, 1)
	}
	next[cluster] = v
	meta, err := EncodeState(next)
	if err != nil {
		return err
	}
	d.state, d.meta = next, meta
	return nil
}

// snapshot returns a copy of the live members' metadata.
func (d *delegate) snapshot() map[string][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.members)
}

// NodeMeta implements memberlist.Delegate.
func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return bytes.Clone(d.meta)
}

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.put(n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.put(n) }

// NotifyLeave implements memberlist.EventDelegate; it is called for members
// found dead as well as for those that left.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	d.mu.Lock()
	delete(d.members, n.Name)
	d.mu.Unlock()
}

func (d *delegate) put(n *memberlist.Node) {
	meta := bytes.Clone(n.Meta) // n is memberlist's; copy while it holds its lock
	d.mu.Lock()
	d.members[n.Name] = meta
	d.mu.Unlock()
}

// NotifyMsg implements memberlist.Delegate; the fleet sends no user messages.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate; the fleet broadcasts nothing.
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate; verdicts travel as metadata.
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *delegate) MergeRemoteState([]byte, bool) {}

// logBridge turns memberlist's "[LEVEL] memberlist: msg" lines into slog
// records at the matching level.
type logBridge struct{ log *slog.Logger }

func (b *logBridge) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\n"))
	lvl := slog.LevelInfo
	for _, l := range []struct {
		tag string
		lvl slog.Level
	}{{"[DEBUG] ", slog.LevelDebug}, {"[INFO] ", slog.LevelInfo}, {"[WARN] ", slog.LevelWarn}, {"[ERR] ", slog.LevelError}, {"[ERROR] ", slog.LevelError}} {
		if rest, ok := strings.CutPrefix(msg, l.tag); ok {
			msg, lvl = rest, l.lvl
			break
		}
	}
	b.log.Log(context.Background(), lvl, msg)
	return len(p), nil
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)
