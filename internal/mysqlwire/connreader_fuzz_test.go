package mysqlwire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/bufpool"
)

// chunkConn is a net.Conn (not a syscall.Conn, so ConnReader takes its
// conn.Read path) that returns the bytes of src at most chunk bytes per Read.
type chunkConn struct {
	src   []byte
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.src) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.chunk, len(c.src))
	copy(p, c.src[:n])
	c.src = c.src[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *chunkConn) Close() error                     { return nil }
func (c *chunkConn) LocalAddr() net.Addr              { return nil }
func (c *chunkConn) RemoteAddr() net.Addr             { return nil }
func (c *chunkConn) SetDeadline(time.Time) error      { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConnPacketReader checks a PacketReader over a ConnReader against the
// reference framer: fed arbitrary bytes in reads of arbitrary sizes, with a
// 16-byte pool buffer (so that reassembly, direct reads and buffer
// compaction all run), ReadPacket, ReadRawPacket, RelayPacket and
// DiscardPacket must behave as with a bufio.Reader.
func FuzzConnPacketReader(f *testing.F) {
	f.Add(uint8(3), writeAll(f, fuzzChunk, 0, []byte("\x03SELECT 1"), []byte{}, []byte("\x0e")))
	f.Add(uint8(1), writeAll(f, fuzzChunk, 0, bytes.Repeat([]byte("s"), 2*fuzzChunk+1), []byte("next")))
	f.Add(uint8(16), writeAll(f, fuzzChunk, 5, bytes.Repeat([]byte("e"), fuzzChunk)))
	f.Add(uint8(0), []byte{8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 2, 0, 0, 3, 'a', 'b'})
	f.Add(uint8(7), []byte{5, 0, 0, 0, 'a'})
	f.Add(uint8(2), []byte{0xff, 0xff, 0xff, 0})
	pool := bufpool.New(16)
	f.Fuzz(func(t *testing.T, chunk uint8, in []byte) {
		wantSeqs, wantPayloads, wantPhys, wantErr := refPackets(in, fuzzChunk)
		newReader := func() *PacketReader {
			r := NewConnPacketReader(&chunkConn{src: in, chunk: int(chunk%37) + 1}, pool)
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
		// At a clean end nothing is unread: nothing may be held. (After an
		// error inside a packet the bytes received stay, for Release.)
		if errors.Is(wantErr, io.EOF) && (r.conn.Holding() || r.buf != nil) {
			t.Fatal("a buffer is held at the end of the stream")
		}
		r.Release()

		raw := newReader()
		for i := 0; ; i++ {
			pkt, err := raw.ReadRawPacket()
			if i == len(wantPhys) {
				if err == nil && !errors.Is(wantErr, ErrSequence) {
					t.Fatalf("ReadRawPacket returned an extra packet % x", pkt)
				}
				break
			}
			if err != nil || !bytes.Equal(pkt, wantPhys[i]) {
				t.Fatalf("raw packet %d: % x %v, want % x", i, pkt, err, wantPhys[i])
			}
		}
		raw.Release()

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
		relay.Release()

		// DiscardPacket skips exactly the physical packets of each payload.
		skip := newReader()
		for i := range wantPayloads {
			if err := skip.DiscardPacket(1 << 30); err != nil {
				t.Fatalf("DiscardPacket %d: %v", i, err)
			}
		}
		if len(wantPayloads) > 0 && errors.Is(wantErr, io.EOF) {
			if _, _, err := skip.ReadPacket(); err != io.EOF {
				t.Fatalf("after discarding every packet: %v, want io.EOF", err)
			}
		}
		skip.Release()
	})
}
