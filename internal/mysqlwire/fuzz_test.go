package mysqlwire

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"reflect"
	"testing"
)

// fuzzChunk is the chunk size the packet fuzzer uses so that split
// payloads are reachable with small inputs.
const fuzzChunk = 8

// refPackets is a reference framer over a byte slice, with ReadPacket's
// semantics and check order (header, sequence id, payload).
func refPackets(in []byte, chunk int) (seqs []byte, payloads [][]byte, phys [][]byte, err error) {
	off := 0
	for {
		if off == len(in) {
			return seqs, payloads, phys, io.EOF
		}
		var p []byte
		var seq byte
		for first := true; ; first = false {
			if len(in)-off < HeaderSize {
				return seqs, payloads, phys, io.ErrUnexpectedEOF
			}
			n := int(in[off]) | int(in[off+1])<<8 | int(in[off+2])<<16
			s := in[off+3]
			if !first && s != seq+1 {
				return seqs, payloads, phys, ErrSequence
			}
			seq = s
			if len(in)-off-HeaderSize < n {
				return seqs, payloads, phys, io.ErrUnexpectedEOF
			}
			phys = append(phys, in[off:off+HeaderSize+n])
			p = append(p, in[off+HeaderSize:off+HeaderSize+n]...)
			off += HeaderSize + n
			if n < chunk {
				break
			}
		}
		if p == nil {
			p = []byte{}
		}
		seqs = append(seqs, seq)
		payloads = append(payloads, p)
	}
}

// FuzzPacketReader frames arbitrary bytes with ReadPacket, ReadRawPacket
// and RelayPacket and compares them with a reference framer; every payload
// must also survive a PacketWriter round trip.
func FuzzPacketReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		wantSeqs, wantPayloads, wantPhys, wantErr := refPackets(in, fuzzChunk)
		newReader := func() *PacketReader {
			r := NewPacketReader(bufio.NewReaderSize(bytes.NewReader(in), 16))
			r.chunk = fuzzChunk
			r.SetMaxPayload(1 << 25)
			return r
		}

		r := newReader()
		for i := 0; ; i++ {
			seq, p, err := r.ReadPacket()
			if i == len(wantPayloads) {
				if !errors.Is(err, wantErr) {
					t.Fatalf("packet %d: ReadPacket err %v, want %v", i, err, wantErr)
				}
				break
			}
			if err != nil || seq != wantSeqs[i] || !bytes.Equal(p, wantPayloads[i]) {
				t.Fatalf("packet %d: ReadPacket seq %d %q %v, want seq %d %q", i, seq, p, err, wantSeqs[i], wantPayloads[i])
			}
		}

		raw := newReader()
		for i := 0; ; i++ {
			pkt, err := raw.ReadRawPacket()
			if i == len(wantPhys) {
				// The reference may stop on a sequence error before the
				// last complete physical packet; then the raw reader goes on.
				if err == nil && !errors.Is(wantErr, ErrSequence) {
					t.Fatalf("ReadRawPacket returned an extra packet % x", pkt)
				}
				break
			}
			if err != nil || !bytes.Equal(pkt, wantPhys[i]) {
				t.Fatalf("raw packet %d: % x %v, want % x", i, pkt, err, wantPhys[i])
			}
		}

		relay := newReader()
		var relayed bytes.Buffer
		for range wantPhys {
			if _, _, err := relay.RelayPacket(&relayed); err != nil {
				t.Fatalf("RelayPacket: %v", err)
			}
		}
		if !bytes.Equal(relayed.Bytes(), bytes.Join(wantPhys, nil)) {
			t.Fatal("relayed bytes differ from the physical packets")
		}

		// Round trip through the writer.
		var out bytes.Buffer
		w := NewPacketWriter(bufio.NewWriter(&out))
		w.chunk = fuzzChunk
		for i, p := range wantPayloads {
			first := wantSeqs[i] - byte(len(p)/fuzzChunk)
			if next, err := w.WritePacket(first, p); err != nil || next != wantSeqs[i]+1 {
				t.Fatalf("WritePacket next seq %d %v", next, err)
			}
		}
		_ = w.Flush()
		back := NewPacketReader(bufio.NewReaderSize(bytes.NewReader(out.Bytes()), 16))
		back.chunk = fuzzChunk
		for i, want := range wantPayloads {
			seq, p, err := back.ReadPacket()
			if err != nil || seq != wantSeqs[i] || !bytes.Equal(p, want) {
				t.Fatalf("packet %d: round trip seq %d err %v", i, seq, err)
			}
		}
		if _, _, err := back.ReadPacket(); err != io.EOF {
			t.Fatalf("after the round trip: %v", err)
		}
	})
}

// FuzzHandshake parses arbitrary server greetings: no panics, and a parsed
// greeting re-encodes to one that parses identically.
func FuzzHandshake(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseHandshake(in)
		if err != nil {
			var e *ERRPacket
			if !errors.Is(err, ErrMalformed) && !errors.As(err, &e) {
				t.Fatalf("unexpected error type %v", err)
			}
			return
		}
		_ = h.IsMariaDB()
		h2, err := ParseHandshake(h.Append(nil))
		if err != nil {
			t.Fatalf("re-encoded handshake: %v", err)
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip:\n%+v\n%+v", h, h2)
		}
	})
}

// FuzzHandshakeResponse parses arbitrary client responses (and the same
// bytes as COM_CHANGE_USER): no panics, and parse(append(parse(x))) equals
// parse(x).
func FuzzHandshakeResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseHandshakeResponse(in)
		if err == nil {
			if IsSSLRequest(in) {
				b := AppendSSLRequest(nil, r.Capabilities, r.MaxPacketSize, r.CharacterSet)
				r2, err := ParseHandshakeResponse(b)
				if err != nil || !reflect.DeepEqual(r, r2) {
					t.Fatalf("SSLRequest round trip: %+v %+v %v", r, r2, err)
				}
			} else {
				r2, err := ParseHandshakeResponse(r.Append(nil))
				if err != nil {
					t.Fatalf("re-encoded response: %v", err)
				}
				if !reflect.DeepEqual(r, r2) {
					t.Fatalf("round trip:\n%+v\n%+v", r, r2)
				}
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error type %v", err)
		}
		for _, caps := range []uint64{ClientProtocol41, ClientProtocol41 | ClientSecureConnection | ClientPluginAuth | ClientConnectAttrs} {
			c, err := ParseChangeUser(append([]byte{ComChangeUser}, in...), caps)
			if err != nil {
				continue
			}
			c2, err := ParseChangeUser(c.Append(nil, caps), caps)
			if err != nil || !reflect.DeepEqual(c, c2) {
				t.Fatalf("COM_CHANGE_USER round trip:\n%+v\n%+v\n%v", c, c2, err)
			}
		}
	})
}

// FuzzStmtExecute decodes arbitrary COM_STMT_EXECUTE payloads for a
// statement state derived from the other arguments: no panics, value
// extents agree with BinaryValueSize, and decode(append(decode(x)))
// equals decode(x).
func FuzzStmtExecute(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte, numParams uint8, bound []byte, longData uint64, queryAttrs bool) {
		st := &StmtState{NumParams: int(numParams % 64)}
		for i := 0; i+1 < len(bound); i += 2 {
			st.BoundTypes = append(st.BoundTypes, ParamType{bound[i], bound[i+1]})
		}
		for i := 0; i < 64; i++ {
			if longData&(1<<i) != 0 {
				st.MarkLongData(i)
			}
		}
		caps := ClientProtocol41
		if queryAttrs {
			caps |= ClientQueryAttributes
		}
		if id, ok := StatementID(payload); ok {
			cp := bytes.Clone(payload)
			if err := SetStatementID(cp, id+1); err != nil || le32(cp[1:]) != id+1 {
				t.Fatal("SetStatementID")
			}
		}
		x, err := ParseStmtExecute(payload, st, caps)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error type %v", err)
			}
			return
		}
		for i := range x.Params {
			p := &x.Params[i]
			if p.Value != nil {
				if n, err := BinaryValueSize(p.Type.Type, p.Value); err != nil || n != len(p.Value) {
					t.Fatalf("param %d: extent %d, BinaryValueSize %d %v", i, len(p.Value), n, err)
				}
				_ = p.Data()
			}
		}
		y, err := ParseStmtExecute(x.Append(nil, caps), st, caps)
		if err != nil {
			t.Fatalf("re-encoded execute: %v", err)
		}
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("round trip:\n%+v\n%+v", x, y)
		}
		st.Executed(x)
	})
}

// FuzzOKERR feeds arbitrary payloads to the response parsers (OK under
// several capability sets, ERR, EOF, session tracking, column count and
// definition, COM_STMT_PREPARE_OK, AuthSwitchRequest): no panics, round
// trips hold, and StatusFlags agrees with ParseOK/ParseEOF.
func FuzzOKERR(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, caps := range []uint64{0, ClientTransactions, ClientProtocol41, ClientProtocol41 | ClientSessionTrack,
			ClientProtocol41 | ClientSessionTrack | ClientDeprecateEOF | MariaDBClientExtendedTypeInfo | ClientOptionalResultsetMetadata} {
			_ = IsOK(in, caps)
			_ = IsEOF(in, caps)
			st, stOK := StatusFlags(in, caps)
			ok, err := ParseOK(in, caps)
			if err == nil {
				ok2, err := ParseOK(AppendOK(nil, ok, caps), caps)
				if err != nil || !sameOK(ok, ok2) {
					t.Fatalf("caps %#x OK round trip:\n%+v\n%+v\n%v", caps, ok, ok2, err)
				}
				headerOK := in[0] == OKHeader || (caps&ClientDeprecateEOF != 0 && len(in) != 5 && len(in) < MaxChunk)
				if headerOK && caps&(ClientProtocol41|ClientTransactions) != 0 && (!stOK || st != ok.Status) {
					t.Fatalf("caps %#x: StatusFlags %#x %v, ParseOK %#x", caps, st, stOK, ok.Status)
				}
				if ok.SessionState != nil {
					checkSessionTrack(t, ok.SessionState)
				}
			}
			if col, err := ParseColumnDefinition(in, caps); err == nil {
				col2, err := ParseColumnDefinition(AppendColumnDefinition(nil, &col, caps), caps)
				if err != nil || !reflect.DeepEqual(col, col2) {
					t.Fatalf("column definition round trip:\n%+v\n%+v\n%v", col, col2, err)
				}
			}
			if p, err := ParseStmtPrepareOK(in, caps); err == nil {
				p2, err := ParseStmtPrepareOK(AppendStmtPrepareOK(nil, p, caps), caps)
				if err != nil || p != p2 {
					t.Fatalf("prepare OK round trip: %+v %+v %v", p, p2, err)
				}
			}
		}
		if e, err := ParseERR(in); err == nil {
			var caps uint64
			if e.SQLState != "" {
				caps = ClientProtocol41
			}
			e2, err := ParseERR(AppendERR(nil, e, caps))
			if err != nil || e != e2 {
				t.Fatalf("ERR round trip: %+v %+v %v", e, e2, err)
			}
			_ = e.Error()
		}
		if e, err := ParseEOF(in); err == nil {
			e2, err := ParseEOF(AppendEOF(nil, e))
			if err != nil || e != e2 {
				t.Fatalf("EOF round trip: %+v %+v %v", e, e2, err)
			}
			if st, ok := StatusFlags(in, ClientProtocol41); len(in) >= 5 && (!ok || st != e.Status) {
				t.Fatalf("EOF StatusFlags %#x %v, ParseEOF %#x", st, ok, e.Status)
			}
		}
		checkSessionTrack(t, in)
		if n, ok := ParseColumnCount(in); ok {
			if n2, _, ok2 := ParseColumnCountMeta(in); !ok2 || n2 != n {
				t.Fatal("ParseColumnCountMeta disagrees")
			}
		}
		if plugin, data, err := ParseAuthSwitchRequest(in); err == nil {
			p2, d2, err := ParseAuthSwitchRequest(AppendAuthSwitchRequest(nil, plugin, data))
			if err != nil || p2 != plugin || !bytes.Equal(d2, data) {
				t.Fatalf("AuthSwitchRequest round trip %q %q %v", plugin, p2, err)
			}
		}
		_, _ = ParseAuthMoreData(in)
	})
}

func sameOK(a, b OKPacket) bool {
	as, bs := a.SessionState, b.SessionState
	a.SessionState, b.SessionState = nil, nil
	return reflect.DeepEqual(a, b) && bytes.Equal(as, bs)
}

func checkSessionTrack(t *testing.T, data []byte) {
	items, err := SessionTrackItems(data)
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error type %v", err)
		}
		return
	}
	items2, err := SessionTrackItems(AppendSessionTrack(nil, items...))
	if err != nil || len(items2) != len(items) {
		t.Fatalf("session track round trip: %q %q %v", items, items2, err)
	}
	for i := range items {
		a, b := items[i], items2[i]
		if a.Type != b.Type || !bytes.Equal(a.Name, b.Name) || !bytes.Equal(a.Value, b.Value) {
			t.Fatalf("session track item %d: %q / %q", i, a, b)
		}
	}
}

// FuzzDecryptPasswordRSA feeds arbitrary ciphertexts and scrambles to the
// server side of the RSA exchange (what an unauthenticated client controls):
// it must return an error or a password, never panic, and a real
// ciphertext must round-trip.
func FuzzDecryptPasswordRSA(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	ct, err := EncryptPasswordRSA(&key.PublicKey, []byte("secret"), []byte("abcdefghij0123456789"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ct, []byte("abcdefghij0123456789"), []byte("secret"))
	f.Add([]byte{}, []byte{}, []byte{})
	f.Add([]byte{0x02}, []byte("x"), []byte("pw"))
	f.Fuzz(func(t *testing.T, ct, scramble, pw []byte) {
		_, _ = DecryptPasswordRSA(key, ct, scramble)
		if len(pw) > 40 || bytes.IndexByte(pw, 0) >= 0 {
			return
		}
		enc, err := EncryptPasswordRSA(&key.PublicKey, pw, scramble)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecryptPasswordRSA(key, enc, scramble)
		if err != nil || !bytes.Equal(got, pw) {
			t.Fatalf("round trip %q: %q %v", pw, got, err)
		}
	})
}
