package backends

import (
	"bufio"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sluicedb/sluice/internal/mysqlwire"
)

// MySQLProfileCaps are the client capabilities whose presence changes the
// layout of results (or which statements are accepted). A backend
// connection is dialed with exactly the client's choice of these, so that
// its results can be relayed to that client untouched.
const MySQLProfileCaps = mysqlwire.ClientFoundRows | mysqlwire.ClientMultiStatements |
	mysqlwire.ClientMultiResults | mysqlwire.ClientPSMultiResults | mysqlwire.ClientDeprecateEOF |
	mysqlwire.ClientInteractive | mysqlwire.ClientIgnoreSpace

// mysqlBaseCaps are always requested from a backend. ClientMySQL (bit 0)
// is set, so a MariaDB server uses no extended capabilities (no
// CACHE_METADATA, no progress reports, no COM_MULTI, no bulk execution).
// Compression, query attributes, session tracking and optional result set
// metadata are never asked for; LOCAL INFILE only when the client has it
// (MySQLDialConfig.Caps), so that a backend sends LOCAL INFILE requests only
// to sessions whose client takes them.
const mysqlBaseCaps = mysqlwire.ClientMySQL | mysqlwire.ClientLongFlag | mysqlwire.ClientProtocol41 |
	mysqlwire.ClientTransactions | mysqlwire.ClientSecureConnection | mysqlwire.ClientPluginAuth |
	mysqlwire.ClientPluginAuthLenencClientData | mysqlwire.ClientConnectAttrs

// MySQLDialConfig describes one backend connection.
type MySQLDialConfig struct {
	Addr     string
	User     string
	Password string
	Database string // "" for none
	// Caps holds the client profile (only the MySQLProfileCaps bits and
	// ClientLocalFiles are used).
	Caps uint64
	// Charset is the collation id sent in the handshake response (default
	// utf8mb4_general_ci).
	Charset byte
	// Timeout bounds connecting and authenticating when ctx has no
	// deadline (default 5s).
	Timeout time.Duration
	// TLS is the TLS mode, as clusters.<name>.backend_tls: "disable" (or
	// "", plain TCP), "prefer" (TLS when the server offers CLIENT_SSL,
	// else plain) or "require" (TLS or fail). As with libpq's modes of the
	// same names, the server's certificate is not verified: TLS protects
	// against eavesdropping, not against an active man in the middle.
	// Verifying modes are not offered.
	TLS string
}

// Backend TLS modes (MySQLDialConfig.TLS).
const (
	MySQLTLSDisable = "disable"
	MySQLTLSPrefer  = "prefer"
	MySQLTLSRequire = "require"
)

// MySQLConn is an authenticated backend connection in the command phase.
type MySQLConn struct {
	Conn net.Conn
	R    *mysqlwire.PacketReader
	W    *bufio.Writer
	// ThreadID is the server's connection id (the target of KILL).
	ThreadID uint32
	// Caps are the negotiated capabilities.
	Caps uint64
	// ServerVersion is the server's version string.
	ServerVersion string
	// Status is the status flags of the OK that ended authentication.
	Status uint16
	// TLS reports whether the connection is encrypted.
	TLS bool
}

// Close closes the connection without a COM_QUIT.
func (c *MySQLConn) Close() error { return c.Conn.Close() }

// AsMySQLError returns the server's ERR packet carried by err, if any.
func AsMySQLError(err error) (*mysqlwire.ERRPacket, bool) {
	var e *mysqlwire.ERRPacket
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// DialMySQL connects to a MySQL or MariaDB server and authenticates with
// mysql_native_password or caching_sha2_password (full authentication with
// the server's RSA public key). A refusal by the server is returned as an
// error wrapping *mysqlwire.ERRPacket.
func DialMySQL(ctx context.Context, cfg MySQLDialConfig) (*MySQLConn, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	nc, err := backendDialer().DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mysql %s: %w", cfg.Addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	c := &MySQLConn{
		Conn: nc,
		R:    mysqlwire.NewPacketReader(bufio.NewReaderSize(nc, 16<<10)),
		W:    bufio.NewWriterSize(nc, 16<<10),
	}
	c.R.SetMaxPayload(1 << 30)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	err = c.handshake(cfg)
	stop()
	if err != nil {
		nc.Close()
		if _, ok := AsMySQLError(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("mysql %s: %w", cfg.Addr, err)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *MySQLConn) writePacket(seq byte, payload []byte) error {
	b, _ := mysqlwire.AppendPacket(nil, seq, payload)
	if _, err := c.W.Write(b); err != nil {
		return err
	}
	return c.W.Flush()
}

func (c *MySQLConn) handshake(cfg MySQLDialConfig) error {
	seq, payload, err := c.R.ReadPacket()
	if err != nil {
		return err
	}
	h, err := mysqlwire.ParseHandshake(payload)
	if err != nil {
		return err
	}
	c.ThreadID = h.ConnectionID
	c.ServerVersion = h.ServerVersion
	want := mysqlBaseCaps | (cfg.Caps & (MySQLProfileCaps | mysqlwire.ClientLocalFiles))
	if cfg.Database != "" {
		want |= mysqlwire.ClientConnectWithDB
	}
	caps := want & (h.Capabilities | mysqlwire.ClientMySQL)
	caps &= 0xffffffff
	if caps&mysqlwire.ClientProtocol41 == 0 || caps&mysqlwire.ClientPluginAuth == 0 {
		return errors.New("server does not support protocol 4.1 with pluggable authentication")
	}
	c.Caps = caps
	charset := cfg.Charset
	if charset == 0 {
		charset = byte(mysqlwire.CollationUTF8MB4GeneralCI)
	}
	if err := c.startTLS(cfg, h, &seq, caps, charset); err != nil {
		return err
	}
	caps = c.Caps
	scramble := h.AuthPluginData
	plugin := h.AuthPluginName
	if plugin != mysqlwire.AuthNativePassword && plugin != mysqlwire.AuthCachingSHA2Password {
		plugin = mysqlwire.AuthNativePassword // the server will switch us if it disagrees
	}
	resp := &mysqlwire.HandshakeResponse{
		Capabilities:   caps,
		MaxPacketSize:  1 << 24,
		CharacterSet:   charset,
		Username:       cfg.User,
		AuthResponse:   authResponse(plugin, scramble, cfg.Password),
		Database:       cfg.Database,
		AuthPluginName: plugin,
		ConnectAttrs:   map[string]string{"program_name": "sluice"},
	}
	if err := c.writePacket(seq+1, resp.Append(nil)); err != nil {
		return err
	}
	var pub *rsa.PublicKey
	for {
		seq, payload, err = c.R.ReadPacket()
		if err != nil {
			return err
		}
		if len(payload) == 0 {
			return errors.New("empty packet during authentication")
		}
		switch payload[0] {
		case mysqlwire.OKHeader:
			ok, err := mysqlwire.ParseOK(payload, caps)
			if err != nil {
				return err
			}
			c.Status = ok.Status
			return nil
		case mysqlwire.ERRHeader:
			e, err := mysqlwire.ParseERR(payload)
			if err != nil {
				return err
			}
			return &e
		case mysqlwire.AuthSwitchRequestHeader:
			p, data, err := mysqlwire.ParseAuthSwitchRequest(payload)
			if err != nil {
				return err
			}
			if p != mysqlwire.AuthNativePassword && p != mysqlwire.AuthCachingSHA2Password {
				return fmt.Errorf("server asks for unsupported authentication plugin %q", p)
			}
			plugin, scramble = p, append([]byte(nil), data...)
			if err := c.writePacket(seq+1, authResponse(plugin, scramble, cfg.Password)); err != nil {
				return err
			}
		case mysqlwire.AuthMoreDataHeader:
			data, _ := mysqlwire.ParseAuthMoreData(payload)
			if plugin != mysqlwire.AuthCachingSHA2Password {
				return errors.New("unexpected AuthMoreData")
			}
			switch {
			case len(data) == 1 && data[0] == mysqlwire.CachingSHA2FastAuthSuccess:
				// an OK follows
			case len(data) == 1 && data[0] == mysqlwire.CachingSHA2PerformFullAuth && c.TLS:
				// Over TLS the password goes in clear.
				if err := c.writePacket(seq+1, append([]byte(cfg.Password), 0)); err != nil {
					return err
				}
			case len(data) == 1 && data[0] == mysqlwire.CachingSHA2PerformFullAuth:
				if err := c.writePacket(seq+1, []byte{mysqlwire.CachingSHA2RequestPublicKey}); err != nil {
					return err
				}
			default:
				// The server's public key.
				if pub, err = mysqlwire.ParsePublicKeyPEM(data); err != nil {
					return err
				}
				enc, err := mysqlwire.EncryptPasswordRSA(pub, []byte(cfg.Password), scramble)
				if err != nil {
					return err
				}
				if err := c.writePacket(seq+1, enc); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("unexpected packet 0x%02x during authentication", payload[0])
		}
	}
}

// startTLS switches the connection to TLS after the server's handshake h
// when cfg.TLS asks for it: an SSLRequest (the handshake response's fixed
// part with CLIENT_SSL, sequence *seq+1), then a TLS client handshake
// without certificate verification. *seq is advanced so that the
// handshake response follows with the next sequence id. c.Caps gets
// CLIENT_SSL when TLS is on.
func (c *MySQLConn) startTLS(cfg MySQLDialConfig, h *mysqlwire.Handshake, seq *byte, caps uint64, charset byte) error {
	switch cfg.TLS {
	case "", MySQLTLSDisable:
		return nil
	case MySQLTLSPrefer, MySQLTLSRequire:
	default:
		return fmt.Errorf("unknown backend TLS mode %q", cfg.TLS)
	}
	if h.Capabilities&mysqlwire.ClientSSL == 0 {
		if cfg.TLS == MySQLTLSRequire {
			return errors.New("backend_tls is require but the server does not offer TLS")
		}
		return nil
	}
	caps |= mysqlwire.ClientSSL
	if err := c.writePacket(*seq+1, mysqlwire.AppendSSLRequest(nil, caps, 1<<24, charset)); err != nil {
		return fmt.Errorf("SSLRequest: %w", err)
	}
	*seq++
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		host = cfg.Addr
	}
	tc := tls.Client(c.Conn, &tls.Config{
		// "prefer" and "require" encrypt without verifying, as libpq's
		// modes of the same names.
		InsecureSkipVerify: true,
		ServerName:         host,
		MinVersion:         tls.VersionTLS12,
	})
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.Conn = tc
	c.R.Reset(bufio.NewReaderSize(tc, 16<<10))
	c.W.Reset(tc)
	c.Caps = caps
	c.TLS = true
	return nil
}

func authResponse(plugin string, scramble []byte, password string) []byte {
	if password == "" {
		return []byte{}
	}
	if plugin == mysqlwire.AuthCachingSHA2Password {
		return mysqlwire.ScrambleCachingSHA2(scramble, []byte(password))
	}
	return mysqlwire.ScrambleNativePassword(scramble, []byte(password))
}

// KillMySQL runs KILL QUERY <thread> (or KILL CONNECTION with
// connection) on the server at addr over a new connection.
func KillMySQL(ctx context.Context, cfg MySQLDialConfig, thread uint32, connection bool) error {
	cfg.Database = ""
	cfg.Caps = 0
	c, err := DialMySQL(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.Conn.SetDeadline(dl)
	}
	kind := "QUERY"
	if connection {
		kind = "CONNECTION"
	}
	q := append([]byte{mysqlwire.ComQuery}, fmt.Sprintf("KILL %s %d", kind, thread)...)
	if err := c.writePacket(0, q); err != nil {
		return err
	}
	_, payload, err := c.R.ReadPacket()
	if err != nil {
		return err
	}
	if mysqlwire.IsERR(payload) {
		e, _ := mysqlwire.ParseERR(payload)
		return &e
	}
	c.writePacket(0, []byte{mysqlwire.ComQuit})
	return nil
}
