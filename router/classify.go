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

// NewClassifier returns a Classifier configured by o. A Dialect other than
// MySQL is classified as PostgreSQL.
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
		c.extra[asciiLower(f)] = struct{}{}
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
	done bool  // the statement ended (';' or end of input)
	tok  token // the current token
	// The token before the current one, and the keyword of the one before
	// that. They are kept as scalars: copying whole tokens right after the
	// lexer wrote them field by field stalled on store forwarding.
	prevKind  tokKind
	prevKW    kw
	prevStart int
	prevEnd   int
	prev2KW   kw
	depth     int  // parenthesis depth
	stmtStart int  // offset of the statement's first token
	lastEnd   int  // end offset of the statement's last token so far
	readLike  bool // SELECT / VALUES / TABLE / WITH: INTO TEMP, INTO @v pin
	create    bool // CREATE: pg_temp., compound bodies
	routine   bool // MySQL CREATE PROCEDURE/FUNCTION/TRIGGER/EVENT
	noFuncPin bool // DDL: function names are not calls that pin
	inert     bool // PostgreSQL EXPLAIN without ANALYZE: nothing runs
	swallow   bool // a compound body: ';' no longer ends the statement
	insert    bool // INSERT/MERGE seen: INTO names a table, not a new one

	// SessionOps only
	ops     *[]SessionOp
	pending []pendingOp
	assigns int // MySQL SET: assignments in the statement
}

// begin resets the per-statement state.
func (s *scan) begin() {
	s.done = false
	s.prevKind, s.prevKW, s.prev2KW = tEOF, kwNone, kwNone
	s.depth = 0
	s.stmtStart, s.lastEnd = -1, -1
	s.readLike, s.create, s.routine, s.noFuncPin, s.inert, s.swallow, s.insert = false, false, false, false, false, false, false
	s.assigns = 0
}

// next returns the next token of the current statement, or a tEOF token once
// the statement has ended.
func (s *scan) next() token {
	s.advance()
	return token{kind: s.tok.kind, start: s.tok.start, end: s.tok.end, c: s.tok.c, kw: s.tok.kw}
}

// advance reads the next token of the current statement into s.tok (a tEOF
// token once the statement has ended) and observes it.
//
// The token is filled in place and copied only field by field: a whole-struct
// copy right after the lexer's field-by-field writes stalls on store
// forwarding, which once cost more than the lexing itself.
func (s *scan) advance() {
	t := &s.tok
	if s.done {
		t.kind, t.start, t.end, t.c, t.kw = tEOF, s.lx.pos, s.lx.pos, 0, kwNone
		return
	}
	if s.mysql {
		s.lx.nextMySQL(t)
	} else {
		s.lx.nextPG(t)
	}
	if t.kind == tEOF {
		s.done, s.eof = true, true
		return
	}
	if t.kind == tPunct && t.c == ';' && !s.swallow {
		s.done = true
		t.kind, t.end, t.c = tEOF, t.start, 0
		return
	}
	if s.stmtStart < 0 {
		s.stmtStart = t.start
	}
	s.lastEnd = t.end
	if t.kw != kwNone || (t.kind == tPunct && (t.c == '(' || t.c == ')' || t.c == '.')) || t.kind == tOp || t.kind == tVar {
		s.observe()
	}
	s.prev2KW, s.prevKind, s.prevKW, s.prevStart, s.prevEnd = s.prevKW, t.kind, t.kw, t.start, t.end
}

// drain consumes the rest of the statement.
func (s *scan) drain() {
	for !s.done {
		s.advance()
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
// dialects); t is the token after BEGIN or START TRANSACTION. READ ONLY
// without READ WRITE and without ISOLATION LEVEL SERIALIZABLE (which hot
// standbys refuse) is a read-only transaction that may run on a reader.
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

// observe applies the rules that hold anywhere in a statement to the
// current token.
func (s *scan) observe() {
	t := &s.tok
	switch t.kind {
	case tPunct:
		switch t.c {
		case '(':
			s.depth++
			if !s.inert && (s.prevKind == tWord || s.prevKind == tQIdent) {
				s.call(s.prevKind, s.lx.src[s.prevStart:s.prevEnd])
			}
		case ')':
			s.depth--
		case '.':
			// CREATE TABLE pg_temp.t, SELECT … INTO pg_temp.t
			if !s.mysql && s.prevKW == kwPgTemp && (s.create || (s.readLike && !s.insert && s.prev2KW == kwInto)) {
				s.pin(PinTempTable)
			}
		}
		return
	case tOp:
		// MySQL @v := …
		if s.mysql && !s.inert && s.prevKind == tVar && !isSysVar(s.lx.src[s.prevStart:s.prevEnd]) {
			s.pin(PinUserVariable)
		}
		return
	case tVar:
		v := s.text(*t)
		switch {
		case !isSysVar(v):
			// SELECT … INTO @v
			if s.readLike && s.prevKW == kwInto {
				s.pin(PinUserVariable)
			}
		case !s.inert:
			s.sysVar(v)
		}
		return
	case tWord:
	default:
		return
	}
	if s.inert || t.kw == kwNone {
		return
	}
	if s.prevKind == tPunct && s.lx.src[s.prevStart] == '.' {
		return // a qualified name (t.update): an identifier, not a keyword
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
			s.insert = true
		}
	case kwInto:
		// SELECT … INTO new_table / OUTFILE / @var
		s.write()
	case kwShare, kwKey:
		// FOR SHARE, FOR KEY SHARE
		if s.prevKW == kwFor {
			s.write()
		}
	case kwLock:
		// MySQL LOCK IN SHARE MODE
		if s.mysql {
			s.write()
		}
	case kwTemp, kwTemporary:
		// SELECT … INTO [LOCAL|GLOBAL] TEMP t
		if s.readLike && !s.insert && (s.prevKW == kwInto ||
			((s.prevKW == kwLocal || s.prevKW == kwGlobal) && s.prev2KW == kwInto)) {
			s.pin(PinTempTable)
		}
	case kwFor:
		// MariaDB NEXT VALUE FOR seq, PREVIOUS VALUE FOR seq
		if s.mysql && s.prevKW == kwValue {
			switch s.prev2KW {
			case kwNext:
				s.write()
			case kwPrevious:
				s.pin(PinLastInsertID)
			}
		}
	case kwAtomic:
		// CREATE FUNCTION … BEGIN ATOMIC …; …; END
		if !s.mysql && s.create && s.prevKW == kwBegin {
			s.swallow = true
		}
	case kwSqlCalcFoundRows:
		// FOUND_ROWS() must later run on the same connection
		if s.mysql {
			s.pin(PinLastInsertID)
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

// call handles a function call: n is the text of the word or quoted
// identifier (of kind k) before '('.
func (s *scan) call(k tokKind, n string) {
	if k == tQIdent {
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

// sysVar handles a MySQL system variable read: the ones that describe the
// connection's previous statement must be read where it ran.
func (s *scan) sysVar(v string) {
	v = v[2:]
	if hasPrefixFold(v, "session.") {
		v = v[len("session."):]
	} else if hasPrefixFold(v, "local.") {
		v = v[len("local."):]
	}
	switch {
	case eqFold(v, "identity"), eqFold(v, "last_insert_id"):
		s.pin(PinLastInsertID)
	case eqFold(v, "warning_count"), eqFold(v, "error_count"):
		s.write()
	}
}

// isSysVar reports whether a MySQL variable token is a system variable
// (@@name) rather than a user variable.
func isSysVar(v string) bool { return len(v) >= 2 && v[1] == '@' }
