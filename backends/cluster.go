package backends

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/topology"
)

// Balance is how reads are spread over the readers of a cluster.
type Balance uint8

// Balancing policies.
const (
	RoundRobin       Balance = iota // rotate over healthy readers (default)
	LeastConnections                // the reader with the fewest sessions using it
)

// ParseBalance parses "round_robin" (or "") and "least_connections".
func ParseBalance(s string) (Balance, error) {
	switch s {
	case "", "round_robin":
		return RoundRobin, nil
	case "least_connections":
		return LeastConnections, nil
	}
	return 0, fmt.Errorf("unknown reader balance %q", s)
}

// ClusterOptions configures a Cluster.
type ClusterOptions struct {
	Name     string
	Backends []topology.Backend // name and address of every configured backend, in order
	Balance  Balance
	// MaxReplicaLag excludes readers lagging more than this from reads
	// (0 = no limit).
	MaxReplicaLag time.Duration
	// MaxClientConns caps the client sessions of the cluster, all users
	// and listeners together (0 = no limit).
	MaxClientConns int
	// UserMaxClientConns caps the client sessions of single users (absent
	// or 0 = no limit of the user's own).
	UserMaxClientConns map[string]int
}

// Cluster is the routing view of one database cluster: the current topology
// snapshot plus the bookkeeping that reader balancing needs. It is safe for
// concurrent use.
type Cluster struct {
	name    string
	balance Balance
	maxLag  time.Duration
	snap    atomic.Pointer[topology.Snapshot]
	rr      atomic.Uint32
	active  []atomic.Int64 // sessions using each backend (config order)

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every publish

	admit admission
}

// NewCluster returns a cluster whose initial snapshot knows the configured
// backends but no roles yet (epoch 0, no writer).
func NewCluster(o ClusterOptions) *Cluster {
	c := &Cluster{
		name:    o.Name,
		balance: o.Balance,
		maxLag:  o.MaxReplicaLag,
		active:  make([]atomic.Int64, len(o.Backends)),
		changed: make(chan struct{}),
		admit:   admission{max: o.MaxClientConns, perUser: o.UserMaxClientConns, users: make(map[string]int)},
	}
	bs := append([]topology.Backend(nil), o.Backends...)
	c.snap.Store(&topology.Snapshot{Backends: bs, Writer: -1})
	return c
}

// Name returns the cluster's configured name.
func (c *Cluster) Name() string { return c.name }

// Snapshot returns the current topology. Never nil; do not modify it.
func (c *Cluster) Snapshot() *topology.Snapshot { return c.snap.Load() }

// Publish installs s as the current topology unless it carries an older
// epoch than the current one. It reports whether s was adopted.
func (c *Cluster) Publish(s *topology.Snapshot) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.snap.Load(); cur != nil && s.Epoch < cur.Epoch {
		return false
	}
	c.snap.Store(s)
	close(c.changed)
	c.changed = make(chan struct{})
	return true
}

// Changed returns a channel that is closed at the next Publish.
func (c *Cluster) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// WaitWriter waits until the topology has a healthy writer, or ctx ends.
func (c *Cluster) WaitWriter(ctx context.Context) (int, topology.Backend, error) {
	for {
		ch := c.Changed()
		s := c.Snapshot()
		if b, ok := s.WriterBackend(); ok {
			return s.Writer, b, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return -1, topology.Backend{}, fmt.Errorf("cluster %s: no writer available: %w", c.name, ctx.Err())
		}
	}
}

// Writer returns the current healthy writer.
func (c *Cluster) Writer() (int, topology.Backend, bool) {
	s := c.Snapshot()
	b, ok := s.WriterBackend()
	return s.Writer, b, ok
}

// PickReader chooses a healthy reader within the lag bound whose replay
// position is at least minPos (0 = any), skipping the index avoid (-1 =
// none). It reports false when no reader qualifies.
func (c *Cluster) PickReader(minPos uint64, avoid int) (int, topology.Backend, bool) {
	s := c.Snapshot()
	var buf [16]int
	cands := s.Readers(buf[:0], c.maxLag)
	n := 0
	for _, i := range cands {
		if i == avoid || (minPos > 0 && s.Backends[i].Position < minPos) {
			continue
		}
		cands[n] = i
		n++
	}
	cands = cands[:n]
	if n == 0 {
		return -1, topology.Backend{}, false
	}
	var pick int
	switch c.balance {
	case LeastConnections:
		pick = cands[0]
		best := c.active[pick].Load()
		start := int(c.rr.Add(1) % uint32(n)) // rotate the starting point among ties
		for k := range cands {
			i := cands[(start+k)%n]
			if a := c.active[i].Load(); a < best {
				pick, best = i, a
			}
		}
	default:
		pick = cands[int((c.rr.Add(1)-1)%uint32(n))]
	}
	return pick, s.Backends[pick], true
}

// ChooseReader picks the reader that serves a session's read needing replay
// position minPos (0 = any): the session's current reader (current, -1 for
// none) while it still qualifies, else up to three balancer picks, skipping
// the previous pick when connecting to it fails. connect opens (or reuses)
// the session's connection to a backend; when refused(err) says the server
// turned the session away (bad credentials, unknown database) the search
// stops with that error. With no reader chosen it returns -1 and reports
// whether some healthy reader exists that merely has not replayed minPos yet
// (the caller then lets the writer serve the read).
func (c *Cluster) ChooseReader(current int, minPos uint64, connect func(int, topology.Backend) error, refused func(error) bool) (idx int, behind bool, err error) {
	if s := c.Snapshot(); current >= 0 && readerUsable(s, current, minPos, c.maxLag) {
		if connect(current, s.Backends[current]) == nil {
			return current, false, nil
		}
	}
	avoid := -1
	for range 3 {
		i, b, ok := c.PickReader(minPos, avoid)
		if !ok {
			break
		}
		err := connect(i, b)
		if err == nil {
			return i, false, nil
		}
		if refused(err) {
			return -1, false, err
		}
		avoid = i
	}
	if minPos > 0 {
		// Is some reader merely behind? (Asked without PickReader, which
		// would move the round-robin on.)
		var buf [16]int
		return -1, len(c.Snapshot().Readers(buf[:0], c.maxLag)) > 0, nil
	}
	return -1, false, nil
}

// ReaderUsable reports whether backend i may serve a read needing replay
// position minPos under the current topology.
func (c *Cluster) ReaderUsable(i int, minPos uint64) bool {
	return readerUsable(c.Snapshot(), i, minPos, c.maxLag)
}

func readerUsable(s *topology.Snapshot, i int, minPos uint64, maxLag time.Duration) bool {
	if i < 0 || i >= len(s.Backends) {
		return false
	}
	b := &s.Backends[i]
	return b.ServesReads(maxLag) && (minPos == 0 || b.Position >= minPos)
}

// Acquire records that a session started using backend i (for
// least-connections balancing and metrics). Pair it with Release.
func (c *Cluster) Acquire(i int) {
	if i >= 0 && i < len(c.active) {
		c.active[i].Add(1)
	}
}

// Release undoes Acquire.
func (c *Cluster) Release(i int) {
	if i >= 0 && i < len(c.active) {
		c.active[i].Add(-1)
	}
}

// Active returns how many sessions use backend i.
func (c *Cluster) Active(i int) int64 {
	if i < 0 || i >= len(c.active) {
		return 0
	}
	return c.active[i].Load()
}
