package mysqlwire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/bufpool"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-ch
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// tlsPair returns the two ends of a TLS connection over loopback TCP.
func tlsPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	c, s := tcpPair(t)
	tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	ts := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	errc := make(chan error, 1)
	go func() { errc <- ts.Handshake() }()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return tc, ts
}

// writeSlowly writes b in pieces of at most piece bytes with pauses (after
// each of the first pieces, then now and then), in the
// background; the returned channel gets the write error.
func writeSlowly(c net.Conn, b []byte, piece int) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for i := 0; len(b) > 0; i++ {
			n := min(piece, len(b))
			if _, err := c.Write(b[:n]); err != nil {
				errc <- err
				return
			}
			b = b[n:]
			if i < 64 || i%256 == 0 {
				time.Sleep(200 * time.Microsecond)
			}
		}
		errc <- nil
	}()
	return errc
}

func readAllPackets(t *testing.T, r *PacketReader, want [][]byte, firstSeq byte) {
	t.Helper()
	seq := firstSeq
	for i, w := range want {
		gotSeq, got, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		seq += byte(len(w) / r.chunk)
		if gotSeq != seq || !bytes.Equal(got, w) {
			t.Fatalf("packet %d: seq %d, %d bytes; want seq %d, %d bytes", i, gotSeq, len(got), seq, len(w))
		}
		seq++
	}
}

func TestConnPacketReaderTCP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pool  int
		chunk int
		piece int
	}{
		{"small", bufpool.Size16K, MaxChunk, 1 << 20},
		{"byte-by-byte", bufpool.Size16K, MaxChunk, 1},
		{"split-small-chunk", 64, 8, 3},
		{"beyond-pool", 64, MaxChunk, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := tcpPair(t)
			r := NewConnPacketReader(s, bufpool.New(tc.pool))
			r.chunk = tc.chunk
			var payloads [][]byte
			for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 60, 61, 100, 5000, 20000, 100_000} {
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(i*7 + n)
				}
				payloads = append(payloads, p)
			}
			if tc.piece == 1 {
				payloads = payloads[:9] // byte by byte: small ones only
			}
			in := writeAll(t, tc.chunk, 0, payloads...)
			piece := tc.piece
			if piece > 100 {
				piece = 4093 // odd pieces through the big payloads
			}
			errc := writeSlowly(c, in, piece)
			readAllPackets(t, r, payloads, 0)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			c.Close()
			if _, _, err := r.ReadPacket(); err != io.EOF {
				t.Fatalf("at end: %v, want io.EOF", err)
			}
			if r.conn.Holding() || r.buf != nil {
				t.Fatal("buffers held at EOF")
			}
		})
	}
}

// TestConnPacketReaderIdle checks that a reader waiting for the next packet
// holds neither a pool buffer nor a reassembly buffer.
func TestConnPacketReaderIdle(t *testing.T) {
	c, s := tcpPair(t)
	r := NewConnPacketReader(s, bufpool.New(1024))
	var waits atomic.Int32
	var held atomic.Bool       // what the reader held when it last parked
	r.conn.waitHook = func() { // runs on the reader's goroutine
		held.Store(r.conn.Holding() || r.buf != nil)
		waits.Add(1)
	}
	big := bytes.Repeat([]byte("b"), 5000) // reassembled, not a view
	for i, p := range [][]byte{[]byte("\x03SELECT 1"), big, {0x0e}} {
		before := waits.Load() // the reader is not running: stable
		done := make(chan error, 1)
		go func() {
			_, got, err := r.ReadPacket()
			if err == nil && !bytes.Equal(got, p) {
				err = errors.New("wrong payload")
			}
			done <- err
		}()
		// Let the reader park, then look at what it holds.
		deadline := time.Now().Add(5 * time.Second)
		for waits.Load() == before {
			if time.Now().After(deadline) {
				t.Fatal("the reader never waited")
			}
			time.Sleep(time.Millisecond)
		}
		if held.Load() {
			t.Fatalf("packet %d: the idle reader holds a buffer", i)
		}
		raw, _ := AppendPacket(nil, 0, p)
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
}

func TestConnPacketReaderHugeSplit(t *testing.T) {
	if testing.Short() {
		t.Skip("moves ~70 MB")
	}
	c, s := tcpPair(t)
	r := NewConnPacketReader(s, nil)
	r.SetMaxPayload(3 * MaxChunk)
	payloads := [][]byte{make([]byte, MaxChunk), make([]byte, 2*MaxChunk+1), []byte("next")}
	for i := range payloads[1] {
		payloads[1][i] = byte(i % 251)
	}
	errc := make(chan error, 1)
	go func() {
		w := bufpool.NewWriter(c, bufpool.New(bufpool.Size16K))
		seq := byte(0)
		for _, p := range payloads {
			var b []byte
			b, seq = AppendPacket(nil, seq, p)
			if _, err := w.Write(b); err != nil {
				errc <- err
				return
			}
		}
		errc <- w.Flush()
	}()
	readAllPackets(t, r, payloads, 0)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestConnPacketReaderTruncated(t *testing.T) {
	for _, in := range [][]byte{
		{5, 0},                      // in the header
		{5, 0, 0, 0, 'a', 'b'},      // in the payload
		{8, 0, 0, 0, 1, 2, 3, 4, 5}, // in a payload beyond the pool size
	} {
		c, s := tcpPair(t)
		r := NewConnPacketReader(s, bufpool.New(8))
		if _, err := c.Write(in); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if _, _, err := r.ReadPacket(); err != io.ErrUnexpectedEOF {
			t.Fatalf("% x: %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
}

func TestConnPacketReaderTooLarge(t *testing.T) {
	c, s := tcpPair(t)
	r := NewConnPacketReader(s, bufpool.New(64))
	r.SetMaxPayload(100)
	big := bytes.Repeat([]byte("x"), 1000)
	in, seq := AppendPacket(nil, 0, big)
	in, _ = AppendPacket(in, seq, []byte("after"))
	errc := writeSlowly(c, in, 300)
	if _, _, err := r.ReadPacket(); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("ReadPacket: %v, want ErrPacketTooLarge", err)
	}
	if err := r.DiscardPacket(1 << 20); err != nil {
		t.Fatalf("DiscardPacket: %v", err)
	}
	if seq, p, err := r.ReadPacket(); err != nil || seq != 1 || string(p) != "after" {
		t.Fatalf("after discard: %d %q %v", seq, p, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestConnPacketReaderDeadlineAndClose(t *testing.T) {
	c, s := tcpPair(t)
	r := NewConnPacketReader(s, bufpool.New(64))
	raw, _ := AppendPacket(nil, 0, bytes.Repeat([]byte("z"), 200))
	if _, err := c.Write(raw[:100]); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := r.ReadPacket(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadPacket: %v, want a deadline error", err)
	}
	// A ReadPacket that failed on a deadline in a large payload cannot be
	// resumed (the same holds with a bufio.Reader): only check that the
	// connection is still readable, then Close wakes a blocked read.
	s.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := r.conn.Peek(4)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := c.Write(raw[100:]); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Peek after the deadline: %v", err)
	}
	go func() {
		_, err := r.conn.Discard(1 << 20)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: %v, want net.ErrClosed", err)
	}
}

func TestConnPacketReaderTLS(t *testing.T) {
	c, s := tlsPair(t)
	r := NewConnPacketReader(s, bufpool.New(64))
	payloads := [][]byte{[]byte("\x03SELECT 1"), bytes.Repeat([]byte("t"), 3000), {}}
	in := writeAll(t, MaxChunk, 0, payloads...)
	errc := writeSlowly(c, in, 500)
	readAllPackets(t, r, payloads, 0)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, _, err := r.ReadPacket(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestConnReaderReadDirect(t *testing.T) {
	c, s := tcpPair(t)
	r := NewConnReader(s, bufpool.New(16))
	go c.Write([]byte("0123456789abcdefghijklmnopqrstuvwxyz"))
	p := make([]byte, 36)
	if _, err := io.ReadFull(r, p); err != nil || string(p) != "0123456789abcdefghijklmnopqrstuvwxyz" {
		t.Fatalf("%q %v", p, err)
	}
	if r.Holding() {
		t.Fatal("holding a buffer after a direct read")
	}
}
