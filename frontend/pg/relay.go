package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/sluicedb/sluice/internal/pgwire"
	"github.com/sluicedb/sluice/topology"
)

// relay is the goroutine that reads bc's responses for as long as bc is
// open, whichever session it serves: it copies them to that session's
// client, dropping the responses to the proxy's own injected messages and
// tracking the transaction status, and under transaction pooling gives bc
// back to its pool once the client's transaction is over.
func (ps *Pools) relay(bc *bconn) {
	defer ps.wg.Done()
	for {
		m, err := bc.rd.Next()
		s := bc.lockOwner()
		if s == nil {
			if !ps.unowned(bc, m, err) {
				return
			}
			continue
		}
		if err != nil {
			s.backendLost(bc, err) // with s.mu held: bc cannot change hands first
			return
		}
		drop, isZ := s.account(bc, m)
		extra := s.extraOut
		s.extraOut = nil
		s.mu.Unlock()
		if extra != nil {
			s.writeClient(extra, false)
		}
		flush := isZ || bc.rd.Buffered() == 0
		if drop {
			if flush {
				s.writeClient(nil, true)
			}
			continue
		}
		s.writeClient(m.Raw, flush)
		if isZ {
			// Only now, with the ReadyForQuery on its way to the client,
			// may the session send a batch to another backend (or bc go to
			// another session): responses must reach the client in order.
			s.mu.Lock()
			put := false
			if bc.ownedBy(s) {
				bc.inflight--
				bc.pending--
				if s.detachableLocked(bc) {
					s.detachLocked(bc)
					put = true
				}
			}
			s.cond.Broadcast()
			terminate := s.drain && s.idleLocked()
			s.mu.Unlock()
			if put {
				bc.up.p.Put(bc.pconn)
			}
			if terminate {
				s.terminate()
			}
		}
	}
}

// account updates the session's bookkeeping for one backend message and
// reports whether the client must not see it, and whether it is a
// client-visible ReadyForQuery whose in-flight count the caller releases
// after writing it. Called with s.mu held.
func (s *session) account(bc *bconn, m pgwire.Message) (drop, visibleZ bool) {
	front := bc.front()
	if front != nil && front.kind == 'Z' && front.swallow {
		switch m.Type {
		case pgwire.MsgNotification:
			return false, false // another session's NOTIFY: the client's, not ours
		case pgwire.MsgParameterStatus:
			if front.replay {
				// The replay sets this session's own values: what the
				// server reports at its end reaches the client if it
				// differs from what the client was last told (after a
				// RESET of its application_name, say).
				if name, value, err := pgwire.ParseParameterStatus(m.Body()); err == nil {
					bc.replayParams = append(bc.replayParams, [2]string{name, value})
				}
			}
		case pgwire.MsgDataRow:
			if front.capture {
				if v, null, err := pgwire.DataRowColumn(m.Body(), 0); err == nil && !null {
					if lsn, err := topology.ParseLSN(string(v)); err == nil {
						if lsn > s.lastWriteLSN {
							s.lastWriteLSN = lsn
						}
						bc.captured = true
					}
				}
			}
		case pgwire.MsgErrorResponse:
			bc.failed = true
			if isFatal(m.Body()) {
				bc.fatal = string(pgwire.ErrorField(m.Body(), 'M'))
			}
			level := slog.LevelWarn
			if front.capture {
				level = slog.LevelDebug // e.g. inside the client's failed transaction: harmless
			}
			s.srv.log.Log(context.Background(), level, "statement injected by the proxy failed", "backend", bc.addr,
				"sqlstate", string(pgwire.ErrorField(m.Body(), 'C')), "message", string(pgwire.ErrorField(m.Body(), 'M')))
		case pgwire.MsgReadyForQuery:
			e := bc.pop()
			bc.inflight--
			if e.capture && bc.captured {
				s.lsnStale = false
			}
			if e.replay && bc.failed {
				bc.stateSQL = stateUnknown // replay again before the next batch
			}
			if next := bc.front(); len(bc.replayParams) > 0 && (next == nil || !next.replay) {
				s.reportParams(bc.replayParams)
				bc.replayParams = bc.replayParams[:0]
			}
			bc.captured, bc.failed = false, false
			s.cond.Broadcast()
		}
		return true, false
	}
	switch m.Type {
	case pgwire.MsgParameterStatus:
		if name, value, err := pgwire.ParseParameterStatus(m.Body()); err == nil {
			s.reported[name] = value
		}
	case pgwire.MsgParseComplete, pgwire.MsgCloseComplete:
		if front == nil || front.kind != m.Type {
			s.srv.log.Warn("unexpected completion from backend", "backend", bc.addr, "type", string(m.Type))
			return false, false
		}
		e := bc.pop()
		return e.swallow, false
	case pgwire.MsgErrorResponse:
		if isFatal(m.Body()) {
			// The backend is about to close the connection (terminated by an
			// administrator, shut down, …). The client's session survives
			// it: backendLost answers whatever was waiting.
			bc.fatal = string(pgwire.ErrorField(m.Body(), 'M'))
			return true, false
		}
		bc.batchErr = true
		// The backend skips the rest of an extended batch up to its Sync:
		// Parses that failed or were skipped did not create their statement.
		for f := bc.front(); f != nil && f.kind != 'Z'; f = bc.front() {
			e := bc.pop()
			switch {
			case e.kind == '1':
				s.fixups = append(s.fixups, fixup{bc: bc, name: e.name, prev: e.prev, client: e.client})
			case e.kind == '3' && e.stmtClose:
				// A skipped Close left the statement on the backend.
				s.fixups = append(s.fixups, fixup{bc: bc, name: e.name})
			}
		}
	case pgwire.MsgCommandComplete:
		tag := pgwire.CommandTag(m.Body())
		switch {
		case bytes.HasPrefix(tag, []byte("COMMIT")):
			bc.txTag = 'c'
		case bytes.HasPrefix(tag, []byte("ROLLBACK")):
			bc.txTag = 'r'
		}
	case pgwire.MsgReadyForQuery:
		for f := bc.front(); f != nil && f.kind != 'Z'; f = bc.front() {
			bc.pop()
		}
		var e expect
		if bc.front() != nil {
			e = bc.pop()
			visibleZ = true // in-flight released by the caller after the write
		}
		body := m.Body()
		status := byte('I')
		if len(body) == 1 {
			status = body[0]
		}
		prev := s.txStatus
		if s.cur == bc {
			s.txStatus = status
		}
		if !bc.batchErr {
			if len(s.txSetOps) > 0 && prev != 'I' && status == 'I' {
				if bc.txTag == 'c' {
					s.applyOps(bc, s.txSetOps)
				}
				s.txSetOps = nil
			}
			if e.setOps != nil {
				if status == 'I' {
					s.applyOps(bc, e.setOps)
				} else {
					s.txSetOps = append(s.txSetOps, e.setOps...)
				}
			}
		} else if status == 'I' {
			s.txSetOps = nil
		}
		bc.batchErr, bc.txTag = false, 0
		if visibleZ {
			bc.commitInFlight = false
		}
	case pgwire.MsgCopyInResponse:
		bc.copyIn = true // until the client's CopyDone or CopyFail
		// A Sync that follows Execute of COPY FROM STDIN is ignored by the
		// server: only the Sync after CopyDone/CopyFail gets a
		// ReadyForQuery. Forget the expectation of the ignored one.
		if f := bc.front(); f != nil && f.kind == 'Z' && f.sync {
			bc.pop()
			bc.inflight--
			bc.pending--
		}
	}
	return false, visibleZ
}

// isFatal reports whether an ErrorResponse body has severity FATAL or PANIC.
func isFatal(body []byte) bool {
	sev := pgwire.ErrorField(body, 'V')
	if sev == nil {
		sev = pgwire.ErrorField(body, 'S')
	}
	return bytes.Equal(sev, []byte("FATAL")) || bytes.Equal(sev, []byte("PANIC"))
}

// backendLost cleans up after a backend connection that s owns failed or
// was closed, and answers whatever the client was still waiting for from
// it. Called with s.mu held; it unlocks it.
func (s *session) backendLost(bc *bconn, err error) {
	if s.conns[bc.idx] == bc {
		delete(s.conns, bc.idx)
	}
	bc.dead = true
	visible := bc.pending
	partial := false // responses of an unsynced batch (after Flush) are awaited
	for _, e := range bc.q[bc.qh:] {
		if e.kind != 'Z' && !e.swallow {
			partial = true
		}
	}
	bc.q, bc.qh, bc.inflight, bc.pending = nil, 0, 0, 0
	inTx := false
	commit := bc.commitInFlight && visible > 0
	if s.cur == bc {
		inTx = s.txStatus != 'I'
		s.cur = nil
		s.txStatus = 'I'
		s.txSetOps = nil
	}
	if inTx && !commit && !s.closing && s.pinnedTo != bc {
		// Before s.mu is let go: the client's next statement belongs to
		// the lost transaction, not to a fresh autocommit connection
		// (pick sees cur == nil from now on).
		s.txLost, s.txLostSent = lostMessage(bc)+"; the open transaction was rolled back", visible > 0 || partial
	}
	if partial && visible == 0 {
		s.skipToSync = true // the client's coming Sync gets the ReadyForQuery
	}
	closing := s.closing
	pinned := s.pinnedTo == bc
	owned := bc.ownedBy(s)
	if owned {
		s.detachLocked(bc)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	bc.Close()
	if owned {
		bc.up.p.Discard(bc.pconn)
	}
	cl := s.srv.opts.Cluster
	if closing {
		return
	}
	expected := errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
	if w := bc.writeErr.Load(); w != nil {
		err = fmt.Errorf("%w (after a failed write: %s)", err, *w)
	}
	s.srv.opts.Metrics.BackendErrors.WithLabelValues(cl.Name(), bc.addr).Inc()
	s.srv.log.Warn("backend connection lost", "backend", bc.addr, "err", err, "in_transaction", inTx, "waiting", visible, "eof", expected)
	if pinned {
		// State the client relies on is gone: end the session rather than
		// let later statements run without it.
		msg := fmt.Sprintf("connection to backend %s lost; session state (%s) cannot be restored", bc.addr, s.pinnedReason())
		if bc.fatal != "" {
			msg += " (" + bc.fatal + ")"
		}
		s.fatal("08006", msg)
		s.conn.Close()
		return
	}
	msg := lostMessage(bc)
	code := "08006"
	switch {
	case commit:
		// COMMIT was on its way: it may have committed (with synchronous
		// replication, on the new writer too). Say so; a retry must check.
		code, inTx = "08007", false
		msg += " while COMMIT was in progress; the transaction may or may not have been committed"
	case inTx:
		msg += "; the open transaction was rolled back"
	}
	status := byte('I')
	if inTx {
		// The client believes it is in a transaction: it is kept in a
		// failed one (as PostgreSQL would; txLost, set above under the
		// same lock that dropped the connection) until it ends it, so that
		// nothing it sends next runs outside the transaction it meant.
		status = 'E'
	}
	if visible == 0 && !partial {
		return // told at its next statement
	}
	// Every batch the client still waits for gets its error and its
	// ReadyForQuery, so that pipelining clients stay in step.
	out := pgwire.AppendErrorResponse(nil, "ERROR", code, msg)
	for i := 0; i < visible; i++ {
		if i > 0 {
			if inTx {
				out = pgwire.AppendErrorResponse(out, "ERROR", "25P02", "current transaction is aborted, commands ignored until end of transaction block")
			} else {
				out = pgwire.AppendErrorResponse(out, "ERROR", "08006", msg)
			}
		}
		out = pgwire.AppendReadyForQuery(out, status)
	}
	// With a partial batch and no ReadyForQuery awaited yet, skipToSync
	// (set above) answers the client's Sync.
	s.writeClient(out, true)
}

func (s *session) pinnedReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.pinned)
}

// reportParams queues a ParameterStatus for the client for each of params
// (name, value; the last of a name wins) whose value differs from what the
// client was last told. Called with s.mu held; the relay writes extraOut.
func (s *session) reportParams(params [][2]string) {
	for i, p := range params {
		last := true
		for _, q := range params[i+1:] {
			if q[0] == p[0] {
				last = false
				break
			}
		}
		if last && s.reported[p[0]] != p[1] {
			s.reported[p[0]] = p[1]
			s.extraOut = pgwire.AppendParameterStatus(s.extraOut, p[0], p[1])
		}
	}
}

// lostMessage is the start of the error a client gets when bc is lost.
func lostMessage(bc *bconn) string {
	msg := fmt.Sprintf("connection to backend %s lost", bc.addr)
	if bc.fatal != "" {
		msg += " (" + bc.fatal + ")"
	}
	return msg
}
