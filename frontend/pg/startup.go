package pg

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/sluicedb/sluice/frontend/serve"
	"github.com/sluicedb/sluice/internal/pgwire"
)

// prefixConn replays bytes already read from a connection before reading
// from it again (used for the first byte of a direct TLS handshake).
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// startup negotiates TLS, reads the StartupMessage, authenticates the client
// and connects its first backend. It returns nil, nil for a served
// CancelRequest.
func (s *Server) startup(raw net.Conn) (*session, error) {
	deadline := time.Now().Add(s.opts.StartupTimeout)
	raw.SetDeadline(deadline)
	conn := raw
	isTLS := false

	var first [1]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		return nil, err
	}
	if first[0] == 0x16 { // a TLS ClientHello: PostgreSQL 17 sslnegotiation=direct
		if s.opts.TLS == nil {
			return nil, fmt.Errorf("direct TLS attempted but the listener has no TLS")
		}
		tc, err := s.handshake(&prefixConn{Conn: conn, prefix: first[:]}, true)
		if err != nil {
			return nil, err
		}
		conn, isTLS = tc, true
		first[0] = 0
		if _, err := io.ReadFull(conn, first[:]); err != nil {
			return nil, err
		}
	}
	var lenWord [4]byte
	lenWord[0] = first[0]
	for {
		if _, err := io.ReadFull(conn, lenWord[1:]); err != nil {
			return nil, err
		}
		pkt, err := pgwire.ReadStartupRest(conn, lenWord)
		if err != nil {
			s.protocolError(conn, "malformed", err.Error())
			return nil, serve.ErrHandled
		}
		st, err := pgwire.ParseStartup(pkt)
		if err != nil {
			s.protocolError(conn, "malformed", err.Error())
			return nil, serve.ErrHandled
		}
		switch {
		case st.Code == pgwire.SSLRequestCode:
			if isTLS {
				s.protocolError(conn, "malformed", "SSLRequest received twice")
				return nil, serve.ErrHandled
			}
			if s.opts.TLS == nil {
				if _, err := conn.Write([]byte{'N'}); err != nil {
					return nil, err
				}
			} else {
				if _, err := conn.Write([]byte{'S'}); err != nil {
					return nil, err
				}
				tc, err := s.handshake(conn, false)
				if err != nil {
					return nil, err
				}
				conn, isTLS = tc, true
			}
		case st.Code == pgwire.GSSENCRequestCode:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case st.Code == pgwire.CancelRequestCode:
			s.serveCancel(st.CancelPID, st.CancelKey)
			return nil, nil
		case st.Code>>16 == 3:
			return s.login(raw, conn, isTLS, st, deadline)
		default:
			s.protocolError(conn, "malformed", fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0", st.Code>>16, st.Code&0xffff))
			return nil, serve.ErrHandled
		}
		if _, err := io.ReadFull(conn, lenWord[:1]); err != nil {
			return nil, err
		}
	}
}

func (s *Server) handshake(c net.Conn, direct bool) (net.Conn, error) {
	cfg := s.opts.TLS
	if direct {
		// Direct TLS requires ALPN "postgresql" (PostgreSQL 17).
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"postgresql"}
	}
	tc := tls.Server(c, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	if direct && tc.ConnectionState().NegotiatedProtocol != "postgresql" {
		return nil, fmt.Errorf("direct TLS without ALPN postgresql")
	}
	return tc, nil
}

// protocolError answers a broken startup with a FATAL 08P01 and counts it.
func (s *Server) protocolError(c net.Conn, kind, msg string) {
	s.opts.Metrics.ProtocolErrors.WithLabelValues(s.opts.Name, kind).Inc()
	c.Write(pgwire.AppendErrorResponse(nil, "FATAL", "08P01", msg))
}

// fatal answers the client with a FATAL error during startup.
func fatal(c net.Conn, code, msg string) error {
	_, err := c.Write(pgwire.AppendErrorResponse(nil, "FATAL", code, msg))
	return err
}

// login handles a StartupMessage: protocol negotiation, authentication, the
// first backend connection, and the messages that end the startup phase.
func (s *Server) login(raw, conn net.Conn, isTLS bool, st *pgwire.Startup, deadline time.Time) (*session, error) {
	// Read without a buffer of the connection's own while the client is
	// silent, from the login on (startup messages are small).
	rd := pgwire.NewConnReader(conn, s.bufs, 16<<10)
	var sess *session
	defer func() {
		if sess == nil {
			rd.Release() // the login failed: give its buffers back
		}
	}()
	var out []byte

	// Protocol 3.x minor versions above 0 and _pq_ options: tell the client
	// what we speak (NegotiateProtocolVersion), as PostgreSQL does.
	var unknown []string
	params := make(map[string]string, len(st.Params))
	for _, p := range st.Params {
		if strings.HasPrefix(p.Name, "_pq_.") {
			unknown = append(unknown, p.Name)
			continue
		}
		params[p.Name] = p.Value
	}
	if st.Code&0xffff != 0 || len(unknown) > 0 {
		out = appendNegotiateProtocolVersion(out, 0, unknown)
	}
	user := params["user"]
	if user == "" {
		fatal(conn, "28000", "no PostgreSQL user name specified in startup packet")
		return nil, serve.ErrHandled
	}
	if _, ok := params["replication"]; ok && params["replication"] != "false" && params["replication"] != "off" && params["replication"] != "0" {
		fatal(conn, "0A000", "replication connections are not supported by sluice")
		return nil, serve.ErrHandled
	}
	database := params["database"]
	if database == "" {
		database = user
	}
	if len(out) > 0 {
		if _, err := conn.Write(out); err != nil {
			return nil, err
		}
		out = out[:0]
	}

	password, known := s.opts.Password(user)
	ok, err := s.authenticate(conn, rd, isTLS, user, password, known)
	if err != nil {
		return nil, err
	}
	if !ok {
		s.opts.Metrics.AuthFailures.WithLabelValues(s.opts.Name, "password").Inc()
		time.Sleep(s.opts.AuthFailureDelay)
		fatal(conn, "28P01", fmt.Sprintf("password authentication failed for user %q", user))
		return nil, serve.ErrHandled
	}

	up, err := s.opts.Pools.forUser(user)
	if err != nil {
		fatal(conn, "57P03", err.Error())
		return nil, serve.ErrHandled
	}
	release, err := s.opts.Cluster.AdmitClient(user)
	if err != nil {
		fatal(conn, "53300", "sorry, too many clients already: "+err.Error())
		return nil, serve.ErrHandled
	}
	rd.SetMaxMessageSize(s.opts.MaxMessageSize)
	sess = newSession(s, up, conn, rd, user, database, password, params)
	sess.release = release
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	home, err := sess.connectHome(ctx)
	if err != nil {
		defer sess.Close()
		code, msg := "08006", err.Error()
		if pe, ok := asPgError(err); ok {
			code, msg = pe.Code, pe.Message
		}
		reason := "other"
		if code == "3D000" || code == "28P01" || code == "28000" {
			reason = "unknown_database"
			if code != "3D000" {
				reason = "password"
			}
			time.Sleep(s.opts.AuthFailureDelay)
		}
		s.opts.Metrics.AuthFailures.WithLabelValues(s.opts.Name, reason).Inc()
		fatal(conn, code, msg)
		return nil, serve.ErrHandled
	}
	out = pgwire.AppendAuthentication(out, pgwire.AuthOK, nil)
	sess.mu.Lock() // the relay goroutine reads reported
	for k, v := range home.params {
		for _, b := range sess.base {
			if strings.EqualFold(k, b.name) {
				v = b.value // the connection has it from the replay before the first statement
			}
		}
		sess.reported[k] = v
		out = pgwire.AppendParameterStatus(out, k, v)
	}
	sess.mu.Unlock()
	sess.settle(home) // under transaction pooling it goes back until the first statement
	out = pgwire.AppendBackendKeyData(out, sess.pid, sess.key)
	out = pgwire.AppendReadyForQuery(out, 'I')
	if _, err := conn.Write(out); err != nil {
		sess.Close()
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	conn.SetDeadline(time.Time{})
	return sess, nil
}

// appendNegotiateProtocolVersion appends a NegotiateProtocolVersion ('v')
// message: the newest minor version we support and the options we did not
// recognise.
func appendNegotiateProtocolVersion(dst []byte, minor uint32, unknown []string) []byte {
	start := len(dst)
	dst = append(dst, 'v', 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, 3<<16|minor)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(unknown)))
	for _, u := range unknown {
		dst = append(dst, u...)
		dst = append(dst, 0)
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}
