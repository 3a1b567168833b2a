// Package topology holds the immutable picture of a cluster that the rest of
// Sluice routes by: which backend is the writer, which are readers, how far
// each has replayed, and under which epoch that picture was taken.
//
// A Snapshot is never modified after it is published; whoever learns
// something new (the health prober, later the fleet) builds a new Snapshot
// and swaps it in atomically. Epochs only grow: a new writer means a new
// epoch.
package topology

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Role is what a backend was last seen to be.
type Role uint8

// Roles.
const (
	RoleUnknown Role = iota // never probed successfully
	RoleWriter              // accepts writes (PostgreSQL: not in recovery; MySQL: read_only=OFF)
	RoleReader              // a replica (in recovery / read_only=ON)
)

// String returns "unknown", "writer" or "reader".
func (r Role) String() string {
	switch r {
	case RoleWriter:
		return "writer"
	case RoleReader:
		return "reader"
	}
	return "unknown"
}

// Backend is the state of one backend server as of the snapshot.
type Backend struct {
	Name    string // configured name (defaults to the address)
	Addr    string // host:port
	Role    Role
	Healthy bool // answered its recent probes (after hysteresis)
	// Position is the replication position as a comparable number:
	// PostgreSQL's WAL LSN (the writer's current LSN, a replica's replay
	// LSN). Zero when unknown.
	Position uint64
	// Received is the replication position the backend has received and
	// stored, comparable with Position: PostgreSQL's
	// pg_last_wal_receive_lsn() on a replica (never less than its replay
	// LSN), pg_current_wal_lsn() on the writer; MariaDB's sequence number of
	// the domain-0 GTID in Gtid_IO_Pos (SHOW SLAVE STATUS) on a replica,
	// the same as Position on the writer. A failover promotes the replica
	// with the highest Received: promotion applies everything received.
	// Zero when unknown.
	Received uint64
	// Lag is the replica's apply delay as last measured (zero for the
	// writer, or when the replica is idle and caught up).
	Lag       time.Duration
	Latency   time.Duration // duration of the last successful probe
	LastProbe time.Time     // when the last probe finished (success or not)
	LastError string        // the last probe error, "" after a success
	// Timeline is a PostgreSQL writer's timeline ID: a promoted replica
	// starts a new, higher one, so of two servers that both accept writes
	// the one with the higher timeline is the more recently promoted. Zero
	// when unknown (replicas, MariaDB).
	Timeline uint32
	// Fenced marks a backend that accepts writes but is not the writer of
	// the current epoch (an old writer that came back after a failover).
	// It gets neither writes nor reads until an operator re-seeds it as a
	// replica.
	Fenced bool
}

// Snapshot is an immutable view of a cluster.
type Snapshot struct {
	Epoch    uint64
	Backends []Backend // in configuration order
	Writer   int       // index into Backends of the current writer, or -1
	Taken    time.Time
	// Held, when not empty, says why writes are held although a writer is
	// known (for instance: this proxy sees too few fleet members to know
	// that the writer is still the fleet's). WriterBackend reports no
	// writer while it is set.
	Held string
}

// WriterBackend returns the current writer, if there is a healthy one.
func (s *Snapshot) WriterBackend() (Backend, bool) {
	if s == nil || s.Writer < 0 || s.Writer >= len(s.Backends) {
		return Backend{}, false
	}
	b := s.Backends[s.Writer]
	return b, b.Healthy && b.Role == RoleWriter && s.Held == ""
}

// WriterName returns the name of the current epoch's writer, usable or
// not, or "" when none is known.
func (s *Snapshot) WriterName() string {
	if s == nil || s.Writer < 0 || s.Writer >= len(s.Backends) {
		return ""
	}
	return s.Backends[s.Writer].Name
}

// Readers appends to dst the indexes of healthy readers whose lag is within
// maxLag (0 = no limit) and returns it.
func (s *Snapshot) Readers(dst []int, maxLag time.Duration) []int {
	if s == nil {
		return dst
	}
	for i := range s.Backends {
		if s.Backends[i].ServesReads(maxLag) {
			dst = append(dst, i)
		}
	}
	return dst
}

// ServesReads reports whether b may serve reads: a healthy, unfenced
// replica lagging no more than maxLag (0 = no limit).
func (b *Backend) ServesReads(maxLag time.Duration) bool {
	return b.Role == RoleReader && b.Healthy && !b.Fenced && (maxLag <= 0 || b.Lag <= maxLag)
}

// Find returns the index of the backend with the given address, or -1.
func (s *Snapshot) Find(addr string) int {
	if s == nil {
		return -1
	}
	for i := range s.Backends {
		if s.Backends[i].Addr == addr {
			return i
		}
	}
	return -1
}

// FormatLSN renders a PostgreSQL LSN as "X/X".
func FormatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn)) }

// ParseLSN parses a PostgreSQL LSN in the "X/X" text form.
func ParseLSN(s string) (uint64, error) {
	var hi, lo uint64
	var part *uint64 = &hi
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d uint64
		switch {
		case c == '/' && part == &hi && digits > 0:
			part, digits = &lo, 0
			continue
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		default:
			return 0, fmt.Errorf("topology: bad LSN %q", s)
		}
		if digits == 8 {
			return 0, fmt.Errorf("topology: bad LSN %q", s)
		}
		*part = *part<<4 | d
		digits++
	}
	if part != &lo || digits == 0 {
		return 0, fmt.Errorf("topology: bad LSN %q", s)
	}
	return hi<<32 | lo, nil
}

// GTIDSequence returns the sequence number of the GTID of replication
// domain domain in a MariaDB GTID position ("0-1-42,1-2-7"), 0 when the
// domain is absent or the text malformed.
func GTIDSequence(pos string, domain uint32) uint64 {
	for _, g := range strings.Split(pos, ",") {
		parts := strings.Split(strings.TrimSpace(g), "-")
		if len(parts) != 3 {
			continue
		}
		d, err := strconv.ParseUint(parts[0], 10, 32)
		if err != nil || uint32(d) != domain {
			continue
		}
		seq, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			return 0
		}
		return seq
	}
	return 0
}
