package pgwire

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/internal/bufpool"
)

func crFrame(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)+4))
	return append(b, body...)
}

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
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
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

// unixPair returns the two ends of a Unix stream connection.
func unixPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	path := t.TempDir() + "/s"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Skip("unix sockets:", err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	client, err = net.Dial("unix", path)
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

var tlsConfigs = sync.OnceValues(func() (*tls.Config, *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	srv := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	cli := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	return srv, cli
})

// tlsPair returns the two ends of a TLS connection over loopback TCP.
func tlsPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	c, s := tcpPair(t)
	srvCfg, cliCfg := tlsConfigs()
	tc, ts := tls.Client(c, cliCfg), tls.Server(s, srvCfg)
	errc := make(chan error, 1)
	go func() { errc <- ts.Handshake() }()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close(); ts.Close() })
	return tc, ts
}

func pipePair(t testing.TB) (client, server net.Conn) {
	c, s := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

type pairFunc func(testing.TB) (net.Conn, net.Conn)

var transports = []struct {
	name string
	pair pairFunc
	raw  bool // expect the RawConn path
}{
	{"tcp", tcpPair, true},
	{"unix", unixPair, true},
	{"tls", tlsPair, false},
	{"pipe", pipePair, false},
}

// forTransports runs f over every transport, writer end first.
func forTransports(t *testing.T, f func(t *testing.T, w net.Conn, r *ConnReader)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c, s := tr.pair(t)
			r := NewConnReader(s, bufpool.New(256), 0)
			if (r.raw != nil) != tr.raw {
				t.Fatalf("raw path = %v, want %v", r.raw != nil, tr.raw)
			}
			f(t, c, r)
		})
	}
}

// writeAsync writes chunks from another goroutine (net.Pipe is synchronous)
// and reports the first error on the returned channel.
func writeAsync(w net.Conn, chunks ...[]byte) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for _, c := range chunks {
			if _, err := w.Write(c); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	return errc
}

func expectMessages(t *testing.T, r *ConnReader, want [][]byte) {
	t.Helper()
	for i, w := range want {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Type != w[0] || !bytes.Equal(m.Raw, w) {
			t.Fatalf("message %d: got %q (%d bytes), want %q (%d bytes)", i, m.Type, len(m.Raw), w[0], len(w))
		}
	}
}

func TestConnReaderManySmallInOneWrite(t *testing.T) {
	forTransports(t, func(t *testing.T, w net.Conn, r *ConnReader) {
		var in []byte
		var want [][]byte
		for i := range 500 {
			f := crFrame('D', bytes.Repeat([]byte{byte(i)}, i%40))
			want = append(want, f)
			in = append(in, f...)
		}
		errc := writeAsync(w, in)
		expectMessages(t, r, want)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if r.Buffered() != 0 {
			t.Fatalf("Buffered = %d after all messages", r.Buffered())
		}
		w.Close()
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("at end: %v, want io.EOF", err)
		}
		if r.bufp != nil {
			t.Fatal("buffer still held after EOF")
		}
	})
}

func TestConnReaderByteByByte(t *testing.T) {
	forTransports(t, func(t *testing.T, w net.Conn, r *ConnReader) {
		want := [][]byte{
			crFrame('Q', []byte("select 1\x00")),
			crFrame('d', bytes.Repeat([]byte("y"), 300)), // larger than the 256-byte pool buffers
			crFrame('S', nil),
		}
		var chunks [][]byte
		for _, f := range want {
			for i := range f {
				chunks = append(chunks, f[i:i+1])
			}
		}
		errc := make(chan error, 1)
		go func() {
			for _, c := range chunks {
				if _, err := w.Write(c); err != nil {
					errc <- err
					return
				}
				time.Sleep(10 * time.Microsecond) // let the reader see partial data
			}
			errc <- nil
		}()
		expectMessages(t, r, want)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

func TestConnReaderLarge(t *testing.T) {
	forTransports(t, func(t *testing.T, w net.Conn, r *ConnReader) {
		big := make([]byte, 300_000)
		for i := range big {
			big[i] = byte(i * 7)
		}
		want := [][]byte{
			crFrame('Q', []byte("select 1\x00")),
			crFrame('d', big),
			crFrame('d', big[:5000]),
			crFrame('S', nil),
			crFrame('d', big[:251]), // exactly the buffer size with its header
			crFrame('d', big[:252]), // one byte more
			crFrame('X', nil),
		}
		errc := writeAsync(w, bytes.Join(want, nil))
		expectMessages(t, r, want)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

func TestConnReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		is   func(error) bool
	}{
		{"too large", []byte{'Q', 0x7f, 0xff, 0xff, 0xff}, func(err error) bool { return errors.Is(err, ErrMessageTooLarge) }},
		{"bad length", []byte{'Q', 0, 0, 0, 3}, func(err error) bool { return errors.Is(err, ErrBadLength) }},
		{"eof in body", []byte{'Q', 0, 0, 0, 9, 'a'}, func(err error) bool { return err == io.ErrUnexpectedEOF }},
		{"eof in header", []byte{'Q', 0}, func(err error) bool { return err == io.ErrUnexpectedEOF }},
		{"eof in large body", crFrame('d', make([]byte, 1000))[:600], func(err error) bool { return err == io.ErrUnexpectedEOF }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forTransports(t, func(t *testing.T, w net.Conn, r *ConnReader) {
				r.SetMaxMessageSize(1024)
				go func() {
					w.Write(tc.in)
					w.Close()
				}()
				if _, err := r.Next(); !tc.is(err) {
					t.Fatalf("got %v", err)
				}
			})
		})
	}
}

func TestConnReaderMaxSize(t *testing.T) {
	forTransports(t, func(t *testing.T, w net.Conn, r *ConnReader) {
		r.SetMaxMessageSize(10)
		errc := writeAsync(w, crFrame('Q', make([]byte, 10)), crFrame('Q', make([]byte, 11)))
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("got %v", err)
		}
		w.Close()
		<-errc
	})
}

func TestConnReaderDeadline(t *testing.T) {
	forTransports(t, func(t *testing.T, w net.Conn, r *ConnReader) {
		// A deadline while idle.
		r.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		start := time.Now()
		_, err := r.Next()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("idle: got %v, want deadline exceeded", err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("idle: %v is not a timeout net.Error", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("deadline honoured after %v", d)
		}
		if r.bufp != nil {
			t.Fatal("buffer held after an idle timeout")
		}
		// A deadline in the middle of a message; the message completes
		// once the deadline is lifted and the rest arrives.
		msg := crFrame('Q', []byte("select 42\x00"))
		big := crFrame('d', make([]byte, 700))
		errc := writeAsync(w, msg[:7]) // net.Pipe: completes once read
		r.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := r.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("partial: got %v, want deadline exceeded", err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if r.Buffered() != 7 {
			t.Fatalf("Buffered = %d after partial read, want 7", r.Buffered())
		}
		r.conn.SetReadDeadline(time.Time{})
		errc = writeAsync(w, msg[7:], big[:300])
		expectMessages(t, r, [][]byte{msg})
		r.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := r.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("partial large: got %v, want deadline exceeded", err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if r.Buffered() != 300 {
			t.Fatalf("Buffered = %d inside a large message, want 300", r.Buffered())
		}
		r.conn.SetReadDeadline(time.Time{})
		errc = writeAsync(w, big[300:])
		expectMessages(t, r, [][]byte{big})
		<-errc
	})
}

func TestConnReaderCloseUnblocks(t *testing.T) {
	forTransports(t, func(t *testing.T, w net.Conn, r *ConnReader) {
		errc := make(chan error, 1)
		go func() {
			_, err := r.Next()
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond)
		r.conn.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("got %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not unblock Next")
		}
	})
}

// TestConnReaderIdleHoldsNoBuffer checks, from inside the wait, that a
// reader parked on the poller holds neither its pooled buffer nor its
// large-message scratch, and that the buffer went back to the pool.
func TestConnReaderIdleHoldsNoBuffer(t *testing.T) {
	for _, pair := range []pairFunc{tcpPair, unixPair} {
		c, s := pair(t)
		r := NewConnReader(s, bufpool.New(256), 0)
		var waits, heldWhileWaiting int
		r.waitHook = func() {
			waits++
			if r.bufp != nil || r.buf != nil || r.big != nil {
				heldWhileWaiting++
			}
		}
		want := [][]byte{crFrame('Q', []byte("select 1\x00")), crFrame('d', make([]byte, 5000)), crFrame('S', nil)}
		for range 3 {
			errc := writeAsync(c, bytes.Join(want, nil))
			expectMessages(t, r, want)
			<-errc
			if r.bufp == nil && r.big == nil {
				// The last message's view must still be backed by the reader.
				t.Fatal("buffer released before the next call to Next")
			}
			// Wait (and time out) with nothing buffered.
			s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			if _, err := r.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("got %v", err)
			}
			s.SetReadDeadline(time.Time{})
			if r.bufp != nil || r.big != nil || r.Buffered() != 0 {
				t.Fatalf("after idle timeout: bufp=%v big=%d buffered=%d", r.bufp != nil, cap(r.big), r.Buffered())
			}
		}
		if waits == 0 {
			t.Fatal("the reader never waited on the poller")
		}
		if heldWhileWaiting != 0 {
			t.Fatalf("%d of %d waits held a buffer", heldWhileWaiting, waits)
		}
	}
}

// TestConnReaderViewsValid checks that a message stays intact while the
// caller holds it, even when more data arrives and is buffered behind it.
func TestConnReaderViewsValid(t *testing.T) {
	forTransports(t, func(t *testing.T, w net.Conn, r *ConnReader) {
		a := crFrame('Q', bytes.Repeat([]byte("a"), 200))
		b := crFrame('Q', bytes.Repeat([]byte("b"), 200))
		errc := writeAsync(w, a, b, b, b)
		for i := range 4 {
			m, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			snap := bytes.Clone(m.Raw)
			time.Sleep(2 * time.Millisecond) // let more bytes land
			_ = r.Buffered()
			if !bytes.Equal(m.Raw, snap) {
				t.Fatalf("message %d changed under the caller", i)
			}
		}
		<-errc
	})
}

// TestConnReaderBufferedFlushHint checks that Buffered counts pipelined
// messages not yet returned.
func TestConnReaderBufferedFlushHint(t *testing.T) {
	c, s := tcpPair(t)
	r := NewConnReader(s, bufpool.New(bufpool.Size16K), 0)
	f := crFrame('S', nil)
	if err := <-writeAsync(c, bytes.Repeat(f, 3)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if got, want := r.Buffered(), (2-i)*len(f); got != want {
			t.Fatalf("Buffered after message %d = %d, want %d", i, got, want)
		}
	}
}

func TestConnReaderRelease(t *testing.T) {
	c, s := tcpPair(t)
	r := NewConnReader(s, nil, 0)
	msg := crFrame('Q', []byte("x\x00"))
	if err := <-writeAsync(c, msg, msg[:3]); err != nil {
		t.Fatal(err)
	}
	expectMessages(t, r, [][]byte{msg})
	r.Release()
	if r.bufp != nil || r.Buffered() != 0 {
		t.Fatal("Release kept the buffer")
	}
}

func TestConnReaderSteadyStateNoAllocs(t *testing.T) {
	c, s := tcpPair(t)
	r := NewConnReader(s, bufpool.New(bufpool.Size16K), 0)
	msg := crFrame('D', []byte("\x00\x01\x00\x00\x00\x05hello"))
	batch := bytes.Repeat(msg, 100)
	// Warm up: the first reads allocate the pool buffer.
	c.Write(batch)
	for range 100 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Write(batch); err != nil {
			t.Fatal(err)
		}
		for range 100 {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
	})
	// sync.Pool may lose its buffer to a GC during the run; allow for that.
	if allocs > 0.1 {
		t.Fatalf("%.2f allocations per batch of 100 messages", allocs)
	}
}

// benchStream feeds a stream of small messages over loopback TCP to read
// (either reader), b.N messages in all.
func benchStream(b *testing.B, next func(net.Conn) func() (Message, error)) {
	msg := crFrame('D', []byte("\x00\x01\x00\x00\x00\x05hello"))
	const perWrite = 256
	batch := bytes.Repeat(msg, perWrite)
	c, s := tcpPair(b)
	read := next(s)
	go func() {
		for {
			if _, err := c.Write(batch); err != nil {
				return
			}
		}
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for range b.N {
		if _, err := read(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close()
}

func BenchmarkConnReaderLoopback(b *testing.B) {
	b.Run("ConnReader", func(b *testing.B) {
		pool := bufpool.New(bufpool.Size16K)
		benchStream(b, func(c net.Conn) func() (Message, error) {
			return NewConnReader(c, pool, 0).Next
		})
	})
	b.Run("Reader", func(b *testing.B) {
		benchStream(b, func(c net.Conn) func() (Message, error) {
			return NewReader(bufio.NewReaderSize(c, bufpool.Size16K), 0).Next
		})
	})
}
