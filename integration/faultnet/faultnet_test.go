package faultnet

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// pollTimeout is the generous deadline for conditions polled by the tests.
const pollTimeout = 10 * time.Second

// blackholeReadTimeout is the client-side read deadline used to observe that
// a blackholed connection delivers nothing.
const blackholeReadTimeout = 200 * time.Millisecond

// echoServer is a tiny TCP echo server whose goroutines are all stopped by
// close.
type echoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("echo listen: %v", err)
	}
	e := &echoServer{ln: ln, conns: make(map[net.Conn]struct{})}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(e.close)
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

func (e *echoServer) close() {
	_ = e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		_ = c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

func startRelay(t *testing.T, target string) *Relay {
	t.Helper()
	r, err := Listen(target)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, pollTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads back the same number of bytes within
// timeout.
func roundTrip(c net.Conn, msg string, timeout time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func mustEcho(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	got, err := roundTrip(c, msg, pollTimeout)
	if err != nil {
		t.Fatalf("echo %q: %v", msg, err)
	}
	if got != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// expectTimeout asserts that nothing comes back on c for msg: the read times
// out after the short blackhole deadline.
func expectTimeout(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.SetReadDeadline(time.Now().Add(blackholeReadTimeout)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if !isTimeout(err) {
		t.Fatalf("read: got n=%d err=%v, want timeout", n, err)
	}
	_ = c.SetReadDeadline(time.Time{})
}

// expectClosed asserts that c has been cut: a read returns EOF or a reset
// (not a timeout and not data) well within the poll deadline.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(pollTimeout)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err == nil || isTimeout(err) {
		t.Fatalf("read on cut connection: got n=%d err=%v, want EOF or reset", n, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitConns(t *testing.T, r *Relay, want int) {
	t.Helper()
	waitFor(t, "Conns() to settle", func() bool { return r.Conns() == want })
}

func TestForwarding(t *testing.T) {
	e := startEcho(t)
	r := startRelay(t, e.addr())

	c1 := dial(t, r.Addr())
	c2 := dial(t, r.Addr())
	mustEcho(t, c1, "hello")
	mustEcho(t, c2, "world")
	waitConns(t, r, 2)

	// A larger payload crosses several buffers in both directions.
	big := strings.Repeat("0123456789abcdef", 10000)
	mustEcho(t, c1, big)

	// A client close tears the relayed connection down.
	_ = c2.Close()
	waitConns(t, r, 1)
	mustEcho(t, c1, "still here")
}

func TestHalfClose(t *testing.T) {
	e := startEcho(t)
	r := startRelay(t, e.addr())

	c := dial(t, r.Addr())
	if _, err := c.Write([]byte("bye")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if err := c.SetReadDeadline(time.Now().Add(pollTimeout)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, []byte("bye")) {
		t.Fatalf("got %q, want %q", got, "bye")
	}
	waitConns(t, r, 0)
}

func TestBlock(t *testing.T) {
	e := startEcho(t)
	r := startRelay(t, e.addr())

	old := dial(t, r.Addr())
	mustEcho(t, old, "before")
	waitConns(t, r, 1)

	r.Block()
	expectClosed(t, old)
	waitConns(t, r, 0)

	// New connections are accepted and immediately closed. Depending on
	// timing the client may see the failure on dial, write or read.
	for i := 0; i < 3; i++ {
		c, err := net.DialTimeout("tcp", r.Addr(), pollTimeout)
		if err != nil {
			if isTimeout(err) {
				t.Fatalf("dial through blocked relay: %v, want success or reset", err)
			}
			continue
		}
		if _, err := roundTrip(c, "blocked", pollTimeout); err == nil || isTimeout(err) {
			t.Fatalf("round trip through blocked relay: err=%v, want EOF or reset", err)
		}
		_ = c.Close()
	}
	if n := r.Conns(); n != 0 {
		t.Fatalf("Conns() = %d while blocked, want 0", n)
	}

	r.Heal()
	c := dial(t, r.Addr())
	mustEcho(t, c, "healed")
	waitConns(t, r, 1)
}

func TestBlackhole(t *testing.T) {
	e := startEcho(t)
	r := startRelay(t, e.addr())

	old := dial(t, r.Addr())
	mustEcho(t, old, "before")
	waitConns(t, r, 1)

	r.Blackhole()
	expectTimeout(t, old, "into the void")
	// The connection is still open, just silent.
	if n := r.Conns(); n != 1 {
		t.Fatalf("Conns() = %d while blackholed, want 1", n)
	}

	// New connections are accepted but go nowhere.
	fresh := dial(t, r.Addr())
	expectTimeout(t, fresh, "anyone there?")

	r.Heal()
	healed := dial(t, r.Addr())
	mustEcho(t, healed, "healed")

	// Connections cut earlier stay cut.
	expectTimeout(t, old, "old again")
	expectTimeout(t, fresh, "fresh again")
}

func TestBlockAfterBlackhole(t *testing.T) {
	e := startEcho(t)
	r := startRelay(t, e.addr())

	relayed := dial(t, r.Addr())
	mustEcho(t, relayed, "x")
	r.Blackhole()
	held := dial(t, r.Addr())
	expectTimeout(t, held, "y")

	r.Block()
	expectClosed(t, relayed)
	expectClosed(t, held)
	waitConns(t, r, 0)
}

func TestUnreachableTarget(t *testing.T) {
	// Grab a free port and release it so nothing is listening there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	_ = ln.Close()

	r := startRelay(t, target)
	// The relay resets the client connection; the client may already see
	// that while dialing.
	c, err := net.DialTimeout("tcp", r.Addr(), pollTimeout)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
		expectClosed(t, c)
	} else if isTimeout(err) {
		t.Fatalf("dial: %v, want success or reset", err)
	}
	if n := r.Conns(); n != 0 {
		t.Fatalf("Conns() = %d, want 0", n)
	}
}

// relayGoroutines reports stacks of goroutines running code from this
// package (excluding the tests themselves).
func relayGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "faultnet.(*Relay)") {
			out = append(out, g)
		}
	}
	return out
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	e := startEcho(t)
	before := runtime.NumGoroutine()

	r, err := Listen(e.addr())
	if err != nil {
		t.Fatal(err)
	}
	// Exercise every kind of goroutine the relay owns: accept loop,
	// forwarding pairs, blackholed pairs and held connections.
	var clients []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.DialTimeout("tcp", r.Addr(), pollTimeout)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		mustEcho(t, c, "ping")
	}
	r.Blackhole()
	for i := 0; i < 2; i++ {
		c, err := net.DialTimeout("tcp", r.Addr(), pollTimeout)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		expectTimeout(t, c, "pong")
	}
	r.Heal()
	c, err := net.DialTimeout("tcp", r.Addr(), pollTimeout)
	if err != nil {
		t.Fatal(err)
	}
	clients = append(clients, c)
	mustEcho(t, c, "ping")

	if len(relayGoroutines()) == 0 {
		t.Fatal("expected relay goroutines while running")
	}

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waits for its goroutines. A goroutine may still be visible for
	// an instant after its deferred wg.Done, so poll briefly; a real leak
	// (blocked goroutine) never goes away.
	deadline := time.Now().Add(pollTimeout)
	for gs := relayGoroutines(); len(gs) != 0; gs = relayGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("%d relay goroutines still running after Close:\n%s", len(gs), strings.Join(gs, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	for _, c := range clients {
		_ = c.Close()
	}
	// The echo server's per-connection goroutines exit once the relay's
	// target-side connections are gone; the total then returns to the
	// baseline.
	waitFor(t, "goroutine count to return to baseline", func() bool {
		return runtime.NumGoroutine() <= before
	})
}
