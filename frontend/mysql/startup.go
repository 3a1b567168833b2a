package mysql

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/frontend/serve"
	"github.com/sluicedb/sluice/internal/bufpool"
	"github.com/sluicedb/sluice/internal/mysqlwire"
	"github.com/sluicedb/sluice/router"
)

// serverVersion is the version clients see. It names MySQL 8.0 so that
// clients use the 4.1+ protocol features Sluice implements.
const serverVersion = "8.0.99-sluice"

// serverCaps are the capabilities Sluice implements towards clients.
// ClientMySQL is set, so no MariaDB extended capability is negotiated
// (no CACHE_METADATA, progress reports, COM_MULTI or bulk execution); no
// compression, query attributes, session tracking or optional metadata.
// CLIENT_LOCAL_FILES is added when the listener enables LOCAL INFILE.
const serverCaps = mysqlwire.ClientMySQL | mysqlwire.ClientFoundRows | mysqlwire.ClientLongFlag |
	mysqlwire.ClientConnectWithDB | mysqlwire.ClientProtocol41 | mysqlwire.ClientInteractive |
	mysqlwire.ClientTransactions | mysqlwire.ClientSecureConnection | mysqlwire.ClientMultiStatements |
	mysqlwire.ClientMultiResults | mysqlwire.ClientPSMultiResults | mysqlwire.ClientPluginAuth |
	mysqlwire.ClientConnectAttrs | mysqlwire.ClientPluginAuthLenencClientData |
	mysqlwire.ClientDeprecateEOF | mysqlwire.ClientIgnoreSpace

var errAuthFailed = errors.New("authentication failed")

// startup runs the connection phase and returns the logged-in session.
func (s *Server) startup(c net.Conn) (*session, error) {
	o := &s.opts
	c.SetDeadline(time.Now().Add(o.StartupTimeout))
	sess := &session{srv: s, stmts: make(map[uint32]*stmt), conns: make(map[int]*bconn), readerIdx: -1}
	sess.killDone = sync.NewCond(&sess.mu)
	sess.ctx, sess.stop = context.WithCancel(context.Background())
	sess.id = o.ConnIDs.register(sess)
	ok := false
	defer func() {
		if !ok {
			o.ConnIDs.unregister(sess.id)
		}
	}()
	scramble, err := mysqlwire.NewScramble()
	if err != nil {
		return nil, err
	}
	caps := serverCaps
	if o.TLS != nil {
		caps |= mysqlwire.ClientSSL
	}
	if o.LocalInfile {
		caps |= mysqlwire.ClientLocalFiles
	}
	hs := mysqlwire.Handshake{
		ServerVersion:  serverVersion,
		ConnectionID:   sess.id,
		AuthPluginData: scramble,
		Capabilities:   caps,
		CharacterSet:   byte(mysqlwire.CollationUTF8MB4GeneralCI),
		StatusFlags:    mysqlwire.ServerStatusAutocommit,
		AuthPluginName: o.Auth,
	}
	raw, _ := mysqlwire.AppendPacket(nil, 0, hs.Append(nil))
	if _, err := c.Write(raw); err != nil {
		return nil, err
	}
	seq, payload, err := mysqlwire.ReadPacketUnbuffered(c, 64<<10)
	if err != nil {
		return nil, err
	}
	onTLS := false
	if mysqlwire.IsSSLRequest(payload) {
		if o.TLS == nil {
			return nil, errors.New("SSLRequest without TLS configured")
		}
		tc := tls.Server(c, o.TLS)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		c = tc
		onTLS = true
		seq, payload, err = mysqlwire.ReadPacketUnbuffered(c, 64<<10)
		if err != nil {
			return nil, err
		}
	}
	sess.conn = c
	sess.cr = mysqlwire.NewConnPacketReader(c, s.readBufs)
	sess.cr.SetMaxPayload(o.MaxMessageSize)
	sess.cw = bufpool.NewWriter(c, s.writeBufs)
	resp, err := mysqlwire.ParseHandshakeResponse(payload)
	if err != nil {
		sess.writePacket(seq+1, mysqlwire.AppendERR(nil, mysqlwire.NewERR(mysqlwire.ERHandshakeError, "Bad handshake"), mysqlwire.ClientProtocol41))
		sess.flush()
		return nil, err
	}
	sess.caps = resp.Capabilities & caps & 0xffffffff
	sess.charset = resp.CharacterSet
	sess.mu.Lock()
	sess.user = resp.Username
	sess.mu.Unlock()
	sess.database = resp.Database
	next := seq + 1
	sess.onTLS = onTLS
	sess.scrambles = [][]byte{scramble}
	plugin := resp.AuthPluginName
	if sess.caps&mysqlwire.ClientPluginAuth == 0 {
		plugin = mysqlwire.AuthNativePassword
	}
	pw, good, next, err := sess.authenticate(next, resp.Username, plugin, resp.AuthResponse)
	if err != nil {
		return nil, err
	}
	if !good {
		sess.flush()
		return nil, errAuthFailed
	}
	release, err := o.Cluster.AdmitClient(resp.Username)
	if err != nil {
		sess.writePacket(next, mysqlwire.AppendERR(nil, mysqlwire.NewERR(mysqlwire.ERConCountError, "Too many connections: "+err.Error()), sess.caps))
		sess.flush()
		return nil, serve.ErrHandled
	}
	sess.mu.Lock()
	sess.password = pw
	sess.unadmit = release
	sess.mu.Unlock()
	if err := sess.connectHome(next); err != nil {
		sess.flush()
		sess.closeBackends()
		return nil, err
	}
	sess.status = mysqlwire.ServerStatusAutocommit
	sess.writePacket(next, mysqlwire.AppendOK(nil, mysqlwire.OKPacket{Status: sess.status}, sess.caps))
	if err := sess.flush(); err != nil {
		sess.closeBackends()
		return nil, err
	}
	sess.releaseIdle() // transaction pooling: the login's connection goes back
	c.SetDeadline(time.Time{})
	ok = true
	return sess, nil
}

// authenticate checks a login (at startup or COM_CHANGE_USER) of user,
// whose client answered the session's scramble(s) with authResp computed
// by plugin. A client that used another plugin than the listener's is
// switched to it with a fresh scramble first. next is the sequence number
// of the server's next packet; the returned one is that of the final OK or
// ERR. On a failed login the ERR (1045) is written (not flushed) after the
// failure delay, and good is false. err reports client I/O failures.
func (s *session) authenticate(next byte, user, plugin string, authResp []byte) (pw string, good bool, seq byte, err error) {
	o := &s.srv.opts
	pw, known := o.Password(user)
	scrambles := s.scrambles
	if plugin != o.Auth {
		// Switch the client to our plugin (with a fresh scramble).
		scramble, err := mysqlwire.NewScramble()
		if err != nil {
			return "", false, 0, err
		}
		plugin = o.Auth
		s.writePacket(next, mysqlwire.AppendAuthSwitchRequest(nil, plugin, scramble))
		if err := s.flush(); err != nil {
			return "", false, 0, err
		}
		rseq, payload, err := s.cr.ReadPacket()
		if err != nil {
			return "", false, 0, err
		}
		authResp = append([]byte(nil), payload...)
		next = rseq + 1
		scrambles = [][]byte{scramble}
		// Clients compute a later COM_CHANGE_USER's answer with either the
		// handshake's scramble or the switch's: accept both.
		s.scrambles = append(s.scrambles[:1:1], scramble)
	}
	switch plugin {
	case mysqlwire.AuthNativePassword:
		for _, sc := range scrambles {
			good = good || known && checkNative(sc, authResp, pw)
		}
	case mysqlwire.AuthCachingSHA2Password:
		fast := false
		for _, sc := range scrambles {
			fast = fast || known && len(authResp) == 32 && mysqlwire.CheckCachingSHA2(sc, authResp, []byte(pw))
		}
		switch {
		case known && pw == "" && len(authResp) == 0:
			good = true
		case fast:
			// Fast path: tell the client, the OK follows.
			s.writePacket(next, mysqlwire.AppendAuthMoreData(nil, []byte{mysqlwire.CachingSHA2FastAuthSuccess}))
			next++
			good = true
		case s.onTLS || s.srv.pubKeyPEM != nil:
			// Full authentication (the scramble did not match; unknown
			// users too, so that they cannot be told apart): the password
			// in clear over TLS, else RSA-encrypted with our key.
			s.writePacket(next, mysqlwire.AppendAuthMoreData(nil, []byte{mysqlwire.CachingSHA2PerformFullAuth}))
			if err := s.flush(); err != nil {
				return "", false, 0, err
			}
			clear, rseq, err := s.readFullAuth(scrambles)
			if err != nil {
				return "", false, 0, err
			}
			next = rseq + 1
			good = known && clear != nil && subtle.ConstantTimeCompare(clear, []byte(pw)) == 1
		}
	}
	if !good {
		o.Metrics.AuthFailures.WithLabelValues(o.Name, admin.AuthReasonPassword).Inc()
		time.Sleep(o.AuthFailureDelay)
		usingPw := "YES"
		if len(authResp) == 0 {
			usingPw = "NO"
		}
		host, _, _ := net.SplitHostPort(s.conn.RemoteAddr().String())
		e := mysqlwire.NewERR(mysqlwire.ERAccessDeniedError, fmt.Sprintf("Access denied for user '%s'@'%s' (using password: %s)", user, host, usingPw))
		s.writePacket(next, mysqlwire.AppendERR(nil, e, mysqlwire.ClientProtocol41))
		return "", false, next, nil
	}
	return pw, true, next, nil
}

// readFullAuth reads a caching_sha2_password client's answer to
// PerformFullAuth and returns the password it sent (nil when it cannot be
// recovered, which fails the login) and the sequence number of the last
// packet read. Over TLS the password comes in clear. Without TLS the client
// either asks for our public key first (0x02, answered with AuthMoreData
// holding the PEM key) or already has it, and sends the NUL-terminated
// password XOR the scramble, RSA-OAEP encrypted; a password in clear over a
// plain connection is never accepted. Only client I/O failures are errors.
func (s *session) readFullAuth(scrambles [][]byte) (clear []byte, seq byte, err error) {
	seq, payload, err := s.cr.ReadPacket()
	if err != nil {
		return nil, 0, err
	}
	if s.onTLS {
		clear = bytes.Clone(payload)
		if n := len(clear); n > 0 && clear[n-1] == 0 {
			clear = clear[:n-1]
		}
		return clear, seq, nil
	}
	key := s.srv.opts.RSAKey
	if len(payload) == 1 && payload[0] == mysqlwire.CachingSHA2RequestPublicKey {
		s.writePacket(seq+1, mysqlwire.AppendAuthMoreData(nil, s.srv.pubKeyPEM))
		if err := s.flush(); err != nil {
			return nil, 0, err
		}
		if seq, payload, err = s.cr.ReadPacket(); err != nil {
			return nil, 0, err
		}
	}
	if len(payload) != key.Size() {
		return nil, seq, nil // not a ciphertext for our key (maybe clear text)
	}
	for _, sc := range scrambles {
		if pw, err := mysqlwire.DecryptPasswordRSA(key, payload, sc); err == nil {
			return pw, seq, nil
		}
	}
	return nil, seq, nil
}

// connectHome connects to the listener's home backend (the writer, or a
// replica for reader listeners) after a login, so that an unknown database
// or a login the backend refuses is reported now: the ERR (with sequence
// number next) is written, not flushed.
func (s *session) connectHome(next byte) error {
	o := &s.srv.opts
	var err error
	if o.Route == router.RouteReader {
		_, err = s.readerConn()
	} else {
		_, err = s.writerConn()
	}
	if err == nil {
		return nil
	}
	e := mysqlwire.NewERR(mysqlwire.ERUnknownError, err.Error())
	if me, isMy := backends.AsMySQLError(err); isMy {
		e = *me
	}
	if e.Code == mysqlwire.ERAccessDeniedError || e.Code == mysqlwire.ERBadDBError {
		reason := admin.AuthReasonPassword
		if e.Code == mysqlwire.ERBadDBError {
			reason = admin.AuthReasonUnknownDatabase
		}
		o.Metrics.AuthFailures.WithLabelValues(o.Name, reason).Inc()
		time.Sleep(o.AuthFailureDelay)
	}
	s.writePacket(next, mysqlwire.AppendERR(nil, e, mysqlwire.ClientProtocol41))
	return err
}

func checkNative(scramble, resp []byte, pw string) bool {
	if pw == "" {
		return len(resp) == 0
	}
	return len(resp) == 20 && mysqlwire.CheckNativePassword(scramble, resp, []byte(pw))
}
