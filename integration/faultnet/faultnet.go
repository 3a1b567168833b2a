// Package faultnet provides a fault-injecting TCP relay for integration
// tests.
//
// A Relay sits between a client (for example one proxy instance) and a
// target server (for example a database). Tests point the client at
// Relay.Addr and can then cut the path with Block (connections are closed,
// like a dead server) or Blackhole (bytes silently vanish, like a network
// partition), and restore it for new connections with Heal.
//
// Every goroutine started by a Relay is owned by it and stopped by Close.
package faultnet

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// mode is the relay's current behaviour for traffic.
type mode int

const (
	modeForward mode = iota
	modeBlock
	modeBlackhole
)

// dialTimeout bounds how long the relay waits to connect to the target.
const dialTimeout = 5 * time.Second

// bufSize is the size of the per-direction copy buffer.
const bufSize = 32 << 10

// Relay forwards TCP connections accepted on a loopback port to a target
// address, and can cut them.
//
// The zero value is not usable; create a Relay with Listen. All methods are
// safe for concurrent use.
type Relay struct {
	target string
	ln     net.Listener
	ctx    context.Context // cancelled by Close; aborts in-flight dials
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	mode   mode
	closed bool
	pairs  map[*pair]struct{}    // relayed client/target connection pairs
	held   map[net.Conn]struct{} // client connections accepted while blackholed
}

// pair is one relayed connection: the accepted client side and the dialed
// target side.
type pair struct {
	client, server net.Conn
	blackholed     atomic.Bool  // when set, read bytes are discarded
	done           atomic.Int32 // number of finished copy directions
	closeOnce      sync.Once
}

// close closes both sides of the pair. It is idempotent.
func (p *pair) close() {
	p.closeOnce.Do(func() {
		_ = p.client.Close()
		_ = p.server.Close()
	})
}

// Listen starts a relay listening on 127.0.0.1 on an ephemeral port that
// forwards every accepted connection to target (a host:port address).
// The relay starts in forwarding mode. Call Close to release it.
func Listen(target string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{
		target: target,
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		pairs:  make(map[*pair]struct{}),
		held:   make(map[net.Conn]struct{}),
	}
	r.wg.Add(1)
	go r.acceptLoop()
	return r, nil
}

// Addr returns the host:port address clients should dial to reach the
// target through the relay.
func (r *Relay) Addr() string {
	return r.ln.Addr().String()
}

// Block makes the relay behave like a dead server. Every existing relayed
// connection is closed on both sides, and from now on new connections are
// accepted and immediately closed (with a reset), so clients see a reset or
// EOF (on a fast loopback the reset may already surface as a failed dial). Block lasts until Heal or Blackhole is called.
func (r *Relay) Block() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.mode = modeBlock
	for p := range r.pairs {
		p.close()
		delete(r.pairs, p)
	}
	for c := range r.held {
		_ = c.Close()
		delete(r.held, c)
	}
}

// Blackhole makes the relay behave like a network partition where packets
// vanish. Existing relayed connections stay open but stop forwarding data in
// both directions (bytes are read and discarded), and from now on new
// connections are accepted but never forwarded to the target. Clients see
// timeouts rather than errors. Blackhole lasts until Heal or Block is called;
// connections blackholed earlier stay blackholed after Heal.
func (r *Relay) Blackhole() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.mode = modeBlackhole
	for p := range r.pairs {
		p.blackholed.Store(true)
	}
}

// Heal restores forwarding for connections accepted from now on.
// Connections cut earlier by Block or Blackhole stay cut.
func (r *Relay) Heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mode = modeForward
}

// Conns returns the number of currently open relayed connections, that is
// client connections with an established connection to the target
// (including ones that have been blackholed). Client connections accepted
// while blackholed are never relayed and are not counted.
func (r *Relay) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pairs)
}

// Close stops listening, closes every connection the relay holds, and waits
// for all of its goroutines to exit. Calling Close more than once is safe;
// later calls return nil.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cancel()
	err := r.ln.Close()
	for p := range r.pairs {
		p.close()
		delete(r.pairs, p)
	}
	for c := range r.held {
		_ = c.Close()
		delete(r.held, c)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// acceptLoop accepts client connections until the listener is closed.
func (r *Relay) acceptLoop() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Unexpected listener failure: stop accepting. Close still
			// cleans up everything else.
			return
		}
		r.accept(c)
	}
}

// accept dispatches a newly accepted client connection according to the
// current mode.
func (r *Relay) accept(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		_ = c.Close()
		return
	}
	switch r.mode {
	case modeBlock:
		resetClose(c)
	case modeBlackhole:
		r.held[c] = struct{}{}
		r.wg.Add(1)
		go r.discardHeld(c)
	default:
		r.wg.Add(1)
		go r.relay(c)
	}
}

// discardHeld reads and discards everything sent on a client connection
// accepted while blackholed, until it is closed.
func (r *Relay) discardHeld(c net.Conn) {
	defer r.wg.Done()
	_, _ = io.CopyBuffer(io.Discard, onlyReader{c}, make([]byte, bufSize))
	// The client went away (or Block/Close closed it). A partition would
	// not deliver the FIN anywhere, so just drop the connection.
	r.mu.Lock()
	delete(r.held, c)
	r.mu.Unlock()
	_ = c.Close()
}

// relay dials the target for client connection c and, on success, starts
// copying in both directions.
func (r *Relay) relay(c net.Conn) {
	defer r.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	s, err := d.DialContext(r.ctx, "tcp", r.target)
	if err != nil {
		// The target is unreachable; look like a dead server.
		resetClose(c)
		return
	}
	p := &pair{client: c, server: s}

	r.mu.Lock()
	if r.closed || r.mode == modeBlock {
		// Closed or blocked while dialing.
		r.mu.Unlock()
		p.close()
		return
	}
	if r.mode == modeBlackhole {
		// Blackholed while dialing: this connection never forwards.
		p.blackholed.Store(true)
	}
	r.pairs[p] = struct{}{}
	r.wg.Add(2)
	r.mu.Unlock()

	go r.pipe(p, c, s)
	go r.pipe(p, s, c)
}

// pipe copies src to dst for pair p until src fails, discarding the data
// while p is blackholed. On a clean EOF it half-closes dst so that the peer
// sees the end of the stream; on any other error it closes the whole pair.
// The last direction to finish closes and unregisters the pair.
func (r *Relay) pipe(p *pair, src, dst net.Conn) {
	defer r.wg.Done()
	buf := make([]byte, bufSize)
	var err error
	for {
		var n int
		n, err = src.Read(buf)
		if n > 0 && !p.blackholed.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
				break
			}
		}
		if err != nil {
			break
		}
	}

	switch {
	case errors.Is(err, io.EOF) && p.blackholed.Load():
		// A partition swallows the FIN too; leave dst alone.
	case errors.Is(err, io.EOF):
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			p.close()
		}
	default:
		p.close()
	}

	if p.done.Add(1) == 2 {
		p.close()
		r.mu.Lock()
		delete(r.pairs, p)
		r.mu.Unlock()
	}
}

// resetClose closes c so that the peer sees a connection reset rather than
// an orderly shutdown, where the platform supports it.
func resetClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// onlyReader hides any WriterTo/ReaderFrom implementation so that
// io.CopyBuffer uses the supplied buffer.
type onlyReader struct{ io.Reader }
