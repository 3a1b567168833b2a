package fleet

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
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

// sees reports whether f's view of member holds exactly v (by encoding).
func sees(f *Fleet, member string, v Verdict) bool {
	got, ok := f.Members()[member]
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
	d := waitFor(t, 10*time.Second, "all see 3 members", func() bool {
		for _, n := range nodes {
			if len(n.Members()) != 3 {
				return false
			}
		}
		return true
	})
	t.Logf("membership converged in %v", d)

	const maxAge = 5 * time.Second
	publish := func(vs map[*Fleet]Verdict) {
		t.Helper()
		for n, v := range vs {
			if err := n.Publish(v); err != nil {
				t.Fatalf("%s publish: %v", n.Name(), err)
			}
		}
		d := waitFor(t, 10*time.Second, "verdicts spread", func() bool {
			for _, n := range nodes {
				if len(n.Members()) != len(nodes) {
					return false
				}
				for m, v := range vs {
					if !sees(n, m.Name(), v) {
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

	// 2 of 3 report the writer down: every node agrees it is down.
	publish(map[*Fleet]Verdict{a: wDown, b: wDown, c: wUp})
	for _, n := range nodes {
		if down, r := n.WriterDown("pg-1", time.Now(), maxAge); !down {
			t.Errorf("%s: 2 of 3 down, not declared down: %s", n.Name(), r)
		}
		if got := LeaderOf(n.Members()); got != "sluice-a" {
			t.Errorf("%s: leader %q", n.Name(), got)
		}
		if e, w, ok := HighestEpoch(n.Members()); e != 4 || w != "pg-1" || !ok {
			t.Errorf("%s: HighestEpoch %d %q %v", n.Name(), e, w, ok)
		}
	}

	// Only 1 of 3: nobody declares it down.
	wUp.At = time.Now()
	publish(map[*Fleet]Verdict{b: wUp})
	for _, n := range nodes {
		if down, r := n.WriterDown("pg-1", time.Now(), maxAge); down {
			t.Errorf("%s: 1 of 3 down, declared down: %s", n.Name(), r)
		}
	}

	// c dies: the others drop it, and 2 of the 3 configured still make a quorum.
	_ = c.Shutdown()
	nodes = nodes[:2]
	d = waitFor(t, 15*time.Second, "a and b drop c", func() bool {
		return len(a.Members()) == 2 && len(b.Members()) == 2
	})
	t.Logf("dead member dropped in %v", d)
	wDown.At = time.Now()
	publish(map[*Fleet]Verdict{a: wDown, b: wDown})
	for _, n := range nodes {
		if !n.CanAct() {
			t.Errorf("%s: 2 of 3 live, cannot act", n.Name())
		}
		if down, r := n.WriterDown("pg-1", time.Now(), maxAge); !down {
			t.Errorf("%s: 2 of 3 down with c dead, not declared down: %s", n.Name(), r)
		}
	}

	// b dies too: a alone never reaches quorum, whatever it sees itself.
	_ = b.Shutdown()
	d = waitFor(t, 15*time.Second, "a drops b", func() bool { return len(a.Members()) == 1 })
	t.Logf("second dead member dropped in %v", d)
	wDown.At = time.Now()
	if err := a.Publish(wDown); err != nil {
		t.Fatal(err)
	}
	if a.CanAct() {
		t.Error("a alone in a fleet of 3 can act")
	}
	down, r := a.WriterDown("pg-1", time.Now(), maxAge)
	if down || !strings.Contains(r, "sees 1 of 3") {
		t.Errorf("a alone: down=%v (%s)", down, r)
	}
}

func TestFleetAlone(t *testing.T) {
	f := newNode(t, "solo", 1, nil)
	if m := f.Members(); len(m) != 1 || !m["solo"].At.IsZero() {
		t.Fatalf("before publishing: %+v", m)
	}
	if down, _ := f.WriterDown("pg-1", time.Now(), time.Second); down {
		t.Error("down without any verdict")
	}
	if err := f.Publish(Verdict{Epoch: 1, Writer: "pg-1", Down: []string{"pg-1"}, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if down, r := f.WriterDown("pg-1", time.Now(), time.Second); !down {
		t.Errorf("fleet of 1: not down (%s)", r)
	}
	big := Verdict{Positions: map[string]uint64{}}
	for i := range MaxBackends {
		big.Positions[strings.Repeat("n", 20)+string(rune('a'+i))] = 1
	}
	if err := f.Publish(big); !errors.Is(err, ErrVerdictTooLarge) {
		t.Errorf("oversized publish: %v", err)
	}
	if v := f.Members()["solo"]; v.Epoch != 1 {
		t.Errorf("failed publish replaced the verdict: %+v", v)
	}
	if err := f.Leave(time.Second); err != nil {
		t.Errorf("leave: %v", err)
	}
	if err := f.Shutdown(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := f.Shutdown(); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
	if m := f.Members(); len(m) != 1 || m["solo"].Epoch != 1 {
		t.Errorf("after shutdown: %+v", m)
	}
}

func TestFleetSecretKey(t *testing.T) {
	key := []byte("0123456789abcdef")
	a := newNode(t, "k-a", 2, key)
	b := newNode(t, "k-b", 2, key)
	if _, err := b.Join([]string{a.Addr()}); err != nil {
		t.Fatalf("join with the same key: %v", err)
	}
	waitFor(t, 10*time.Second, "keyed members converge", func() bool { return len(a.Members()) == 2 && len(b.Members()) == 2 })
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
