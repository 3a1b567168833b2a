package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newNode(t *testing.T, name string, fleetSize int, key []byte) *Fleet {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.BindAddr = "127.0.0.1"
	cfg.BindPort = 0
	cfg.FleetSize = fleetSize
	cfg.SecretKey = key
	cfg.Logger = quiet
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	t.Cleanup(func() { _ = f.Shutdown() })
	return f
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// Two clusters one Sluice instance serves.
const (
	pg = "main_pg"
	my = "main_my"
)

// sees reports whether f's view of member's verdict for cluster is exactly
// v (by encoding).
func sees(f *Fleet, cluster, member string, v Verdict) bool {
	got, ok := f.Members(cluster)[member]
	if !ok {
		return false
	}
	a, _ := EncodeVerdict(got)
	b, _ := EncodeVerdict(v)
	return bytes.Equal(a, b)
}

func TestFleetQuorum(t *testing.T) {
	nodes := []*Fleet{newNode(t, "sluice-a", 3, nil), newNode(t, "sluice-b", 3, nil), newNode(t, "sluice-c", 3, nil)}
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes[1:] {
		if k, err := n.Join([]string{a.Addr()}); err != nil || k != 1 {
			t.Fatalf("%s join: %d %v", n.Name(), k, err)
		}
	}
	all3 := []string{"sluice-a", "sluice-b", "sluice-c"}
	d := waitFor(t, 10*time.Second, "all see 3 members", func() bool {
		for _, n := range nodes {
			if !slices.Equal(n.LiveMembers(), all3) {
				return false
			}
		}
		return true
	})
	t.Logf("membership converged in %v", d)
	for _, n := range nodes {
		// Nobody has published: every member is live, with a zero verdict.
		if m := n.Members(pg); len(m) != 3 || !m["sluice-b"].At.IsZero() {
			t.Errorf("%s: members before publishing: %+v", n.Name(), m)
		}
	}

	const maxAge = 5 * time.Second
	type pub struct {
		n       *Fleet
		cluster string
	}
	publish := func(vs map[pub]Verdict) {
		t.Helper()
		for p, v := range vs {
			if err := p.n.Publish(p.cluster, v); err != nil {
				t.Fatalf("%s publish %s: %v", p.n.Name(), p.cluster, err)
			}
		}
		d := waitFor(t, 10*time.Second, "verdicts spread", func() bool {
			for _, n := range nodes {
				if len(n.LiveMembers()) != len(nodes) {
					return false
				}
				for p, v := range vs {
					if !sees(n, p.cluster, p.n.Name(), v) {
						return false
					}
				}
			}
			return true
		})
		t.Logf("verdicts spread to %d nodes in %v", len(nodes), d)
	}
	now := time.Now()
	wDown := Verdict{Epoch: 4, Writer: "pg-1", Down: []string{"pg-1"}, Positions: map[string]uint64{"pg-2": 900, "pg-3": 800}, At: now}
	wUp := Verdict{Epoch: 4, Writer: "pg-1", Positions: map[string]uint64{"pg-2": 900, "pg-3": 800}, At: now}
	myDown := Verdict{Epoch: 9, Writer: "my-1", Down: []string{"my-1"}, At: now}
	myUp := Verdict{Epoch: 9, Writer: "my-1", Positions: map[string]uint64{"my-2": 5}, At: now}

	// 2 of 3 report the PostgreSQL writer down, only 1 of 3 the MySQL one:
	// every node agrees the first is down and the second is not.
	publish(map[pub]Verdict{
		{a, pg}: wDown, {b, pg}: wDown, {c, pg}: wUp,
		{a, my}: myDown, {b, my}: myUp, {c, my}: myUp,
	})
	for _, n := range nodes {
		if down, r := n.WriterDown(pg, "pg-1", time.Now(), maxAge); !down {
			t.Errorf("%s: 2 of 3 down, not declared down: %s", n.Name(), r)
		}
		if down, r := n.WriterDown(my, "my-1", time.Now(), maxAge); down {
			t.Errorf("%s: %s: 1 of 3 down, declared down: %s", n.Name(), my, r)
		}
		if down, r := n.WriterDown(my, "pg-1", time.Now(), maxAge); down {
			t.Errorf("%s: %s: a %s verdict counted: %s", n.Name(), my, pg, r)
		}
		if got := LeaderOf(n.Members(pg)); got != "sluice-a" {
			t.Errorf("%s: leader %q", n.Name(), got)
		}
		if e, w, ok := HighestEpoch(n.Members(pg)); e != 4 || w != "pg-1" || !ok {
			t.Errorf("%s: %s HighestEpoch %d %q %v", n.Name(), pg, e, w, ok)
		}
		if e, w, ok := HighestEpoch(n.Members(my)); e != 9 || w != "my-1" || !ok {
			t.Errorf("%s: %s HighestEpoch %d %q %v", n.Name(), my, e, w, ok)
		}
		if m := n.Members("nope"); len(m) != 3 || !m["sluice-a"].At.IsZero() {
			t.Errorf("%s: unknown cluster: %+v", n.Name(), m)
		}
	}

	// Only 1 of 3: nobody declares it down. b's MySQL verdict is untouched
	// by its new PostgreSQL one.
	wUp.At = time.Now()
	publish(map[pub]Verdict{{b, pg}: wUp})
	for _, n := range nodes {
		if down, r := n.WriterDown(pg, "pg-1", time.Now(), maxAge); down {
			t.Errorf("%s: 1 of 3 down, declared down: %s", n.Name(), r)
		}
		if !sees(n, my, "sluice-b", myUp) {
			t.Errorf("%s: b's %s verdict changed: %+v", n.Name(), my, n.Members(my)["sluice-b"])
		}
	}

	// c dies: the others drop it, and 2 of the 3 configured still make a quorum.
	_ = c.Shutdown()
	nodes = nodes[:2]
	d = waitFor(t, 15*time.Second, "a and b drop c", func() bool {
		return len(a.LiveMembers()) == 2 && len(b.LiveMembers()) == 2
	})
	t.Logf("dead member dropped in %v", d)
	if got := a.LiveMembers(); !slices.Equal(got, all3[:2]) {
		t.Errorf("a sees %v", got)
	}
	wDown.At = time.Now()
	publish(map[pub]Verdict{{a, pg}: wDown, {b, pg}: wDown})
	for _, n := range nodes {
		if !n.CanAct() {
			t.Errorf("%s: 2 of 3 live, cannot act", n.Name())
		}
		if down, r := n.WriterDown(pg, "pg-1", time.Now(), maxAge); !down {
			t.Errorf("%s: 2 of 3 down with c dead, not declared down: %s", n.Name(), r)
		}
	}

	// b dies too: a alone never reaches quorum, whatever it sees itself.
	_ = b.Shutdown()
	d = waitFor(t, 15*time.Second, "a drops b", func() bool { return len(a.LiveMembers()) == 1 })
	t.Logf("second dead member dropped in %v", d)
	wDown.At = time.Now()
	if err := a.Publish(pg, wDown); err != nil {
		t.Fatal(err)
	}
	if a.CanAct() {
		t.Error("a alone in a fleet of 3 can act")
	}
	down, r := a.WriterDown(pg, "pg-1", time.Now(), maxAge)
	if down || !strings.Contains(r, "sees 1 of 3") {
		t.Errorf("a alone: down=%v (%s)", down, r)
	}
}

func TestFleetAlone(t *testing.T) {
	f := newNode(t, "solo", 1, nil)
	if m := f.Members(pg); len(m) != 1 || !m["solo"].At.IsZero() {
		t.Fatalf("before publishing: %+v", m)
	}
	if got := f.LiveMembers(); !slices.Equal(got, []string{"solo"}) {
		t.Fatalf("live before publishing: %v", got)
	}
	if !f.CanAct() {
		t.Error("fleet of 1 cannot act")
	}
	if down, _ := f.WriterDown(pg, "pg-1", time.Now(), time.Second); down {
		t.Error("down without any verdict")
	}
	v := Verdict{Epoch: 1, Writer: "pg-1", Down: []string{"pg-1"}, Positions: map[string]uint64{"pg-2": 3}, At: time.Now()}
	if err := f.Publish(pg, v); err != nil {
		t.Fatal(err)
	}
	if err := f.Publish(my, Verdict{Epoch: 2, Writer: "my-1", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Publish keeps its own copy.
	v.Down[0], v.Positions["pg-2"] = "pg-9", 99
	if down, r := f.WriterDown(pg, "pg-1", time.Now(), time.Second); !down {
		t.Errorf("fleet of 1: not down (%s)", r)
	}
	if down, r := f.WriterDown(my, "my-1", time.Now(), time.Second); down {
		t.Errorf("fleet of 1: %s down (%s)", my, r)
	}
	if err := f.Publish("other", Verdict{Epoch: 3}); err != nil {
		t.Fatal(err)
	}
	if got := f.Members(pg)["solo"]; got.Epoch != 1 || !slices.Equal(got.Down, []string{"pg-1"}) || got.Positions["pg-2"] != 3 {
		t.Errorf("%s verdict after publishing others: %+v", pg, got)
	}

	// Failed publishes leave every cluster's verdict as it was.
	big := Verdict{Positions: map[string]uint64{}}
	for i := range MaxBackends {
		big.Positions[strings.Repeat("n", 20)+string(rune('a'+i))] = 1
	}
	if err := f.Publish(pg, big); !errors.Is(err, ErrVerdictTooLarge) {
		t.Errorf("oversized publish: %v", err)
	}
	// Each fits alone, not all together.
	medium := Verdict{Positions: map[string]uint64{}}
	for i := range 8 {
		medium.Positions[fmt.Sprintf("%030d", i)] = 1
	}
	if _, err := EncodeVerdict(medium); err != nil {
		t.Fatal(err)
	}
	if err := f.Publish("c1", medium); err != nil {
		t.Fatalf("first medium verdict: %v", err)
	}
	if err := f.Publish("c2", medium); !errors.Is(err, ErrVerdictTooLarge) {
		t.Errorf("state over the limit: %v", err)
	}
	if err := f.Publish("", Verdict{}); err == nil {
		t.Error("published for an empty cluster name")
	}
	if err := f.Publish("x", Verdict{Writer: "\xff"}); err == nil {
		t.Error("published an invalid backend name")
	}
	if m := f.Members("c2"); !m["solo"].At.IsZero() || m["solo"].Positions != nil {
		t.Errorf("failed publish stored a verdict: %+v", m)
	}
	check := func(when string) {
		t.Helper()
		if v := f.Members(pg)["solo"]; v.Epoch != 1 {
			t.Errorf("%s: %s verdict %+v", when, pg, v)
		}
		if v := f.Members(my)["solo"]; v.Epoch != 2 {
			t.Errorf("%s: %s verdict %+v", when, my, v)
		}
		if v := f.Members("c1")["solo"]; len(v.Positions) != 8 {
			t.Errorf("%s: c1 verdict %+v", when, v)
		}
	}
	check("after failed publishes")
	for i := range MaxClusters {
		err := f.Publish(fmt.Sprint("k", i), Verdict{})
		// pg, my, other, c1 and k0..k11 make MaxClusters.
		if wantErr := i >= MaxClusters-4; (err != nil) != wantErr {
			t.Errorf("cluster %d of %d: %v", i+4, MaxClusters, err)
		}
	}
	check("after too many clusters")

	if err := f.Leave(time.Second); err != nil {
		t.Errorf("leave: %v", err)
	}
	if err := f.Shutdown(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := f.Shutdown(); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	if m := f.Members(pg); len(m) != 1 || m["solo"].Epoch != 1 {
		t.Errorf("after shutdown: %+v", m)
	}
}

// Concurrent publishes for different clusters all land.
func TestFleetConcurrentPublish(t *testing.T) {
	f := newNode(t, "conc", 1, nil)
	var wg sync.WaitGroup
	for i := range MaxClusters {
		wg.Go(func() {
			for e := range 20 {
				if err := f.Publish(fmt.Sprint("c", i), Verdict{Epoch: uint64(e + 1), Writer: "w"}); err != nil {
					t.Errorf("publish c%d: %v", i, err)
					return
				}
				_ = f.Members("c0")
				_ = f.CanAct()
			}
		})
	}
	wg.Wait()
	for i := range MaxClusters {
		if v := f.Members(fmt.Sprint("c", i))["conc"]; v.Epoch != 20 || v.Writer != "w" {
			t.Errorf("c%d: %+v", i, v)
		}
	}
}

func TestFleetSecretKey(t *testing.T) {
	key := []byte("0123456789abcdef")
	a := newNode(t, "k-a", 2, key)
	b := newNode(t, "k-b", 2, key)
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("join with the same key: %v", err)
	}
	waitFor(t, 10*time.Second, "keyed members converge", func() bool { return len(a.LiveMembers()) == 2 && len(b.LiveMembers()) == 2 })
	c := newNode(t, "k-c", 2, []byte("fedcba9876543210"))
	if _, err := c.Join([]string{a.Addr()}); err == nil {
		t.Error("joined with a different key")
	}
	d := newNode(t, "k-d", 2, nil)
	if _, err := d.Join([]string{a.Addr()}); err == nil {
		t.Error("joined without a key")
	}
}

func TestNewRejects(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"fleet size 0":  func(c *Config) { c.FleetSize = 0 },
		"short key":     func(c *Config) { c.SecretKey = []byte("short") },
		"bad address":   func(c *Config) { c.BindAddr = "not an address" },
		"bad advertise": func(c *Config) { c.AdvertiseAddr = "sluice.local" },
	} {
		cfg := DefaultConfig()
		cfg.Name, cfg.BindAddr, cfg.BindPort, cfg.Logger = "x", "127.0.0.1", 0, quiet
		mod(&cfg)
		if f, err := New(cfg); err == nil {
			_ = f.Shutdown()
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.BindAddr != "0.0.0.0" || c.BindPort != 7946 || c.FleetSize != 1 || !c.Tuned || c.UpdateTimeout != time.Second || c.Logger != nil {
		t.Errorf("DefaultConfig = %+v", c)
	}
}

func TestLogBridge(t *testing.T) {
	var buf bytes.Buffer
	lb := &logBridge{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, line := range []string{"[DEBUG] memberlist: d\n", "[WARN] memberlist: w\n", "[ERR] memberlist: e\n", "plain\n"} {
		if n, err := lb.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write: %d %v", n, err)
		}
	}
	out := buf.String()
	for _, want := range []string{`level=DEBUG msg="memberlist: d"`, `level=WARN msg="memberlist: w"`, `level=ERROR msg="memberlist: e"`, "level=INFO msg=plain"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}
