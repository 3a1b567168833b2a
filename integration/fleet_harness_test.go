package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/integration/localcluster"
	"github.com/sluicedb/sluice/proxy"
)

// The failover tests run a fleet of three Sluice instances in the test
// process, joined by gossip on loopback, in front of a cluster of their own
// (they kill its primary).

// fleetNames are the gossip member names of the three instances; the first
// one leads failovers (lowest name).
var fleetNames = []string{"sluice-a", "sluice-b", "sluice-c"}

// fleetClusterName is the name of the cluster in every instance's config.
const fleetClusterName = "db"

// fleetYAML is one instance's configuration: 1 protocol, 2 backends (flow
// list items), 3 admin user, 4 its password, 5 member name, 6 join list,
// 7 failover.hold.
const fleetYAML = `
listeners:
  - {name: auto, protocol: %[1]s, address: "127.0.0.1:0", cluster: db, route: auto}
  - {name: reader, protocol: %[1]s, address: "127.0.0.1:0", cluster: db, route: reader}
clusters:
  db:
    protocol: %[1]s
    backends: [%[2]s]
    admin_user: %[3]q
users:
  - {name: app, password: app}
  - {name: %[3]q, password: %[4]q}
health: {interval: 200ms, timeout: 1s, failures: 2, successes: 2}
gossip: {bind: "127.0.0.1:0", name: %[5]s, fleet_size: 3, join: [%[6]s]}
failover: {promote: true, hold: %[7]s}
http: {address: "127.0.0.1:0"}
server: {auth_failure_delay: 10ms}
log: {level: info}
`

// fleetBackend is one backend as configured (the same name on every
// instance: the fleet agrees on names).
type fleetBackend struct{ Name, Addr string }

// fleetSpec describes the fleet to start.
type fleetSpec struct {
	Protocol string // config.ProtocolPostgres or config.ProtocolMySQL
	Backends []fleetBackend
	// AddrFor, when set, returns the address instance i dials for b
	// (default b.Addr): a faultnet relay, for instance.
	AddrFor func(i int, b fleetBackend) string
	// Hold is failover.hold (default 10s).
	Hold time.Duration
}

// fleetInstance is one running Sluice instance.
type fleetInstance struct {
	Name    string
	P       *proxy.Proxy
	stopped bool
}

// testFleet is three Sluice instances and their collected logs.
type testFleet struct {
	t     *testing.T
	insts []*fleetInstance
	logs  *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (the instances'
// log handlers).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// requirePostgres skips the test when the PostgreSQL programs are missing.
func requirePostgres(t *testing.T) {
	t.Helper()
	if _, err := localcluster.PostgresBinDir(); err != nil {
		t.Skip(err)
	}
}

// requireMariaDB skips the test when the MariaDB programs are missing.
func requireMariaDB(t *testing.T) {
	t.Helper()
	if _, err := localcluster.FindMariaDB(); err != nil {
		t.Skip(err)
	}
}

// startFleet starts the three instances (the first alone, the others
// joining it) and waits until every instance sees all three members, their
// verdicts, and a writable writer. The instances are shut down when the
// test ends; their logs are printed if it failed (or SLUICE_FLEET_LOGS is
// set).
func startFleet(t *testing.T, ctx context.Context, spec fleetSpec) *testFleet {
	t.Helper()
	if spec.Hold == 0 {
		spec.Hold = 10 * time.Second
	}
	f := &testFleet{t: t, logs: &syncBuffer{}}
	t.Cleanup(func() {
		for i := len(f.insts) - 1; i >= 0; i-- {
			f.stop(i)
		}
		if t.Failed() || os.Getenv("SLUICE_FLEET_LOGS") != "" {
			t.Logf("fleet logs:\n%s", f.logs.String())
		}
	})
	t0 := time.Now()
	for i, name := range fleetNames {
		var bs []string
		for _, b := range spec.Backends {
			addr := b.Addr
			if spec.AddrFor != nil {
				addr = spec.AddrFor(i, b)
			}
			bs = append(bs, fmt.Sprintf("{name: %q, address: %q}", b.Name, addr))
		}
		join := ""
		if i > 0 {
			join = strconv.Quote(f.insts[0].P.FleetAddr())
		}
		yaml := fmt.Sprintf(fleetYAML, spec.Protocol, strings.Join(bs, ", "), promoteUser, promotePassword, name, join, spec.Hold)
		cfg, err := config.Parse([]byte(yaml), func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: config: %v\n%s", name, err, yaml)
		}
		log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("instance", name)
		p, err := proxy.New(cfg, log)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatalf("%s: start: %v", name, err)
		}
		f.insts = append(f.insts, &fleetInstance{Name: name, P: p})
	}
	writer := spec.Backends[0].Name
	f.waitAll(ctx, 60*time.Second, "the fleet forms", func(_ int, st proxy.Status) error {
		if st.Fleet == nil || len(st.Fleet.Members) != len(fleetNames) {
			return fmt.Errorf("fleet members %v", st.Fleet)
		}
		cs := st.Clusters[0]
		if len(cs.Failover.Verdicts) != len(fleetNames) {
			return fmt.Errorf("%d verdicts", len(cs.Failover.Verdicts))
		}
		if !cs.Writable || cs.Writer != writer || !cs.Failover.CanAct {
			return fmt.Errorf("writer %q writable %v can_act %v held %q", cs.Writer, cs.Writable, cs.Failover.CanAct, cs.Held)
		}
		for _, b := range cs.Backends {
			if b.State != "up" {
				return fmt.Errorf("backend %s %s", b.Name, b.State)
			}
		}
		return nil
	})
	t.Logf("fleet of %d formed in %v", len(f.insts), time.Since(t0).Round(time.Millisecond))
	return f
}

// stop shuts instance i down (once).
func (f *testFleet) stop(i int) {
	in := f.insts[i]
	if in.stopped {
		return
	}
	in.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := in.P.Shutdown(ctx); err != nil {
		f.t.Logf("%s: shutdown: %v", in.Name, err)
	}
}

// status returns instance i's status of the cluster.
func (f *testFleet) status(i int) proxy.ClusterStatus {
	return f.insts[i].P.Status().Clusters[0]
}

// running returns the indexes of the instances not shut down.
func (f *testFleet) running() []int {
	var out []int
	for i, in := range f.insts {
		if !in.stopped {
			out = append(out, i)
		}
	}
	return out
}

// waitAll polls every running instance's status every 50 ms until cond
// holds for all of them at once, or fails the test after within.
func (f *testFleet) waitAll(ctx context.Context, within time.Duration, what string, cond func(i int, st proxy.Status) error) time.Duration {
	f.t.Helper()
	return f.waitSome(ctx, within, what, f.running(), cond)
}

// waitSome is waitAll for the instances idx.
func (f *testFleet) waitSome(ctx context.Context, within time.Duration, what string, idx []int, cond func(i int, st proxy.Status) error) time.Duration {
	f.t.Helper()
	t0 := time.Now()
	err := pollUntil(ctx, within, func() error {
		for _, i := range idx {
			if err := cond(i, f.insts[i].P.Status()); err != nil {
				return fmt.Errorf("%s: %w", f.insts[i].Name, err)
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("%s: %v\n%s", what, err, f.dump())
	}
	return time.Since(t0)
}

// dump renders every instance's status, for failure messages.
func (f *testFleet) dump() string {
	var b strings.Builder
	for _, in := range f.insts {
		if in.stopped {
			fmt.Fprintf(&b, "%s: stopped\n", in.Name)
			continue
		}
		j, _ := json.MarshalIndent(in.P.Status().Clusters, "", "  ")
		fmt.Fprintf(&b, "%s: %s\n", in.Name, j)
	}
	return b.String()
}

// probeCount returns instance i's count of probes of backend with result
// (admin.ResultOK or admin.ResultError).
func (f *testFleet) probeCount(i int, backend, result string) float64 {
	var m dto.Metric
	if err := f.insts[i].P.Metrics().ProbeResults.WithLabelValues(fleetClusterName, backend, result).Write(&m); err != nil {
		f.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// backendStatus returns the named backend of cs.
func backendStatus(cs proxy.ClusterStatus, name string) (proxy.BackendStatus, bool) {
	for _, b := range cs.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return proxy.BackendStatus{}, false
}

// pollUntil calls cond every 50 ms until it returns nil, and returns the
// last error when within (or ctx) runs out first.
func pollUntil(ctx context.Context, within time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", within, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// loadWriter inserts numbered rows (1, 2, …, never reusing a number) one
// statement at a time through insert until stopped, and records which were
// acknowledged. A failed statement is retried with the next number after a
// short pause.
type loadWriter struct {
	name   string
	insert func(ctx context.Context, id int64) error
	stopC  chan struct{}
	doneC  chan struct{}
	n      atomic.Int64 // acknowledged rows

	mu       sync.Mutex
	acked    []int64
	failures int
	errs     []string      // the first few distinct-ish errors, with when they happened
	maxFail  time.Duration // the longest a failed statement took
	lastAck  time.Time
	failedAt []time.Time     // when each failed statement started
	failDur  []time.Duration // and how long it took
	lastErr  string
}

// startLoadWriter starts the loop; cleanup runs after it stops.
func startLoadWriter(t *testing.T, name string, insert func(ctx context.Context, id int64) error, cleanup func()) *loadWriter {
	w := &loadWriter{name: name, insert: insert, stopC: make(chan struct{}), doneC: make(chan struct{})}
	go func() {
		defer close(w.doneC)
		if cleanup != nil {
			defer cleanup()
		}
		for id := int64(1); ; id++ {
			select {
			case <-w.stopC:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t0 := time.Now()
			err := w.insert(ctx, id)
			d := time.Since(t0)
			cancel()
			w.mu.Lock()
			if err == nil {
				w.acked = append(w.acked, id)
				w.lastAck = time.Now()
				w.n.Store(int64(len(w.acked)))
			} else {
				w.failures++
				w.maxFail = max(w.maxFail, d)
				w.failedAt = append(w.failedAt, t0)
				w.failDur = append(w.failDur, d)
				w.lastErr = err.Error()
				if len(w.errs) < 8 {
					w.errs = append(w.errs, fmt.Sprintf("%s (+%v): %v", t0.Format("15:04:05.000"), d.Round(time.Millisecond), err))
				}
			}
			w.mu.Unlock()
			if err != nil {
				select {
				case <-w.stopC:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}()
	t.Cleanup(w.stop)
	return w
}

// stop ends the loop and waits for it (idempotent).
func (w *loadWriter) stop() {
	select {
	case <-w.stopC:
	default:
		close(w.stopC)
	}
	<-w.doneC
}

// snapshot returns the acknowledged ids, the failure count and the errors.
func (w *loadWriter) snapshot() (acked []int64, failures int, errs []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...), w.failures, append([]string(nil), w.errs...)
}

// failuresSince returns how many statements started at or after t failed,
// the longest any of them took, and the last error.
func (w *loadWriter) failuresSince(t time.Time) (n int, longest time.Duration, last string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, at := range w.failedAt {
		if !at.Before(t) {
			n++
			longest = max(longest, w.failDur[i])
		}
	}
	return n, longest, w.lastErr
}

// waitAcked waits until every writer has acknowledged at least more rows
// beyond from[i] (from may be nil: beyond 0).
func waitAcked(t *testing.T, ctx context.Context, within time.Duration, what string, ws []*loadWriter, from []int64, more int64, also func() error) time.Duration {
	t.Helper()
	t0 := time.Now()
	err := pollUntil(ctx, within, func() error {
		if also != nil {
			if err := also(); err != nil {
				return permanentErr{err}
			}
		}
		for i, w := range ws {
			base := int64(0)
			if from != nil {
				base = from[i]
			}
			if n := w.n.Load(); n < base+more {
				_, fails, errs := w.snapshot()
				return fmt.Errorf("writer %s: %d acknowledged, want %d; %d failures: %s", w.name, n, base+more, fails, strings.Join(errs, "; "))
			}
		}
		return nil
	})
	var pe permanentErr
	if errors.As(err, &pe) {
		t.Fatalf("%s: %v", what, pe.err)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return time.Since(t0)
}

// permanentErr stops waitAcked at once.
type permanentErr struct{ err error }

func (p permanentErr) Error() string { return p.err.Error() }

// counts returns every writer's acknowledged count.
func counts(ws []*loadWriter) []int64 {
	out := make([]int64, len(ws))
	for i, w := range ws {
		out[i] = w.n.Load()
	}
	return out
}

// loadReader runs query in a loop until stopped and counts the failures.
type loadReader struct {
	name  string
	stopC chan struct{}
	doneC chan struct{}
	ok    atomic.Int64

	mu       sync.Mutex
	failures int
	errs     []string
	offN     int       // reads served by a server that is not a replica
	offFirst time.Time // the first and last of them
	offLast  time.Time
	offMsg   string // the first of them
}

// errOffReplica is returned by a reader's query when a server that is not
// a replica answered it.
var errOffReplica = errors.New("read served by a server that is not a replica")

func startLoadReader(t *testing.T, name string, query func(ctx context.Context) error, cleanup func()) *loadReader {
	r := &loadReader{name: name, stopC: make(chan struct{}), doneC: make(chan struct{})}
	go func() {
		defer close(r.doneC)
		if cleanup != nil {
			defer cleanup()
		}
		for {
			select {
			case <-r.stopC:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t0 := time.Now()
			err := query(ctx)
			cancel()
			if err == nil {
				r.ok.Add(1)
				continue
			}
			if errors.Is(err, errOffReplica) {
				// Served, but not by a replica: counted apart.
				r.ok.Add(1)
				r.mu.Lock()
				if r.offN == 0 {
					r.offFirst, r.offMsg = t0, err.Error()
				}
				r.offN++
				r.offLast = t0
				r.mu.Unlock()
				continue
			}
			r.mu.Lock()
			r.failures++
			if len(r.errs) < 8 {
				r.errs = append(r.errs, fmt.Sprintf("%s (+%v): %v", t0.Format("15:04:05.000"), time.Since(t0).Round(time.Millisecond), err))
			}
			r.mu.Unlock()
			select {
			case <-r.stopC:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *loadReader) stop() {
	select {
	case <-r.stopC:
	default:
		close(r.stopC)
	}
	<-r.doneC
}

func (r *loadReader) result() (ok int64, failures int, errs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok.Load(), r.failures, append([]string(nil), r.errs...)
}

// offReplica returns how many reads a non-replica served, and when.
func (r *loadReader) offReplica() (n int, first, last time.Time, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.offN, r.offFirst, r.offLast, r.offMsg
}
