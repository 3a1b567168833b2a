package mysql

import (
	"container/list"
	"fmt"
	"testing"

	"github.com/sluicedb/sluice/internal/mysqlwire"
)

func TestProfileRoundTrip(t *testing.T) {
	caps := profileCaps | mysqlwire.ClientSSL // SSL is not part of the profile
	p := profileOf(caps, 45)
	gotCaps, gotCharset := parseProfile(p)
	if gotCaps != profileCaps || gotCharset != 45 {
		t.Fatalf("parseProfile(%q) = %x, %d", p, gotCaps, gotCharset)
	}
	if profileOf(0, 8) == profileOf(0, 45) {
		t.Fatal("charsets share a profile")
	}
}

func TestStmtCacheLRU(t *testing.T) {
	sc := &srvConn{stmts: make(map[string]*list.Element)}
	for i := range stmtCacheSize {
		if ev := sc.remember(fmt.Sprint("q", i), uint32(i+1)); ev != 0 {
			t.Fatalf("evicted %d before the cache is full", ev)
		}
	}
	// q0 is used: q1 is now the least recently used.
	if id, ok := sc.cached("q0"); !ok || id != 1 {
		t.Fatalf("cached(q0) = %d, %v", id, ok)
	}
	if ev := sc.remember("new", 1000); ev != 2 {
		t.Fatalf("evicted %d, want 2 (q1)", ev)
	}
	if _, ok := sc.cached("q1"); ok {
		t.Fatal("q1 still cached")
	}
	// Re-preparing the same SQL replaces the id and closes the old one.
	if ev := sc.remember("q0", 2000); ev != 1 {
		t.Fatalf("evicted %d, want 1 (the old q0)", ev)
	}
	if id, _ := sc.cached("q0"); id != 2000 {
		t.Fatalf("cached(q0) = %d, want 2000", id)
	}
	sc.forgetState()
	if _, ok := sc.cached("q0"); ok || sc.lru.Len() != 0 || sc.db != unknownDB {
		t.Fatal("forgetState kept statements or the schema")
	}
}

func TestSetNamesSubset(t *testing.T) {
	a := []setting{{"time_zone", "SET time_zone='+01:00'"}}
	ab := []setting{{"sql_mode", "SET sql_mode=''"}, {"time_zone", "SET time_zone='+02:00'"}}
	if !setNamesSubset(nil, a) || !setNamesSubset(a, ab) || setNamesSubset(ab, a) {
		t.Fatal("setNamesSubset")
	}
	if setsKeyOf(a) == setsKeyOf(ab) || setsKeyOf(nil) != "" {
		t.Fatal("setsKeyOf")
	}
}
