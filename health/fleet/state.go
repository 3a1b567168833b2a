package fleet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// MaxClusters is the most clusters, each with its own Verdict, that
// EncodeState and DecodeState accept in one instance's state.
const MaxClusters = 16

// stateVersion is the first byte of every encoded state. It differs from
// verdictVersion, so neither decoder mistakes the other's output for its
// own.
const stateVersion = 2

// EncodeState returns the compact binary form of an instance's state: its
// Verdict for each cluster it serves, keyed by cluster name. This is what a
// Fleet publishes as node metadata.
//
//	version byte (2)
//	count           uvarint, number of clusters
//	per cluster, in ascending order of name:
//	  name          uvarint length + bytes
//	  verdict       the Verdict's encoding (EncodeVerdict) without its
//	                version byte
//
// Cluster names must be non-empty valid UTF-8 of at most MaxNameLen bytes,
// at most MaxClusters of them; each Verdict obeys EncodeVerdict's rules.
// The whole encoding must fit in MetaLimit bytes, or the error wraps
// ErrVerdictTooLarge. A nil or empty map encodes to two bytes.
func EncodeState(state map[string]Verdict) ([]byte, error) {
	if len(state) > MaxClusters {
		return nil, fmt.Errorf("fleet: state holds %d clusters, more than %d", len(state), MaxClusters)
	}
	clusters := make([]string, 0, len(state))
	for c := range state {
		if err := checkClusterName(c); err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
	}
	slices.Sort(clusters)
	b := make([]byte, 0, 64)
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, uint64(len(clusters)))
	for _, c := range clusters {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
		var err error
		if b, err = appendVerdict(b, state[c]); err != nil {
			return nil, fmt.Errorf("fleet: cluster %q: %w", c, err)
		}
		// Fail early on a hopeless state instead of encoding the rest.
		if len(b) > MetaLimit {
			break
		}
	}
	if len(b) > MetaLimit {
		return nil, fmt.Errorf("%w (state of %d clusters, over %d bytes)", ErrVerdictTooLarge, len(clusters), MetaLimit)
	}
	return b, nil
}

func checkClusterName(c string) error {
	switch {
	case c == "":
		return errors.New("fleet: empty cluster name in state")
	case len(c) > MaxNameLen:
		return fmt.Errorf("fleet: cluster name longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(c):
		return errors.New("fleet: cluster name is not valid UTF-8")
	}
	return nil
}

// DecodeState parses the output of EncodeState into a map the caller owns
// (empty, not nil, for a state of no clusters). It rejects anything else:
// an unknown version (a single encoded Verdict included), truncated or
// trailing bytes, oversized input, more than MaxClusters clusters, empty,
// too long or invalid UTF-8 cluster names, unsorted or duplicate cluster
// names, any Verdict DecodeVerdict would reject, and non-canonical varints
// (DecodeState(b) succeeds only when EncodeState gives back exactly b).
func DecodeState(b []byte) (map[string]Verdict, error) {
	if len(b) > MetaLimit {
		return nil, fmt.Errorf("fleet: state of %d bytes exceeds %d", len(b), MetaLimit)
	}
	d := decoder{b: b}
	if ver := d.byte(); d.err == nil && ver != stateVersion {
		return nil, fmt.Errorf("fleet: unknown state version %d", ver)
	}
	n := d.uvarint()
	if d.err == nil && n > MaxClusters {
		return nil, fmt.Errorf("fleet: state holds %d clusters, more than %d", n, MaxClusters)
	}
	state := make(map[string]Verdict, n)
	prev := ""
	for i := range n {
		c := d.string()
		if d.err != nil {
			break
		}
		if err := checkClusterName(c); err != nil {
			return nil, err
		}
		if i > 0 && c <= prev {
			return nil, fmt.Errorf("fleet: cluster %q after %q: names unsorted or duplicate", c, prev)
		}
		prev = c
		state[c] = d.verdict()
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("fleet: %d trailing bytes after state", len(d.b))
	}
	// Re-encoding checks, in one go, every rule of each Verdict's encoding
	// (sorted, used, valid names, minimal varints) and of the state's.
	again, err := EncodeState(state)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, b) {
		return nil, errors.New("fleet: state not in canonical form")
	}
	return state, nil
}
