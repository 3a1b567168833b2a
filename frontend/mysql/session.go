package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/backends/pool"
	"github.com/sluicedb/sluice/frontend/serve"
	"github.com/sluicedb/sluice/internal/ascii"
	"github.com/sluicedb/sluice/internal/mysqlwire"
	"github.com/sluicedb/sluice/router"
	"github.com/sluicedb/sluice/topology"
)

// stmt is a prepared statement as the client sees it. It is prepared on a
// backend connection when first executed there.
type stmt struct {
	query     string
	cls       router.Class
	numParams int
	state     mysqlwire.StmtState
	typesVer  int               // incremented whenever the client binds new types
	longData  [][]byte          // COM_STMT_SEND_LONG_DATA payloads since the last execution
	ids       map[*bconn]uint32 // the backend's statement id on each connection
	typed     map[*bconn]int    // typesVer last sent on each connection
	last      *bconn            // where it last executed (COM_STMT_FETCH, COM_STMT_RESET)
	cursorID  uint32            // the backend statement its open cursor (if any) runs on, on last
	exec      mysqlwire.StmtExecute
	scratch   []byte
}

// bconn is one backend connection of a session: a pooled connection
// (srvConn) while the session holds it. Owned by the session goroutine,
// except dead/mc.Conn.Close, which others may use under s.mu. Once given
// back to its pool (returned) it is dead for the session and never used
// again: a later checkout makes a new bconn.
type bconn struct {
	idx    int
	addr   string
	mc     *backends.MySQLConn
	sc     *srvConn
	pc     *pool.Conn[*srvConn]
	up     *userPool
	target router.Target
	// status is the server status of the connection's last response
	// (SERVER_STATUS_IN_TRANS, SERVER_STATUS_AUTOCOMMIT).
	status uint16
	// midCommand: a client command was sent and its response not fully
	// read; the connection cannot serve anyone else.
	midCommand bool
	dead       bool
	released   bool   // counted out of the cluster's sessions (guarded by session.mu)
	returned   bool   // given back to the pool or discarded
	epoch      uint64 // topology epoch under which it was last confirmed as the writer
	// private lists the client statements prepared on it for themselves
	// alone (their st.ids entry; transaction pooling only): the statement
	// the connection shares for their SQL is serving another statement's
	// open cursor. They are closed when the connection goes back.
	private []*stmt
}

// inTx reports whether the connection's server holds a transaction open
// (or autocommit is off there).
func (bc *bconn) inTx() bool {
	return bc.status&mysqlwire.ServerStatusInTrans != 0 || bc.status&mysqlwire.ServerStatusAutocommit == 0
}

type setting struct{ name, text string }

// clientWriter buffers the session's output to its client: a
// *bufpool.Writer (which holds a buffer only while output is unflushed),
// or a *bufio.Writer in tests.
type clientWriter interface {
	Write(p []byte) (int, error)
	Flush() error
}

// session is one client connection after a successful login.
type session struct {
	srv   *Server
	id    uint32
	conn  net.Conn
	cr    *mysqlwire.PacketReader // mysqlwire.NewConnPacketReader: no buffer while idle
	cw    clientWriter
	cwErr error
	// seqShift is subtracted from the sequence id of every relayed packet:
	// non-zero only within a result during which the proxy answered a
	// backend's LOCAL INFILE request itself.
	seqShift byte
	caps     uint64
	charset  byte
	user     string
	database string
	password string
	onTLS    bool
	// scrambles are the nonces a COM_CHANGE_USER answer may be computed
	// with: the handshake's, and the last auth switch's if any.
	scrambles [][]byte

	// Owned by the session goroutine.
	stmts    map[uint32]*stmt
	nextStmt uint32
	status   uint16
	cur      *bconn
	pinned   router.PinReason
	pinnedTo *bconn
	// lastInsertID is the insert id of the last OK packet that had one:
	// what LAST_INSERT_ID() returns (answered by the proxy under
	// transaction pooling).
	lastInsertID uint64
	// pinView is what /status shows of the pin (read by other goroutines).
	pinView  atomic.Pointer[serve.PinnedSession]
	sets     []setting
	setsKey  string // sets encoded (setsKeyOf), compared with srvConn.setsKey
	multiOff bool
	// cursor holds the statements whose cursor is open (transaction
	// pooling keeps their connections until each is exhausted, reset,
	// executed again or closed).
	cursor map[*stmt]bool
	// txNext: an unscoped SET TRANSACTION (characteristics of the next
	// transaction only) succeeded on s.cur and the next statement has not
	// run yet: the connection stays with the session as in a transaction.
	txNext bool
	// homeDB is the database the client logged in with ("" none), the
	// Database of its pool keys: connections are shared only between
	// clients that logged in to the same database. Set at the first
	// checkout after a login (homeDBSet).
	homeDB    string
	homeDBSet bool
	// up is the pool of the session's user, known after its first
	// checkout.
	up           *userPool
	lastWritePos uint64
	needCapture  bool   // a write's GTID is still to be learned (read-your-writes)
	captureOn    *bconn // the connection that wrote
	readerIdx    int

	mu       sync.Mutex
	conns    map[int]*bconn
	busy     *bconn // executing the client's command right now (KILL QUERY)
	waiting  bool   // waiting for the client's next command outside a transaction
	closing  bool
	drain    bool
	cleaned  bool
	closeOne sync.Once
	// checkingOut: the session goroutine waits for a pooled connection;
	// Close then leaves the client connection to it, to answer with an
	// error first (see connTo).
	checkingOut bool
	// ctx is cancelled by Close: it ends a wait for a pooled connection
	// (and a dial) that nobody would use any more.
	ctx     context.Context
	stop    context.CancelFunc
	unadmit func() // gives back the client's place in the cluster (max_client_conns)
	// killing counts KILL QUERYs being forwarded to the connection serving
	// the session: under transaction pooling it is not given back to the
	// pool (and so to another client) meanwhile. killDone is signalled (on
	// mu) when it drops.
	killing  int
	killDone *sync.Cond
}

// pins reports whether a statement that pins for reason r (and
// succeeded) pins the session from now on. Under transaction pooling,
// values only the previous statement's connection knows
// (LAST_INSERT_ID(), FOUND_ROWS()…) do not: outside a transaction that
// connection is already back in the pool, and keeping the next one would
// not bring them back.
func (s *session) pins(r router.PinReason) bool {
	return r != "" && s.pinned == "" && !(r == router.PinLastInsertID && s.txMode())
}

// txMode reports whether the session's user is under transaction pooling.
func (s *session) txMode() bool {
	return s.up != nil && s.up.cfg.Transaction
}

var (
	errNoReader          = errors.New("no healthy replica is available")
	errClosing           = errors.New("session is closing")
	errBackendLost error = lostConn("lost connection to the backend")
	errTxLost      error = lostConn("lost connection to the backend; the open transaction was rolled back")
	errFenced      error = lostConn("the writer changed (failover); the open transaction on the old writer was rolled back")
	errCommitLost  error = lostConn("lost connection to the backend while COMMIT was in progress; the transaction may or may not have been committed")
)

// lostConn is an error about a lost backend connection; the client gets it
// as error 2013 (CR_SERVER_LOST).
type lostConn string

func (e lostConn) Error() string { return string(e) }

// inTx reports whether the server holds a transaction open for the session
// (or autocommit is off, which makes every statement part of one).
func (s *session) inTx() bool {
	return s.status&mysqlwire.ServerStatusInTrans != 0 || s.status&mysqlwire.ServerStatusAutocommit == 0
}

// writePacket frames payload to the client.
func (s *session) writePacket(seq byte, payload []byte) {
	if s.cwErr != nil {
		return
	}
	b := make([]byte, 0, len(payload)+mysqlwire.HeaderSize)
	b, _ = mysqlwire.AppendPacket(b, seq, payload)
	s.writeRaw(b)
}

func (s *session) writeRaw(raw []byte) {
	if s.cwErr != nil {
		return
	}
	if s.seqShift != 0 && len(raw) >= mysqlwire.HeaderSize {
		raw[3] -= s.seqShift
	}
	if _, err := s.cw.Write(raw); err != nil {
		s.cwErr = err
	}
}

func (s *session) flush() error {
	if s.cwErr != nil {
		return s.cwErr
	}
	if err := s.cw.Flush(); err != nil {
		s.cwErr = err
	}
	return s.cwErr
}

func (s *session) sendERR(seq byte, code uint16, msg string) {
	s.writePacket(seq, mysqlwire.AppendERR(nil, mysqlwire.NewERR(code, msg), s.caps))
}

func (s *session) sendOK(seq byte) {
	s.writePacket(seq, mysqlwire.AppendOK(nil, mysqlwire.OKPacket{Status: s.status}, s.caps))
}

// sendEOF sends the packet that ends a column or row stream in the
// client's format.
func (s *session) sendEOF(seq byte) {
	if s.caps&mysqlwire.ClientDeprecateEOF != 0 {
		s.writePacket(seq, mysqlwire.AppendOK(nil, mysqlwire.OKPacket{Header: mysqlwire.EOFHeader, Status: s.status}, s.caps))
	} else {
		s.writePacket(seq, mysqlwire.AppendEOF(nil, mysqlwire.EOFPacket{Status: s.status}))
	}
}

// sendError answers a command that could not be routed or sent.
func (s *session) sendError(err error) {
	if me, ok := backends.AsMySQLError(err); ok {
		s.writePacket(1, mysqlwire.AppendERR(nil, *me, s.caps))
		return
	}
	code := mysqlwire.ERUnknownError
	if lc := lostConn(""); errors.As(err, &lc) {
		code = mysqlwire.CRServerLost
	}
	s.sendERR(1, code, err.Error())
}

// Run is the session goroutine: it serves commands until the client leaves
// or the session is closed.
func (s *session) Run() {
	defer s.cr.Release()
	defer s.closeBackends()
	defer s.Close()
	for {
		if s.flush() != nil {
			return
		}
		s.mu.Lock()
		if s.drain && !s.inTx() || s.closing {
			s.mu.Unlock()
			return
		}
		s.waiting = !s.inTx()
		s.mu.Unlock()
		seq, payload, err := s.cr.ReadPacket()
		s.mu.Lock()
		s.waiting = false
		s.mu.Unlock()
		if err != nil {
			if errors.Is(err, mysqlwire.ErrPacketTooLarge) {
				s.srv.opts.Metrics.ProtocolErrors.WithLabelValues(s.srv.opts.Name, "too_large").Inc()
				s.sendERR(seq+1, mysqlwire.ERNetPacketTooLarge, "Got a packet bigger than 'max_allowed_packet' bytes")
				s.flush()
				s.discardPacket()
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.srv.log.Debug("client read failed", "err", err)
			}
			return
		}
		if seq != 0 || len(payload) == 0 {
			s.srv.opts.Metrics.ProtocolErrors.WithLabelValues(s.srv.opts.Name, "malformed").Inc()
			s.sendERR(seq+1, mysqlwire.ERHandshakeError, "Malformed packet")
			s.flush()
			return
		}
		if !s.dispatch(payload) {
			s.flush()
			return
		}
		s.releaseIdle()
	}
}

// discardPacket reads and drops the rest of an oversized packet (bounded
// in size and time), so that a client still sending it reads the ERR
// instead of a connection reset.
func (s *session) discardPacket() {
	s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	s.cr.DiscardPacket(1 << 30)
}

// dispatch serves one command; false ends the session.
func (s *session) dispatch(p []byte) bool {
	switch p[0] {
	case mysqlwire.ComQuit:
		return false
	case mysqlwire.ComPing:
		s.sendOK(1)
	case mysqlwire.ComQuery:
		return s.query(p)
	case mysqlwire.ComInitDB:
		return s.initDB(p)
	case mysqlwire.ComSetOption:
		if len(p) != 3 {
			s.sendERR(1, mysqlwire.ERUnknownComError, "Malformed COM_SET_OPTION")
			return false
		}
		opt := uint16(p[1]) | uint16(p[2])<<8
		if opt > mysqlwire.SetOptionMultiStatementsOff {
			s.sendERR(1, mysqlwire.ERUnknownComError, "Unknown option")
			return true
		}
		s.multiOff = opt == mysqlwire.SetOptionMultiStatementsOff
		if s.cur != nil && !s.cur.dead && !s.txMode() {
			if err := s.sync(s.cur); err != nil {
				s.sendError(err)
				return true
			}
		}
		s.sendEOF(1)
	case mysqlwire.ComResetConnection:
		s.resetConnection()
	case mysqlwire.ComChangeUser:
		return s.changeUser(p)
	case mysqlwire.ComFieldList, mysqlwire.ComStatistics:
		return s.simple(p)
	case mysqlwire.ComStmtPrepare:
		return s.prepare(p)
	case mysqlwire.ComStmtExecute:
		return s.execute(p)
	case mysqlwire.ComStmtSendLongData:
		id, param, _, err := mysqlwire.ParseStmtSendLongData(p)
		if err != nil {
			s.sendERR(1, mysqlwire.ERUnknownComError, "Malformed COM_STMT_SEND_LONG_DATA")
			return false
		}
		if st := s.stmts[id]; st != nil {
			st.state.MarkLongData(int(param))
			st.longData = append(st.longData, append([]byte(nil), p...))
		}
	case mysqlwire.ComStmtClose:
		id, ok := mysqlwire.StatementID(p)
		if !ok {
			return false
		}
		if st := s.stmts[id]; st != nil {
			// Under transaction pooling the statement stays prepared on
			// the connections that share it: its open cursor is closed
			// with COM_STMT_RESET.
			s.closeCursor(st)
			// Under transaction pooling st.ids holds only the
			// connections where it is prepared privately.
			for bc, bid := range st.ids {
				if !bc.dead {
					s.writeBackend(bc, mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtClose, bid), false)
				}
				delete(st.ids, bc)
			}
			delete(s.stmts, id)
		}
	case mysqlwire.ComStmtReset:
		return s.stmtReset(p)
	case mysqlwire.ComStmtFetch:
		return s.fetch(p)
	default:
		s.sendERR(1, mysqlwire.ERUnknownComError, fmt.Sprintf("Command 0x%02x is not supported by Sluice", p[0]))
	}
	return true
}

// query serves COM_QUERY.
func (s *session) query(p []byte) bool {
	o := &s.srv.opts
	q := string(p[1:])
	// The statements the proxy answers or steers itself are recognised by
	// their first word first: the usual query pays no allocation for them.
	if firstWordIs(q, "KILL") {
		if id, conn, ok := parseKill(q); ok {
			return s.kill(id, conn)
		}
	}
	if ascii.ContainsFold(q, "connection_id") && isFunctionQuery(q, "CONNECTION_ID()") {
		s.uintResult("CONNECTION_ID()", uint64(s.id))
		return true
	}
	if s.txMode() && ascii.ContainsFold(q, "last_insert_id") && isFunctionQuery(q, "LAST_INSERT_ID()") {
		// Under transaction pooling the connection that ran the INSERT may
		// serve another client by now: answer from the insert id of the
		// session's last OK packet, as the server would have.
		s.uintResult("LAST_INSERT_ID()", s.lastInsertID)
		return true
	}
	cls := o.Classifier.Classify(q)
	var bc *bconn
	if s.cur != nil && !s.cur.dead && firstWordIs(q, "SHOW") && isDiagnostics(q) {
		// SHOW WARNINGS / ERRORS describe the previous statement: ask the
		// connection that ran it.
		bc, cls = s.cur, router.Class{Statements: 1}
	} else {
		var err error
		if bc, err = s.pick(cls); err != nil {
			s.sendError(err)
			return true
		}
	}
	wasInTx := s.inTx()
	ok, alive := s.run1(bc, p, resultKind, cls.Tx == router.TxCommit)
	if !alive {
		return false
	}
	s.afterStatement(bc, q)
	if !ok && !bc.dead && (cls.SessionSet || cls.Pin != "" && cls.Pin != router.PinLastInsertID) {
		// Some of its statements may have succeeded (SET NAMES …; SELECT
		// bad): the connection holds session state the proxy did not
		// record and cannot serve another client.
		bc.sc.dirty = true
	}
	if ok {
		if cls.SessionSet {
			s.applyOps(bc, o.Classifier.SessionOps(q))
		}
		if s.pins(cls.Pin) {
			s.setPin(cls.Pin, bc)
			o.Metrics.Pins.WithLabelValues(o.Name, string(cls.Pin)).Inc()
		}
	}
	s.afterWrite(bc, cls.Write || cls.Tx == router.TxCommit || wasInTx)
	return true
}

// run1 sends the client's command p to bc (after replaying session state)
// and relays the response. ok reports a response without ERR; alive is
// false when the session must end (the backend was lost mid-response).
// commit says p is a COMMIT: if the backend is lost, its outcome is unknown.
func (s *session) run1(bc *bconn, p []byte, kind int, commit bool) (ok, alive bool) {
	if err := s.sync(bc); err != nil {
		s.sendError(err)
		return false, true
	}
	if bc.target == router.TargetWriter {
		s.srv.statWriter.Inc()
	} else {
		s.srv.statReader.Inc()
	}
	s.mu.Lock()
	if s.closing {
		// Closed since the connection was taken: nothing would interrupt
		// the command any more (Close closes only a busy connection).
		s.mu.Unlock()
		return false, false
	}
	s.busy = bc
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy = nil
		s.mu.Unlock()
	}()
	bc.midCommand = true
	if err := s.writeBackend(bc, p, true); err != nil {
		s.sendError(errBackendLost)
		return false, true
	}
	s.cur = bc
	var relayed bool
	var err error
	switch kind {
	case resultKind:
		ok, relayed, err = s.relayResult(bc)
	case singleKind:
		ok, relayed, err = s.relayOne(bc)
	case fieldListKind:
		ok, relayed, err = s.relayUntilEOF(bc)
	}
	if err != nil {
		inTx := s.inTx()
		pinned := s.pinnedTo == bc
		s.lost(bc)
		if relayed {
			return false, false
		}
		// A transaction open on the lost connection is gone, rolled back
		// as after a deadlock: the client is told and the session goes on
		// (in autocommit). State that pinned the session cannot be
		// restored: the session ends, as the server's own disconnect would.
		switch {
		case commit:
			s.sendError(errCommitLost)
		case inTx:
			s.sendError(errTxLost)
		default:
			s.sendError(errBackendLost)
		}
		return false, !pinned
	}
	bc.midCommand = false
	if !ok && s.txMode() {
		// An ERR carries no status flags: the command may have left a
		// transaction open (a procedure's START TRANSACTION before the
		// error) or rolled one back. Ask the server before the connection
		// may go back to the pool.
		s.learnStatus(bc)
	}
	bc.status = s.status
	return ok, true
}

// learnStatus learns bc's server status (in a transaction, autocommit)
// with COM_PING, whose OK carries it, after a response that did not (ERR).
// On failure bc is lost.
func (s *session) learnStatus(bc *bconn) error {
	if err := s.writeBackend(bc, []byte{mysqlwire.ComPing}, true); err != nil {
		return errBackendLost
	}
	_, payload, err := bc.mc.R.ReadPacket()
	if err != nil {
		s.lost(bc)
		return errBackendLost
	}
	st, isOK := mysqlwire.StatusFlags(payload, s.caps)
	if !isOK {
		s.lost(bc)
		return errBackendLost
	}
	s.status = st
	return nil
}

const (
	resultKind = iota
	singleKind
	fieldListKind
	rowsKind
)

// lost marks bc dead after an I/O error.
func (s *session) lost(bc *bconn) {
	s.mu.Lock()
	bc.dead = true
	release := s.conns[bc.idx] == bc && !bc.released
	if release {
		delete(s.conns, bc.idx)
		bc.released = true
	}
	s.mu.Unlock()
	if !bc.returned {
		bc.sc.Close()
	}
	if release {
		s.release(bc)
	}
	if s.cur == bc {
		s.cur = nil
		s.status = mysqlwire.ServerStatusAutocommit
	}
	if s.pinnedTo == bc {
		s.setPin(s.pinned, nil)
	}
}

// writeBackend sends one command packet (sequence 0) to bc.
func (s *session) writeBackend(bc *bconn, p []byte, flush bool) error {
	b, _ := mysqlwire.AppendPacket(nil, 0, p)
	_, err := bc.mc.W.Write(b)
	if err == nil && flush {
		err = bc.mc.W.Flush()
	}
	if err != nil {
		s.lost(bc)
	}
	return err
}

// relayResult relays the response to COM_QUERY or COM_STMT_EXECUTE: any
// number of results (OK, ERR, or result set) chained by
// SERVER_MORE_RESULTS_EXISTS. relayed reports whether anything reached the
// client (an error after that cannot be answered cleanly).
func (s *session) relayResult(bc *bconn) (ok, relayed bool, err error) {
	s.seqShift = 0
	defer func() { s.seqShift = 0 }()
	r := bc.mc.R
	caps := s.caps
	for {
		raw, err := r.ReadRawPacket()
		if err != nil {
			return false, relayed, err
		}
		payload := raw[mysqlwire.HeaderSize:]
		if len(payload) == 0 {
			return false, relayed, errors.New("empty packet from backend")
		}
		switch payload[0] {
		case mysqlwire.ERRHeader:
			s.writeRaw(raw)
			return false, true, nil
		case mysqlwire.OKHeader:
			s.writeRaw(raw)
			relayed = true
			st, _ := mysqlwire.StatusFlags(payload, caps)
			s.status = st
			if id, ok := mysqlwire.OKInsertID(payload); ok && id != 0 {
				s.lastInsertID = id
			}
			if st&mysqlwire.ServerMoreResultsExists != 0 {
				continue
			}
			return true, true, nil
		case mysqlwire.LocalInfileHeader:
			if err := s.relayLocalInfile(bc, raw); err != nil {
				return false, true, err
			}
			relayed = true
			continue // the backend's OK or ERR follows
		}
		n, isCount := mysqlwire.ParseColumnCount(payload)
		if !isCount {
			return false, relayed, fmt.Errorf("unexpected packet 0x%02x from backend", payload[0])
		}
		s.writeRaw(raw)
		relayed = true
		defs := int(n)
		if caps&mysqlwire.ClientDeprecateEOF == 0 {
			defs++
		}
		for i := range defs {
			raw, err := r.ReadRawPacket()
			if err != nil {
				return false, true, err
			}
			s.writeRaw(raw)
			if i == int(n) {
				// The definitions' EOF: with a cursor open (COM_STMT_EXECUTE
				// with a cursor type), no rows follow; COM_STMT_FETCH
				// gets them.
				if st, _ := mysqlwire.StatusFlags(raw[mysqlwire.HeaderSize:], caps); st&mysqlwire.ServerStatusCursorExists != 0 {
					s.status = st
					return true, true, nil
				}
			}
		}
		st, more, err := s.relayRows(bc)
		if err != nil {
			return false, true, err
		}
		if !more {
			return st, true, nil
		}
	}
}

// relayLocalInfile serves a backend's LOCAL INFILE request (raw: 0xFB and
// the file name). When the client negotiated CLIENT_LOCAL_FILES (the
// listener's local_infile), the request goes to the client and the
// client's file content, up to and including the empty packet that ends
// it, goes to the backend untouched (sequence ids continue on both sides
// alike). Otherwise the backend gets an empty file at once, and the
// packets that follow reach the client renumbered as if the request had
// never been sent. Errors are I/O failures on either side; the session
// cannot go on after them.
func (s *session) relayLocalInfile(bc *bconn, raw []byte) error {
	w := bc.mc.W
	_, seq, _ := mysqlwire.PacketHeader(raw)
	if s.caps&mysqlwire.ClientLocalFiles == 0 {
		end, _ := mysqlwire.AppendPacket(nil, seq+1, nil)
		if _, err := w.Write(end); err != nil {
			return fmt.Errorf("LOCAL INFILE refusal to backend: %w", err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("LOCAL INFILE refusal to backend: %w", err)
		}
		s.seqShift += 2
		return nil
	}
	s.writeRaw(raw)
	if err := s.flush(); err != nil {
		return fmt.Errorf("LOCAL INFILE request to client: %w", err)
	}
	cont := false
	for {
		data, err := s.cr.ReadRawPacket()
		if err != nil {
			return fmt.Errorf("LOCAL INFILE data from client: %w", err)
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("LOCAL INFILE data to backend: %w", err)
		}
		n := len(data) - mysqlwire.HeaderSize
		if n == 0 && !cont {
			break
		}
		cont = n == mysqlwire.MaxChunk
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("LOCAL INFILE data to backend: %w", err)
	}
	return nil
}

// relayRows relays rows up to and including the EOF (or OK) packet that
// ends them, or an ERR. more reports SERVER_MORE_RESULTS_EXISTS.
func (s *session) relayRows(bc *bconn) (ok, more bool, err error) {
	r := bc.mc.R
	cont := false
	for {
		raw, err := r.ReadRawPacket()
		if err != nil {
			return false, false, err
		}
		s.writeRaw(raw)
		n := len(raw) - mysqlwire.HeaderSize
		payload := raw[mysqlwire.HeaderSize:]
		if !cont && n > 0 {
			if payload[0] == mysqlwire.ERRHeader {
				return false, false, nil
			}
			if mysqlwire.IsEOF(payload, s.caps) {
				st, _ := mysqlwire.StatusFlags(payload, s.caps)
				s.status = st
				return true, st&mysqlwire.ServerMoreResultsExists != 0, nil
			}
		}
		cont = n == mysqlwire.MaxChunk
	}
}

// relayOne relays a one-packet response.
func (s *session) relayOne(bc *bconn) (ok, relayed bool, err error) {
	raw, err := bc.mc.R.ReadRawPacket()
	if err != nil {
		return false, false, err
	}
	s.writeRaw(raw)
	payload := raw[mysqlwire.HeaderSize:]
	if st, isOK := mysqlwire.StatusFlags(payload, s.caps); isOK {
		s.status = st
	}
	return !mysqlwire.IsERR(payload), true, nil
}

// relayUntilEOF relays the response to COM_FIELD_LIST.
func (s *session) relayUntilEOF(bc *bconn) (ok, relayed bool, err error) {
	for {
		raw, err := bc.mc.R.ReadRawPacket()
		if err != nil {
			return false, relayed, err
		}
		s.writeRaw(raw)
		relayed = true
		payload := raw[mysqlwire.HeaderSize:]
		if mysqlwire.IsERR(payload) {
			return false, true, nil
		}
		if mysqlwire.IsEOF(payload, s.caps) {
			return true, true, nil
		}
	}
}

// exec runs a command of the proxy's own on bc and reads its response,
// which must be a single OK/EOF or ERR packet.
func (s *session) exec(bc *bconn, p []byte) error {
	if err := s.writeBackend(bc, p, true); err != nil {
		return errBackendLost
	}
	_, payload, err := bc.mc.R.ReadPacket()
	if err != nil {
		s.lost(bc)
		return errBackendLost
	}
	if mysqlwire.IsERR(payload) {
		e, _ := mysqlwire.ParseERR(payload)
		return &e
	}
	if len(payload) > 0 && payload[0] != mysqlwire.OKHeader && payload[0] != mysqlwire.EOFHeader {
		// A result set: drain it (the proxy's own commands never make one).
		s.lost(bc)
		return errBackendLost
	}
	return nil
}

// queryValue runs a query of the proxy's own that returns one row of one
// column and returns that value.
func (s *session) queryValue(bc *bconn, sql string) (string, error) {
	if err := s.writeBackend(bc, append([]byte{mysqlwire.ComQuery}, sql...), true); err != nil {
		return "", errBackendLost
	}
	r := bc.mc.R
	_, payload, err := r.ReadPacket()
	if err != nil {
		s.lost(bc)
		return "", errBackendLost
	}
	if mysqlwire.IsERR(payload) {
		e, _ := mysqlwire.ParseERR(payload)
		return "", &e
	}
	n, ok := mysqlwire.ParseColumnCount(payload)
	if !ok || n != 1 {
		s.lost(bc)
		return "", errBackendLost
	}
	skip := 1
	if s.caps&mysqlwire.ClientDeprecateEOF == 0 {
		skip++
	}
	for range skip {
		if _, _, err := r.ReadPacket(); err != nil {
			s.lost(bc)
			return "", errBackendLost
		}
	}
	var val string
	for {
		_, payload, err := r.ReadPacket()
		if err != nil {
			s.lost(bc)
			return "", errBackendLost
		}
		if mysqlwire.IsERR(payload) {
			e, _ := mysqlwire.ParseERR(payload)
			return "", &e
		}
		if mysqlwire.IsEOF(payload, s.caps) {
			return val, nil
		}
		if b, _, ok := mysqlwire.ReadLenEncBytes(payload); ok {
			val = string(b)
		}
	}
}

// sync replays the session state (database, SET statements, the
// multi-statements option) on bc before it serves a command. A connection
// whose settings are not a subset of the session's (set by an earlier
// client under transaction pooling) is reset first.
func (s *session) sync(bc *bconn) error {
	sc := bc.sc
	if sc.setsKey != s.setsKey {
		if !setNamesSubset(sc.sets, s.sets) {
			if err := s.resetServer(bc); err != nil {
				return err
			}
		}
		for _, st := range s.sets {
			if err := s.exec(bc, append([]byte{mysqlwire.ComQuery}, st.text...)); err != nil {
				if _, isMy := backends.AsMySQLError(err); !isMy {
					return err
				}
				s.srv.log.Warn("replaying session state failed", "backend", bc.addr, "statement", st.text, "err", err)
			}
		}
		sc.sets = append(sc.sets[:0:0], s.sets...)
		sc.setsKey = s.setsKey
	}
	if s.database != "" && sc.db != s.database {
		if err := s.exec(bc, append([]byte{mysqlwire.ComInitDB}, s.database...)); err != nil {
			return err
		}
		sc.db = s.database
	}
	if sc.multiOff != s.multiOff {
		opt := mysqlwire.SetOptionMultiStatementsOn
		if s.multiOff {
			opt = mysqlwire.SetOptionMultiStatementsOff
		}
		if err := s.exec(bc, []byte{mysqlwire.ComSetOption, byte(opt), byte(opt >> 8)}); err != nil {
			return err
		}
		sc.multiOff = s.multiOff
	}
	return nil
}

// resetServer sends COM_RESET_CONNECTION on bc: the server forgets the
// session settings, user variables, temporary tables, locks and prepared
// statements of the connection, and rolls back its transaction. The
// handshake character set is restored.
func (s *session) resetServer(bc *bconn) error {
	if err := s.exec(bc, []byte{mysqlwire.ComResetConnection}); err != nil {
		return err
	}
	sc := bc.sc
	db := sc.db
	sc.forgetState()
	sc.db = db // COM_RESET_CONNECTION keeps the current database
	for _, st := range s.stmts {
		delete(st.ids, bc)
		delete(st.typed, bc)
	}
	bc.status = mysqlwire.ServerStatusAutocommit
	if sc.charsetSQL != "" {
		if err := s.exec(bc, append([]byte{mysqlwire.ComQuery}, sc.charsetSQL...)); err != nil {
			return err
		}
	}
	return nil
}

// setNamesSubset reports whether every setting of have is also in want
// (replaying want then overwrites all of them).
func setNamesSubset(have, want []setting) bool {
	for _, h := range have {
		found := false
		for _, w := range want {
			if w.name == h.name {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// setsKeyOf encodes settings for comparison.
func setsKeyOf(sets []setting) string {
	var b strings.Builder
	for _, st := range sets {
		b.WriteString(st.name)
		b.WriteByte(0)
		b.WriteString(st.text)
		b.WriteByte(0)
	}
	return b.String()
}

// applyOps records the session-state statements that just succeeded on bc.
func (s *session) applyOps(bc *bconn, ops []router.SessionOp) {
	changed, resetAll := false, false
	for _, op := range ops {
		switch op.Kind {
		case router.SessionUse:
			s.database = op.Name
			bc.sc.db = op.Name
		case router.SessionSet:
			found := false
			for i := range s.sets {
				if s.sets[i].name == op.Name {
					s.sets[i].text = op.Text
					found = true
				}
			}
			if !found {
				s.sets = append(s.sets, setting{name: op.Name, text: op.Text})
			}
			changed = true
		case router.SessionResetAll:
			s.sets = nil
			changed, resetAll = true, true
		}
	}
	if changed {
		sc := bc.sc
		up := sc.setsKey == s.setsKey && !resetAll
		s.setsKey = setsKeyOf(s.sets)
		if up {
			sc.sets = append(sc.sets[:0:0], s.sets...)
			sc.setsKey = s.setsKey
		}
	}
}

// afterWrite keeps read-your-writes: after a write on the writer, the
// session's next read that would go to a replica first learns the GTID of
// the session's last write (capture); replicas serve it only once they
// have replayed that GTID. The capture is lazy so that nothing runs between
// a write and a statement that reads its diagnostics (ROW_COUNT(),
// SHOW WARNINGS) on the same connection.
func (s *session) afterWrite(bc *bconn, wrote bool) {
	o := &s.srv.opts
	if !o.ReadYourWrites || o.Route != router.RouteAuto || bc.dead || bc.target != router.TargetWriter || !wrote {
		return
	}
	s.needCapture = true
	s.captureOn = bc
}

// capture learns the position a replica must have replayed before it may
// serve the session's reads: @@last_gtid on the connection that wrote, or,
// if that connection is gone, the writer's whole binlog position. It is
// called outside transactions only.
func (s *session) capture() error {
	bc := s.captureOn
	q := "SELECT @@last_gtid"
	if bc == nil || bc.dead {
		var err error
		if bc, err = s.writerConn(); err != nil {
			return err
		}
		q = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	if err := s.sync(bc); err != nil {
		return err
	}
	v, err := s.queryValue(bc, q)
	if err != nil {
		return err
	}
	s.needCapture, s.captureOn = false, nil
	if pos := topology.GTIDSequence(v, 0); pos > s.lastWritePos {
		s.lastWritePos = pos
	}
	return nil
}

// isDiagnostics recognises SHOW WARNINGS, SHOW ERRORS and their COUNT(*)
// forms.
// firstWordIs reports whether q's first word (after white space) is word,
// in any case, without allocating.
func firstWordIs(q, word string) bool {
	q = strings.TrimLeft(q, " \t\r\n")
	if len(q) < len(word) || !strings.EqualFold(q[:len(word)], word) {
		return false
	}
	if len(q) == len(word) {
		return true
	}
	switch q[len(word)] {
	case ' ', '\t', '\r', '\n', ';', '(', '/':
		return true
	}
	return false
}

func isDiagnostics(q string) bool {
	f := strings.Fields(q)
	if len(f) < 2 || !strings.EqualFold(f[0], "SHOW") {
		return false
	}
	w := strings.ToUpper(strings.TrimRight(f[1], ";"))
	return w == "WARNINGS" || w == "ERRORS" || strings.HasPrefix(w, "COUNT")
}

// initDB serves COM_INIT_DB.
func (s *session) initDB(p []byte) bool {
	bc, err := s.pick(router.Class{})
	if err != nil {
		s.sendError(err)
		return true
	}
	db := string(p[1:])
	ok, alive := s.run1(bc, p, singleKind, false)
	if ok {
		s.database = db
		bc.sc.db = db
	}
	return alive
}

// simple serves COM_FIELD_LIST and COM_STATISTICS on any backend.
func (s *session) simple(p []byte) bool {
	bc, err := s.pick(router.Class{})
	if err != nil {
		s.sendError(err)
		return true
	}
	kind := singleKind
	if p[0] == mysqlwire.ComFieldList {
		kind = fieldListKind
	}
	_, alive := s.run1(bc, p, kind, false)
	return alive
}

// resetConnection serves COM_RESET_CONNECTION: every backend connection is
// reset, and the session forgets its state.
func (s *session) resetConnection() {
	s.mu.Lock()
	conns := make([]*bconn, 0, len(s.conns))
	for _, bc := range s.conns {
		if !bc.dead {
			conns = append(conns, bc)
		}
	}
	s.mu.Unlock()
	s.sets, s.setsKey = nil, ""
	for _, bc := range conns {
		s.resetServer(bc)
	}
	s.stmts = make(map[uint32]*stmt)
	s.cursor = nil
	s.txNext, s.lastInsertID = false, 0
	s.setPin("", nil)
	s.status = mysqlwire.ServerStatusAutocommit
	s.sendOK(1)
}

// parseKill recognises KILL [HARD|SOFT] [QUERY|CONNECTION] <id>.
func parseKill(q string) (id uint32, connection, ok bool) {
	f := strings.Fields(strings.TrimRight(strings.TrimSpace(q), "; \t\r\n"))
	if len(f) < 2 || !strings.EqualFold(f[0], "KILL") {
		return 0, false, false
	}
	f = f[1:]
	if len(f) > 1 && (strings.EqualFold(f[0], "HARD") || strings.EqualFold(f[0], "SOFT")) {
		f = f[1:]
	}
	connection = true
	if len(f) > 1 && strings.EqualFold(f[0], "QUERY") {
		connection = false
		f = f[1:]
	} else if len(f) > 1 && strings.EqualFold(f[0], "CONNECTION") {
		f = f[1:]
	}
	if len(f) != 1 {
		return 0, false, false
	}
	n, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return 0, false, false
	}
	return uint32(n), connection, true
}

// kill serves KILL with the proxy's connection ids: the statement the
// target session is running is killed on its backend, and KILL CONNECTION
// also ends the target session.
func (s *session) kill(id uint32, connection bool) bool {
	t := s.srv.opts.ConnIDs.lookup(id)
	if t == nil {
		s.sendERR(1, 1094, fmt.Sprintf("Unknown thread id: %d", id))
		return true
	}
	t.mu.Lock()
	user, password, gone := t.user, t.password, t.closing
	t.mu.Unlock()
	if gone {
		s.sendERR(1, 1094, fmt.Sprintf("Unknown thread id: %d", id))
		return true
	}
	if user != s.user {
		s.sendERR(1, 1095, fmt.Sprintf("You are not owner of thread %d", id))
		return true
	}
	t.mu.Lock()
	bc := t.busy
	var addr string
	var thread uint32
	if bc != nil {
		addr, thread = bc.addr, bc.mc.ThreadID
		// Until the KILL is forwarded, the connection stays with t (under
		// transaction pooling it would otherwise go to another client).
		t.killing++
	}
	t.mu.Unlock()
	if bc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.opts.ConnectTimeout)
		err := backends.KillMySQL(ctx, backends.MySQLDialConfig{Addr: addr, User: user, Password: password, TLS: s.srv.opts.BackendTLS}, thread, false)
		cancel()
		t.mu.Lock()
		t.killing--
		if t.killing == 0 && t.killDone != nil {
			t.killDone.Broadcast()
		}
		t.mu.Unlock()
		if err != nil {
			s.srv.log.Warn("forwarding KILL failed", "backend", addr, "err", err)
		}
	}
	if connection {
		if t == s {
			s.sendERR(1, mysqlwire.ERQueryInterrupted, "Connection was killed")
			return false
		}
		t.Close()
	}
	s.sendOK(1)
	return true
}

// isFunctionQuery recognises SELECT fn (e.g. "CONNECTION_ID()", which
// Sluice answers itself with the id it handed to the client, the one KILL
// takes).
func isFunctionQuery(q, fn string) bool {
	q = strings.TrimRight(strings.TrimSpace(q), "; \t\r\n")
	f := strings.Fields(q)
	return len(f) == 2 && strings.EqualFold(f[0], "SELECT") && strings.EqualFold(strings.ReplaceAll(f[1], " ", ""), fn)
}

// uintResult answers a query with a one-row, one-column unsigned result.
func (s *session) uintResult(name string, v uint64) {
	seq := byte(1)
	s.writePacket(seq, mysqlwire.AppendColumnCount(nil, 1))
	seq++
	col := mysqlwire.ColumnDefinition{
		Name: name, CharacterSet: mysqlwire.CollationBinary, ColumnLength: 20,
		Type: mysqlwire.TypeLongLong, Flags: mysqlwire.FlagNotNull | mysqlwire.FlagBinary | mysqlwire.FlagUnsigned | mysqlwire.FlagNum,
	}
	s.writePacket(seq, mysqlwire.AppendColumnDefinition(nil, &col, s.caps))
	seq++
	if s.caps&mysqlwire.ClientDeprecateEOF == 0 {
		s.writePacket(seq, mysqlwire.AppendEOF(nil, mysqlwire.EOFPacket{Status: s.status}))
		seq++
	}
	s.writePacket(seq, mysqlwire.AppendTextValue(nil, []byte(strconv.FormatUint(v, 10)), false))
	seq++
	s.sendEOF(seq)
}

// ShutdownWhenIdle asks the session to end at its next idle moment.
func (s *session) ShutdownWhenIdle() {
	s.mu.Lock()
	s.drain = true
	idle := s.waiting
	s.mu.Unlock()
	if idle {
		s.Close()
	}
}

// Close ends the session from any goroutine: the client connection and the
// backend connections are closed, which ends the session goroutine.
func (s *session) Close() {
	s.closeOne.Do(func() {
		s.stop()
		s.mu.Lock()
		s.closing = true
		for _, bc := range s.conns {
			if s.busy == bc {
				bc.mc.Close()
			}
		}
		queued := s.checkingOut
		s.mu.Unlock()
		if s.conn != nil && !queued {
			s.conn.Close()
		}
	})
}

// closeBackends gives every backend connection back to its pool (reset),
// or closes it when it cannot serve another client. Called by the
// goroutine that owns the session (at its end, or after a failed startup).
func (s *session) closeBackends() {
	s.mu.Lock()
	if s.cleaned {
		s.mu.Unlock()
		return
	}
	s.cleaned = true
	s.closing = true
	conns := make([]*bconn, 0, len(s.conns))
	for _, bc := range s.conns {
		if !bc.released {
			bc.released = true
			conns = append(conns, bc)
		}
	}
	s.mu.Unlock()
	for _, bc := range conns {
		s.giveBack(bc, true)
	}
	s.srv.opts.ConnIDs.unregister(s.id)
	if s.unadmit != nil {
		s.unadmit()
	}
}

// releaseIdle gives the session's connections back to their pools under
// transaction pooling, once a command is complete and nothing ties the
// session to them: no transaction, no pending SET TRANSACTION, no pin, no
// open cursor.
func (s *session) releaseIdle() {
	for st := range s.cursor {
		if st.last == nil || st.last.dead {
			delete(s.cursor, st) // its connection is gone
		}
	}
	if !s.txMode() || s.inTx() || s.txNext || s.pinned != "" || len(s.cursor) > 0 {
		return
	}
	s.mu.Lock()
	for s.killing > 0 && s.killDone != nil {
		s.killDone.Wait()
	}
	var conns []*bconn
	for idx, bc := range s.conns {
		if !bc.released {
			bc.released = true
			conns = append(conns, bc)
		}
		delete(s.conns, idx)
	}
	s.mu.Unlock()
	for _, bc := range conns {
		s.giveBack(bc, false)
	}
}

// giveBack returns bc, which the caller has taken out of s.conns (marked
// released), to its pool. A connection that is broken, in a transaction,
// in the middle of a command, or holding session state that pins the
// session (LOCK TABLES, GET_LOCK, temporary tables, user variables…) is
// closed instead. final says the session is leaving (or changing user):
// under session pooling the connection is then reset with
// COM_RESET_CONNECTION (and closed if that fails); under transaction
// pooling it keeps its settings and prepared statements for the next
// client, which sync adjusts. Its pool key's database is selected again if
// the client switched (a connection of clients without a database is
// closed instead). A connection with unknown session state (dirty), a
// pending SET TRANSACTION or a KILL QUERY on its way is closed.
func (s *session) giveBack(bc *bconn, final bool) {
	s.srv.opts.Cluster.Release(bc.idx)
	if bc.returned {
		return
	}
	pinned := s.pinnedTo == bc && s.pinned != "" && s.pinned != router.PinLastInsertID
	// dirty: session state the proxy does not know; txNext: characteristics
	// of the next transaction still pending there.
	bad := bc.dead || bc.midCommand || bc.inTx() || pinned || bc.sc.dirty || (s.txNext && s.cur == bc)
	if !bad && final && s.txMode() {
		// The statements stay prepared for the next client: their open
		// cursors are closed.
		c := bc.mc.Conn
		c.SetDeadline(time.Now().Add(2 * time.Second))
		for st := range s.cursor {
			if st.last == bc && !s.closeCursor(st) {
				bad = true
			}
		}
		c.SetDeadline(time.Time{})
	}
	if s.closePrivate(bc, !bad) != nil {
		bad = true
	}
	if !bad && final && (!s.txMode() || s.pinnedTo == bc) {
		c := bc.mc.Conn
		c.SetDeadline(time.Now().Add(2 * time.Second))
		bad = s.resetServer(bc) != nil
		c.SetDeadline(time.Time{})
	}
	if sc := bc.sc; !bad && sc.db != sc.keyDB {
		// The client switched schema: the pool key's database is selected
		// again; a connection of clients without a database cannot
		// unselect it.
		if sc.keyDB == "" {
			bad = true
		} else {
			c := bc.mc.Conn
			c.SetDeadline(time.Now().Add(2 * time.Second))
			bad = s.exec(bc, append([]byte{mysqlwire.ComInitDB}, sc.keyDB...)) != nil
			c.SetDeadline(time.Time{})
			sc.db = sc.keyDB
		}
	}
	s.mu.Lock()
	if s.killing > 0 {
		// A KILL QUERY is being forwarded to it: it must not reach the
		// next client's statement.
		bad = true
	}
	bc.dead, bc.returned = true, true
	s.mu.Unlock()
	if s.cur == bc {
		s.cur = nil
	}
	if s.pinnedTo == bc {
		s.setPin(s.pinned, nil)
	}
	if bad {
		bc.sc.Close()
		bc.up.p.Discard(bc.pc)
		return
	}
	bc.up.p.Put(bc.pc)
}

// setPin records what pins the session, and to which connection (nil:
// none, or it is gone), for routing and for /status.
func (s *session) setPin(reason router.PinReason, to *bconn) {
	s.pinned, s.pinnedTo = reason, to
	if reason == "" {
		s.pinView.Store(nil)
		return
	}
	v := &serve.PinnedSession{PID: s.id, Listener: s.srv.opts.Name, Cluster: s.srv.opts.Cluster.Name(),
		User: s.user, Client: s.conn.RemoteAddr().String(), Reason: string(reason)}
	if to != nil {
		v.Backend = to.addr
	}
	s.pinView.Store(v)
}
