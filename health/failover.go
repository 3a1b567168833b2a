package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/health/fleet"
	"github.com/sluicedb/sluice/topology"
)

// Fleet is the gossip membership through which a Monitor shares its
// verdicts with the other Sluice instances; *fleet.Fleet implements it.
type Fleet interface {
	// Name is this instance's member name.
	Name() string
	// FleetSize is the configured number of instances, M.
	FleetSize() int
	// Publish makes v this instance's verdict on cluster.
	Publish(cluster string, v fleet.Verdict) error
	// Members returns every live member's latest verdict on cluster, this
	// instance included.
	Members(cluster string) map[string]fleet.Verdict
}

// FleetStatus is what a Monitor last saw of the fleet, for /status.
type FleetStatus struct {
	Self      string                   // this instance's member name ("" without gossip)
	Size      int                      // configured fleet size M
	CanAct    bool                     // sees a majority of M
	Leader    string                   // the member that acts for the fleet
	Members   map[string]fleet.Verdict // live members' verdicts on this cluster
	Decision  string                   // the last failover decision, for operators
	Failovers int                      // writer changes this instance decided
}

// verdict is this instance's current verdict: the epoch and writer it
// works under, the backends it sees down (the writer also counts as down
// when it no longer reports itself writer), and their positions.
func (m *Monitor) verdict(now time.Time) fleet.Verdict {
	v := fleet.Verdict{Epoch: m.epoch, At: now, Positions: make(map[string]uint64, len(m.states))}
	if m.writer >= 0 {
		v.Writer = m.states[m.writer].b.Name
	}
	for i, st := range m.states {
		b := st.b
		// The writer counts as down when it stopped answering, or when it
		// has answered as a replica for Failures probes in a row (demoted
		// by an operator; a single odd answer is not enough).
		if !b.Healthy || (i == m.writer && b.Role != topology.RoleWriter && st.sameRole >= m.o.Failures) {
			v.Down = append(v.Down, b.Name)
		}
		if b.Healthy && b.Position > 0 && len(v.Positions) < 8 {
			v.Positions[b.Name] = b.Position
		}
	}
	return v
}

// gossip publishes v and returns the members' verdicts, v included. A
// lone instance (no Fleet) is its own fleet of one.
func (m *Monitor) gossip(v fleet.Verdict) map[string]fleet.Verdict {
	f := m.o.Fleet
	if f == nil {
		return map[string]fleet.Verdict{m.self(): v}
	}
	if err := f.Publish(m.o.Cluster, v); err != nil {
		// A timeout only means gossip has not sent it yet: the metadata is
		// in place and spreads with the next rounds.
		lvl := slog.LevelDebug
		if errors.Is(err, fleet.ErrVerdictTooLarge) {
			lvl = slog.LevelWarn
		}
		m.log.Log(context.Background(), lvl, "publish verdict", "err", err)
	}
	members := f.Members(m.o.Cluster)
	if members == nil {
		members = map[string]fleet.Verdict{}
	}
	members[f.Name()] = v // what we just decided, even if gossip lags
	return members
}

func (m *Monitor) self() string {
	if m.o.Fleet == nil {
		return "self"
	}
	return m.o.Fleet.Name()
}

func (m *Monitor) fleetSize() int {
	if m.o.Fleet == nil {
		return 1
	}
	return m.o.Fleet.FleetSize()
}

func (m *Monitor) index(name string) int {
	for i := range m.states {
		if m.states[i].b.Name == name {
			return i
		}
	}
	return -1
}

// writers returns the healthy backends that report themselves writers,
// except skip and former writers the fleet replaced.
func (m *Monitor) writers(skip int) []int {
	var out []int
	for i, st := range m.states {
		if i != skip && !st.demoted && st.b.Healthy && st.b.Role == topology.RoleWriter {
			out = append(out, i)
		}
	}
	return out
}

// decide runs the fleet part of a round: publish this instance's verdict,
// adopt a higher epoch heard from the fleet, pick the writer of a fresh
// cluster, and fail over when the fleet agrees that the writer is down. It
// returns why writes are held ("" when they are not).
func (m *Monitor) decide(ctx context.Context) string {
	now := time.Now()
	members := m.gossip(m.verdict(now))
	size := m.fleetSize()
	canAct := fleet.CanAct(size, len(members))
	leader := m.leader(members, now)
	m.fleet = FleetStatus{Self: m.selfName(), Size: size, CanAct: canAct, Leader: leader,
		Members: members, Decision: m.fleet.Decision, Failovers: m.fleet.Failovers}
	if met := m.o.Metrics; met != nil {
		met.FleetMembers.Set(float64(len(members)))
	}

	m.adopt(members)
	switch {
	case m.writer < 0:
		m.bootstrap()
	case !m.usable(m.writer) && canAct:
		m.failover(ctx, members, leader, now)
	}
	m.fenceOtherWriters()
	if !canAct {
		return fmt.Sprintf("this proxy sees %d of %d fleet members and needs %d to be sure of the writer", len(members), size, fleet.Majority(size))
	}
	if e, _, _ := fleet.HighestEpoch(members); e > m.epoch {
		return fmt.Sprintf("a fleet member works under epoch %d, newer than this proxy's %d; waiting to learn its writer", e, m.epoch)
	}
	if other, w := m.conflict(members); other != "" {
		// Instances that bootstrapped apart (each seeing one writer) or two
		// leaders of an asymmetric partition: writing would split the brain.
		h := fmt.Sprintf("fleet member %s works under epoch %d with writer %s, this proxy with %s; restart the instances that follow the wrong one", other, m.epoch, w, m.states[m.writer].b.Name)
		m.note("holding writes: " + h)
		return h
	}
	if m.writer >= 0 && m.usable(m.writer) {
		name := m.states[m.writer].b.Name
		if down, reason := fleet.WriterDownQuorum(size, m.self(), members, name, now, m.o.VerdictMaxAge); down {
			// This proxy still reaches the writer, but a majority of the
			// fleet does not and may replace it: stop writing to it.
			h := "the fleet reports writer " + name + " down (" + reason + ")"
			m.note("holding writes: " + h)
			return h
		}
	}
	return ""
}

// conflict returns a member (the lowest name) that works under this
// instance's epoch with another writer, and that writer.
func (m *Monitor) conflict(members map[string]fleet.Verdict) (member, writer string) {
	if m.writer < 0 {
		return "", ""
	}
	mine := m.states[m.writer].b.Name
	for name, v := range members {
		if name != m.self() && v.Epoch == m.epoch && v.Writer != "" && v.Writer != mine && (member == "" || name < member) {
			member, writer = name, v.Writer
		}
	}
	return member, writer
}

func (m *Monitor) selfName() string {
	if m.o.Fleet == nil {
		return ""
	}
	return m.o.Fleet.Name()
}

// fenceOtherWriters fences, for good (until re-seeded as a replica), every
// other backend that accepts writes while the epoch's writer is alive: two
// live writers mean the other one is a former primary. It also notes the
// writer's PostgreSQL timeline, below which discovery never goes.
func (m *Monitor) fenceOtherWriters() {
	if m.writer < 0 || !m.usable(m.writer) {
		return
	}
	m.writerTimeline = max(m.writerTimeline, m.states[m.writer].b.Timeline)
	for _, i := range m.writers(m.writer) {
		st := &m.states[i]
		st.demoted = true
		m.log.Warn("backend accepts writes but is not the writer: fenced", "backend", st.b.Name, "writer", m.states[m.writer].b.Name, "epoch", m.epoch)
	}
}

// leader returns the member that acts for the fleet: the lowest name among
// those whose verdicts are fresh (a member that hangs but is still in the
// membership must not block failovers).
func (m *Monitor) leader(members map[string]fleet.Verdict, now time.Time) string {
	var fresh []string
	for name, v := range members {
		if name == m.self() || v.Fresh(now, m.o.VerdictMaxAge) {
			fresh = append(fresh, name)
		}
	}
	return fleet.Leader(fresh)
}

// usable reports whether backend i is healthy and reports itself writer.
func (m *Monitor) usable(i int) bool {
	b := &m.states[i].b
	return b.Healthy && b.Role == topology.RoleWriter
}

// adopt moves to the highest epoch the fleet has agreed on, when it is
// newer than ours.
func (m *Monitor) adopt(members map[string]fleet.Verdict) {
	epoch, writer, agreed := fleet.HighestEpoch(members)
	if epoch <= m.epoch {
		return
	}
	i := m.index(writer)
	if !agreed || i < 0 {
		m.note(fmt.Sprintf("epoch %d heard from the fleet without an agreed writer we know (%q); waiting", epoch, writer))
		return
	}
	m.setWriter(epoch, i, "adopted from the fleet")
}

// bootstrap picks the writer when none is known yet: the one healthy
// backend that reports itself writer. With several (an old writer came back
// and nothing says which one is current) it refuses: a wrong guess would
// send writes to a demoted primary.
func (m *Monitor) bootstrap() {
	ws := m.writers(-1)
	switch len(ws) {
	case 0:
		return
	case 1:
		m.setWriter(max(m.epoch, 1), ws[0], "the only backend that accepts writes")
	default:
		if i, ok := m.newestTimeline(ws); ok {
			m.setWriter(max(m.epoch, 1), i, "of the backends that accept writes, the one on the highest timeline (the others are fenced)")
			return
		}
		names := make([]string, len(ws))
		for k, i := range ws {
			names[k] = m.states[i].b.Name
		}
		m.note(fmt.Sprintf("refusing writes: %v all accept writes and no epoch says which is the writer; fence all but one", names))
	}
}

// newestTimeline returns the one backend among ws on the highest
// PostgreSQL timeline: the most recently promoted. ok is false when a
// timeline is unknown or the highest is shared.
func (m *Monitor) newestTimeline(ws []int) (int, bool) {
	best, tie := -1, false
	for _, i := range ws {
		tl := m.states[i].b.Timeline
		switch {
		case tl == 0:
			return -1, false
		case best < 0 || tl > m.states[best].b.Timeline:
			best, tie = i, false
		case tl == m.states[best].b.Timeline:
			tie = true
		}
	}
	return best, best >= 0 && !tie
}

// failover replaces a writer this instance cannot use, once the fleet
// agrees that it is down, and only on the fleet's leader: it adopts a
// backend that another tool has promoted, or promotes the most advanced
// replica itself when promotion is on.
func (m *Monitor) failover(ctx context.Context, members map[string]fleet.Verdict, leader string, now time.Time) {
	old := m.states[m.writer].b.Name
	down, reason := fleet.WriterDownQuorum(m.fleetSize(), m.self(), members, old, now, m.o.VerdictMaxAge)
	if !down {
		m.note("writer " + old + " unusable here; no failover: " + reason)
		return
	}
	if leader != m.self() {
		m.note("fleet agrees writer " + old + " is down (" + reason + "); waiting for the leader " + leader)
		return
	}
	next, action := -1, ""
	ws := m.writers(m.writer)
	if tl := m.writerTimeline; tl > 0 {
		// A server on an older timeline than the writer's is a former
		// primary that came back, not a newly promoted one.
		ws = slices.DeleteFunc(ws, func(i int) bool { return m.states[i].b.Timeline > 0 && m.states[i].b.Timeline < tl })
	}
	switch {
	case len(ws) == 1:
		next, action = ws[0], admin.FailoverDiscover
	case len(ws) > 1:
		m.note(fmt.Sprintf("writer %s is down and %d other backends accept writes; refusing to choose", old, len(ws)))
		return
	case m.o.Promoter != nil:
		snap := make([]topology.Backend, len(m.states))
		for i := range m.states {
			snap[i] = m.states[i].b
		}
		cand, ok := fleet.Candidate(snap, old)
		if !ok {
			m.note("writer " + old + " is down and no healthy replica can be promoted")
			return
		}
		i := m.index(cand.Name)
		pctx, cancel := context.WithTimeout(ctx, m.o.PromoteTimeout)
		err := m.o.Promoter.Promote(pctx, cand)
		cancel()
		if err != nil {
			m.note(fmt.Sprintf("promote %s: %v", cand.Name, err))
			return
		}
		m.probeOne(ctx, i) // learn the new role now, not a round later
		if st := &m.states[i]; st.fails > 0 && st.b.Role != topology.RoleWriter {
			// The re-probe failed, so the role is still the replica's from
			// before; but Promote succeeded: it accepts writes. Left as a
			// replica, the next round would find the new writer "not a
			// writer" and promote another replica.
			m.setRole(st, topology.RoleWriter)
		}
		next, action = i, admin.FailoverPromote
		if f := m.o.Fleet; f != nil {
			// Promotion takes time: another leader may have moved the
			// fleet on meanwhile. Follow it rather than compete.
			members = f.Members(m.o.Cluster)
			if e, w, agreed := fleet.HighestEpoch(members); e > m.epoch && agreed {
				if j := m.index(w); j >= 0 {
					m.setWriter(e, j, "adopted from the fleet while promoting "+cand.Name)
					return
				}
			}
		}
	default:
		m.note("writer " + old + " is down (" + reason + "); no other backend accepts writes and promotion is off")
		return
	}
	epoch, _, _ := fleet.HighestEpoch(members)
	m.setWriter(max(m.epoch, epoch)+1, next, fmt.Sprintf("%s after %s went down: %s", action, old, reason))
	m.fleet.Failovers++
	if met := m.o.Metrics; met != nil {
		met.Failovers.WithLabelValues(m.o.Cluster, action).Inc()
	}
	// Tell the fleet at once rather than at the next round.
	m.gossip(m.verdict(time.Now()))
	if action == admin.FailoverPromote {
		m.repointTo = next // after this round's snapshot is out
	}
}

// repoint makes the healthy replicas replicate from the new writer. Errors
// are logged: a replica left behind only stops receiving changes, and the
// lag limit takes it out of the reader set.
func (m *Monitor) repoint(ctx context.Context, writer int) {
	w := m.states[writer].b
	for i, st := range m.states {
		if i == writer || !st.b.Healthy || st.b.Role != topology.RoleReader {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, m.o.PromoteTimeout)
		err := m.o.Promoter.Follow(fctx, st.b, w)
		cancel()
		if err != nil {
			m.log.Error("re-point replica", "replica", st.b.Name, "writer", w.Name, "err", err)
			continue
		}
		m.log.Info("replica re-pointed", "replica", st.b.Name, "writer", w.Name)
	}
}

// setWriter installs writer i under epoch.
func (m *Monitor) setWriter(epoch uint64, i int, why string) {
	if i == m.writer && epoch == m.epoch {
		return
	}
	changed := i != m.writer
	if changed && m.writer >= 0 {
		m.states[m.writer].demoted = true // fenced until re-seeded as a replica
	}
	m.epoch, m.writer = epoch, i
	m.note(fmt.Sprintf("writer %s at epoch %d: %s", m.states[i].b.Name, epoch, why))
	m.log.Info("writer", "backend", m.states[i].b.Name, "epoch", epoch, "why", why)
	if changed && m.o.Metrics != nil {
		m.o.Metrics.WriterChanges.WithLabelValues(m.o.Cluster).Inc()
	}
}

// note records the latest decision and logs it when it changes.
func (m *Monitor) note(d string) {
	if d != m.fleet.Decision {
		m.log.Info("failover", "decision", d)
	}
	m.fleet.Decision = d
}

// Fleet returns what this instance saw of the fleet at its last round.
// The Members map is a copy.
func (m *Monitor) Fleet() FleetStatus {
	m.smu.Lock()
	defer m.smu.Unlock()
	fs := m.shown
	fs.Members = maps.Clone(fs.Members)
	return fs
}
