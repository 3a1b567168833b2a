package backends

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// PGDialConfig says how to open one backend connection to PostgreSQL.
type PGDialConfig struct {
	Addr     string // host:port
	User     string
	Password string
	Database string
	// Params are run-time parameters sent in the startup packet
	// (application_name, client_encoding, options, …).
	Params map[string]string
	// TLS is "disable" (default), "prefer" or "require" (no certificate
	// verification; use it against servers you reach over a trusted path).
	TLS     string
	Timeout time.Duration // connect + authenticate; default 5s
}

// PGConn is an authenticated, idle backend connection taken over from pgconn:
// from here on the proxy speaks the protocol on Conn itself.
type PGConn struct {
	Addr   string
	Conn   net.Conn
	R      *bufio.Reader
	W      *bufio.Writer
	PID    uint32
	Secret []byte
	// Params holds the ParameterStatus values the server reported at startup.
	Params map[string]string
}

// Close closes the network connection (without a Terminate message).
func (c *PGConn) Close() error { return c.Conn.Close() }

// PGConfig returns the pgconn configuration of a connection to the
// PostgreSQL server at addr: sslmode tlsMode ("" = "disable"; TLS 1.2 at
// least), the backend dialer (keepalives, TCP_USER_TIMEOUT), and params as
// startup parameters. Sessions, probes and promotions all connect with it.
func PGConfig(addr, user, password, database, tlsMode string, params map[string]string) (*pgconn.Config, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if tlsMode == "" {
		tlsMode = "disable"
	}
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s sslmode=%s", quoteDSN(host), quoteDSN(port), tlsMode))
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password, cfg.Database = user, password, database
	cfg.DialFunc = backendDialer().DialContext
	cfg.RuntimeParams = make(map[string]string, len(params))
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	if cfg.TLSConfig != nil {
		cfg.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return cfg, nil
}

// DialPostgres connects and authenticates to a PostgreSQL backend (pgconn
// does TLS, SCRAM and md5), then hijacks the raw connection.
//
// Errors from the server (wrong password, unknown database, too many
// connections) come back as *pgconn.PgError inside the returned error, so the
// caller can relay the SQLSTATE.
func DialPostgres(ctx context.Context, dc PGDialConfig) (*PGConn, error) {
	timeout := dc.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	cfg, err := PGConfig(dc.Addr, dc.User, dc.Password, dc.Database, dc.TLS, dc.Params)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", dc.Addr, err)
	}
	cfg.ConnectTimeout = timeout
	cfg.MaxProtocolVersion = "3.0"
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", dc.Addr, err)
	}
	// pgconn may still have a background read in flight or bytes buffered:
	// both would steal the first responses from our own reader. SyncConn
	// makes sure neither is the case before we take the raw connection.
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(context.Background())
		return nil, fmt.Errorf("backend %s: sync before hijack: %w", dc.Addr, err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(context.Background())
		return nil, fmt.Errorf("backend %s: hijack: %w", dc.Addr, err)
	}
	return &PGConn{
		Addr:   dc.Addr,
		Conn:   hc.Conn,
		R:      bufio.NewReaderSize(hc.Conn, 16<<10),
		W:      bufio.NewWriterSize(hc.Conn, 16<<10),
		PID:    hc.PID,
		Secret: hc.SecretKey,
		Params: hc.ParameterStatuses,
	}, nil
}

// AsPgError returns the server error inside err, if there is one.
func AsPgError(err error) (*pgconn.PgError, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe, true
	}
	return nil, false
}

func quoteDSN(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
