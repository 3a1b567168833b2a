package mysqlwire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestHandshakeRoundTrip(t *testing.T) {
	mariaCaps := ClientFoundRows | ClientLongFlag | ClientConnectWithDB | ClientProtocol41 | ClientSSL |
		ClientTransactions | ClientSecureConnection | ClientMultiStatements | ClientMultiResults |
		ClientPSMultiResults | ClientPluginAuth | ClientConnectAttrs | ClientPluginAuthLenencClientData |
		ClientSessionTrack | ClientDeprecateEOF | MariaDBClientProgress | MariaDBClientStmtBulkOperations |
		MariaDBClientExtendedTypeInfo | MariaDBClientCacheMetadata
	for _, h := range []Handshake{
		{ServerVersion: "5.5.5-10.11.6-MariaDB-0+deb12u1", ConnectionID: 42, AuthPluginData: testScramble,
			Capabilities: mariaCaps, CharacterSet: 45, StatusFlags: ServerStatusAutocommit, AuthPluginName: AuthNativePassword},
		{ServerVersion: "8.4.0", ConnectionID: 0xfffffffe, AuthPluginData: testScramble,
			Capabilities: (mariaCaps &^ (MariaDBClientProgress | MariaDBClientStmtBulkOperations | MariaDBClientExtendedTypeInfo | MariaDBClientCacheMetadata)) | ClientMySQL | ClientQueryAttributes,
			CharacterSet: 255, StatusFlags: ServerStatusAutocommit, AuthPluginName: AuthCachingSHA2Password},
	} {
		b := h.Append(nil)
		got, err := ParseHandshake(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, h) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", *got, h)
		}
		if got.IsMariaDB() != (h.Capabilities&ClientMySQL == 0) {
			t.Fatalf("IsMariaDB %v for %q", got.IsMariaDB(), h.ServerVersion)
		}
		// Known layout: scramble part 2 is 12 bytes + NUL at a fixed offset.
		off := 1 + len(h.ServerVersion) + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
		if !bytes.Equal(b[off:off+13], append(bytes.Clone(testScramble[8:]), 0)) {
			t.Fatalf("scramble part 2 at the wrong place: % x", b[off:off+13])
		}
		if h.Capabilities&ClientMySQL == 0 && le32(b[off-4:]) != uint32(h.Capabilities>>32) {
			t.Fatal("MariaDB extended capabilities not in the last 4 reserved bytes")
		}
	}
	// Truncations never panic and fail.
	b := (&Handshake{ServerVersion: "x", AuthPluginData: testScramble, Capabilities: ClientProtocol41 | ClientSecureConnection | ClientPluginAuth, AuthPluginName: "p"}).Append(nil)
	for i := 0; i < len(b)-2; i++ {
		if _, err := ParseHandshake(b[:i]); err == nil {
			t.Fatalf("truncated handshake (%d bytes) accepted", i)
		}
	}
	if _, err := ParseHandshake([]byte{9, 'x', 0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("protocol 9: %v", err)
	}
}

func TestHandshakeERR(t *testing.T) {
	p := AppendERR(nil, NewERR(ERConCountError, "Too many connections"), 0)
	_, err := ParseHandshake(p)
	var e *ERRPacket
	if !errors.As(err, &e) || e.Code != ERConCountError || e.Message != "Too many connections" {
		t.Fatalf("got %v", err)
	}
}

func TestHandshakeResponseRoundTrip(t *testing.T) {
	base := ClientProtocol41 | ClientSecureConnection | ClientTransactions | ClientMultiResults
	for _, r := range []HandshakeResponse{
		{Capabilities: base | ClientLongPassword | ClientPluginAuth | ClientPluginAuthLenencClientData | ClientConnectWithDB | ClientConnectAttrs,
			MaxPacketSize: 16 << 20, CharacterSet: 45, Username: "app", AuthResponse: bytes.Repeat([]byte{0xab}, 300),
			Database: "shop", AuthPluginName: AuthCachingSHA2Password,
			ConnectAttrs: map[string]string{"_client_name": "libmariadb", "_pid": "123", "program_name": "mysql"}},
		{Capabilities: base | ClientLongPassword | ClientPluginAuth, Username: "root", AuthResponse: []byte{},
			AuthPluginName: AuthNativePassword},
		{Capabilities: base | ClientPluginAuth | ClientDeprecateEOF | MariaDBClientProgress | MariaDBClientCacheMetadata,
			MaxPacketSize: 1 << 30, CharacterSet: 33, Username: "maria", AuthResponse: testScramble, AuthPluginName: AuthNativePassword},
		{Capabilities: ClientProtocol41 | ClientLongPassword, Username: "old", AuthResponse: []byte("nonul")},
		{Capabilities: base | ClientLongPassword | ClientZstdCompressionAlgorithm | ClientConnectAttrs, Username: "z", AuthResponse: []byte{1}, ZstdLevel: 3},
	} {
		b := r.Append(nil)
		got, err := ParseHandshakeResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", *got, r)
		}
		if IsSSLRequest(b) {
			t.Fatal("full response taken for an SSLRequest")
		}
	}
	// Auth response over 255 bytes without lenenc is cut at 255.
	r := HandshakeResponse{Capabilities: ClientProtocol41 | ClientSecureConnection | ClientLongPassword, Username: "u", AuthResponse: make([]byte, 300)}
	got, err := ParseHandshakeResponse(r.Append(nil))
	if err != nil || len(got.AuthResponse) != 255 {
		t.Fatalf("long auth response: %v", err)
	}
	// Old clients are refused.
	if _, err := ParseHandshakeResponse(make([]byte, 40)); err == nil {
		t.Fatal("pre-4.1 response accepted")
	}
}

func TestSSLRequest(t *testing.T) {
	caps := ClientProtocol41 | ClientSecureConnection | ClientPluginAuth | MariaDBClientProgress
	b := AppendSSLRequest(nil, caps, 1<<24, 45)
	if len(b) != 32 || !IsSSLRequest(b) {
		t.Fatalf("SSLRequest is %d bytes", len(b))
	}
	r, err := ParseHandshakeResponse(b)
	if err != nil || r.Capabilities != caps|ClientSSL || r.MaxPacketSize != 1<<24 || r.CharacterSet != 45 || r.Username != "" {
		t.Fatalf("%+v %v", r, err)
	}
	if IsSSLRequest(b[:31]) || IsSSLRequest(AppendSSLRequest(nil, caps, 0, 0)[:0]) {
		t.Fatal("short packet taken for an SSLRequest")
	}
	noSSL := bytes.Clone(b)
	noSSL[1] &^= byte(ClientSSL >> 8)
	if IsSSLRequest(noSSL) {
		t.Fatal("SSLRequest without CLIENT_SSL")
	}
}

func TestChangeUserRoundTrip(t *testing.T) {
	caps := ClientProtocol41 | ClientSecureConnection | ClientPluginAuth | ClientConnectAttrs
	c := ChangeUser{User: "bob", AuthResponse: testScramble, Database: "db", CharacterSet: 224,
		AuthPluginName: AuthNativePassword, ConnectAttrs: map[string]string{"a": "b"}}
	b := c.Append(nil, caps)
	if b[0] != ComChangeUser {
		t.Fatal("command byte")
	}
	got, err := ParseChangeUser(b, caps)
	if err != nil || !reflect.DeepEqual(*got, c) {
		t.Fatalf("got %+v, %v", got, err)
	}
	// Minimal form: user, auth, database only.
	min := append([]byte{ComChangeUser}, "u\x00\x00db\x00"...)
	got, err = ParseChangeUser(min, caps)
	if err != nil || got.User != "u" || got.Database != "db" || len(got.AuthResponse) != 0 {
		t.Fatalf("minimal: %+v %v", got, err)
	}
}
