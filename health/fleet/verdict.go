package fleet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// MetaLimit is the largest encoded Verdict or state, in bytes: memberlist's
// limit on node metadata (memberlist.MetaMaxSize).
const MetaLimit = 512

// Limits enforced by EncodeVerdict and DecodeVerdict (and by EncodeState
// and DecodeState, for every Verdict they carry).
const (
	// MaxNameLen is the longest backend name a Verdict may carry, and the
	// longest cluster name an encoded state (EncodeState) may carry.
	MaxNameLen = 255
	// MaxBackends is the most distinct backend names (Writer, Down and
	// Positions together) a Verdict may carry.
	MaxBackends = 32
)

// verdictVersion is the first byte of every encoded Verdict.
const verdictVersion = 1

// Verdict is what one Sluice instance currently believes about a cluster.
// It travels in the instance's memberlist node metadata.
type Verdict struct {
	// Epoch is the topology epoch the instance works under.
	Epoch uint64
	// Writer is the backend name the instance believes is the writer, or ""
	// when it knows none.
	Writer string
	// Down lists the backends the instance sees down. It is encoded sorted
	// and without duplicates.
	Down []string
	// Positions holds the replication position (topology.Backend.Position)
	// of the backends the instance knows it for. Keep it to a few backends:
	// the whole Verdict must fit in MetaLimit bytes.
	Positions map[string]uint64
	// At is when the verdict was formed. A verdict whose At is zero is never
	// fresh.
	At time.Time
}

// IsDown reports whether v lists backend as down.
func (v Verdict) IsDown(backend string) bool {
	return slices.Contains(v.Down, backend)
}

// Fresh reports whether v was formed within maxAge of now (in either
// direction, to tolerate some clock skew between hosts). A zero At or a
// non-positive maxAge is never fresh.
func (v Verdict) Fresh(now time.Time, maxAge time.Duration) bool {
	if v.At.IsZero() || maxAge <= 0 {
		return false
	}
	age := now.Sub(v.At)
	return age <= maxAge && age >= -maxAge
}

// ErrVerdictTooLarge is returned by EncodeVerdict and EncodeState (and so
// by Fleet.Publish) when the encoding would not fit in MetaLimit bytes.
var ErrVerdictTooLarge = errors.New("fleet: verdict does not fit in node metadata")

// EncodeVerdict returns the compact binary form of v. Every backend name
// appears once, in a sorted table that the other fields index into:
//
//	version byte (1)
//	epoch           uvarint
//	at              varint, Unix nanoseconds (0 for the zero time)
//	names           uvarint count, then each name as uvarint length + bytes
//	writer          uvarint, 1 + index into names (0: no writer)
//	down            uvarint bit mask over names
//	has position    uvarint bit mask over names
//	positions       uvarint each, for the names in the mask, in table order
//
// Down is thus sorted and de-duplicated. Names must be non-empty valid
// UTF-8 of at most MaxNameLen bytes, at most MaxBackends distinct names in
// all. Eight backends with 40-byte names, all down and all with positions,
// take about 420 bytes.
func EncodeVerdict(v Verdict) ([]byte, error) {
	b, err := appendVerdict([]byte{verdictVersion}, v)
	if err != nil {
		return nil, err
	}
	if len(b) > MetaLimit {
		return nil, fmt.Errorf("%w (%d > %d bytes)", ErrVerdictTooLarge, len(b), MetaLimit)
	}
	return b, nil
}

// appendVerdict appends the body of v's encoding (everything after the
// version byte, see EncodeVerdict) to b. It checks the names but not the
// size.
func appendVerdict(b []byte, v Verdict) ([]byte, error) {
	names := make([]string, 0, len(v.Down)+len(v.Positions)+1)
	if v.Writer != "" {
		names = append(names, v.Writer)
	}
	names = append(names, v.Down...)
	for n := range v.Positions {
		names = append(names, n)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > MaxBackends {
		return nil, fmt.Errorf("fleet: verdict names %d backends, more than %d", len(names), MaxBackends)
	}
	for _, n := range names {
		if err := checkName(n); err != nil {
			return nil, err
		}
	}
	index := func(n string) int { i, _ := slices.BinarySearch(names, n); return i }

	b = binary.AppendUvarint(b, v.Epoch)
	var at int64
	if !v.At.IsZero() {
		at = v.At.UnixNano()
	}
	b = binary.AppendVarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = binary.AppendUvarint(b, uint64(len(n)))
		b = append(b, n...)
	}
	var w uint64
	if v.Writer != "" {
		w = uint64(index(v.Writer)) + 1
	}
	b = binary.AppendUvarint(b, w)
	var down, has uint64
	for _, n := range v.Down {
		down |= 1 << index(n)
	}
	for n := range v.Positions {
		has |= 1 << index(n)
	}
	b = binary.AppendUvarint(b, down)
	b = binary.AppendUvarint(b, has)
	for i, n := range names {
		if has&(1<<i) != 0 {
			b = binary.AppendUvarint(b, v.Positions[n])
		}
	}
	return b, nil
}

func checkName(n string) error {
	switch {
	case n == "":
		return errors.New("fleet: empty backend name in verdict")
	case len(n) > MaxNameLen:
		return fmt.Errorf("fleet: backend name longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(n):
		return errors.New("fleet: backend name is not valid UTF-8")
	}
	return nil
}

// DecodeVerdict parses the output of EncodeVerdict. It rejects anything
// else: an unknown version, truncated or trailing bytes, oversized input,
// too many or too long names, invalid UTF-8, unsorted, duplicate or unused
// names, indexes or masks beyond the name table, and non-canonical varints
// (DecodeVerdict(b) succeeds only when EncodeVerdict gives back exactly b).
func DecodeVerdict(b []byte) (Verdict, error) {
	if len(b) > MetaLimit {
		return Verdict{}, fmt.Errorf("fleet: verdict of %d bytes exceeds %d", len(b), MetaLimit)
	}
	d := decoder{b: b}
	if ver := d.byte(); d.err == nil && ver != verdictVersion {
		return Verdict{}, fmt.Errorf("fleet: unknown verdict version %d", ver)
	}
	v := d.verdict()
	if d.err != nil {
		return Verdict{}, d.err
	}
	if len(d.b) != 0 {
		return Verdict{}, fmt.Errorf("fleet: %d trailing bytes after verdict", len(d.b))
	}
	// Re-encoding checks, in one go, that the name table is sorted, free of
	// duplicates and unused names, that names are valid, and that every
	// varint is minimal.
	again, err := EncodeVerdict(v)
	if err != nil {
		return Verdict{}, err
	}
	if !bytes.Equal(again, b) {
		return Verdict{}, errors.New("fleet: verdict not in canonical form")
	}
	return v, nil
}

// decoder reads from b, remembering the first error; after an error every
// read returns a zero value.
type decoder struct {
	b   []byte
	err error
}

// verdict reads the body of an encoded Verdict (see EncodeVerdict). It
// checks the name count and the indexes, not canonical form; callers
// re-encode for that.
func (d *decoder) verdict() Verdict {
	var v Verdict
	v.Epoch = d.uvarint()
	if at := d.varint(); at != 0 {
		v.At = time.Unix(0, at)
	}
	n := d.uvarint()
	if d.err == nil && n > MaxBackends {
		d.err = fmt.Errorf("fleet: verdict names %d backends, more than %d", n, MaxBackends)
		return Verdict{}
	}
	names := make([]string, 0, n)
	for range n {
		names = append(names, d.string())
	}
	w := d.uvarint()
	down := d.uvarint()
	has := d.uvarint()
	if d.err == nil && (w > n || (n < 64 && (down|has)>>n != 0)) {
		d.err = errors.New("fleet: verdict refers beyond its name table")
	}
	if d.err == nil && w > 0 {
		v.Writer = names[w-1]
	}
	for i, name := range names {
		if d.err != nil {
			break
		}
		if down&(1<<i) != 0 {
			v.Down = append(v.Down, name)
		}
		if has&(1<<i) != 0 {
			if v.Positions == nil {
				v.Positions = make(map[string]uint64)
			}
			v.Positions[name] = d.uvarint()
		}
	}
	if d.err != nil {
		return Verdict{}
	}
	return v
}

var errTruncated = errors.New("fleet: truncated verdict")

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errTruncated
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > MaxNameLen {
		d.err = fmt.Errorf("fleet: name of %d bytes in verdict", n)
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
