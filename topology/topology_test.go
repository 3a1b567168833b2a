package topology

import (
	"testing"
	"time"
)

func TestLSNRoundTrip(t *testing.T) {
	for _, s := range []string{"0/0", "0/16B3748", "1A/FF000028", "FFFFFFFF/FFFFFFFF"} {
		v, err := ParseLSN(s)
		if err != nil {
			t.Fatalf("ParseLSN(%q): %v", s, err)
		}
		if got := FormatLSN(v); got != s {
			t.Errorf("FormatLSN(ParseLSN(%q)) = %q", s, got)
		}
	}
	if v, _ := ParseLSN("1/0"); v != 1<<32 {
		t.Errorf("ParseLSN(1/0) = %d", v)
	}
	for _, s := range []string{"", "/", "1/", "/1", "1", "1/2/3", "G/1", "123456789/0", "1 /2"} {
		if _, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) succeeded", s)
		}
	}
}

func TestSnapshotReaders(t *testing.T) {
	s := &Snapshot{Writer: 0, Backends: []Backend{
		{Addr: "a", Role: RoleWriter, Healthy: true},
		{Addr: "b", Role: RoleReader, Healthy: true, Lag: time.Second},
		{Addr: "c", Role: RoleReader, Healthy: false},
		{Addr: "d", Role: RoleReader, Healthy: true, Lag: time.Minute},
	}}
	if got := s.Readers(nil, 0); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Errorf("Readers(no limit) = %v", got)
	}
	if got := s.Readers(nil, 10*time.Second); len(got) != 1 || got[0] != 1 {
		t.Errorf("Readers(10s) = %v", got)
	}
	if w, ok := s.WriterBackend(); !ok || w.Addr != "a" {
		t.Errorf("WriterBackend = %v %v", w, ok)
	}
	if s.Find("c") != 2 || s.Find("zz") != -1 {
		t.Error("Find")
	}
	var nilSnap *Snapshot
	if _, ok := nilSnap.WriterBackend(); ok {
		t.Error("nil snapshot has a writer")
	}
}
