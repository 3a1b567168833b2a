package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/backends/pool"
	"github.com/sluicedb/sluice/internal/pgwire"
	"github.com/sluicedb/sluice/router"
	"github.com/sluicedb/sluice/topology"
)

var (
	errNoReader    = errors.New("no healthy replica is available")
	errClosing     = errors.New("session is closing")
	errTxLost      = errors.New("the open transaction was lost")
	errBackendLost = errors.New("the backend connection was lost before the statement could be sent")
)

// pick chooses the backend connection for a batch of class cls, waiting for
// in-flight responses of another backend first so that responses reach the
// client in order.
func (s *session) pick(cls router.Class, _ int) (*bconn, error) {
	o := &s.srv.opts
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return nil, errClosing
		}
		s.applyFixupsLocked()
		if s.txLost != "" {
			// The client's transaction died with its backend after the
			// batch was read (the relay goroutine noticed meanwhile): the
			// batch belongs to it, not to a fresh autocommit connection.
			s.mu.Unlock()
			return nil, errTxLost
		}
		cur := s.cur
		if cur != nil && cur.dead {
			cur = nil
		}
		if p := s.pinnedTo; p != nil && !p.dead && s.fenced(p) {
			reason := s.pinned
			drop := s.dropLocked(p)
			s.mu.Unlock()
			s.fatal("08006", fmt.Sprintf("the writer changed (failover): %s is no longer the writer and the session state (%s) held there cannot be moved", p.addr, reason))
			s.conn.Close()
			drop()
			return nil, errClosing
		}
		if p := s.pinnedTo; p != nil && !p.dead {
			// Pinned: the connection holding the session's state serves
			// everything (after responses from another backend are in).
			if cur == nil || cur == p || cur.inflight == 0 {
				s.cur = p
				p.claimed = true
				s.mu.Unlock()
				return p, nil
			}
			for s.waitingOnLocked(cur) {
				s.cond.Wait()
			}
			s.mu.Unlock()
			continue
		}
		inTx := s.txStatus != 'I' && cur != nil
		busy := cur != nil && cur.inflight > 0
		st := router.State{InTx: inTx, Pinned: s.pinned != "" || cls.Pin != ""}
		if inTx {
			st.TxTarget = cur.target
		}
		if cur != nil && cur.inflight > 0 && s.fenced(cur) {
			// Statements already sent to a writer the fleet has since
			// replaced: let them finish (or fail) before deciding anything.
			for s.waitingOnLocked(cur) {
				s.cond.Wait()
			}
			s.mu.Unlock()
			continue
		}
		if inTx && s.fenced(cur) {
			// The transaction runs on a writer that the fleet has since
			// replaced: it must not take another statement.
			s.cur, s.txStatus, s.txSetOps = nil, 'I', nil
			s.txLost = fmt.Sprintf("the writer changed (failover): %s is no longer the writer; the open transaction was rolled back", cur.addr)
			s.txLostSent = false
			drop := s.dropLocked(cur)
			s.mu.Unlock()
			drop()
			return nil, errTxLost
		}
		if inTx {
			cur.claimed = true
			s.mu.Unlock()
			return cur, nil
		}
		t := router.Decide(o.Route, cls, st)
		if busy && cur.target == t {
			cur.claimed = true
			s.mu.Unlock()
			return cur, nil
		}
		s.mu.Unlock()
		if busy {
			s.mu.Lock()
			for s.waitingOnLocked(cur) {
				s.cond.Wait()
			}
			s.mu.Unlock()
			continue
		}
		var bc *bconn
		var err error
		if t == router.TargetWriter {
			bc, err = s.writerConn(noDeadline)
		} else {
			bc, err = s.readerConn(noDeadline)
		}
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.cur = bc
		s.mu.Unlock()
		if bc.target == router.TargetWriter {
			s.srv.statWriter.Inc()
		} else {
			s.srv.statReader.Inc()
		}
		return bc, nil
	}
}

// noDeadline asks withDeadline for a fresh context bounded by the connect
// timeout.
var noDeadline = context.Background()

// withDeadline returns ctx, or a fresh context bounded by the connect
// timeout when ctx is noDeadline (contexts are made only when something may block,
// to keep the per-statement path free of allocations).
func (s *session) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx != noDeadline {
		return ctx, func() {}
	}
	return context.WithTimeout(s.ctx, s.srv.opts.ConnectTimeout)
}

// writerConn returns the session's connection to the current writer,
// dialing it if needed; while there is none, or it does not answer, it
// waits up to the writer hold (see backends.Cluster.ConnectWriter). ctx
// noDeadline means "the connect timeout from now" for each dial.
func (s *session) writerConn(ctx context.Context) (*bconn, error) {
	var bc *bconn
	err := s.srv.opts.Cluster.ConnectWriter(s.ctx, s.srv.opts.WriterHold, func(epoch uint64, idx int, b topology.Backend) error {
		c, err := s.connTo(ctx, idx, b, router.TargetWriter)
		if err == nil {
			c.epoch, bc = epoch, c
		}
		return err
	}, func(err error) bool { _, refused := asPgError(err); return refused })
	return bc, err
}

// readerConn returns a connection to a replica that may serve the session's
// next read: the session's current replica if it still qualifies, else the
// balancer's pick. With read-your-writes the replica must have replayed the
// session's last write. With no qualifying replica the writer serves the
// read, if the cluster allows it.
func (s *session) readerConn(ctx context.Context) (*bconn, error) {
	o := &s.srv.opts
	cl := o.Cluster
	var minPos uint64
	if o.ReadYourWrites && o.Route == router.RouteAuto {
		s.mu.Lock()
		stale, wrote := s.lsnStale, s.lastWriteAt
		s.mu.Unlock()
		if stale && !cl.Snapshot().Taken.After(wrote) {
			// No probe has finished since the write: no replica can be known
			// to have replayed it, so asking the writer for its position
			// would only add a round trip.
			s.srv.rywFallbacks.Inc()
			return s.writerConn(ctx)
		}
		if stale {
			fctx, cancel := s.withDeadline(ctx)
			s.fetchWriterLSN(fctx)
			cancel()
		}
		s.mu.Lock()
		minPos, stale = s.lastWriteLSN, s.lsnStale
		s.mu.Unlock()
		if stale {
			// The position of the session's last write is unknown: only
			// the writer is sure to have it.
			s.srv.rywFallbacks.Inc()
			return s.writerConn(ctx)
		}
	}
	var bc *bconn
	idx, behind, err := cl.ChooseReader(s.readerIdx, minPos, func(i int, b topology.Backend) error {
		var err error
		bc, err = s.connTo(ctx, i, b, router.TargetReader)
		return err
	}, func(err error) bool { _, ok := asPgError(err); return ok })
	if err != nil {
		return nil, err // the server refused us (unknown database, access): say so
	}
	if idx >= 0 {
		s.readerIdx = idx
		return bc, nil
	}
	if behind {
		s.srv.rywFallbacks.Inc()
		return s.writerConn(ctx)
	}
	if o.FallbackToWriter {
		return s.writerConn(ctx)
	}
	return nil, errNoReader
}

// connTo returns the session's connection to backend idx, checking one out
// of the pool if the session holds none (or holds one to a different
// address). The connection is claimed for the batch the caller sends (see
// detachableLocked).
func (s *session) connTo(ctx context.Context, idx int, b topology.Backend, t router.Target) (*bconn, error) {
	s.mu.Lock()
	bc := s.conns[idx]
	if bc != nil && bc.addr == b.Addr && !bc.dead {
		bc.claimed = true
		s.mu.Unlock()
		bc.target = t
		return bc, nil
	}
	s.mu.Unlock()
	var c *pool.Conn[*bconn]
	var err error
	if ctx == noDeadline {
		c, err = s.checkout(s.ctx, b.Addr)
	} else {
		c, err = s.checkout(ctx, b.Addr)
	}
	if err != nil {
		return nil, err
	}
	bc = c.Value()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.up.p.Put(c)
		return nil, errClosing
	}
	bc.ownMu.Lock()
	broken := bc.broken
	if !broken {
		bc.owner, bc.pconn = s, c
	}
	bc.ownMu.Unlock()
	if broken {
		// It failed between the pool's health check and now: its relay
		// has stopped. Take another.
		s.mu.Unlock()
		bc.Close()
		s.up.p.Discard(c)
		return s.connTo(ctx, idx, b, t)
	}
	var retire *bconn
	if old := s.conns[idx]; old != nil && old != bc && old.ownedBy(s) {
		// The backend at this position changed address (or the old
		// connection died): let the old one go.
		retire = old
		s.detachLocked(old)
	}
	bc.idx = idx
	bc.claimed = true
	bc.dead = false
	s.conns[idx] = bc
	s.mu.Unlock()
	if retire != nil {
		retire.up.p.Discard(retire.pconn)
	}
	s.srv.opts.Cluster.Acquire(idx)
	bc.target = t
	return bc, nil
}

// waitingOnLocked reports whether the session must still wait for
// responses on cur, its current connection, before using another one.
// Called with s.mu held.
func (s *session) waitingOnLocked(cur *bconn) bool {
	return s.cur == cur && cur.inflight > 0 && !cur.dead && !s.closing
}

// detachableLocked reports whether bc, which s holds, may go back to the
// pool now: under transaction pooling, once nothing is in flight on it, no
// batch is being sent on it, no transaction is open on it and no session
// state pins the session to it. Called with s.mu held.
func (s *session) detachableLocked(bc *bconn) bool {
	return s.txMode() && !bc.claimed && bc.cancelling == 0 && !bc.copyIn && !bc.dead && bc.inflight == 0 && bc.qh == len(bc.q) &&
		s.pinnedTo != bc && !(s.cur == bc && s.txStatus != 'I') && bc.ownedBy(s)
}

// detachLocked takes bc away from s, which owns it; the caller then gives
// it back to the pool (Put) or closes it (Discard). Called with s.mu held.
func (s *session) detachLocked(bc *bconn) {
	// Corrections learned by the relay about the statements on bc are
	// applied now: the next session to use bc must see them.
	for i := range s.fixups {
		if f := &s.fixups[i]; f.bc == bc {
			if !bc.claimed { // else the session goroutine may be using the map: bc is being closed anyway
				bc.prepared[f.name] = unknownStmt
			}
			f.bc = nil
		}
	}
	if s.conns[bc.idx] == bc {
		delete(s.conns, bc.idx)
	}
	if s.cur == bc {
		s.cur = nil
	}
	bc.claimed = false
	bc.q, bc.qh, bc.inflight, bc.pending = bc.q[:0], 0, 0, 0
	bc.batchErr, bc.txTag, bc.fatal, bc.captured, bc.commitInFlight, bc.failed, bc.copyIn = false, 0, "", false, false, false, false
	bc.disown()
	s.srv.opts.Cluster.Release(bc.idx)
}

// settleIdle gives bc back to the pool if s still holds it and it may go
// (cancelRunning held it while the cancel was delivered). Unlike settle it
// leaves any claim alone: it runs outside the session goroutine.
func (s *session) settleIdle(bc *bconn) {
	s.mu.Lock()
	put := false
	if s.detachableLocked(bc) {
		s.detachLocked(bc)
		put = true
	}
	s.mu.Unlock()
	if put {
		bc.up.p.Put(bc.pconn)
	}
}

// dropLocked marks bc, which s holds, dead and detaches it; the returned
// function closes it and frees its pool slot (call it without s.mu).
func (s *session) dropLocked(bc *bconn) func() {
	bc.dead = true
	owned := bc.ownedBy(s)
	if owned {
		s.detachLocked(bc)
	}
	return func() {
		bc.Close()
		if owned {
			bc.up.p.Discard(bc.pconn)
		}
	}
}

// settle ends the session's claim on bc once it is done writing to it (a
// batch flushed, a login, a position capture), and gives bc back to the
// pool if it may go; else the relay does when the responses are in.
func (s *session) settle(bc *bconn) {
	if bc == nil {
		return
	}
	s.mu.Lock()
	put := false
	if bc.ownedBy(s) {
		bc.claimed = false
		if s.detachableLocked(bc) {
			s.detachLocked(bc)
			put = true
		}
	}
	s.mu.Unlock()
	if put {
		bc.up.p.Put(bc.pconn)
	}
}

// fetchWriterLSN asks the writer for its current WAL position and waits for
// the answer (used when a write's position could not be captured inline).
func (s *session) fetchWriterLSN(ctx context.Context) {
	// No waiting here: without a reachable writer the position stays
	// unknown and the read falls back to the writer, which holds once.
	snap := s.srv.opts.Cluster.Snapshot()
	b, ok := snap.WriterBackend()
	if !ok {
		return
	}
	w, err := s.connTo(ctx, snap.Writer, b, router.TargetWriter)
	if err != nil {
		return
	}
	defer s.settle(w)
	w.epoch = snap.Epoch
	s.mu.Lock()
	busy := w.inflight > 0
	s.mu.Unlock()
	if busy {
		return // cannot inject now; the read goes to the writer instead
	}
	if !s.injectCapture(w) {
		return
	}
	s.flushBackend(w)
	s.mu.Lock()
	for w.inflight > 0 && !w.dead && !s.closing {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

// lsnQuery reads the writer's WAL position; it cannot fail on a primary or a
// standby, so it is harmless even inside the client's transaction.
const lsnQuery = "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END"

// injectCapture queues the LSN query on bc; its result is swallowed and
// recorded as the session's last write position.
func (s *session) injectCapture(bc *bconn) bool {
	s.scratch = pgwire.AppendQuery(s.scratch[:0], lsnQuery)
	if !s.inject(bc, s.scratch, expect{kind: 'Z', swallow: true, capture: true}) {
		return false
	}
	delete(bc.prepared, "") // a Query destroys the unnamed statement
	return true
}

// inject sends a message of the proxy's own whose response is swallowed.
func (s *session) inject(bc *bconn, raw []byte, e expect) bool {
	if !s.enqueue(bc, e) {
		return false
	}
	if _, err := bc.pc.W.Write(raw); err != nil {
		bc.writeFailed(err) // the relay goroutine reports the loss
	}
	return true
}

// enqueue records an expected response, unless the connection is dead.
func (s *session) enqueue(bc *bconn, e expect) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bc.dead {
		return false
	}
	bc.push(e)
	if e.kind == 'Z' && !e.swallow {
		s.cur = bc
	}
	return true
}

// alive reports whether bc can still take messages.
func (s *session) alive(bc *bconn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !bc.dead
}

func asPgError(err error) (*pgconnError, bool) {
	var pt *poolTimeoutError
	if errors.As(err, &pt) {
		return &pgconnError{Code: "53300", Message: pt.Error()}, true
	}
	pe, ok := backends.AsPgError(err)
	if !ok {
		return nil, false
	}
	return &pgconnError{Code: pe.Code, Message: pe.Message}, true
}

// pgconnError is the part of a server error the front end relays.
type pgconnError struct{ Code, Message string }

func (e *pgconnError) Error() string { return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code) }
