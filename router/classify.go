package router

import "strings"

// Options configure a Classifier.
type Options struct {
	// Dialect selects the SQL dialect.
	Dialect Dialect
	// WriterFunctions are extra function names (case-insensitive) whose call
	// sends a statement to the writer, on top of the built-in ones. A schema
	// qualifier ("app.audit") is ignored: calls are matched by the last
	// part of the name.
	WriterFunctions []string
}

// Classifier classifies query strings of one dialect. It is immutable and
// safe for concurrent use.
type Classifier struct {
	dialect Dialect
	extra   map[string]struct{} // lower-cased Options.WriterFunctions
}

// NewClassifier returns a Classifier configured by o.
func NewClassifier(o Options) *Classifier {
	c := &Classifier{dialect: o.Dialect}
	for _, f := range o.WriterFunctions {
		f = strings.TrimSpace(f)
		if i := strings.LastIndexByte(f, '.'); i >= 0 {
			f = f[i+1:]
		}
		f = strings.Trim(f, "\"`")
		if f == "" {
			continue
		}
		if c.extra == nil {
			c.extra = make(map[string]struct{})
		}
		b := []byte(f)
		for i := range b {
			b[i] = lower(b[i])
		}
		c.extra[string(b)] = struct{}{}
	}
	return c
}

// Dialect returns the dialect the Classifier was made for.
func (c *Classifier) Dialect() Dialect { return c.dialect }

// Classify classifies the statements of sql. It does not allocate.
//
// A string that ends inside a quote, a dollar quote or a block comment is
// ambiguous and classified as a write.
func (c *Classifier) Classify(sql string) Class {
	cl, _ := c.classify(sql, nil)
	return cl
}

// classify runs the classification; when ops is not nil, the session
// operations of the string are appended to it. It also reports whether the
// input ended inside a quote or comment.
func (c *Classifier) classify(sql string, ops *[]SessionOp) (Class, bool) {
	s := scan{c: c, ops: ops, mysql: c.dialect == MySQL}
	s.lx = lexer{src: sql, mysql: s.mysql}
	for !s.eof {
		s.begin()
		t := s.next()
		if s.done {
			continue
		}
		s.cl.Statements++
		if s.mysql {
			s.mysqlStatement(t)
		} else {
			s.pgStatement(t, false)
		}
		s.drain()
		if ops != nil {
			s.flushOps()
		}
	}
	s.cl.Hint = s.lx.hint
	if s.lx.open {
		s.cl.Write = true
	}
	return s.cl, s.lx.open
}

// scan walks the tokens of one query string statement by statement. The
// statement handlers read tokens with next; every token also goes through
// observe, which applies the rules that hold anywhere in a statement
// (function calls, locking clauses, INTO, writing CTEs …).
type scan struct {
	c     *Classifier
	lx    lexer
	cl    Class
	mysql bool
	eof   bool // the input is exhausted

	// per statement
	done        bool  // the statement ended (';' or end of input)
	prev, prev2 token // the two tokens before the current one
	depth       int   // parenthesis depth
	stmtStart   int   // offset of the statement's first token
	lastEnd     int   // end offset of the statement's last token so far
	readLike    bool  // SELECT / VALUES / TABLE / WITH: INTO TEMP, INTO @v pin
	create      bool  // CREATE: pg_temp., compound bodies
	routine     bool  // MySQL CREATE PROCEDURE/FUNCTION/TRIGGER/EVENT
	noFuncPin   bool  // DDL: function names are not calls that pin
	inert       bool  // PostgreSQL EXPLAIN without ANALYZE: nothing runs
	swallow     bool  // a compound body: ';' no longer ends the statement

	// SessionOps only
	ops     *[]SessionOp
	pending []pendingOp
	assigns int // MySQL SET: assignments in the statement
}

// begin resets the per-statement state.
func (s *scan) begin() {
	s.done = false
	s.prev, s.prev2 = token{}, token{}
	s.depth = 0
	s.stmtStart, s.lastEnd = -1, -1
	s.readLike, s.create, s.routine, s.noFuncPin, s.inert, s.swallow = false, false, false, false, false, false
	s.assigns = 0
}

// next returns the next token of the current statement, or a tEOF token once
// the statement has ended.
func (s *scan) next() token {
	if s.done {
		return token{kind: tEOF, start: s.lx.pos, end: s.lx.pos}
	}
	t := s.lx.next()
	if t.kind == tEOF {
		s.done, s.eof = true, true
		return t
	}
	if t.kind == tPunct && t.c == ';' && !s.swallow {
		s.done = true
		return token{kind: tEOF, start: t.start, end: t.start}
	}
	if s.stmtStart < 0 {
		s.stmtStart = t.start
	}
	s.lastEnd = t.end
	s.observe(t)
	s.prev2, s.prev = s.prev, t
	return t
}

// drain consumes the rest of the statement.
func (s *scan) drain() {
	for !s.done {
		s.next()
	}
}

// text returns the source text of t.
func (s *scan) text(t token) string { return s.lx.src[t.start:t.end] }

func (s *scan) write() { s.cl.Write = true }

// pin records a pin reason (the first one wins); a pin implies a write.
func (s *scan) pin(r PinReason) {
	s.cl.Write = true
	if s.cl.Pin == "" {
		s.cl.Pin = r
	}
}

// tx records the transaction effect of the first transaction statement.
func (s *scan) tx(e TxEffect) {
	if s.cl.Tx == TxNone {
		s.cl.Tx = e
	}
}

// beginModes handles the transaction modes of BEGIN / START TRANSACTION (both
// dialects); t is the token after BEGIN or START TRANSACTION. READ ONLY without READ WRITE
// and without ISOLATION LEVEL SERIALIZABLE (which hot standbys refuse) is a
// read-only transaction that may run on a reader.
func (s *scan) beginModes(t token) {
	if t.kw == kwWork || t.kw == kwTransaction {
		t = s.next()
	}
	var ro, rw, ser bool
	last := kwNone
	for ; !s.done; t = s.next() {
		switch {
		case t.kw == kwOnly && last == kwRead:
			ro = true
		case t.kw == kwWrite && last == kwRead:
			rw = true
		case t.kw == kwSerializable:
			ser = true
		}
		last = t.kw
	}
	if ro && !rw && !ser {
		s.tx(TxBeginReadOnly)
		return
	}
	s.write()
	s.tx(TxBegin)
}

func isPunct(t token, c byte) bool { return t.kind == tPunct && t.c == c }

// observe applies the rules that hold anywhere in a statement to t.
func (s *scan) observe(t token) {
	switch t.kind {
	case tPunct:
		switch t.c {
		case '(':
			s.depth++
			if !s.inert && (s.prev.kind == tWord || s.prev.kind == tQIdent) {
				s.call(s.prev)
			}
		case ')':
			s.depth--
		case '.':
			// CREATE TABLE pg_temp.t, SELECT … INTO pg_temp.t
			if !s.mysql && s.prev.kw == kwPgTemp && (s.create || (s.readLike && s.prev2.kw == kwInto)) {
				s.pin(PinTempTable)
			}
		}
		return
	case tOp:
		// MySQL @v := …
		if s.mysql && !s.inert && s.prev.kind == tVar && !isSysVar(s.text(s.prev)) {
			s.pin(PinUserVariable)
		}
		return
	case tVar:
		// SELECT … INTO @v
		if s.readLike && s.prev.kw == kwInto && !isSysVar(s.text(t)) {
			s.pin(PinUserVariable)
		}
		return
	case tWord:
	default:
		return
	}
	if s.inert || t.kw == kwNone {
		return
	}
	switch t.kw {
	case kwUpdate, kwDelete:
		// writing CTEs, FOR [NO KEY] UPDATE, and any other appearance
		s.write()
	case kwInsert, kwMerge:
		// MySQL has INSERT() and no writing CTEs; in PostgreSQL these
		// words only occur in writes
		if !s.mysql {
			s.write()
		}
	case kwInto:
		// SELECT … INTO new_table / OUTFILE / @var
		s.write()
	case kwShare, kwKey:
		// FOR SHARE, FOR KEY SHARE
		if s.prev.kw == kwFor {
			s.write()
		}
	case kwLock:
		// MySQL LOCK IN SHARE MODE
		if s.mysql {
			s.write()
		}
	case kwTemp, kwTemporary:
		// SELECT … INTO [LOCAL|GLOBAL] TEMP t
		if s.readLike && (s.prev.kw == kwInto ||
			((s.prev.kw == kwLocal || s.prev.kw == kwGlobal) && s.prev2.kw == kwInto)) {
			s.pin(PinTempTable)
		}
	case kwFor:
		// MariaDB NEXT VALUE FOR seq, PREVIOUS VALUE FOR seq
		if s.mysql && s.prev.kw == kwValue {
			switch s.prev2.kw {
			case kwNext:
				s.write()
			case kwPrevious:
				s.pin(PinLastInsertID)
			}
		}
	case kwAtomic:
		// CREATE FUNCTION … BEGIN ATOMIC …; …; END
		if !s.mysql && s.create && s.prev.kw == kwBegin {
			s.swallow = true
		}
	case kwProcedure, kwFunction, kwTrigger, kwEvent:
		if s.create {
			s.routine = true
		}
	case kwBegin, kwLoop, kwWhile, kwRepeat:
		// CREATE PROCEDURE … BEGIN …; …; END
		if s.mysql && s.routine {
			s.swallow = true
		}
	}
}

// call handles a function call: name is the token before '('.
func (s *scan) call(name token) {
	n := s.text(name)
	if name.kind == tQIdent {
		if len(n) < 3 {
			return
		}
		n = n[1 : len(n)-1]
	}
	var w bool
	var p PinReason
	if s.mysql {
		w, p = mysqlWriterFunc(n)
	} else {
		w, p = pgWriterFunc(n)
	}
	if !w {
		w = s.c.isExtraWriter(n)
	}
	if !w {
		return
	}
	s.write()
	if p != "" && !s.noFuncPin {
		s.pin(p)
	}
}

// isSysVar reports whether a MySQL variable token is a system variable
// (@@name) rather than a user variable.
func isSysVar(v string) bool { return len(v) >= 2 && v[1] == '@' }
