package router

// pgStatement classifies one PostgreSQL statement whose first token is t.
// nested is set for the statement explained by EXPLAIN ANALYZE, where only
// explainable statements are expected.
//
// Reads are SELECT, VALUES, TABLE, WITH, a parenthesised query, SHOW,
// EXPLAIN (without ANALYZE, or ANALYZE of a read), COPY … TO and
// BEGIN/START TRANSACTION READ ONLY; observe turns a read into a write when it
// sees a writing function, a locking clause, INTO or a writing CTE. Anything
// else is a write.
func (s *scan) pgStatement(t token, nested bool) {
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
		return
	case kwCreate:
		s.pgCreate()
		return
	case kwDeclare:
		s.pgDeclare()
		return
	}
	if nested {
		s.write()
		return
	}
	switch t.kw {
	case kwShow:
		// a read
	case kwExplain:
		s.pgExplain()
	case kwCopy:
		s.pgCopy()
	case kwBegin:
		s.beginModes(s.next())
	case kwStart:
		if t = s.next(); t.kw == kwTransaction {
			s.beginModes(s.next())
		} else {
			s.write()
		}
	case kwCommit, kwEnd:
		s.pgEnd(TxCommit)
	case kwRollback, kwAbort:
		s.pgEnd(TxRollback)
	case kwSet:
		s.pgSet()
	case kwReset:
		s.pgReset()
	case kwDiscard:
		s.write()
		if s.next().kw == kwAll {
			s.sessionOp(SessionResetAll, "")
		}
	case kwListen:
		s.pin(PinListen)
	case kwPrepare:
		s.pgPrepare()
	case kwAlter, kwDrop, kwComment, kwGrant, kwRevoke, kwSecurity:
		// DDL names functions without calling them
		s.write()
		s.noFuncPin = true
	default:
		s.write()
	}
}

// readOrWrite classifies a statement that starts with t after opening
// parentheses: a query is a read candidate, anything else a write.
func (s *scan) readOrWrite(t token) {
	switch t.kw {
	case kwSelect, kwValues, kwTable, kwWith:
		s.readLike = true
	default:
		s.write()
	}
}

// pgEnd handles COMMIT, END, ROLLBACK and ABORT. ROLLBACK TO SAVEPOINT and
// the two-phase COMMIT/ROLLBACK PREPARED do not end the session's
// transaction.
func (s *scan) pgEnd(e TxEffect) {
	s.write()
	t := s.next()
	if t.kw == kwWork || t.kw == kwTransaction {
		t = s.next()
	}
	if t.kw == kwTo || t.kw == kwPrepared {
		return
	}
	s.tx(e)
}

// pgExplain handles EXPLAIN. Without ANALYZE nothing is executed, so it is a
// read whatever it explains; with ANALYZE the explained statement decides.
func (s *scan) pgExplain() {
	s.inert = true // the options and the explained statement run nothing …
	t := s.next()
	analyze := false
	if isPunct(t, '(') {
		for !s.done && s.depth > 0 {
			if t = s.next(); t.kw == kwAnalyze || t.kw == kwAnalyse {
				analyze = true // conservative: even ANALYZE false
			}
		}
		t = s.next()
	} else {
		for t.kw == kwAnalyze || t.kw == kwAnalyse || t.kw == kwVerbose {
			if t.kw != kwVerbose {
				analyze = true
			}
			t = s.next()
		}
	}
	if !analyze || s.done {
		return
	}
	s.inert = false // … unless ANALYZE runs the statement
	s.pgStatement(t, true)
}

// pgCopy handles COPY: COPY … TO is a read (of a table or of a query that
// observe checks), COPY … FROM a write.
func (s *scan) pgCopy() {
	for t := s.next(); !s.done; t = s.next() {
		if s.depth == 0 {
			switch t.kw {
			case kwTo:
				return
			case kwFrom:
				s.write()
				return
			}
		}
	}
	s.write()
}

// pgCreate handles CREATE: a write that pins for temporary objects
// (CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP|TEMPORARY …, or a name in pg_temp).
func (s *scan) pgCreate() {
	s.write()
	s.create = true
	s.noFuncPin = true
	for {
		switch s.next().kw {
		case kwOr, kwReplace, kwGlobal, kwLocal:
			continue
		case kwTemp, kwTemporary:
			s.pin(PinTempTable)
		}
		return
	}
}

// pgDeclare handles DECLARE name … CURSOR [WITH HOLD] FOR query.
func (s *scan) pgDeclare() {
	s.write()
	last := kwNone
	for t := s.next(); !s.done; t = s.next() {
		if t.kw == kwFor && s.depth == 0 {
			return
		}
		if t.kw == kwHold && last == kwWith {
			s.pin(PinCursorWithHold)
		}
		last = t.kw
	}
}

// pgPrepare handles PREPARE name AS … (pins) and the two-phase
// PREPARE TRANSACTION 'gid' (does not).
func (s *scan) pgPrepare() {
	s.write()
	if s.next().kw == kwTransaction && s.next().kind == tString {
		return
	}
	s.pin(PinSQLPrepare)
}

// pgSet handles SET. Session-level settings are replayed on other backends;
// SET LOCAL, SET TRANSACTION and SET CONSTRAINTS only last for the current
// transaction.
func (s *scan) pgSet() {
	s.write()
	t := s.next()
	local := false
	switch t.kw {
	case kwLocal:
		local = true
		t = s.next()
	case kwSession:
		t = s.next()
		if t.kw == kwCharacteristics {
			// SET SESSION CHARACTERISTICS AS TRANSACTION …
			s.sessionOp(SessionSet, "transaction_characteristics")
			return
		}
		if t.kw == kwAuthorization {
			s.sessionOp(SessionSet, "session_authorization")
			return
		}
	}
	var name string
	switch t.kw {
	case kwTransaction, kwConstraints:
		return
	case kwTime:
		name = "timezone"
	case kwSchema:
		name = "search_path"
	case kwNames:
		name = "client_encoding"
	case kwXml:
		name = "xmloption"
	case kwSession:
		if s.next().kw != kwAuthorization {
			return
		}
		name = "session_authorization"
	default:
		if t.kind != tWord && t.kind != tQIdent {
			return
		}
		name = s.dottedName(t)
	}
	if !local {
		s.sessionOp(SessionSet, name)
	}
}

// pgReset handles RESET name, RESET ALL and their special forms.
func (s *scan) pgReset() {
	s.write()
	t := s.next()
	var name string
	switch t.kw {
	case kwAll:
		s.sessionOp(SessionResetAll, "")
		return
	case kwTransaction:
		return // RESET TRANSACTION ISOLATION LEVEL
	case kwTime:
		name = "timezone"
	case kwSession:
		name = "session_authorization"
	default:
		if t.kind != tWord && t.kind != tQIdent {
			return
		}
		name = s.dottedName(t)
	}
	s.sessionOp(SessionReset, name)
}
