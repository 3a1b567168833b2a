package fleet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func sameVerdict(a, b Verdict) bool {
	return a.Epoch == b.Epoch && a.Writer == b.Writer && slices.Equal(a.Down, b.Down) &&
		maps.Equal(a.Positions, b.Positions) && a.At.Equal(b.At) && a.At.IsZero() == b.At.IsZero()
}

func TestVerdictRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 21, 44, 0, 123456789, time.UTC)
	for _, v := range []Verdict{
		{},
		{Epoch: 7, Writer: "pg-a", At: at},
		{Epoch: 1<<64 - 1, Writer: "pg-a", Down: []string{"pg-a"}, Positions: map[string]uint64{"pg-b": 1 << 40, "pg-c": 0}, At: at},
		{Epoch: 3, Down: []string{"b", "a"}, At: time.Unix(0, -5)},
	} {
		b, err := EncodeVerdict(v)
		if err != nil {
			t.Fatalf("encode %+v: %v", v, err)
		}
		got, err := DecodeVerdict(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", v, err)
		}
		want := v
		want.Down = slices.Sorted(slices.Values(v.Down))
		if len(want.Down) == 0 {
			want.Down = nil
		}
		if len(want.Positions) == 0 {
			want.Positions = nil
		}
		if !sameVerdict(got, want) {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func TestVerdictEncodeNormalisesDown(t *testing.T) {
	b1, err := EncodeVerdict(Verdict{Down: []string{"c", "a", "c", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := EncodeVerdict(Verdict{Down: []string{"a", "b", "c"}})
	if !bytes.Equal(b1, b2) {
		t.Errorf("Down not sorted/deduplicated: %x vs %x", b1, b2)
	}
}

// Eight backends with realistic names, all down, all with positions, must
// fit the metadata limit.
func TestVerdictEightBackendsFit(t *testing.T) {
	v := Verdict{Epoch: 1 << 50, Writer: "pg-primary-eu-west-1a.internal:5432", Positions: map[string]uint64{}, At: time.Now()}
	for i := range 8 {
		n := fmt.Sprintf("pg-replica-%d-eu-west-1a.internal:5432", i)
		v.Down = append(v.Down, n)
		v.Positions[n] = 1<<64 - 1
	}
	b, err := EncodeVerdict(v)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("8 backends: %d bytes", len(b))
	if len(b) > MetaLimit {
		t.Fatalf("%d bytes > %d", len(b), MetaLimit)
	}
}

func TestVerdictEncodeRejects(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	many := make([]string, MaxBackends+1)
	for i := range many {
		many[i] = fmt.Sprint("b", i)
	}
	big := Verdict{Positions: map[string]uint64{}}
	for i := range 20 {
		big.Positions[fmt.Sprintf("%040d", i)] = uint64(i)
	}
	for name, v := range map[string]Verdict{
		"long writer":    {Writer: long},
		"long down":      {Down: []string{long}},
		"empty down":     {Down: []string{""}},
		"empty position": {Positions: map[string]uint64{"": 1}},
		"too many names": {Writer: "w", Down: many[:MaxBackends]},
		"bad utf8":       {Writer: "\xff"},
		"too many":       {Down: many},
		"too large":      big,
	} {
		if _, err := EncodeVerdict(v); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	if _, err := EncodeVerdict(big); !errors.Is(err, ErrVerdictTooLarge) {
		t.Errorf("too large: %v, want ErrVerdictTooLarge", err)
	}
}

func TestVerdictDecodeRejects(t *testing.T) {
	good, err := EncodeVerdict(Verdict{Epoch: 2, Writer: "a", Down: []string{"a", "b"}, Positions: map[string]uint64{"b": 9, "c": 10}, At: time.Unix(100, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeVerdict(good); err != nil {
		t.Fatalf("good: %v", err)
	}
	for i := range good {
		if _, err := DecodeVerdict(good[:i]); err == nil {
			t.Errorf("truncated to %d bytes: decoded", i)
		}
	}
	// hand-built encodings: uint64 → uvarint, int64 → varint, string →
	// length-prefixed, []byte → raw
	enc := func(parts ...any) []byte {
		b := []byte{verdictVersion}
		for _, p := range parts {
			switch p := p.(type) {
			case uint64:
				b = binary.AppendUvarint(b, p)
			case int64:
				b = binary.AppendVarint(b, p)
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
	if _, err := DecodeVerdict(enc(u(1), int64(0), u(2), "a", "b", u(1), u(3), u(2), u(9))); err != nil {
		t.Fatalf("hand-built good verdict: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":           nil,
		"version":         {2, 0, 0, 0, 0, 0, 0},
		"trailing":        append(slices.Clone(good), 0),
		"non-minimal":     enc([]byte{0x80, 0x00}, int64(0), u(0), u(0), u(0), u(0)),
		"names unsorted":  enc(u(1), int64(0), u(2), "b", "a", u(0), u(3), u(0)),
		"names duplicate": enc(u(1), int64(0), u(2), "a", "a", u(0), u(3), u(0)),
		"unused name":     enc(u(1), int64(0), u(1), "a", u(0), u(0), u(0)),
		"empty name":      enc(u(1), int64(0), u(1), "", u(0), u(1), u(0)),
		"writer beyond":   enc(u(1), int64(0), u(1), "a", u(2), u(1), u(0)),
		"down beyond":     enc(u(1), int64(0), u(1), "a", u(0), u(3), u(0)),
		"has beyond":      enc(u(1), int64(0), u(1), "a", u(0), u(1), u(2), u(5)),
		"missing pos":     enc(u(1), int64(0), u(1), "a", u(0), u(0), u(1)),
		"too many":        enc(u(1), int64(0), u(MaxBackends+1)),
		"huge count":      enc(u(1), int64(0), u(1<<62)),
		"huge string":     enc(u(1), int64(0), u(1), []byte{0xff, 0xff, 0xff, 0xff, 0x0f}),
		"bad utf8":        enc(u(1), int64(0), u(1), "\xc3", u(0), u(1), u(0)),
		"oversized":       append(slices.Clone(good), make([]byte, MetaLimit)...),
		"varint overrun":  enc(bytes.Repeat([]byte{0xff}, 11)),
	} {
		if v, err := DecodeVerdict(b); err == nil {
			t.Errorf("%s: decoded %+v", name, v)
		}
	}
}

// FuzzDecodeVerdict checks that DecodeVerdict never panics and accepts only
// canonical encodings: whatever it accepts encodes back to the same bytes.
func FuzzDecodeVerdict(f *testing.F) {
	for _, v := range []Verdict{
		{},
		{Epoch: 4, Writer: "pg-a", Down: []string{"pg-a"}, Positions: map[string]uint64{"pg-b": 77, "pg-c": 70}, At: time.Unix(1_790_000_000, 5)},
	} {
		b, err := EncodeVerdict(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVerdict(b)
		if err != nil {
			return
		}
		again, err := EncodeVerdict(v)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", v, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %x decoded to %+v, encodes to %x", b, v, again)
		}
		if len(b) > MetaLimit {
			t.Fatalf("accepted %d bytes", len(b))
		}
	})
}
