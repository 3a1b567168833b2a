package mysql

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/internal/mysqlwire"
	"github.com/sluicedb/sluice/router"
)

// serverVersion is the version clients see. It names MySQL 8.0 so that
// clients use the 4.1+ protocol features Sluice implements.
const serverVersion = "8.0.99-sluice"

// serverCaps are the capabilities Sluice implements towards clients.
// ClientMySQL is set, so no MariaDB extended capability is negotiated
// (no CACHE_METADATA, progress reports, COM_MULTI or bulk execution); no
// compression, query attributes, session tracking, optional metadata or
// LOCAL INFILE.
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
	sess.br = bufio.NewReaderSize(c, 16<<10)
	sess.cr = mysqlwire.NewPacketReader(sess.br)
	sess.cr.SetMaxPayload(o.MaxMessageSize)
	sess.cw = bufio.NewWriterSize(c, 16<<10)
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
	pw, known := o.Password(resp.Username)
	authResp := resp.AuthResponse
	plugin := resp.AuthPluginName
	if sess.caps&mysqlwire.ClientPluginAuth == 0 {
		plugin = mysqlwire.AuthNativePassword
	}
	if plugin != o.Auth {
		// Switch the client to our plugin (with a fresh scramble).
		if scramble, err = mysqlwire.NewScramble(); err != nil {
			return nil, err
		}
		plugin = o.Auth
		sess.writePacket(next, mysqlwire.AppendAuthSwitchRequest(nil, plugin, scramble))
		if err := sess.flush(); err != nil {
			return nil, err
		}
		seq, payload, err = sess.cr.ReadPacket()
		if err != nil {
			return nil, err
		}
		authResp = append([]byte(nil), payload...)
		next = seq + 1
	}
	good := false
	switch plugin {
	case mysqlwire.AuthNativePassword:
		good = known && checkNative(scramble, authResp, pw)
	case mysqlwire.AuthCachingSHA2Password:
		switch {
		case known && pw == "" && len(authResp) == 0:
			good = true
		case known && len(authResp) == 32 && mysqlwire.CheckCachingSHA2(scramble, authResp, []byte(pw)):
			// Fast path: tell the client, the OK follows.
			sess.writePacket(next, mysqlwire.AppendAuthMoreData(nil, []byte{mysqlwire.CachingSHA2FastAuthSuccess}))
			next++
			good = true
		case onTLS:
			// Full authentication: the password in clear over TLS.
			sess.writePacket(next, mysqlwire.AppendAuthMoreData(nil, []byte{mysqlwire.CachingSHA2PerformFullAuth}))
			if err := sess.flush(); err != nil {
				return nil, err
			}
			seq, payload, err = sess.cr.ReadPacket()
			if err != nil {
				return nil, err
			}
			next = seq + 1
			clear := payload
			if n := len(clear); n > 0 && clear[n-1] == 0 {
				clear = clear[:n-1]
			}
			good = known && subtle.ConstantTimeCompare(clear, []byte(pw)) == 1
		}
	}
	if !good {
		o.Metrics.AuthFailures.WithLabelValues(o.Name, admin.AuthReasonPassword).Inc()
		time.Sleep(o.AuthFailureDelay)
		usingPw := "YES"
		if len(authResp) == 0 {
			usingPw = "NO"
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		e := mysqlwire.NewERR(mysqlwire.ERAccessDeniedError, fmt.Sprintf("Access denied for user '%s'@'%s' (using password: %s)", resp.Username, host, usingPw))
		sess.writePacket(next, mysqlwire.AppendERR(nil, e, mysqlwire.ClientProtocol41))
		sess.flush()
		return nil, errAuthFailed
	}
	sess.mu.Lock()
	sess.password = pw
	sess.mu.Unlock()
	// Connect to the home backend so that an unknown database or a
	// refused login is reported now.
	ctx, cancel := context.WithTimeout(context.Background(), o.ConnectTimeout)
	if o.Route == router.RouteReader {
		_, err = sess.readerConn(ctx)
	} else {
		_, err = sess.writerConn(ctx)
	}
	cancel()
	if err != nil {
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
		sess.writePacket(next, mysqlwire.AppendERR(nil, e, mysqlwire.ClientProtocol41))
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
	c.SetDeadline(time.Time{})
	ok = true
	return sess, nil
}

func checkNative(scramble, resp []byte, pw string) bool {
	if pw == "" {
		return len(resp) == 0
	}
	return len(resp) == 20 && mysqlwire.CheckNativePassword(scramble, resp, []byte(pw))
}
