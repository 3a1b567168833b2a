package router

import "strings"

// mysqlStatement classifies one MySQL / MariaDB statement whose first token
// is t.
//
// Reads are SELECT, a parenthesised query, WITH, TABLE, VALUES, SHOW (except
// the forms about the previous statement or replication), DESCRIBE / DESC /
// EXPLAIN of a read or of a table, and START TRANSACTION READ ONLY; observe
// turns a read into a write when it sees a writing function, a locking
// clause, INTO or a user variable assignment. Anything else is a write.
func (s *scan) mysqlStatement(t token) {
	if isPunct(t, '(') {
		for isPunct(t, '(') {
			t = s.next()
		}
		s.readOrWrite(t)
		return
	}
	switch t.kw {
	case kwSelect, kwValues, kwTable, kwWith:
		s.readLike = true
	case kwShow:
		s.mysqlShow()
	case kwExplain, kwDescribe, kwDesc:
		s.mysqlExplain()
	case kwBegin:
		s.write()
		if s.next().kw == kwNot {
			// MariaDB BEGIN NOT ATOMIC …; …; END
			s.swallow = true
			return
		}
		s.tx(TxBegin)
	case kwStart:
		if s.next().kw == kwTransaction {
			s.beginModes(s.next())
		} else {
			s.write()
		}
	case kwCommit:
		s.write()
		s.tx(TxCommit)
	case kwRollback:
		s.write()
		t = s.next()
		if t.kw == kwWork {
			t = s.next()
		}
		if t.kw != kwTo {
			s.tx(TxRollback)
		}
	case kwXa:
		s.write()
		if k := s.next().kw; k == kwStart || k == kwBegin {
			s.tx(TxBegin)
		}
	case kwSet:
		s.mysqlSet()
	case kwUse:
		s.mysqlUse()
	case kwLock:
		// LOCK TABLES, LOCK INSTANCE FOR BACKUP: held by the session
		s.pin(PinLockTables)
	case kwFlush:
		s.write()
		for t = s.next(); !s.done; t = s.next() {
			if t.kw == kwLock || t.kw == kwExport {
				// FLUSH TABLES … WITH READ LOCK / FOR EXPORT
				s.pin(PinLockTables)
			}
		}
	case kwCreate:
		s.mysqlCreate()
	case kwPrepare:
		s.pin(PinSQLPrepare)
	case kwIf, kwWhile, kwLoop, kwRepeat, kwCase:
		// MariaDB compound statements outside stored programs
		s.write()
		s.swallow = true
	case kwAlter, kwDrop, kwGrant, kwRevoke, kwRename:
		// DDL names functions without calling them
		s.write()
		s.noFuncPin = true
	default:
		s.write()
	}
}

// mysqlShow handles SHOW: a read, except the forms that describe the
// connection's previous statement (warnings, errors, profiles), which only
// mean something on the connection that ran it, and the replication status
// forms, which describe the writer.
func (s *scan) mysqlShow() {
	switch s.next().kw {
	case kwWarnings, kwErrors, kwCount, kwProfile, kwProfiles,
		kwMaster, kwBinary, kwBinlog, kwReplica, kwReplicas, kwSlave:
		s.write()
	}
}

// mysqlExplain handles EXPLAIN / DESCRIBE / DESC. Describing a table and
// explaining a query (with or without ANALYZE) are reads when the query is;
// explaining INSERT/UPDATE/DELETE/REPLACE is sent to the writer (a
// read_only replica may refuse it).
func (s *scan) mysqlExplain() {
	t := s.next()
options:
	for {
		switch t.kw {
		case kwAnalyze, kwExtended, kwPartitions:
			t = s.next()
		case kwFormat:
			// FORMAT = TREE
			if t = s.next(); isPunct(t, '=') {
				t = s.next()
			}
			t = s.next()
		case kwInto:
			// EXPLAIN FORMAT = JSON INTO @v …
			if t = s.next(); t.kind == tVar {
				s.pin(PinUserVariable)
			}
			t = s.next()
		default:
			break options
		}
	}
	if s.done {
		return
	}
	if isPunct(t, '(') {
		for isPunct(t, '(') {
			t = s.next()
		}
		s.readOrWrite(t)
		return
	}
	switch t.kw {
	case kwSelect, kwValues, kwTable, kwWith:
		s.readLike = true
	case kwFor:
		// EXPLAIN FOR CONNECTION n
	case kwInsert, kwUpdate, kwDelete, kwReplace:
		s.write()
	default:
		if t.kind != tWord && t.kind != tQIdent {
			s.write()
		}
		// DESCRIBE table [column]
	}
}

// mysqlCreate handles CREATE: a write that pins for
// CREATE [OR REPLACE] TEMPORARY TABLE.
func (s *scan) mysqlCreate() {
	s.write()
	s.create = true
	s.noFuncPin = true
	for {
		switch s.next().kw {
		case kwOr, kwReplace:
			continue
		case kwTemporary:
			s.pin(PinTempTable)
		}
		return
	}
}

// mysqlUse handles USE db.
func (s *scan) mysqlUse() {
	s.write()
	t := s.next()
	if t.kind != tWord && t.kind != tQIdent {
		return
	}
	name := ""
	if s.ops != nil {
		name = s.text(t)
		if t.kind == tQIdent {
			name = s.identName(t)
		}
	}
	s.sessionOp(SessionUse, name)
}

// mysqlSet handles SET, a list of assignments:
//
//	SET [GLOBAL|SESSION|LOCAL|PERSIST|PERSIST_ONLY] var = expr, @uv = expr,
//	    @@[global.|session.|local.]var = expr, NAMES …, CHARACTER SET …
//
// and the statement forms SET [GLOBAL|SESSION] TRANSACTION …, SET PASSWORD,
// SET ROLE, SET DEFAULT ROLE, SET STATEMENT … FOR, SET RESOURCE GROUP.
// A scope keyword applies to the assignments that follow it. Session
// system variables are replayed; user variables pin.
func (s *scan) mysqlSet() {
	s.write()
	global := false
	t := s.next()
	for !s.done {
		s.assigns++
		start := t.start
		own := false
		switch t.kw {
		case kwGlobal, kwPersist, kwPersistOnly:
			global, own = true, true
			t = s.next()
		case kwSession, kwLocal:
			global, own = false, true
			t = s.next()
		}
		if s.assigns == 1 {
			switch t.kw {
			case kwTransaction:
				// without a scope, only the next transaction
				if own && !global {
					s.sessionOp(SessionSet, "transaction_characteristics")
				}
				return
			case kwPassword, kwDefault, kwStatement, kwResource:
				return
			case kwRole:
				s.sessionOp(SessionSet, "role")
				return
			}
		}
		session := !global
		name := ""
		end := t.end
		switch {
		case t.kind == tVar && !isSysVar(s.text(t)):
			s.pin(PinUserVariable)
			session = false
			t = s.next()
		case t.kind == tVar:
			v := s.text(t)[2:]
			session = true
			switch {
			case hasPrefixFold(v, "global."), hasPrefixFold(v, "persist."), hasPrefixFold(v, "persist_only."):
				session = false
			case hasPrefixFold(v, "session."), hasPrefixFold(v, "local."):
				v = v[strings.IndexByte(v, '.')+1:]
			}
			if s.ops != nil {
				name = asciiLower(v)
			}
			t = s.next()
		case t.kw == kwNames:
			name = "names"
			t = s.next()
		case t.kw == kwCharset, t.kw == kwCharacter:
			name = "character_set"
			t = s.next()
		case t.kind == tWord || t.kind == tQIdent:
			name, t, end = s.mysqlVarName(t)
		default:
			session = false
		}
		for ; !s.done && !(isPunct(t, ',') && s.depth == 0); t = s.next() {
			end = t.end
		}
		if session {
			s.sessionOpSpan(SessionSet, name, start, end)
		}
		if s.done {
			return
		}
		t = s.next()
	}
}

// mysqlVarName reads a system variable name (name or component.name) that
// starts with t. It returns the normalised name (only for SessionOps), the
// token after the name and the end offset of the name.
func (s *scan) mysqlVarName(t token) (string, token, int) {
	var b strings.Builder
	for {
		if s.ops != nil {
			b.WriteString(s.identName(t))
		}
		end := t.end
		n := s.next()
		if !isPunct(n, '.') {
			return b.String(), n, end
		}
		if t = s.next(); t.kind != tWord && t.kind != tQIdent {
			return b.String(), t, end
		}
		b.WriteByte('.')
	}
}
