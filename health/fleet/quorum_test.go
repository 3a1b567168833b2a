package fleet

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicedb/sluice/topology"
)

func TestMajority(t *testing.T) {
	for m, want := range map[int]int{-1: 0, 0: 0, 1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4} {
		if got := Majority(m); got != want {
			t.Errorf("Majority(%d) = %d, want %d", m, got, want)
		}
	}
	if CanAct(0, 5) || CanAct(3, 1) || !CanAct(3, 2) || !CanAct(1, 1) || CanAct(4, 2) || !CanAct(4, 3) {
		t.Error("CanAct wrong")
	}
}

func TestWriterDownQuorum(t *testing.T) {
	now := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	const maxAge = 2 * time.Second
	down := Verdict{Epoch: 1, Writer: "w", Down: []string{"w"}, At: now.Add(-time.Second)}
	up := Verdict{Epoch: 1, Writer: "w", At: now.Add(-time.Second)}
	stale := Verdict{Epoch: 1, Writer: "w", Down: []string{"w"}, At: now.Add(-3 * time.Second)}
	future := Verdict{Epoch: 1, Writer: "w", Down: []string{"w"}, At: now.Add(3 * time.Second)}
	skewed := Verdict{Epoch: 1, Writer: "w", Down: []string{"w"}, At: now.Add(time.Second)}
	undated := Verdict{Epoch: 1, Writer: "w", Down: []string{"w"}}
	other := Verdict{Epoch: 1, Writer: "w", Down: []string{"r1"}, At: now}
	for _, tc := range []struct {
		name    string
		m       int
		self    string
		members map[string]Verdict
		writer  string
		want    bool
		reason  string // substring of the reason
	}{
		{"lone instance decides alone", 1, "a", map[string]Verdict{"a": down}, "w", true, "1 of 1"},
		{"lone instance, writer up", 1, "a", map[string]Verdict{"a": up}, "w", false, "0 of 1"},
		{"lone instance, stale own verdict", 1, "a", map[string]Verdict{"a": stale}, "w", false, "stale [a]"},
		{"2 of 3 down", 3, "a", map[string]Verdict{"a": down, "b": down, "c": up}, "w", true, "[a,b]"},
		{"2 of 3 down, self sees up", 3, "c", map[string]Verdict{"a": down, "b": down, "c": up}, "w", true, ""},
		{"1 of 3 down", 3, "a", map[string]Verdict{"a": down, "b": up, "c": up}, "w", false, "1 of 3"},
		{"2 of 3 but one stale", 3, "a", map[string]Verdict{"a": down, "b": stale, "c": up}, "w", false, "stale [b]"},
		{"2 of 3 but one undated", 3, "a", map[string]Verdict{"a": down, "b": undated, "c": up}, "w", false, ""},
		{"clock skew within maxAge counts", 3, "a", map[string]Verdict{"a": down, "b": skewed}, "w", true, ""},
		{"far future does not count", 3, "a", map[string]Verdict{"a": down, "b": future}, "w", false, ""},
		{"down for another backend", 3, "a", map[string]Verdict{"a": down, "b": other}, "w", false, ""},
		{"partition: alone in 3", 3, "a", map[string]Verdict{"a": down}, "w", false, "sees 1 of 3"},
		{"partition: self missing counts", 3, "a", map[string]Verdict{"b": down}, "w", false, "1 of 3"},
		{"self missing, 2 others", 3, "a", map[string]Verdict{"b": down, "c": down}, "w", true, ""},
		{"members ≥ majority of M, not of view", 5, "a", map[string]Verdict{"a": down, "b": down}, "w", false, "sees 2 of 5"},
		{"3 of 5 visible, all down", 5, "a", map[string]Verdict{"a": down, "b": down, "c": down}, "w", true, ""},
		{"3 of 5 visible, 2 down", 5, "a", map[string]Verdict{"a": down, "b": down, "c": up}, "w", false, "2 of 5"},
		{"even fleet needs 3 of 4", 4, "a", map[string]Verdict{"a": down, "b": down, "c": up, "d": up}, "w", false, ""},
		{"fleet size 0", 0, "a", map[string]Verdict{"a": down}, "w", false, "invalid fleet size"},
		{"no writer", 1, "a", map[string]Verdict{"a": down}, "", false, "no writer"},
	} {
		got, reason := WriterDownQuorum(tc.m, tc.self, tc.members, tc.writer, now, maxAge)
		if got != tc.want || !strings.Contains(reason, tc.reason) {
			t.Errorf("%s: got %v (%q), want %v containing %q", tc.name, got, reason, tc.want, tc.reason)
		}
	}
	if got, r := WriterDownQuorum(1, "a", map[string]Verdict{"a": down}, "w", now, 0); got {
		t.Errorf("maxAge 0: down (%s)", r)
	}
}

// Verdicts age out in real (here: fake) time.
func TestWriterDownQuorumAging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxAge = 1500 * time.Millisecond
		members := map[string]Verdict{
			"a": {Writer: "w", Down: []string{"w"}, At: time.Now()},
			"b": {Writer: "w", Down: []string{"w"}, At: time.Now()},
			"c": {Writer: "w", At: time.Now()},
		}
		if down, r := WriterDownQuorum(3, "a", members, "w", time.Now(), maxAge); !down {
			t.Fatalf("fresh: not down (%s)", r)
		}
		time.Sleep(maxAge)
		if down, r := WriterDownQuorum(3, "a", members, "w", time.Now(), maxAge); !down {
			t.Fatalf("exactly maxAge old: not down (%s)", r)
		}
		// a refreshes its verdict, b's goes stale
		time.Sleep(time.Nanosecond)
		a := members["a"]
		a.At = time.Now()
		members["a"] = a
		if down, r := WriterDownQuorum(3, "a", members, "w", time.Now(), maxAge); down {
			t.Fatalf("b stale: down (%s)", r)
		}
	})
}

func TestLeader(t *testing.T) {
	if got := Leader(nil); got != "" {
		t.Errorf("Leader(nil) = %q", got)
	}
	if got := Leader([]string{"sluice-c", "", "sluice-a", "sluice-b"}); got != "sluice-a" {
		t.Errorf("Leader = %q", got)
	}
	if got := LeaderOf(map[string]Verdict{"z": {}, "m": {}, "": {}}); got != "m" {
		t.Errorf("LeaderOf = %q", got)
	}
	if got := LeaderOf(nil); got != "" {
		t.Errorf("LeaderOf(nil) = %q", got)
	}
}

func TestCandidate(t *testing.T) {
	r := func(name string, pos uint64, healthy bool) topology.Backend {
		return topology.Backend{Name: name, Role: topology.RoleReader, Position: pos, Healthy: healthy}
	}
	w := topology.Backend{Name: "w", Role: topology.RoleWriter, Position: 1000, Healthy: true}
	for _, tc := range []struct {
		name     string
		backends []topology.Backend
		exclude  string
		want     string
	}{
		{"none", nil, "w", ""},
		{"only writer", []topology.Backend{w}, "", ""},
		{"highest position", []topology.Backend{w, r("r1", 10, true), r("r2", 30, true), r("r3", 20, true)}, "w", "r2"},
		{"tie by name", []topology.Backend{r("r3", 30, true), r("r2", 30, true), r("r1", 10, true)}, "w", "r2"},
		{"unhealthy skipped", []topology.Backend{r("r1", 10, true), r("r2", 30, false)}, "w", "r1"},
		{"unknown role skipped", []topology.Backend{{Name: "x", Healthy: true, Position: 99}, r("r1", 1, true)}, "w", "r1"},
		{"excluded skipped", []topology.Backend{r("old", 50, true), r("r1", 40, true)}, "old", "r1"},
		{"all unhealthy", []topology.Backend{r("r1", 10, false)}, "w", ""},
	} {
		got, ok := Candidate(tc.backends, tc.exclude)
		if ok != (tc.want != "") || got.Name != tc.want {
			t.Errorf("%s: got %q %v, want %q", tc.name, got.Name, ok, tc.want)
		}
	}
	// order of the input does not matter
	a := []topology.Backend{r("b", 5, true), r("a", 5, true), r("c", 4, true)}
	b := []topology.Backend{r("c", 4, true), r("a", 5, true), r("b", 5, true)}
	ca, _ := Candidate(a, "")
	cb, _ := Candidate(b, "")
	if ca.Name != "a" || cb.Name != "a" {
		t.Errorf("order-dependent: %q %q", ca.Name, cb.Name)
	}
}

func TestEpochs(t *testing.T) {
	if AdoptEpoch(3, 5) != 5 || AdoptEpoch(5, 3) != 5 || AdoptEpoch(0, 0) != 0 {
		t.Error("AdoptEpoch is not max")
	}
	for _, tc := range []struct {
		name    string
		members map[string]Verdict
		epoch   uint64
		writer  string
		agreed  bool
	}{
		{"empty", nil, 0, "", true},
		{"one", map[string]Verdict{"a": {Epoch: 2, Writer: "w1"}}, 2, "w1", true},
		{"highest wins", map[string]Verdict{"a": {Epoch: 2, Writer: "w1"}, "b": {Epoch: 3, Writer: "w2"}, "c": {Epoch: 1, Writer: "w0"}}, 3, "w2", true},
		{"agree at top", map[string]Verdict{"a": {Epoch: 3, Writer: "w2"}, "b": {Epoch: 3, Writer: "w2"}, "c": {Epoch: 1, Writer: "w0"}}, 3, "w2", true},
		{"disagree at top", map[string]Verdict{"a": {Epoch: 3, Writer: "w2"}, "b": {Epoch: 3, Writer: "w1"}, "c": {Epoch: 3, Writer: "w2"}}, 3, "w1", false},
		{"none at top", map[string]Verdict{"a": {Epoch: 3}, "b": {Epoch: 3, Writer: "w1"}}, 3, "w1", false},
	} {
		// map order is random: repeat to shake out order dependence
		for range 20 {
			e, w, ok := HighestEpoch(tc.members)
			if e != tc.epoch || w != tc.writer || ok != tc.agreed {
				t.Fatalf("%s: got %d %q %v, want %d %q %v", tc.name, e, w, ok, tc.epoch, tc.writer, tc.agreed)
			}
		}
	}
}
