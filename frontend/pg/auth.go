package pg

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/sluicedb/sluice/frontend/serve"
	"github.com/sluicedb/sluice/internal/pgauth"
	"github.com/sluicedb/sluice/internal/pgwire"
)

// verifierCache keeps one SCRAM verifier per configured user, so the
// PBKDF2 derivation runs once per user and not once per login. Salts of
// plain-text secrets, and the mock verifiers of unknown users, are derived
// from a per-server key and the user name, so a client cannot tell a known
// user from an unknown one by the salt, nor by the time the answer takes.
type verifierCache struct {
	mu  sync.Mutex
	key []byte
	m   map[[2]string]*pgauth.Verifier
}

func (vc *verifierCache) keyLocked() []byte {
	if vc.key == nil {
		vc.key = make([]byte, 32)
		rand.Read(vc.key)
	}
	return vc.key
}

func (vc *verifierCache) derive(label, user string, n int) []byte {
	mac := hmac.New(sha256.New, vc.keyLocked())
	mac.Write([]byte(label))
	mac.Write([]byte{0})
	mac.Write([]byte(user))
	return mac.Sum(nil)[:n]
}

func (vc *verifierCache) get(user, secret string) (*pgauth.Verifier, error) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	k := [2]string{user, secret}
	if v, ok := vc.m[k]; ok {
		return v, nil
	}
	var v *pgauth.Verifier
	if strings.HasPrefix(secret, pgauth.MechanismSCRAMSHA256+"$") {
		var err error
		if v, err = pgauth.ParseVerifier(secret); err != nil {
			return nil, err
		}
	} else {
		v = pgauth.NewVerifier(secret, vc.derive("salt", user, 16), pgauth.DefaultIterations)
	}
	if vc.m == nil {
		vc.m = make(map[[2]string]*pgauth.Verifier)
	}
	vc.m[k] = v
	return v, nil
}

// mock returns a verifier for an unknown user that no password matches,
// with the salt a plain-text secret of that user would have. Building it
// costs no key derivation.
func (vc *verifierCache) mock(user string) *pgauth.Verifier {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	return &pgauth.Verifier{
		Iterations: pgauth.DefaultIterations,
		Salt:       vc.derive("salt", user, 16),
		StoredKey:  vc.derive("stored", user, 32),
		ServerKey:  vc.derive("server", user, 32),
	}
}

// authenticate runs the listener's authentication method. It reports false
// for bad credentials (the caller answers 28P01); errors are I/O or protocol
// failures that were already answered when possible.
func (s *Server) authenticate(conn net.Conn, rd *pgwire.ConnReader, isTLS bool, user, password string, known bool) (bool, error) {
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
			return false, serve.ErrHandled
		}
		return known && pgauth.CheckMD5(user, password, salt, p), nil
	case "password":
		if !isTLS {
			s.opts.Metrics.AuthFailures.WithLabelValues(s.opts.Name, "tls_required").Inc()
			fatal(conn, "28000", "cleartext password authentication requires TLS on this listener (use sslmode=require)")
			return false, serve.ErrHandled
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
			return false, serve.ErrHandled
		}
		return known && subtle.ConstantTimeCompare(p, []byte(password)) == 1, nil
	default:
		return s.authSCRAM(conn, rd, user, password, known)
	}
}

func (s *Server) authSCRAM(conn net.Conn, rd *pgwire.ConnReader, user, password string, known bool) (bool, error) {
	var v *pgauth.Verifier
	if known {
		var err error
		if v, err = s.verif.get(user, password); err != nil {
			return false, fmt.Errorf("user secret: %w", err)
		}
	} else {
		v = s.verif.mock(user)
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
		return false, serve.ErrHandled
	}
	srv := pgauth.NewSCRAMServer(v, rand.Reader)
	first, err := srv.ClientFirst(data)
	if err != nil {
		s.protocolError(conn, "malformed", err.Error())
		return false, serve.ErrHandled
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
func (s *Server) readPassword(conn net.Conn, rd *pgwire.ConnReader) ([]byte, error) {
	m, err := rd.Next()
	if err != nil {
		return nil, err
	}
	if m.Type != pgwire.MsgPassword {
		s.protocolError(conn, "malformed", fmt.Sprintf("expected password response, got message type %q", m.Type))
		return nil, serve.ErrHandled
	}
	return m.Body(), nil
}
