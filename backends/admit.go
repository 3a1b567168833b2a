package backends

import (
	"errors"
	"fmt"
	"sync"
)

// ErrTooManyClients is returned (wrapped) by Cluster.AdmitClient when a
// client connection limit is reached.
var ErrTooManyClients = errors.New("too many client connections")

// admission counts the client sessions of a cluster against its limits.
type admission struct {
	max     int            // all users; 0 = no limit
	perUser map[string]int // per user; absent or 0 = no limit of its own
	mu      sync.Mutex
	total   int
	users   map[string]int
}

// AdmitClient counts a new client session of user against the cluster's
// max_client_conns and the user's own limit. On success the returned
// function, which must be called exactly once when the session ends, gives
// the place back. The error wraps ErrTooManyClients.
func (c *Cluster) AdmitClient(user string) (release func(), err error) {
	a := &c.admit
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.max > 0 && a.total >= a.max {
		return nil, fmt.Errorf("%w: cluster %s allows %d (max_client_conns)", ErrTooManyClients, c.name, a.max)
	}
	if lim := a.perUser[user]; lim > 0 && a.users[user] >= lim {
		return nil, fmt.Errorf("%w: user %q may open %d to cluster %s (max_client_conns)", ErrTooManyClients, user, lim, c.name)
	}
	a.total++
	a.users[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.total--
			if a.users[user]--; a.users[user] <= 0 {
				delete(a.users, user)
			}
			a.mu.Unlock()
		})
	}, nil
}

// Clients returns the number of admitted client sessions.
func (c *Cluster) Clients() int {
	c.admit.mu.Lock()
	defer c.admit.mu.Unlock()
	return c.admit.total
}
