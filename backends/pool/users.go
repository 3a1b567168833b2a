package pool

import (
	"errors"
	"io"
	"sync"
)

// ErrUsersClosed is returned by Users.Get after Users.Close.
var ErrUsersClosed = errors.New("pool: the proxy is shutting down")

// Users holds one Pool per user, each made on first use by New (given the
// user's Settings, defaults resolved). U is the front end's per-user
// record, whose pool Pool returns. The zero value is not usable: set New,
// Pool and Settings.
type Users[C io.Closer, U any] struct {
	// Settings returns a user's pooling; nil means the zero Settings
	// (session pooling, no limits).
	Settings func(user string) Settings
	// New makes the record of user's pool with settings s.
	New func(user string, s Settings) *U
	// Pool returns a record's pool.
	Pool func(*U) *Pool[C]

	mu     sync.Mutex
	byUser map[string]*U
	closed bool
}

// Get returns user's record, making it on first use; ErrUsersClosed after
// Close.
func (us *Users[C, U]) Get(user string) (*U, error) {
	us.mu.Lock()
	defer us.mu.Unlock()
	if us.closed {
		return nil, ErrUsersClosed
	}
	if u := us.byUser[user]; u != nil {
		return u, nil
	}
	var s Settings
	if us.Settings != nil {
		s = us.Settings(user)
	}
	u := us.New(user, s.WithDefaults())
	if us.byUser == nil {
		us.byUser = make(map[string]*U)
	}
	us.byUser[user] = u
	return u, nil
}

// all returns every record; with closing it also refuses new users from
// then on (under the same lock, so none is made after Close took the list).
func (us *Users[C, U]) all(closing bool) []*U {
	us.mu.Lock()
	defer us.mu.Unlock()
	if closing {
		us.closed = true
	}
	out := make([]*U, 0, len(us.byUser))
	for _, u := range us.byUser {
		out = append(out, u)
	}
	return out
}

// Close refuses new users and closes every pool (idle connections at once,
// checked-out ones when they come back).
func (us *Users[C, U]) Close() {
	for _, u := range us.all(true) {
		us.Pool(u).Close()
	}
}

// Stats returns a snapshot of every user's pools.
func (us *Users[C, U]) Stats() []Stats {
	var out []Stats
	for _, u := range us.all(false) {
		out = append(out, us.Pool(u).Stats()...)
	}
	return out
}
