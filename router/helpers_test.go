package router

import "testing"

// none marks a case whose string holds no statement.
const none = -1

// tc is one classification case. stmts 0 means 1, none means 0.
type tc struct {
	sql   string
	write bool
	tx    TxEffect
	pin   PinReason
	set   bool
	hint  Hint
	stmts int
}

func (c tc) want() Class {
	n := c.stmts
	switch n {
	case 0:
		n = 1
	case none:
		n = 0
	}
	return Class{Write: c.write, Hint: c.hint, Tx: c.tx, Pin: c.pin, SessionSet: c.set, Statements: n}
}

func runCases(t *testing.T, c *Classifier, cases []tc) {
	t.Helper()
	seen := map[string]bool{}
	for _, k := range cases {
		if seen[k.sql] {
			t.Errorf("duplicate case %q", k.sql)
		}
		seen[k.sql] = true
		if got, want := c.Classify(k.sql), k.want(); got != want {
			t.Errorf("Classify(%q)\n got %+v\nwant %+v", k.sql, got, want)
		}
	}
}
