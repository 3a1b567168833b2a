// Package pool is a generic pool of backend connections, used by the
// PostgreSQL and MySQL front ends for session and transaction pooling.
//
// Connections are grouped by [Key] (backend address, user, database and an
// optional profile). Each key has its own limit ([Options.MaxServerConns]),
// its own stack of idle connections (most recently returned first, so that
// few connections stay warm and the rest can be reaped) and its own FIFO
// queue of waiting callers.
//
// A [Pool] owns at most one background goroutine, started only when
// [Options.IdleTimeout], [Options.MaxLifetime] or [Options.MinIdle] need it,
// and stopped by [Pool.Close]. The package keeps no global state.
//
// Typical use:
//
//	c, err := p.Get(ctx, key)
//	if err != nil {
//		return err
//	}
//	if err := use(c.Value()); err != nil {
//		p.Discard(c) // broken: close it and free its slot
//		return err
//	}
//	p.Put(c) // healthy: back to idle, or straight to the next waiter
package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultCheckoutTimeout is the checkout timeout used when
// [Options.CheckoutTimeout] is 0.
const DefaultCheckoutTimeout = 5 * time.Second

var (
	// ErrCheckoutTimeout is wrapped by the error Get returns when no
	// connection became available within [Options.CheckoutTimeout].
	ErrCheckoutTimeout = errors.New("pool: checkout timeout")

	// ErrClosed is returned (possibly wrapped) by Get once the pool is
	// closed, including to callers that were waiting when Close was called.
	ErrClosed = errors.New("pool: closed")
)

// Key identifies one pool: connections to one backend as one user in one
// database, plus an optional profile string (e.g. MySQL capability flags)
// for connections that differ in how they were set up. Key holds no
// secrets, so it is safe to log.
type Key struct {
	// Addr is the backend address, e.g. "10.0.0.5:5432".
	Addr string
	// User is the backend user name.
	User string
	// Database is the backend database (schema) name.
	Database string
	// Profile optionally distinguishes connections to the same
	// Addr/User/Database that are not interchangeable. Empty by default.
	Profile string
}

// String formats k as user@addr/database, followed by ?profile=... when
// Profile is set.
func (k Key) String() string {
	s := k.User + "@" + k.Addr + "/" + k.Database
	if k.Profile != "" {
		s += "?profile=" + k.Profile
	}
	return s
}

// Options configures a [Pool]. The zero value of every field except Dial is
// usable; Dial is required.
type Options[C io.Closer] struct {
	// MaxServerConns is the maximum number of connections per key, idle
	// plus in use plus being dialled plus being closed (a slot is freed
	// only once its connection's Close has returned, so the backend never
	// sees more). 0 means no limit.
	// Default: 0.
	MaxServerConns int

	// MinIdle is the number of idle connections kept ready, per key that
	// has been used (passed to Get) at least once. They are dialled by the
	// background goroutine, never beyond MaxServerConns. Idle connections
	// up to MinIdle are exempt from IdleTimeout (but not MaxLifetime).
	// Default: 0.
	MinIdle int

	// IdleTimeout closes connections that have been idle longer than this.
	// Reaping runs on a tick of half the shorter of IdleTimeout and
	// MaxLifetime (between 10ms and 1 minute), so a connection may stay
	// idle up to that much longer. 0 means idle connections are never
	// closed for being idle.
	// Default: 0.
	IdleTimeout time.Duration

	// MaxLifetime closes connections older than this (counted from when
	// they were dialled): when they are returned with Put, when they sit
	// idle (on the reaping tick), and when Get would hand them out. A
	// connection in use is never interrupted. 0 means no limit.
	// Default: 0.
	MaxLifetime time.Duration

	// CheckoutTimeout is how long Get waits for a free connection or slot
	// when the key is at MaxServerConns, before failing with an error that
	// wraps ErrCheckoutTimeout. It does not bound Dial (use Get's context
	// for that). 0 means DefaultCheckoutTimeout (5s); a negative value
	// means wait until Get's context ends.
	// Default: 0 (5s).
	CheckoutTimeout time.Duration

	// Dial opens a new connection for k. Required. It is called without
	// any pool lock held, with Get's context, or with a context cancelled
	// by Close for background (MinIdle) dials; it must honour ctx.
	// Default: none (New panics if nil).
	Dial func(ctx context.Context, k Key) (C, error)

	// Healthy optionally checks an idle connection before Get hands it
	// out, e.g. that the peer has not closed it. It is called without any
	// pool lock held. Unhealthy connections are closed and Get moves on to
	// the next idle one or dials. nil means always healthy.
	// Default: nil.
	Healthy func(c C) bool
}

// Stats is a snapshot of one key's pool, for metrics.
type Stats struct {
	// Key identifies the pool.
	Key Key
	// Idle is the number of idle connections.
	Idle int
	// InUse is the number of checked-out connections, including slots
	// reserved for dials in progress.
	InUse int
	// Waiting is the number of Get calls queued for a connection.
	Waiting int
	// Dials is the total number of successful dials (a counter).
	Dials uint64
	// DialErrors is the total number of failed dials (a counter).
	DialErrors uint64
	// Timeouts is the total number of Get calls that failed with
	// ErrCheckoutTimeout (a counter).
	Timeouts uint64
}

// Conn is a pooled connection, checked out by Get and returned by exactly
// one Put or Discard. After that the Conn must no longer be used.
//
// Returning a Conn that is not checked out (a second Put or Discard, or a
// Conn from another pool) panics. Because an idle Conn is reused for the
// next checkout, a stale Conn returned after it has been handed out again
// cannot be told apart from the new holder's and is not detected.
type Conn[C io.Closer] struct {
	v        C
	kp       *keyPool[C]
	created  time.Time
	lastUse  time.Time
	state    any
	checkout bool // checked out (owned by a caller); guarded by the pool lock
}

// Value returns the underlying connection.
func (c *Conn[C]) Value() C { return c.v }

// Key returns the key the connection belongs to.
func (c *Conn[C]) Key() Key { return c.kp.key }

// Created returns when the connection was dialled.
func (c *Conn[C]) Created() time.Time { return c.created }

// LastUsed returns when the connection was last checked out or returned
// with Put; for an idle connection, the time it became idle.
func (c *Conn[C]) LastUsed() time.Time { return c.lastUse }

// State returns the opaque per-connection value set by SetState, as it was
// at the last Put (nil for a new connection). Callers use it to remember,
// for instance, which prepared statements and session settings the backend
// connection has.
func (c *Conn[C]) State() any { return c.state }

// SetState sets the opaque per-connection value returned by State. It is
// kept with the connection across checkouts.
func (c *Conn[C]) SetState(v any) { c.state = v }

// grant is what a waiter receives: a connection, or (c == nil, err == nil)
// a reserved slot to dial into, or an error.
type grant[C io.Closer] struct {
	c   *Conn[C]
	err error
}

// waiter is one Get call queued for a connection. Waiters are recycled
// (Pool.waiters): a waiter goes back only when it is off the queue and its
// channel is empty.
type waiter[C io.Closer] struct {
	ch         chan grant[C] // buffered 1; receives exactly one grant per wait
	prev, next *waiter[C]
	queued     bool
	start      time.Time // when it was queued
	deadline   time.Time // when its checkout times out; zero: never
}

type keyPool[C io.Closer] struct {
	p    *Pool[C]
	key  Key
	idle []*Conn[C] // stack: most recently returned last
	open int        // idle + checked out + dialling
	used bool       // Get has been called for this key

	head, tail *waiter[C]
	waiting    int
	// expiry fires at the head waiter's deadline (armed while expiryAt is
	// set) and times out every waiter whose deadline has passed: one
	// timer per key instead of one per waiting Get.
	expiry   *time.Timer
	expiryAt time.Time

	dials, dialErrors, timeouts uint64
}

func (kp *keyPool[C]) push(w *waiter[C]) {
	w.queued = true
	w.prev = kp.tail
	if kp.tail != nil {
		kp.tail.next = w
	} else {
		kp.head = w
	}
	kp.tail = w
	kp.waiting++
}

func (kp *keyPool[C]) remove(w *waiter[C]) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		kp.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		kp.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	kp.waiting--
}

// pop removes and returns the longest waiter, or nil.
func (kp *keyPool[C]) pop() *waiter[C] {
	w := kp.head
	if w != nil {
		kp.remove(w)
	}
	return w
}

// Pool is a pool of backend connections of type C, grouped by [Key]. It is
// safe for concurrent use. Create one with [New] and release it with
// [Pool.Close].
type Pool[C io.Closer] struct {
	o       Options[C]
	timeout time.Duration // effective checkout timeout; <= 0: none

	mu     sync.Mutex
	keys   map[Key]*keyPool[C]
	closed bool

	waiters sync.Pool // of *waiter[C], with their channels

	// Background goroutine; nil channels when not started.
	kick   chan struct{} // buffered 1: "check MinIdle now"
	stop   chan struct{}
	done   chan struct{}
	ctx    context.Context // cancelled by Close; for background dials
	cancel context.CancelFunc
}

// New returns a pool configured by o. It panics if o.Dial is nil or a limit
// is negative. It starts a background goroutine only if o.IdleTimeout,
// o.MaxLifetime or o.MinIdle is set.
func New[C io.Closer](o Options[C]) *Pool[C] {
	if o.Dial == nil {
		panic("pool: Options.Dial is required")
	}
	if o.MaxServerConns < 0 || o.MinIdle < 0 || o.IdleTimeout < 0 || o.MaxLifetime < 0 {
		panic("pool: negative MaxServerConns, MinIdle, IdleTimeout or MaxLifetime")
	}
	p := &Pool[C]{o: o, keys: make(map[Key]*keyPool[C])}
	switch {
	case o.CheckoutTimeout == 0:
		p.timeout = DefaultCheckoutTimeout
	case o.CheckoutTimeout > 0:
		p.timeout = o.CheckoutTimeout
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if o.IdleTimeout > 0 || o.MaxLifetime > 0 || o.MinIdle > 0 {
		p.kick = make(chan struct{}, 1)
		p.stop = make(chan struct{})
		p.done = make(chan struct{})
		go p.run(p.interval())
	}
	return p
}

// interval is the background tick: half the shorter of IdleTimeout and
// MaxLifetime, clamped to [10ms, 1m]; 1s when only MinIdle is set (to
// retry failed background dials).
func (p *Pool[C]) interval() time.Duration {
	var d time.Duration
	for _, t := range []time.Duration{p.o.IdleTimeout, p.o.MaxLifetime} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	if d == 0 {
		return time.Second
	}
	d /= 2
	return min(max(d, 10*time.Millisecond), time.Minute)
}

func (p *Pool[C]) keyPoolLocked(k Key) *keyPool[C] {
	kp := p.keys[k]
	if kp == nil {
		kp = &keyPool[C]{p: p, key: k}
		p.keys[k] = kp
	}
	return kp
}

// expired reports whether c must be closed rather than handed out at now.
func (p *Pool[C]) expired(c *Conn[C], now time.Time) bool {
	return p.o.MaxLifetime > 0 && now.Sub(c.created) > p.o.MaxLifetime
}

// Get returns a connection for k. In order of preference it is:
//
//   - an idle connection, most recently returned first (so that few
//     connections stay warm), after discarding any that are past
//     MaxLifetime or fail Options.Healthy;
//   - a new connection from Options.Dial, if the key is under
//     MaxServerConns;
//   - otherwise, after waiting in FIFO order (first come, first served,
//     across the whole key: a new Get never overtakes a waiter), a
//     connection returned by Put or a slot freed by Discard, a failed
//     dial or the reaper (in which case Get dials).
//
// Waiting ends with an error when ctx ends (wrapping ctx.Err()), when
// CheckoutTimeout passes (wrapping ErrCheckoutTimeout) or when the pool is
// closed (wrapping ErrClosed). A Dial error is returned wrapped, and its
// slot is freed. The returned Conn must be given back with exactly one Put
// or Discard.
func (p *Pool[C]) Get(ctx context.Context, k Key) (*Conn[C], error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	kp := p.keyPoolLocked(k)
	kp.used = true
	if p.o.MinIdle > 0 && len(kp.idle) <= p.o.MinIdle {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	if n := len(kp.idle); n > 0 && kp.waiting == 0 {
		c := kp.idle[n-1]
		kp.idle[n-1] = nil
		kp.idle = kp.idle[:n-1]
		c.checkout = true
		p.mu.Unlock()
		return p.checkIdle(ctx, kp, c)
	}
	if kp.waiting == 0 && (p.o.MaxServerConns == 0 || kp.open < p.o.MaxServerConns) {
		kp.open++
		p.mu.Unlock()
		return p.dial(ctx, kp)
	}
	return p.wait(ctx, kp) // unlocks p.mu
}

// checkIdle vets c, just taken from kp's idle stack (its slot is the
// caller's), and returns it or a replacement.
func (p *Pool[C]) checkIdle(ctx context.Context, kp *keyPool[C], c *Conn[C]) (*Conn[C], error) {
	for {
		now := time.Now()
		if !p.expired(c, now) && (p.o.Healthy == nil || p.o.Healthy(c.v)) {
			c.lastUse = now
			return c, nil
		}
		c.checkout = false
		c.v.Close()
		p.mu.Lock()
		n := len(kp.idle)
		if p.closed {
			kp.open--
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if n == 0 {
			p.mu.Unlock()
			return p.dial(ctx, kp) // keep the slot and dial into it
		}
		next := kp.idle[n-1]
		kp.idle[n-1] = nil
		kp.idle = kp.idle[:n-1]
		next.checkout = true
		p.releaseLocked(kp) // the bad connection's slot
		p.mu.Unlock()
		c = next
	}
}

// dial dials into a slot already counted in kp.open.
func (p *Pool[C]) dial(ctx context.Context, kp *keyPool[C]) (*Conn[C], error) {
	v, err := p.o.Dial(ctx, kp.key)
	p.mu.Lock()
	if err != nil {
		kp.dialErrors++
		p.releaseLocked(kp)
		p.mu.Unlock()
		return nil, fmt.Errorf("pool: dial %s: %w", kp.key, err)
	}
	if p.closed {
		kp.open--
		p.mu.Unlock()
		v.Close()
		return nil, ErrClosed
	}
	kp.dials++
	p.mu.Unlock()
	now := time.Now()
	return &Conn[C]{v: v, kp: kp, created: now, lastUse: now, checkout: true}, nil
}

// wait queues the caller on kp and waits for a grant. Called with p.mu
// held; returns with it released.
func (p *Pool[C]) wait(ctx context.Context, kp *keyPool[C]) (*Conn[C], error) {
	w, _ := p.waiters.Get().(*waiter[C])
	if w == nil {
		w = &waiter[C]{ch: make(chan grant[C], 1)}
	}
	w.start = time.Now()
	w.deadline = time.Time{}
	if p.timeout > 0 {
		w.deadline = w.start.Add(p.timeout)
	}
	kp.push(w)
	if !w.deadline.IsZero() && kp.expiryAt.IsZero() {
		p.armExpiryLocked(kp, w.deadline, w.start)
	}
	p.mu.Unlock()

	select {
	case g := <-w.ch:
		p.waiters.Put(w)
		return p.granted(ctx, kp, g)
	case <-ctx.Done():
	}
	err := fmt.Errorf("pool: waiting %v for a connection to %s: %w", time.Since(w.start), kp.key, ctx.Err())
	p.mu.Lock()
	if w.queued {
		kp.remove(w)
		p.mu.Unlock()
		p.waiters.Put(w)
		return nil, err
	}
	p.mu.Unlock()
	// Granted (or timed out) concurrently with giving up: hand a grant back.
	g := <-w.ch
	p.waiters.Put(w)
	switch {
	case g.err != nil:
		return nil, g.err
	case g.c != nil:
		p.Put(g.c)
	default:
		p.mu.Lock()
		p.releaseLocked(kp)
		p.mu.Unlock()
	}
	return nil, err
}

// armExpiryLocked sets kp's expiry timer to fire at deadline. Called with
// p.mu held.
func (p *Pool[C]) armExpiryLocked(kp *keyPool[C], deadline, now time.Time) {
	kp.expiryAt = deadline
	d := deadline.Sub(now)
	if kp.expiry == nil {
		kp.expiry = time.AfterFunc(d, func() { p.expire(kp) })
		return
	}
	kp.expiry.Reset(d)
}

// expire fails kp's waiters whose checkout deadline has passed, oldest
// first, and re-arms the timer for the next one.
func (p *Pool[C]) expire(kp *keyPool[C]) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kp.expiryAt = time.Time{}
	if p.closed {
		return
	}
	now := time.Now()
	for w := kp.head; w != nil && !w.deadline.IsZero(); w = kp.head {
		if w.deadline.After(now) {
			p.armExpiryLocked(kp, w.deadline, now)
			return
		}
		kp.remove(w)
		kp.timeouts++
		w.ch <- grant[C]{err: fmt.Errorf("%w: waited %v for a connection to %s (MaxServerConns %d)",
			ErrCheckoutTimeout, now.Sub(w.start), kp.key, p.o.MaxServerConns)}
	}
}

func (p *Pool[C]) granted(ctx context.Context, kp *keyPool[C], g grant[C]) (*Conn[C], error) {
	switch {
	case g.err != nil:
		return nil, g.err
	case g.c != nil:
		g.c.lastUse = time.Now()
		return g.c, nil
	default:
		return p.dial(ctx, kp)
	}
}

// releaseLocked frees one of kp's slots: it goes to the longest waiter (who
// will dial into it) if any, else kp.open shrinks.
func (p *Pool[C]) releaseLocked(kp *keyPool[C]) {
	if !p.closed {
		if w := kp.pop(); w != nil {
			w.ch <- grant[C]{}
			return
		}
	}
	kp.open--
}

// handOffLocked gives the checked-in connection c to the longest waiter if
// there is one, and reports whether it did. The waiter gets a fresh *Conn,
// so that the previous holder's handle is no longer checked out.
func (p *Pool[C]) handOffLocked(kp *keyPool[C], c *Conn[C]) bool {
	w := kp.pop()
	if w == nil {
		return false
	}
	nc := &Conn[C]{v: c.v, kp: kp, created: c.created, lastUse: c.lastUse, state: c.state, checkout: true}
	c.checkout = false
	w.ch <- grant[C]{c: nc}
	return true
}

// checkInLocked validates that c is checked out from p and marks it checked
// in. Called with p.mu held; if it panics, it releases p.mu first.
func (p *Pool[C]) checkInLocked(c *Conn[C], op string) {
	if c == nil || c.kp == nil || c.kp.p != p {
		p.mu.Unlock()
		panic("pool: " + op + " of a connection that does not belong to this pool")
	}
	if !c.checkout {
		p.mu.Unlock()
		panic("pool: " + op + " of a connection that is not checked out (double Put or Discard, or use after Put/Discard)")
	}
	c.checkout = false
}

// Put returns c to the pool. It goes straight to the longest waiter for its
// key if any; otherwise it becomes idle, on top of the stack. If c is past
// MaxLifetime or the pool is closed, it is closed instead (and its slot
// freed). Put panics if c is not checked out (for example a second Put or
// Discard of the same Conn).
func (p *Pool[C]) Put(c *Conn[C]) {
	now := time.Now()
	p.mu.Lock()
	p.checkInLocked(c, "Put")
	kp := c.kp
	if p.closed || p.expired(c, now) {
		p.mu.Unlock()
		p.closeAndRelease(c)
		return
	}
	c.lastUse = now
	if !p.handOffLocked(kp, c) {
		kp.idle = append(kp.idle, c)
	}
	p.mu.Unlock()
}

// Discard closes c and frees its slot, which goes to the longest waiter for
// its key (who then dials) if any. Use it for connections that are broken or
// in an unknown state. Discard panics if c is not checked out (for example a
// second Put or Discard of the same Conn).
func (p *Pool[C]) Discard(c *Conn[C]) {
	p.mu.Lock()
	p.checkInLocked(c, "Discard")
	p.mu.Unlock()
	p.closeAndRelease(c)
}

// closeAndRelease closes c, which holds a slot but is neither idle nor
// checked out, and only then frees the slot, so that the backend never sees
// more than MaxServerConns connections. Called without p.mu.
func (p *Pool[C]) closeAndRelease(c *Conn[C]) {
	c.v.Close()
	p.mu.Lock()
	p.releaseLocked(c.kp)
	p.mu.Unlock()
}

// Stats returns a snapshot of every key the pool has seen, in no particular
// order. Keys are never forgotten, so that the counters stay monotonic.
func (p *Pool[C]) Stats() []Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Stats, 0, len(p.keys))
	for _, kp := range p.keys {
		out = append(out, Stats{
			Key:        kp.key,
			Idle:       len(kp.idle),
			InUse:      kp.open - len(kp.idle),
			Waiting:    kp.waiting,
			Dials:      kp.dials,
			DialErrors: kp.dialErrors,
			Timeouts:   kp.timeouts,
		})
	}
	return out
}

// Close closes all idle connections, fails all waiting Get calls with
// ErrClosed, and stops the background goroutine (waiting for it, and so for
// any background dial, to finish). Later Get calls fail with ErrClosed;
// connections in use are closed when they are Put or Discarded. Close
// returns the errors from closing idle connections, joined; calling it again
// does nothing and returns nil.
func (p *Pool[C]) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var idle []*Conn[C]
	for _, kp := range p.keys {
		for w := kp.pop(); w != nil; w = kp.pop() {
			w.ch <- grant[C]{err: ErrClosed}
		}
		if kp.expiry != nil {
			kp.expiry.Stop()
		}
		idle = append(idle, kp.idle...)
		kp.open -= len(kp.idle)
		clear(kp.idle)
		kp.idle = kp.idle[:0]
	}
	p.mu.Unlock()

	p.cancel()
	if p.stop != nil {
		close(p.stop)
		<-p.done
	}
	var errs []error
	for _, c := range idle {
		if err := c.v.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// run is the background goroutine: it reaps idle and expired connections
// on every tick and keeps MinIdle connections ready.
func (p *Pool[C]) run(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.reap(time.Now())
			p.refill()
		case <-p.kick:
			p.refill()
		}
	}
}

// reap closes idle connections past IdleTimeout (keeping MinIdle per key)
// or MaxLifetime.
func (p *Pool[C]) reap(now time.Time) {
	var dead []*Conn[C]
	p.mu.Lock()
	for _, kp := range p.keys {
		// idle is ordered by lastUse, oldest first, so idle-timeout
		// victims are the first ones; lifetime victims can be anywhere.
		keep := kp.idle[:0]
		for i, c := range kp.idle {
			stale := p.o.IdleTimeout > 0 && now.Sub(c.lastUse) > p.o.IdleTimeout &&
				len(keep)+len(kp.idle)-i > p.o.MinIdle // MinIdle remain
			if stale || p.expired(c, now) {
				dead = append(dead, c) // keeps its slot until closed
				continue
			}
			keep = append(keep, c)
		}
		clear(kp.idle[len(keep):])
		kp.idle = keep
	}
	p.mu.Unlock()
	for _, c := range dead {
		p.closeAndRelease(c)
	}
}

// refill dials, one at a time, until every used key has MinIdle idle
// connections (or is at MaxServerConns). A key whose dial fails is skipped
// until the next tick.
func (p *Pool[C]) refill() {
	if p.o.MinIdle == 0 {
		return
	}
	p.mu.Lock()
	kps := make([]*keyPool[C], 0, len(p.keys))
	for _, kp := range p.keys {
		if kp.used {
			kps = append(kps, kp)
		}
	}
	p.mu.Unlock()
	for _, kp := range kps {
		for {
			p.mu.Lock()
			if p.closed || len(kp.idle) >= p.o.MinIdle ||
				(p.o.MaxServerConns > 0 && kp.open >= p.o.MaxServerConns) {
				p.mu.Unlock()
				break
			}
			kp.open++
			p.mu.Unlock()

			v, err := p.o.Dial(p.ctx, kp.key)
			now := time.Now()
			p.mu.Lock()
			if err != nil {
				kp.dialErrors++
				p.releaseLocked(kp)
				p.mu.Unlock()
				break
			}
			if p.closed {
				kp.open--
				p.mu.Unlock()
				v.Close()
				return
			}
			kp.dials++
			c := &Conn[C]{v: v, kp: kp, created: now, lastUse: now}
			if !p.handOffLocked(kp, c) {
				kp.idle = append(kp.idle, c)
			}
			p.mu.Unlock()
		}
	}
}
