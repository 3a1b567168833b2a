package mysqlwire

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestLenEncInt(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		wire []byte
	}{
		{0, []byte{0}},
		{250, []byte{250}},
		{251, []byte{0xfc, 251, 0}},
		{0xffff, []byte{0xfc, 0xff, 0xff}},
		{0x10000, []byte{0xfd, 0, 0, 1}},
		{0xffffff, []byte{0xfd, 0xff, 0xff, 0xff}},
		{0x1000000, []byte{0xfe, 0, 0, 0, 1, 0, 0, 0, 0}},
		{math.MaxUint64, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	} {
		got := AppendLenEncInt(nil, tc.v)
		if !bytes.Equal(got, tc.wire) || LenEncIntSize(tc.v) != len(tc.wire) {
			t.Fatalf("%d: encoded % x, want % x", tc.v, got, tc.wire)
		}
		v, n, ok := ReadLenEncInt(append(got, 0x99))
		if !ok || v != tc.v || n != len(tc.wire) {
			t.Fatalf("%d: decoded %d (%d bytes, %v)", tc.v, v, n, ok)
		}
		if _, _, ok := ReadLenEncInt(got[:len(got)-1]); ok && len(got) > 1 {
			t.Fatalf("%d: truncated input accepted", tc.v)
		}
	}
	for _, bad := range [][]byte{nil, {0xfb}, {0xff}, {0xfc, 1}, {0xfd, 1, 2}, {0xfe, 1, 2, 3, 4, 5, 6, 7}} {
		if _, _, ok := ReadLenEncInt(bad); ok {
			t.Fatalf("% x accepted", bad)
		}
	}
}

func TestLenEncBytes(t *testing.T) {
	long := bytes.Repeat([]byte("q"), 300)
	b := AppendLenEncBytes(nil, long)
	b = AppendLenEncString(b, "")
	b = AppendNulString(b, "nul")
	b = AppendUint16(b, 0x0102)
	b = AppendUint24(b, 0x030405)
	b = AppendUint32(b, 0x06070809)
	b = AppendUint64(b, 0x0a0b0c0d0e0f1011)
	b = append(b, NullValue, 7)
	d := NewDecoder(b)
	if got := d.LenEncBytes(); !bytes.Equal(got, long) {
		t.Fatalf("long string: %d bytes", len(got))
	}
	if got := d.LenEncString(); got != "" {
		t.Fatalf("empty string: %q", got)
	}
	if got := d.NulString(); got != "nul" {
		t.Fatalf("nul string: %q", got)
	}
	if d.Uint16() != 0x0102 || d.Uint24() != 0x030405 || d.Uint32() != 0x06070809 || d.Uint64() != 0x0a0b0c0d0e0f1011 {
		t.Fatal("fixed-width integers")
	}
	if _, null := d.LenEncIntOrNull(); !null {
		t.Fatal("NULL not reported")
	}
	if c, ok := d.Peek(); !ok || c != 7 || d.Byte() != 7 {
		t.Fatal("last byte")
	}
	if d.Err() != nil || d.Len() != 0 || d.Offset() != len(b) {
		t.Fatalf("err %v len %d off %d", d.Err(), d.Len(), d.Offset())
	}
	// Sticky error.
	if d.Byte() != 0 || !errors.Is(d.Err(), ErrMalformed) {
		t.Fatal("read past end not reported")
	}
	if d.Uint32() != 0 || d.LenEncBytes() != nil || d.Rest() != nil || d.Len() != 0 {
		t.Fatal("reads after an error must return zero values")
	}
	d.Reset([]byte("abc"))
	if d.NulBytes() != nil || d.Err() == nil {
		t.Fatal("missing NUL accepted")
	}
	d.Reset([]byte("abc"))
	if string(d.NulBytesOrEOF()) != "abc" || d.Err() != nil || d.Len() != 0 {
		t.Fatal("NulBytesOrEOF")
	}
	d.Reset([]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	if d.LenEncBytes() != nil || d.Err() == nil {
		t.Fatal("huge length accepted")
	}
	d.Reset([]byte{NullValue})
	if d.LenEncInt(); d.Err() == nil {
		t.Fatal("NULL accepted as an integer")
	}
	d.Reset([]byte{1, 2})
	if d.Bytes(-1) != nil || d.Err() == nil {
		t.Fatal("negative length accepted")
	}
}
