package health

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/topology"
)

// fakeProber answers with whatever the test set last.
type fakeProber struct {
	mu     sync.Mutex
	r      Result
	err    error
	probes int
	closed bool
}

func (f *fakeProber) set(r Result, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.r, f.err = r, err
}

func (f *fakeProber) Probe(context.Context) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probes++
	return f.r, f.err
}

func (f *fakeProber) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func newTestMonitor(t *testing.T, n int) (*Monitor, []*fakeProber, *[]*topology.Snapshot) {
	t.Helper()
	var bs []topology.Backend
	fakes := make([]*fakeProber, n)
	for i := range n {
		addr := "127.0.0.1:" + string(rune('0'+i))
		bs = append(bs, topology.Backend{Name: addr, Addr: addr})
		fakes[i] = &fakeProber{}
	}
	var snaps []*topology.Snapshot
	var mu sync.Mutex
	k := 0
	m := NewMonitor(MonitorOptions{
		Cluster:  "c",
		Backends: bs,
		NewProber: func(topology.Backend) Prober {
			p := fakes[k]
			k++
			return p
		},
		Failures:  3,
		Successes: 2,
		Metrics:   admin.NewMetrics(),
		Publish: func(s *topology.Snapshot) {
			mu.Lock()
			snaps = append(snaps, s)
			mu.Unlock()
		},
	})
	return m, fakes, &snaps
}

var errDown = errors.New("connection refused")

func TestMonitorRolesAndHysteresis(t *testing.T) {
	m, f, _ := newTestMonitor(t, 3)
	ctx := context.Background()
	f[0].set(Result{Role: topology.RoleWriter, Position: 100}, nil)
	f[1].set(Result{Role: topology.RoleReader, Position: 90}, nil)
	f[2].set(Result{}, errDown)

	s := m.ProbeOnce(ctx)
	if w, ok := s.WriterBackend(); !ok || w.Addr != f0addr(s) || s.Epoch != 1 {
		t.Fatalf("first round: writer %v %v epoch %d", w, ok, s.Epoch)
	}
	if got := s.Readers(nil, 0); len(got) != 1 || got[0] != 1 {
		t.Fatalf("readers = %v", got)
	}
	if s.Backends[2].Healthy || s.Backends[2].LastError == "" {
		t.Fatalf("never-seen failing backend must be down with its error: %+v", s.Backends[2])
	}

	// The reader fails twice: still up (failures = 3); the third failure takes it down.
	f[1].set(Result{}, errDown)
	for i := 1; i <= 3; i++ {
		s = m.ProbeOnce(ctx)
		if want := i < 3; s.Backends[1].Healthy != want {
			t.Fatalf("after %d failures healthy = %v, want %v", i, s.Backends[1].Healthy, want)
		}
	}
	// It comes back: one success is not enough (successes = 2), two are.
	f[1].set(Result{Role: topology.RoleReader, Position: 100}, nil)
	if s = m.ProbeOnce(ctx); s.Backends[1].Healthy {
		t.Fatal("up after one success")
	}
	if s = m.ProbeOnce(ctx); !s.Backends[1].Healthy {
		t.Fatal("still down after two successes")
	}
	if s.Epoch != 1 {
		t.Fatalf("epoch moved without a writer change: %d", s.Epoch)
	}
}

func f0addr(s *topology.Snapshot) string { return s.Backends[0].Addr }

func TestMonitorWriterChangeBumpsEpoch(t *testing.T) {
	m, f, _ := newTestMonitor(t, 2)
	ctx := context.Background()
	f[0].set(Result{Role: topology.RoleWriter}, nil)
	f[1].set(Result{Role: topology.RoleReader}, nil)
	s := m.ProbeOnce(ctx)
	if s.Writer != 0 || s.Epoch != 1 {
		t.Fatalf("writer %d epoch %d", s.Writer, s.Epoch)
	}
	// The writer dies: after 3 failures there is no healthy writer, same epoch.
	f[0].set(Result{}, errDown)
	for range 3 {
		s = m.ProbeOnce(ctx)
	}
	if _, ok := s.WriterBackend(); ok {
		t.Fatal("dead writer still usable")
	}
	// Someone promotes the replica: it becomes the writer under epoch 2.
	f[1].set(Result{Role: topology.RoleWriter}, nil)
	s = m.ProbeOnce(ctx)
	if w, ok := s.WriterBackend(); !ok || s.Writer != 1 || s.Epoch != 2 {
		t.Fatalf("after promotion writer %v %v index %d epoch %d", w, ok, s.Writer, s.Epoch)
	}
	// The old writer comes back still claiming to be a writer: the current one keeps its place.
	f[0].set(Result{Role: topology.RoleWriter}, nil)
	m.ProbeOnce(ctx)
	s = m.ProbeOnce(ctx)
	if s.Writer != 1 || s.Epoch != 2 {
		t.Fatalf("returning old writer took over: writer %d epoch %d", s.Writer, s.Epoch)
	}
}

func TestMonitorRunProbesEveryIntervalAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, f, snaps := newTestMonitor(t, 1)
		f[0].set(Result{Role: topology.RoleWriter}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			m.Run(ctx)
			close(done)
		}()
		time.Sleep(5*m.o.Interval + m.o.Interval/2)
		synctest.Wait()
		if n := len(*snaps); n != 5 {
			t.Errorf("published %d snapshots in 5.5 intervals, want 5", n)
		}
		cancel()
		<-done
		if !f[0].closed {
			t.Error("prober not closed when Run stopped")
		}
	})
}

func TestMonitorLagOfCaughtUpAndStalledReplicas(t *testing.T) {
	m, f, _ := newTestMonitor(t, 3)
	ctx := context.Background()
	// The primary is idle at position 500: a replica at 500 whose last
	// replayed transaction is old is caught up (lag 0); one stuck at 400 is
	// as far behind as its last replayed transaction is old.
	f[0].set(Result{Role: topology.RoleWriter, Position: 500}, nil)
	f[1].set(Result{Role: topology.RoleReader, Position: 500, Lag: time.Hour}, nil)
	f[2].set(Result{Role: topology.RoleReader, Position: 400, Lag: time.Hour}, nil)
	s := m.ProbeOnce(ctx)
	if s.Backends[1].Lag != 0 {
		t.Errorf("caught-up replica lag = %v, want 0", s.Backends[1].Lag)
	}
	if s.Backends[2].Lag != time.Hour {
		t.Errorf("stalled replica lag = %v, want 1h", s.Backends[2].Lag)
	}
	if got := s.Readers(nil, 10*time.Second); len(got) != 1 || got[0] != 1 {
		t.Errorf("readers within 10s = %v, want only the caught-up one", got)
	}
}
