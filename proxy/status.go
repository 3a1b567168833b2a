package proxy

import (
	"time"

	"github.com/sluicedb/sluice/topology"
)

// Status is the JSON document served at /status.
type Status struct {
	Clusters  []ClusterStatus  `json:"clusters"`
	Listeners []ListenerStatus `json:"listeners"`
}

// ClusterStatus describes one cluster's current topology.
type ClusterStatus struct {
	Name     string          `json:"name"`
	Protocol string          `json:"protocol"`
	Epoch    uint64          `json:"epoch"`
	Writer   string          `json:"writer,omitempty"`
	Backends []BackendStatus `json:"backends"`
}

// BackendStatus describes one backend as last probed.
type BackendStatus struct {
	Name      string    `json:"name"`
	Address   string    `json:"address"`
	Role      string    `json:"role"`
	Healthy   bool      `json:"healthy"`
	Position  string    `json:"position,omitempty"`
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
	for _, name := range p.order {
		cr := p.clusters[name]
		s := cr.cluster.Snapshot()
		cs := ClusterStatus{Name: name, Protocol: cr.cfg.Protocol, Epoch: s.Epoch}
		if w, ok := s.WriterBackend(); ok {
			cs.Writer = w.Name
		}
		for i, b := range s.Backends {
			bs := BackendStatus{
				Name: b.Name, Address: b.Addr, Role: b.Role.String(), Healthy: b.Healthy,
				LagSecs: b.Lag.Seconds(), LatencyMs: float64(b.Latency) / float64(time.Millisecond),
				Sessions: cr.cluster.Active(i), LastProbe: b.LastProbe, LastError: b.LastError,
			}
			if b.Position != 0 {
				bs.Position = topology.FormatLSN(b.Position)
			}
			cs.Backends = append(cs.Backends, bs)
		}
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
