package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/integration/localcluster"
	"github.com/sluicedb/sluice/internal/mysqlwire"
)

// writeRSAKey writes a 2048-bit RSA private key (PKCS#8 PEM) for the
// my-rsa listener's rsa_key.
func writeRSAKey(dir string) (string, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "rsa.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

func TestMySQLLocalInfile(t *testing.T) {
	e := mysqlEnv(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	small := filepath.Join(dir, "small.tsv")
	if err := os.WriteFile(small, []byte("1\tone\n2\ttwo\n3\tthree\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Many of the driver's 16 KiB packets.
	var big bytes.Buffer
	const bigRows = 20000
	for i := range bigRows {
		fmt.Fprintf(&big, "%d\trow-%d\n", 100+i, i)
	}
	bigPath := filepath.Join(dir, "big.tsv")
	if err := os.WriteFile(bigPath, big.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	db := myOpen(t, "my-infile", func(c *mysql.Config) { c.AllowAllFiles = true })
	c := myConn(t, db)
	if _, err := c.ExecContext(ctx, "CREATE OR REPLACE TABLE infile_t (id INT, s VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { myOpen(t, "my-writer", nil).Exec("DROP TABLE IF EXISTS infile_t") })
	load := func(c *sql.Conn, path string) (int64, error) {
		res, err := c.ExecContext(ctx, fmt.Sprintf("LOAD DATA LOCAL INFILE '%s' INTO TABLE infile_t", path))
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	if n, err := load(c, small); err != nil || n != 3 {
		t.Fatalf("small file: %d rows, %v", n, err)
	}
	if n, err := load(c, bigPath); err != nil || n != bigRows {
		t.Fatalf("big file: %d rows, %v", n, err)
	}
	// The statement went to the writer (a replica would refuse it with
	// 1290), and the session reads its own writes.
	if got := myScanInt(t, ctx, c, "SELECT /* sluice:writer */ COUNT(*) FROM infile_t"); got != 3+bigRows {
		t.Fatalf("writer has %d rows", got)
	}
	if got := myScanInt(t, ctx, c, "SELECT COUNT(*) FROM infile_t"); got != 3+bigRows {
		t.Fatalf("read after LOAD DATA: %d rows", got)
	}
	// A file the client cannot read: the driver sends an empty file and
	// reports its error; the session goes on.
	if _, err := load(c, filepath.Join(dir, "missing.tsv")); err == nil {
		t.Fatal("missing file loaded")
	}
	if v := myScanInt(t, ctx, c, "SELECT 7"); v != 7 {
		t.Fatal(v)
	}

	// RegisterLocalFile instead of allowAllFiles.
	mysql.RegisterLocalFile(small)
	t.Cleanup(func() { mysql.DeregisterLocalFile(small) })
	c2 := myConn(t, myOpen(t, "my-infile", nil))
	if n, err := load(c2, small); err != nil || n != 3 {
		t.Fatalf("registered file: %d rows, %v", n, err)
	}

	// A listener without local_infile does not offer CLIENT_LOCAL_FILES:
	// the backend refuses LOCAL, the client gets a clear error, and the
	// session lives on.
	off := myConn(t, myOpen(t, "my-auto", func(c *mysql.Config) { c.AllowAllFiles = true }))
	_, err := load(off, small)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || !strings.Contains(strings.ToLower(me.Message), "local infile") {
		t.Fatalf("LOAD DATA LOCAL without local_infile: %v", err)
	}
	if v := myScanInt(t, ctx, off, "SELECT 8"); v != 8 {
		t.Fatal(v)
	}

	// The mariadb CLI.
	cli, err := exec.LookPath("mariadb")
	if err != nil {
		return
	}
	host, port, _ := strings.Cut(e.proxy.Addr("my-infile").String(), ":")
	out, err := exec.CommandContext(ctx, cli, "--protocol=tcp", "-h", host, "-P", port, "-uapp", "-papp", "-N", "-B", "--ssl=0",
		"--local-infile=1", "app", "-e", fmt.Sprintf("LOAD DATA LOCAL INFILE '%s' INTO TABLE infile_t; SELECT COUNT(*) FROM infile_t", small)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != fmt.Sprint(9+bigRows) {
		t.Fatalf("mariadb CLI: %v %q", err, out)
	}
}

// rsaLogin logs in to addr as app over plain TCP with caching_sha2_password,
// answering the scramble wrongly so that the proxy asks for full
// authentication, then sends password: with pub nil it asks for the
// server's key first (0x02); with clear set it sends the password in clear
// text instead. It returns the final OK/ERR payload, the PEM key received
// and the connection.
func rsaLogin(t *testing.T, addr, password string, pub *rsa.PublicKey, clear bool) (final, pemKey []byte, m *rawMy) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	bw := bufio.NewWriter(c)
	m = &rawMy{t: t, c: c, r: mysqlwire.NewPacketReader(bufio.NewReader(c)), w: mysqlwire.NewPacketWriter(bw), bw: bw}
	_, p, err := m.r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		t.Fatal(err)
	}
	if hs.AuthPluginName != mysqlwire.AuthCachingSHA2Password {
		t.Fatalf("plugin %q", hs.AuthPluginName)
	}
	scramble := bytes.Clone(hs.AuthPluginData)
	resp := mysqlwire.HandshakeResponse{
		Capabilities: rawCaps, MaxPacketSize: 1 << 24, CharacterSet: 45, Username: "app",
		AuthResponse:   mysqlwire.ScrambleCachingSHA2(scramble, []byte("not the password")),
		Database:       "app",
		AuthPluginName: mysqlwire.AuthCachingSHA2Password,
	}
	m.w.WritePacket(1, resp.Append(nil))
	m.w.Flush()
	seq, p, err := m.r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, []byte{mysqlwire.AuthMoreDataHeader, mysqlwire.CachingSHA2PerformFullAuth}) {
		t.Fatalf("want PerformFullAuth, got % x", p)
	}
	switch {
	case clear:
		m.w.WritePacket(seq+1, append([]byte(password), 0))
	case pub == nil:
		m.w.WritePacket(seq+1, []byte{mysqlwire.CachingSHA2RequestPublicKey})
		m.w.Flush()
		if seq, p, err = m.r.ReadPacket(); err != nil {
			t.Fatal(err)
		}
		if pemKey, err = mysqlwire.ParseAuthMoreData(p); err != nil {
			t.Fatal(err)
		}
		pemKey = bytes.Clone(pemKey)
		if pub, err = mysqlwire.ParsePublicKeyPEM(pemKey); err != nil {
			t.Fatal(err)
		}
		fallthrough
	default:
		enc, err := mysqlwire.EncryptPasswordRSA(pub, []byte(password), scramble)
		if err != nil {
			t.Fatal(err)
		}
		m.w.WritePacket(seq+1, enc)
	}
	m.w.Flush()
	_, p, err = m.r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(p), pemKey, m
}

func TestMySQLRSAFullAuth(t *testing.T) {
	e := mysqlEnv(t)
	ctx := testCtx(t)
	addr := e.proxy.Addr("my-auto").String()
	isAccessDenied := func(p []byte) bool {
		er, err := mysqlwire.ParseERR(p)
		return err == nil && er.Code == mysqlwire.ERAccessDeniedError
	}

	// Right password, key fetched from the server: logged in, and the
	// session works.
	final, pemKey, m := rsaLogin(t, addr, "app", nil, false)
	if !mysqlwire.IsOK(final, rawCaps) {
		t.Fatalf("RSA login: % x", final)
	}
	if _, rows := m.query("SELECT 40+2"); len(rows) != 1 || textValue(rows[0]) != "42" {
		t.Fatalf("query after RSA login: %q", rows)
	}
	pub, err := mysqlwire.ParsePublicKeyPEM(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	// A client that already has the key sends the ciphertext at once.
	if final, _, _ := rsaLogin(t, addr, "app", pub, false); !mysqlwire.IsOK(final, rawCaps) {
		t.Fatalf("RSA login with a known key: % x", final)
	}
	// Wrong password.
	if final, _, _ := rsaLogin(t, addr, "wrong", nil, false); !isAccessDenied(final) {
		t.Fatalf("wrong password: % x", final)
	}
	// The password in clear over plain TCP is never accepted.
	if final, _, _ := rsaLogin(t, addr, "app", nil, true); !isAccessDenied(final) {
		t.Fatalf("clear-text password over plain TCP: % x", final)
	}

	// rsa_key: the listener serves the configured key.
	b, err := os.ReadFile(filepath.Join(e.dir, "rsa.pem"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := mysqlwire.ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	final, pemKey, _ = rsaLogin(t, e.proxy.Addr("my-rsa").String(), "app", nil, false)
	if got, err := mysqlwire.ParsePublicKeyPEM(pemKey); err != nil || !got.Equal(&priv.PublicKey) {
		t.Fatalf("my-rsa served another key: %v", err)
	}
	if !mysqlwire.IsOK(final, rawCaps) {
		t.Fatalf("my-rsa RSA login: % x", final)
	}

	// go-sql-driver over plain TCP: a wrong password goes through full
	// authentication (the driver fetches the key and sends the password
	// RSA-encrypted) and is refused with 1045; the right one logs in.
	for _, l := range []string{"my-auto", "my-rsa"} {
		db, _ := sql.Open("mysql", myDSN(t, l, "app", "wrong", "app", nil))
		err := db.PingContext(ctx)
		db.Close()
		if myErrCode(err) != 1045 {
			t.Fatalf("%s: wrong password: %v, want 1045", l, err)
		}
		if err := myOpen(t, l, nil).PingContext(ctx); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}

	// The mariadb CLI (libmariadb's caching_sha2_password plugin) over
	// plain TCP with a wrong password.
	cli, err := exec.LookPath("mariadb")
	if err != nil {
		return
	}
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.CommandContext(ctx, cli, "--protocol=tcp", "-h", host, "-P", port, "-uapp", "-pwrong", "--ssl=0",
		"app", "-e", "SELECT 1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "1045") {
		t.Fatalf("mariadb CLI, wrong password: %v %q", err, out)
	}
}

const backendTLSYAML = `
listeners:
  - {name: req, protocol: mysql, address: "127.0.0.1:0", cluster: req, route: writer}
  - {name: pref, protocol: mysql, address: "127.0.0.1:0", cluster: pref, route: writer}
  - {name: plain, protocol: mysql, address: "127.0.0.1:0", cluster: plain, route: writer}
  - {name: req-plain, protocol: mysql, address: "127.0.0.1:0", cluster: req-plain, route: writer}
clusters:
  req: {protocol: mysql, backend_tls: require, backends: [{address: %[1]q}]}
  pref: {protocol: mysql, backend_tls: prefer, backends: [{address: %[1]q}]}
  plain: {protocol: mysql, backends: [{address: %[1]q}]}
  req-plain: {protocol: mysql, backend_tls: require, backends: [{address: %[2]q}]}
users:
  - {name: app, password: app}
health: {interval: 100ms, timeout: 2s, failures: 3, successes: 1}
failover: {hold: 300ms}
server: {auth_failure_delay: 10ms}
log: {level: error}
`

func TestMySQLBackendTLS(t *testing.T) {
	if _, err := localcluster.FindMariaDB(); err != nil {
		t.Skip(err)
	}
	plain := mysqlEnv(t) // a cluster without TLS
	ctx := testCtx(t)
	// The server account must read the certificate: a world-readable
	// directory under /tmp.
	dir, err := os.MkdirTemp("/tmp", "sluice-it-mytls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cert, key, err := writeSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, cert, key} {
		mode := os.FileMode(0o644)
		if p == dir {
			mode = 0o755
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c, err := localcluster.StartMariaDB(sctx, localcluster.MariaDBOptions{
		Replicas:  -1,
		ExtraConf: []string{"ssl_cert = " + cert, "ssl_key = " + key},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	node := c.Nodes()[0]

	cfg, err := config.Parse([]byte(fmt.Sprintf(backendTLSYAML, node.Addr(), plain.cluster.Nodes()[0].Addr())), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p := startProxyCfg(t, ctx, cfg, slog.LevelError)
	open := func(l string) *sql.DB {
		mc := mysql.NewConfig()
		mc.Net, mc.Addr, mc.User, mc.Passwd, mc.DBName = "tcp", p.Addr(l).String(), "app", "app", "app"
		mc.Timeout = 10 * time.Second
		db, err := sql.Open("mysql", mc.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	cipher := func(l string) (string, error) {
		var name, value string
		err := open(l).QueryRowContext(ctx, "SHOW STATUS LIKE 'Ssl_cipher'").Scan(&name, &value)
		return value, err
	}
	for l, encrypted := range map[string]bool{"req": true, "pref": true, "plain": false} {
		v, err := cipher(l)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		if (v != "") != encrypted {
			t.Fatalf("%s: Ssl_cipher %q, want encrypted=%v", l, v, encrypted)
		}
	}
	// require never falls back to plain TCP.
	if v, err := cipher("req-plain"); err == nil {
		t.Fatalf("require against a server without TLS: Ssl_cipher %q, no error", v)
	}

	// With require_secure_transport on the server, plain connections are
	// refused: new TLS sessions (and the TLS probes) keep working.
	root := myOpenDSN(t, node.AdminDSN(""))
	root.SetMaxOpenConns(1)
	if _, err := root.ExecContext(ctx, "SET GLOBAL require_secure_transport = ON"); err != nil {
		t.Fatal(err)
	}
	defer root.ExecContext(context.Background(), "SET GLOBAL require_secure_transport = OFF")
	time.Sleep(500 * time.Millisecond) // several probe rounds
	if v, err := cipher("req"); err != nil || v == "" {
		t.Fatalf("req with require_secure_transport: %q %v", v, err)
	}
	if _, err := cipher("plain"); err == nil {
		t.Fatal("plain backend connection accepted under require_secure_transport")
	}
}
