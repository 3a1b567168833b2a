package router

import "testing"

func TestDecide(t *testing.T) {
	read := Class{Statements: 1}
	write := Class{Write: true, Statements: 1}
	begin := Class{Write: true, Tx: TxBegin, Statements: 1}
	beginRO := Class{Tx: TxBeginReadOnly, Statements: 1}
	hintW := Class{Hint: HintWriter, Statements: 1}
	hintR := Class{Write: true, Hint: HintReader, Statements: 1}
	hintRBegin := Class{Write: true, Tx: TxBegin, Hint: HintReader, Statements: 1}
	hintWBeginRO := Class{Tx: TxBeginReadOnly, Hint: HintWriter, Statements: 1}
	idle := State{}
	pinned := State{Pinned: true}
	inTxR := State{InTx: true, TxTarget: TargetReader}
	inTxW := State{InTx: true, TxTarget: TargetWriter}
	inTxRPinned := State{InTx: true, TxTarget: TargetReader, Pinned: true}
	cases := []struct {
		name string
		r    Route
		c    Class
		s    State
		want Target
	}{
		{"writer endpoint read", RouteWriter, read, idle, TargetWriter},
		{"writer endpoint hint reader", RouteWriter, hintR, idle, TargetWriter},
		{"writer endpoint in reader tx", RouteWriter, read, inTxR, TargetWriter},
		{"reader endpoint write", RouteReader, write, idle, TargetReader},
		{"reader endpoint pinned", RouteReader, write, pinned, TargetReader},
		{"unknown endpoint", Route(7), read, idle, TargetWriter},
		{"read", RouteAuto, read, idle, TargetReader},
		{"write", RouteAuto, write, idle, TargetWriter},
		{"begin", RouteAuto, begin, idle, TargetWriter},
		{"begin read only", RouteAuto, beginRO, idle, TargetReader},
		{"in reader tx, write", RouteAuto, write, inTxR, TargetReader},
		{"in writer tx, read", RouteAuto, read, inTxW, TargetWriter},
		{"in reader tx beats pin", RouteAuto, write, inTxRPinned, TargetReader},
		{"pinned read", RouteAuto, read, pinned, TargetWriter},
		{"pinned hint reader", RouteAuto, hintR, pinned, TargetWriter},
		{"pinned begin read only", RouteAuto, beginRO, pinned, TargetWriter},
		{"hint writer on read", RouteAuto, hintW, idle, TargetWriter},
		{"hint reader on write", RouteAuto, hintR, idle, TargetReader},
		{"hint reader on begin", RouteAuto, hintRBegin, idle, TargetReader},
		{"hint writer on begin read only", RouteAuto, hintWBeginRO, idle, TargetWriter},
		{"empty string", RouteAuto, Class{}, idle, TargetReader},
	}
	for _, k := range cases {
		if got := Decide(k.r, k.c, k.s); got != k.want {
			t.Errorf("%s: Decide(%v, %+v, %+v) = %v, want %v", k.name, k.r, k.c, k.s, got, k.want)
		}
	}
}

// TestDecideClassified runs the whole path for the routing contract's
// examples.
func TestDecideClassified(t *testing.T) {
	pg := NewClassifier(Options{Dialect: Postgres})
	my := NewClassifier(Options{Dialect: MySQL})
	cases := []struct {
		c    *Classifier
		sql  string
		want Target
	}{
		{pg, "SELECT * FROM t", TargetReader},
		{pg, "SELECT * FROM t FOR UPDATE", TargetWriter},
		{pg, "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", TargetWriter},
		{pg, "SELECT nextval('s')", TargetWriter},
		{pg, "BEGIN", TargetWriter},
		{pg, "BEGIN READ ONLY", TargetReader},
		{pg, "SELECT 1; DELETE FROM t", TargetWriter},
		{pg, "/* sluice:writer */ SELECT 1", TargetWriter},
		{pg, "/* sluice:reader */ SELECT nextval('s')", TargetReader},
		{my, "SELECT * FROM t", TargetReader},
		{my, "SELECT GET_LOCK('a', 1)", TargetWriter},
		{my, "SELECT LAST_INSERT_ID()", TargetWriter},
		{my, "SET @a := 1", TargetWriter},
		{my, "START TRANSACTION READ ONLY", TargetReader},
		{my, "START TRANSACTION", TargetWriter},
	}
	for _, k := range cases {
		if got := Decide(RouteAuto, k.c.Classify(k.sql), State{}); got != k.want {
			t.Errorf("%v %q → %v, want %v", k.c.Dialect(), k.sql, got, k.want)
		}
	}
}

func TestParseRoute(t *testing.T) {
	for s, want := range map[string]Route{"auto": RouteAuto, "writer": RouteWriter, "reader": RouteReader, " Reader ": RouteReader, "WRITER": RouteWriter} {
		got, err := ParseRoute(s)
		if err != nil || got != want {
			t.Errorf("ParseRoute(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "primary", "read"} {
		if _, err := ParseRoute(s); err == nil {
			t.Errorf("ParseRoute(%q) succeeded", s)
		}
	}
	for _, r := range []Route{RouteAuto, RouteWriter, RouteReader} {
		b, err := r.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Route
		if err := back.UnmarshalText(b); err != nil || back != r {
			t.Errorf("round trip of %v: %v, %v", r, back, err)
		}
	}
	var r Route
	if err := r.UnmarshalText([]byte("sideways")); err == nil {
		t.Error("UnmarshalText(sideways) succeeded")
	}
}

func TestStrings(t *testing.T) {
	cases := []struct{ got, want string }{
		{RouteAuto.String(), "auto"},
		{RouteWriter.String(), "writer"},
		{RouteReader.String(), "reader"},
		{Route(9).String(), "route(9)"},
		{TargetWriter.String(), "writer"},
		{TargetReader.String(), "reader"},
		{Target(9).String(), "target(9)"},
		{Postgres.String(), "postgres"},
		{MySQL.String(), "mysql"},
		{Dialect(9).String(), "dialect(9)"},
		{HintNone.String(), "none"},
		{HintWriter.String(), "writer"},
		{HintReader.String(), "reader"},
		{Hint(9).String(), "hint(9)"},
		{TxNone.String(), "none"},
		{TxBegin.String(), "begin"},
		{TxBeginReadOnly.String(), "begin_read_only"},
		{TxCommit.String(), "commit"},
		{TxRollback.String(), "rollback"},
		{TxEffect(9).String(), "tx(9)"},
	}
	for _, k := range cases {
		if k.got != k.want {
			t.Errorf("got %q, want %q", k.got, k.want)
		}
	}
}
