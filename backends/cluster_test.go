package backends

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicedb/sluice/topology"
)

func snap(epoch uint64, writer int, bs ...topology.Backend) *topology.Snapshot {
	return &topology.Snapshot{Epoch: epoch, Writer: writer, Backends: bs}
}

func reader(addr string, pos uint64, lag time.Duration) topology.Backend {
	return topology.Backend{Name: addr, Addr: addr, Role: topology.RoleReader, Healthy: true, Position: pos, Lag: lag}
}

func writer(addr string) topology.Backend {
	return topology.Backend{Name: addr, Addr: addr, Role: topology.RoleWriter, Healthy: true}
}

func TestRoundRobinSpreadsAndSkips(t *testing.T) {
	c := NewCluster(ClusterOptions{Name: "c", Backends: make([]topology.Backend, 4), MaxReplicaLag: 5 * time.Second})
	c.Publish(snap(1, 0, writer("w"), reader("r1", 100, 0), reader("r2", 50, 0), reader("r3", 100, time.Minute)))
	seen := map[string]int{}
	for range 100 {
		_, b, ok := c.PickReader(0, -1)
		if !ok {
			t.Fatal("no reader")
		}
		seen[b.Addr]++
	}
	if seen["r1"] != 50 || seen["r2"] != 50 || seen["r3"] != 0 || seen["w"] != 0 {
		t.Errorf("round robin spread = %v (r3 lags past the limit)", seen)
	}
	// A minimum position excludes replicas that have not replayed it.
	for range 10 {
		if _, b, ok := c.PickReader(80, -1); !ok || b.Addr != "r1" {
			t.Fatalf("PickReader(80) = %v %v", b.Addr, ok)
		}
	}
	if _, _, ok := c.PickReader(101, -1); ok {
		t.Error("a reader qualified for a position nobody has replayed")
	}
	if _, _, ok := c.PickReader(0, 1); !ok {
		t.Error("avoiding r1 left no reader although r2 qualifies")
	}
	if !c.ReaderUsable(1, 100) || c.ReaderUsable(2, 100) || c.ReaderUsable(0, 0) || c.ReaderUsable(3, 0) {
		t.Error("ReaderUsable disagrees with the snapshot")
	}
}

func TestLeastConnections(t *testing.T) {
	c := NewCluster(ClusterOptions{Name: "c", Backends: make([]topology.Backend, 3), Balance: LeastConnections})
	c.Publish(snap(1, 0, writer("w"), reader("r1", 0, 0), reader("r2", 0, 0)))
	c.Acquire(1)
	c.Acquire(1)
	c.Acquire(2)
	for range 5 {
		if i, _, _ := c.PickReader(0, -1); i != 2 {
			t.Fatalf("picked %d, want the least used reader 2", i)
		}
	}
	c.Release(1)
	c.Release(1)
	if i, _, _ := c.PickReader(0, -1); i != 1 {
		t.Fatalf("picked %d after releases, want 1", i)
	}
	if c.Active(1) != 0 || c.Active(2) != 1 || c.Active(9) != 0 {
		t.Error("Active counts wrong")
	}
}

func TestPublishKeepsEpochsMonotonic(t *testing.T) {
	c := NewCluster(ClusterOptions{Name: "c", Backends: make([]topology.Backend, 2)})
	if _, _, ok := c.Writer(); ok {
		t.Fatal("writer before any probe")
	}
	ch := c.Changed()
	if !c.Publish(snap(2, 0, writer("a"), reader("b", 0, 0))) {
		t.Fatal("epoch 2 refused")
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed not signalled")
	}
	if c.Publish(snap(1, 1, reader("a", 0, 0), writer("b"))) {
		t.Fatal("an older epoch was adopted")
	}
	if _, b, ok := c.Writer(); !ok || b.Addr != "a" {
		t.Fatalf("writer = %v %v", b.Addr, ok)
	}
}

func TestWaitWriter(t *testing.T) {
	c := NewCluster(ClusterOptions{Name: "c", Backends: make([]topology.Backend, 2)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := c.WaitWriter(ctx); err == nil {
		t.Fatal("WaitWriter returned without a writer")
	}
	done := make(chan string)
	go func() {
		_, b, err := c.WaitWriter(context.Background())
		if err != nil {
			done <- err.Error()
			return
		}
		done <- b.Addr
	}()
	c.Publish(snap(1, 1, reader("a", 0, 0), writer("b")))
	if got := <-done; got != "b" {
		t.Fatalf("WaitWriter = %q", got)
	}
}

func TestParseBalance(t *testing.T) {
	for in, want := range map[string]Balance{"": RoundRobin, "round_robin": RoundRobin, "least_connections": LeastConnections} {
		if got, err := ParseBalance(in); err != nil || got != want {
			t.Errorf("ParseBalance(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseBalance("random"); err == nil {
		t.Error("ParseBalance accepted random")
	}
}

func TestChooseReader(t *testing.T) {
	c := NewCluster(ClusterOptions{Name: "c", Backends: make([]topology.Backend, 3)})
	c.Publish(snap(1, 0, writer("w"), reader("r1", 100, 0), reader("r2", 50, 0)))
	never := func(error) bool { return false }
	var tried []string
	ok := func(_ int, b topology.Backend) error { tried = append(tried, b.Addr); return nil }

	// The current reader is kept while it qualifies.
	if i, _, err := c.ChooseReader(2, 0, ok, never); err != nil || i != 2 {
		t.Fatalf("sticky: %d %v", i, err)
	}
	// It is left when it has not replayed minPos.
	if i, _, _ := c.ChooseReader(2, 80, ok, never); i != 1 {
		t.Fatalf("minPos 80 chose %d, want 1", i)
	}
	// A reader whose connection fails is skipped.
	failR1 := func(_ int, b topology.Backend) error {
		if b.Addr == "r1" {
			return errors.New("refused")
		}
		return nil
	}
	for range 4 {
		if i, _, _ := c.ChooseReader(-1, 0, failR1, never); i != 2 {
			t.Fatalf("with r1 failing chose %d", i)
		}
	}
	// A refusal stops the search with that error.
	if _, _, err := c.ChooseReader(-1, 0, failR1, func(error) bool { return true }); err == nil {
		// r2 may have been picked first; try until r1 comes up in the rotation.
		if _, _, err = c.ChooseReader(-1, 0, failR1, func(error) bool { return true }); err == nil {
			t.Fatal("refusal not reported")
		}
	}
	// Nobody has replayed 200: no reader, but readers exist that are behind.
	if i, behind, err := c.ChooseReader(-1, 200, ok, never); i != -1 || !behind || err != nil {
		t.Fatalf("minPos 200: %d %v %v", i, behind, err)
	}
	// No healthy reader at all: not "behind".
	c.Publish(snap(2, 0, writer("w")))
	if i, behind, _ := c.ChooseReader(-1, 200, ok, never); i != -1 || behind {
		t.Fatalf("no readers: %d %v", i, behind)
	}
}
