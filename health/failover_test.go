package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/health/fleet"
	"github.com/sluicedb/sluice/topology"
)

// fakeFleet is an in-memory gossip shared by several Monitors. Each Monitor
// gets a view (fleetView) with its own member name. The test decides which
// members each instance can reach, to simulate partitions and stopped
// instances; an instance always sees its own verdict.
type fakeFleet struct {
	mu       sync.Mutex
	size     int
	verdicts map[string]map[string]fleet.Verdict // cluster → member → latest verdict
	cut      map[[2]string]bool                  // {from, to}: from does not see to
	gone     map[string]bool                     // members no one else sees (stopped)
	pubErr   error                               // returned by every Publish (the verdict is stored all the same)
}

func newFakeFleet(size int) *fakeFleet {
	return &fakeFleet{size: size, verdicts: map[string]map[string]fleet.Verdict{},
		cut: map[[2]string]bool{}, gone: map[string]bool{}}
}

func (f *fakeFleet) view(name string) *fleetView { return &fleetView{f: f, name: name} }

// partition makes a and b unable to see each other.
func (f *fakeFleet) partition(a, b string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut[[2]string{a, b}], f.cut[[2]string{b, a}] = true, true
}

// isolate makes name see no one and no one see name.
func (f *fakeFleet) isolate(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gone[name] = true
}

// heal makes everyone see everyone again.
func (f *fakeFleet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.cut)
	clear(f.gone)
}

// stored returns the verdict name last published on cluster c.
func (f *fakeFleet) stored(c, name string) (fleet.Verdict, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.verdicts[c][name]
	return v, ok
}

func cloneVerdict(v fleet.Verdict) fleet.Verdict {
	v.Down = slices.Clone(v.Down)
	v.Positions = maps.Clone(v.Positions)
	return v
}

type fleetView struct {
	f    *fakeFleet
	name string
}

func (v *fleetView) Name() string   { return v.name }
func (v *fleetView) FleetSize() int { return v.f.size }

func (v *fleetView) Publish(cluster string, vd fleet.Verdict) error {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	if v.f.verdicts[cluster] == nil {
		v.f.verdicts[cluster] = map[string]fleet.Verdict{}
	}
	v.f.verdicts[cluster][v.name] = cloneVerdict(vd)
	return v.f.pubErr
}

func (v *fleetView) Members(cluster string) map[string]fleet.Verdict {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	out := map[string]fleet.Verdict{}
	for name, vd := range v.f.verdicts[cluster] {
		if name != v.name && (v.f.gone[v.name] || v.f.gone[name] || v.f.cut[[2]string{v.name, name}]) {
			continue
		}
		out[name] = cloneVerdict(vd)
	}
	return out
}

// fakePromoter records its calls. On a successful Promote it runs
// onPromote (the test makes the backend report itself writer there).
type fakePromoter struct {
	mu        sync.Mutex
	err       error // returned by Promote while set
	promotes  []string
	follows   []string // "replica->writer"
	onPromote func(b topology.Backend)
}

func (p *fakePromoter) Promote(_ context.Context, b topology.Backend) error {
	p.mu.Lock()
	p.promotes = append(p.promotes, b.Name)
	err, hook := p.err, p.onPromote
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if hook != nil {
		hook(b)
	}
	return nil
}

func (p *fakePromoter) Follow(_ context.Context, r, w topology.Backend) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.follows = append(p.follows, r.Name+"->"+w.Name)
	return nil
}

func (p *fakePromoter) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *fakePromoter) calls() (promotes, follows []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.promotes), slices.Clone(p.follows)
}

// Backends of every test cluster, in configuration order.
var testBackends = []string{"pg0", "pg1", "pg2"}

const (
	pg0 = iota
	pg1
	pg2
)

// instance is one Sluice proxy: a Monitor with its own probers.
type instance struct {
	name   string
	m      *Monitor
	probes []*fakeProber // by backend index
	last   *topology.Snapshot
}

// rig is a fleet of instances watching the same backends.
type rig struct {
	t     *testing.T
	fl    *fakeFleet // nil: lone instances
	prom  *fakePromoter
	insts map[string]*instance
	order []string
	// state is what every backend answers, as the backends themselves see
	// it; override (by instance, then backend) replaces it for one
	// instance (a proxy that cannot reach the backend).
	state    []Result
	stateErr []error
}

func newRig(t *testing.T, fl *fakeFleet, prom *fakePromoter) *rig {
	r := &rig{t: t, fl: fl, prom: prom, insts: map[string]*instance{},
		state: make([]Result, len(testBackends)), stateErr: make([]error, len(testBackends))}
	if prom != nil && prom.onPromote == nil {
		// A successful promotion makes the backend a writer, for every
		// proxy that can reach it.
		prom.onPromote = func(b topology.Backend) {
			i := slices.Index(testBackends, b.Name)
			r.set(i, Result{Role: topology.RoleWriter, Position: r.state[i].Received, Received: r.state[i].Received}, nil)
		}
	}
	return r
}

// add starts an instance named name (replacing any earlier one of that
// name: a restart) whose probers answer the rig's current backend state.
func (r *rig) add(name string) *instance {
	r.t.Helper()
	var bs []topology.Backend
	for _, n := range testBackends {
		bs = append(bs, topology.Backend{Name: n, Addr: n + ":5432"})
	}
	in := &instance{name: name}
	for i := range testBackends {
		p := &fakeProber{}
		p.set(r.state[i], r.stateErr[i])
		in.probes = append(in.probes, p)
	}
	o := MonitorOptions{
		Cluster:  "c",
		Backends: bs,
		NewProber: func(b topology.Backend) Prober {
			return in.probes[slices.Index(testBackends, b.Name)]
		},
		Failures:  3,
		Successes: 2,
		Metrics:   admin.NewMetrics(),
		Logger:    slog.New(slog.DiscardHandler),
		Publish:   func(*topology.Snapshot) {},
	}
	if r.fl != nil {
		o.Fleet = r.fl.view(name)
	}
	if r.prom != nil {
		o.Promoter = r.prom
	}
	in.m = NewMonitor(o)
	if _, ok := r.insts[name]; !ok {
		r.order = append(r.order, name)
	}
	r.insts[name] = in
	return in
}

// set makes backend i answer res/err to every instance.
func (r *rig) set(i int, res Result, err error) {
	r.state[i], r.stateErr[i] = res, err
	for _, in := range r.insts {
		in.probes[i].set(res, err)
	}
}

// setOn makes backend i answer res/err to instance name only.
func (r *rig) setOn(name string, i int, res Result, err error) {
	r.insts[name].probes[i].set(res, err)
}

// healthy sets the usual healthy cluster: pg0 the writer at 100, pg1 and
// pg2 replicas at different positions.
func (r *rig) healthy() {
	r.set(pg0, Result{Role: topology.RoleWriter, Position: 100, Received: 100}, nil)
	r.set(pg1, Result{Role: topology.RoleReader, Position: 90, Received: 95}, nil)
	r.set(pg2, Result{Role: topology.RoleReader, Position: 80, Received: 85}, nil)
}

// round runs one probe round on each named instance, in order (all of them
// in creation order when none is named).
func (r *rig) round(names ...string) {
	r.t.Helper()
	if len(names) == 0 {
		names = r.order
	}
	for _, n := range names {
		in := r.insts[n]
		in.last = in.m.ProbeOnce(context.Background())
	}
}

func (r *rig) rounds(k int, names ...string) {
	r.t.Helper()
	for range k {
		r.round(names...)
	}
}

func (r *rig) snap(name string) *topology.Snapshot { return r.insts[name].last }

// want describes the expected snapshot of one instance.
type want struct {
	epoch  uint64
	writer string // WriterName(); "" for none
	usable bool   // WriterBackend's ok
	held   bool
	fenced []string
}

func checkSnap(t *testing.T, label string, s *topology.Snapshot, w want) {
	t.Helper()
	if s == nil {
		t.Fatalf("%s: no snapshot", label)
	}
	_, ok := s.WriterBackend()
	var fenced []string
	for _, b := range s.Backends {
		if b.Fenced {
			fenced = append(fenced, b.Name)
		}
	}
	if s.Epoch != w.epoch || s.WriterName() != w.writer || ok != w.usable || (s.Held != "") != w.held || !slices.Equal(fenced, w.fenced) {
		t.Fatalf("%s: epoch %d writer %q usable %v held %q fenced %v; want epoch %d writer %q usable %v held %v fenced %v",
			label, s.Epoch, s.WriterName(), ok, s.Held, fenced, w.epoch, w.writer, w.usable, w.held, w.fenced)
	}
	if s.Writer >= 0 && s.Backends[s.Writer].Fenced {
		t.Fatalf("%s: the writer %s is fenced", label, s.WriterName())
	}
	for _, i := range s.Readers(nil, 0) {
		if s.Backends[i].Fenced || s.Backends[i].Role != topology.RoleReader {
			t.Fatalf("%s: Readers() includes %+v", label, s.Backends[i])
		}
	}
}

func (r *rig) check(name string, w want) {
	r.t.Helper()
	checkSnap(r.t, name, r.snap(name), w)
}

func (r *rig) decision(name string) string { return r.insts[name].m.Fleet().Decision }

func wantDecision(t *testing.T, label, got string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(got, s) {
			t.Fatalf("%s: decision %q does not mention %q", label, got, s)
		}
	}
}

func (r *rig) wantCalls(promotes, follows []string) {
	r.t.Helper()
	p, f := r.prom.calls()
	if !slices.Equal(p, promotes) || !slices.Equal(f, follows) {
		r.t.Fatalf("promoter calls: promote %v follow %v; want promote %v follow %v", p, f, promotes, follows)
	}
}

func readerNames(s *topology.Snapshot) []string {
	var out []string
	for _, i := range s.Readers(nil, 0) {
		out = append(out, s.Backends[i].Name)
	}
	return out
}

// 1. A lone instance promotes the most advanced replica when its writer dies.
func TestFailoverLonePromotes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		r := newRig(t, nil, prom)
		r.healthy()
		in := r.add("solo")
		r.round()
		r.check("solo", want{epoch: 1, writer: "pg0", usable: true})
		if v := in.m.Fleet().Members["self"]; v.Epoch != 0 {
			t.Fatalf("first verdict %+v: formed before the bootstrap", v)
		}
		r.round()
		wantDecision(t, "bootstrap", r.decision("solo"), "writer pg0 at epoch 1")
		fs := in.m.Fleet()
		if fs.Self != "" || fs.Size != 1 || !fs.CanAct || len(fs.Members) != 1 || fs.Failovers != 0 {
			t.Fatalf("lone fleet status %+v", fs)
		}
		if v := fs.Members[fs.Leader]; v.Epoch != 1 || v.Writer != "pg0" || len(v.Down) != 0 {
			t.Fatalf("lone verdict %+v (leader %q)", v, fs.Leader)
		}

		// The writer fails: two failures leave it up (Failures = 3).
		r.set(pg0, Result{}, errDown)
		r.rounds(2)
		r.check("solo", want{epoch: 1, writer: "pg0", usable: true})
		r.wantCalls(nil, nil)

		// The third takes it down and the instance, its own quorum, promotes
		// pg1: the replica that has received the most (95 > 85).
		probesBefore := in.probes[pg1].probes
		r.round()
		r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
		// The monitor re-probed pg1 right after promoting it, so this very
		// round's snapshot already has a usable writer.
		if got := in.probes[pg1].probes - probesBefore; got != 2 {
			t.Fatalf("pg1 probed %d times in the failover round, want 2 (round + re-probe)", got)
		}
		r.check("solo", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		if got := readerNames(r.snap("solo")); !slices.Equal(got, []string{"pg2"}) {
			t.Fatalf("readers %v", got)
		}
		fs = in.m.Fleet()
		if fs.Failovers != 1 {
			t.Fatalf("failovers %d", fs.Failovers)
		}
		wantDecision(t, "promote", fs.Decision, "writer pg1 at epoch 2", admin.FailoverPromote, "pg0 went down")

		// Quiet rounds: nothing more happens.
		r.rounds(5)
		r.check("solo", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
	})
}

// 1b. Candidate choice: promotion applies everything received, so the
// replica that received the most wins even if another replayed more.
func TestFailoverPromotesMostReceived(t *testing.T) {
	prom := &fakePromoter{}
	r := newRig(t, nil, prom)
	r.set(pg0, Result{Role: topology.RoleWriter, Position: 100, Received: 100}, nil)
	r.set(pg1, Result{Role: topology.RoleReader, Position: 70, Received: 99}, nil) // received more, replays slowly
	r.set(pg2, Result{Role: topology.RoleReader, Position: 90, Received: 90}, nil)
	r.add("solo")
	r.round()
	r.set(pg0, Result{}, errDown)
	r.rounds(3)
	r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
	r.check("solo", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
}

// 1c. Without a Promoter a lone instance waits, then discovers a backend
// promoted by someone else.
func TestFailoverLoneDiscovers(t *testing.T) {
	r := newRig(t, nil, nil)
	r.healthy()
	in := r.add("solo")
	r.round()
	r.set(pg0, Result{}, errDown)
	r.rounds(3)
	r.check("solo", want{epoch: 1, writer: "pg0"})
	wantDecision(t, "no promoter", r.decision("solo"), "pg0 is down", "promotion is off")
	r.rounds(3)
	r.check("solo", want{epoch: 1, writer: "pg0"})

	// An operator promotes pg2.
	r.set(pg2, Result{Role: topology.RoleWriter, Position: 85, Received: 85}, nil)
	r.round()
	r.check("solo", want{epoch: 2, writer: "pg2", usable: true, fenced: []string{"pg0"}})
	fs := in.m.Fleet()
	wantDecision(t, "discover", fs.Decision, "writer pg2 at epoch 2", admin.FailoverDiscover)
	if fs.Failovers != 1 {
		t.Fatalf("failovers %d", fs.Failovers)
	}
}

// 1d. A promotion whose re-probe fails must not look like a replica to
// the next round: that would promote a second replica.
func TestFailoverPromotedReprobeFails(t *testing.T) {
	prom := &fakePromoter{}
	r := newRig(t, nil, prom)
	r.healthy()
	in := r.add("solo")
	prom.onPromote = func(topology.Backend) {
		// Promoted, but the monitoring connection hiccups for a round.
		r.set(pg1, Result{}, errDown)
	}
	r.round()
	r.set(pg0, Result{}, errDown)
	r.rounds(3)
	r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
	r.round() // still failing, once more: no second promotion
	r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
	r.check("solo", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
	r.set(pg1, Result{Role: topology.RoleWriter, Position: 95, Received: 95}, nil)
	r.rounds(2)
	r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
	r.check("solo", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
	if fs := in.m.Fleet(); fs.Failovers != 1 {
		t.Fatalf("failovers %d", fs.Failovers)
	}
}

func newFleetRig(t *testing.T, prom *fakePromoter, names ...string) *rig {
	r := newRig(t, newFakeFleet(len(names)), prom)
	r.healthy()
	for _, n := range names {
		r.add(n)
	}
	return r
}

// 2. Three instances all see the writer die: only the leader promotes, the
// others adopt its epoch.
func TestFailoverFleetLeaderPromotes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		r := newFleetRig(t, prom, "a", "b", "c")
		r.round()
		// a ran first and saw only itself: it held writes.
		r.check("a", want{epoch: 1, writer: "pg0", held: true})
		r.round()
		for _, n := range r.order {
			r.check(n, want{epoch: 1, writer: "pg0", usable: true})
			fs := r.insts[n].m.Fleet()
			if fs.Self != n || fs.Size != 3 || !fs.CanAct || fs.Leader != "a" {
				t.Fatalf("%s: fleet status %+v", n, fs)
			}
		}
		if fs := r.insts["c"].m.Fleet(); len(fs.Members) != 3 {
			t.Fatalf("c sees members %v", slices.Collect(maps.Keys(fs.Members)))
		}

		r.set(pg0, Result{}, errDown)
		r.rounds(2)
		r.wantCalls(nil, nil)
		// Round 3: a goes first and is alone in seeing pg0 down (b and c
		// have not run their third round yet).
		r.round("a")
		r.check("a", want{epoch: 1, writer: "pg0"})
		wantDecision(t, "a", r.decision("a"), "no failover", "1 of 3")
		r.round("b", "c")
		r.wantCalls(nil, nil)
		for _, n := range []string{"b", "c"} {
			r.check(n, want{epoch: 1, writer: "pg0"})
			wantDecision(t, n, r.decision(n), "waiting for the leader a")
		}
		// Round 4: a sees the quorum and promotes; b and c adopt.
		r.round()
		r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
		for _, n := range r.order {
			r.check(n, want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		}
		if fs := r.insts["a"].m.Fleet(); fs.Failovers != 1 {
			t.Fatalf("a failovers %d", fs.Failovers)
		}
		for _, n := range []string{"b", "c"} {
			fs := r.insts[n].m.Fleet()
			if fs.Failovers != 0 {
				t.Fatalf("%s failovers %d", n, fs.Failovers)
			}
			wantDecision(t, n, fs.Decision, "adopted from the fleet")
		}
		if v, _ := r.fl.stored("c", "a"); v.Epoch != 2 || v.Writer != "pg1" {
			t.Fatalf("a's published verdict %+v", v)
		}
		r.rounds(5)
		r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
		for _, n := range r.order {
			r.check(n, want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		}
	})
}

// 2b. The leader is stopped: the next lowest name leads.
func TestFailoverFleetLeaderStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		r := newFleetRig(t, prom, "a", "b", "c")
		r.round()
		r.fl.isolate("a") // a stops; memberlist drops it
		r.set(pg0, Result{}, errDown)
		r.rounds(4, "b", "c")
		r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
		r.check("b", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		r.check("c", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		if fs := r.insts["b"].m.Fleet(); fs.Leader != "b" || fs.Failovers != 1 || len(fs.Members) != 2 {
			t.Fatalf("b fleet status %+v", fs)
		}
	})
}

// 3. Only one instance loses the writer: no failover; that instance has no
// usable writer, the others keep it.
func TestFailoverPartialView(t *testing.T) {
	for _, lost := range []string{"a", "c"} { // the leader, and a follower
		t.Run(lost, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				prom := &fakePromoter{}
				r := newFleetRig(t, prom, "a", "b", "c")
				r.round()
				r.setOn(lost, pg0, Result{}, errDown)
				r.rounds(10)
				r.wantCalls(nil, nil)
				for _, n := range r.order {
					r.check(n, want{epoch: 1, writer: "pg0", usable: n != lost})
				}
				wantDecision(t, lost, r.decision(lost), "no failover", "1 of 3")
				if fs := r.insts[lost].m.Fleet(); !fs.CanAct || fs.Failovers != 0 {
					t.Fatalf("fleet status %+v", fs)
				}
			})
		})
	}
}

// 4. An instance that sees fewer than a majority holds writes and never
// promotes.
func TestFailoverMinorityHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		r := newFleetRig(t, prom, "a", "b", "c")
		r.round()
		r.fl.isolate("c")
		r.round()
		r.check("a", want{epoch: 1, writer: "pg0", usable: true})
		r.check("c", want{epoch: 1, writer: "pg0", held: true})
		fs := r.insts["c"].m.Fleet()
		if fs.CanAct || fs.Leader != "c" || len(fs.Members) != 1 || fs.Size != 3 {
			t.Fatalf("c fleet status %+v", fs)
		}
		if s := r.snap("c"); !strings.Contains(s.Held, "1 of 3") {
			t.Fatalf("held %q", s.Held)
		}

		// Its writer dies, and a replica even reports itself writer: c
		// still changes nothing.
		r.setOn("c", pg0, Result{}, errDown)
		r.rounds(10, "c")
		r.setOn("c", pg1, Result{Role: topology.RoleWriter, Position: 95}, nil)
		r.rounds(5, "c")
		r.wantCalls(nil, nil)
		r.check("c", want{epoch: 1, writer: "pg0", held: true, fenced: []string{"pg1"}})
		if fs := r.insts["c"].m.Fleet(); fs.Failovers != 0 {
			t.Fatalf("c failovers %d", fs.Failovers)
		}

		// A fresh instance in a minority bootstraps, but holds writes.
		r.fl.isolate("d")
		r.add("d")
		r.round("d")
		r.check("d", want{epoch: 1, writer: "pg0", held: true})
	})
}

// 5. Verdicts older than VerdictMaxAge do not count towards the quorum.
func TestFailoverStaleVerdicts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		r := newFleetRig(t, prom, "a", "b", "c")
		r.round()
		// b and c see pg0 die and say so; a still sees it.
		r.setOn("b", pg0, Result{}, errDown)
		r.setOn("c", pg0, Result{}, errDown)
		r.rounds(3, "b", "c")
		wantDecision(t, "c", r.decision("c"), "waiting for the leader a")
		r.wantCalls(nil, nil)

		// b and c hang (still members, but silent) past VerdictMaxAge.
		maxAge := r.insts["a"].m.o.VerdictMaxAge
		time.Sleep(maxAge + time.Second)
		r.setOn("a", pg0, Result{}, errDown)
		r.rounds(6, "a")
		r.wantCalls(nil, nil)
		r.check("a", want{epoch: 1, writer: "pg0"})
		wantDecision(t, "a", r.decision("a"), "1 of 3", "ignored stale [b,c]")
		if fs := r.insts["a"].m.Fleet(); !fs.CanAct || len(fs.Members) != 3 {
			t.Fatalf("a fleet status %+v", fs)
		}

		// c wakes up: two fresh verdicts, a (the leader) promotes.
		r.round("c")
		r.round("a")
		r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
		r.check("a", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		wantDecision(t, "a", r.decision("a"), "2 of 3", "[a,c]", "ignored stale [b]")
	})
}

// 6. A returning old writer is fenced, by the instances that failed over
// and by a fresh one; a fresh lone instance refuses to choose.
func TestFailoverFencesOldWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		r := newFleetRig(t, prom, "a", "b", "c")
		r.round()
		r.set(pg0, Result{}, errDown)
		r.rounds(4)
		r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})

		// pg0 comes back, still a writer (it never learnt of the failover).
		r.set(pg0, Result{Role: topology.RoleWriter, Position: 100, Received: 100}, nil)
		r.round()
		for _, n := range r.order {
			// One success is not enough to bring it back (Successes = 2).
			r.check(n, want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		}
		r.round()
		for _, n := range r.order {
			r.check(n, want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
			if got := readerNames(r.snap(n)); !slices.Equal(got, []string{"pg2"}) {
				t.Fatalf("%s readers %v", n, got)
			}
		}

		// c restarts: a fresh Monitor that adopts the fleet's epoch rather
		// than bootstrapping (it sees two writers).
		r.add("c")
		r.round("c")
		r.check("c", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		wantDecision(t, "c", r.decision("c"), "adopted from the fleet")
		r.round()
		for _, n := range r.order {
			r.check(n, want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		}
		r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})

		// A new member d (beyond the configured size) joins the same way.
		r.add("d")
		r.round("d")
		r.check("d", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})

		// A lone fresh instance has no epoch to go by: it refuses.
		lone := newRig(t, nil, nil)
		copy(lone.state, r.state)
		lone.add("solo")
		lone.rounds(3)
		lone.check("solo", want{})
		wantDecision(t, "solo", lone.decision("solo"), "refusing writes", "pg0", "pg1")
		if got := readerNames(lone.snap("solo")); !slices.Equal(got, []string{"pg2"}) {
			t.Fatalf("lone readers %v", got)
		}
	})
}

// 6b. The old writer returns to a lone instance that promoted: fenced.
func TestFailoverLoneFencesOldWriter(t *testing.T) {
	prom := &fakePromoter{}
	r := newRig(t, nil, prom)
	r.healthy()
	r.add("solo")
	r.round()
	r.set(pg0, Result{}, errDown)
	r.rounds(3)
	r.set(pg0, Result{Role: topology.RoleWriter, Position: 100}, nil)
	r.rounds(2)
	r.check("solo", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
	r.rounds(3)
	r.check("solo", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
	r.wantCalls([]string{"pg1"}, []string{"pg2->pg1"})
}

// 7. A failed promotion changes nothing and is retried at the next round.
func TestFailoverPromoteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		prom.setErr(errors.New("permission denied"))
		r := newFleetRig(t, prom, "a", "b", "c")
		r.round()
		r.set(pg0, Result{}, errDown)
		r.rounds(4)
		r.wantCalls([]string{"pg1"}, nil)
		for _, n := range r.order {
			r.check(n, want{epoch: 1, writer: "pg0"})
		}
		wantDecision(t, "a", r.decision("a"), "promote pg1", "permission denied")
		if fs := r.insts["a"].m.Fleet(); fs.Failovers != 0 {
			t.Fatalf("failovers %d", fs.Failovers)
		}
		if v, _ := r.fl.stored("c", "a"); v.Epoch != 1 {
			t.Fatalf("a published epoch %d after a failed promotion", v.Epoch)
		}
		r.round()
		r.wantCalls([]string{"pg1", "pg1"}, nil)

		prom.setErr(nil)
		r.round()
		r.wantCalls([]string{"pg1", "pg1", "pg1"}, []string{"pg2->pg1"})
		for _, n := range r.order {
			r.check(n, want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		}
		if fs := r.insts["a"].m.Fleet(); fs.Failovers != 1 {
			t.Fatalf("failovers %d", fs.Failovers)
		}
	})
}

// 7b. A promotion that failed but completed later is discovered.
func TestFailoverPromoteFailsButCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		prom.setErr(errors.New("pg_promote: still in recovery after 30 s (the promotion may yet complete)"))
		r := newFleetRig(t, prom, "a", "b", "c")
		r.round()
		r.set(pg0, Result{}, errDown)
		r.rounds(4)
		r.wantCalls([]string{"pg1"}, nil)
		r.set(pg1, Result{Role: topology.RoleWriter, Position: 95, Received: 95}, nil)
		r.round()
		r.wantCalls([]string{"pg1"}, nil)
		for _, n := range r.order {
			r.check(n, want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		}
		wantDecision(t, "a", r.decision("a"), admin.FailoverDiscover)
	})
}

// 8. The operator demotes the writer and promotes another backend, with no
// backend ever down: the fleet discovers the new writer once it agrees.
func TestFailoverRoleFlip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		r := newFleetRig(t, prom, "a", "b", "c")
		r.round()
		r.set(pg0, Result{Role: topology.RoleReader, Position: 100, Received: 100}, nil)
		r.set(pg2, Result{Role: topology.RoleWriter, Position: 100, Received: 100}, nil)
		// A writer answering as a replica counts as down only after
		// Failures (3) such answers: two rounds everywhere are not enough.
		r.round()
		r.round()
		wantDecision(t, "a", r.decision("a"), "no failover", "0 of 3")
		// a runs alone first: no quorum yet; pg2 is fenced meanwhile.
		r.round("a")
		r.check("a", want{epoch: 1, writer: "pg0", fenced: []string{"pg2"}})
		wantDecision(t, "a", r.decision("a"), "no failover", "1 of 3")
		r.round("b")
		r.check("b", want{epoch: 1, writer: "pg0", fenced: []string{"pg2"}})
		wantDecision(t, "b", r.decision("b"), "waiting for the leader a")
		r.round("c")
		r.round("a")
		// The replaced writer is fenced until it shows up as a replica,
		// which it does at its next probe.
		r.check("a", want{epoch: 2, writer: "pg2", usable: true, fenced: []string{"pg0"}})
		wantDecision(t, "a", r.decision("a"), admin.FailoverDiscover, "writer pg2 at epoch 2")
		r.round("b", "c")
		r.check("b", want{epoch: 2, writer: "pg2", usable: true, fenced: []string{"pg0"}})
		r.round()
		for _, n := range r.order {
			r.check(n, want{epoch: 2, writer: "pg2", usable: true})
			if got := readerNames(r.snap(n)); !slices.Equal(got, []string{"pg0", "pg1"}) {
				t.Fatalf("%s readers %v", n, got)
			}
		}
		r.wantCalls(nil, nil) // discovery, not promotion
	})
}

// Two backends other than the dead writer report themselves writers: the
// leader refuses to choose.
func TestFailoverTwoOtherWritersRefused(t *testing.T) {
	r := newRig(t, nil, nil)
	r.healthy()
	r.add("solo")
	r.round()
	r.set(pg0, Result{}, errDown)
	r.rounds(3) // the writer is down before the others claim to be writers
	r.set(pg1, Result{Role: topology.RoleWriter}, nil)
	r.set(pg2, Result{Role: topology.RoleWriter}, nil)
	r.round()
	r.check("solo", want{epoch: 1, writer: "pg0", fenced: []string{"pg1", "pg2"}})
	wantDecision(t, "solo", r.decision("solo"), "2 other backends accept writes", "refusing")
}

// A second writer that shows up while the writer is alive is a former
// primary: fenced for good, never discovered when the writer dies later.
func TestFailoverLiveSecondWriterNeverDiscovered(t *testing.T) {
	r := newRig(t, nil, nil)
	r.healthy()
	r.add("solo")
	r.round()
	r.set(pg2, Result{Role: topology.RoleWriter}, nil)
	r.round()
	r.check("solo", want{epoch: 1, writer: "pg0", usable: true, fenced: []string{"pg2"}})
	r.set(pg0, Result{}, errDown)
	r.rounds(4)
	r.check("solo", want{epoch: 1, writer: "pg0", fenced: []string{"pg2"}})
	wantDecision(t, "solo", r.decision("solo"), "no other backend accepts writes")
}

// Discovery never goes back to an older PostgreSQL timeline.
func TestFailoverDiscoveryTimeline(t *testing.T) {
	r := newRig(t, nil, nil)
	r.healthy()
	r.set(pg0, Result{Role: topology.RoleWriter, Timeline: 3}, nil)
	r.add("solo")
	r.round()
	r.set(pg0, Result{}, errDown)
	r.rounds(3)
	r.set(pg1, Result{Role: topology.RoleWriter, Timeline: 2}, nil) // a restarted old primary
	r.round()
	r.check("solo", want{epoch: 1, writer: "pg0", fenced: []string{"pg1"}})
	r.set(pg1, Result{Role: topology.RoleWriter, Timeline: 4}, nil) // promoted after pg0
	r.round()
	r.check("solo", want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
}

// No healthy replica: nothing to promote.
func TestFailoverNoCandidate(t *testing.T) {
	prom := &fakePromoter{}
	r := newRig(t, nil, prom)
	r.healthy()
	r.add("solo")
	r.round()
	for i := range testBackends {
		r.set(i, Result{}, errDown)
	}
	r.rounds(3)
	r.check("solo", want{epoch: 1, writer: "pg0"})
	wantDecision(t, "solo", r.decision("solo"), "no healthy replica")
	r.wantCalls(nil, nil)
}

// An epoch heard without an agreed writer is not adopted.
func TestFailoverAdoptNeedsAgreement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFleetRig(t, nil, "a", "b", "c")
		r.round()
		// Forge two members at epoch 5 that disagree.
		now := time.Now()
		r.insts["b"].m.o.Fleet.Publish("c", fleet.Verdict{Epoch: 5, Writer: "pg1", At: now})
		r.insts["c"].m.o.Fleet.Publish("c", fleet.Verdict{Epoch: 5, Writer: "pg2", At: now})
		r.round("a")
		// Not adopted, and writes are held until the fleet's writer is known.
		r.check("a", want{epoch: 1, writer: "pg0", held: true})
		wantDecision(t, "a", r.decision("a"), "epoch 5", "waiting")
		// An epoch naming a backend this instance does not know neither.
		r.insts["b"].m.o.Fleet.Publish("c", fleet.Verdict{Epoch: 6, Writer: "nope", At: now})
		r.round("a")
		r.check("a", want{epoch: 1, writer: "pg0", held: true})
		wantDecision(t, "a", r.decision("a"), "epoch 6", `"nope"`)
		// Once they agree, it is.
		r.insts["c"].m.o.Fleet.Publish("c", fleet.Verdict{Epoch: 7, Writer: "pg0", At: now})
		r.round("a")
		r.check("a", want{epoch: 7, writer: "pg0", usable: true})
	})
}

// Publish errors are logged, never fatal: the round goes on.
func TestFailoverPublishErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, err := range []error{fleet.ErrVerdictTooLarge, errors.New("timeout")} {
			r := newFleetRig(t, nil, "a")
			r.fl.pubErr = err
			r.round()
			r.check("a", want{epoch: 1, writer: "pg0", usable: true})
		}
	})
}

// The published verdict lists the writer as down when it no longer
// reports itself writer, and carries positions.
func TestFailoverVerdictContent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFleetRig(t, nil, "a")
		r.rounds(2)
		v, ok := r.fl.stored("c", "a")
		if !ok || v.Epoch != 1 || v.Writer != "pg0" || len(v.Down) != 0 || !v.At.Equal(time.Now()) {
			t.Fatalf("verdict %+v", v)
		}
		if want := map[string]uint64{"pg0": 100, "pg1": 90, "pg2": 80}; !maps.Equal(v.Positions, want) {
			t.Fatalf("positions %v", v.Positions)
		}
		r.set(pg0, Result{Role: topology.RoleReader, Position: 100}, nil)
		r.set(pg2, Result{}, errDown)
		r.rounds(3)
		v, _ = r.fl.stored("c", "a")
		if !slices.Equal(v.Down, []string{"pg0", "pg2"}) {
			t.Fatalf("down %v", v.Down)
		}
		if _, ok := v.Positions["pg2"]; ok {
			t.Fatalf("positions of a down backend: %v", v.Positions)
		}
	})
}

// Fleet() returns a copy the caller may change.
func TestFailoverFleetStatusIsACopy(t *testing.T) {
	r := newFleetRig(t, nil, "a", "b")
	r.rounds(2)
	fs := r.insts["a"].m.Fleet()
	delete(fs.Members, "a")
	fs.Members["x"] = fleet.Verdict{}
	if fs2 := r.insts["a"].m.Fleet(); len(fs2.Members) != 2 || fs2.Members["a"].Epoch != 1 {
		t.Fatalf("members %v", fmt.Sprint(fs2.Members))
	}
}

// Instances that bootstrapped apart, each seeing a different one of two
// writers (say while the fleet was still forming), end up at the same
// epoch with different writers: once they see each other, all hold writes
// rather than split the brain. A restart of the odd one out resolves it.
func TestFailoverConflictingBootstrapHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFleetRig(t, nil, "a", "b", "c")
		r.set(pg1, Result{Role: topology.RoleWriter, Position: 100}, nil)
		r.setOn("a", pg1, Result{}, errDown)
		r.setOn("b", pg0, Result{}, errDown)
		r.setOn("c", pg0, Result{}, errDown)
		for _, n := range r.order {
			r.fl.isolate(n)
		}
		r.round()
		r.check("a", want{epoch: 1, writer: "pg0", held: true})
		r.check("b", want{epoch: 1, writer: "pg1", held: true})
		r.fl.heal()
		r.rounds(3)
		r.check("a", want{epoch: 1, writer: "pg0", held: true})
		r.check("b", want{epoch: 1, writer: "pg1", held: true})
		r.check("c", want{epoch: 1, writer: "pg1", held: true})
		if s := r.snap("b"); !strings.Contains(s.Held, "fleet member a works under epoch 1 with writer pg0") {
			t.Fatalf("b held %q", s.Held)
		}
		wantDecision(t, "a", r.decision("a"), "holding writes", "writer pg1")

		// a restarts and learns the fleet's writer (pg1, agreed by b and c).
		r.add("a")
		r.setOn("a", pg1, Result{}, errDown) // still cannot reach it
		r.round()
		r.check("a", want{epoch: 1, writer: "pg1", fenced: []string{"pg0"}})
		r.check("b", want{epoch: 1, writer: "pg1", usable: true}) // b never reached pg0
		r.check("c", want{epoch: 1, writer: "pg1", usable: true})
	})
}

// Of several backends that accept writes, a fresh lone instance picks the
// one on the highest PostgreSQL timeline (the most recently promoted), and
// refuses when a timeline is unknown or shared.
func TestFailoverBootstrapByTimeline(t *testing.T) {
	for _, c := range []struct {
		tl0, tl1 uint32
		writer   string
		fenced   []string
	}{
		{1, 2, "pg1", []string{"pg0"}},
		{3, 2, "pg0", []string{"pg1"}},
		{2, 2, "", nil},
		{0, 2, "", nil},
	} {
		t.Run(fmt.Sprint(c.tl0, c.tl1), func(t *testing.T) {
			r := newRig(t, nil, nil)
			r.healthy()
			r.set(pg0, Result{Role: topology.RoleWriter, Position: 100, Timeline: c.tl0}, nil)
			r.set(pg1, Result{Role: topology.RoleWriter, Position: 100, Timeline: c.tl1}, nil)
			r.add("solo")
			r.round()
			w := want{writer: c.writer, fenced: c.fenced}
			if c.writer != "" {
				w.epoch, w.usable = 1, true
			} else {
				wantDecision(t, "solo", r.decision("solo"), "refusing writes")
			}
			r.check("solo", w)
		})
	}
}

// An asymmetric partition: a and b cannot see each other, c sees both. a
// and b each believe they lead (each sees a majority with itself lowest).
// Both act, but on the same backends they reach the same writer and epoch.
func TestFailoverAsymmetricPartitionTwoLeaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prom := &fakePromoter{}
		r := newFleetRig(t, prom, "a", "b", "c")
		r.fl.partition("a", "b")
		r.rounds(2)
		if la, lb, lc := r.insts["a"].m.Fleet().Leader, r.insts["b"].m.Fleet().Leader, r.insts["c"].m.Fleet().Leader; la != "a" || lb != "b" || lc != "a" {
			t.Fatalf("leaders %s %s %s", la, lb, lc)
		}
		r.set(pg0, Result{}, errDown)
		r.rounds(4)
		p, _ := prom.calls()
		for _, c := range p {
			if c != "pg1" {
				t.Fatalf("promoted %v", p)
			}
		}
		for _, n := range r.order {
			r.check(n, want{epoch: 2, writer: "pg1", usable: true, fenced: []string{"pg0"}})
		}
		// a promoted; b, not seeing a's epoch, found pg1 already a writer.
		wantDecision(t, "b", r.decision("b"), admin.FailoverDiscover)
		if fa, fb := r.insts["a"].m.Fleet().Failovers, r.insts["b"].m.Fleet().Failovers; fa != 1 || fb != 1 {
			t.Fatalf("failovers a %d b %d", fa, fb)
		}
	})
}
