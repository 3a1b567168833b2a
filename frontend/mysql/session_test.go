package mysql

import "testing"

func TestParseKill(t *testing.T) {
	for _, c := range []struct {
		q    string
		id   uint32
		conn bool
		ok   bool
	}{
		{"KILL 12", 12, true, true},
		{"kill query 7;", 7, false, true},
		{"KILL CONNECTION 9", 9, true, true},
		{"KILL HARD QUERY 3", 3, false, true},
		{"  KILL SOFT 4 ", 4, true, true},
		{"KILL QUERY ID 5", 0, false, false},
		{"KILL", 0, false, false},
		{"KILL x", 0, false, false},
		{"SELECT 1", 0, false, false},
		{"KILL USER app", 0, false, false},
	} {
		id, conn, ok := parseKill(c.q)
		if ok != c.ok || (ok && (id != c.id || conn != c.conn)) {
			t.Errorf("parseKill(%q) = %d %v %v, want %d %v %v", c.q, id, conn, ok, c.id, c.conn, c.ok)
		}
	}
}

func TestIsConnectionIDQuery(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT CONNECTION_ID()":    true,
		"select connection_id();":   true,
		" SELECT  CONNECTION_ID() ": true,
		"SELECT CONNECTION_ID(), 1": false,
		"SELECT 1":                  false,
	} {
		if got := isFunctionQuery(q, "CONNECTION_ID()"); got != want {
			t.Errorf("isFunctionQuery(%q, CONNECTION_ID()) = %v", q, got)
		}
	}
}

func TestIsDiagnostics(t *testing.T) {
	for q, want := range map[string]bool{
		"SHOW WARNINGS":          true,
		"show errors;":           true,
		"SHOW COUNT(*) WARNINGS": true,
		"SHOW WARNINGS LIMIT 1":  true,
		"SHOW TABLES":            false,
		"SELECT 1":               false,
		"SHOW":                   false,
	} {
		if got := isDiagnostics(q); got != want {
			t.Errorf("isDiagnostics(%q) = %v", q, got)
		}
	}
}
