package router

import (
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"SELECT 1",
	"SELECT * FROM t WHERE id = $1 FOR UPDATE",
	"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
	"SELECT 'a''b', E'\\'', $$x$$, $t$ $$ $t$, \"q\"\"x\"",
	"/* a /* b */ c */ SELECT 1 -- x",
	"BEGIN READ ONLY; SELECT 1; COMMIT",
	"SET search_path TO a; RESET ALL; DISCARD ALL",
	"EXPLAIN (ANALYZE) DELETE FROM t",
	"COPY (SELECT 1) TO STDOUT",
	"SELECT `a`, @x := 1, @@session.y, ? FROM t # c",
	"/*!40101 SET NAMES utf8 */; USE db",
	"SET SESSION a = 1, @b = 2, GLOBAL c = 3",
	"CREATE PROCEDURE p() BEGIN SELECT 1; END",
	"SELECT 'unterminated",
	"",
}

// checkClassify runs the invariants shared by both fuzz targets.
func checkClassify(t *testing.T, c *Classifier, s string) {
	cl, open := c.classify(s, nil)
	if cl.Pin != "" && !cl.Write {
		t.Fatalf("%q: pin %q without write", s, cl.Pin)
	}
	if open && !cl.Write {
		t.Fatalf("%q: unterminated input classified as a read", s)
	}
	if cl.Statements < 0 || cl.Statements > len(s) {
		t.Fatalf("%q: %d statements", s, cl.Statements)
	}
	ops := c.SessionOps(s)
	if cl.SessionSet != (len(ops) > 0) {
		t.Fatalf("%q: SessionSet %v but %d ops", s, cl.SessionSet, len(ops))
	}
	for _, op := range ops {
		if !strings.Contains(s, op.Text) && !(strings.HasPrefix(op.Text, "SET ") && strings.Contains(s, op.Text[4:])) {
			t.Fatalf("%q: op text %q is not from the input", s, op.Text)
		}
	}
	if open {
		// an unterminated quote or comment swallows whatever follows
		return
	}
	if c2 := c.Classify("/* c */ " + s); c2 != cl {
		t.Fatalf("%q: a leading comment changed the class\n%+v\n%+v", s, cl, c2)
	}
	// the newline ends a trailing line comment
	if c3 := c.Classify(s + "\n; DELETE FROM t"); !c3.Write {
		t.Fatalf("%q: appending a DELETE did not make it a write: %+v", s, c3)
	}
	if c4 := c.Classify(s + "\n; SELECT 1"); c4.Write != cl.Write && !c4.Write {
		t.Fatalf("%q: appending a SELECT turned a write into a read", s)
	}
}

func FuzzClassifyPostgres(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, k := range pgCases {
		f.Add(k.sql)
	}
	c := NewClassifier(Options{Dialect: Postgres, WriterFunctions: []string{"audit"}})
	f.Fuzz(func(t *testing.T, s string) { checkClassify(t, c, s) })
}

func FuzzClassifyMySQL(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, k := range mysqlCases {
		f.Add(k.sql)
	}
	c := NewClassifier(Options{Dialect: MySQL, WriterFunctions: []string{"audit"}})
	f.Fuzz(func(t *testing.T, s string) { checkClassify(t, c, s) })
}
