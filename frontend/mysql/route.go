package mysql

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/internal/ascii"
	"github.com/sluicedb/sluice/internal/mysqlwire"
	"github.com/sluicedb/sluice/router"
	"github.com/sluicedb/sluice/topology"
)

// pick chooses the backend connection for a command of class cls.
func (s *session) pick(cls router.Class) (*bconn, error) {
	o := &s.srv.opts
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil, errClosing
	}
	if cur := s.cur; cur != nil && !cur.dead && (s.inTx() || s.txNext) {
		if s.fenced(cur) {
			// The transaction runs on a writer the fleet has replaced.
			s.lost(cur)
			return nil, errFenced
		}
		return cur, nil
	}
	if p := s.pinnedTo; p != nil && !p.dead {
		if s.fenced(p) {
			s.mu.Lock()
			s.closing = true
			s.mu.Unlock()
			return nil, fmt.Errorf("the writer changed (failover): %s is no longer the writer and the session state (%s) held there cannot be moved", p.addr, s.pinned)
		}
		return p, nil
	}
	st := router.State{Pinned: s.pinned != "" || cls.Pin != ""}
	t := router.Decide(o.Route, cls, st)
	if t == router.TargetWriter {
		return s.writerConn()
	}
	return s.readerConn()
}

// writerConn returns the session's connection to the current writer;
// while there is none, or it does not answer, it waits up to the writer
// hold (see backends.Cluster.ConnectWriter).
func (s *session) writerConn() (*bconn, error) {
	var bc *bconn
	err := s.srv.opts.Cluster.ConnectWriter(s.ctx, s.srv.opts.WriterHold, func(epoch uint64, idx int, b topology.Backend) error {
		c, err := s.connTo(idx, b, router.TargetWriter)
		if err == nil {
			c.epoch, bc = epoch, c
		}
		return err
	}, func(err error) bool { _, refused := backends.AsMySQLError(err); return refused })
	return bc, err
}

// fenced reports whether bc, a connection to the writer, was confirmed
// under an older topology epoch and its backend is no longer the writer:
// it must not take another statement.
func (s *session) fenced(bc *bconn) bool {
	return bc.target == router.TargetWriter && s.srv.opts.Cluster.Fenced(bc.addr, &bc.epoch)
}

// readerConn returns a connection to a replica that may serve the
// session's next read (with read-your-writes: one that has replayed the
// session's last write), else the writer if allowed.
func (s *session) readerConn() (*bconn, error) {
	o := &s.srv.opts
	cl := o.Cluster
	var minPos uint64
	if o.ReadYourWrites && o.Route == router.RouteAuto {
		if s.needCapture {
			if err := s.capture(); err != nil {
				// The write's position is unknown: the writer serves the read.
				s.srv.rywFallbacks.Inc()
				return s.writerConn()
			}
		}
		minPos = s.lastWritePos
	}
	var bc *bconn
	idx, behind, err := cl.ChooseReader(s.readerIdx, minPos, func(i int, b topology.Backend) error {
		var err error
		bc, err = s.connTo(i, b, router.TargetReader)
		return err
	}, func(err error) bool { _, ok := backends.AsMySQLError(err); return ok })
	if err != nil {
		return nil, err // the server refused us (unknown database, access): say so
	}
	if idx >= 0 {
		s.readerIdx = idx
		return bc, nil
	}
	if behind {
		s.srv.rywFallbacks.Inc()
		return s.writerConn()
	}
	if o.FallbackToWriter {
		return s.writerConn()
	}
	return nil, errNoReader
}

// connTo returns the session's connection to backend idx, dialing one if
// the session has none (or one to another address).
func (s *session) connTo(idx int, b topology.Backend, t router.Target) (*bconn, error) {
	s.mu.Lock()
	bc := s.conns[idx]
	s.mu.Unlock()
	if bc == nil || bc.dead || bc.addr != b.Addr {
		// Waiting for a free connection of a full pool is bounded by the
		// pool's checkout_timeout alone; connect_timeout bounds only a dial
		// (DialMySQL's own Timeout).
		var err error
		s.mu.Lock()
		s.checkingOut = true
		s.mu.Unlock()
		bc, err = s.dial(s.ctx, idx, b.Addr)
		s.mu.Lock()
		s.checkingOut = false
		drain := s.drain
		s.mu.Unlock()
		if s.ctx.Err() != nil {
			// Closed while waiting (the proxy shuts down, or the session
			// was killed; also just after the checkout succeeded: bc is
			// given back with the session's others): say so, as a server
			// would; the session ends after this command.
			e := mysqlwire.NewERR(mysqlwire.ERConnectionKilled, "Connection was killed")
			if drain {
				e = mysqlwire.NewERR(mysqlwire.ERServerShutdown, "Server shutdown in progress")
			}
			return nil, &e
		}
		if err != nil {
			return nil, err
		}
	}
	bc.target = t
	return bc, nil
}

// dial takes a pooled connection to addr for this session (as backend
// idx) and selects the session's database there, so that an unknown
// database or a refused login is reported now.
func (s *session) dial(ctx context.Context, idx int, addr string) (*bconn, error) {
	cl := s.srv.opts.Cluster
	c, up, err := s.checkout(ctx, addr)
	if err != nil {
		return nil, err
	}
	s.up = up
	sc := c.Value()
	bc := &bconn{idx: idx, addr: addr, mc: sc.mc, sc: sc, pc: c, up: up, status: mysqlwire.ServerStatusAutocommit}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		up.p.Put(c)
		return nil, errClosing
	}
	old := s.conns[idx]
	s.conns[idx] = bc
	s.mu.Unlock()
	if old != nil {
		s.retire(old)
	}
	cl.Acquire(idx)
	if s.database != "" && sc.db != s.database {
		if err := s.exec(bc, append([]byte{mysqlwire.ComInitDB}, s.database...)); err != nil {
			if !bc.dead {
				s.mu.Lock()
				delete(s.conns, idx)
				bc.released = true
				s.mu.Unlock()
				s.giveBack(bc, false)
			}
			return nil, err
		}
		sc.db = s.database
	}
	return bc, nil
}

// retire drops a replaced backend connection.
func (s *session) retire(bc *bconn) {
	s.lost(bc)
	s.mu.Lock()
	release := !bc.released
	bc.released = true
	s.mu.Unlock()
	if release {
		s.release(bc)
	}
}

// release counts bc, which is dead, out of the cluster's sessions on its
// backend and frees its place in the pool.
func (s *session) release(bc *bconn) {
	s.srv.opts.Cluster.Release(bc.idx)
	if !bc.returned {
		bc.returned = true
		bc.up.p.Discard(bc.pc)
	}
}

// afterStatement keeps track of SET TRANSACTION without GLOBAL or SESSION
// (the characteristics of the next transaction only) after the statement
// (or statements) q ran on bc: the session keeps its connection (pick,
// releaseIdle) until a transaction has started there, whose end (COMMIT,
// ROLLBACK) forgets the characteristics. Whether a statement outside a
// transaction used them up cannot be told (MariaDB forgets them only after
// a statement that touched a transactional table, not after SELECT 1 or a
// statement refused as read-only), so until then the connection stays with
// the session, and is closed if the session ends first (giveBack).
func (s *session) afterStatement(bc *bconn, q string) {
	switch {
	case bc.dead:
		s.txNext = false
	case s.inTx():
		s.txNext = false
	case setsNextTransaction(q):
		s.txNext = true
	}
}

// setsNextTransaction reports whether q may contain SET TRANSACTION
// without a GLOBAL or SESSION scope. It errs on the side of yes (a
// statement split at a ';' inside a string or comment).
func setsNextTransaction(q string) bool {
	if !ascii.ContainsFold(q, "transaction") {
		return false
	}
	for _, part := range strings.Split(q, ";") {
		f := strings.Fields(part)
		for len(f) > 0 && strings.HasPrefix(f[0], "/*") {
			// A leading comment (a hint): skip it.
			i := 0
			for i < len(f) && !strings.HasSuffix(f[i], "*/") {
				i++
			}
			f = f[min(i+1, len(f)):]
		}
		if len(f) >= 2 && strings.EqualFold(f[0], "SET") && strings.EqualFold(f[1], "TRANSACTION") {
			return true
		}
	}
	return false
}
