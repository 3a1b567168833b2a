package pgwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func frame(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)+4))
	return append(b, body...)
}

func TestReaderSmallAndLarge(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 100_000)
	var in []byte
	in = append(in, frame('Q', []byte("select 1\x00"))...)
	in = append(in, frame('d', big)...)
	in = append(in, frame('S', nil)...)
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 4096), 0)
	want := []struct {
		typ  byte
		body []byte
	}{{'Q', []byte("select 1\x00")}, {'d', big}, {'S', nil}}
	for i, w := range want {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Type != w.typ || !bytes.Equal(m.Body(), w.body) {
			t.Fatalf("message %d: got %q (%d bytes)", i, m.Type, len(m.Body()))
		}
		if !bytes.Equal(m.Raw, frame(w.typ, w.body)) {
			t.Fatalf("message %d: raw differs", i)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("at end: %v, want EOF", err)
	}
}

func TestReaderLimits(t *testing.T) {
	r := NewReader(bufio.NewReader(bytes.NewReader([]byte{'Q', 0x7f, 0xff, 0xff, 0xff})), 1024)
	if _, err := r.Next(); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	r = NewReader(bufio.NewReader(bytes.NewReader([]byte{'Q', 0, 0, 0, 3})), 1024)
	if _, err := r.Next(); !errors.Is(err, ErrBadLength) {
		t.Fatalf("short length: %v", err)
	}
	r = NewReader(bufio.NewReader(bytes.NewReader([]byte{'Q', 0, 0, 0, 9, 'a'})), 1024)
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v", err)
	}
	r = NewReader(bufio.NewReader(bytes.NewReader([]byte{'Q', 0})), 1024)
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated header: %v", err)
	}
}

func TestStartup(t *testing.T) {
	body := binary.BigEndian.AppendUint32(nil, ProtocolVersion30)
	body = append(body, "user\x00app\x00database\x00db\x00application_name\x00\x00\x00"...)
	pkt := binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))
	pkt = append(pkt, body...)
	raw, err := ReadStartupPacket(bytes.NewReader(pkt))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStartup(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := st.Get("user"); u != "app" {
		t.Errorf("user = %q", u)
	}
	if d, _ := st.Get("database"); d != "db" {
		t.Errorf("database = %q", d)
	}
	if a, ok := st.Get("application_name"); !ok || a != "" {
		t.Errorf("application_name = %q %v", a, ok)
	}

	cancel := AppendCancelRequest(nil, 42, []byte{1, 2, 3, 4})
	raw, err = ReadStartupPacket(bytes.NewReader(cancel))
	if err != nil {
		t.Fatal(err)
	}
	st, err = ParseStartup(raw)
	if err != nil || st.Code != CancelRequestCode || st.CancelPID != 42 || !bytes.Equal(st.CancelKey, []byte{1, 2, 3, 4}) {
		t.Fatalf("cancel: %+v %v", st, err)
	}

	for _, bad := range []string{
		"\x00\x03\x00\x00user\x00app",           // no terminator
		"\x00\x03\x00\x00user\x00app\x00\x00xx", // bytes after terminator
		"\x00\x03\x00\x00user",                  // unterminated name
		"\x04\xd2\x16\x2fextra",                 // SSLRequest with payload
		"\x04\xd2\x16\x2e\x00",                  // short cancel
	} {
		if _, err := ParseStartup([]byte(bad)); !errors.Is(err, ErrBadStartup) {
			t.Errorf("ParseStartup(%q) = %v", bad, err)
		}
	}
	for _, n := range []uint32{0, 7, MaxStartupPacket + 1} {
		if _, err := ReadStartupPacket(bytes.NewReader(binary.BigEndian.AppendUint32(nil, n))); !errors.Is(err, ErrBadStartup) {
			t.Errorf("length %d: %v", n, err)
		}
	}
}

func TestParsers(t *testing.T) {
	parse := []byte("s1\x00select $1\x00\x00\x01\x00\x00\x00\x17")
	name, q, err := ParseParse(parse)
	if err != nil || string(name) != "s1" || string(q) != "select $1" {
		t.Fatalf("ParseParse: %q %q %v", name, q, err)
	}
	if _, _, err := ParseParse([]byte("s1\x00select\x00\x00\x02\x00")); err == nil {
		t.Error("ParseParse accepted a short parameter list")
	}
	portal, st, err := ParseBind([]byte("p\x00s1\x00\x00\x00"))
	if err != nil || string(portal) != "p" || string(st) != "s1" {
		t.Fatalf("ParseBind: %q %q %v", portal, st, err)
	}
	kind, n, err := ParseTarget([]byte("Ss1\x00"))
	if err != nil || kind != 'S' || string(n) != "s1" {
		t.Fatalf("ParseTarget: %c %q %v", kind, n, err)
	}
	if _, _, err := ParseTarget([]byte("Xs1\x00")); err == nil {
		t.Error("ParseTarget accepted kind X")
	}
	if p, err := ParseExecute([]byte("\x00\x00\x00\x00\x00")); err != nil || len(p) != 0 {
		t.Errorf("ParseExecute: %q %v", p, err)
	}
	e := AppendErrorResponse(nil, "ERROR", "25006", "cannot execute INSERT in a read-only transaction")
	if c := ErrorField(e[HeaderLen:], 'C'); string(c) != "25006" {
		t.Errorf("ErrorField C = %q", c)
	}
	if m := ErrorField(e[HeaderLen:], 'M'); !strings.HasPrefix(string(m), "cannot execute") {
		t.Errorf("ErrorField M = %q", m)
	}
	row := []byte{0, 2, 0, 0, 0, 3, '1', '/', '2', 0xff, 0xff, 0xff, 0xff}
	if v, null, err := DataRowColumn(row, 0); err != nil || null || string(v) != "1/2" {
		t.Errorf("DataRowColumn 0: %q %v %v", v, null, err)
	}
	if _, null, err := DataRowColumn(row, 1); err != nil || !null {
		t.Errorf("DataRowColumn 1: %v %v", null, err)
	}
	if _, _, err := DataRowColumn(row[:7], 0); err == nil {
		t.Error("DataRowColumn accepted a truncated value")
	}
	mech, data, err := ParseSASLInitialResponse([]byte("SCRAM-SHA-256\x00\x00\x00\x00\x03abc"))
	if err != nil || mech != "SCRAM-SHA-256" || string(data) != "abc" {
		t.Errorf("ParseSASLInitialResponse: %q %q %v", mech, data, err)
	}
	if k, v, err := ParseParameterStatus([]byte("TimeZone\x00UTC\x00")); err != nil || k != "TimeZone" || v != "UTC" {
		t.Errorf("ParseParameterStatus: %q %q %v", k, v, err)
	}
}

func BenchmarkReaderNext(b *testing.B) {
	var in []byte
	for range 1000 {
		in = append(in, frame('D', []byte("\x00\x01\x00\x00\x00\x05hello"))...)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	br := bufio.NewReaderSize(nil, 16<<10)
	src := bytes.NewReader(in)
	for b.Loop() {
		src.Reset(in)
		br.Reset(src)
		r := NewReader(br, 0)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}
