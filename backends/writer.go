package backends

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicedb/sluice/topology"
)

// ConnectWriter connects a session to the current writer with connect,
// which gets the epoch of the topology it was chosen under. While there is
// no usable writer (a failover is under way, or writes are held), or the
// writer does not answer, it waits for the topology to change and tries
// again, up to hold in all. An error for which refused reports true (the
// server turned the session away: bad credentials, unknown database) is
// returned at once, and so is one once ctx is done (the session that
// asked is gone).
func (c *Cluster) ConnectWriter(ctx context.Context, hold time.Duration, connect func(epoch uint64, idx int, b topology.Backend) error, refused func(error) bool) error {
	var deadline time.Time
	for {
		// The usual case, a reachable writer, takes no lock.
		snap := c.Snapshot()
		var err error
		if b, ok := snap.WriterBackend(); ok {
			if err = connect(snap.Epoch, snap.Writer, b); err == nil || refused(err) {
				return err
			}
			if ctx.Err() != nil {
				return err
			}
		}
		// No writer, or it did not answer: wait for the topology to change
		// (the next probe round at the latest), within the hold.
		if deadline.IsZero() {
			deadline = time.Now().Add(hold)
		}
		changed := c.Changed()
		if c.Snapshot() != snap {
			continue // changed meanwhile
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return noWriter(c, err, hold)
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
			t.Stop()
		case <-t.C:
			return noWriter(c, err, hold)
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for a writer of cluster %s: %w", c.name, ctx.Err())
		}
	}
}

// noWriter is ConnectWriter's error when the hold ran out: the last dial
// error, or why there is no usable writer.
func noWriter(c *Cluster, dialErr error, hold time.Duration) error {
	if dialErr != nil {
		return fmt.Errorf("%w (writer unreachable for %v)", dialErr, hold)
	}
	return fmt.Errorf("cluster %s: no writer available (waited %v%s)", c.name, hold, whyNoWriter(c.Snapshot()))
}

// Fenced reports whether a session's connection to addr, confirmed as the
// writer's under *epoch, must not take another statement: the epoch moved
// on and addr is no longer the writer. When addr is still the writer,
// *epoch is brought up to date.
func (c *Cluster) Fenced(addr string, epoch *uint64) bool {
	snap := c.Snapshot()
	if *epoch == snap.Epoch {
		return false
	}
	if snap.Writer >= 0 && snap.Backends[snap.Writer].Addr == addr {
		*epoch = snap.Epoch
		return false
	}
	return true
}

// whyNoWriter explains, for error messages, why a snapshot has no usable
// writer: "; " followed by the reason.
func whyNoWriter(snap *topology.Snapshot) string {
	switch w := snap.WriterName(); {
	case snap.Held != "":
		return "; writes held: " + snap.Held
	case w == "":
		return "; no backend is known to accept writes"
	default:
		return "; writer " + w + " is down"
	}
}
