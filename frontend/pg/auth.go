package pg

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"net"
	"sync"

	"github.com/sluicedb/sluice/internal/pgauth"
	"github.com/sluicedb/sluice/internal/pgwire"
)

// verifierCache keeps one SCRAM verifier per configured secret, so the
// PBKDF2 derivation runs once per user and not once per login.
type verifierCache struct {
	mu    sync.Mutex
	m     map[string]*pgauth.Verifier
	dummy *pgauth.Verifier
}

func (vc *verifierCache) get(secret string) (*pgauth.Verifier, error) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if v, ok := vc.m[secret]; ok {
		return v, nil
	}
	v, err := pgauth.VerifierFor(secret)
	if err != nil {
		return nil, err
	}
	if vc.m == nil {
		vc.m = make(map[string]*pgauth.Verifier)
	}
	vc.m[secret] = v
	return v, nil
}

// dummyVerifier is used for unknown users so that the exchange looks the
// same as for a known user with a wrong password.
func (vc *verifierCache) dummyVerifier() *pgauth.Verifier {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.dummy == nil {
		pw := make([]byte, 32)
		rand.Read(pw)
		salt := make([]byte, 16)
		rand.Read(salt)
		vc.dummy = pgauth.NewVerifier(string(pw), salt, 4096)
	}
	return vc.dummy
}

// authenticate runs the listener's authentication method. It reports false
// for bad credentials (the caller answers 28P01); errors are I/O or protocol
// failures that were already answered when possible.
func (s *Server) authenticate(conn net.Conn, rd *pgwire.Reader, isTLS bool, user, password string, known bool) (bool, error) {
	switch s.opts.Auth {
	case "md5":
		salt, err := pgauth.MD5Salt(rand.Reader)
		if err != nil {
			return false, err
		}
		if _, err := conn.Write(pgwire.AppendAuthentication(nil, pgwire.AuthMD5Password, salt[:])); err != nil {
			return false, err
		}
		resp, err := s.readPassword(conn, rd)
		if err != nil {
			return false, err
		}
		p, err := pgwire.PasswordPayload(resp)
		if err != nil {
			s.protocolError(conn, "malformed", err.Error())
			return false, errHandled
		}
		return known && pgauth.CheckMD5(user, password, salt, p), nil
	case "password":
		if !isTLS {
			s.opts.Metrics.AuthFailures.WithLabelValues(s.opts.Name, "tls_required").Inc()
			fatal(conn, "28000", "cleartext password authentication requires TLS on this listener (use sslmode=require)")
			return false, errHandled
		}
		if _, err := conn.Write(pgwire.AppendAuthentication(nil, pgwire.AuthCleartextPassword, nil)); err != nil {
			return false, err
		}
		resp, err := s.readPassword(conn, rd)
		if err != nil {
			return false, err
		}
		p, err := pgwire.PasswordPayload(resp)
		if err != nil {
			s.protocolError(conn, "malformed", err.Error())
			return false, errHandled
		}
		return known && subtle.ConstantTimeCompare(p, []byte(password)) == 1, nil
	default:
		return s.authSCRAM(conn, rd, password, known)
	}
}

func (s *Server) authSCRAM(conn net.Conn, rd *pgwire.Reader, password string, known bool) (bool, error) {
	var v *pgauth.Verifier
	if known {
		var err error
		if v, err = s.verif.get(password); err != nil {
			return false, fmt.Errorf("user secret: %w", err)
		}
	} else {
		v = s.verif.dummyVerifier()
	}
	mechs := []byte(pgauth.MechanismSCRAMSHA256 + "\x00\x00")
	if _, err := conn.Write(pgwire.AppendAuthentication(nil, pgwire.AuthSASL, mechs)); err != nil {
		return false, err
	}
	body, err := s.readPassword(conn, rd)
	if err != nil {
		return false, err
	}
	mech, data, err := pgwire.ParseSASLInitialResponse(body)
	if err != nil || mech != pgauth.MechanismSCRAMSHA256 {
		if err == nil {
			err = fmt.Errorf("unsupported SASL mechanism %q", mech)
		}
		s.protocolError(conn, "malformed", err.Error())
		return false, errHandled
	}
	srv := pgauth.NewSCRAMServer(v, rand.Reader)
	first, err := srv.ClientFirst(data)
	if err != nil {
		s.protocolError(conn, "malformed", err.Error())
		return false, errHandled
	}
	if _, err := conn.Write(pgwire.AppendAuthentication(nil, pgwire.AuthSASLContinue, first)); err != nil {
		return false, err
	}
	body, err = s.readPassword(conn, rd)
	if err != nil {
		return false, err
	}
	final, err := srv.ClientFinal(body)
	if err != nil || !known {
		return false, nil
	}
	if _, err := conn.Write(pgwire.AppendAuthentication(nil, pgwire.AuthSASLFinal, final)); err != nil {
		return false, err
	}
	return true, nil
}

// readPassword reads the next client message, which must be a
// PasswordMessage-family ('p') message, and returns its body.
func (s *Server) readPassword(conn net.Conn, rd *pgwire.Reader) ([]byte, error) {
	m, err := rd.Next()
	if err != nil {
		return nil, err
	}
	if m.Type != pgwire.MsgPassword {
		s.protocolError(conn, "malformed", fmt.Sprintf("expected password response, got message type %q", m.Type))
		return nil, errHandled
	}
	return m.Body(), nil
}
