package pool

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeConn is an io.Closer standing in for a backend connection.
type fakeConn struct {
	id     int
	key    Key
	d      *fakeDialer
	closed atomic.Bool
	bad    atomic.Bool // Healthy reports false
}

func (c *fakeConn) Close() error {
	if c.closed.Swap(true) {
		c.d.doubleClose.Add(1)
		return errors.New("fake: already closed")
	}
	c.d.open.Add(-1)
	return nil
}

// fakeDialer counts dials and open connections, and can fail or block.
type fakeDialer struct {
	dials       atomic.Int64
	open        atomic.Int64
	maxOpen     atomic.Int64
	doubleClose atomic.Int64

	mu    sync.Mutex
	conns []*fakeConn
	// hook, if set, runs before each dial with its 1-based number; a non-nil
	// error fails the dial.
	hook func(ctx context.Context, n int, k Key) error
}

func (d *fakeDialer) dial(ctx context.Context, k Key) (*fakeConn, error) {
	n := int(d.dials.Add(1))
	d.mu.Lock()
	hook := d.hook
	d.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, n, k); err != nil {
			return nil, err
		}
	}
	c := &fakeConn{id: n, key: k, d: d}
	o := d.open.Add(1)
	for {
		m := d.maxOpen.Load()
		if o <= m || d.maxOpen.CompareAndSwap(m, o) {
			break
		}
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return c, nil
}

func (d *fakeDialer) setHook(h func(ctx context.Context, n int, k Key) error) {
	d.mu.Lock()
	d.hook = h
	d.mu.Unlock()
}

func (d *fakeDialer) check(t *testing.T) {
	t.Helper()
	if n := d.doubleClose.Load(); n != 0 {
		t.Errorf("%d connections closed twice", n)
	}
}

var k1 = Key{Addr: "db1:5432", User: "alice", Database: "app"}
var k2 = Key{Addr: "db2:3306", User: "bob", Database: "shop", Profile: "caps=1"}

func newPool(d *fakeDialer, o Options[*fakeConn]) *Pool[*fakeConn] {
	o.Dial = d.dial
	return New(o)
}

func statsFor(t *testing.T, p *Pool[*fakeConn], k Key) Stats {
	t.Helper()
	for _, s := range p.Stats() {
		if s.Key == k {
			return s
		}
	}
	t.Fatalf("no stats for %v", k)
	return Stats{}
}

func mustGet(t *testing.T, p *Pool[*fakeConn], k Key) *Conn[*fakeConn] {
	t.Helper()
	c, err := p.Get(context.Background(), k)
	if err != nil {
		t.Fatalf("Get(%v): %v", k, err)
	}
	return c
}

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", want)
		}
		if !strings.Contains(fmt.Sprint(r), want) {
			t.Fatalf("panic %q, want one containing %q", r, want)
		}
	}()
	f()
}

func TestKeyString(t *testing.T) {
	if got, want := k1.String(), "alice@db1:5432/app"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := k2.String(), "bob@db2:3306/shop?profile=caps=1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNewValidates(t *testing.T) {
	mustPanic(t, "Dial is required", func() { New(Options[*fakeConn]{}) })
	d := &fakeDialer{}
	mustPanic(t, "negative", func() { newPool(d, Options[*fakeConn]{MaxServerConns: -1}) })
}

func TestNoBackgroundGoroutineUnlessNeeded(t *testing.T) {
	d := &fakeDialer{}
	p := newPool(d, Options[*fakeConn]{MaxServerConns: 3})
	if p.done != nil {
		t.Error("background goroutine started without IdleTimeout, MaxLifetime or MinIdle")
	}
	p.Close()
	for _, o := range []Options[*fakeConn]{{IdleTimeout: time.Second}, {MaxLifetime: time.Second}, {MinIdle: 1}} {
		p := newPool(d, o)
		if p.done == nil {
			t.Errorf("%+v: no background goroutine", o)
		}
		p.Close()
		select {
		case <-p.done:
		default:
			t.Errorf("%+v: background goroutine still running after Close", o)
		}
	}
}

func TestLIFOReuse(t *testing.T) {
	d := &fakeDialer{}
	p := newPool(d, Options[*fakeConn]{})
	defer p.Close()
	a, b, c := mustGet(t, p, k1), mustGet(t, p, k1), mustGet(t, p, k1)
	if a.Key() != k1 || a.Value().key != k1 {
		t.Errorf("Key() = %v", a.Key())
	}
	p.Put(a)
	p.Put(b)
	p.Put(c)
	for _, want := range []*Conn[*fakeConn]{c, b, a} {
		got := mustGet(t, p, k1)
		if got != want {
			t.Fatalf("got conn %d, want %d (most recently returned first)", got.Value().id, want.Value().id)
		}
		defer p.Put(got)
	}
	if n := d.dials.Load(); n != 3 {
		t.Errorf("dials = %d, want 3", n)
	}
	// Keys are separate pools.
	o := mustGet(t, p, k2)
	if o.Value().key != k2 || d.dials.Load() != 4 {
		t.Errorf("k2 got %v after %d dials", o.Value().key, d.dials.Load())
	}
	p.Put(o)
}

func TestStatePersists(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1})
		defer p.Close()
		c := mustGet(t, p, k1)
		if c.State() != nil {
			t.Errorf("new conn State() = %v", c.State())
		}
		created := c.Created()
		c.SetState("prepared: s1")
		time.Sleep(time.Second)
		p.Put(c)
		c = mustGet(t, p, k1)
		if c.State() != "prepared: s1" {
			t.Errorf("State() = %v after Put/Get", c.State())
		}
		if !c.Created().Equal(created) || c.LastUsed().Sub(created) != time.Second {
			t.Errorf("Created %v LastUsed %v", c.Created(), c.LastUsed())
		}
		c.SetState(42)
		// Hand-off to a waiter keeps the state too.
		done := make(chan any)
		go func() {
			c := mustGet(t, p, k1)
			done <- c.State()
			p.Put(c)
		}()
		synctest.Wait()
		p.Put(c)
		if s := <-done; s != 42 {
			t.Errorf("waiter got State() = %v", s)
		}
	})
}

func TestLimitUnderLoad(t *testing.T) {
	const (
		workers = 200
		iters   = 200
		limit   = 10
	)
	d := &fakeDialer{}
	p := newPool(d, Options[*fakeConn]{
		MaxServerConns:  limit,
		CheckoutTimeout: -1, // wait for ctx only
		Healthy:         func(c *fakeConn) bool { return !c.closed.Load() && !c.bad.Load() },
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var inUse, maxInUse atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range iters {
				c, err := p.Get(ctx, k1)
				if err != nil {
					errs <- err
					return
				}
				if c.Value().closed.Load() {
					errs <- fmt.Errorf("got closed conn %d", c.Value().id)
				}
				n := inUse.Add(1)
				if n > maxInUse.Load() {
					maxInUse.Store(n) // racy max is fine: checked against limit below
				}
				if n > limit {
					errs <- fmt.Errorf("%d connections in use", n)
				}
				if i%3 == 0 {
					runtime.Gosched()
				}
				inUse.Add(-1)
				switch (w + i) % 13 {
				case 0:
					p.Discard(c)
				case 1:
					c.Value().bad.Store(true)
					p.Put(c)
				default:
					p.Put(c)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if m := d.maxOpen.Load(); m > limit {
		t.Errorf("max open connections = %d, want <= %d", m, limit)
	}
	s := statsFor(t, p, k1)
	if s.InUse != 0 || s.Waiting != 0 || s.Idle > limit || s.Idle != int(d.open.Load()) {
		t.Errorf("stats after load: %+v, open %d", s, d.open.Load())
	}
	if uint64(d.dials.Load()) != s.Dials {
		t.Errorf("Dials = %d, dialer saw %d", s.Dials, d.dials.Load())
	}
	t.Logf("dials %d, max in use %d", s.Dials, maxInUse.Load())
	if err := p.Close(); err != nil {
		t.Error(err)
	}
	if n := d.open.Load(); n != 0 {
		t.Errorf("%d connections open after Close", n)
	}
	d.check(t)
}

func TestFIFOWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1, CheckoutTimeout: -1})
		defer p.Close()
		c0 := mustGet(t, p, k1)
		order := make(chan int, 5)
		for i := 1; i <= 5; i++ {
			go func() {
				c := mustGet(t, p, k1)
				order <- i
				p.Put(c)
			}()
			synctest.Wait() // queued before the next one starts
		}
		if s := statsFor(t, p, k1); s.Waiting != 5 || s.InUse != 1 {
			t.Errorf("stats = %+v, want 5 waiting, 1 in use", s)
		}
		p.Put(c0)
		for want := 1; want <= 5; want++ {
			if got := <-order; got != want {
				t.Fatalf("waiter %d served before waiter %d", got, want)
			}
		}
		if n := d.dials.Load(); n != 1 {
			t.Errorf("dials = %d, want 1 (Put hands the connection over)", n)
		}
	})
}

func TestNoQueueJumping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1})
		defer p.Close()
		c0 := mustGet(t, p, k1)
		got := make(chan *Conn[*fakeConn])
		go func() { got <- mustGet(t, p, k1) }()
		synctest.Wait()
		// The freed slot belongs to the waiter, not to a newcomer.
		p.Discard(c0)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if c, err := p.Get(ctx, k1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("newcomer Get = %v, %v; want deadline exceeded", c, err)
		}
		c := <-got
		if c.Value().id != 2 {
			t.Errorf("waiter got conn %d, want a new one (2)", c.Value().id)
		}
		p.Put(c)
	})
}

func TestCheckoutTimeout(t *testing.T) {
	for _, tc := range []struct {
		opt, want time.Duration
	}{{2 * time.Second, 2 * time.Second}, {0, DefaultCheckoutTimeout}} {
		synctest.Test(t, func(t *testing.T) {
			d := &fakeDialer{}
			p := newPool(d, Options[*fakeConn]{MaxServerConns: 1, CheckoutTimeout: tc.opt})
			defer p.Close()
			c0 := mustGet(t, p, k1)
			start := time.Now()
			c, err := p.Get(context.Background(), k1)
			if !errors.Is(err, ErrCheckoutTimeout) {
				t.Fatalf("Get = %v, %v; want ErrCheckoutTimeout", c, err)
			}
			if waited := time.Since(start); waited != tc.want {
				t.Errorf("waited %v, want %v", waited, tc.want)
			}
			for _, s := range []string{tc.want.String(), k1.String(), "MaxServerConns 1"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if s := statsFor(t, p, k1); s.Timeouts != 1 || s.Waiting != 0 || s.InUse != 1 {
				t.Errorf("stats = %+v", s)
			}
			p.Put(c0)
		})
	}
}

// TestStaggeredCheckoutTimeouts checks the per-key expiry timer: each
// waiter gets its own full CheckoutTimeout counted from when it queued,
// whatever happened to the waiters ahead of it (granted, cancelled, timed
// out), and the timer is re-armed for waiters that come later.
func TestStaggeredCheckoutTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 2 * time.Second
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1, CheckoutTimeout: timeout})
		defer p.Close()
		c0 := mustGet(t, p, k1)
		start := time.Now()
		type result struct {
			name   string
			err    error
			waited time.Duration
		}
		results := make(chan result, 4)
		get := func(ctx context.Context, name string, after time.Duration) {
			time.Sleep(after)
			queued := time.Now()
			c, err := p.Get(ctx, k1)
			if err == nil {
				p.Put(c)
			}
			results <- result{name, err, time.Since(queued)}
		}
		cctx, cancel := context.WithCancel(context.Background())
		go get(context.Background(), "a", 0)                     // times out at 2s
		go get(cctx, "b", 500*time.Millisecond)                  // cancelled at 1.5s
		go get(context.Background(), "c", time.Second)           // times out at 3s
		go get(context.Background(), "d", 2500*time.Millisecond) // granted at 4s
		time.Sleep(1500 * time.Millisecond)
		cancel()
		got := map[string]result{}
		for len(got) < 3 {
			r := <-results
			got[r.name] = r
		}
		// d queued at 2.5s and is still waiting; free the connection for it.
		time.Sleep(4*time.Second - time.Since(start))
		p.Put(c0)
		r := <-results
		got[r.name] = r

		want := map[string]struct {
			err    error
			waited time.Duration
		}{
			"a": {ErrCheckoutTimeout, timeout},
			"b": {context.Canceled, time.Second},
			"c": {ErrCheckoutTimeout, timeout},
			"d": {nil, 1500 * time.Millisecond},
		}
		for name, w := range want {
			g := got[name]
			if (w.err == nil) != (g.err == nil) || (w.err != nil && !errors.Is(g.err, w.err)) {
				t.Errorf("%s: err = %v, want %v", name, g.err, w.err)
			}
			if g.waited != w.waited {
				t.Errorf("%s: waited %v, want %v", name, g.waited, w.waited)
			}
		}
		if s := statsFor(t, p, k1); s.Timeouts != 2 || s.Waiting != 0 {
			t.Errorf("stats = %+v, want 2 timeouts and nobody waiting", s)
		}
		// The timer is re-armed for a later waiter.
		c1 := mustGet(t, p, k1)
		queued := time.Now()
		if _, err := p.Get(context.Background(), k1); !errors.Is(err, ErrCheckoutTimeout) || time.Since(queued) != timeout {
			t.Errorf("later Get = %v after %v, want ErrCheckoutTimeout after %v", err, time.Since(queued), timeout)
		}
		p.Put(c1)
	})
}

func TestContextEndsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1, CheckoutTimeout: 10 * time.Second})
		defer p.Close()
		c0 := mustGet(t, p, k1)

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			_, err := p.Get(ctx, k1)
			errc <- err
		}()
		synctest.Wait()
		if s := statsFor(t, p, k1); s.Waiting != 1 {
			t.Errorf("Waiting = %d, want 1", s.Waiting)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) || errors.Is(err, ErrCheckoutTimeout) {
			t.Errorf("Get after cancel: %v", err)
		}

		start := time.Now()
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := p.Get(ctx, k1)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("Get with 1s deadline: %v after %v", err, time.Since(start))
		}
		if s := statsFor(t, p, k1); s.Waiting != 0 || s.Timeouts != 0 {
			t.Errorf("stats = %+v", s)
		}
		p.Put(c0)
		if c := mustGet(t, p, k1); c != c0 {
			t.Error("connection not reusable after cancelled waiters")
		} else {
			p.Put(c)
		}
	})
}

// A Put racing with the waiter's timeout either serves the waiter or leaves
// the connection idle; nothing leaks.
func TestGrantRacesTimeout(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			d := &fakeDialer{}
			p := newPool(d, Options[*fakeConn]{MaxServerConns: 1, CheckoutTimeout: time.Second})
			defer p.Close()
			c0 := mustGet(t, p, k1)
			type res struct {
				c   *Conn[*fakeConn]
				err error
			}
			done := make(chan res)
			go func() {
				c, err := p.Get(context.Background(), k1)
				done <- res{c, err}
			}()
			synctest.Wait()
			time.Sleep(time.Second)
			p.Put(c0)
			r := <-done
			s := statsFor(t, p, k1)
			if r.err == nil {
				if s.InUse != 1 || s.Idle != 0 {
					t.Errorf("served; stats %+v", s)
				}
				p.Put(r.c)
			} else if s.InUse != 0 || s.Idle != 1 || s.Waiting != 0 {
				t.Errorf("timed out (%v); stats %+v", r.err, s)
			}
		})
	}
}

func TestDiscardFreesSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1})
		defer p.Close()
		c0 := mustGet(t, p, k1)
		got := make(chan *Conn[*fakeConn])
		go func() { got <- mustGet(t, p, k1) }()
		synctest.Wait()
		p.Discard(c0)
		if !c0.Value().closed.Load() {
			t.Error("Discard did not close the connection")
		}
		c := <-got
		if c.Value() == c0.Value() || d.dials.Load() != 2 {
			t.Errorf("waiter got conn %d after %d dials", c.Value().id, d.dials.Load())
		}
		p.Discard(c)
		if s := statsFor(t, p, k1); s.InUse != 0 || s.Idle != 0 {
			t.Errorf("stats = %+v", s)
		}
		// Without waiters the slot is simply free.
		p.Put(mustGet(t, p, k1))
		d.check(t)
	})
}

func TestDialErrorFreesSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		boom := errors.New("connection refused")
		d.setHook(func(ctx context.Context, n int, k Key) error {
			if n == 1 {
				return boom
			}
			return nil
		})
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1})
		defer p.Close()
		_, err := p.Get(context.Background(), k1)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), k1.String()) {
			t.Fatalf("Get = %v, want wrapped %v mentioning the key", err, boom)
		}
		if s := statsFor(t, p, k1); s.InUse != 0 || s.DialErrors != 1 || s.Dials != 0 {
			t.Errorf("stats = %+v", s)
		}
		p.Put(mustGet(t, p, k1))

		// A failed dial hands its slot to a waiter, who dials again.
		gate := make(chan struct{})
		d.setHook(func(ctx context.Context, n int, k Key) error {
			if k == k2 && n == 3 {
				<-gate
				return boom
			}
			return nil
		})
		errc := make(chan error)
		go func() {
			_, err := p.Get(context.Background(), k2)
			errc <- err
		}()
		synctest.Wait() // first Get is dialling k2
		got := make(chan *Conn[*fakeConn])
		go func() { got <- mustGet(t, p, k2) }()
		synctest.Wait()
		if s := statsFor(t, p, k2); s.Waiting != 1 || s.InUse != 1 {
			t.Errorf("stats while dialling = %+v", s)
		}
		close(gate)
		if err := <-errc; !errors.Is(err, boom) {
			t.Errorf("first Get: %v", err)
		}
		c := <-got
		if c.Value().id != 4 {
			t.Errorf("waiter got conn %d, want 4", c.Value().id)
		}
		p.Put(c)
		if s := statsFor(t, p, k2); s.Dials != 1 || s.DialErrors != 1 || s.Idle != 1 || s.InUse != 0 {
			t.Errorf("stats = %+v", s)
		}
	})
}

func TestDialUsesGetContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		d.setHook(func(ctx context.Context, n int, k Key) error {
			<-ctx.Done()
			return ctx.Err()
		})
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1})
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := p.Get(ctx, k1); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Get = %v", err)
		}
		if s := statsFor(t, p, k1); s.InUse != 0 {
			t.Errorf("stats = %+v", s)
		}
	})
}

func TestHealthy(t *testing.T) {
	d := &fakeDialer{}
	p := newPool(d, Options[*fakeConn]{Healthy: func(c *fakeConn) bool { return !c.bad.Load() }})
	defer p.Close()
	a, b := mustGet(t, p, k1), mustGet(t, p, k1)
	p.Put(a)
	p.Put(b)
	b.Value().bad.Store(true)
	if c := mustGet(t, p, k1); c != a {
		t.Errorf("got conn %d, want 1 (2 is unhealthy)", c.Value().id)
	} else {
		a.Value().bad.Store(true)
		p.Put(c)
	}
	if !b.Value().closed.Load() {
		t.Error("unhealthy conn not closed")
	}
	c := mustGet(t, p, k1) // only idle conn is unhealthy: dial into its slot
	if c.Value().id != 3 || !a.Value().closed.Load() {
		t.Errorf("got conn %d", c.Value().id)
	}
	p.Put(c)
	if s := statsFor(t, p, k1); s.Idle != 1 || s.InUse != 0 || s.Dials != 3 {
		t.Errorf("stats = %+v", s)
	}
	d.check(t)
}

func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		// Reaper ticks every 5s: at 5, 10, 15, 20...
		p := newPool(d, Options[*fakeConn]{IdleTimeout: 10 * time.Second})
		defer p.Close()
		a, b := mustGet(t, p, k1), mustGet(t, p, k1)
		p.Put(a)
		p.Put(b)
		time.Sleep(8 * time.Second)
		p.Put(mustGet(t, p, k1)) // b, idle again from t=8

		time.Sleep(6 * time.Second) // t=14
		synctest.Wait()
		if a.Value().closed.Load() || b.Value().closed.Load() {
			t.Fatal("closed before idle timeout")
		}
		time.Sleep(2 * time.Second) // t=16: tick at 15 closed a (idle 15s), not b (7s)
		synctest.Wait()
		if !a.Value().closed.Load() || b.Value().closed.Load() {
			t.Fatalf("at t=16: a closed %v, b closed %v", a.Value().closed.Load(), b.Value().closed.Load())
		}
		if s := statsFor(t, p, k1); s.Idle != 1 || s.InUse != 0 {
			t.Errorf("stats = %+v", s)
		}
		time.Sleep(5 * time.Second) // t=21: tick at 20 closed b (idle 12s)
		synctest.Wait()
		if !b.Value().closed.Load() || d.open.Load() != 0 {
			t.Error("b not reaped")
		}
		if s := statsFor(t, p, k1); s.Idle != 0 || s.InUse != 0 {
			t.Errorf("stats = %+v", s)
		}
		d.check(t)
	})
}

func TestMaxLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		// Reaper ticks every 30s.
		p := newPool(d, Options[*fakeConn]{MaxLifetime: time.Minute})
		defer p.Close()

		// Expired while in use: closed when it comes back.
		c := mustGet(t, p, k1)
		time.Sleep(61 * time.Second)
		p.Put(c)
		if !c.Value().closed.Load() {
			t.Error("expired conn not closed on Put")
		}
		if s := statsFor(t, p, k1); s.Idle != 0 || s.InUse != 0 {
			t.Errorf("stats = %+v", s)
		}

		// Expired while idle, before the reaper saw it: Get replaces it.
		c = mustGet(t, p, k1) // created t=61
		p.Put(c)
		time.Sleep(61 * time.Second) // t=122; ticks at 90 and 120 saw ages 29, 59
		synctest.Wait()
		if c.Value().closed.Load() {
			t.Fatal("reaped early")
		}
		n := mustGet(t, p, k1)
		if n == c || !c.Value().closed.Load() {
			t.Fatalf("Get handed out an expired conn")
		}
		p.Put(n) // created t=122

		// Expired while idle: the reaper closes it.
		time.Sleep(67 * time.Second) // t=189; tick at 180 saw age 58
		synctest.Wait()
		if n.Value().closed.Load() {
			t.Fatal("reaped early")
		}
		time.Sleep(2 * time.Second) // t=191; tick at 210 not yet
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if !n.Value().closed.Load() {
			t.Error("expired idle conn not reaped")
		}
		if s := statsFor(t, p, k1); s.Idle != 0 || s.InUse != 0 || s.Dials != 3 {
			t.Errorf("stats = %+v", s)
		}
		d.check(t)
	})
}

func TestMinIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MinIdle: 2, MaxServerConns: 4})
		defer p.Close()
		synctest.Wait()
		if n := d.dials.Load(); n != 0 {
			t.Fatalf("%d dials before any key was used", n)
		}
		c1 := mustGet(t, p, k1)
		synctest.Wait()
		if s := statsFor(t, p, k1); s.Idle != 2 || s.InUse != 1 || s.Dials != 3 {
			t.Errorf("after first Get: %+v", s)
		}
		c2, c3 := mustGet(t, p, k1), mustGet(t, p, k1)
		synctest.Wait()
		// Refill stops at MaxServerConns.
		if s := statsFor(t, p, k1); s.Idle != 1 || s.InUse != 3 || s.Dials != 4 {
			t.Errorf("after three Gets: %+v", s)
		}
		p.Put(c1)
		p.Put(c2)
		p.Discard(c3) // refilled? no: 3 idle already
		synctest.Wait()
		if s := statsFor(t, p, k1); s.Idle != 3 || s.InUse != 0 || s.Dials != 4 {
			t.Errorf("after Put: %+v", s)
		}

		// Failed background dials are retried on the next tick (1s).
		c := mustGet(t, p, k2)
		synctest.Wait()
		if s := statsFor(t, p, k2); s.Idle != 2 || s.InUse != 1 {
			t.Errorf("k2: %+v", s)
		}
		var fail atomic.Bool
		fail.Store(true)
		d.setHook(func(ctx context.Context, n int, k Key) error {
			if fail.Load() {
				return errors.New("refused")
			}
			return nil
		})
		x2 := mustGet(t, p, k2) // idle
		synctest.Wait()
		x3 := mustGet(t, p, k2) // idle
		synctest.Wait()
		if s := statsFor(t, p, k2); s.Idle != 0 || s.InUse != 3 || s.DialErrors != 2 {
			t.Errorf("k2 with failing dials: %+v", s)
		}
		fail.Store(false)
		time.Sleep(time.Second)
		synctest.Wait()
		if s := statsFor(t, p, k2); s.Idle != 1 || s.InUse != 3 || s.Dials != 4 {
			t.Errorf("k2 after retry (up to MaxServerConns): %+v", s)
		}
		p.Put(x2)
		p.Put(x3)
		p.Put(c)
		d.check(t)
	})
}

func TestMinIdleSurvivesIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MinIdle: 1, IdleTimeout: time.Second})
		defer p.Close()
		var cs []*Conn[*fakeConn]
		for range 3 {
			cs = append(cs, mustGet(t, p, k1))
			synctest.Wait() // let the refill settle
		}
		for _, c := range cs {
			p.Put(c)
		}
		c := cs[2]
		time.Sleep(time.Minute)
		synctest.Wait()
		s := statsFor(t, p, k1)
		if s.Idle != 1 || d.open.Load() != 1 || c.Value().closed.Load() {
			t.Errorf("stats = %+v, %d open; want the newest idle conn kept", s, d.open.Load())
		}
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1, IdleTimeout: time.Minute, CheckoutTimeout: -1})
		idle := mustGet(t, p, k1)
		p.Put(idle)
		inUse := mustGet(t, p, k2)
		errc := make(chan error)
		go func() {
			_, err := p.Get(context.Background(), k2)
			errc <- err
		}()
		synctest.Wait()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("waiter got %v, want ErrClosed", err)
		}
		if !idle.Value().closed.Load() {
			t.Error("idle conn not closed")
		}
		if inUse.Value().closed.Load() {
			t.Error("in-use conn closed by Close")
		}
		if _, err := p.Get(context.Background(), k1); !errors.Is(err, ErrClosed) {
			t.Errorf("Get after Close: %v", err)
		}
		p.Put(inUse)
		if !inUse.Value().closed.Load() {
			t.Error("conn Put after Close not closed")
		}
		for _, s := range p.Stats() {
			if s.Idle != 0 || s.InUse != 0 || s.Waiting != 0 {
				t.Errorf("stats after Close: %+v", s)
			}
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		select {
		case <-p.done:
		default:
			t.Error("background goroutine still running")
		}
		d.check(t)
	})
}

func TestCloseDuringDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		gate := make(chan struct{})
		d.setHook(func(ctx context.Context, n int, k Key) error {
			<-gate
			return nil
		})
		p := newPool(d, Options[*fakeConn]{})
		errc := make(chan error)
		go func() {
			_, err := p.Get(context.Background(), k1)
			errc <- err
		}()
		synctest.Wait()
		p.Close()
		close(gate)
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("Get = %v, want ErrClosed", err)
		}
		if d.open.Load() != 0 {
			t.Error("conn dialled during Close left open")
		}
	})
}

func TestCloseStopsBackgroundDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MinIdle: 1})
		c := mustGet(t, p, k1)
		synctest.Wait() // refill dialled one idle conn
		d.setHook(func(ctx context.Context, n int, k Key) error {
			<-ctx.Done()
			return ctx.Err()
		})
		c2 := mustGet(t, p, k1) // takes it
		synctest.Wait()         // refill is blocked dialling
		p.Close()               // cancels it and waits
		p.Put(c)
		p.Put(c2)
		if d.open.Load() != 0 {
			t.Errorf("%d open", d.open.Load())
		}
	})
}

func TestStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 2, CheckoutTimeout: time.Second})
		defer p.Close()
		if len(p.Stats()) != 0 {
			t.Error("stats for unused pool")
		}
		a, b := mustGet(t, p, k1), mustGet(t, p, k1)
		go func() {
			if c, err := p.Get(context.Background(), k1); err == nil {
				p.Put(c)
			}
		}()
		synctest.Wait()
		got := statsFor(t, p, k1)
		want := Stats{Key: k1, Idle: 0, InUse: 2, Waiting: 1, Dials: 2}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
		time.Sleep(2 * time.Second)
		p.Put(a)
		c := mustGet(t, p, k2)
		got = statsFor(t, p, k1)
		want = Stats{Key: k1, Idle: 1, InUse: 1, Waiting: 0, Dials: 2, Timeouts: 1}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
		if len(p.Stats()) != 2 {
			t.Errorf("%d keys", len(p.Stats()))
		}
		p.Put(b)
		p.Put(c)
	})
}

func TestMisuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1})
		defer p.Close()
		c := mustGet(t, p, k1)
		p.Put(c)
		mustPanic(t, "not checked out", func() { p.Put(c) })
		mustPanic(t, "not checked out", func() { p.Discard(c) })

		c = mustGet(t, p, k1)
		p.Discard(c)
		mustPanic(t, "not checked out", func() { p.Put(c) })

		// A handle handed over to a waiter is stale for the old holder.
		c = mustGet(t, p, k1)
		got := make(chan *Conn[*fakeConn])
		go func() { got <- mustGet(t, p, k1) }()
		synctest.Wait()
		p.Put(c)
		w := <-got
		mustPanic(t, "not checked out", func() { p.Put(c) })
		p.Put(w)

		other := newPool(d, Options[*fakeConn]{})
		defer other.Close()
		oc := mustGet(t, other, k1)
		mustPanic(t, "does not belong", func() { p.Put(oc) })
		other.Put(oc)
		mustPanic(t, "does not belong", func() { p.Put(nil) })
		d.check(t)
	})
}

func BenchmarkGetPut(b *testing.B) {
	d := &fakeDialer{}
	p := newPool(d, Options[*fakeConn]{MaxServerConns: 10, Healthy: func(c *fakeConn) bool { return !c.closed.Load() }})
	defer p.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := p.Get(ctx, k1)
		if err != nil {
			b.Fatal(err)
		}
		p.Put(c)
	}
}

func BenchmarkGetPutParallel(b *testing.B) {
	benchGetPutParallel(b, Options[*fakeConn]{MaxServerConns: 10, CheckoutTimeout: -1}, 1)
}

// BenchmarkGetPutContended is transaction pooling's case: more callers than
// connections, so most Gets queue (with the default checkout timeout) and
// most Puts hand the connection to a waiter.
func BenchmarkGetPutContended(b *testing.B) {
	benchGetPutParallel(b, Options[*fakeConn]{MaxServerConns: 2}, 8)
}

// benchGetPutParallel runs Get+Put from parallelism×GOMAXPROCS goroutines.
func benchGetPutParallel(b *testing.B, o Options[*fakeConn], parallelism int) {
	d := &fakeDialer{}
	p := newPool(d, o)
	defer p.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := p.Get(ctx, k1)
			if err != nil {
				b.Error(err)
				return
			}
			p.Put(c)
		}
	})
}

func TestCancelledWaiterLeavesQueueOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{}
		p := newPool(d, Options[*fakeConn]{MaxServerConns: 1, CheckoutTimeout: -1})
		defer p.Close()
		c0 := mustGet(t, p, k1)
		order := make(chan int, 5)
		cancels := make([]context.CancelFunc, 6)
		for i := 1; i <= 5; i++ {
			ctx, cancel := context.WithCancel(context.Background())
			cancels[i] = cancel
			go func() {
				c, err := p.Get(ctx, k1)
				if err != nil {
					order <- -i
					return
				}
				order <- i
				p.Put(c)
			}()
			synctest.Wait()
		}
		cancels[3]()
		if got := <-order; got != -3 {
			t.Fatalf("got %d, want waiter 3 cancelled", got)
		}
		cancels[5]()
		if got := <-order; got != -5 {
			t.Fatalf("got %d, want waiter 5 cancelled", got)
		}
		p.Put(c0)
		for _, want := range []int{1, 2, 4} {
			if got := <-order; got != want {
				t.Fatalf("got waiter %d, want %d", got, want)
			}
		}
		for _, c := range cancels[1:] {
			c()
		}
		if s := statsFor(t, p, k1); s.Waiting != 0 || s.Idle != 1 || s.InUse != 0 {
			t.Errorf("stats = %+v", s)
		}
	})
}
