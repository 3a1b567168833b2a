package bufpool

import "testing"

func TestPool(t *testing.T) {
	p := New(Size16K)
	if p.Size() != Size16K {
		t.Fatalf("Size = %d", p.Size())
	}
	b := p.Get()
	if len(*b) != Size16K || cap(*b) != Size16K {
		t.Fatalf("Get: len %d cap %d", len(*b), cap(*b))
	}
	*b = (*b)[:10] // a shortened buffer comes back full length
	p.Put(b)
	p.Put(nil)
	small := make([]byte, 10)
	p.Put(&small) // wrong class: dropped
	for range 100 {
		b := p.Get()
		if len(*b) != Size16K {
			t.Fatalf("Get after Put: len %d", len(*b))
		}
		p.Put(b)
	}
}

func TestPoolPanicsOnBadSize(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(0) did not panic")
		}
	}()
	New(0)
}

func TestPoolNoAllocs(t *testing.T) {
	p := New(Size4K)
	p.Put(p.Get())
	allocs := testing.AllocsPerRun(1000, func() {
		b := p.Get()
		(*b)[0] = 1
		p.Put(b)
	})
	if allocs != 0 {
		t.Fatalf("Get/Put allocates %.1f times", allocs)
	}
}

func TestClasses(t *testing.T) {
	c := NewClasses(Size64K, Size4K, Size16K, Size4K)
	for _, tc := range []struct{ n, size int }{{0, Size4K}, {1, Size4K}, {Size4K, Size4K}, {Size4K + 1, Size16K}, {Size64K, Size64K}} {
		b := c.Get(tc.n)
		if len(*b) != tc.size {
			t.Errorf("Get(%d): len %d, want %d", tc.n, len(*b), tc.size)
		}
		c.Put(b)
	}
	b := c.Get(Size64K + 1)
	if len(*b) != Size64K+1 {
		t.Errorf("oversized Get: len %d", len(*b))
	}
	c.Put(b) // dropped
	if c.Pool(Size64K+1) != nil {
		t.Error("Pool beyond the largest class is not nil")
	}
	c.Put(nil)
}

func BenchmarkPool(b *testing.B) {
	p := New(Size16K)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf := p.Get()
			(*buf)[0] = 1
			p.Put(buf)
		}
	})
}
