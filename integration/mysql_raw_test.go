package integration

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

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
}

const rawCaps = mysqlwire.ClientLongPassword | mysqlwire.ClientProtocol41 | mysqlwire.ClientSecureConnection |
	mysqlwire.ClientPluginAuth | mysqlwire.ClientTransactions | mysqlwire.ClientConnectWithDB |
	mysqlwire.ClientMultiResults

func dialRawMy(t *testing.T, listener string) *rawMy {
	t.Helper()
	e := mysqlEnv(t)
	c, err := net.DialTimeout("tcp", e.proxy.Addr(listener).String(), 5*time.Second)
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
	if hs.AuthPluginName != mysqlwire.AuthNativePassword {
		t.Fatalf("listener %s offers %s", listener, hs.AuthPluginName)
	}
	resp := mysqlwire.HandshakeResponse{
		Capabilities: rawCaps, MaxPacketSize: 1 << 24, CharacterSet: 45, Username: "app",
		AuthResponse: mysqlwire.ScrambleNativePassword(hs.AuthPluginData, []byte("app")), Database: "app",
		AuthPluginName: mysqlwire.AuthNativePassword,
	}
	m.w.WritePacket(1, resp.Append(nil))
	m.w.Flush()
	if p := m.read(); !mysqlwire.IsOK(p, rawCaps) {
		t.Fatalf("login: % x", p)
	}
	return m
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
