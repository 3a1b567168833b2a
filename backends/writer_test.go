package backends

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicedb/sluice/topology"
)

func writerCluster() *Cluster {
	return NewCluster(ClusterOptions{Name: "c", Backends: []topology.Backend{{Name: "a", Addr: "a:1"}, {Name: "b", Addr: "b:1"}}})
}

func snapWith(epoch uint64, writer int) *topology.Snapshot {
	s := &topology.Snapshot{Epoch: epoch, Writer: writer, Backends: []topology.Backend{
		{Name: "a", Addr: "a:1", Role: topology.RoleReader, Healthy: true},
		{Name: "b", Addr: "b:1", Role: topology.RoleReader, Healthy: true},
	}}
	if writer >= 0 {
		s.Backends[writer].Role = topology.RoleWriter
	}
	return s
}

var errRefused = errors.New("refused")

func TestConnectWriterWaitsForAWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := writerCluster()
		go func() {
			time.Sleep(3 * time.Second)
			c.Publish(snapWith(2, 1))
		}()
		var got string
		var gotEpoch uint64
		err := c.ConnectWriter(context.Background(), 10*time.Second, func(epoch uint64, _ int, b topology.Backend) error {
			got, gotEpoch = b.Name, epoch
			return nil
		}, func(error) bool { return false })
		if err != nil || got != "b" || gotEpoch != 2 {
			t.Fatalf("ConnectWriter = %v, connected to %q at epoch %d; want b at 2", err, got, gotEpoch)
		}
	})
}

func TestConnectWriterHoldExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := writerCluster()
		held := snapWith(1, 0)
		held.Held = "sees 1 of 3"
		c.Publish(held)
		start := time.Now()
		err := c.ConnectWriter(context.Background(), 2*time.Second, func(uint64, int, topology.Backend) error {
			t.Fatal("connected while writes are held")
			return nil
		}, func(error) bool { return false })
		if err == nil || !strings.Contains(err.Error(), "writes held: sees 1 of 3") || time.Since(start) != 2*time.Second {
			t.Fatalf("err %v after %v; want the hold reason after 2s", err, time.Since(start))
		}
	})
}

func TestConnectWriterRetriesAtTopologyChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := writerCluster()
		c.Publish(snapWith(1, 0))
		tries := 0
		go func() {
			time.Sleep(time.Second)
			c.Publish(snapWith(1, 0)) // the next probe round: still a, still down
			time.Sleep(time.Second)
			c.Publish(snapWith(2, 1)) // failover to b
		}()
		err := c.ConnectWriter(context.Background(), 10*time.Second, func(_ uint64, _ int, b topology.Backend) error {
			tries++
			if b.Name == "a" {
				return errors.New("connection refused")
			}
			return nil
		}, func(error) bool { return false })
		if err != nil || tries != 3 {
			t.Fatalf("err %v after %d tries; want success at the third", err, tries)
		}
		// A refusal by the server is final.
		err = c.ConnectWriter(context.Background(), 10*time.Second, func(uint64, int, topology.Backend) error { return errRefused },
			func(err error) bool { return errors.Is(err, errRefused) })
		if !errors.Is(err, errRefused) {
			t.Fatalf("refused: %v", err)
		}
	})
}

// A session that goes away while ConnectWriter waits (for a writer, or
// after its connect failed because the session's context ended) is not
// kept waiting for the hold.
func TestConnectWriterStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := writerCluster() // no writer yet
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		start := time.Now()
		err := c.ConnectWriter(ctx, time.Minute, func(uint64, int, topology.Backend) error {
			t.Fatal("connected without a writer")
			return nil
		}, func(error) bool { return false })
		if !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
			t.Fatalf("err %v after %v; want context.Canceled after 1s", err, time.Since(start))
		}

		c.Publish(snapWith(1, 0))
		ctx, cancel = context.WithCancel(context.Background())
		tries := 0
		start = time.Now()
		err = c.ConnectWriter(ctx, time.Minute, func(uint64, int, topology.Backend) error {
			tries++
			cancel() // the session closed while its checkout waited
			return fmt.Errorf("checkout: %w", ctx.Err())
		}, func(error) bool { return false })
		if !errors.Is(err, context.Canceled) || tries != 1 || time.Since(start) != 0 {
			t.Fatalf("err %v after %d tries and %v; want the connect's context.Canceled at once", err, tries, time.Since(start))
		}
	})
}

func TestFenced(t *testing.T) {
	c := writerCluster()
	c.Publish(snapWith(1, 0))
	epoch := uint64(1)
	if c.Fenced("a:1", &epoch) {
		t.Fatal("the writer's connection fenced")
	}
	c.Publish(snapWith(2, 0)) // new epoch, same writer: confirmed
	if c.Fenced("a:1", &epoch) || epoch != 2 {
		t.Fatalf("same writer under a new epoch: fenced or epoch %d", epoch)
	}
	c.Publish(snapWith(3, 1))
	if !c.Fenced("a:1", &epoch) {
		t.Fatal("the old writer's connection not fenced after the writer changed")
	}
}
