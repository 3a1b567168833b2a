package mysql

import (
	"fmt"

	"github.com/sluicedb/sluice/internal/mysqlwire"
	"github.com/sluicedb/sluice/router"
)

// prepare serves COM_STMT_PREPARE: the statement is prepared on the
// backend its class routes to, and the client gets an id of the session's
// own; executions on other backends prepare it there first.
func (s *session) prepare(p []byte) bool {
	o := &s.srv.opts
	q := string(p[1:])
	cls := o.Classifier.Classify(q)
	bc, err := s.pick(cls)
	if err != nil {
		s.sendError(err)
		return true
	}
	if err := s.sync(bc); err != nil {
		s.sendError(err)
		return true
	}
	if err := s.writeBackend(bc, p, true); err != nil {
		s.sendError(errBackendLost)
		return true
	}
	s.cur = bc
	r := bc.mc.R
	raw, err := r.ReadRawPacket()
	if err != nil {
		s.lost(bc)
		s.sendError(errBackendLost)
		return true
	}
	payload := raw[mysqlwire.HeaderSize:]
	if mysqlwire.IsERR(payload) {
		s.writeRaw(raw)
		return true
	}
	pok, err := mysqlwire.ParseStmtPrepareOK(payload, s.caps)
	if err != nil {
		s.lost(bc)
		s.sendError(errBackendLost)
		return true
	}
	s.nextStmt++
	if s.nextStmt == 0 || s.nextStmt == mysqlwire.LastStatementID {
		s.nextStmt = 1
	}
	id := s.nextStmt
	st := &stmt{
		query:     q,
		cls:       cls,
		numParams: int(pok.NumParams),
		ids:       make(map[*bconn]uint32),
		typed:     make(map[*bconn]int),
	}
	switch {
	case !s.txMode():
		st.ids[bc] = pok.StatementID
	case s.sharedBusy(bc, q, nil):
		// Sharing it would close another statement's open cursor.
		s.keepPrivate(bc, st, pok.StatementID)
	default:
		// The connection keeps it for whichever client executes the same
		// SQL there next.
		s.remember(bc, q, pok.StatementID)
	}
	st.state.NumParams = int(pok.NumParams)
	s.stmts[id] = st
	mysqlwire.SetPrepareOKStatementID(payload, id)
	s.writeRaw(raw)
	for range prepareTail(pok, s.caps) {
		raw, err := r.ReadRawPacket()
		if err != nil {
			s.lost(bc)
			return false // part of the answer went out: the stream cannot be repaired
		}
		s.writeRaw(raw)
	}
	return true
}

// prepareTail is the number of packets after COM_STMT_PREPARE_OK.
func prepareTail(pok mysqlwire.StmtPrepareOK, caps uint64) int {
	n := int(pok.NumParams) + int(pok.NumColumns)
	if caps&mysqlwire.ClientDeprecateEOF == 0 {
		if pok.NumParams > 0 {
			n++
		}
		if pok.NumColumns > 0 {
			n++
		}
	}
	return n
}

// ensure prepares st on bc if needed and returns its id there. An ERR from
// the backend is returned as the error.
func (s *session) ensure(bc *bconn, st *stmt) (uint32, error) {
	if s.txMode() {
		if _, own := st.ids[bc]; !own && s.sharedBusy(bc, st.query, st) {
			// The statement bc shares for this SQL serves another
			// statement's open cursor: executing it would close that.
			id, err := s.prepareOn(bc, st.query)
			if err != nil {
				return 0, err
			}
			s.keepPrivate(bc, st, id)
			return id, nil
		}
	}
	if id, ok := s.stmtID(st, bc); ok {
		return id, nil
	}
	id, err := s.prepareOn(bc, st.query)
	if err != nil {
		return 0, err
	}
	if s.txMode() {
		s.remember(bc, st.query, id)
	} else {
		st.ids[bc] = id
	}
	return id, nil
}

// prepareOn prepares query on bc for the proxy (the client sees nothing of
// it) and returns its id there. An ERR from the backend is returned as the
// error.
func (s *session) prepareOn(bc *bconn, query string) (uint32, error) {
	if err := s.writeBackend(bc, append([]byte{mysqlwire.ComStmtPrepare}, query...), true); err != nil {
		return 0, errBackendLost
	}
	r := bc.mc.R
	_, payload, err := r.ReadPacket()
	if err != nil {
		s.lost(bc)
		return 0, errBackendLost
	}
	if mysqlwire.IsERR(payload) {
		e, _ := mysqlwire.ParseERR(payload)
		return 0, &e
	}
	pok, err := mysqlwire.ParseStmtPrepareOK(payload, s.caps)
	if err != nil {
		s.lost(bc)
		return 0, errBackendLost
	}
	for range prepareTail(pok, s.caps) {
		if _, _, err := r.ReadPacket(); err != nil {
			s.lost(bc)
			return 0, errBackendLost
		}
	}
	return pok.StatementID, nil
}

// sharedBusy reports whether the statement bc shares for query (under
// transaction pooling) serves the open cursor of a client statement other
// than except.
func (s *session) sharedBusy(bc *bconn, query string, except *stmt) bool {
	if len(s.cursor) == 0 {
		return false
	}
	id, ok := bc.sc.cached(bc.sc.stmtKey(query))
	if !ok {
		return false
	}
	for o := range s.cursor {
		if o != except && o.last == bc && o.cursorID == id {
			return true
		}
	}
	return false
}

// keepPrivate records id as st's own statement on bc (transaction
// pooling), closed when bc goes back to its pool.
func (s *session) keepPrivate(bc *bconn, st *stmt, id uint32) {
	st.ids[bc] = id
	bc.private = append(bc.private, st)
}

// closePrivate forgets the statements prepared on bc for one client
// statement alone (see bconn.private) as bc leaves the session, and closes
// them on the server if send (bc goes back to its pool).
func (s *session) closePrivate(bc *bconn, send bool) error {
	var err error
	wrote := false
	for _, st := range bc.private {
		if id, ok := st.ids[bc]; ok {
			delete(st.ids, bc)
			if send && err == nil {
				err = s.writeBackend(bc, mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtClose, id), false)
				wrote = true
			}
		}
	}
	bc.private = nil
	if wrote && err == nil {
		if err = bc.mc.W.Flush(); err != nil {
			s.lost(bc)
		}
	}
	return err
}

// stmtID returns st's id on bc: under transaction pooling the one of the
// connection's statement with the same SQL, whoever prepared it, prepared
// in the database and with the settings the connection has now (synced to
// the session's: see srvConn.stmtKey).
func (s *session) stmtID(st *stmt, bc *bconn) (uint32, bool) {
	if id, ok := st.ids[bc]; ok || !s.txMode() {
		return id, ok // under transaction pooling: prepared for st alone (keepPrivate)
	}
	return bc.sc.cached(bc.sc.stmtKey(st.query))
}

// remember records a statement prepared on bc (in its current database
// and settings) for transaction pooling, closing the one it evicts from
// the connection's cache.
func (s *session) remember(bc *bconn, query string, id uint32) {
	ev := bc.sc.remember(bc.sc.stmtKey(query), id)
	if ev == 0 {
		return
	}
	for o := range s.cursor {
		if o.last == bc && o.cursorID == ev {
			// An open cursor runs on it: closed when bc goes back.
			s.keepPrivate(bc, &stmt{ids: make(map[*bconn]uint32)}, ev)
			return
		}
	}
	s.writeBackend(bc, mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtClose, ev), false)
}

// execute serves COM_STMT_EXECUTE.
func (s *session) execute(p []byte) bool {
	o := &s.srv.opts
	id, ok := mysqlwire.StatementID(p)
	if !ok {
		s.sendERR(1, mysqlwire.ERUnknownComError, "Malformed COM_STMT_EXECUTE")
		return false
	}
	st := s.stmts[id]
	if st == nil {
		s.sendERR(1, mysqlwire.ERUnknownStmtHandler, "Unknown prepared statement handler given to mysqld_stmt_execute")
		return true
	}
	x := &st.exec
	if err := x.Decode(p, &st.state, s.caps); err != nil {
		s.sendERR(1, mysqlwire.ERUnknownComError, "Malformed COM_STMT_EXECUTE")
		return false
	}
	if x.NewParamsBound {
		st.typesVer++
	}
	bc, err := s.pick(st.cls)
	if err != nil {
		s.sendError(err)
		return true
	}
	if err := s.sync(bc); err != nil {
		s.sendError(err)
		return true
	}
	bid, err := s.ensure(bc, st)
	if err != nil {
		s.sendError(err)
		return true
	}
	if s.cursor[st] {
		// Executing its statement again closes the open cursor; one left
		// on another connection, or on another statement of this one (a
		// USE or SET since changed which statement serves the SQL), is
		// closed there.
		if st.last != bc || st.cursorID != bid {
			s.closeCursor(st)
		}
		delete(s.cursor, st)
	}
	for _, ld := range st.longData {
		mysqlwire.SetStatementID(ld, bid)
		if s.writeBackend(bc, ld, false) != nil {
			break
		}
	}
	st.longData = st.longData[:0]
	if st.numParams > 0 && !x.NewParamsBound && (st.typed[bc] != st.typesVer || s.txMode()) {
		// This connection has not seen the current parameter types (under
		// transaction pooling, another client may have executed the same
		// statement since): send them again.
		x.NewParamsBound = true
		st.scratch = x.Append(st.scratch[:0], s.caps)
		p = st.scratch
	}
	if st.numParams > 0 && !s.txMode() {
		st.typed[bc] = st.typesVer
	}
	st.state.Executed(x)
	mysqlwire.SetStatementID(p, bid)
	wasInTx := s.inTx()
	ok, alive := s.run1(bc, p, resultKind, false)
	st.last = bc
	if !alive {
		return false
	}
	s.afterStatement(bc, st.query)
	if ok && s.status&mysqlwire.ServerStatusCursorExists != 0 {
		if s.cursor == nil {
			s.cursor = make(map[*stmt]bool)
		}
		s.cursor[st] = true // its connection serves the COM_STMT_FETCHes
		st.cursorID = bid
	}
	if ok && s.pins(st.cls.Pin) {
		s.setPin(st.cls.Pin, bc)
		o.Metrics.Pins.WithLabelValues(o.Name, string(st.cls.Pin)).Inc()
	}
	s.afterWrite(bc, st.cls.Write || st.cls.Tx == router.TxCommit || wasInTx)
	return true
}

// stmtReset serves COM_STMT_RESET.
func (s *session) stmtReset(p []byte) bool {
	id, ok := mysqlwire.StatementID(p)
	if !ok {
		return false
	}
	st := s.stmts[id]
	if st == nil {
		s.sendERR(1, mysqlwire.ERUnknownStmtHandler, "Unknown prepared statement handler given to mysqld_stmt_reset")
		return true
	}
	st.longData = st.longData[:0]
	st.state.Executed(nil)
	cursor := s.cursor[st]
	delete(s.cursor, st) // the COM_STMT_RESET below closes it
	bc := st.last
	bid, ok := uint32(0), false
	switch {
	case bc == nil || bc.dead:
	case s.txMode():
		// Long data waits in the proxy until the execution, so the server
		// has only an open cursor to reset, on the statement it runs on
		// (which another statement with the same SQL may share: without a
		// cursor of st's, resetting it could close that one's).
		bid, ok = st.cursorID, cursor
	default:
		bid, ok = s.stmtID(st, bc)
	}
	if !ok {
		s.sendOK(1)
		return true
	}
	mysqlwire.SetStatementID(p, bid)
	_, alive := s.run1(bc, p, singleKind, false)
	return alive
}

// fetch serves COM_STMT_FETCH on the connection that opened the cursor.
func (s *session) fetch(p []byte) bool {
	id, ok := mysqlwire.StatementID(p)
	if !ok {
		return false
	}
	st := s.stmts[id]
	if st == nil || st.last == nil || st.last.dead {
		s.sendERR(1, mysqlwire.ERUnknownStmtHandler, "Unknown prepared statement handler given to mysqld_stmt_fetch")
		return true
	}
	bc := st.last
	bid := st.cursorID // where its cursor is, whatever the connection's database and settings now
	if !s.cursor[st] {
		if s.txMode() {
			// The statement bc shares for its SQL may serve another
			// statement's cursor: answer as the server would.
			s.sendERR(1, mysqlwire.ERStmtHasNoOpenCursor, fmt.Sprintf("The statement (%d) has no open cursor.", id))
			return true
		}
		bid, _ = s.stmtID(st, bc) // no cursor: the server says so
	}
	mysqlwire.SetStatementID(p, bid)
	bc.midCommand = true
	if err := s.writeBackend(bc, p, true); err != nil {
		s.sendError(errBackendLost)
		return true
	}
	ok, _, err := s.relayRows(bc)
	if err != nil {
		s.lost(bc)
		return false
	}
	bc.midCommand = false
	bc.status = s.status
	if !ok || s.status&mysqlwire.ServerStatusLastRowSent != 0 {
		delete(s.cursor, st)
	}
	return true
}

// closeCursor forgets st's open cursor, if any. Under transaction pooling
// the statement stays prepared on its connection for other clients, so
// the cursor is closed there with COM_STMT_RESET; a connection on which
// that fails is not pooled again. It reports whether the connection is
// clean.
func (s *session) closeCursor(st *stmt) bool {
	if !s.cursor[st] {
		return true
	}
	delete(s.cursor, st)
	bc := st.last
	if !s.txMode() || bc == nil || bc.dead {
		return true
	}
	if s.exec(bc, mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtReset, st.cursorID)) != nil {
		bc.sc.dirty = true
		return false
	}
	return true
}
