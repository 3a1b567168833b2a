package mysql

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/backends/pool"
	"github.com/sluicedb/sluice/frontend/serve"
	"github.com/sluicedb/sluice/internal/mysqlwire"
)

// PoolConfig is how one user's backend connections are pooled in a
// cluster.
type PoolConfig = pool.Settings

// PoolsOptions configures Pools.
type PoolsOptions = serve.PoolsOptions

// Pools holds the backend connection pools of one MySQL cluster, one per
// user, shared by every listener of the cluster.
//
// A pool key is (backend address, user, login database, profile):
// connections are shared only between clients that logged in to the same
// database ("" for none). A connection is opened without a default
// database and the session selects its own with COM_INIT_DB; a client may
// switch elsewhere (USE, COM_INIT_DB), so when a connection goes back to
// its pool its key's database is selected again, or, for a key without a
// database, the connection is closed (MySQL cannot unselect a database,
// and COM_RESET_CONNECTION keeps it): a client that logged in without a
// database never inherits another's schema. The profile
// holds what makes connections not interchangeable: the client capability
// flags that change the layout of results (backends.MySQLProfileCaps and
// CLIENT_LOCAL_FILES) and the handshake collation. The backend TLS mode is
// the cluster's, the same for every connection.
//
// Unlike PostgreSQL's, MySQL connections have no reader goroutine: a
// session reads its responses itself. An idle connection is checked when it
// is taken (a non-blocking read: anything the server sent while it was idle,
// or its closing, means the connection is discarded).
type Pools struct {
	o   PoolsOptions
	log *slog.Logger

	users pool.Users[*srvConn, userPool]
}

// userPool is the pool of one user's connections.
type userPool struct {
	pools *Pools
	cfg   PoolConfig
	p     *pool.Pool[*srvConn]
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
	ps.users = pool.Users[*srvConn, userPool]{
		Settings: o.Config,
		New: func(_ string, cfg PoolConfig) *userPool {
			up := &userPool{pools: ps, cfg: cfg}
			up.p = pool.NewWith(cfg, up.dial, func(sc *srvConn) bool { return sc.healthy() })
			return up
		},
		Pool: func(up *userPool) *pool.Pool[*srvConn] { return up.p },
	}
	return ps
}

// errPoolsClosed is returned to sessions that need a connection after
// Close.
var errPoolsClosed = errors.New("the proxy is shutting down")

// forUser returns user's pool, creating it on first use.
func (ps *Pools) forUser(user string) (*userPool, error) {
	up, err := ps.users.Get(user)
	if err != nil {
		return nil, errPoolsClosed
	}
	return up, nil
}

// Close closes every idle connection and refuses new checkouts.
// Connections still checked out are closed when they come back.
func (ps *Pools) Close() {
	ps.users.Close()
}

// Stats returns a snapshot of every pool, for metrics and /status.
func (ps *Pools) Stats() []pool.Stats { return ps.users.Stats() }

// profileCaps are the client capabilities a pooled connection is dialled
// with (and so part of its pool key).
const profileCaps = backends.MySQLProfileCaps | mysqlwire.ClientLocalFiles

// profileOf encodes a client's connection profile as a pool key profile.
func profileOf(caps uint64, charset byte) string {
	return fmt.Sprintf("caps=%x,charset=%d", caps&profileCaps, charset)
}

// parseProfile decodes profileOf.
func parseProfile(p string) (caps uint64, charset byte) {
	fmt.Sscanf(p, "caps=%x,charset=%d", &caps, &charset)
	return caps, charset
}

// stmtCacheSize bounds the prepared statements a pooled connection keeps
// for the clients of transaction pooling.
const stmtCacheSize = 250

// srvConn is one pooled backend connection and the state it carries
// between the sessions it serves. It is used by one session at a time (the
// one that checked it out), except Close.
type srvConn struct {
	up   *userPool
	addr string
	mc   *backends.MySQLConn
	caps uint64 // the client profile it was dialled with

	keyDB string    // its pool key's database (the login database of its clients)
	db    string    // current schema ("" none; unknownDB if not known)
	sets  []setting // session settings applied since the last reset
	// dirty: a command that changes session state (SET, USE, temporary
	// tables, locks, user variables…) failed part way, leaving state the
	// proxy does not know: the connection is closed when given back.
	dirty    bool
	setsKey  string
	multiOff bool
	// charsetSQL restores the handshake character set after
	// COM_RESET_CONNECTION (which resets session variables to the
	// server's defaults).
	charsetSQL string

	// The statements prepared on the connection for transaction pooling,
	// by stmtKey (database, settings and SQL text at prepare time); most
	// recently used at the front.
	stmts map[string]*list.Element
	lru   list.List

	closeOnce sync.Once
}

// cachedStmt is a statement prepared on a pooled connection.
type cachedStmt struct {
	query string
	id    uint32
}

// unknownDB marks a connection whose current schema is not known.
const unknownDB = "\x00unknown"

// dial opens a backend connection for the pool.
func (up *userPool) dial(ctx context.Context, k pool.Key) (*srvConn, error) {
	o := &up.pools.o
	cl := o.Cluster
	password, _ := o.Password(k.User)
	caps, charset := parseProfile(k.Profile)
	mc, err := backends.DialMySQL(ctx, backends.MySQLDialConfig{
		Addr:     k.Addr,
		User:     k.User,
		Password: password,
		Caps:     caps,
		Charset:  charset,
		Timeout:  o.ConnectTimeout,
		TLS:      o.BackendTLS,
	})
	if err != nil {
		o.Metrics.BackendDials.WithLabelValues(cl.Name(), k.Addr, "error").Inc()
		return nil, err
	}
	if want := caps & backends.MySQLProfileCaps; mc.Caps&backends.MySQLProfileCaps != want {
		// Results could not be relayed untouched.
		mc.Close()
		o.Metrics.BackendDials.WithLabelValues(cl.Name(), k.Addr, "error").Inc()
		return nil, fmt.Errorf("backend %s does not support the client's %s", k.Addr,
			mysqlwire.FormatCapabilities(want&^mc.Caps))
	}
	sc := &srvConn{up: up, addr: k.Addr, mc: mc, caps: caps, keyDB: k.Database, stmts: make(map[string]*list.Element)}
	// Learn the handshake character set, to restore it after a reset.
	v, err := sc.queryValue("SELECT CONCAT('SET character_set_client=', @@character_set_client, ', collation_connection=', @@collation_connection, ', character_set_results=', IFNULL(@@character_set_results, 'NULL'))")
	if err != nil {
		mc.Close()
		o.Metrics.BackendDials.WithLabelValues(cl.Name(), k.Addr, "error").Inc()
		return nil, err
	}
	sc.charsetSQL = v
	o.Metrics.BackendDials.WithLabelValues(cl.Name(), k.Addr, "ok").Inc()
	o.Metrics.BackendConnections.WithLabelValues(cl.Name(), k.Addr).Inc()
	return sc, nil
}

// Close says goodbye to the server and closes the connection. It is
// idempotent and may be called from any goroutine.
func (sc *srvConn) Close() error {
	sc.closeOnce.Do(func() {
		sc.mc.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		sc.mc.Conn.Write([]byte{1, 0, 0, 0, mysqlwire.ComQuit})
		sc.mc.Close()
		o := &sc.up.pools.o
		o.Metrics.BackendConnections.WithLabelValues(o.Cluster.Name(), sc.addr).Dec()
	})
	return nil
}

// healthy checks an idle connection before it is handed out: the server
// must not have sent anything (an error before closing it, for instance
// after wait_timeout) nor closed it.
func (sc *srvConn) healthy() bool {
	if sc.mc.R.Buffered() > 0 {
		return false
	}
	c := sc.mc.Conn
	c.SetReadDeadline(time.Now().Add(-time.Second))
	var b [1]byte
	n, err := c.Read(b[:])
	c.SetReadDeadline(time.Time{})
	if n > 0 {
		return false
	}
	return err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// forgetState records a COM_RESET_CONNECTION: the server dropped the
// session settings and the prepared statements.
func (sc *srvConn) forgetState() {
	sc.sets, sc.setsKey = nil, ""
	sc.db = unknownDB
	clear(sc.stmts)
	sc.lru.Init()
}

// stmtKey is the cache key of query prepared on the connection now: MySQL
// runs a prepared statement in the database current when it was prepared,
// and with the settings (sql_mode, character set…) of then, so a statement
// is shared only by clients with the same database and settings.
func (sc *srvConn) stmtKey(query string) string {
	return sc.db + "\x00" + sc.setsKey + "\x00" + query
}

// cached returns the id of the statement prepared for query (a stmtKey),
// if any, and marks it used.
func (sc *srvConn) cached(query string) (uint32, bool) {
	e := sc.stmts[query]
	if e == nil {
		return 0, false
	}
	sc.lru.MoveToFront(e)
	return e.Value.(*cachedStmt).id, true
}

// remember records a statement prepared for query and returns the id of
// the least recently used one it evicts (0 if none), which the caller
// closes on the server.
func (sc *srvConn) remember(query string, id uint32) (evicted uint32) {
	if e := sc.stmts[query]; e != nil {
		old := e.Value.(*cachedStmt)
		if old.id != id {
			evicted = old.id
		}
		old.id = id
		sc.lru.MoveToFront(e)
		return evicted
	}
	sc.stmts[query] = sc.lru.PushFront(&cachedStmt{query: query, id: id})
	if sc.lru.Len() > stmtCacheSize {
		e := sc.lru.Back()
		cs := sc.lru.Remove(e).(*cachedStmt)
		delete(sc.stmts, cs.query)
		return cs.id
	}
	return 0
}

// queryValue runs a query returning one row of one column on a connection
// no session uses yet, and returns the value.
func (sc *srvConn) queryValue(sql string) (string, error) {
	mc := sc.mc
	b, _ := mysqlwire.AppendPacket(nil, 0, append([]byte{mysqlwire.ComQuery}, sql...))
	if _, err := mc.W.Write(b); err != nil {
		return "", err
	}
	if err := mc.W.Flush(); err != nil {
		return "", err
	}
	_, payload, err := mc.R.ReadPacket()
	if err != nil {
		return "", err
	}
	if mysqlwire.IsERR(payload) {
		e, _ := mysqlwire.ParseERR(payload)
		return "", &e
	}
	if n, ok := mysqlwire.ParseColumnCount(payload); !ok || n != 1 {
		return "", errors.New("unexpected answer from backend")
	}
	skip := 1
	if mc.Caps&mysqlwire.ClientDeprecateEOF == 0 {
		skip++
	}
	for range skip {
		if _, _, err := mc.R.ReadPacket(); err != nil {
			return "", err
		}
	}
	var val string
	for {
		_, payload, err := mc.R.ReadPacket()
		if err != nil {
			return "", err
		}
		if mysqlwire.IsERR(payload) {
			e, _ := mysqlwire.ParseERR(payload)
			return "", &e
		}
		if mysqlwire.IsEOF(payload, mc.Caps) {
			return val, nil
		}
		if b, _, ok := mysqlwire.ReadLenEncBytes(payload); ok {
			val = string(b)
		}
	}
}

// checkout returns a pooled connection to the backend at addr for the
// session.
func (s *session) checkout(ctx context.Context, addr string) (*pool.Conn[*srvConn], *userPool, error) {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	up, err := s.srv.opts.Pools.forUser(user)
	if err != nil {
		return nil, nil, err
	}
	if !s.homeDBSet {
		// The first checkout after a login (connectHome), before any
		// USE or COM_INIT_DB of the client.
		s.homeDB, s.homeDBSet = s.database, true
	}
	c, err := up.p.Get(ctx, pool.Key{Addr: addr, User: user, Database: s.homeDB, Profile: profileOf(s.caps, s.charset)})
	if err == nil {
		return c, up, nil
	}
	if me, ok := backends.AsMySQLError(err); ok {
		return nil, nil, me // the server refused us: relay its answer as is
	}
	if errors.Is(err, pool.ErrCheckoutTimeout) {
		e := mysqlwire.NewERR(mysqlwire.ERConCountError, fmt.Sprintf(
			"Too many connections: no backend connection to %s became free within %s (pool limit %d connections)",
			addr, up.cfg.CheckoutTimeout, up.cfg.MaxServerConns))
		return nil, nil, &e
	}
	if errors.Is(err, pool.ErrClosed) {
		return nil, nil, errPoolsClosed
	}
	return nil, nil, fmt.Errorf("connecting to backend %s: %w", addr, err)
}
