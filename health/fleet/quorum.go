package fleet

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sluicedb/sluice/topology"
)

// Majority returns ⌊fleetSize/2⌋+1, the number of instances that make a
// quorum in a fleet configured with fleetSize instances (0 if fleetSize < 1).
func Majority(fleetSize int) int {
	if fleetSize < 1 {
		return 0
	}
	return fleetSize/2 + 1
}

// CanAct reports whether an instance that sees live members (itself
// included) may take part in a fleet decision: it must see at least
// Majority(fleetSize) of the configured fleet.
func CanAct(fleetSize, live int) bool {
	return fleetSize >= 1 && live >= Majority(fleetSize)
}

// WriterDownQuorum decides whether the fleet has declared writer down.
//
// members holds the latest verdict of every live member, keyed by member
// name; it should include self's own verdict (Fleet.Members does). It
// reports true only when
//   - the instance sees at least Majority(fleetSize) live members, itself
//     included (self counts even when absent from members), and
//   - at least Majority(fleetSize) of the members' verdicts are fresh (At
//     within maxAge of now, see Verdict.Fresh) and list writer as down.
//
// The quorum is counted against the configured fleetSize, never against
// len(members): a partition shrinks every side's view. With fleetSize 1 a
// lone instance decides on its own fresh verdict. reason explains the
// outcome, for logs.
func WriterDownQuorum(fleetSize int, self string, members map[string]Verdict, writer string, now time.Time, maxAge time.Duration) (down bool, reason string) {
	switch {
	case fleetSize < 1:
		return false, fmt.Sprintf("invalid fleet size %d", fleetSize)
	case writer == "":
		return false, "no writer to judge"
	case maxAge <= 0:
		return false, fmt.Sprintf("invalid max verdict age %v", maxAge)
	}
	need := Majority(fleetSize)
	live := len(members)
	if _, ok := members[self]; !ok {
		live++
	}
	if !CanAct(fleetSize, live) {
		return false, fmt.Sprintf("sees %d of %d fleet members, needs %d to act", live, fleetSize, need)
	}
	var votes, stale []string
	for name, v := range members {
		if !v.IsDown(writer) {
			continue
		}
		if v.Fresh(now, maxAge) {
			votes = append(votes, name)
		} else {
			stale = append(stale, name)
		}
	}
	slices.Sort(votes)
	slices.Sort(stale)
	r := fmt.Sprintf("%d of %d fleet members (need %d) report %s down", len(votes), fleetSize, need, writer)
	if len(votes) > 0 {
		r += " [" + strings.Join(votes, ",") + "]"
	}
	if len(stale) > 0 {
		r += "; ignored stale [" + strings.Join(stale, ",") + "]"
	}
	return len(votes) >= need, r
}

// Leader returns the member that acts for the fleet: the lowest name among
// members, ignoring empty names ("" when there is none). Pass only live
// members of an instance that CanAct; every instance that sees the same
// members picks the same leader.
func Leader(members []string) string {
	leader := ""
	for _, m := range members {
		if m != "" && (leader == "" || m < leader) {
			leader = m
		}
	}
	return leader
}

// LeaderOf is Leader over the keys of a Members map.
func LeaderOf(members map[string]Verdict) string {
	return Leader(slices.Collect(maps.Keys(members)))
}

// Candidate returns the backend to promote when the writer fails: the
// healthy reader that has received the most (the higher of Received and
// Position: with synchronous replication that is a replica holding every
// acknowledged commit), ties broken by the lowest Name.
// The backend named exclude (normally the failed writer) is never chosen.
// Every instance given the same backends picks the same candidate. ok is
// false when there is no healthy reader.
func Candidate(backends []topology.Backend, exclude string) (b topology.Backend, ok bool) {
	for _, c := range backends {
		if !c.Healthy || c.Role != topology.RoleReader || c.Name == exclude {
			continue
		}
		if cp, bp := max(c.Received, c.Position), max(b.Received, b.Position); !ok || cp > bp || (cp == bp && c.Name < b.Name) {
			b, ok = c, true
		}
	}
	return b, ok
}

// AdoptEpoch returns the epoch an instance should work under after hearing
// remote while at local: the higher of the two. Epochs never go back.
func AdoptEpoch(local, remote uint64) uint64 {
	return max(local, remote)
}

// HighestEpoch returns the highest epoch among members' verdicts and the
// writer reported under it. When members at that epoch disagree on the
// writer (or some report none), writer is the lowest non-empty name among
// them and agreed is false; the caller should not switch writers on it.
// With no members it returns 0, "", true.
func HighestEpoch(members map[string]Verdict) (epoch uint64, writer string, agreed bool) {
	agreed = true
	first := true
	for _, v := range members {
		switch {
		case first || v.Epoch > epoch:
			epoch, writer, agreed, first = v.Epoch, v.Writer, true, false
		case v.Epoch == epoch && v.Writer != writer:
			agreed = false
			if writer == "" || (v.Writer != "" && v.Writer < writer) {
				writer = v.Writer
			}
		}
	}
	return epoch, writer, agreed
}
