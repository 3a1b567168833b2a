package pg

import (
	"github.com/sluicedb/sluice/internal/pgwire"
	"github.com/sluicedb/sluice/router"
)

// A client whose open transaction died with its backend (the writer failed,
// or was fenced after a failover) is kept in a failed transaction, as
// PostgreSQL keeps one after an error: everything it sends is refused
// until it ends the transaction with ROLLBACK (or COMMIT, which reports
// ROLLBACK). Then the session carries on, on whatever backend the next
// statement is routed to.

// clientStatusLocked is the transaction status the client must see in
// ReadyForQuery messages the proxy writes itself.
func (s *session) clientStatusLocked() byte {
	if s.txLost != "" {
		return 'E'
	}
	return s.txStatus
}

// answerLost answers the held-back batch (ending in Query or Sync) of a
// session whose transaction was lost, without any backend.
func (s *session) answerLost() {
	cls := s.classifyBatch()
	end := cls.Statements == 1 && (cls.Tx == router.TxCommit || cls.Tx == router.TxRollback)
	var out []byte
	if end {
		for _, it := range s.items {
			body := s.batch[it.start+pgwire.HeaderLen : it.end]
			switch it.typ {
			case pgwire.MsgQuery, pgwire.MsgExecute:
				out = pgwire.AppendCommandComplete(out, "ROLLBACK")
			case pgwire.MsgParse:
				// Prepared when first used, on whichever backend.
				name, q, _ := pgwire.ParseParse(body)
				s.recordParse(name, q, s.batch[it.start:it.end], &it.cls)
				out = pgwire.AppendEmpty(out, pgwire.MsgParseComplete)
			case pgwire.MsgBind:
				out = pgwire.AppendEmpty(out, pgwire.MsgBindComplete)
			case pgwire.MsgDescribe:
				if kind, _, _ := pgwire.ParseTarget(body); kind == 'S' {
					out = pgwire.AppendNoParams(out)
				}
				out = pgwire.AppendEmpty(out, pgwire.MsgNoData)
			case pgwire.MsgClose:
				out = pgwire.AppendEmpty(out, pgwire.MsgCloseComplete)
			}
		}
		out = pgwire.AppendReadyForQuery(out, 'I')
		s.mu.Lock()
		s.txLost, s.txLostSent = "", false
		s.mu.Unlock()
	} else {
		if s.batchHasStatement() {
			out = s.appendLostError(out)
		}
		out = pgwire.AppendReadyForQuery(out, 'E')
	}
	s.resetBatch()
	s.writeClient(out, true)
}

// refuseLost answers a Flush of an unfinished batch in a lost transaction:
// the error now, and the ReadyForQuery at the client's Sync.
func (s *session) refuseLost() {
	out := s.appendLostError(nil)
	s.resetBatch()
	s.mu.Lock()
	s.skipToSync = true
	s.mu.Unlock()
	s.writeClient(out, true)
}

// appendLostError appends the error a statement of a lost transaction
// gets: the loss itself the first time, then 25P02 as PostgreSQL answers
// in a failed transaction.
func (s *session) appendLostError(out []byte) []byte {
	s.mu.Lock()
	code, msg := "25P02", "current transaction is aborted, commands ignored until end of transaction block"
	if !s.txLostSent {
		code, msg = "08006", s.txLost
		s.txLostSent = true
	}
	s.mu.Unlock()
	return pgwire.AppendErrorResponse(out, "ERROR", code, msg)
}

// batchHasStatement reports whether the held-back batch holds anything but
// Sync and Flush (a lone Sync gets just ReadyForQuery, as from PostgreSQL).
func (s *session) batchHasStatement() bool {
	for _, it := range s.items {
		if it.typ != pgwire.MsgSync && it.typ != pgwire.MsgFlush {
			return true
		}
	}
	return false
}

// fenced reports whether bc, a connection to the writer, was confirmed
// under an older topology epoch and its backend is no longer the writer:
// it must not take another statement.
func (s *session) fenced(bc *bconn) bool {
	return bc.target == router.TargetWriter && s.srv.opts.Cluster.Fenced(bc.addr, &bc.epoch)
}
