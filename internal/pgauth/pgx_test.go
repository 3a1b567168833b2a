package pgauth_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluicedb/sluice/internal/pgauth"
)

// These tests check interoperability with an independent client, pgx's
// pgconn, by running a minimal PostgreSQL server handshake over net.Pipe.

type authFunc func(be *pgproto3.Backend, user string) error

func scramAuth(v *pgauth.Verifier) authFunc {
	return func(be *pgproto3.Backend, _ string) error {
		be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{pgauth.MechanismSCRAMSHA256}})
		if err := be.Flush(); err != nil {
			return err
		}
		if err := be.SetAuthType(pgproto3.AuthTypeSASL); err != nil {
			return err
		}
		msg, err := be.Receive()
		if err != nil {
			return err
		}
		initial, ok := msg.(*pgproto3.SASLInitialResponse)
		if !ok || initial.AuthMechanism != pgauth.MechanismSCRAMSHA256 {
			return fmt.Errorf("unexpected %#v", msg)
		}
		s := pgauth.NewSCRAMServer(v, nil)
		first, err := s.ClientFirst(initial.Data)
		if err != nil {
			return err
		}
		be.Send(&pgproto3.AuthenticationSASLContinue{Data: first})
		if err := be.Flush(); err != nil {
			return err
		}
		if err := be.SetAuthType(pgproto3.AuthTypeSASLContinue); err != nil {
			return err
		}
		if msg, err = be.Receive(); err != nil {
			return err
		}
		resp, ok := msg.(*pgproto3.SASLResponse)
		if !ok {
			return fmt.Errorf("unexpected %#v", msg)
		}
		final, err := s.ClientFinal(resp.Data)
		if err != nil {
			return err
		}
		be.Send(&pgproto3.AuthenticationSASLFinal{Data: final})
		return nil
	}
}

func md5Auth(password string) authFunc {
	return func(be *pgproto3.Backend, user string) error {
		salt, err := pgauth.MD5Salt(nil)
		if err != nil {
			return err
		}
		be.Send(&pgproto3.AuthenticationMD5Password{Salt: salt})
		if err := be.Flush(); err != nil {
			return err
		}
		if err := be.SetAuthType(pgproto3.AuthTypeMD5Password); err != nil {
			return err
		}
		msg, err := be.Receive()
		if err != nil {
			return err
		}
		pm, ok := msg.(*pgproto3.PasswordMessage)
		if !ok {
			return fmt.Errorf("unexpected %#v", msg)
		}
		if !pgauth.CheckMD5(user, password, salt, []byte(pm.Password)) {
			return pgauth.ErrAuthFailed
		}
		return nil
	}
}

// serve runs the server side of a handshake on conn and returns the
// authentication error, if any.
func serve(conn net.Conn, auth authFunc) error {
	defer conn.Close()
	be := pgproto3.NewBackend(conn, conn)
	msg, err := be.ReceiveStartupMessage()
	if err != nil {
		return err
	}
	startup, ok := msg.(*pgproto3.StartupMessage)
	if !ok {
		return fmt.Errorf("unexpected %#v", msg)
	}
	if err := auth(be, startup.Parameters["user"]); err != nil {
		code := "08P01"
		if errors.Is(err, pgauth.ErrAuthFailed) {
			code = "28P01"
		}
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: code, Message: err.Error()})
		_ = be.Flush()
		return err
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return be.Flush()
}

// pgxConnect connects pgx with user and password to a server running auth
// and returns the client's and the server's errors.
func pgxConnect(t *testing.T, user, password string, auth authFunc) (clientErr, serverErr error) {
	t.Helper()
	cfg, err := pgconn.ParseConfig("host=127.0.0.1 port=5432 dbname=db sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = user, password
	cfg.Fallbacks = nil
	clientConn, serverConn := net.Pipe()
	dialed := false
	cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) {
		if dialed {
			return nil, errors.New("already dialed")
		}
		dialed = true
		return clientConn, nil
	}
	done := make(chan error, 1)
	go func() { done <- serve(serverConn, auth) }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, clientErr := pgconn.ConnectConfig(ctx, cfg)
	if clientErr == nil {
		_ = conn.Close(ctx)
	} else {
		_ = clientConn.Close()
	}
	select {
	case serverErr = <-done:
	case <-ctx.Done():
		t.Fatal("server did not finish")
	}
	return clientErr, serverErr
}

func TestPgxSCRAM(t *testing.T) {
	stored, err := pgauth.VerifierFor(pgVerifierString("s3cret", []byte("0123456789abcdef"), 4096))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := pgauth.VerifierFor("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	// Already in SASLprep normal form, so pgx's normalization leaves it
	// unchanged and the raw UTF-8 bytes match.
	unicode, err := pgauth.VerifierFor("pässwörd")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, password string
		v              *pgauth.Verifier
		wantAuthFailed bool
	}{
		{"stored verifier", "s3cret", stored, false},
		{"plain-text secret", "s3cret", plain, false},
		{"normalized non-ASCII", "pässwörd", unicode, false},
		{"wrong password", "s3cret!", stored, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientErr, serverErr := pgxConnect(t, "alice", tt.password, scramAuth(tt.v))
			if tt.wantAuthFailed {
				if !errors.Is(serverErr, pgauth.ErrAuthFailed) {
					t.Fatalf("server error %v, want ErrAuthFailed", serverErr)
				}
				var pgErr *pgconn.PgError
				if !errors.As(clientErr, &pgErr) || pgErr.Code != "28P01" {
					t.Fatalf("client error %v, want 28P01", clientErr)
				}
				return
			}
			if serverErr != nil || clientErr != nil {
				t.Fatalf("server error %v, client error %v", serverErr, clientErr)
			}
		})
	}
}

func TestPgxMD5(t *testing.T) {
	if clientErr, serverErr := pgxConnect(t, "alice", "s3cret", md5Auth("s3cret")); clientErr != nil || serverErr != nil {
		t.Fatalf("server error %v, client error %v", serverErr, clientErr)
	}
	if _, serverErr := pgxConnect(t, "alice", "wrong", md5Auth("s3cret")); !errors.Is(serverErr, pgauth.ErrAuthFailed) {
		t.Fatalf("wrong password: server error %v", serverErr)
	}
}
