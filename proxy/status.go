package proxy

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicedb/sluice/backends/pool"
	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/frontend/serve"

	"github.com/sluicedb/sluice/topology"
)

// Status is the JSON document served at /status.
type Status struct {
	Fleet     *FleetStatus     `json:"fleet,omitempty"` // nil when gossip is off
	Clusters  []ClusterStatus  `json:"clusters"`
	Listeners []ListenerStatus `json:"listeners"`
}

// FleetStatus describes this instance's view of the fleet.
type FleetStatus struct {
	Self    string   `json:"self"`
	Address string   `json:"address"`
	Size    int      `json:"fleet_size"`
	Members []string `json:"members"` // live members, this instance included
}

// ClusterStatus describes one cluster's current topology.
type ClusterStatus struct {
	Name     string          `json:"name"`
	Protocol string          `json:"protocol"`
	Epoch    uint64          `json:"epoch"`
	Writer   string          `json:"writer,omitempty"` // the epoch's writer, usable or not
	Writable bool            `json:"writable"`         // writes are being routed to it
	Held     string          `json:"writes_held,omitempty"`
	Backends []BackendStatus `json:"backends"`
	Failover FailoverStatus  `json:"failover"`
	// Pools are the backend connection pools, one entry per backend,
	// user, database (PostgreSQL; "" for MySQL) and connection profile.
	Pools []PoolStatus `json:"pools,omitempty"`
	// Pinned lists the client sessions pinned to a backend connection.
	Pinned []serve.PinnedSession `json:"pinned_sessions,omitempty"`
}

// PoolStatus is one pool of backend connections.
type PoolStatus struct {
	Backend  string `json:"backend"`
	User     string `json:"user"`
	Database string `json:"database"`
	Idle     int    `json:"idle"`
	InUse    int    `json:"in_use"`
	Waiting  int    `json:"waiting"`
	Dials    uint64 `json:"dials"`
	Timeouts uint64 `json:"checkout_timeouts"`
}

// FailoverStatus describes the fleet's decision on a cluster as this
// instance last saw it.
type FailoverStatus struct {
	CanAct    bool            `json:"can_act"` // sees a majority of the fleet
	Leader    string          `json:"leader,omitempty"`
	Decision  string          `json:"decision,omitempty"`
	Failovers int             `json:"failovers"` // writer changes this instance decided
	Verdicts  []VerdictStatus `json:"verdicts"`
}

// VerdictStatus is one fleet member's verdict on a cluster.
type VerdictStatus struct {
	Member string    `json:"member"`
	Epoch  uint64    `json:"epoch"`
	Writer string    `json:"writer,omitempty"`
	Down   []string  `json:"down"`
	At     time.Time `json:"at"`
}

// BackendStatus describes one backend as last probed.
type BackendStatus struct {
	Name      string    `json:"name"`
	Address   string    `json:"address"`
	Role      string    `json:"role"`
	State     string    `json:"state"`  // up, down, or fenced (up, but never given writes or reads)
	Fenced    bool      `json:"fenced"` // a former writer, kept out until it is re-seeded as a replica
	Healthy   bool      `json:"healthy"`
	Position  string    `json:"position,omitempty"`
	Received  string    `json:"received,omitempty"`
	LagSecs   float64   `json:"lag_seconds"`
	LatencyMs float64   `json:"probe_latency_ms"`
	Sessions  int64     `json:"sessions"`
	LastProbe time.Time `json:"last_probe"`
	LastError string    `json:"last_error,omitempty"`
}

// ListenerStatus describes one listener.
type ListenerStatus struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	Route    string `json:"route"`
	Cluster  string `json:"cluster"`
}

// Status returns the instance's current status.
func (p *Proxy) Status() Status {
	var st Status
	if g := p.gossip; g != nil {
		fs := &FleetStatus{Self: g.Name(), Address: g.Addr(), Size: g.FleetSize()}
		if f := g.f.Load(); f != nil {
			fs.Members = f.LiveMembers()
		}
		st.Fleet = fs
	}
	for _, name := range p.order {
		cr := p.clusters[name]
		s := cr.cluster.Snapshot()
		cs := ClusterStatus{Name: name, Protocol: cr.cfg.Protocol, Epoch: s.Epoch, Writer: s.WriterName(), Held: s.Held}
		_, cs.Writable = s.WriterBackend()
		fl := cr.monitor.Fleet()
		cs.Failover = FailoverStatus{CanAct: fl.CanAct, Leader: fl.Leader, Decision: fl.Decision, Failovers: fl.Failovers}
		for _, m := range slices.Sorted(maps.Keys(fl.Members)) {
			v := fl.Members[m]
			cs.Failover.Verdicts = append(cs.Failover.Verdicts, VerdictStatus{Member: m, Epoch: v.Epoch, Writer: v.Writer, Down: v.Down, At: v.At})
		}
		for i, b := range s.Backends {
			state := "up"
			switch {
			case !b.Healthy:
				state = "down"
			case b.Fenced:
				state = "fenced"
			}
			bs := BackendStatus{
				Name: b.Name, Address: b.Addr, Role: b.Role.String(), State: state, Fenced: b.Fenced, Healthy: b.Healthy,
				LagSecs: b.Lag.Seconds(), LatencyMs: float64(b.Latency) / float64(time.Millisecond),
				Sessions: cr.cluster.Active(i), LastProbe: b.LastProbe, LastError: b.LastError,
			}
			if b.Position != 0 {
				bs.Position = formatPosition(cr.cfg.Protocol, b.Position)
			}
			if b.Received != 0 {
				bs.Received = formatPosition(cr.cfg.Protocol, b.Received)
			}
			cs.Backends = append(cs.Backends, bs)
		}
		var stats []pool.Stats
		var pinned []serve.PinnedSession
		switch {
		case cr.myPools != nil:
			stats, pinned = cr.myPools.Stats(), p.connIDs.Pinned()
		case cr.pgPools != nil:
			stats, pinned = cr.pgPools.Stats(), p.cancels.Pinned()
		}
		for _, ps := range stats {
			cs.Pools = append(cs.Pools, PoolStatus{Backend: ps.Key.Addr, User: ps.Key.User, Database: ps.Key.Database,
				Idle: ps.Idle, InUse: ps.InUse, Waiting: ps.Waiting, Dials: ps.Dials, Timeouts: ps.Timeouts})
		}
		slices.SortFunc(cs.Pools, func(a, b PoolStatus) int {
			return strings.Compare(a.Backend+"\x00"+a.User+"\x00"+a.Database, b.Backend+"\x00"+b.User+"\x00"+b.Database)
		})
		for _, pin := range pinned {
			if pin.Cluster == cr.name {
				cs.Pinned = append(cs.Pinned, pin)
			}
		}
		slices.SortFunc(cs.Pinned, func(a, b serve.PinnedSession) int { return cmp.Compare(a.PID, b.PID) })
		st.Clusters = append(st.Clusters, cs)
	}
	for _, l := range p.listeners {
		addr := l.cfg.Address
		if l.ln != nil {
			addr = l.ln.Addr().String()
		}
		st.Listeners = append(st.Listeners, ListenerStatus{Name: l.cfg.Name, Protocol: l.cfg.Protocol, Address: addr, Route: l.cfg.Route, Cluster: l.cfg.Cluster})
	}
	return st
}

// formatPosition renders a replication position: an LSN for PostgreSQL, a
// GTID sequence number for MySQL.
func formatPosition(protocol string, pos uint64) string {
	if protocol == config.ProtocolMySQL {
		return strconv.FormatUint(pos, 10)
	}
	return topology.FormatLSN(pos)
}
