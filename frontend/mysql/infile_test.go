package mysql

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/internal/mysqlwire"
)

// packets frames payloads with consecutive sequence ids from seq.
func packets(seq byte, payloads ...[]byte) []byte {
	var b []byte
	for _, p := range payloads {
		b, seq = mysqlwire.AppendPacket(b, seq, p)
	}
	return b
}

// relaySession returns a session whose client sent clientIn and a backend
// connection that answers backendIn, with the buffers that receive what
// the relay writes to each.
func relaySession(caps uint64, clientIn, backendIn []byte) (s *session, bc *bconn, toClient, toBackend *bytes.Buffer) {
	toClient, toBackend = new(bytes.Buffer), new(bytes.Buffer)
	s = &session{
		caps: caps,
		cr:   mysqlwire.NewPacketReader(bufio.NewReader(bytes.NewReader(clientIn))),
		cw:   bufio.NewWriter(toClient),
	}
	s.cr.SetMaxPayload(1 << 20)
	bc = &bconn{mc: &backends.MySQLConn{
		R: mysqlwire.NewPacketReader(bufio.NewReader(bytes.NewReader(backendIn))),
		W: bufio.NewWriter(toBackend),
	}}
	return s, bc, toClient, toBackend
}

var (
	infileReq  = append([]byte{mysqlwire.LocalInfileHeader}, "/tmp/data.csv"...)
	okPayload  = mysqlwire.AppendOK(nil, mysqlwire.OKPacket{AffectedRows: 2, Status: mysqlwire.ServerStatusAutocommit}, testCaps)
	errPayload = mysqlwire.AppendERR(nil, mysqlwire.NewERR(4166, "The used command is not allowed because the MariaDB server or client has disabled the local infile capability"),
		mysqlwire.ClientProtocol41)
)

const testCaps = mysqlwire.ClientProtocol41 | mysqlwire.ClientTransactions | mysqlwire.ClientDeprecateEOF

func TestRelayLocalInfile(t *testing.T) {
	// The backend asks for the file (seq 1), the client streams it (seq 2,
	// 3 and the empty packet 4), the backend's OK (seq 5) ends it.
	data := [][]byte{[]byte("1,a\n"), []byte("2,b\n"), {}}
	s, bc, toClient, toBackend := relaySession(testCaps|mysqlwire.ClientLocalFiles, packets(2, data...), packets(1, infileReq, okPayload))
	ok, relayed, err := s.relayResult(bc)
	if err != nil || !ok || !relayed {
		t.Fatalf("relayResult: %v %v %v", ok, relayed, err)
	}
	s.flush()
	if want := packets(1, infileReq, okPayload); !bytes.Equal(toClient.Bytes(), want) {
		t.Fatalf("client got % x\nwant % x", toClient.Bytes(), want)
	}
	if want := packets(2, data...); !bytes.Equal(toBackend.Bytes(), want) {
		t.Fatalf("backend got % x\nwant % x", toBackend.Bytes(), want)
	}
}

func TestRelayLocalInfileContinuation(t *testing.T) {
	// An empty packet right after a MaxChunk packet continues it; the
	// file ends with the next empty packet.
	full := bytes.Repeat([]byte("x"), mysqlwire.MaxChunk)
	clientIn := packets(2, full, []byte{}) // AppendPacket adds the continuation
	s, bc, _, toBackend := relaySession(testCaps|mysqlwire.ClientLocalFiles, clientIn, packets(1, infileReq, okPayload))
	s.cr.SetMaxPayload(mysqlwire.MaxChunk)
	if ok, _, err := s.relayResult(bc); err != nil || !ok {
		t.Fatalf("relayResult: %v %v", ok, err)
	}
	if !bytes.Equal(toBackend.Bytes(), clientIn) {
		t.Fatalf("backend got %d bytes, want %d", toBackend.Len(), len(clientIn))
	}
}

func TestRelayLocalInfileRefused(t *testing.T) {
	// Without CLIENT_LOCAL_FILES the proxy answers the request itself with
	// an empty file (seq 2); the backend's ERR (seq 3) reaches the client
	// as its first response packet (seq 1).
	s, bc, toClient, toBackend := relaySession(testCaps, nil, append(packets(1, infileReq), packets(3, errPayload)...))
	ok, relayed, err := s.relayResult(bc)
	if err != nil || ok || !relayed {
		t.Fatalf("relayResult: %v %v %v", ok, relayed, err)
	}
	s.flush()
	if want := packets(2, []byte{}); !bytes.Equal(toBackend.Bytes(), want) {
		t.Fatalf("backend got % x, want % x", toBackend.Bytes(), want)
	}
	if want := packets(1, errPayload); !bytes.Equal(toClient.Bytes(), want) {
		t.Fatalf("client got % x\nwant % x", toClient.Bytes(), want)
	}
	if s.seqShift != 0 {
		t.Fatal("seqShift not reset")
	}
}
