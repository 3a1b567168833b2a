package pg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/backends/pool"
	"github.com/sluicedb/sluice/frontend/serve"
	"github.com/sluicedb/sluice/internal/pgwire"
)

// PoolConfig is how one user's backend connections are pooled in a
// cluster.
type PoolConfig = pool.Settings

// PoolsOptions configures Pools.
type PoolsOptions = serve.PoolsOptions

// Pools holds the backend connection pools of one PostgreSQL cluster, one
// per user, shared by every listener of the cluster. Each pooled connection
// has one goroutine that reads its responses for as long as it is open,
// whichever session it serves (none while it is idle: then any message, or
// the server closing it, marks it broken). Close stops them.
type Pools struct {
	o   PoolsOptions
	log *slog.Logger

	users pool.Users[*bconn, userPool]

	wg sync.WaitGroup // relay goroutines
}

// userPool is the pool of one user's connections.
type userPool struct {
	pools *Pools
	cfg   PoolConfig
	p     *pool.Pool[*bconn]
}

// NewPools returns empty pools; connections are dialled on demand.
func NewPools(o PoolsOptions) *Pools {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ps := &Pools{o: o, log: o.Logger}
	ps.users = pool.Users[*bconn, userPool]{
		Settings: o.Config,
		New: func(_ string, cfg PoolConfig) *userPool {
			up := &userPool{pools: ps, cfg: cfg}
			up.p = pool.NewWith(cfg, up.dial, func(bc *bconn) bool { return !bc.isBroken() })
			return up
		},
		Pool: func(up *userPool) *pool.Pool[*bconn] { return up.p },
	}
	return ps
}

// errPoolsClosed is returned to sessions that start after Close.
var errPoolsClosed = errors.New("the proxy is shutting down")

// forUser returns user's pool, creating it on first use.
func (ps *Pools) forUser(user string) (*userPool, error) {
	up, err := ps.users.Get(user)
	if err != nil {
		return nil, errPoolsClosed
	}
	return up, nil
}

// Close closes every idle connection and refuses new checkouts, then waits
// for the relay goroutines. Call it once the sessions using the pools have
// ended (connections still checked out are closed when they come back).
func (ps *Pools) Close() {
	ps.users.Close()
	ps.wg.Wait()
}

// Stats returns a snapshot of every pool, for metrics and /status.
func (ps *Pools) Stats() []pool.Stats { return ps.users.Stats() }

// profileOf encodes startup parameters as a pool key profile: connections
// opened with different parameters are not interchangeable.
func profileOf(params map[string]string) string {
	if len(params) == 0 {
		return ""
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(params[k])
		b.WriteByte(0)
	}
	return b.String()
}

// paramsOf decodes profileOf.
func paramsOf(profile string) map[string]string {
	if profile == "" {
		return nil
	}
	f := strings.Split(strings.TrimSuffix(profile, "\x00"), "\x00")
	m := make(map[string]string, len(f)/2)
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	return m
}

// dial opens a backend connection for the pool and starts its relay.
func (up *userPool) dial(ctx context.Context, k pool.Key) (*bconn, error) {
	ps := up.pools
	o := &ps.o
	cl := o.Cluster
	password, _ := o.Password(k.User)
	pc, err := backends.DialPostgres(ctx, backends.PGDialConfig{
		Addr:     k.Addr,
		User:     k.User,
		Password: password,
		Database: k.Database,
		Params:   paramsOf(k.Profile),
		TLS:      o.BackendTLS,
		Timeout:  o.ConnectTimeout,
	})
	if err != nil {
		o.Metrics.BackendDials.WithLabelValues(cl.Name(), k.Addr, "error").Inc()
		return nil, err
	}
	o.Metrics.BackendDials.WithLabelValues(cl.Name(), k.Addr, "ok").Inc()
	o.Metrics.BackendConnections.WithLabelValues(cl.Name(), k.Addr).Inc()
	bc := &bconn{
		up:       up,
		idx:      -1,
		addr:     k.Addr,
		pc:       pc,
		rd:       pgwire.NewReader(pc.R, 1<<30),
		params:   pc.Params,
		prepared: make(map[string]*stmt),
		pristine: true,
	}
	ps.wg.Add(1)
	go ps.relay(bc)
	return bc, nil
}

// Close says goodbye to the server and closes the connection. It is
// idempotent.
func (bc *bconn) Close() error {
	bc.closeOnce.Do(func() {
		// Written straight to the socket: whoever used the buffered writer
		// has given the connection up.
		bc.pc.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		bc.pc.Conn.Write([]byte{pgwire.MsgTerminate, 0, 0, 0, 4})
		bc.pc.Close()
		o := &bc.up.pools.o
		o.Metrics.BackendConnections.WithLabelValues(o.Cluster.Name(), bc.addr).Dec()
	})
	return nil
}

func (bc *bconn) isBroken() bool {
	bc.ownMu.Lock()
	defer bc.ownMu.Unlock()
	return bc.broken
}

// lockOwner returns the session bc serves with that session's mu held, or
// nil when bc serves none. Ownership changes only with both the owner's mu
// and bc.ownMu held, so it cannot change while the caller holds s.mu.
func (bc *bconn) lockOwner() *session {
	for {
		bc.ownMu.Lock()
		s := bc.owner
		bc.ownMu.Unlock()
		if s == nil {
			return nil
		}
		s.mu.Lock()
		bc.ownMu.Lock()
		same := bc.owner == s
		bc.ownMu.Unlock()
		if same {
			return s
		}
		s.mu.Unlock()
	}
}

// disown leaves bc without an owner (the caller holds the owner's mu).
func (bc *bconn) disown() {
	bc.ownMu.Lock()
	bc.owner = nil
	bc.ownMu.Unlock()
}

// unowned handles what the connection receives while it serves no session:
// the answer to the reset query when the last session left it, or else
// anything at all, which means the server is closing it (or worse): it is
// marked broken and closed, and the pool drops it at the next checkout.
// It reports whether the relay should go on reading.
func (ps *Pools) unowned(bc *bconn, m pgwire.Message, err error) bool {
	bc.ownMu.Lock()
	if !bc.resetting {
		bc.broken = true
		bc.ownMu.Unlock()
		if err == nil {
			ps.log.Debug("unexpected message from idle backend connection", "backend", bc.addr, "type", string(m.Type))
		}
		bc.Close()
		return err == nil
	}
	switch {
	case err != nil:
		bc.resetting, bc.resetFailed, bc.broken = false, true, true
	case m.Type == pgwire.MsgErrorResponse:
		bc.resetFailed = true
	case m.Type == pgwire.MsgReadyForQuery:
		bc.resetting = false
	}
	done := !bc.resetting && !bc.resetSending
	bc.ownMu.Unlock()
	if err != nil {
		bc.Close()
	}
	if done {
		bc.resetDone()
	}
	return err == nil
}

// resetDone gives bc back to its pool once the reset query has been both
// written and answered: as a fresh connection, or closed if it failed.
func (bc *bconn) resetDone() {
	bc.ownMu.Lock()
	failed := bc.resetFailed
	bc.resetFailed = false
	c := bc.pconn
	bc.ownMu.Unlock()
	if failed {
		bc.Close()
		bc.up.p.Discard(c)
		return
	}
	clear(bc.prepared)
	clear(bc.used)
	bc.stateSQL = ""
	bc.pristine = true
	bc.up.p.Put(c)
}

// resetQuery is sent on a session-pooled connection whose client left, so
// that the next client finds it as a fresh one.
var resetQuery = pgwire.AppendQuery(nil, "DISCARD ALL")

// reset sends the reset query on bc, which no session owns any more and
// whose resetting and resetSending the caller set when it let bc go; bc
// goes back to its pool once the query is both written and answered.
func (bc *bconn) reset() {
	bc.pc.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := bc.pc.W.Write(resetQuery)
	if err == nil {
		err = bc.pc.W.Flush()
	}
	bc.pc.Conn.SetWriteDeadline(time.Time{})
	bc.ownMu.Lock()
	bc.resetSending = false
	if err != nil {
		bc.resetFailed, bc.broken = true, true
	}
	done := !bc.resetting
	bc.ownMu.Unlock()
	if err != nil {
		bc.Close() // the relay's read fails: it finishes the reset
	}
	if done {
		bc.resetDone()
	}
}

// checkout returns a pooled connection to the backend at addr for the
// session (not yet attached to it).
func (s *session) checkout(ctx context.Context, addr string) (*pool.Conn[*bconn], error) {
	c, err := s.up.p.Get(ctx, pool.Key{Addr: addr, User: s.user, Database: s.database, Profile: s.profile})
	if err == nil {
		return c, nil
	}
	if pe, ok := backends.AsPgError(err); ok {
		return nil, pe // the server refused us: relay its answer as is
	}
	if errors.Is(err, pool.ErrCheckoutTimeout) {
		return nil, &poolTimeoutError{addr: addr, wait: s.up.cfg.CheckoutTimeout, max: s.up.cfg.MaxServerConns}
	}
	return nil, fmt.Errorf("connecting to backend %s: %w", addr, err)
}

// poolTimeoutError is a checkout that found the pool full for too long.
type poolTimeoutError struct {
	addr string
	wait time.Duration
	max  int
}

func (e *poolTimeoutError) Error() string {
	return fmt.Sprintf("no backend connection to %s became free within %s (pool limit %d connections)", e.addr, e.wait, e.max)
}
