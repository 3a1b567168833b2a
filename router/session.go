package router

import (
	"strconv"
	"strings"
)

// SessionOpKind is the kind of a session-state statement.
type SessionOpKind uint8

const (
	// SessionSet sets a session variable (PostgreSQL SET, MySQL SET of a
	// session system variable, SET NAMES …).
	SessionSet SessionOpKind = iota
	// SessionReset resets one variable to its default (PostgreSQL RESET x).
	SessionReset
	// SessionResetAll resets every variable (PostgreSQL RESET ALL,
	// DISCARD ALL).
	SessionResetAll
	// SessionUse selects the default database (MySQL USE db).
	SessionUse
)

// String returns a short lower-case name of the kind.
func (k SessionOpKind) String() string {
	switch k {
	case SessionSet:
		return "set"
	case SessionReset:
		return "reset"
	case SessionResetAll:
		return "reset_all"
	case SessionUse:
		return "use"
	}
	return "session_op(" + strconv.Itoa(int(k)) + ")"
}

// SessionOp is one session-state change, to be replayed on the other
// backends a session uses.
type SessionOp struct {
	// Kind is what the statement does.
	Kind SessionOpKind
	// Name is the lower-cased variable name ("" for SessionResetAll; the
	// database for SessionUse, as written but unquoted). Forms that are not a
	// plain variable get the name of the variable they set: PostgreSQL
	// SET TIME ZONE → "timezone", SET NAMES → "client_encoding",
	// SET SCHEMA → "search_path", SET XML OPTION → "xmloption",
	// SET SESSION AUTHORIZATION → "session_authorization"; MySQL SET NAMES →
	// "names", SET CHARACTER SET → "character_set"; PostgreSQL
	// SET SESSION CHARACTERISTICS AS TRANSACTION and MySQL
	// SET SESSION TRANSACTION → "transaction_characteristics".
	Name string
	// Text is the exact statement text to replay, without the trailing ';'.
	// For a MySQL SET with several assignments, each session assignment gets
	// its own op whose Text is "SET " followed by the assignment's text.
	Text string
}

// SessionOps returns the session-state statements of sql, in order. It is
// meant to be called only when Classify reported SessionSet, and may
// allocate.
func (c *Classifier) SessionOps(sql string) []SessionOp {
	var ops []SessionOp
	c.classify(sql, &ops)
	return ops
}

// pendingOp is a session op whose text is known once its statement ends.
type pendingOp struct {
	kind       SessionOpKind
	name       string
	start, end int // the assignment (MySQL SET); end < 0: the whole statement
}

// sessionOp records a session op spanning the whole statement.
func (s *scan) sessionOp(k SessionOpKind, name string) {
	s.sessionOpSpan(k, name, 0, -1)
}

// sessionOpSpan records a session op for the text src[start:end].
func (s *scan) sessionOpSpan(k SessionOpKind, name string, start, end int) {
	s.cl.SessionSet = true
	if s.ops != nil {
		s.pending = append(s.pending, pendingOp{kind: k, name: name, start: start, end: end})
	}
}

// flushOps turns the pending ops of the statement that just ended into
// SessionOps.
func (s *scan) flushOps() {
	for _, p := range s.pending {
		text := s.lx.src[s.stmtStart:s.lastEnd]
		if p.end >= 0 && s.assigns > 1 {
			text = "SET " + s.lx.src[p.start:p.end]
		}
		*s.ops = append(*s.ops, SessionOp{Kind: p.kind, Name: p.name, Text: text})
	}
	s.pending = s.pending[:0]
}

// dottedName reads a possibly qualified name (a.b.c) that starts with t and
// returns it normalised: unquoted parts lower-cased, quoted parts unquoted.
// Outside SessionOps it returns "" without reading anything.
func (s *scan) dottedName(t token) string {
	if s.ops == nil {
		return ""
	}
	var b strings.Builder
	for {
		b.WriteString(s.identName(t))
		if !isPunct(s.next(), '.') {
			break
		}
		t = s.next()
		if t.kind != tWord && t.kind != tQIdent {
			break
		}
		b.WriteByte('.')
	}
	return b.String()
}

// identName returns the name a word or quoted identifier stands for.
func (s *scan) identName(t token) string {
	txt := s.text(t)
	if t.kind != tQIdent || len(txt) < 2 {
		return asciiLower(txt)
	}
	q := txt[:1]
	return strings.ReplaceAll(txt[1:len(txt)-1], q+q, q)
}

// asciiLower lower-cases the ASCII letters of s, as both servers do for
// unquoted names.
func asciiLower(s string) string {
	b := []byte(s)
	for i := range b {
		b[i] = lower(b[i])
	}
	return string(b)
}
