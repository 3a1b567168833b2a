// Package bufpool provides size-classed pools of byte buffers, so that
// connections borrow I/O buffers only while they move bytes instead of
// owning one each for their whole life.
//
// A Pool holds buffers of exactly one size (its class). Buffers travel as
// *[]byte so that neither Get nor Put allocates in steady state (putting a
// plain []byte into a sync.Pool boxes the slice header on every call).
// Classes groups several Pools and picks the smallest class that fits a
// request.
//
// The package has no global state: callers create the pools they need and
// share them between the connections that use them.
package bufpool

import (
	"fmt"
	"slices"
	"sync"
)

// Common size classes.
const (
	Size4K  = 4 << 10
	Size16K = 16 << 10 // default read/write buffer size of a connection
	Size64K = 64 << 10
)

// Pool is a pool of byte buffers of one fixed size. It is safe for
// concurrent use. Like any sync.Pool, idle buffers are released to the
// garbage collector over the following GC cycles.
type Pool struct {
	size int
	p    sync.Pool
}

// New returns a pool of buffers of size bytes. It panics if size <= 0.
func New(size int) *Pool {
	if size <= 0 {
		panic(fmt.Sprintf("bufpool: invalid buffer size %d", size))
	}
	p := &Pool{size: size}
	p.p.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return p
}

// Size returns the length of the buffers the pool hands out.
func (p *Pool) Size() int { return p.size }

// Get borrows a buffer: len(*b) == cap(*b) == p.Size(). Its contents are
// unspecified. Give it back with Put once nothing refers to it any more.
func (p *Pool) Get() *[]byte {
	return p.p.Get().(*[]byte)
}

// Put returns a buffer obtained from Get. The caller must not use *b, nor
// any slice of it, afterwards. Buffers whose capacity is not the pool's size
// (and nil) are dropped, so a buffer that was re-sliced or replaced cannot
// pollute the class.
func (p *Pool) Put(b *[]byte) {
	if b == nil || cap(*b) != p.size {
		return
	}
	*b = (*b)[:p.size]
	p.p.Put(b)
}

// Classes is a set of Pools of increasing sizes. It is safe for concurrent
// use and immutable once created.
type Classes struct {
	pools []*Pool // sorted by size, sizes distinct
}

// NewClasses returns a set of pools, one per distinct size. It panics if no
// size is given or a size is <= 0.
func NewClasses(sizes ...int) *Classes {
	if len(sizes) == 0 {
		panic("bufpool: no size classes")
	}
	s := slices.Clone(sizes)
	slices.Sort(s)
	s = slices.Compact(s)
	c := &Classes{pools: make([]*Pool, len(s))}
	for i, n := range s {
		c.pools[i] = New(n)
	}
	return c
}

// Pool returns the smallest pool whose buffers hold at least n bytes, or nil
// when n exceeds the largest class.
func (c *Classes) Pool(n int) *Pool {
	for _, p := range c.pools {
		if p.size >= n {
			return p
		}
	}
	return nil
}

// Get borrows a buffer of the smallest class that holds n bytes (its length
// is the class size, at least n). When n exceeds the largest class it
// allocates an exact-size buffer that Put will drop.
func (c *Classes) Get(n int) *[]byte {
	if p := c.Pool(n); p != nil {
		return p.Get()
	}
	b := make([]byte, n)
	return &b
}

// Put returns a buffer obtained from Get to the pool of its class; buffers
// that belong to no class are dropped.
func (c *Classes) Put(b *[]byte) {
	if b == nil {
		return
	}
	for _, p := range c.pools {
		if p.size == cap(*b) {
			p.Put(b)
			return
		}
	}
}
