package mysqlwire

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

const mariadbAddr = "127.0.0.1:3306"

// testClient is a minimal MySQL client built from this package, used to
// check it against a real server.
type testClient struct {
	t    testing.TB
	conn net.Conn
	r    *PacketReader
	w    *PacketWriter
	caps uint64 // negotiated
	hs   *Handshake

	metadataSkipped int      // result sets whose column definitions the server skipped
	greeting        []byte   // the server's handshake payload
	packets         [][]byte // every payload read after the handshake
}

// dialMariaDB connects and authenticates as root with an empty password,
// offering clientCaps. It skips the test when nothing listens on the port.
func dialMariaDB(t testing.TB, clientCaps uint64) *testClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", mariadbAddr, 2*time.Second)
	if err != nil {
		t.Skipf("MariaDB not reachable on %s: %v", mariadbAddr, err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &testClient{t: t, conn: conn,
		r: NewPacketReader(bufio.NewReader(conn)),
		w: NewPacketWriter(bufio.NewWriter(conn))}

	seq, payload, err := c.r.ReadPacket()
	if err != nil {
		t.Fatalf("reading handshake: %v", err)
	}
	if seq != 0 {
		t.Fatalf("handshake seq %d", seq)
	}
	hs, err := ParseHandshake(payload)
	if err != nil {
		t.Fatalf("parsing handshake: %v", err)
	}
	c.hs = hs
	c.greeting = append([]byte(nil), payload...)
	t.Logf("server %q, connection %d, plugin %q, caps %s", hs.ServerVersion, hs.ConnectionID, hs.AuthPluginName, FormatCapabilities(hs.Capabilities))
	if !strings.Contains(hs.ServerVersion, "MariaDB") || !hs.IsMariaDB() {
		t.Fatalf("server version %q does not say MariaDB", hs.ServerVersion)
	}
	if hs.AuthPluginName != AuthNativePassword {
		t.Fatalf("default auth plugin %q, want %s", hs.AuthPluginName, AuthNativePassword)
	}
	if len(hs.AuthPluginData) != ScrambleLength {
		t.Fatalf("scramble is %d bytes", len(hs.AuthPluginData))
	}
	if hs.Capabilities&ClientMySQL != 0 || hs.Capabilities>>32 == 0 {
		t.Fatalf("MariaDB should announce extended capabilities: %s", FormatCapabilities(hs.Capabilities))
	}
	// Re-encoding the parsed handshake gives back the server's bytes.
	if again := hs.Append(nil); string(again) != string(payload) {
		t.Errorf("re-encoded handshake differs from the server's:\n% x\n% x", payload, again)
	}

	c.caps = clientCaps & hs.Capabilities
	resp := HandshakeResponse{
		Capabilities:   c.caps,
		MaxPacketSize:  1 << 24,
		CharacterSet:   byte(CollationUTF8MB4GeneralCI),
		Username:       "root",
		AuthResponse:   ScrambleNativePassword(hs.AuthPluginData, nil),
		AuthPluginName: AuthNativePassword,
		Database:       "mysql", // temporary tables need a schema; this one always exists
		ConnectAttrs:   map[string]string{"_client_name": "sluice-mysqlwire-test", "program_name": "go test"},
	}
	c.write(seq+1, resp.Append(nil))
	seq, payload = c.read()
	if len(payload) > 0 && payload[0] == AuthSwitchRequestHeader {
		plugin, data, err := ParseAuthSwitchRequest(payload)
		if err != nil || plugin != AuthNativePassword {
			t.Fatalf("auth switch to %q: %v", plugin, err)
		}
		c.write(seq+1, ScrambleNativePassword(data, nil))
		_, payload = c.read()
	}
	if IsERR(payload) {
		e, _ := ParseERR(payload)
		t.Fatalf("authentication failed: %v", &e)
	}
	ok, err := ParseOK(payload, c.caps)
	if err != nil || !IsOK(payload, c.caps) {
		t.Fatalf("expected OK after auth, got % x (%v)", payload, err)
	}
	if ok.Status&ServerStatusAutocommit == 0 {
		t.Fatalf("auth OK status %#x lacks AUTOCOMMIT", ok.Status)
	}
	return c
}

func (c *testClient) write(seq byte, payload []byte) {
	c.t.Helper()
	if _, err := c.w.WritePacket(seq, payload); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// read returns a copy of the next payload.
func (c *testClient) read() (byte, []byte) {
	c.t.Helper()
	seq, p, err := c.r.ReadPacket()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	p = append([]byte(nil), p...)
	c.packets = append(c.packets, p)
	return seq, p
}

// result is what one command returned.
type result struct {
	columns []ColumnDefinition
	rows    [][]byte
	end     []byte // the OK/EOF that ended it
	ok      *OKPacket
}

// command sends a command payload and reads one result (an OK, or a result
// set up to its terminator). It fails the test on ERR.
func (c *testClient) command(payload []byte) result {
	c.t.Helper()
	c.write(0, payload)
	return c.readResult(false, nil)
}

// readResult reads one result; cached are the columns of a prepared
// statement, used when the server skips unchanged metadata
// (MariaDBClientCacheMetadata).
func (c *testClient) readResult(binary bool, cached []ColumnDefinition) result {
	c.t.Helper()
	var res result
	_, p := c.read()
	if IsERR(p) {
		e, _ := ParseERR(p)
		c.t.Fatalf("server error: %v", &e)
	}
	if IsOK(p, c.caps) {
		ok, err := ParseOK(p, c.caps)
		if err != nil {
			c.t.Fatal(err)
		}
		res.ok, res.end = &ok, p
		return res
	}
	n, follows, ok := ParseColumnCountMeta(p)
	if !ok {
		c.t.Fatalf("not a column count: % x", p)
	}
	if hasMeta := len(p) > LenEncIntSize(n); hasMeta != (c.caps&MariaDBClientCacheMetadata != 0) {
		c.t.Fatalf("metadata-follows byte present %v, caps %s", hasMeta, FormatCapabilities(c.caps))
	}
	if !follows {
		if uint64(len(cached)) != n {
			c.t.Fatalf("server skipped metadata of %d columns, %d cached", n, len(cached))
		}
		res.columns = cached
		c.metadataSkipped++
	}
	for i := uint64(0); follows && i < n; i++ {
		_, p = c.read()
		col, err := ParseColumnDefinition(p, c.caps)
		if err != nil {
			c.t.Fatalf("column %d: %v", i, err)
		}
		res.columns = append(res.columns, col)
	}
	if c.caps&ClientDeprecateEOF == 0 {
		_, p = c.read()
		if !IsEOF(p, c.caps) {
			c.t.Fatalf("no EOF after column definitions: % x", p)
		}
		if _, err := ParseEOF(p); err != nil {
			c.t.Fatal(err)
		}
	}
	for {
		_, p = c.read()
		if IsEOF(p, c.caps) {
			res.end = p
			if c.caps&ClientDeprecateEOF != 0 {
				ok, err := ParseOK(p, c.caps)
				if err != nil {
					c.t.Fatal(err)
				}
				res.ok = &ok
			}
			return res
		}
		if IsERR(p) {
			e, _ := ParseERR(p)
			c.t.Fatalf("error in rows: %v", &e)
		}
		if binary && p[0] != 0 {
			c.t.Fatalf("binary row header % x", p[0])
		}
		res.rows = append(res.rows, p)
	}
}

func (c *testClient) query(sql string) result {
	c.t.Helper()
	return c.command(append([]byte{ComQuery}, sql...))
}

func (c *testClient) status(res result) uint16 {
	c.t.Helper()
	st, ok := StatusFlags(res.end, c.caps)
	if !ok {
		c.t.Fatalf("no status flags in % x", res.end)
	}
	if res.ok != nil && res.ok.Status != st {
		c.t.Fatalf("StatusFlags %#x, ParseOK %#x", st, res.ok.Status)
	}
	return st
}

const testClientCaps = ClientProtocol41 | ClientSecureConnection | ClientPluginAuth | ClientPluginAuthLenencClientData |
	ClientTransactions | ClientMultiResults | ClientMultiStatements | ClientPSMultiResults | ClientSessionTrack |
	ClientConnectAttrs | ClientLongFlag | ClientConnectWithDB

func TestMariaDBInterop(t *testing.T) {
	for _, mode := range []struct {
		name string
		caps uint64
	}{
		{"deprecate_eof", testClientCaps | ClientDeprecateEOF},
		{"classic_eof", testClientCaps | ClientLongPassword}, // CLIENT_MYSQL set: no extended caps
		{"mariadb_extended", testClientCaps | ClientDeprecateEOF | MariaDBClientCacheMetadata | MariaDBClientExtendedTypeInfo},
	} {
		t.Run(mode.name, func(t *testing.T) {
			c := dialMariaDB(t, mode.caps)

			// SELECT 1: column count, column definition, [EOF], row, EOF/OK.
			res := c.query("SELECT 1")
			if len(res.columns) != 1 || res.columns[0].Name != "1" || res.columns[0].Type != TypeLongLong && res.columns[0].Type != TypeLong {
				t.Fatalf("columns %+v", res.columns)
			}
			if len(res.rows) != 1 || string(res.rows[0]) != "\x011" {
				t.Fatalf("rows %q", res.rows)
			}
			if st := c.status(res); st&ServerStatusAutocommit == 0 || st&ServerMoreResultsExists != 0 {
				t.Fatalf("status %#x", st)
			}

			// Multi-statement: the first result says more follow.
			c.write(0, append([]byte{ComQuery}, "SELECT 1; SELECT 'two'"...))
			first := c.readResult(false, nil)
			if c.status(first)&ServerMoreResultsExists == 0 {
				t.Fatal("MORE_RESULTS_EXISTS not set after the first result")
			}
			second := c.readResult(false, nil)
			if c.status(second)&ServerMoreResultsExists != 0 || string(second.rows[0]) != "\x03two" {
				t.Fatalf("second result %q status %#x", second.rows, c.status(second))
			}

			// Session tracking: autocommit and last_gtid.
			res = c.query("SET session_track_system_variables='last_gtid,autocommit'")
			if res.ok == nil {
				t.Fatal("SET did not return OK")
			}
			if items, err := SessionTrackItems(res.ok.SessionState); err != nil {
				t.Fatal(err)
			} else if v, ok := varValue(items, "last_gtid"); ok {
				t.Logf("tracking on: last_gtid=%q", v)
			}
			res = c.query("SET autocommit=0")
			if res.ok.Status&ServerStatusAutocommit != 0 || res.ok.Status&ServerSessionStateChanged == 0 {
				t.Fatalf("SET autocommit=0 status %#x", res.ok.Status)
			}
			items, err := SessionTrackItems(res.ok.SessionState)
			if err != nil {
				t.Fatal(err)
			}
			if !hasVar(items, "autocommit", "OFF") {
				t.Fatalf("session state %q lacks autocommit=OFF", items)
			}
			res = c.query("SET autocommit=1")
			if res.ok.Status&ServerStatusAutocommit == 0 {
				t.Fatalf("status %#x", res.ok.Status)
			}
			res = c.query("BEGIN")
			if res.ok.Status&ServerStatusInTrans == 0 {
				t.Fatalf("BEGIN status %#x lacks IN_TRANS", res.ok.Status)
			}
			res = c.query("SELECT 2")
			if c.status(res)&ServerStatusInTrans == 0 {
				t.Fatal("IN_TRANS missing from the result set terminator")
			}
			res = c.query("COMMIT")
			if res.ok.Status&ServerStatusInTrans != 0 {
				t.Fatalf("COMMIT status %#x", res.ok.Status)
			}
			res = c.query("START TRANSACTION READ ONLY")
			if res.ok.Status&ServerStatusInTransReadonly == 0 {
				t.Fatalf("read-only transaction status %#x", res.ok.Status)
			}
			c.query("ROLLBACK")

			c.query("CREATE TEMPORARY TABLE sluice_mysqlwire_t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10))")
			res = c.query("INSERT INTO sluice_mysqlwire_t (v) VALUES ('a'), ('b')")
			if res.ok == nil || res.ok.AffectedRows != 2 || res.ok.LastInsertID != 1 {
				t.Fatalf("INSERT OK %+v", res.ok)
			}
			items, err = SessionTrackItems(res.ok.SessionState)
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := varValue(items, "last_gtid"); ok {
				t.Logf("last_gtid reported after INSERT: %q", v)
			} else {
				t.Logf("server did not report last_gtid after INSERT (binary log off?); session state %q", items)
			}

			// Schema tracking.
			c.query("SET session_track_schema=ON")
			res = c.command(append([]byte{ComInitDB}, "information_schema"...))
			items, _ = SessionTrackItems(res.ok.SessionState)
			found := false
			for _, it := range items {
				found = found || it.Type == SessionTrackSchema && string(it.Value) == "information_schema"
			}
			if !found {
				t.Fatalf("COM_INIT_DB: schema change not tracked: %q", items)
			}

			c.preparedStatements(t)

			// COM_PING and an ERR with SQLSTATE.
			if res = c.command([]byte{ComPing}); res.ok == nil {
				t.Fatal("COM_PING")
			}
			c.write(0, append([]byte{ComInitDB}, "no_such_db_sluice"...))
			_, p := c.read()
			e, err := ParseERR(p)
			if err != nil || e.Code != ERBadDBError || e.SQLState != "42000" {
				t.Fatalf("bad db error %+v %v", e, err)
			}
			c.write(0, []byte{ComQuit})
		})
	}
}

// preparedStatements runs a prepare / execute / close cycle.
func (c *testClient) preparedStatements(t *testing.T) {
	c.write(0, append([]byte{ComStmtPrepare}, "SELECT ? + 1, CONCAT(?, 'x'), ? IS NULL"...))
	_, p := c.read()
	if IsERR(p) {
		e, _ := ParseERR(p)
		t.Fatalf("prepare: %v", &e)
	}
	pok, err := ParseStmtPrepareOK(p, c.caps)
	if err != nil || pok.NumParams != 3 || pok.NumColumns != 3 {
		t.Fatalf("prepare OK %+v %v", pok, err)
	}
	for _, n := range []uint16{pok.NumParams, pok.NumColumns} {
		for i := uint16(0); i < n; i++ {
			_, p = c.read()
			if _, err := ParseColumnDefinition(p, c.caps); err != nil {
				t.Fatalf("definition %d: %v", i, err)
			}
		}
		if n > 0 && c.caps&ClientDeprecateEOF == 0 {
			if _, p = c.read(); !IsEOF(p, c.caps) {
				t.Fatalf("no EOF after definitions: % x", p)
			}
		}
	}
	st := &StmtState{NumParams: int(pok.NumParams)}
	x := StmtExecute{StatementID: 12345, IterationCount: 1, NewParamsBound: true, Params: []StmtParam{
		{Type: ParamType{TypeLongLong, 0}, Value: AppendUint64(nil, 41)},
		{Type: ParamType{TypeVarString, 0}, Value: AppendLenEncString(nil, "abc")},
		{Type: ParamType{TypeLong, 0}, Null: true},
	}}
	payload := x.Append(nil, c.caps)
	// The proxy's path: decode, then map the client's id to the backend's.
	dec, err := ParseStmtExecute(payload, st, c.caps)
	if err != nil || len(dec.Params) != 3 || !dec.Params[2].Null || string(dec.Params[1].Data()) != "abc" {
		t.Fatalf("decode own execute: %+v %v", dec, err)
	}
	if err := SetStatementID(payload, pok.StatementID); err != nil {
		t.Fatal(err)
	}
	st.Executed(dec)
	c.write(0, payload)
	res := c.readResult(true, nil)
	if len(res.columns) != 3 || len(res.rows) != 1 {
		t.Fatalf("execute result: %d columns %d rows", len(res.columns), len(res.rows))
	}
	row := res.rows[0]
	// Binary row: 0x00, NULL bitmap (offset 2), values.
	d := NewDecoder(row)
	d.Skip(1 + (len(res.columns)+7+2)/8)
	off := d.Offset()
	var vals [][]byte
	for i, col := range res.columns {
		if row[1+(i+2)/8]&(1<<((i+2)%8)) != 0 {
			vals = append(vals, nil)
			continue
		}
		n, err := BinaryValueSize(col.Type, row[off:])
		if err != nil {
			t.Fatalf("column %d type %#x: %v", i, col.Type, err)
		}
		vals = append(vals, row[off:off+n])
		off += n
	}
	if le64(vals[0]) != 42 {
		t.Fatalf("? + 1 = % x", vals[0])
	}
	if s, _, _ := ReadLenEncBytes(vals[1]); string(s) != "abcx" {
		t.Fatalf("CONCAT = %q", s)
	}
	// Second execution without re-sending the types.
	x.NewParamsBound = false
	x.Params[0].Value = AppendUint64(nil, 99)
	payload = x.Append(nil, c.caps)
	if _, err := ParseStmtExecute(payload, st, c.caps); err != nil {
		t.Fatal(err)
	}
	_ = SetStatementID(payload, pok.StatementID)
	c.write(0, payload)
	res = c.readResult(true, res.columns)
	if len(res.rows) != 1 || c.status(res)&ServerStatusAutocommit == 0 {
		t.Fatal("second execute")
	}
	if c.caps&MariaDBClientCacheMetadata != 0 {
		t.Logf("server skipped metadata of %d result set(s)", c.metadataSkipped)
	}
	c.write(0, AppendStmtCommand(nil, ComStmtClose, pok.StatementID)) // no response
	c.write(0, AppendStmtCommand(nil, ComStmtReset, pok.StatementID))
	_, p = c.read()
	if e, err := ParseERR(p); err != nil || e.Code != ERUnknownStmtHandler {
		t.Fatalf("reset of a closed statement: %+v %v", e, err)
	}
}

func varValue(items []SessionTrackItem, name string) (string, bool) {
	for _, it := range items {
		if it.Type == SessionTrackSystemVariables && string(it.Name) == name {
			return string(it.Value), true
		}
	}
	return "", false
}

func hasVar(items []SessionTrackItem, name, value string) bool {
	v, ok := varValue(items, name)
	return ok && v == value
}
