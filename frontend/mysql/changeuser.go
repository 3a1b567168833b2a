package mysql

import (
	"time"

	"github.com/sluicedb/sluice/internal/mysqlwire"
)

// changeUser serves COM_CHANGE_USER: the client logs in again as another
// (or the same) user, with the scramble of its handshake; a client that
// used another plugin than the listener's is switched to it. A failed
// login is answered with ERR 1045 and, as MySQL does, ends the session.
// On success every backend connection of the session goes back to its
// pool reset, or is closed if it was in a transaction (which rolls it
// back) or pinned, the session state (SET statements,
// prepared statements, pins, transaction status) is forgotten, and the
// home backend is connected to again with the new credentials and
// database before the OK.
func (s *session) changeUser(p []byte) bool {
	o := &s.srv.opts
	cu, err := mysqlwire.ParseChangeUser(p, s.caps)
	if err != nil {
		o.Metrics.ProtocolErrors.WithLabelValues(o.Name, "malformed").Inc()
		s.sendERR(1, mysqlwire.ERHandshakeError, "Malformed COM_CHANGE_USER")
		return false
	}
	plugin := cu.AuthPluginName
	if s.caps&mysqlwire.ClientPluginAuth == 0 || plugin == "" {
		plugin = mysqlwire.AuthNativePassword
	}
	// The exchange may wait for the client (auth switch, full
	// authentication): bound it as the startup is.
	s.conn.SetReadDeadline(time.Now().Add(o.StartupTimeout))
	defer s.conn.SetReadDeadline(time.Time{})
	pw, good, next, err := s.authenticate(1, cu.User, plugin, cu.AuthResponse)
	if err != nil || !good {
		return false // the ERR, if any, is flushed by run
	}
	s.dropBackends()
	s.mu.Lock()
	s.user, s.password = cu.User, pw
	s.mu.Unlock()
	s.database = cu.Database
	s.homeDB, s.homeDBSet = "", false // the next checkout learns it
	s.txNext = false
	if cu.CharacterSet != 0 && cu.CharacterSet < 256 {
		s.charset = byte(cu.CharacterSet)
	}
	s.sets, s.setsKey, s.lastInsertID = nil, "", 0
	s.stmts = make(map[uint32]*stmt)
	s.cursor, s.up = nil, nil
	s.setPin("", nil)
	s.cur = nil
	s.status = mysqlwire.ServerStatusAutocommit
	// A pending read-your-writes capture falls back to the writer's whole
	// binlog position: the connection that wrote is gone.
	s.captureOn = nil
	if err := s.connectHome(next); err != nil {
		return false
	}
	s.writePacket(next, mysqlwire.AppendOK(nil, mysqlwire.OKPacket{Status: s.status}, s.caps))
	return true
}

// dropBackends gives every backend connection of the session back to its
// pool, reset, or closes it (see giveBack). Owned by the session
// goroutine.
func (s *session) dropBackends() {
	s.mu.Lock()
	conns := make([]*bconn, 0, len(s.conns))
	for _, bc := range s.conns {
		if !bc.released {
			bc.released = true
			conns = append(conns, bc)
		}
	}
	s.conns = make(map[int]*bconn)
	s.mu.Unlock()
	for _, bc := range conns {
		s.giveBack(bc, true)
	}
}
