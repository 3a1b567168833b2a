package health

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/topology"
)

// MonitorOptions configures a Monitor. Zero values take the defaults named
// on each field.
type MonitorOptions struct {
	// Cluster is the cluster's name (logs, metrics).
	Cluster string
	// Backends are the configured backends (name and address), in order.
	Backends []topology.Backend
	// NewProber makes the prober of one backend. Required.
	NewProber func(b topology.Backend) Prober
	// Interval between probe rounds (default 500ms).
	Interval time.Duration
	// Timeout of one probe, connecting included (default 1s).
	Timeout time.Duration
	// Failures is how many consecutive failed probes take a healthy backend
	// down (default 3).
	Failures int
	// Successes is how many consecutive successful probes bring a down
	// backend back (default 2). A backend never seen before is up at its
	// first success.
	Successes int
	// Publish receives every new snapshot. Required.
	Publish func(*topology.Snapshot)
	// Metrics, when set, receives probe metrics.
	Metrics *admin.Metrics
	// Logger receives state changes (default slog.Default()).
	Logger *slog.Logger

	// Fleet, when set, shares this instance's verdicts with the other
	// Sluice instances; the writer is then changed only when a majority of
	// Fleet.FleetSize() agrees, and writes are held while this instance
	// sees fewer members than that. Default nil: a lone instance, which
	// decides alone.
	Fleet Fleet
	// Promoter, when set, lets this instance (when it leads the fleet)
	// promote the most advanced healthy replica once the fleet agrees the
	// writer is down and no other backend reports itself writer. Default
	// nil: discovery only (a backend promoted by another tool is adopted).
	Promoter Promoter
	// VerdictMaxAge is how old a member's verdict may be and still count
	// towards the quorum (default 4×Interval, at least 2s).
	VerdictMaxAge time.Duration
	// PromoteTimeout bounds promoting one replica, and re-pointing each
	// other replica (default 30s).
	PromoteTimeout time.Duration
}

// backendState is the monitor's running verdict on one backend.
type backendState struct {
	b         topology.Backend
	seen      bool // ever probed successfully
	fails     int  // consecutive failures
	successes int  // consecutive successes
	sameRole  int  // consecutive successful probes that reported the current role
	// demoted marks a former writer that the fleet replaced: it is never
	// adopted as writer again until it shows up as a replica (re-seeded).
	demoted bool
}

// Monitor probes the backends of one cluster and publishes topology
// snapshots. Run owns its goroutines; ProbeOnce may be used instead for a
// synchronous round.
type Monitor struct {
	o      MonitorOptions
	log    *slog.Logger
	mu     sync.Mutex // serialises rounds; guards everything below but smu's
	prob   []Prober
	states []backendState
	epoch  uint64
	writer int // index of the epoch's writer, -1 when none is known
	// writerTimeline is the highest PostgreSQL timeline the epoch's writer
	// was seen on (0 when unknown, and on MariaDB).
	writerTimeline uint32
	repointTo      int         // a replica was just promoted: re-point the others to it after publishing (-1: none)
	fleet          FleetStatus // being built by the current round

	smu   sync.Mutex
	shown FleetStatus // as of the last finished round
}

// NewMonitor returns a Monitor; nothing runs until ProbeOnce or Run.
func NewMonitor(o MonitorOptions) *Monitor {
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Failures <= 0 {
		o.Failures = 3
	}
	if o.Successes <= 0 {
		o.Successes = 2
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.VerdictMaxAge <= 0 {
		o.VerdictMaxAge = max(4*o.Interval, 2*time.Second)
	}
	if o.PromoteTimeout <= 0 {
		o.PromoteTimeout = 30 * time.Second
	}
	m := &Monitor{o: o, log: o.Logger.With("cluster", o.Cluster), writer: -1, repointTo: -1}
	for _, b := range o.Backends {
		m.prob = append(m.prob, o.NewProber(b))
		m.states = append(m.states, backendState{b: b})
	}
	return m
}

// Run probes every Interval until ctx ends, then closes the probers.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.o.Interval)
	defer t.Stop()
	defer m.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.ProbeOnce(ctx)
		}
	}
}

// Close drops the probers' connections. Run does it when it stops; call it
// after ProbeOnce when Run is never started.
func (m *Monitor) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.prob {
		p.Close()
	}
}

// ProbeOnce probes every backend concurrently, updates the verdicts and
// publishes a snapshot. It returns when every probe has finished.
func (m *Monitor) ProbeOnce(ctx context.Context) *topology.Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]outcome, len(m.prob))
	var wg sync.WaitGroup
	for i := range m.prob {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = m.probe(ctx, i)
		}()
	}
	wg.Wait()
	for i := range m.states {
		m.apply(&m.states[i], out[i].r, out[i].err, out[i].d, out[i].at)
	}
	held := m.decide(ctx)
	s := m.publish(held)
	m.smu.Lock()
	m.shown = m.fleet
	m.smu.Unlock()
	if i := m.repointTo; i >= 0 {
		// Clients already have the new writer; now the replicas.
		m.repointTo = -1
		m.repoint(ctx, i)
	}
	return s
}

// outcome is one probe's result.
type outcome struct {
	r   Result
	err error
	d   time.Duration
	at  time.Time
}

// probe runs one probe of backend i.
func (m *Monitor) probe(ctx context.Context, i int) outcome {
	pctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	start := time.Now()
	r, err := m.prob[i].Probe(pctx)
	return outcome{r: r, err: err, d: time.Since(start), at: time.Now()}
}

// probeOne probes backend i alone and folds in the result.
func (m *Monitor) probeOne(ctx context.Context, i int) {
	o := m.probe(ctx, i)
	m.apply(&m.states[i], o.r, o.err, o.d, o.at)
}

// apply folds one probe outcome into a backend's verdict.
func (m *Monitor) apply(st *backendState, r Result, err error, d time.Duration, at time.Time) {
	b := &st.b
	b.LastProbe = at
	met := m.o.Metrics
	if err != nil {
		st.fails++
		st.successes = 0
		b.LastError = err.Error()
		if b.Healthy && st.fails >= m.o.Failures {
			b.Healthy = false
			m.log.Warn("backend down", "backend", b.Name, "err", err)
		}
		if met != nil {
			met.ProbeResults.WithLabelValues(m.o.Cluster, b.Name, admin.ResultError).Inc()
		}
		return
	}
	st.successes++
	st.fails = 0
	if b.Role != r.Role && b.Role != topology.RoleUnknown {
		m.log.Info("backend role changed", "backend", b.Name, "from", b.Role, "to", r.Role)
	}
	if r.Role == b.Role {
		st.sameRole++
	} else {
		st.sameRole = 1
	}
	m.setRole(st, r.Role)
	b.Position, b.Received, b.Lag, b.Latency, b.LastError = r.Position, r.Received, r.Lag, d, ""
	b.Timeline = r.Timeline
	if r.Role == topology.RoleReader && st.demoted {
		st.demoted = false
		m.log.Info("former writer is a replica again; no longer fenced", "backend", b.Name)
	}
	if !b.Healthy && (!st.seen || st.successes >= m.o.Successes) {
		b.Healthy = true
		m.log.Info("backend up", "backend", b.Name, "role", b.Role)
	}
	st.seen = true
	if met != nil {
		met.ProbeResults.WithLabelValues(m.o.Cluster, b.Name, admin.ResultOK).Inc()
		met.ProbeLatency.WithLabelValues(m.o.Cluster, b.Name).Observe(d.Seconds())
		met.ReplicaLag.WithLabelValues(m.o.Cluster, b.Name).Set(r.Lag.Seconds())
	}
}

// setRole records backend st's role, dropping the metric series of its
// previous role.
func (m *Monitor) setRole(st *backendState, role topology.Role) {
	if met := m.o.Metrics; met != nil && st.b.Role != role {
		met.BackendUp.DeleteLabelValues(m.o.Cluster, st.b.Name, st.b.Role.String())
	}
	st.b.Role = role
}

// publish builds the snapshot of this round and hands it to Publish. held
// says why writes are held ("" when they are not).
func (m *Monitor) publish(held string) *topology.Snapshot {
	s := &topology.Snapshot{Epoch: m.epoch, Writer: m.writer, Taken: time.Now(), Held: held}
	s.Backends = make([]topology.Backend, len(m.states))
	var writerPos uint64
	if m.writer >= 0 && m.states[m.writer].b.Role == topology.RoleWriter {
		writerPos = m.states[m.writer].b.Position
	}
	for i, st := range m.states {
		s.Backends[i] = st.b
		if i != m.writer && (st.demoted || (m.writer >= 0 && st.b.Role == topology.RoleWriter)) {
			s.Backends[i].Fenced = true // accepts (or accepted) writes, but is not the epoch's writer
		}
		if b := &s.Backends[i]; b.Role == topology.RoleReader && writerPos > 0 && b.Position >= writerPos {
			b.Lag = 0 // caught up: the age of its last replayed transaction says nothing
		}
		if met := m.o.Metrics; met != nil {
			up := 0.0
			if st.b.Healthy {
				up = 1
			}
			met.BackendUp.WithLabelValues(m.o.Cluster, st.b.Name, st.b.Role.String()).Set(up)
		}
	}
	if m.o.Metrics != nil {
		m.o.Metrics.TopologyEpoch.WithLabelValues(m.o.Cluster).Set(float64(m.epoch))
	}
	m.o.Publish(s)
	return s
}
