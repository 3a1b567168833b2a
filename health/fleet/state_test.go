package fleet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sameState(a, b map[string]Verdict) bool {
	if len(a) != len(b) {
		return false
	}
	for c, va := range a {
		vb, ok := b[c]
		if !ok || !sameVerdict(va, vb) {
			return false
		}
	}
	return true
}

func TestStateRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 21, 44, 0, 123456789, time.UTC)
	for _, s := range []map[string]Verdict{
		nil,
		{},
		{"main_pg": {}},
		{
			"main_pg": {Epoch: 7, Writer: "pg-a", Down: []string{"pg-a"}, Positions: map[string]uint64{"pg-b": 1 << 40, "pg-c": 0}, At: at},
			"main_my": {Epoch: 1<<64 - 1, Writer: "my-a", At: time.Unix(0, -5)},
			"ünïcode": {Down: []string{"x"}},
		},
	} {
		b, err := EncodeState(s)
		if err != nil {
			t.Fatalf("encode %+v: %v", s, err)
		}
		got, err := DecodeState(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", s, err)
		}
		if got == nil || !sameState(got, s) {
			t.Errorf("round trip: got %+v, want %+v", got, s)
		}
		// The verdict part of each cluster is exactly its single encoding.
		for c, v := range s {
			one, err := EncodeVerdict(v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, append([]byte(c), one[1:]...)) {
				t.Errorf("%s: verdict body %x not in %x", c, one[1:], b)
			}
		}
	}
	if b, _ := EncodeState(nil); !bytes.Equal(b, []byte{stateVersion, 0}) {
		t.Errorf("empty state: %x", b)
	}
}

// Map order does not matter: equal states encode identically, clusters
// sorted.
func TestStateEncodeCanonical(t *testing.T) {
	s := map[string]Verdict{}
	for i := range MaxClusters {
		s[fmt.Sprintf("c%02d", MaxClusters-i)] = Verdict{Epoch: uint64(i)}
	}
	first, err := EncodeState(s)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		b, _ := EncodeState(s)
		if !bytes.Equal(b, first) {
			t.Fatalf("encodings differ: %x vs %x", b, first)
		}
	}
	if i, j := bytes.Index(first, []byte("c01")), bytes.Index(first, []byte("c02")); i < 0 || j < i {
		t.Errorf("clusters not sorted: %q", first)
	}
}

// Two clusters of four backends each with realistic names fit.
func TestStateTwoClustersFit(t *testing.T) {
	s := map[string]Verdict{}
	for _, c := range []string{"main_pg", "main_my"} {
		v := Verdict{Epoch: 1 << 40, Writer: c + "-primary.internal:5432", Positions: map[string]uint64{}, At: time.Now()}
		for i := range 3 {
			n := fmt.Sprintf("%s-replica-%d.internal:5432", c, i)
			v.Down = append(v.Down, n)
			v.Positions[n] = 1 << 50
		}
		s[c] = v
	}
	b, err := EncodeState(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("2 clusters of 4 backends: %d bytes", len(b))
}

func TestStateEncodeRejects(t *testing.T) {
	many := map[string]Verdict{}
	for i := range MaxClusters + 1 {
		many[fmt.Sprint("c", i)] = Verdict{}
	}
	// Each verdict fits alone, two do not fit together.
	half := Verdict{Positions: map[string]uint64{}}
	for i := range 10 {
		half.Positions[fmt.Sprintf("%025d", i)] = uint64(i)
	}
	if _, err := EncodeVerdict(half); err != nil {
		t.Fatal(err)
	}
	if _, err := EncodeState(map[string]Verdict{"a": half}); err != nil {
		t.Fatal(err)
	}
	tooLarge := map[string]Verdict{"a": half, "b": half}
	for name, s := range map[string]map[string]Verdict{
		"empty cluster":   {"": {}},
		"long cluster":    {strings.Repeat("x", MaxNameLen+1): {}},
		"bad utf8":        {"\xff": {}},
		"bad verdict":     {"a": {Writer: "\xff"}},
		"too many":        many,
		"too large":       tooLarge,
		"verdict too big": {"a": {Down: []string{strings.Repeat("y", 200)}, Writer: strings.Repeat("z", 200), Positions: map[string]uint64{strings.Repeat("w", 200): 1}}},
	} {
		if _, err := EncodeState(s); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	if _, err := EncodeState(tooLarge); !errors.Is(err, ErrVerdictTooLarge) {
		t.Errorf("too large: %v, want ErrVerdictTooLarge", err)
	}
	// The longest allowed cluster name is accepted.
	if _, err := EncodeState(map[string]Verdict{strings.Repeat("x", MaxNameLen): {}}); err != nil {
		t.Errorf("longest name: %v", err)
	}
}

func TestStateDecodeRejects(t *testing.T) {
	good, err := EncodeState(map[string]Verdict{
		"main_my": {Epoch: 2, Writer: "a", Down: []string{"a"}, At: time.Unix(100, 0)},
		"main_pg": {Epoch: 3, Writer: "b", Positions: map[string]uint64{"c": 10}, At: time.Unix(200, 0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeState(good); err != nil {
		t.Fatalf("good: %v", err)
	}
	for i := range good {
		if _, err := DecodeState(good[:i]); err == nil {
			t.Errorf("truncated to %d bytes: decoded", i)
		}
	}
	for i := range good {
		b := slices.Clone(good)
		b[i] ^= 0x80
		if s, err := DecodeState(b); err == nil {
			// A flipped bit may still be canonical (in a name or a
			// position), never the same state.
			if again, _ := EncodeState(s); !bytes.Equal(again, b) {
				t.Errorf("bit 7 of byte %d flipped: decoded non-canonical %+v", i, s)
			}
		}
	}
	// hand-built encodings: uint64 → uvarint, string → length-prefixed,
	// []byte → raw. empty is the body of a zero Verdict.
	enc := func(parts ...any) []byte {
		b := []byte{stateVersion}
		for _, p := range parts {
			switch p := p.(type) {
			case uint64:
				b = binary.AppendUvarint(b, p)
			case string:
				b = binary.AppendUvarint(b, uint64(len(p)))
				b = append(b, p...)
			case []byte:
				b = append(b, p...)
			}
		}
		return b
	}
	type u = uint64
	empty := []byte{0, 0, 0, 0, 0, 0}
	if s, err := DecodeState(enc(u(2), "a", empty, "b", empty)); err != nil || len(s) != 2 {
		t.Fatalf("hand-built good state: %+v %v", s, err)
	}
	verdict, _ := EncodeVerdict(Verdict{Epoch: 1})
	for name, b := range map[string][]byte{
		"nil":              nil,
		"version only":     {stateVersion},
		"verdict version":  {verdictVersion, 0},
		"a verdict":        verdict,
		"unknown version":  {3, 0},
		"trailing":         append(slices.Clone(good), 0),
		"trailing empty":   enc(u(0), u(0)),
		"non-minimal":      enc([]byte{0x80, 0x00}),
		"count short":      enc(u(2), "a", empty),
		"count long":       enc(u(1), "a", empty, "b", empty),
		"unsorted":         enc(u(2), "b", empty, "a", empty),
		"duplicate":        enc(u(2), "a", empty, "a", empty),
		"empty name":       enc(u(1), "", empty),
		"bad utf8":         enc(u(1), "\xc3", empty),
		"long name":        enc(u(1), strings.Repeat("x", MaxNameLen+1), empty),
		"too many":         enc(u(MaxClusters + 1)),
		"huge count":       enc(u(1 << 62)),
		"huge string":      enc(u(1), []byte{0xff, 0xff, 0xff, 0xff, 0x0f}),
		"missing verdict":  enc(u(1), "a"),
		"short verdict":    enc(u(1), "a", empty[:5]),
		"bad verdict":      enc(u(1), "a", u(0), u(0), u(1), "x", u(0), u(0), u(0)),
		"verdict nonmin":   enc(u(1), "a", []byte{0x80, 0x00}, empty[1:]),
		"oversized":        append(slices.Clone(good), make([]byte, MetaLimit)...),
		"varint overrun":   enc(bytes.Repeat([]byte{0xff}, 11)),
		"versioned bodies": enc(u(1), "a", verdict),
	} {
		if s, err := DecodeState(b); err == nil {
			t.Errorf("%s: decoded %+v", name, s)
		}
	}
	if v, err := DecodeVerdict(good); err == nil {
		t.Errorf("DecodeVerdict accepted a state: %+v", v)
	}
}

// The committed seed corpus holds what its file names say: garbage-*
// inputs are rejected, the others are valid states.
func TestStateSeedCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzDecodeState/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed corpus: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		head, lit, _ := strings.Cut(strings.TrimSpace(string(raw)), "\n")
		q, ok := strings.CutPrefix(lit, "[]byte(")
		q, ok2 := strings.CutSuffix(q, ")")
		b, err := strconv.Unquote(q)
		if head != "go test fuzz v1" || !ok || !ok2 || err != nil {
			t.Fatalf("%s: not a []byte corpus file: %v", f, err)
		}
		_, err = DecodeState([]byte(b))
		if garbage := strings.HasPrefix(filepath.Base(f), "garbage-"); garbage != (err != nil) {
			t.Errorf("%s: DecodeState error %v", filepath.Base(f), err)
		}
	}
}

// FuzzDecodeState checks that DecodeState never panics and accepts only
// canonical encodings: whatever it accepts encodes back to the same bytes
// and fits the metadata limit.
func FuzzDecodeState(f *testing.F) {
	for _, s := range []map[string]Verdict{
		nil,
		{"main_pg": {}},
		{
			"main_pg": {Epoch: 4, Writer: "pg-a", Down: []string{"pg-a"}, Positions: map[string]uint64{"pg-b": 77, "pg-c": 70}, At: time.Unix(1_790_000_000, 5)},
			"main_my": {Epoch: 2, Writer: "my-a", Positions: map[string]uint64{"my-b": 1 << 40}, At: time.Unix(1_790_000_000, 0)},
		},
	} {
		b, err := EncodeState(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState(b)
		if err != nil {
			if s != nil {
				t.Fatalf("error %v with state %+v", err, s)
			}
			return
		}
		if len(b) > MetaLimit || len(s) > MaxClusters {
			t.Fatalf("accepted %d bytes, %d clusters", len(b), len(s))
		}
		again, err := EncodeState(s)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", s, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %x decoded to %+v, encodes to %x", b, s, again)
		}
		for c, v := range s {
			one, err := EncodeVerdict(v)
			if err != nil {
				t.Fatalf("cluster %q: verdict %+v does not encode alone: %v", c, v, err)
			}
			if w, err := DecodeVerdict(one); err != nil || !sameVerdict(v, w) {
				t.Fatalf("cluster %q: verdict %+v does not round-trip alone: %+v %v", c, v, w, err)
			}
		}
	})
}
