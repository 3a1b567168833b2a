package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/backends/pool"
	"github.com/sluicedb/sluice/internal/bufpool"
	"github.com/sluicedb/sluice/internal/pgwire"
	"github.com/sluicedb/sluice/router"
)

// maxBatch is how many bytes of extended-protocol messages are held back
// while waiting for the Sync that lets the whole batch be routed at once.
// A larger batch is sent to the writer before its Sync arrives.
const maxBatch = 1 << 20

// stmt is a prepared statement as the client sees it: the client's own
// Parse message, kept so the statement can be prepared again on another
// backend.
type stmt struct {
	raw   []byte // the Parse message, header included
	query string
	cls   router.Class
	ops   []router.SessionOp // for a SET prepared through the extended protocol
}

// expect is one response the session is waiting for on a backend
// connection, in the order the requests were sent.
type expect struct {
	kind    byte // '1' ParseComplete, '3' CloseComplete, 'Z' ReadyForQuery
	swallow bool // injected by the proxy: the client never sees the response; for 'Z' nothing up to and including the ReadyForQuery
	capture bool // a swallowed query whose single DataRow holds the writer's WAL LSN
	replay  bool // a swallowed session-state replay
	sync    bool // the ReadyForQuery answers a client Sync (not a Query)
	// stmtClose: a Close of statement name ('3'); if skipped after an
	// error, the statement is still on the backend.
	stmtClose bool
	// setOps are the session-state changes of the batch this ReadyForQuery
	// ends, recorded if the batch succeeds.
	setOps []router.SessionOp
	// For a Parse ('1'): the statement name and the client's previous
	// statement of that name, restored if the Parse fails or is skipped.
	name   string
	prev   *stmt
	client bool
}

// unknownStmt marks a statement name whose state on a backend connection is
// uncertain (a Parse or Close there failed or was skipped): the next use
// closes and re-prepares it.
var unknownStmt = &stmt{}

// fixup is a correction to the statement bookkeeping learned by a relay
// goroutine, applied by the session goroutine (which owns that bookkeeping).
type fixup struct {
	bc     *bconn
	name   string
	prev   *stmt
	client bool
}

// bconn is one pooled backend connection, serving one session at a time.
type bconn struct {
	up     *userPool
	addr   string
	pc     *backends.PGConn
	rd     *pgwire.Reader
	params map[string]string

	closeOnce sync.Once
	writeErr  atomic.Pointer[string] // why the proxy closed it after a failed write

	// Guarded by ownMu; changed only with the owner's mu held too (see
	// lockOwner).
	ownMu        sync.Mutex
	owner        *session           // the session it serves; nil while idle or being reset
	pconn        *pool.Conn[*bconn] // its pool handle, set at checkout
	resetting    bool               // the reset query is running: back to the pool at its ReadyForQuery
	resetFailed  bool               // the reset query failed: close instead
	resetSending bool               // reset is still writing the reset query: it gives bc back when done
	broken       bool               // it failed or spoke while idle: the pool must not hand it out

	// Owned by the session that holds it (its goroutine while the
	// connection is claimed; else under its mu). The statement records
	// may belong to earlier sessions: they are compared by content.
	prepared map[string]*stmt // statements prepared on this connection, by name
	used     map[*stmt]uint64 // when each was last used (tick), for LRU eviction
	tick     uint64
	stateSQL string // the session state applied on it (see session.stateSQL); "" as opened
	// pristine: no client has run anything on it since it was opened or
	// reset with DISCARD ALL (stateSQL "" alone does not say that: RESET
	// ALL leaves a role set), so a replay need not reset anything first.
	pristine bool
	target   router.Target
	epoch    uint64 // topology epoch under which it was last confirmed as the writer
	idx      int    // the backend's index in the cluster while attached

	// Guarded by the owner's mu.
	claimed    bool // the session is sending (or about to send) a batch on it: keep it
	cancelling int  // cancel requests being forwarded to it: keep it
	copyIn     bool // in COPY FROM STDIN: the client's CopyData goes here
	q          []expect
	qh         int
	inflight   int  // ReadyForQuery messages still to come (including swallowed ones)
	pending    int  // of which the client waits for
	batchErr   bool // an ErrorResponse arrived since the last ReadyForQuery
	txTag      byte // 'c' after CommandComplete COMMIT, 'r' after ROLLBACK, since the last ReadyForQuery
	dead       bool
	fatal      string // a FATAL error the backend sent before closing
	captured   bool   // the running capture query returned its row
	// commitInFlight: a batch with COMMIT was sent and its ReadyForQuery
	// has not arrived: if the connection dies now, the outcome is unknown.
	commitInFlight bool
	failed         bool // the running injected query failed
	// replayParams: the ParameterStatus values of the replay running on it
	// (name, value), reported to the client at its end (reportParams).
	replayParams [][2]string
}

// writeFailed closes bc after a failed write, recording why for the relay
// goroutine, which reports the loss.
func (bc *bconn) writeFailed(err error) {
	msg := err.Error()
	bc.writeErr.Store(&msg)
	bc.pc.Close()
}

// ownedBy reports whether bc serves s.
func (bc *bconn) ownedBy(s *session) bool {
	bc.ownMu.Lock()
	defer bc.ownMu.Unlock()
	return bc.owner == s
}

func (b *bconn) push(e expect) {
	b.q = append(b.q, e)
	if e.kind == 'Z' {
		b.inflight++
		if !e.swallow {
			b.pending++
		}
	}
}

func (b *bconn) front() *expect {
	if b.qh < len(b.q) {
		return &b.q[b.qh]
	}
	return nil
}

func (b *bconn) pop() expect {
	e := b.q[b.qh]
	b.q[b.qh] = expect{}
	b.qh++
	if b.qh == len(b.q) {
		b.q, b.qh = b.q[:0], 0
	}
	return e
}

// setting is one tracked session variable: its lower-case name and the
// statement that sets it; for a startup parameter applied with SET (see
// session.base), value is the client's value.
type setting struct{ name, text, value string }

// session is one client connection after a successful login.
type session struct {
	srv      *Server
	conn     net.Conn
	cr       *pgwire.ConnReader // holds no buffer while the client is idle
	user     string
	database string
	password string
	params   map[string]string // startup parameters forwarded to backends
	profile  string            // params encoded: the pool key's profile
	// base holds the startup parameters applied with SET instead (see
	// settableStartup), so that they do not split pools: the session's
	// settings before any SET of its own, and what RESET returns to.
	base     []setting
	up       *userPool
	pid, key uint32
	// ctx is cancelled when the session is closed or told to terminate:
	// it ends a wait for a pooled connection (and a dial) that nobody
	// would use any more.
	ctx  context.Context
	stop context.CancelFunc

	cwMu       sync.Mutex
	cw         *bufpool.Writer // borrows its buffer only while output is unflushed
	clientDead bool

	// Owned by the session goroutine.
	stmts     map[string]*stmt
	batch     []byte // held-back extended-protocol messages (auto endpoint)
	items     []span // message boundaries within batch
	locked    *bconn // route fixed until the next Sync (after Flush, or on writer/reader endpoints)
	dirty     *bconn // has unflushed output
	batchOps  []router.SessionOp
	batchExec bool                // the batch executes something (Query, Execute, FunctionCall)
	parsed    map[string]struct{} // names Parsed in the batch being classified (classifyBatch)
	lockedCls router.Class        // the class of the batch running on the fixed route
	readerIdx int
	scratch   []byte

	mu           sync.Mutex
	cond         *sync.Cond
	conns        map[int]*bconn
	cur          *bconn // served the last batch; holds the transaction when txStatus != 'I'
	txStatus     byte
	pinned       router.PinReason
	sets         []setting
	stateSQL     string            // replays base and sets on a fresh connection; "" when there are none
	reported     map[string]string // ParameterStatus values the client has been told
	extraOut     []byte            // messages for the client the relay writes after the current one (reportParams)
	txSetOps     []router.SessionOp
	lastWriteLSN uint64
	lsnStale     bool      // the session wrote since its last LSN capture: capture before the next replica read
	lastWriteAt  time.Time // when the session's last write batch was sent
	skipToSync   bool      // an error ended an extended batch: drop messages until Sync
	txLost       string    // the client's open transaction was lost with its backend: why
	txLostSent   bool      // the client has been told (later statements get 25P02)
	fixups       []fixup
	pinnedTo     *bconn // the connection holding the state that pinned the session
	closing      bool
	drain        bool

	closeOnce sync.Once
	release   func() // gives back the client's place in the cluster (max_client_conns)
}

// span is one held-back message: its type and where it sits in batch.
type span struct {
	typ        byte
	start, end int
	cls        router.Class // of a Query or Parse, filled by classifyBatch
	classified bool
}

func newSession(srv *Server, up *userPool, conn net.Conn, rd *pgwire.ConnReader, user, database, password string, startup map[string]string) *session {
	s := &session{
		srv:       srv,
		conn:      conn,
		cr:        rd,
		cw:        bufpool.NewWriter(conn, srv.bufs),
		user:      user,
		database:  database,
		password:  password,
		params:    make(map[string]string, len(startup)),
		stmts:     make(map[string]*stmt),
		reported:  make(map[string]string),
		conns:     make(map[int]*bconn),
		txStatus:  'I',
		readerIdx: -1,
		up:        up,
	}
	s.cond = sync.NewCond(&s.mu)
	s.ctx, s.stop = context.WithCancel(context.Background())
	for k, v := range startup {
		switch name := strings.ToLower(k); {
		case k == "user", k == "database", k == "replication":
		case settableStartup[name] != nil && settableStartup[name](v):
			s.base = append(s.base, setting{name: name, text: "SET " + name + " = " + quoteLiteral(v), value: v})
		default:
			s.params[k] = v
		}
	}
	sort.Slice(s.base, func(i, j int) bool { return s.base[i].name < s.base[j].name })
	s.profile = profileOf(s.params)
	s.rebuildStateSQL()
	s.pid, s.key = srv.opts.Cancels.register(s)
	return s
}

// connectHome opens the connection whose ParameterStatus values the client
// receives at login: the writer, or a reader on a reader endpoint.
func (s *session) connectHome(ctx context.Context) (*bconn, error) {
	switch o := &s.srv.opts; {
	case o.Route == router.RouteReader:
		return s.readerConn(ctx)
	case o.Route == router.RouteAuto:
		if _, _, writer := o.Cluster.Writer(); !writer && len(o.Cluster.Snapshot().Readers(nil, 0)) > 0 {
			// No writer right now (a failover, or writes held): let the
			// client in on a replica; its writes wait when they come.
			if bc, err := s.readerConn(ctx); err == nil {
				return bc, nil
			}
		}
	}
	return s.writerConn(ctx)
}

// Run is the session goroutine: it reads client messages until the client
// leaves or the session is closed.
func (s *session) Run() {
	defer func() {
		s.Close()
		s.cr.Release() // here, on the goroutine that reads with it
	}()
	for {
		if s.dirty != nil && s.cr.Buffered() == 0 {
			s.flushBackend(s.dirty)
			if s.dirty != s.locked {
				s.settle(s.dirty) // COPY data: the claim ends with the flush
			}
			s.dirty = nil
		}
		m, err := s.cr.Next()
		if err != nil {
			switch {
			case errors.Is(err, pgwire.ErrMessageTooLarge):
				s.srv.opts.Metrics.ProtocolErrors.WithLabelValues(s.srv.opts.Name, "too_large").Inc()
				s.fatal("08P01", fmt.Sprintf("message too large (limit %d bytes)", s.srv.opts.MaxMessageSize))
			case errors.Is(err, pgwire.ErrBadLength):
				s.srv.opts.Metrics.ProtocolErrors.WithLabelValues(s.srv.opts.Name, "malformed").Inc()
				s.fatal("08P01", "invalid message length")
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			default:
				s.srv.log.Debug("client read failed", "err", err)
			}
			return
		}
		if !s.dispatch(m) {
			return
		}
	}
}

// dispatch handles one client message; false ends the session.
func (s *session) dispatch(m pgwire.Message) bool {
	switch m.Type {
	case pgwire.MsgTerminate:
		return false
	case pgwire.MsgCopyData, pgwire.MsgCopyDone, pgwire.MsgCopyFail:
		s.copyMessage(m)
		return true
	case pgwire.MsgQuery, pgwire.MsgParse, pgwire.MsgBind, pgwire.MsgDescribe, pgwire.MsgExecute,
		pgwire.MsgClose, pgwire.MsgSync, pgwire.MsgFlush, pgwire.MsgFuncCall:
		if err := validate(m); err != nil {
			s.srv.opts.Metrics.ProtocolErrors.WithLabelValues(s.srv.opts.Name, "malformed").Inc()
			s.fatal("08P01", err.Error())
			return false
		}
		return s.statement(m)
	default:
		s.srv.opts.Metrics.ProtocolErrors.WithLabelValues(s.srv.opts.Name, "malformed").Inc()
		s.fatal("08P01", fmt.Sprintf("invalid frontend message type %d", m.Type))
		return false
	}
}

// validate checks the layout of the messages the proxy looks into, so that
// later code may parse them without error paths.
func validate(m pgwire.Message) error {
	var err error
	switch m.Type {
	case pgwire.MsgQuery:
		_, err = pgwire.ParseQuery(m.Body())
	case pgwire.MsgParse:
		_, _, err = pgwire.ParseParse(m.Body())
	case pgwire.MsgBind:
		_, _, err = pgwire.ParseBind(m.Body())
	case pgwire.MsgDescribe, pgwire.MsgClose:
		_, _, err = pgwire.ParseTarget(m.Body())
	case pgwire.MsgExecute:
		_, err = pgwire.ParseExecute(m.Body())
	}
	return err
}

func isTerminator(t byte) bool {
	return t == pgwire.MsgSync || t == pgwire.MsgQuery || t == pgwire.MsgFuncCall
}

// statement handles a message of the query protocols.
func (s *session) statement(m pgwire.Message) bool {
	s.mu.Lock()
	s.applyFixupsLocked()
	skip := s.skipToSync
	if skip && m.Type == pgwire.MsgSync {
		s.skipToSync = false
	}
	status := s.clientStatusLocked()
	lost := s.txLost != ""
	lockedLive := s.locked != nil && !s.locked.dead
	s.mu.Unlock()
	if skip {
		// The fixed route (after a Flush) ended with the error.
		if s.locked != nil {
			s.settle(s.locked)
		}
		s.locked, s.lockedCls = nil, router.Class{}
		if m.Type == pgwire.MsgSync {
			s.writeClient(pgwire.AppendReadyForQuery(nil, status), true)
		}
		return true
	}
	if lockedLive {
		return s.sendLocked(m)
	}
	s.locked, s.lockedCls = nil, router.Class{}
	if lost {
		// The transaction died with its backend: answer here until the
		// client ends it.
		start := len(s.batch)
		s.batch = append(s.batch, m.Raw...)
		s.items = append(s.items, span{typ: m.Type, start: start, end: len(s.batch)})
		switch {
		case isTerminator(m.Type):
			s.answerLost()
		case m.Type == pgwire.MsgFlush:
			s.refuseLost()
		}
		return true
	}
	if s.srv.opts.Route != router.RouteAuto {
		// Writer and reader endpoints need no look-ahead: the target is
		// known from the first message.
		bc, err := s.pick(router.Class{}, 0)
		if err == nil {
			err = s.replay(bc)
		}
		if err != nil {
			s.routeFailed(err, m.Type)
			return true
		}
		s.locked = bc
		return s.sendLocked(m)
	}
	start := len(s.batch)
	s.batch = append(s.batch, m.Raw...)
	s.items = append(s.items, span{typ: m.Type, start: start, end: len(s.batch)})
	switch {
	case isTerminator(m.Type):
		s.sendBatch(true)
	case m.Type == pgwire.MsgFlush || len(s.batch) > maxBatch:
		s.sendBatch(false)
	}
	return true
}

// applyFixupsLocked applies the corrections queued by relay goroutines.
// Called by the session goroutine with s.mu held.
func (s *session) applyFixupsLocked() {
	for _, f := range s.fixups {
		if f.bc != nil { // nil: applied when the connection was detached
			f.bc.prepared[f.name] = unknownStmt
		}
		if f.client {
			if f.prev == nil {
				delete(s.stmts, f.name)
			} else {
				s.stmts[f.name] = f.prev
			}
		}
	}
	clear(s.fixups)
	s.fixups = s.fixups[:0]
}

// classifyBatch folds the classes of every statement in the held-back batch.
func (s *session) classifyBatch() router.Class {
	var c router.Class
	add := func(x router.Class) {
		c.Write = c.Write || x.Write
		c.SessionSet = c.SessionSet || x.SessionSet
		c.Statements += x.Statements
		if c.Hint == router.HintNone {
			c.Hint = x.Hint
		}
		if c.Tx == router.TxNone {
			c.Tx = x.Tx
		}
		if c.Pin == "" {
			c.Pin = x.Pin
		}
	}
	defer clear(s.parsed)
	for i := range s.items {
		it := &s.items[i]
		body := s.batch[it.start+pgwire.HeaderLen : it.end]
		switch it.typ {
		case pgwire.MsgQuery:
			q, _ := pgwire.ParseQuery(body)
			it.cls, it.classified = s.srv.opts.Classifier.Classify(unsafeString(q)), true
			add(it.cls)
		case pgwire.MsgParse:
			name, q, _ := pgwire.ParseParse(body)
			it.cls, it.classified = s.srv.opts.Classifier.Classify(unsafeString(q)), true
			add(it.cls)
			if s.parsed == nil {
				s.parsed = make(map[string]struct{})
			}
			s.parsed[unsafeString(name)] = struct{}{} // a view into batch: cleared before it changes
		case pgwire.MsgBind:
			_, name, _ := pgwire.ParseBind(body)
			if _, ok := s.parsed[unsafeString(name)]; ok {
				break // counted with its Parse in this batch
			}
			if st := s.stmts[unsafeString(name)]; st != nil {
				add(st.cls)
			}
		case pgwire.MsgFuncCall:
			add(router.Class{Write: true, Statements: 1})
		}
	}
	return c
}

// sendBatch routes the held-back batch and sends it. Without a terminator
// (Flush, or a batch too large to hold) the route stays fixed until the
// next Sync.
func (s *session) sendBatch(terminated bool) {
	cls := s.classifyBatch()
	if !terminated && len(s.batch) > maxBatch {
		cls.Write = true // the rest of the batch is unknown: the writer is always safe
	}
	var bc *bconn
	var err error
	if cls.Statements == 0 && !s.hasStatementMessage() {
		// Nothing to route (a lone Sync, Execute of an open portal, …):
		// it belongs to the backend that holds the session's state.
		bc, err = s.current()
	} else {
		bc, err = s.pick(cls, len(s.items))
	}
	if err == nil {
		err = s.replay(bc)
	}
	if errors.Is(err, errTxLost) && terminated {
		s.answerLost()
		return
	}
	if err != nil {
		last := s.items[len(s.items)-1].typ
		s.resetBatch()
		s.routeFailed(err, last)
		return
	}
	for i := range s.items {
		it := &s.items[i]
		var c *router.Class
		if it.classified {
			c = &it.cls
		}
		if !s.send(bc, it.typ, s.batch[it.start:it.end], c) {
			last := s.items[len(s.items)-1].typ
			s.resetBatch()
			s.routeFailed(errBackendLost, last)
			return
		}
	}
	s.resetBatch()
	if terminated {
		s.endBatch(bc, cls)
	} else {
		s.locked = bc
		s.lockedCls = cls
		s.flushBackend(bc)
	}
}

// hasStatementMessage reports whether the held-back batch names a
// statement (Query, Parse, Bind, FunctionCall, Describe or Close of a
// statement), as opposed to continuing work on the current backend.
func (s *session) hasStatementMessage() bool {
	for _, it := range s.items {
		switch it.typ {
		case pgwire.MsgQuery, pgwire.MsgParse, pgwire.MsgBind, pgwire.MsgFuncCall:
			return true
		case pgwire.MsgDescribe, pgwire.MsgClose:
			if kind, _, _ := pgwire.ParseTarget(s.batch[it.start+pgwire.HeaderLen : it.end]); kind == 'S' {
				return true
			}
		}
	}
	return false
}

// current returns the backend connection that served the session last, or
// the writer when there is none.
func (s *session) current() (*bconn, error) {
	s.mu.Lock()
	bc := s.cur
	if bc != nil && bc.dead {
		bc = nil
	}
	if bc != nil {
		bc.claimed = true
	}
	s.mu.Unlock()
	if bc != nil {
		return bc, nil
	}
	return s.pick(router.Class{Write: true}, 0)
}

func (s *session) resetBatch() {
	s.batch = s.batch[:0]
	s.items = s.items[:0]
	if cap(s.batch) > 64<<10 {
		s.batch = nil
	}
}

// sendLocked sends one message on the fixed route.
func (s *session) sendLocked(m pgwire.Message) bool {
	bc := s.locked
	var cls *router.Class
	switch m.Type {
	case pgwire.MsgQuery, pgwire.MsgParse:
		var q []byte
		if m.Type == pgwire.MsgQuery {
			q, _ = pgwire.ParseQuery(m.Body())
		} else {
			_, q, _ = pgwire.ParseParse(m.Body())
		}
		c := s.srv.opts.Classifier.Classify(unsafeString(q))
		cls = &c
		s.lockedCls.Write = s.lockedCls.Write || c.Write
		if s.lockedCls.Tx == router.TxNone {
			s.lockedCls.Tx = c.Tx
		}
	case pgwire.MsgBind:
		_, name, _ := pgwire.ParseBind(m.Body())
		if st := s.stmts[unsafeString(name)]; st != nil {
			s.lockedCls.Write = s.lockedCls.Write || st.cls.Write
		}
	case pgwire.MsgFuncCall:
		s.lockedCls.Write = true
	}
	ok := s.send(bc, m.Type, m.Raw, cls)
	switch {
	case !ok:
		s.locked = nil
		s.lockedCls = router.Class{}
		s.routeFailed(errBackendLost, m.Type)
	case isTerminator(m.Type):
		s.locked = nil
		cls := s.lockedCls
		s.lockedCls = router.Class{}
		s.endBatch(bc, cls)
	case m.Type == pgwire.MsgFlush:
		s.flushBackend(bc)
	default:
		s.dirty = bc
	}
	return true
}

// endBatch flushes a terminated batch and, on the auto endpoint with
// read-your-writes, notes that the session wrote: its WAL position is
// captured on the writer before its next replica read (lazily, so that
// nothing is ever injected into the client's transaction or COPY).
func (s *session) endBatch(bc *bconn, cls router.Class) {
	exec := s.batchExec
	s.batchExec = false
	o := &s.srv.opts
	commit := cls.Tx == router.TxCommit
	wrote := o.ReadYourWrites && o.Route == router.RouteAuto && bc.target == router.TargetWriter && exec &&
		(cls.Write || commit)
	if commit || wrote {
		var now time.Time
		if wrote {
			now = time.Now()
		}
		s.mu.Lock()
		if commit {
			bc.commitInFlight = true
		}
		if wrote {
			s.lsnStale, s.lastWriteAt = true, now
		}
		s.mu.Unlock()
	}
	s.flushBackend(bc)
	if s.dirty == bc {
		s.dirty = nil
	}
	s.settle(bc)
}

// copyMessage forwards CopyData/CopyDone/CopyFail to the backend that is in
// COPY FROM STDIN; outside COPY they are ignored, as PostgreSQL does.
func (s *session) copyMessage(m pgwire.Message) {
	s.mu.Lock()
	bc := s.cur
	if bc != nil && (bc.dead || (bc.inflight == 0 && !bc.copyIn)) {
		bc = nil
	}
	if bc != nil {
		bc.claimed = true // until flushed
		if m.Type != pgwire.MsgCopyData {
			bc.copyIn = false
		}
	}
	s.mu.Unlock()
	if bc == nil {
		return
	}
	if _, err := bc.pc.W.Write(m.Raw); err != nil {
		bc.writeFailed(err)
		if s.dirty == bc {
			s.dirty = nil
		}
		s.settle(bc)
		return
	}
	if m.Type == pgwire.MsgCopyData {
		s.dirty = bc
	} else {
		s.flushBackend(bc)
		if s.dirty == bc {
			s.dirty = nil
		}
		s.settle(bc)
	}
}

// routeFailed answers a batch that could not be routed (no backend).
func (s *session) routeFailed(err error, last byte) {
	var out []byte
	if errors.Is(err, errTxLost) {
		out = s.appendLostError(nil) // 08006 the first time, then 25P02
	} else {
		code := "08006"
		if pe, ok := asPgError(err); ok {
			code = pe.Code
		}
		out = pgwire.AppendErrorResponse(nil, "ERROR", code, err.Error())
	}
	s.mu.Lock()
	status := s.clientStatusLocked()
	if !isTerminator(last) {
		s.skipToSync = true
	}
	s.mu.Unlock()
	if isTerminator(last) {
		out = pgwire.AppendReadyForQuery(out, status)
	}
	s.writeClient(out, true)
}

// writeClient writes raw messages to the client, flushing if asked.
func (s *session) writeClient(b []byte, flush bool) {
	s.cwMu.Lock()
	defer s.cwMu.Unlock()
	if s.clientDead {
		return
	}
	_, err := s.cw.Write(b)
	if err == nil && flush {
		err = s.cw.Flush()
	}
	if err != nil {
		s.clientDead = true
		s.conn.Close()
	}
}

// fatal sends a FATAL error to the client; the caller ends the session.
func (s *session) fatal(code, msg string) {
	s.writeClient(pgwire.AppendErrorResponse(nil, "FATAL", code, msg), true)
}

func (s *session) flushBackend(bc *bconn) {
	if err := bc.pc.W.Flush(); err != nil {
		bc.writeFailed(err) // the relay goroutine reports the loss
	}
}

// cancelRunning forwards a cancel to the backend running the session's
// current statement, if any.
func (s *session) cancelRunning(ctx context.Context) {
	s.mu.Lock()
	bc := s.cur
	if bc != nil && (bc.dead || bc.inflight == 0) {
		bc = nil
	}
	if bc != nil {
		bc.cancelling++ // bc stays with the session until the cancel is delivered
	}
	s.mu.Unlock()
	if bc == nil {
		return
	}
	if err := backends.CancelPostgres(ctx, bc.addr, bc.pc.PID, bc.pc.Secret); err != nil {
		s.srv.log.Warn("forwarding cancel failed", "backend", bc.addr, "err", err)
	}
	s.mu.Lock()
	bc.cancelling--
	s.mu.Unlock()
	s.settleIdle(bc)
}

// ShutdownWhenIdle asks the session to end at its next idle moment
// (outside a transaction, nothing in flight).
func (s *session) ShutdownWhenIdle() {
	s.mu.Lock()
	s.drain = true
	idle := s.idleLocked()
	s.mu.Unlock()
	if idle {
		s.terminate()
	}
}

func (s *session) idleLocked() bool {
	return s.txStatus == 'I' && (s.cur == nil || (s.cur.inflight == 0 && !s.cur.copyIn))
}

func (s *session) terminate() {
	s.stop()
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.fatal("57P01", "terminating connection due to administrator command")
	s.conn.Close()
}

// Close ends the session: the client connection, and the backend
// connections it holds: connections that are idle and clean go back to
// their pool (reset with DISCARD ALL under session pooling), the others
// (in a transaction, busy, pinned by session state) are closed.
func (s *session) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		s.mu.Lock()
		s.closing = true
		var keep, drop []*bconn
		for _, bc := range s.conns {
			if !bc.ownedBy(s) {
				continue
			}
			clean := !bc.claimed && !bc.copyIn && !bc.dead && bc.inflight == 0 && bc.qh == len(bc.q) &&
				s.pinnedTo != bc && !(s.cur == bc && s.txStatus != 'I')
			s.detachLocked(bc)
			if clean {
				if !s.txMode() {
					// From now on the relay treats what comes as the
					// reset's answer (or the end of the connection).
					bc.ownMu.Lock()
					bc.resetting, bc.resetSending = true, true
					bc.ownMu.Unlock()
				}
				keep = append(keep, bc)
			} else {
				bc.dead = true
				drop = append(drop, bc)
			}
		}
		s.mu.Unlock()
		s.cond.Broadcast()
		for _, bc := range drop {
			bc.Close()
			bc.up.p.Discard(bc.pconn)
		}
		for _, bc := range keep {
			if s.txMode() {
				// Its state is tracked: the next session replays its own.
				bc.up.p.Put(bc.pconn)
			} else {
				bc.reset()
			}
		}
		// A client that stopped reading must not block the close: bound
		// the last flush, then close.
		s.conn.SetWriteDeadline(time.Now().Add(time.Second))
		s.cwMu.Lock()
		s.cw.Flush()
		s.clientDead = true
		s.cwMu.Unlock()
		s.conn.Close()
		if s.release != nil {
			s.release()
		}
		s.srv.opts.Cancels.unregister(s.pid)
	})
}

// txMode reports transaction pooling: backend connections are held only
// for a transaction.
func (s *session) txMode() bool { return s.up.cfg.Transaction }
