package pg

import (
	"bytes"
	"strconv"
	"strings"
	"unsafe"

	"github.com/sluicedb/sluice/internal/ascii"
	"github.com/sluicedb/sluice/internal/pgwire"
	"github.com/sluicedb/sluice/router"
)

// unsafeString views b as a string without copying. The result must not
// outlive b's contents.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// send forwards one client message to bc, keeping the statement
// bookkeeping: statements the message needs are prepared on bc first, the
// session state is replayed if bc lags behind it, and the responses to
// expect are queued. cls is the message's class when the caller already
// classified it. It reports false if bc died.
func (s *session) send(bc *bconn, typ byte, raw []byte, cls *router.Class) bool {
	body := raw[pgwire.HeaderLen:]
	var e expect
	queued := false
	switch typ {
	case pgwire.MsgQuery:
		q, _ := pgwire.ParseQuery(body)
		c := s.classOf(cls, q)
		s.notePin(bc, c)
		if c.SessionSet {
			s.noteSessionOps(bc, q)
		}
		if c.Write {
			s.noteDeallocate(q)
		}
		// A simple Query destroys the unnamed statement.
		delete(bc.prepared, "")
		delete(s.stmts, "")
		s.batchExec = true
		e, queued = expect{kind: 'Z', setOps: s.takeOps()}, true
	case pgwire.MsgParse:
		name, q, _ := pgwire.ParseParse(body)
		prev, st := s.recordParse(name, q, raw, cls)
		s.notePin(bc, st.cls)
		if on := bc.prepared[unsafeString(name)]; len(name) > 0 && on != nil && on != prev {
			// A stale statement of that name is left on this backend from
			// before the client closed or redefined it.
			if !s.injectClose(bc, name) {
				return false
			}
		}
		if len(name) > 0 && bc.prepared[unsafeString(name)] == nil && !s.evict(bc) {
			return false
		}
		key := string(name)
		bc.prepared[key] = st
		bc.touch(st)
		e, queued = expect{kind: '1', name: key, prev: prev, client: true}, true
	case pgwire.MsgBind:
		_, name, _ := pgwire.ParseBind(body)
		st := s.stmts[unsafeString(name)]
		if !s.ensure(bc, name, st) {
			return false
		}
		if st != nil && st.ops != nil {
			s.batchOps = append(s.batchOps, st.ops...)
		}
	case pgwire.MsgDescribe:
		if kind, name, _ := pgwire.ParseTarget(body); kind == 'S' {
			if !s.ensure(bc, name, s.stmts[unsafeString(name)]) {
				return false
			}
		}
	case pgwire.MsgClose:
		e, queued = expect{kind: '3'}, true
		if kind, name, _ := pgwire.ParseTarget(body); kind == 'S' {
			delete(s.stmts, unsafeString(name))
			delete(bc.prepared, unsafeString(name))
			e.name, e.stmtClose = string(name), true
		}
	case pgwire.MsgExecute:
		s.batchExec = true
	case pgwire.MsgFuncCall:
		s.batchExec = true
		e, queued = expect{kind: 'Z'}, true
	case pgwire.MsgSync:
		e, queued = expect{kind: 'Z', setOps: s.takeOps(), sync: true}, true
	}
	if queued {
		if !s.enqueue(bc, e) {
			return false
		}
	} else if !s.alive(bc) {
		return false
	}
	if _, err := bc.pc.W.Write(raw); err != nil {
		// The relay goroutine sees the failure and answers what was queued.
		bc.writeFailed(err)
	}
	return true
}

// recordParse records the client's statement parsed by the Parse message
// raw (name and query q taken from it; cls its class when already known),
// keeping the previous record when the Parse is the same. It returns the
// previous and the current record.
func (s *session) recordParse(name, q, raw []byte, cls *router.Class) (prev, st *stmt) {
	prev = s.stmts[unsafeString(name)]
	if prev != nil && bytes.Equal(prev.raw, raw) {
		return prev, prev
	}
	c := s.classOf(cls, q)
	st = &stmt{raw: bytes.Clone(raw), query: string(q), cls: c}
	if c.SessionSet {
		st.ops = cloneOps(s.srv.opts.Classifier.SessionOps(st.query))
	}
	s.stmts[string(name)] = st
	return prev, st
}

func (s *session) classOf(cls *router.Class, q []byte) router.Class {
	if cls != nil {
		return *cls
	}
	return s.srv.opts.Classifier.Classify(unsafeString(q))
}

// notePin pins the session to bc, the connection that will hold the state
// the statement creates (normally the writer; a replica inside a read-only
// transaction), the first time a statement needs it, and counts the reason.
func (s *session) notePin(bc *bconn, c router.Class) {
	if c.Pin == "" {
		return
	}
	s.mu.Lock()
	first := s.pinned == ""
	if first {
		s.pinned = c.Pin
		s.pinnedTo = bc
	}
	s.mu.Unlock()
	if first {
		s.srv.opts.Metrics.Pins.WithLabelValues(s.srv.opts.Name, string(c.Pin)).Inc()
	}
}

// noteSessionOps records the session-state changes of a simple Query so
// they can be replayed elsewhere once the query succeeds.
func (s *session) noteSessionOps(bc *bconn, q []byte) {
	ops := cloneOps(s.srv.opts.Classifier.SessionOps(string(q)))
	for _, op := range ops {
		if op.Kind == router.SessionResetAll && isDiscardAll(op.Text) {
			// DISCARD ALL also drops every prepared statement (if it
			// fails, they stay: uncertain until re-prepared).
			clear(s.stmts)
			for n := range bc.prepared {
				bc.prepared[n] = unknownStmt
			}
		}
	}
	s.batchOps = append(s.batchOps, ops...)
}

// noteDeallocate keeps the statement bookkeeping right when SQL DEALLOCATE
// drops protocol-level prepared statements: the client no longer has them,
// and every backend connection's copy becomes uncertain (closed and
// re-prepared before its next use, which is harmless if the DEALLOCATE
// failed or ran elsewhere).
func (s *session) noteDeallocate(q []byte) {
	if !ascii.ContainsFold(q, "deallocate") {
		return // every write Query comes here: keep the common case cheap
	}
	for _, stmt := range bytes.Split(q, []byte(";")) {
		f := strings.Fields(string(stmt))
		if len(f) < 2 || !strings.EqualFold(f[0], "DEALLOCATE") {
			continue
		}
		name := f[1]
		if strings.EqualFold(name, "PREPARE") && len(f) > 2 {
			name = f[2]
		}
		all := strings.EqualFold(name, "ALL")
		if !all {
			if strings.HasPrefix(name, `"`) && strings.HasSuffix(name, `"`) && len(name) >= 2 {
				name = strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
			} else {
				name = strings.ToLower(name)
			}
		}
		s.mu.Lock() // the connections the session holds cannot leave it meanwhile
		for _, c := range s.conns {
			for n := range c.prepared {
				if n != "" && (all || n == name) {
					c.prepared[n] = unknownStmt
				}
			}
		}
		s.mu.Unlock()
		for n := range s.stmts {
			if n != "" && (all || n == name) {
				delete(s.stmts, n)
			}
		}
	}
}

func cloneOps(ops []router.SessionOp) []router.SessionOp {
	for i := range ops {
		ops[i].Name = strings.Clone(ops[i].Name)
		ops[i].Text = strings.Clone(ops[i].Text)
	}
	return ops
}

func (s *session) takeOps() []router.SessionOp {
	if len(s.batchOps) == 0 {
		return nil
	}
	ops := s.batchOps
	s.batchOps = nil
	return ops
}

// ensure makes the client's statement st (named name; nil if the client has
// none) exist on bc, preparing it there (invisibly to the client) when it
// was prepared on another backend.
func (s *session) ensure(bc *bconn, name []byte, st *stmt) bool {
	if st == nil {
		// The client has no such statement: the backend must answer as
		// PostgreSQL would (26000), even if this pooled connection has one
		// of that name from another client.
		if bc.prepared[unsafeString(name)] != nil {
			return s.injectClose(bc, name)
		}
		return true
	}
	on := bc.prepared[unsafeString(name)]
	if on == st {
		bc.touch(st)
		return true
	}
	if on != nil && on != unknownStmt && bytes.Equal(on.raw, st.raw) {
		// Prepared by an earlier session that used this pooled
		// connection: the very same statement.
		bc.touch(on)
		return true
	}
	if len(name) > 0 && on != nil {
		if !s.injectClose(bc, name) {
			return false
		}
	}
	if !s.evict(bc) {
		return false
	}
	key := string(name)
	if !s.inject(bc, st.raw, expect{kind: '1', swallow: true, name: key}) {
		return false
	}
	bc.prepared[key] = st
	bc.touch(st)
	return true
}

// maxPreparedPerConn bounds the named statements kept prepared on one
// backend connection: under pooling, connections collect the statements of
// every client they serve. The least recently used go first.
const maxPreparedPerConn = 250

// touch records that st, prepared on bc, was just used.
func (bc *bconn) touch(st *stmt) {
	if bc.used == nil {
		bc.used = make(map[*stmt]uint64)
	}
	bc.tick++
	bc.used[st] = bc.tick
}

// evict closes the least recently used named statement on bc when it holds
// maxPreparedPerConn of them, to make room for one more.
func (s *session) evict(bc *bconn) bool {
	if len(bc.prepared) < maxPreparedPerConn {
		return true
	}
	var victim string
	var oldest uint64
	found := false
	for n, st := range bc.prepared {
		if n == "" {
			continue
		}
		if t := bc.used[st]; !found || t < oldest {
			victim, oldest, found = n, t, true
		}
	}
	if !found {
		return true
	}
	if len(bc.used) > 2*maxPreparedPerConn {
		// Forget the use times of statements no longer on bc.
		live := make(map[*stmt]uint64, len(bc.prepared))
		for _, st := range bc.prepared {
			if t, ok := bc.used[st]; ok {
				live[st] = t
			}
		}
		bc.used = live
	}
	return s.injectClose(bc, []byte(victim))
}

func (s *session) injectClose(bc *bconn, name []byte) bool {
	s.scratch = pgwire.AppendClose(s.scratch[:0], 'S', string(name))
	if !s.inject(bc, s.scratch, expect{kind: '3', swallow: true, name: string(name), stmtClose: true}) {
		return false
	}
	delete(bc.prepared, unsafeString(name))
	return true
}

// resetStateQuery brings a connection back to its defaults before the
// session's settings are replayed on it. RESET ALL leaves the session
// authorization alone (as DISCARD ALL does not): reset it too.
const resetStateQuery = "SET SESSION AUTHORIZATION DEFAULT; RESET ALL"

// stateUnknown marks a connection whose session state is uncertain (a
// replay failed): it never equals a session's stateSQL.
const stateUnknown = "\x00unknown"

// replay brings bc's session state (SET …) up to date with the session's,
// with an invisible RESET ALL followed by the tracked settings. It is called
// once per batch, before the batch's first message (never in the middle of
// an extended-protocol batch). A pooled connection keeps the state of the
// last session it served; nothing is sent when that is the same.
//
// When the state sets a role or session authorization, the replay is
// waited for before the batch goes out: should it fail (the role was
// dropped, a cancel hit it), the batch must not run as the login user.
// The session is ended then, with a FATAL error, since the state the
// client relies on cannot be restored.
func (s *session) replay(bc *bconn) error {
	s.mu.Lock()
	if bc.stateSQL != s.stateSQL {
		// Batches still in flight on bc (pipelined) may change the state
		// when they end, and the replay's RESET ALL must not undo a SET
		// among them: let them finish first.
		for bc.inflight > 0 && !bc.dead && !s.closing {
			s.cond.Wait()
		}
	}
	want := s.stateSQL
	fresh := bc.pristine // nothing to reset
	bc.pristine = false  // the batch that follows runs on it
	if bc.stateSQL == want {
		s.mu.Unlock()
		return nil
	}
	privileged := false
	for _, st := range s.sets {
		privileged = privileged || st.name == "role" || st.name == "session_authorization"
	}
	s.mu.Unlock()
	// RESET ALL on its own: should a SET after it fail (and with it its
	// implicit transaction), the connection is left with the defaults, not
	// with another client's settings.
	if !fresh {
		s.scratch = pgwire.AppendQuery(s.scratch[:0], resetStateQuery)
		if !s.inject(bc, s.scratch, expect{kind: 'Z', swallow: true, replay: true}) {
			return errBackendLost
		}
	}
	if want != "" {
		s.scratch = pgwire.AppendQuery(s.scratch[:0], strings.TrimPrefix(want, "RESET ALL;"))
		if !s.inject(bc, s.scratch, expect{kind: 'Z', swallow: true, replay: true}) {
			return errBackendLost
		}
	}
	delete(bc.prepared, "") // a Query destroys the unnamed statement
	s.mu.Lock()
	bc.stateSQL = want // the relay marks it stateUnknown if the replay fails
	s.mu.Unlock()
	if !privileged {
		return nil
	}
	s.flushBackend(bc)
	s.mu.Lock()
	for bc.inflight > 0 && !bc.dead && !s.closing {
		s.cond.Wait()
	}
	restored := bc.stateSQL == want && !bc.dead
	closing := s.closing
	s.mu.Unlock()
	switch {
	case closing:
		return errClosing
	case bc.dead:
		return errBackendLost
	case !restored:
		s.fatal("08006", "the session's role (SET ROLE / SET SESSION AUTHORIZATION) could not be restored on a backend connection; reconnect")
		s.conn.Close()
		return errClosing
	}
	return nil
}

// applyOps records successful session-state changes made on bc. Called with
// s.mu held.
func (s *session) applyOps(bc *bconn, ops []router.SessionOp) {
	upToDate := bc.stateSQL == s.stateSQL
	var reset []setting // base settings a RESET returned the session to
	for _, op := range ops {
		switch op.Kind {
		case router.SessionResetAll:
			// RESET ALL (DISCARD ALL) went back to the connection's own
			// startup values, not to the session's base.
			upToDate = upToDate && len(s.base) == 0
			reset = append(reset, s.base...)
			if !isDiscardAll(op.Text) {
				// RESET ALL leaves the role and the session authorization
				// as they are (the server's GUC_NO_RESET_ALL): keep them.
				s.sets = keepSettings(s.sets, "role", "session_authorization", "seed")
				break
			}
			s.sets = s.sets[:0]
			if s.pinnedTo == bc {
				// DISCARD ALL dropped whatever pinned the session (temporary
				// tables, advisory locks, LISTEN, prepared SQL statements,
				// held cursors): it may move between connections again.
				s.pinned, s.pinnedTo = "", nil
			}
		case router.SessionReset:
			if op.Name == "session_authorization" {
				s.sets = removeSetting(s.sets, "role") // the server drops the role with it
			}
			s.sets = removeSetting(s.sets, op.Name)
			for _, b := range s.base {
				if b.name == op.Name {
					upToDate = false // as for RESET ALL
					reset = append(reset, b)
				}
			}
		default:
			if op.Name == "session_authorization" {
				s.sets = removeSetting(s.sets, "role") // the server drops the role with it
			}
			s.sets = append(removeSetting(s.sets, op.Name), setting{name: op.Name, text: op.Text})
		}
	}
	s.rebuildStateSQL()
	if upToDate {
		bc.stateSQL = s.stateSQL
	} else if bc.stateSQL == s.stateSQL {
		bc.stateSQL = stateUnknown // replay before the next batch
	}
	// The server reported the connection's own value for those it
	// reports; the session's is its base value, which the next batch's
	// connection gets (maybe without a replay, so tell the client now).
	var ps [][2]string
	for _, b := range reset {
		if _, reported := s.reported[b.name]; reported {
			ps = append(ps, [2]string{b.name, b.value})
		}
	}
	s.reportParams(ps)
}

// rebuildStateSQL sets stateSQL from the session's base and its SETs (a
// later SET of the same name wins).
func (s *session) rebuildStateSQL() {
	s.stateSQL = ""
	if len(s.base) == 0 && len(s.sets) == 0 {
		return
	}
	var sb strings.Builder
	sb.WriteString("RESET ALL")
	for _, list := range [][]setting{s.base, s.sets} {
		for _, st := range list {
			sb.WriteString(";")
			sb.WriteString(st.text)
		}
	}
	s.stateSQL = sb.String()
}

// settableStartup lists the startup parameters (lower case) that the
// proxy applies with SET on whichever pooled connection serves the
// session, instead of making them part of the pool key: the ones that
// differ most between otherwise identical clients (an application_name
// per instance; drivers' extra_float_digits). Each comes with a check of
// its value: a value the server would refuse stays a startup parameter,
// so that the login fails as it would without the proxy. Others
// (TimeZone, DateStyle, options…) still select a pool of their own.
var settableStartup = map[string]func(string) bool{
	"application_name": func(string) bool { return true },
	"extra_float_digits": func(v string) bool {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return err == nil && n >= -15 && n <= 3
	},
}

// quoteLiteral quotes v as an SQL string literal.
func quoteLiteral(v string) string {
	if strings.Contains(v, `\`) {
		return "E'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(v) + "'"
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// keepSettings returns those of sets named in names, in order (in place).
func keepSettings(sets []setting, names ...string) []setting {
	out := sets[:0]
	for _, st := range sets {
		for _, n := range names {
			if st.name == n {
				out = append(out, st)
				break
			}
		}
	}
	return out
}

// isDiscardAll reports whether a statement is DISCARD ALL.
func isDiscardAll(text string) bool {
	f := strings.Fields(text)
	return len(f) >= 2 && strings.EqualFold(f[0], "DISCARD") && strings.EqualFold(strings.TrimSuffix(f[1], ";"), "ALL")
}

func removeSetting(sets []setting, name string) []setting {
	out := sets[:0]
	for _, st := range sets {
		if st.name != name {
			out = append(out, st)
		}
	}
	return out
}
