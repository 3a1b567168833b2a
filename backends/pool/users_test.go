package pool

import (
	"context"
	"errors"
	"testing"
	"time"
)

type testUser struct {
	name string
	s    Settings
	p    *Pool[*fakeConn]
}

func TestUsers(t *testing.T) {
	d := &fakeDialer{}
	made := 0
	us := Users[*fakeConn, testUser]{
		Settings: func(user string) Settings {
			if user == "limited" {
				return Settings{MaxServerConns: 1}
			}
			return Settings{}
		},
		New: func(user string, s Settings) *testUser {
			made++
			return &testUser{name: user, s: s, p: NewWith(s, d.dial, nil)}
		},
		Pool: func(u *testUser) *Pool[*fakeConn] { return u.p },
	}
	a, err := us.Get("limited")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := us.Get("limited"); again != a || made != 1 {
		t.Fatalf("second Get made a new record (made %d)", made)
	}
	if a.s.MaxServerConns != 1 || a.s.CheckoutTimeout != DefaultSettingsCheckoutTimeout {
		t.Errorf("settings %+v: want MaxServerConns 1 and the default checkout timeout", a.s)
	}
	b, _ := us.Get("other")
	for _, u := range []*testUser{a, b} {
		c, err := u.p.Get(context.Background(), Key{Addr: "x", User: u.name})
		if err != nil {
			t.Fatal(err)
		}
		u.p.Put(c)
	}
	if st := us.Stats(); len(st) != 2 || st[0].Idle+st[1].Idle != 2 {
		t.Errorf("Stats %+v: want one idle connection in each user's pool", st)
	}
	us.Close()
	if _, err := us.Get("third"); !errors.Is(err, ErrUsersClosed) {
		t.Errorf("Get after Close: %v, want ErrUsersClosed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.p.Get(ctx, Key{Addr: "x", User: "limited"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Get from a closed user's pool: %v, want ErrClosed", err)
	}
	if d.open.Load() != 0 {
		t.Errorf("%d connections left open after Close", d.open.Load())
	}
}
