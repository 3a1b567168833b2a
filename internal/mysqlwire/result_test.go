package mysqlwire

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

const (
	caps41     = ClientProtocol41 | ClientTransactions
	capsTrack  = caps41 | ClientSessionTrack
	capsNewEOF = capsTrack | ClientDeprecateEOF
)

func TestOKRoundTrip(t *testing.T) {
	state := AppendSessionTrack(nil,
		SessionTrackItem{Type: SessionTrackSystemVariables, Name: []byte("autocommit"), Value: []byte("OFF")},
		SessionTrackItem{Type: SessionTrackSchema, Value: []byte("shop")})
	for _, tc := range []struct {
		ok   OKPacket
		caps uint64
	}{
		{OKPacket{AffectedRows: 1, LastInsertID: 300, Status: ServerStatusAutocommit, Warnings: 2, Info: "Rows matched: 1"}, caps41},
		{OKPacket{AffectedRows: 1 << 40, Status: ServerStatusInTrans}, caps41},
		{OKPacket{Status: ServerStatusAutocommit | ServerSessionStateChanged, Info: "", SessionState: state}, capsTrack},
		{OKPacket{Status: ServerStatusAutocommit, Info: "hello"}, capsTrack},
		{OKPacket{Status: ServerStatusAutocommit}, capsTrack},
		{OKPacket{Header: EOFHeader, Status: ServerStatusAutocommit | ServerMoreResultsExists}, capsNewEOF},
		{OKPacket{AffectedRows: 3, Status: 2}, ClientTransactions},
		{OKPacket{AffectedRows: 3, Info: "x"}, 0},
	} {
		b := AppendOK(nil, tc.ok, tc.caps)
		got, err := ParseOK(b, tc.caps)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.ok) {
			t.Fatalf("caps %s:\n got %+v\nwant %+v", FormatCapabilities(tc.caps), got, tc.ok)
		}
		if tc.ok.Header == OKHeader && !IsOK(b, tc.caps) {
			t.Fatalf("IsOK false for % x", b)
		}
		if st, ok := StatusFlags(b, tc.caps); (tc.caps&(ClientProtocol41|ClientTransactions) != 0) && (!ok || st != tc.ok.Status) {
			t.Fatalf("StatusFlags %#x %v, want %#x", st, ok, tc.ok.Status)
		}
	}
	// The minimal OK a server sends.
	min := []byte{0, 0, 0, 2, 0, 0, 0}
	if ok, err := ParseOK(min, capsTrack); err != nil || ok.Status != ServerStatusAutocommit {
		t.Fatalf("%+v %v", ok, err)
	}
	for i := 0; i < len(min); i++ {
		if _, err := ParseOK(min[:i], caps41); err == nil {
			t.Fatalf("truncated OK (%d bytes) accepted", i)
		}
	}
	if _, err := ParseOK([]byte{0xff, 0, 0, 0, 0, 0, 0}, caps41); err == nil {
		t.Fatal("ERR parsed as OK")
	}
}

func TestERRRoundTrip(t *testing.T) {
	e := NewERR(ERAccessDeniedError, "Access denied for user 'x'@'y' (using password: YES)")
	if e.SQLState != "28000" {
		t.Fatalf("state %q", e.SQLState)
	}
	b := AppendERR(nil, e, caps41)
	if !bytes.HasPrefix(b, []byte{0xff, 0x15, 0x04, '#', '2', '8'}) || !IsERR(b) {
		t.Fatalf("wire % x", b[:9])
	}
	got, err := ParseERR(b)
	if err != nil || got != e {
		t.Fatalf("got %+v %v", got, err)
	}
	if s := got.Error(); s != "ERROR 1045 (28000): "+e.Message {
		t.Fatalf("Error() = %q", s)
	}
	// Without the marker (before the handshake response).
	b = AppendERR(nil, NewERR(ERConCountError, "Too many connections"), 0)
	got, err = ParseERR(b)
	if err != nil || got.SQLState != "" || got.Message != "Too many connections" || got.Code != 1040 {
		t.Fatalf("no marker: %+v %v", got, err)
	}
	if !strings.HasPrefix(got.Error(), "ERROR 1040: ") {
		t.Fatalf("Error() = %q", got.Error())
	}
	// Empty or odd SQLSTATE is replaced.
	got, _ = ParseERR(AppendERR(nil, ERRPacket{Code: 1, SQLState: "bad"}, caps41))
	if got.SQLState != "HY000" {
		t.Fatalf("state %q", got.SQLState)
	}
	for _, bad := range [][]byte{nil, {0xff}, {0xff, 1}, {0, 1, 2}} {
		if _, err := ParseERR(bad); err == nil {
			t.Fatalf("% x accepted", bad)
		}
	}
	for code, state := range map[uint16]string{ERBadDBError: "42000", ERNetPacketTooLarge: "08S01", ERUnknownComError: "08S01",
		ERConCountError: "08004", CRServerLost: "HY000", EROptionPreventsStatement: "HY000", ERNotSupportedAuthMode: "08004",
		ERHandshakeError: "08S01", ERQueryInterrupted: "70100"} {
		if SQLStateFor(code) != state {
			t.Fatalf("SQLStateFor(%d) = %q, want %q", code, SQLStateFor(code), state)
		}
	}
}

func TestEOF(t *testing.T) {
	e := EOFPacket{Warnings: 1, Status: ServerStatusAutocommit | ServerMoreResultsExists}
	b := AppendEOF(nil, e)
	if len(b) != 5 {
		t.Fatalf("EOF is %d bytes", len(b))
	}
	got, err := ParseEOF(b)
	if err != nil || got != e {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := ParseEOF([]byte{0xfe}); err != nil || got != (EOFPacket{}) {
		t.Fatal("pre-4.1 EOF")
	}
	for _, bad := range [][]byte{nil, {0}, {0xfe, 1}, make([]byte, 9)} {
		if _, err := ParseEOF(bad); err == nil {
			t.Fatalf("% x accepted", bad)
		}
	}
	// Classic EOF's status flags are found whatever the caps.
	for _, c := range []uint64{caps41, capsNewEOF} {
		if st, ok := StatusFlags(b, c); !ok || st != e.Status {
			t.Fatalf("caps %#x: status %#x %v", c, st, ok)
		}
	}
}

func TestPacketClassification(t *testing.T) {
	eof := AppendEOF(nil, EOFPacket{Status: 2})
	okEOF := AppendOK(nil, OKPacket{Header: EOFHeader, Status: 2, Info: strings.Repeat("i", 20)}, capsNewEOF)
	bigRow := append([]byte{0xfe}, AppendUint64(nil, 1<<24)...) // a row whose first column is 16 MiB
	ok := AppendOK(nil, OKPacket{Status: 2}, caps41)
	textRow := []byte{0, 1, 'x'} // first column '', second 'x'
	for _, tc := range []struct {
		name             string
		p                []byte
		caps             uint64
		isOK, isEOF, err bool
	}{
		{"eof", eof, caps41, false, true, false},
		{"eof deprecate", eof, capsNewEOF, false, true, false},
		{"ok-eof deprecate", okEOF, capsNewEOF, false, true, false},
		{"ok-eof without deprecate", okEOF, caps41, false, false, false},
		{"big row", bigRow, caps41, false, false, false},
		{"ok", ok, caps41, true, false, false},
		{"short 0x00 row", textRow, caps41, false, false, false},
		{"err", []byte{0xff, 1, 0, 'x'}, caps41, false, false, true},
		{"empty", nil, caps41, false, false, false},
	} {
		if IsOK(tc.p, tc.caps) != tc.isOK || IsEOF(tc.p, tc.caps) != tc.isEOF || IsERR(tc.p) != tc.err {
			t.Fatalf("%s: IsOK %v IsEOF %v IsERR %v", tc.name, IsOK(tc.p, tc.caps), IsEOF(tc.p, tc.caps), IsERR(tc.p))
		}
	}
	if st, ok := StatusFlags(okEOF, capsNewEOF); !ok || st != 2 {
		t.Fatal("status of the 0xfe OK")
	}
	for _, p := range [][]byte{bigRow, {0xff, 1, 2}, {0, 0}, {0xfe, 0, 0, 2}, textRow} {
		if _, ok := StatusFlags(p, capsNewEOF); ok && p[0] != 0xfe {
			t.Fatalf("StatusFlags accepted % x", p)
		}
	}
	if _, ok := StatusFlags(bigRow, caps41); ok {
		t.Fatal("row taken for EOF")
	}
}

func TestStatusFlagsZeroAlloc(t *testing.T) {
	ok := AppendOK(nil, OKPacket{AffectedRows: 1000, LastInsertID: 1 << 30, Status: 3}, capsNewEOF)
	if n := testing.AllocsPerRun(100, func() { StatusFlags(ok, capsNewEOF) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func TestSessionTrackItems(t *testing.T) {
	items := []SessionTrackItem{
		{Type: SessionTrackSystemVariables, Name: []byte("last_gtid"), Value: []byte("0-1-42")},
		{Type: SessionTrackSchema, Value: []byte("shop")},
		{Type: SessionTrackStateChange, Value: []byte("1")},
		{Type: SessionTrackGTIDs, Value: []byte("3E11FA47-71CA-11E1-9E33-C80AA9429562:23")},
		{Type: SessionTrackTransactionCharacteristics, Value: []byte("START TRANSACTION READ ONLY;")},
		{Type: SessionTrackTransactionState, Value: []byte("T_R_____")},
		{Type: 42, Value: []byte("raw")},
	}
	b := AppendSessionTrack(nil, items...)
	got, err := SessionTrackItems(b)
	if err != nil || !reflect.DeepEqual(got, items) {
		t.Fatalf("got %q %v", got, err)
	}
	// Hand-built bytes as a server sends them: 00 <len> <lenenc name> <lenenc value>.
	raw := []byte{0x00, 0x0f, 0x0a, 'a', 'u', 't', 'o', 'c', 'o', 'm', 'm', 'i', 't', 0x03, 'O', 'F', 'F'}
	got, err = SessionTrackItems(raw)
	if err != nil || len(got) != 1 || string(got[0].Name) != "autocommit" || string(got[0].Value) != "OFF" {
		t.Fatalf("server bytes: %q %v", got, err)
	}
	// Two pairs in one system-variables entry.
	body := AppendLenEncString(AppendLenEncString(AppendLenEncString(AppendLenEncString(nil, "a"), "1"), "b"), "2")
	got, err = SessionTrackItems(AppendLenEncBytes([]byte{0}, body))
	if err != nil || len(got) != 2 || string(got[1].Name) != "b" {
		t.Fatalf("two pairs: %q %v", got, err)
	}
	for _, bad := range [][]byte{{0}, {0, 5, 1}, {0, 0}, {1, 2, 5, 'x'}, {0, 2, 1, 'a'}} {
		if _, err := SessionTrackItems(bad); err == nil {
			t.Fatalf("% x accepted", bad)
		}
	}
}

func TestColumnCountAndDefinition(t *testing.T) {
	for _, tc := range []struct {
		p       []byte
		n       uint64
		ok      bool
		follows bool
	}{
		{[]byte{1}, 1, true, true},
		{[]byte{3, 1}, 3, true, true},
		{[]byte{3, 0}, 3, true, false},
		{[]byte{0xfc, 0x00, 0x01}, 256, true, true},
		{[]byte{0}, 0, false, false},
		{[]byte{0xfb, 'f'}, 0, false, false},
		{[]byte{0xff, 1, 2}, 0, false, false},
		{[]byte{0xfe, 0, 0, 2, 0, 0, 0}, 0, false, false},
		{[]byte{2, 1, 1}, 0, false, false},
		{nil, 0, false, false},
	} {
		n, ok := ParseColumnCount(tc.p)
		n2, follows, ok2 := ParseColumnCountMeta(tc.p)
		if n != tc.n || ok != tc.ok || n2 != tc.n || ok2 != tc.ok || follows != tc.follows {
			t.Fatalf("% x: %d %v / %v, want %d %v / %v", tc.p, n, ok, follows, tc.n, tc.ok, tc.follows)
		}
	}
	if !bytes.Equal(AppendColumnCount(nil, 300), []byte{0xfc, 0x2c, 0x01}) {
		t.Fatal("AppendColumnCount")
	}
	c := ColumnDefinition{Schema: "db", Table: "t", OrgTable: "tbl", Name: "n", OrgName: "name",
		CharacterSet: CollationUTF8MB4GeneralCI, ColumnLength: 1020, Type: TypeVarString, Flags: FlagNotNull, Decimals: 0}
	for _, caps := range []uint64{caps41, caps41 | MariaDBClientExtendedTypeInfo} {
		cc := c
		if caps&MariaDBClientExtendedTypeInfo != 0 {
			cc.ExtendedInfo = []byte{0, 4, 'j', 's', 'o', 'n'}
		}
		b := AppendColumnDefinition(nil, &cc, caps)
		got, err := ParseColumnDefinition(b, caps)
		if err != nil || !reflect.DeepEqual(got, cc) {
			t.Fatalf("got %+v %v", got, err)
		}
		for i := 0; i < len(b); i++ {
			if _, err := ParseColumnDefinition(b[:i], caps); err == nil {
				t.Fatalf("truncated column definition (%d bytes) accepted", i)
			}
		}
	}
	if !bytes.Equal(AppendTextValue(AppendTextValue(nil, nil, true), []byte("ab"), false), []byte{0xfb, 2, 'a', 'b'}) {
		t.Fatal("AppendTextValue")
	}
}

func TestStmtPrepareOK(t *testing.T) {
	p := StmtPrepareOK{StatementID: 7, NumColumns: 2, NumParams: 3, Warnings: 1, MetadataFollows: 1}
	for _, caps := range []uint64{caps41, caps41 | ClientOptionalResultsetMetadata} {
		b := AppendStmtPrepareOK(nil, p, caps)
		got, err := ParseStmtPrepareOK(b, caps)
		want := p
		if caps&ClientOptionalResultsetMetadata == 0 {
			want.MetadataFollows = 0
		}
		if err != nil || got != want {
			t.Fatalf("got %+v %v", got, err)
		}
		if err := SetPrepareOKStatementID(b, 99); err != nil {
			t.Fatal(err)
		}
		if got, _ := ParseStmtPrepareOK(b, caps); got.StatementID != 99 {
			t.Fatal("SetPrepareOKStatementID")
		}
	}
	if _, err := ParseStmtPrepareOK([]byte{0, 1, 0, 0, 0, 1}, caps41); err == nil {
		t.Fatal("short prepare OK accepted")
	}
	if _, err := ParseStmtPrepareOK(AppendERR(nil, NewERR(1064, "syntax"), caps41), caps41); err == nil {
		t.Fatal("ERR accepted")
	}
}

func TestFormatCapabilities(t *testing.T) {
	s := FormatCapabilities(ClientProtocol41 | ClientSSL | MariaDBClientCacheMetadata | 1<<50)
	if s != "CLIENT_PROTOCOL_41|CLIENT_SSL|MARIADB_CLIENT_CACHE_METADATA|bit50" {
		t.Fatalf("%q", s)
	}
}

func TestOKInsertID(t *testing.T) {
	for _, want := range []uint64{0, 1, 250, 251, 1 << 20, 1 << 40} {
		p := AppendOK(nil, OKPacket{AffectedRows: 300, LastInsertID: want, Status: 2}, caps41)
		if got, ok := OKInsertID(p); !ok || got != want {
			t.Errorf("OKInsertID of an OK with id %d: %d, %v", want, got, ok)
		}
	}
	for _, bad := range [][]byte{nil, {0x00}, {0x00, 0x01}, {0xff, 0x01, 0x01}, {0x00, 0xfc, 0x01}} {
		if _, ok := OKInsertID(bad); ok {
			t.Errorf("OKInsertID(%x) accepted a malformed packet", bad)
		}
	}
}
