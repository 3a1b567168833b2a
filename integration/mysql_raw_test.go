package integration

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/internal/mysqlwire"
)

// rawMy is a minimal MySQL client on raw packets, for commands that
// database/sql drivers do not send (COM_RESET_CONNECTION, COM_FIELD_LIST,
// COM_STATISTICS, COM_STMT_EXECUTE without re-sent types, malformed input).
// It negotiates no DEPRECATE_EOF, so every stream ends with an EOF packet.
type rawMy struct {
	t  *testing.T
	c  net.Conn
	r  *mysqlwire.PacketReader
	w  *mysqlwire.PacketWriter
	bw *bufio.Writer

	plugin   string // offered in the handshake
	scramble []byte // the handshake's
	switched string // the plugin the last authentication was switched to

	authScramble []byte // the scramble the current authentication answers
	fullAuths    int    // caching_sha2_password full authentications (RSA) done
}

const rawCaps = mysqlwire.ClientLongPassword | mysqlwire.ClientProtocol41 | mysqlwire.ClientSecureConnection |
	mysqlwire.ClientPluginAuth | mysqlwire.ClientTransactions | mysqlwire.ClientConnectWithDB |
	mysqlwire.ClientMultiResults

func dialRawMy(t *testing.T, listener string) *rawMy {
	t.Helper()
	e := mysqlEnv(t)
	m, p := dialRawMyAt(t, e.proxy.Addr(listener).String(), "app", "app", mysqlwire.AuthNativePassword)
	if !mysqlwire.IsOK(p, rawCaps) {
		t.Fatalf("login: % x", p)
	}
	if m.plugin != mysqlwire.AuthNativePassword {
		t.Fatalf("listener %s offers %s", listener, m.plugin)
	}
	return m
}

// dialRawMyAt logs in to addr as user, answering the handshake's scramble
// with plugin (and whatever the server switches to), and returns the
// client and the packet that ended the login (OK or ERR).
func dialRawMyAt(t *testing.T, addr, user, password, plugin string) (*rawMy, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	bw := bufio.NewWriter(c)
	m := &rawMy{t: t, c: c, r: mysqlwire.NewPacketReader(bufio.NewReader(c)), w: mysqlwire.NewPacketWriter(bw), bw: bw}
	_, p, err := m.r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		t.Fatal(err)
	}
	m.plugin = hs.AuthPluginName
	m.scramble = bytes.Clone(hs.AuthPluginData)
	m.authScramble = m.scramble
	resp := mysqlwire.HandshakeResponse{
		Capabilities: rawCaps, MaxPacketSize: 1 << 24, CharacterSet: 45, Username: user,
		AuthResponse: rawAuth(plugin, m.scramble, password), Database: "app",
		AuthPluginName: plugin,
	}
	m.w.WritePacket(1, resp.Append(nil))
	m.w.Flush()
	return m, m.finishAuth(password)
}

// rawAuth answers scramble for plugin.
func rawAuth(plugin string, scramble []byte, password string) []byte {
	if plugin == mysqlwire.AuthCachingSHA2Password {
		return mysqlwire.ScrambleCachingSHA2(scramble, []byte(password))
	}
	return mysqlwire.ScrambleNativePassword(scramble, []byte(password))
}

// finishAuth follows an authentication exchange (auth switch, caching_sha2
// fast-auth notice) and returns its final OK or ERR packet.
func (m *rawMy) finishAuth(password string) []byte {
	m.t.Helper()
	for {
		seq, p, err := m.r.ReadPacket()
		if err != nil {
			m.t.Fatal(err)
		}
		switch {
		case len(p) > 1 && p[0] == 0xfe:
			plugin, data, err := mysqlwire.ParseAuthSwitchRequest(p)
			if err != nil {
				m.t.Fatalf("auth switch: %v", err)
			}
			m.switched = plugin
			m.authScramble = bytes.Clone(data[:min(len(data), 20)])
			m.w.WritePacket(seq+1, rawAuth(plugin, m.authScramble, password))
			m.w.Flush()
		case len(p) == 2 && p[0] == 0x01 && p[1] == mysqlwire.CachingSHA2FastAuthSuccess:
			// The OK follows.
		case len(p) == 2 && p[0] == 0x01 && p[1] == mysqlwire.CachingSHA2PerformFullAuth:
			// Full authentication over plain TCP: fetch the server's
			// public key, send the password RSA-encrypted.
			m.fullAuths++
			m.w.WritePacket(seq+1, []byte{mysqlwire.CachingSHA2RequestPublicKey})
			m.w.Flush()
			seq, p, err = m.r.ReadPacket()
			if err != nil {
				m.t.Fatal(err)
			}
			data, err := mysqlwire.ParseAuthMoreData(p)
			if err != nil {
				m.t.Fatalf("public key: %v", err)
			}
			pub, err := mysqlwire.ParsePublicKeyPEM(data)
			if err != nil {
				m.t.Fatalf("public key: %v", err)
			}
			enc, err := mysqlwire.EncryptPasswordRSA(pub, []byte(password), m.authScramble)
			if err != nil {
				m.t.Fatal(err)
			}
			m.w.WritePacket(seq+1, enc)
			m.w.Flush()
		default:
			return append([]byte(nil), p...)
		}
	}
}

// changeUser sends COM_CHANGE_USER (database app) answering the
// handshake's scramble with plugin, and returns the final OK or ERR.
func (m *rawMy) changeUser(user, password, plugin string) []byte {
	m.t.Helper()
	cu := mysqlwire.ChangeUser{User: user, AuthResponse: rawAuth(plugin, m.scramble, password), Database: "app",
		CharacterSet: 45, AuthPluginName: plugin}
	m.switched = ""
	m.authScramble = m.scramble
	m.send(cu.Append(nil, rawCaps))
	return m.finishAuth(password)
}

func (m *rawMy) read() []byte {
	m.t.Helper()
	_, p, err := m.r.ReadPacket()
	if err != nil {
		m.t.Fatal(err)
	}
	return append([]byte(nil), p...)
}

func (m *rawMy) send(p []byte) {
	m.t.Helper()
	if _, err := m.w.WritePacket(0, p); err != nil {
		m.t.Fatal(err)
	}
	if err := m.w.Flush(); err != nil {
		m.t.Fatal(err)
	}
}

// result reads a result: nil rows and the first packet for OK/ERR, else
// the raw row payloads.
func (m *rawMy) result() (first []byte, rows [][]byte) {
	m.t.Helper()
	first = m.read()
	n, ok := mysqlwire.ParseColumnCount(first)
	if !ok {
		return first, nil
	}
	for range n + 1 {
		m.read()
	}
	for {
		p := m.read()
		if mysqlwire.IsEOF(p, rawCaps) {
			return first, rows
		}
		if mysqlwire.IsERR(p) {
			m.t.Fatalf("error in rows: %s", p)
		}
		rows = append(rows, p)
	}
}

// textValue returns the first column of a text row.
func textValue(row []byte) string {
	b, _, _ := mysqlwire.ReadLenEncBytes(row)
	return string(b)
}

func (m *rawMy) query(q string) (first []byte, rows [][]byte) {
	m.t.Helper()
	m.send(append([]byte{mysqlwire.ComQuery}, q...))
	return m.result()
}

func TestMySQLRawCommands(t *testing.T) {
	m := dialRawMy(t, "my-native")
	m.send([]byte{mysqlwire.ComPing})
	if p := m.read(); !mysqlwire.IsOK(p, rawCaps) {
		t.Fatalf("ping: % x", p)
	}
	m.send([]byte{mysqlwire.ComStatistics})
	if p := m.read(); !strings.HasPrefix(string(p), "Uptime") {
		t.Fatalf("statistics: %q", p)
	}
	if p, _ := m.query("CREATE TABLE IF NOT EXISTS fl (a INT, b TEXT)"); !mysqlwire.IsOK(p, rawCaps) {
		t.Fatalf("create: %s", p)
	}
	m.send(append([]byte{mysqlwire.ComFieldList}, "fl\x00"...))
	var cols []string
	for {
		p := m.read()
		if mysqlwire.IsEOF(p, rawCaps) {
			break
		}
		cd, err := mysqlwire.ParseColumnDefinition(p, rawCaps)
		if err != nil {
			t.Fatalf("field list: %v", err)
		}
		cols = append(cols, cd.Name)
	}
	if strings.Join(cols, ",") != "a,b" {
		t.Fatalf("field list: %v", cols)
	}

	// Session state is replayed, and COM_RESET_CONNECTION forgets it.
	if p, _ := m.query("SET SESSION sql_mode = 'ANSI_QUOTES'"); !mysqlwire.IsOK(p, rawCaps) {
		t.Fatalf("set: %s", p)
	}
	if _, rows := m.query("SELECT @@sql_mode"); len(rows) != 1 || textValue(rows[0]) != "ANSI_QUOTES" {
		t.Fatalf("sql_mode: %q", rows)
	}
	m.send([]byte{mysqlwire.ComResetConnection})
	if p := m.read(); !mysqlwire.IsOK(p, rawCaps) {
		t.Fatalf("reset: % x", p)
	}
	for _, q := range []string{"SELECT @@sql_mode", "/* sluice:writer */ SELECT @@sql_mode"} {
		if _, rows := m.query(q); len(rows) != 1 || textValue(rows[0]) == "ANSI_QUOTES" {
			t.Fatalf("%s after reset: %q", q, rows)
		}
	}

	// A prepared statement whose parameter types are sent only at the
	// first execution, executed again after a write (which may move it to
	// another backend, where it is prepared again with the types re-sent).
	// A fresh session has not written yet: the first execution runs on a
	// replica.
	m = dialRawMy(t, "my-native")
	m.send(append([]byte{mysqlwire.ComStmtPrepare}, "SELECT CONCAT('v', ?)"...))
	p := m.read()
	pok, err := mysqlwire.ParseStmtPrepareOK(p, rawCaps)
	if err != nil {
		t.Fatalf("prepare: %v % x", err, p)
	}
	for range 4 { // param def, EOF, column def, EOF
		m.read()
	}
	exec := func(val string, types bool) string {
		t.Helper()
		b := []byte{mysqlwire.ComStmtExecute}
		b = mysqlwire.AppendUint32(b, pok.StatementID)
		b = append(b, 0)
		b = mysqlwire.AppendUint32(b, 1)
		b = append(b, 0) // null bitmap
		if types {
			b = append(b, 1, mysqlwire.TypeVarString, 0)
		} else {
			b = append(b, 0)
		}
		b = mysqlwire.AppendLenEncString(b, val)
		m.send(b)
		first, rows := m.result()
		if len(rows) != 1 || len(rows[0]) < 2 {
			t.Fatalf("execute %s: %q %q", val, first, rows)
		}
		v, _, _ := mysqlwire.ReadLenEncBytes(rows[0][2:]) // header, null bitmap
		return string(v)
	}
	if v := exec("1", true); v != "v1" {
		t.Fatalf("execute: %q", v)
	}
	for i := range 20 {
		if p, _ := m.query("INSERT INTO fl VALUES (1, 'x')"); !mysqlwire.IsOK(p, rawCaps) {
			t.Fatalf("insert: %s", p)
		}
		want := "v" + strings.Repeat("z", i)
		if v := exec(want[1:], false); v != want {
			t.Fatalf("execute without types: %q, want %q", v, want)
		}
	}
	// Unknown statement ids are refused.
	b := mysqlwire.AppendUint32([]byte{mysqlwire.ComStmtExecute}, 999)
	b = append(b, 0, 1, 0, 0, 0)
	m.send(b)
	if p := m.read(); !mysqlwire.IsERR(p) {
		t.Fatalf("unknown statement: % x", p)
	} else if e, _ := mysqlwire.ParseERR(p); e.Code != mysqlwire.ERUnknownStmtHandler {
		t.Fatalf("unknown statement: %v", &e)
	}

	// A packet out of sequence is answered with an error and the
	// connection is closed.
	m.w.WritePacket(5, []byte{mysqlwire.ComPing})
	m.w.Flush()
	if p := m.read(); !mysqlwire.IsERR(p) {
		t.Fatalf("malformed: % x", p)
	}
	if _, _, err := m.r.ReadPacket(); err == nil {
		t.Fatal("connection still open after a malformed packet")
	}
}

// changeUserProxyYAML configures a proxy of TestMySQLChangeUser's own in
// front of the shared MariaDB cluster: it knows the users app and other
// (both on MariaDB) and ghost (unknown to MariaDB).
const changeUserProxyYAML = `
listeners:
  - {name: cu-native, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: auto, auth: mysql_native_password}
  - {name: cu-sha, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: auto}
clusters:
  my:
    protocol: mysql
    backends: [{address: %q}, {address: %q}, {address: %q}]
users:
  - {name: app, password: app}
  - {name: other, password: other}
  - {name: ghost, password: ghost}
health: {interval: 100ms, timeout: 2s, failures: 3, successes: 1}
server: {auth_failure_delay: 10ms}
log: {level: warn}
`

// createOtherUser creates the MariaDB user other/other (SELECT, INSERT on
// app.*) on the primary and waits until both replicas have it.
func createOtherUser(t *testing.T, ctx context.Context, e *myEnv) {
	t.Helper()
	pdb := myOpenDSN(t, e.cluster.Primary.AdminDSN(""))
	for _, q := range []string{
		"CREATE USER IF NOT EXISTS 'other'@'%' IDENTIFIED BY 'other'",
		"GRANT SELECT, INSERT ON app.* TO 'other'@'%'",
	} {
		myMustExec(t, ctx, pdb, q)
	}
	var pos string
	if err := pdb.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.cluster.Replicas {
		rdb, err := sql.Open("mysql", r.AdminDSN(""))
		if err != nil {
			t.Fatal(err)
		}
		var res int
		err = rdb.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 20)", pos).Scan(&res)
		rdb.Close()
		if err != nil || res != 0 {
			t.Fatalf("%s did not replay %s (%d, %v)", r.Name, pos, res, err)
		}
	}
}

func TestMySQLChangeUser(t *testing.T) {
	e := mysqlEnv(t)
	ctx := testCtx(t)
	createOtherUser(t, ctx, e)
	n := e.cluster.Nodes()
	cfg, err := config.Parse([]byte(fmt.Sprintf(changeUserProxyYAML, n[0].Addr(), n[1].Addr(), n[2].Addr())), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	px := startProxyCfg(t, ctx, cfg, slog.LevelWarn)
	nativeAddr, shaAddr := px.Addr("cu-native").String(), px.Addr("cu-sha").String()

	currentUser := func(m *rawMy, q string) string {
		t.Helper()
		first, rows := m.query(q)
		if len(rows) != 1 {
			t.Fatalf("%s: % x %q", q, first, rows)
		}
		return textValue(rows[0])
	}
	wantOK := func(what string, p []byte) {
		t.Helper()
		if !mysqlwire.IsOK(p, rawCaps) {
			e, _ := mysqlwire.ParseERR(p)
			t.Fatalf("%s: % x (%v)", what, p, &e)
		}
	}
	wantDenied := func(m *rawMy, what string, p []byte) {
		t.Helper()
		e, err := mysqlwire.ParseERR(p)
		if !mysqlwire.IsERR(p) || err != nil || e.Code != mysqlwire.ERAccessDeniedError {
			t.Fatalf("%s: % x, want ERR 1045", what, p)
		}
		if _, _, err := m.r.ReadPacket(); err == nil {
			t.Fatalf("%s: connection still open after the failed COM_CHANGE_USER", what)
		}
	}

	// State of app's session: a SET, a prepared statement, an open
	// transaction with an insert (pinned to the writer).
	m, p := dialRawMyAt(t, nativeAddr, "app", "app", mysqlwire.AuthNativePassword)
	wantOK("login", p)
	wantOK("create", first(m.query("CREATE TABLE IF NOT EXISTS cu (who VARCHAR(64) NOT NULL, tag VARCHAR(64) NOT NULL)")))
	tag := fmt.Sprintf("t%d", time.Now().UnixNano())
	if u := currentUser(m, "SELECT CURRENT_USER()"); u != "app@%" {
		t.Fatalf("CURRENT_USER() before: %q", u)
	}
	wantOK("set", first(m.query("SET SESSION sql_mode = 'ANSI_QUOTES'")))
	m.send(append([]byte{mysqlwire.ComStmtPrepare}, "SELECT 1"...))
	pok, err := mysqlwire.ParseStmtPrepareOK(m.read(), rawCaps)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	for range 2 { // column def, EOF
		m.read()
	}
	wantOK("begin", first(m.query("BEGIN")))
	wantOK("insert", first(m.query("INSERT INTO cu VALUES ('app-uncommitted', '"+tag+"')")))

	// Change to other (native, as the listener offers).
	wantOK("change user to other", m.changeUser("other", "other", mysqlwire.AuthNativePassword))
	if m.switched != "" {
		t.Fatalf("switched to %s", m.switched)
	}
	for _, q := range []string{"SELECT CURRENT_USER()", "/* sluice:writer */ SELECT CURRENT_USER()"} {
		if u := currentUser(m, q); u != "other@%" {
			t.Fatalf("%s after COM_CHANGE_USER: %q", q, u)
		}
	}
	for _, q := range []string{"SELECT @@sql_mode", "/* sluice:writer */ SELECT @@sql_mode"} {
		if v := currentUser(m, q); v == "ANSI_QUOTES" {
			t.Fatalf("%s after COM_CHANGE_USER: session state kept", q)
		}
	}
	b := mysqlwire.AppendUint32([]byte{mysqlwire.ComStmtExecute}, pok.StatementID)
	b = append(b, 0, 1, 0, 0, 0)
	m.send(b)
	if p := m.read(); !mysqlwire.IsERR(p) {
		t.Fatalf("prepared statement survived COM_CHANGE_USER: % x", p)
	}
	// The transaction was rolled back; other may insert (and reads its
	// write back), but not delete.
	wantOK("insert as other", first(m.query("INSERT INTO cu VALUES ('other', '"+tag+"')")))
	if _, rows := m.query("SELECT who FROM cu WHERE tag = '" + tag + "' ORDER BY who"); len(rows) != 1 || textValue(rows[0]) != "other" {
		t.Fatalf("rows after COM_CHANGE_USER: %q", rows)
	}
	if p, _ := m.query("DELETE FROM cu"); !mysqlwire.IsERR(p) {
		t.Fatalf("other may delete: % x", p)
	}

	// Back to app with caching_sha2_password: the client is switched to
	// the listener's plugin.
	wantOK("change user to app", m.changeUser("app", "app", mysqlwire.AuthCachingSHA2Password))
	if m.switched != mysqlwire.AuthNativePassword {
		t.Fatalf("not switched to %s (%q)", mysqlwire.AuthNativePassword, m.switched)
	}
	if u := currentUser(m, "/* sluice:writer */ SELECT CURRENT_USER()"); u != "app@%" {
		t.Fatalf("CURRENT_USER() after the second COM_CHANGE_USER: %q", u)
	}
	// A wrong password: ERR 1045 and the connection is closed.
	wantDenied(m, "wrong password", m.changeUser("other", "wrong", mysqlwire.AuthNativePassword))

	// caching_sha2_password listener: the fast path.
	m, p = dialRawMyAt(t, shaAddr, "app", "app", mysqlwire.AuthCachingSHA2Password)
	wantOK("login (sha2)", p)
	wantOK("change user (sha2)", m.changeUser("other", "other", mysqlwire.AuthCachingSHA2Password))
	if u := currentUser(m, "SELECT CURRENT_USER()"); u != "other@%" {
		t.Fatalf("CURRENT_USER() after COM_CHANGE_USER (sha2): %q", u)
	}
	wantDenied(m, "unknown user", m.changeUser("nobody", "x", mysqlwire.AuthCachingSHA2Password))

	// A user the proxy knows but MariaDB does not: the backend refuses.
	m, p = dialRawMyAt(t, shaAddr, "app", "app", mysqlwire.AuthCachingSHA2Password)
	wantOK("login (sha2)", p)
	wantDenied(m, "user unknown to the backend", m.changeUser("ghost", "ghost", mysqlwire.AuthCachingSHA2Password))
}

// first returns the first packet of a result.
func first(p []byte, _ [][]byte) []byte { return p }
