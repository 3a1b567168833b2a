package integration

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/internal/mysqlwire"
	"github.com/sluicedb/sluice/proxy"
)

// myPoolUser is the user of the pooling tests: its own, so that the
// primary's processlist tells the test proxy's connections apart from
// those of the shared proxy and the health probes (app).
const myPoolUser = "pooltest"

var myPoolUserOnce sync.Once

// myPoolProxy starts a proxy with one auto listener ("pool") on the MariaDB
// cluster, whose cluster pool settings mutate sets, and returns it with a
// DSN maker for myPoolUser.
func myPoolProxy(t *testing.T, mutate func(*config.Pool)) (*proxy.Proxy, func(func(*mysql.Config)) string) {
	t.Helper()
	return myPoolProxyCfg(t, mutate, nil)
}

// myPoolProxyCfg is myPoolProxy with a mutation of the whole
// configuration too (mutateCfg, if not nil).
func myPoolProxyCfg(t *testing.T, mutate func(*config.Pool), mutateCfg func(*config.Config)) (*proxy.Proxy, func(func(*mysql.Config)) string) {
	t.Helper()
	e := mysqlEnv(t)
	ctx := testCtx(t)
	n := e.cluster.Nodes()
	myPoolUserOnce.Do(func() {
		root := myOpenDSN(t, n[0].AdminDSN(""))
		for _, q := range []string{
			fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", myPoolUser, myPoolUser),
			fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%'", myPoolUser),
			"CREATE TABLE IF NOT EXISTS app.pool_acct (client INT PRIMARY KEY, n INT NOT NULL, s VARCHAR(100) NOT NULL DEFAULT '')",
		} {
			if _, err := root.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := e.cluster.WaitReplicated(ctx); err != nil {
			t.Fatal(err)
		}
	})
	yaml := fmt.Sprintf(`
listeners:
  - {name: pool, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: auto}
clusters:
  my:
    protocol: mysql
    backends: [{address: %q}, {address: %q}, {address: %q}]
    monitor_user: app
users:
  - {name: app, password: app}
  - {name: %s, password: %s}
health: {interval: 100ms, timeout: 2s, failures: 3, successes: 1}
server: {auth_failure_delay: 10ms}
log: {level: warn}
`, n[0].Addr(), n[1].Addr(), n[2].Addr(), myPoolUser, myPoolUser)
	cfg, err := config.Parse([]byte(yaml), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Clusters["my"]
	mutate(&cl.Pool)
	cfg.Clusters["my"] = cl
	if mutateCfg != nil {
		mutateCfg(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := startProxyCfg(t, ctx, cfg, slog.LevelWarn)
	dsn := func(m func(*mysql.Config)) string {
		mc := mysql.NewConfig()
		mc.User, mc.Passwd, mc.Net, mc.Addr, mc.DBName = myPoolUser, myPoolUser, "tcp", p.Addr("pool").String(), "app"
		mc.InterpolateParams = false
		mc.Timeout = 10 * time.Second
		if m != nil {
			m(mc)
		}
		return mc.FormatDSN()
	}
	return p, dsn
}

// myPrimaryConns counts the pool user's connections on the primary.
func myPrimaryConns(ctx context.Context, root *sql.DB) (int, error) {
	var n int
	err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = ?", myPoolUser).Scan(&n)
	return n, err
}

func myRoot(t *testing.T) *sql.DB {
	t.Helper()
	root, err := sql.Open("mysql", mysqlEnv(t).cluster.Nodes()[0].AdminDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}

// waitPrimaryConns waits until the pool user's connections on the primary
// are at most n (connections of earlier tests' proxies closing).
func waitPrimaryConns(t *testing.T, ctx context.Context, root *sql.DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := myPrimaryConns(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		if c <= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections of %s on the primary, want at most %d", c, myPoolUser, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMySQLPoolTransactionMode200Clients(t *testing.T) {
	const clients, maxConns, rounds = 200, 10, 8
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = maxConns
		p.CheckoutTimeout = time.Minute
	})
	ctx := testCtx(t)
	root := myRoot(t)
	waitPrimaryConns(t, ctx, root, 0)
	if _, err := root.ExecContext(ctx, "DELETE FROM app.pool_acct"); err != nil {
		t.Fatal(err)
	}
	db := myOpenDSN(t, dsn(nil))
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)

	var maxSeen atomic.Int64
	stop := make(chan struct{})
	monDone := make(chan error, 1)
	go func() {
		for {
			n, err := myPrimaryConns(ctx, root)
			if err != nil {
				monDone <- err
				return
			}
			if int64(n) > maxSeen.Load() {
				maxSeen.Store(int64(n))
			}
			select {
			case <-stop:
				monDone <- nil
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				c, err := db.Conn(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				if _, err := c.ExecContext(ctx, "INSERT INTO pool_acct (client, n) VALUES (?, 0)", i); err != nil {
					return fmt.Errorf("client %d insert: %w", i, err)
				}
				for r := 1; r <= rounds; r++ {
					tx, err := c.BeginTx(ctx, nil)
					if err != nil {
						return fmt.Errorf("client %d begin: %w", i, err)
					}
					var n int
					if err := tx.QueryRowContext(ctx, "SELECT n FROM pool_acct WHERE client = ? FOR UPDATE", i).Scan(&n); err != nil {
						tx.Rollback()
						return fmt.Errorf("client %d select: %w", i, err)
					}
					if n != r-1 {
						tx.Rollback()
						return fmt.Errorf("client %d round %d: n = %d", i, r, n)
					}
					if _, err := tx.ExecContext(ctx, "UPDATE pool_acct SET n = n + 1, s = ? WHERE client = ?", fmt.Sprintf("c%d-r%d", i, r), i); err != nil {
						tx.Rollback()
						return fmt.Errorf("client %d update: %w", i, err)
					}
					if r%3 == 0 {
						// A rolled back change does not count.
						if _, err := tx.ExecContext(ctx, "UPDATE pool_acct SET n = n + 100 WHERE client = ?", i); err != nil {
							tx.Rollback()
							return err
						}
						if err := tx.Rollback(); err != nil {
							return fmt.Errorf("client %d rollback: %w", i, err)
						}
						if _, err := c.ExecContext(ctx, "UPDATE pool_acct SET n = n + 1, s = ? WHERE client = ?", fmt.Sprintf("c%d-r%d", i, r), i); err != nil {
							return fmt.Errorf("client %d autocommit update: %w", i, err)
						}
					} else if err := tx.Commit(); err != nil {
						return fmt.Errorf("client %d commit: %w", i, err)
					}
					var s string
					if err := c.QueryRowContext(ctx, "SELECT s FROM pool_acct WHERE client = ?", i).Scan(&s); err != nil {
						return fmt.Errorf("client %d read: %w", i, err)
					}
					if want := fmt.Sprintf("c%d-r%d", i, r); s != want {
						return fmt.Errorf("client %d read %q, want %q", i, s, want)
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if err := <-monDone; err != nil {
		t.Fatal(err)
	}
	var total, count int
	if err := root.QueryRowContext(ctx, "SELECT COALESCE(SUM(n), 0), COUNT(*) FROM app.pool_acct").Scan(&total, &count); err != nil {
		t.Fatal(err)
	}
	if count != clients || total != clients*rounds {
		t.Errorf("%d rows with total %d, want %d rows with %d", count, total, clients, clients*rounds)
	}
	if m := maxSeen.Load(); m > maxConns || m == 0 {
		t.Errorf("up to %d connections of the proxy on the primary, want 1..%d", m, maxConns)
	}
	t.Logf("max %d backend connections on the primary for %d clients", maxSeen.Load(), clients)
}

func TestMySQLPoolTransactionModePreparedStatements(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 2
	})
	ctx := testCtx(t)
	db := myOpenDSN(t, dsn(nil))
	const clients = 12
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				c, err := db.Conn(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				// The same SQL in every client (shared on the connections)
				// and one of the client's own.
				add, err := c.PrepareContext(ctx, "SELECT ? + 1, CONCAT('x', ?)")
				if err != nil {
					return err
				}
				defer add.Close()
				own, err := c.PrepareContext(ctx, fmt.Sprintf("SELECT ? * %d", i+1))
				if err != nil {
					return err
				}
				defer own.Close()
				for r := range 60 {
					var n int64
					var s string
					if err := add.QueryRowContext(ctx, r+i, fmt.Sprint(i)).Scan(&n, &s); err != nil {
						return fmt.Errorf("client %d add %d: %w", i, r, err)
					}
					if n != int64(r+i+1) || s != fmt.Sprint("x", i) {
						return fmt.Errorf("client %d add %d: %d %q", i, r, n, s)
					}
					// Parameter types change between executions.
					var arg any = r
					if r%2 == 1 {
						arg = fmt.Sprint(r)
					}
					var m float64
					if err := own.QueryRowContext(ctx, arg).Scan(&m); err != nil {
						return fmt.Errorf("client %d own %d: %w", i, r, err)
					}
					if m != float64(r*(i+1)) {
						return fmt.Errorf("client %d own %d: %v", i, r, m)
					}
					if r%20 == 0 {
						// Statements prepared and closed on the way.
						tmp, err := c.PrepareContext(ctx, "SELECT ?")
						if err != nil {
							return err
						}
						var v string
						err = tmp.QueryRowContext(ctx, "t").Scan(&v)
						tmp.Close()
						if err != nil || v != "t" {
							return fmt.Errorf("client %d tmp: %q %v", i, v, err)
						}
					}
				}
				// In a transaction too.
				tx, err := c.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				var n int64
				var s string
				if err := tx.StmtContext(ctx, add).QueryRowContext(ctx, 41, "y").Scan(&n, &s); err != nil || n != 42 || s != "xy" {
					return fmt.Errorf("client %d in tx: %d %q %v", i, n, s, err)
				}
				return tx.Commit()
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// myBackendID returns the backend's connection id (CONNECTION_ID() alone
// is answered by the proxy with the client's id).
func myBackendID(t *testing.T, ctx context.Context, c *sql.Conn) int64 {
	t.Helper()
	return myScanInt(t, ctx, c, "SELECT CONNECTION_ID() + 0")
}

func myScanString(t *testing.T, ctx context.Context, c *sql.Conn, q string) string {
	t.Helper()
	var v sql.NullString
	if err := c.QueryRowContext(ctx, q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v.String
}

func TestMySQLPoolTransactionModeNoStateLeak(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 1
	})
	ctx := testCtx(t)
	db := myOpenDSN(t, dsn(nil))
	a, b := myConn(t, db), myConn(t, db)
	defTZ := myScanString(t, ctx, b, "SELECT @@session.time_zone")
	defCS := myScanString(t, ctx, b, "SELECT @@character_set_client")
	myMustExec(t, ctx, a, "SET @@session.time_zone = '+05:00'")
	myMustExec(t, ctx, a, "SET NAMES latin1")
	myMustExec(t, ctx, a, "USE mysql")
	for round := range 3 {
		// The route sends these reads to a replica: one connection per
		// backend and user, shared by a and b.
		ida, idb := myBackendID(t, ctx, a), myBackendID(t, ctx, b)
		if ida != idb {
			// Reads may go to either replica; compare on the same one.
			t.Logf("round %d: a on %d, b on %d", round, ida, idb)
		}
		if tz := myScanString(t, ctx, b, "SELECT @@session.time_zone"); tz != defTZ {
			t.Fatalf("round %d: b sees time_zone %q, want %q", round, tz, defTZ)
		}
		if cs := myScanString(t, ctx, b, "SELECT @@character_set_client"); cs != defCS {
			t.Fatalf("round %d: b sees character_set_client %q, want %q", round, cs, defCS)
		}
		if d := myScanString(t, ctx, b, "SELECT DATABASE()"); d != "app" {
			t.Fatalf("round %d: b sees DATABASE() %q, want app", round, d)
		}
		if tz := myScanString(t, ctx, a, "SELECT @@session.time_zone"); tz != "+05:00" {
			t.Fatalf("round %d: a lost its time_zone: %q", round, tz)
		}
		if cs := myScanString(t, ctx, a, "SELECT @@character_set_client"); cs != "latin1" {
			t.Fatalf("round %d: a lost SET NAMES: %q", round, cs)
		}
		if d := myScanString(t, ctx, a, "SELECT DATABASE()"); d != "mysql" {
			t.Fatalf("round %d: a lost USE: %q", round, d)
		}
	}
	// Sharing proven on the primary: a and b in turn, each in a
	// transaction (which the writer serves), on the single connection.
	idOf := func(c *sql.Conn) int64 {
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var id int64
		if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID() + 0").Scan(&id); err != nil {
			t.Fatal(err)
		}
		var tz, d string
		if err := tx.QueryRowContext(ctx, "SELECT @@session.time_zone, DATABASE()").Scan(&tz, &d); err != nil {
			t.Fatal(err)
		}
		if c == b && (tz != defTZ || d != "app") {
			t.Fatalf("b on the primary sees time_zone %q, database %q", tz, d)
		}
		if c == a && (tz != "+05:00" || d != "mysql") {
			t.Fatalf("a on the primary sees time_zone %q, database %q", tz, d)
		}
		return id
	}
	for range 3 {
		ida, idb := idOf(a), idOf(b)
		if ida != idb {
			t.Fatalf("a on backend connection %d, b on %d: not shared with max_server_conns 1", ida, idb)
		}
	}
}

func TestMySQLPoolCheckoutTimeout(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 1
		p.CheckoutTimeout = 300 * time.Millisecond
	})
	ctx := testCtx(t)
	db := myOpenDSN(t, dsn(nil))
	a, b := myConn(t, db), myConn(t, db)
	tx, err := a.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE pool_acct SET n = n WHERE client = -1"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = b.ExecContext(ctx, "UPDATE pool_acct SET n = n WHERE client = -2")
	if code := myErrCode(err); code != 1040 {
		t.Fatalf("statement with the pool full: %v, want error 1040", err)
	}
	var me *mysql.MySQLError
	if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
		t.Errorf("1040 after %v, want about 300ms", el)
	}
	if errors.As(err, &me) && string(me.SQLState[:]) != "08004" {
		t.Errorf("SQLSTATE %s, want 08004", string(me.SQLState[:]))
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	myMustExec(t, ctx, b, "UPDATE pool_acct SET n = n WHERE client = -2")
}

func TestMySQLPoolDisconnectMidTransaction(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 2
	})
	ctx := testCtx(t)
	root := myRoot(t)
	if _, err := root.ExecContext(ctx, "INSERT IGNORE INTO app.pool_acct (client, n) VALUES (-10, 0)"); err != nil {
		t.Fatal(err)
	}
	// Open transactions on the primary (tests run one at a time: the only
	// ones are this test's).
	openTx := func() int {
		time.Sleep(150 * time.Millisecond) // innodb_trx is a cache, refreshed after 100ms without reads
		var n int
		if err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.innodb_trx").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var dropMu sync.Mutex
	var dropped []net.Conn
	mysql.RegisterDialContext("pooldrop", func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			dropMu.Lock()
			dropped = append(dropped, c)
			dropMu.Unlock()
		}
		return c, err
	})
	for _, how := range []string{"quit", "drop"} {
		db, err := sql.Open("mysql", dsn(func(c *mysql.Config) {
			if how == "drop" {
				c.Net = "pooldrop"
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "UPDATE pool_acct SET n = n + 1 WHERE client = -10"); err != nil {
			t.Fatal(err)
		}
		if n := openTx(); n != 1 {
			var all string
			root.QueryRowContext(ctx, "SELECT GROUP_CONCAT(CONCAT(trx_mysql_thread_id, ' ', trx_state, ' ', trx_started, ' ', IFNULL(trx_query, ''))) FROM information_schema.innodb_trx").Scan(&all)
			var pl string
			root.QueryRowContext(ctx, "SELECT GROUP_CONCAT(CONCAT(id, ' ', user, ' ', command, ' ', IFNULL(info, ''))) FROM information_schema.processlist").Scan(&pl)
			t.Fatalf("%s: %d open transactions before the disconnect, want 1 (%s) (%s) %v", how, n, all, pl, time.Now())
		}
		if how == "quit" {
			c.Close()
			db.Close() // COM_QUIT
		} else {
			// The client vanishes without COM_QUIT.
			dropMu.Lock()
			for _, nc := range dropped {
				nc.Close()
			}
			dropMu.Unlock()
			c.Close()
			db.Close()
		}
		deadline := time.Now().Add(5 * time.Second)
		for openTx() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the transaction is still open on the backend", how)
			}
			// innodb_trx is a cache, refreshed only when it was not read
			// for 100ms.
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The row is free and unchanged.
	db := myOpenDSN(t, dsn(nil))
	c := myConn(t, db)
	myMustExec(t, ctx, c, "SET SESSION innodb_lock_wait_timeout = 2")
	myMustExec(t, ctx, c, "UPDATE pool_acct SET n = n WHERE client = -10")
	var n int
	if err := root.QueryRowContext(ctx, "SELECT n FROM app.pool_acct WHERE client = -10").Scan(&n); err != nil || n != 0 {
		t.Fatalf("n = %d (%v), want 0: a disconnected client's transaction was committed", n, err)
	}
}

func TestMySQLPoolSessionModeReset(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.MaxServerConns = 1
	})
	ctx := testCtx(t)
	db := myOpenDSN(t, dsn(func(c *mysql.Config) {}))
	db.SetMaxIdleConns(0) // every Conn is a new client session
	var first int64
	for i := range 3 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var id int64
		var tz string
		var x sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID() + 0, @@session.time_zone, @x").Scan(&id, &tz, &x); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
		if i == 0 {
			first = id
		} else if id != first {
			t.Errorf("session %d on backend connection %d, want the pooled %d", i, id, first)
		}
		if tz == "+03:00" || x.Valid {
			t.Errorf("session %d inherits time_zone %q, @x %v", i, tz, x)
		}
		myMustExec(t, ctx, c, "SET @@session.time_zone = '+03:00'")
		c.Close()
	}
}

func TestMySQLPoolTransactionModeKillQuery(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 2
	})
	ctx := testCtx(t)
	db := myOpenDSN(t, dsn(nil))
	victim, killer, other := myConn(t, db), myConn(t, db), myConn(t, db)
	id := myScanInt(t, ctx, victim, "SELECT CONNECTION_ID()")
	// Nothing running: KILL QUERY is a no-op, and the connection the victim
	// used last serves the others unharmed.
	myMustExec(t, ctx, killer, fmt.Sprintf("KILL QUERY %d", id))
	if v := myScanInt(t, ctx, other, "SELECT 1"); v != 1 {
		t.Fatal("other client hurt by KILL QUERY of an idle client")
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		var v int64
		done <- victim.QueryRowContext(ctx, "SELECT SLEEP(10)").Scan(&v)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("SLEEP(10) ended after %v", el)
			}
			if v := myScanInt(t, ctx, victim, "SELECT 1"); v != 1 {
				t.Fatal("session unusable after KILL QUERY")
			}
			return
		case <-tick.C:
			if _, err := killer.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id)); err != nil {
				t.Fatalf("KILL QUERY: %v", err)
			}
		}
	}
}

// myRootExec runs setup statements on the primary as root and waits for
// the replicas.
func myRootExec(t *testing.T, ctx context.Context, root *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := root.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := mysqlEnv(t).cluster.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
}

// A statement prepared on a shared connection runs in the database current
// when it was prepared: clients in different databases preparing the same
// SQL must not share it.
func TestMySQLPoolTransactionModeStmtPerDatabase(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 1
	})
	ctx := testCtx(t)
	root := myRoot(t)
	myRootExec(t, ctx, root,
		"CREATE DATABASE IF NOT EXISTS pooldb2",
		"CREATE TABLE IF NOT EXISTS pooldb2.pool_acct LIKE app.pool_acct",
		"DELETE FROM app.pool_acct WHERE client IN (-31, -32)",
		"DELETE FROM pooldb2.pool_acct WHERE client IN (-31, -32)")
	db := myOpenDSN(t, dsn(nil))
	a, b := myConn(t, db), myConn(t, db)
	myMustExec(t, ctx, b, "USE pooldb2")
	const q = "INSERT INTO pool_acct (client, n) VALUES (?, 1)"
	sa, err := a.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := b.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	// Both prepared (b's last) before either executes.
	if _, err := sa.ExecContext(ctx, -31); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.ExecContext(ctx, -32); err != nil {
		t.Fatal(err)
	}
	count := func(db string, client int) int {
		var n int
		if err := root.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s.pool_acct WHERE client = ?", db), client).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("app", -31); n != 1 {
		t.Errorf("a's rows in app: %d, want 1", n)
	}
	if n := count("pooldb2", -31); n != 0 {
		t.Errorf("a's rows in pooldb2: %d, want 0 (a's statement ran in b's database)", n)
	}
	if n := count("pooldb2", -32); n != 1 {
		t.Errorf("b's rows in pooldb2: %d, want 1", n)
	}
	if n := count("app", -32); n != 0 {
		t.Errorf("b's rows in app: %d, want 0 (b's statement ran in a's database)", n)
	}
}

// SET TRANSACTION without a scope sets the next transaction's
// characteristics: they must stay with the client that set them.
func TestMySQLPoolTransactionModeSetTransactionNext(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 1
	})
	ctx := testCtx(t)
	root := myRoot(t)
	myRootExec(t, ctx, root, "DELETE FROM app.pool_acct WHERE client IN (-41, -42)")
	db := myOpenDSN(t, dsn(nil))
	a, b := myConn(t, db), myConn(t, db)
	myMustExec(t, ctx, a, "SET TRANSACTION READ ONLY")
	done := make(chan error, 1)
	go func() {
		_, err := b.ExecContext(ctx, "INSERT INTO pool_acct (client, n) VALUES (-42, 0)")
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // b waits for the connection a keeps
	_, err := a.ExecContext(ctx, "INSERT INTO pool_acct (client, n) VALUES (-41, 0)")
	if code := myErrCode(err); code != 1792 {
		t.Errorf("a's insert after SET TRANSACTION READ ONLY: %v, want error 1792", err)
	}
	// Neither a statement refused that way nor SELECT 1 uses the
	// characteristic up (MariaDB): a keeps its connection.
	if v := myScanInt(t, ctx, a, "SELECT 1"); v != 1 {
		t.Fatal("SELECT 1")
	}
	// A transaction takes it; its end forgets it.
	myMustExec(t, ctx, a, "START TRANSACTION")
	_, err = a.ExecContext(ctx, "INSERT INTO pool_acct (client, n) VALUES (-41, 0)")
	if code := myErrCode(err); code != 1792 {
		t.Errorf("a's insert in the read-only transaction: %v, want error 1792", err)
	}
	myMustExec(t, ctx, a, "COMMIT")
	if err := <-done; err != nil {
		t.Fatalf("b's insert: %v (a's SET TRANSACTION leaked to b)", err)
	}
	myMustExec(t, ctx, a, "INSERT INTO pool_acct (client, n) VALUES (-41, 0)")
	// The go-sql-driver form: SET TRANSACTION ISOLATION LEVEL, then START
	// TRANSACTION, as separate commands; then b writes in autocommit.
	tx, err := a.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	myMustExec(t, ctx, b, "UPDATE pool_acct SET n = n + 1 WHERE client = -42")
}

// A command that ends in ERR may leave a transaction open (a procedure's
// START TRANSACTION before a duplicate key): the connection must stay with
// its client.
func TestMySQLPoolTransactionModeErrorInTransaction(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 1
	})
	ctx := testCtx(t)
	root := myRoot(t)
	myRootExec(t, ctx, root,
		"DELETE FROM app.pool_acct WHERE client IN (-51, -52)",
		"DROP PROCEDURE IF EXISTS app.pool_tx_dup",
		"CREATE PROCEDURE app.pool_tx_dup() BEGIN START TRANSACTION; INSERT INTO app.pool_acct (client, n) VALUES (-51, 0); INSERT INTO app.pool_acct (client, n) VALUES (-51, 0); END")
	db := myOpenDSN(t, dsn(nil))
	a, b := myConn(t, db), myConn(t, db)
	_, err := a.ExecContext(ctx, "CALL pool_tx_dup()")
	if code := myErrCode(err); code != 1062 {
		t.Fatalf("CALL: %v, want error 1062", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.ExecContext(ctx, "INSERT INTO pool_acct (client, n) VALUES (-52, 0)")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	// a's transaction is still open, with its first row.
	var n int
	if err := a.QueryRowContext(ctx, "SELECT COUNT(*) FROM pool_acct WHERE client = -51").Scan(&n); err != nil || n != 1 {
		t.Errorf("a sees %d rows -51 (%v), want 1 (its open transaction)", n, err)
	}
	myMustExec(t, ctx, a, "ROLLBACK")
	if err := <-done; err != nil {
		t.Fatalf("b's insert: %v", err)
	}
	// b's autocommit insert was not part of a's transaction: committed.
	if err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM app.pool_acct WHERE client = -52").Scan(&n); err != nil || n != 1 {
		t.Fatalf("b's row: %d (%v), want 1: b's insert ran in a's transaction", n, err)
	}
	if err := root.QueryRowContext(ctx, "SELECT COUNT(*) FROM app.pool_acct WHERE client = -51").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a's row: %d (%v), want 0: a's transaction was committed", n, err)
	}
}

// A multi-statement command that fails part way leaves session state the
// proxy did not record: the connection must not serve another client.
func TestMySQLPoolTransactionModePartialMultiStatement(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 1
	})
	ctx := testCtx(t)
	db := myOpenDSN(t, dsn(func(c *mysql.Config) { c.MultiStatements = true }))
	a, b := myConn(t, db), myConn(t, db)
	onWriter := func(c *sql.Conn, q string) string {
		t.Helper()
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var v sql.NullString
		if err := tx.QueryRowContext(ctx, q).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v.String
	}
	defCS := onWriter(b, "SELECT @@character_set_client")
	if _, err := a.ExecContext(ctx, "SET NAMES latin1; SELECT * FROM no_such_table"); err == nil {
		t.Fatal("no error from the bad SELECT")
	}
	if cs := onWriter(b, "SELECT @@character_set_client"); cs != defCS {
		t.Errorf("b sees character_set_client %q after a's failed SET NAMES …; bad, want %q", cs, defCS)
	}
	if _, err := a.ExecContext(ctx, "USE mysql; SELECT * FROM no_such_table"); err == nil {
		t.Fatal("no error from the bad SELECT")
	}
	if d := onWriter(b, "SELECT DATABASE()"); d != "app" {
		t.Errorf("b sees DATABASE() %q after a's failed USE mysql; bad, want app", d)
	}
}

// Under session pooling (COM_RESET_CONNECTION keeps the current database),
// a client that logs in without a database must not get another client's.
func TestMySQLPoolSessionModeNoDatabase(t *testing.T) {
	_, dsn := myPoolProxy(t, func(p *config.Pool) {
		p.MaxServerConns = 1
	})
	ctx := testCtx(t)
	dbOf := func(c *sql.Conn) (string, bool) {
		tx, err := c.BeginTx(ctx, nil) // on the writer, the home connection
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var d sql.NullString
		if err := tx.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&d); err != nil {
			t.Fatal(err)
		}
		return d.String, d.Valid
	}
	for _, use := range []string{"", "USE mysql"} {
		withDB, err := sql.Open("mysql", dsn(nil))
		if err != nil {
			t.Fatal(err)
		}
		c := myConn(t, withDB)
		if d, _ := dbOf(c); d != "app" {
			t.Fatalf("client logged in to app sees %q", d)
		}
		c.Close()
		withDB.Close()

		noDB, err := sql.Open("mysql", dsn(func(c *mysql.Config) { c.DBName = "" }))
		if err != nil {
			t.Fatal(err)
		}
		c = myConn(t, noDB)
		if d, ok := dbOf(c); ok {
			t.Fatalf("client logged in without a database sees %q, want NULL", d)
		}
		if use != "" {
			myMustExec(t, ctx, c, use)
		}
		c.Close()
		noDB.Close()
		// And again: the connection a client without a database switched
		// elsewhere does not serve the next one.
		noDB, err = sql.Open("mysql", dsn(func(c *mysql.Config) { c.DBName = "" }))
		if err != nil {
			t.Fatal(err)
		}
		c = myConn(t, noDB)
		if d, ok := dbOf(c); ok {
			t.Fatalf("after %q: client logged in without a database sees %q, want NULL", use, d)
		}
		c.Close()
		noDB.Close()
	}
}

// myFillPoolOfOne opens two clients on dsn (a proxy whose pool has one
// connection), makes the first hold that connection in a transaction
// (rolled back when the test ends) and returns the second.
func myFillPoolOfOne(t *testing.T, ctx context.Context, dsn string) *sql.Conn {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	a, b := myConn(t, db), myConn(t, db)
	tx, err := a.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if _, err := tx.ExecContext(ctx, "UPDATE pool_acct SET n = n WHERE client = -1"); err != nil {
		t.Fatal(err)
	}
	return b
}

// Waiting for a full pool is bounded by checkout_timeout, not by the
// (shorter) connect_timeout.
func TestMySQLPoolCheckoutTimeoutLongerThanConnect(t *testing.T) {
	_, dsn := myPoolProxyCfg(t, func(p *config.Pool) {
		p.Mode = config.PoolTransaction
		p.MaxServerConns = 1
		p.CheckoutTimeout = 2500 * time.Millisecond
	}, func(c *config.Config) {
		c.Server.ConnectTimeout = time.Second
	})
	ctx := testCtx(t)
	b := myFillPoolOfOne(t, ctx, dsn(nil))
	start := time.Now()
	_, err := b.ExecContext(ctx, "UPDATE pool_acct SET n = n WHERE client = -2")
	el := time.Since(start)
	if code := myErrCode(err); code != 1040 {
		t.Fatalf("statement with the pool full: %v after %v, want error 1040", err, el)
	}
	if el < 2*time.Second || el > 8*time.Second {
		t.Errorf("1040 after %v, want about 2.5s (checkout_timeout)", el)
	}
}

// TestMySQLPoolPinnedStatus: a session pinned by GET_LOCK is listed with its
// reason in /status until it leaves.
func TestMySQLPoolPinnedStatus(t *testing.T) {
	ctx := testCtx(t)
	p, dsn := myPoolProxy(t, func(pl *config.Pool) { pl.Mode = config.PoolTransaction; pl.MaxServerConns = 2 })
	db := myOpenDSN(t, dsn(nil))
	db.SetMaxIdleConns(0) // closing the Conn closes the client connection
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('sluice_status_pin', 5)").Scan(&got); err != nil || got != 1 {
		t.Fatalf("GET_LOCK: %v (%d)", err, got)
	}
	pins := tpStatusPins(p, "my")
	if len(pins) != 1 || pins[0].Reason == "" || pins[0].Listener != "pool" || pins[0].Backend == "" {
		t.Fatalf("/status pinned sessions %+v, want this session with its reason and backend", pins)
	}
	t.Logf("pinned: %+v", pins[0])
	conn.Close()
	waitLimit(t, ctx, "the pin is gone from /status once the client left", func() bool { return len(tpStatusPins(p, "my")) == 0 })
}

// TestMySQLPoolLastInsertID: under transaction pooling the connection that
// ran a client's INSERT may serve another client next; SELECT
// LAST_INSERT_ID() still returns the client's own id.
func TestMySQLPoolLastInsertID(t *testing.T) {
	ctx := testCtx(t)
	_, dsn := myPoolProxy(t, func(pl *config.Pool) { pl.Mode = config.PoolTransaction; pl.MaxServerConns = 1 })
	open := func() *sql.Conn {
		db, err := sql.Open("mysql", dsn(nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := open(), open()
	tbl := fmt.Sprintf("app.pool_lii_%d", time.Now().UnixNano())
	if _, err := a.ExecContext(ctx, "CREATE TABLE "+tbl+" (id BIGINT AUTO_INCREMENT PRIMARY KEY, who CHAR(1))"); err != nil {
		t.Fatal(err)
	}
	insert := func(c *sql.Conn, who string) int64 {
		res, err := c.ExecContext(ctx, "INSERT INTO "+tbl+" (who) VALUES (?)", who)
		if err != nil {
			t.Fatal(err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	lastID := func(c *sql.Conn) int64 {
		var v int64
		if err := c.QueryRowContext(ctx, "SELECT LAST_INSERT_ID()").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	idA := insert(a, "a")
	idB := insert(b, "b") // on the same (only) backend connection
	if idA == idB {
		t.Fatalf("both inserts got id %d", idA)
	}
	if got := lastID(a); got != idA {
		t.Errorf("client a: LAST_INSERT_ID() = %d after client b's insert (%d), want its own %d", got, idB, idA)
	}
	if got := lastID(b); got != idB {
		t.Errorf("client b: LAST_INSERT_ID() = %d, want %d", got, idB)
	}
}

// TestMySQLPoolTransactionModeCursors: under transaction pooling, a client
// with two cursors open keeps its connection until both are done (one
// finishing does not release it under the other), and COM_STMT_CLOSE of
// a statement whose cursor is open releases it.
func TestMySQLPoolTransactionModeCursors(t *testing.T) {
	rc, tbl, other := cursorPoolSetup(t)
	m := rc.m
	prepare, execute, fetch := rc.prepare, rc.execute, rc.fetch
	a := prepare("/* sluice:writer */ SELECT id FROM " + tbl + " ORDER BY id")
	b := prepare("/* sluice:writer */ SELECT id * 10 FROM " + tbl + " ORDER BY id")
	execute(a)
	execute(b)
	// The last opened first: the connection stays for a's.
	if n := fetch(b); n != 5 {
		t.Fatalf("cursor b: %d rows", n)
	}
	if n := fetch(a); n != 5 {
		t.Fatalf("cursor a: %d rows", n)
	}

	// The connection went back: another client gets it.
	other()

	// A cursor closed half read with COM_STMT_CLOSE releases the
	// connection too, and the statement, shared on the connection, serves
	// a new cursor from its start.
	execute(a)
	f := mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtFetch, a)
	m.send(append(f, 1, 0, 0, 0))
	if p := m.read(); mysqlwire.IsERR(p) || mysqlwire.IsEOF(p, rawCaps) {
		t.Fatalf("fetch: %q", p)
	}
	if p := m.read(); !mysqlwire.IsEOF(p, rawCaps) {
		t.Fatalf("fetch end: %q", p)
	}
	m.send(mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtClose, a))
	other()
	c := prepare("/* sluice:writer */ SELECT id FROM " + tbl + " ORDER BY id")
	execute(c)
	if n := fetch(c); n != 5 {
		t.Fatalf("cursor c: %d rows", n)
	}
	other()
}

// cursorPoolSetup starts a proxy with transaction pooling and one backend
// connection, creates a table of five ids (1 to 5), and returns a raw
// client logged in through it, the table's name, and a check that another
// client (go-sql-driver) gets the connection and counts the table's rows.
func cursorPoolSetup(t *testing.T) (c rawStmtClient, tbl string, other func()) {
	t.Helper()
	ctx := testCtx(t)
	p, dsn := myPoolProxy(t, func(pl *config.Pool) { pl.Mode = config.PoolTransaction; pl.MaxServerConns = 1 })
	tbl = fmt.Sprintf("app.pool_cur_%d", time.Now().UnixNano())
	myRootExec(t, ctx, myRoot(t), "CREATE TABLE "+tbl+" (id INT PRIMARY KEY)", "INSERT INTO "+tbl+" VALUES (1), (2), (3), (4), (5)")
	m, login := dialRawMyAt(t, p.Addr("pool").String(), myPoolUser, myPoolUser, mysqlwire.AuthNativePassword)
	if !mysqlwire.IsOK(login, rawCaps) {
		t.Fatalf("login: % x", login)
	}
	db, err := sql.Open("mysql", dsn(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	other = func() {
		t.Helper()
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var n int
		if err := db.QueryRowContext(qctx, "/* sluice:writer */ SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil || n != 5 {
			t.Fatalf("other client: %d %v", n, err)
		}
	}
	return rawStmtClient{t, m}, tbl, other
}

// rawStmtClient drives prepared statements with cursors over a raw
// connection (go-sql-driver opens no cursors). Its statements select one
// integer column.
type rawStmtClient struct {
	t *testing.T
	m *rawMy
}

// prepare prepares q and returns the statement id the proxy gave it.
func (c rawStmtClient) prepare(q string) uint32 {
	c.t.Helper()
	c.m.send(append([]byte{mysqlwire.ComStmtPrepare}, q...))
	pok, err := mysqlwire.ParseStmtPrepareOK(c.m.read(), rawCaps)
	if err != nil {
		c.t.Fatalf("prepare %s: %v", q, err)
	}
	n := int(pok.NumParams) + int(pok.NumColumns)
	for _, k := range []uint16{pok.NumParams, pok.NumColumns} {
		if k > 0 {
			n++ // its EOF
		}
	}
	for range n {
		c.m.read()
	}
	return pok.StatementID
}

// execute opens a read-only cursor on id.
func (c rawStmtClient) execute(id uint32) {
	c.t.Helper()
	x := mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtExecute, id)
	x = append(x, 1 /* CURSOR_TYPE_READ_ONLY */, 1, 0, 0, 0)
	c.m.send(x)
	first := c.m.read()
	n, ok := mysqlwire.ParseColumnCount(first)
	if !ok || mysqlwire.IsERR(first) {
		c.t.Fatalf("execute: %q", first)
	}
	for range n {
		c.m.read()
	}
	eof := c.m.read()
	if st, _ := mysqlwire.StatusFlags(eof, rawCaps); !mysqlwire.IsEOF(eof, rawCaps) || st&mysqlwire.ServerStatusCursorExists == 0 {
		c.t.Fatalf("execute: no cursor (% x)", eof)
	}
}

// executeAll executes id without a cursor and returns the rows' values.
func (c rawStmtClient) executeAll(id uint32) []int64 {
	c.t.Helper()
	x := mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtExecute, id)
	c.m.send(append(x, 0 /* CURSOR_TYPE_NO_CURSOR */, 1, 0, 0, 0))
	first := c.m.read()
	n, ok := mysqlwire.ParseColumnCount(first)
	if !ok || mysqlwire.IsERR(first) {
		c.t.Fatalf("execute: %q", first)
	}
	for range n + 1 { // the column definitions and their EOF
		c.m.read()
	}
	var vals []int64
	for {
		p := c.m.read()
		if mysqlwire.IsEOF(p, rawCaps) {
			return vals
		}
		vals = append(vals, int64(int32(binary.LittleEndian.Uint32(p[2:]))))
	}
}

// command sends a one-packet command and fails unless the answer is OK.
func (c rawStmtClient) command(p []byte) {
	c.t.Helper()
	c.m.send(p)
	if r := c.m.read(); !mysqlwire.IsOK(r, rawCaps) {
		c.t.Fatalf("command 0x%02x: % x", p[0], r)
	}
}

// fetchN fetches up to n rows of id's cursor with one COM_STMT_FETCH and
// returns their values, and whether the cursor's last row was sent.
func (c rawStmtClient) fetchN(id uint32, n uint32) (vals []int64, last bool) {
	c.t.Helper()
	f := mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtFetch, id)
	c.m.send(binary.LittleEndian.AppendUint32(f, n))
	for {
		p := c.m.read()
		if mysqlwire.IsERR(p) {
			c.t.Fatalf("fetch: %s", p)
		}
		if mysqlwire.IsEOF(p, rawCaps) {
			st, _ := mysqlwire.StatusFlags(p, rawCaps)
			return vals, st&mysqlwire.ServerStatusLastRowSent != 0
		}
		// A binary row: 0x00, a one-byte NULL bitmap, the value.
		switch v := p[2:]; len(v) {
		case 4:
			vals = append(vals, int64(int32(binary.LittleEndian.Uint32(v))))
		case 8:
			vals = append(vals, int64(binary.LittleEndian.Uint64(v)))
		default:
			c.t.Fatalf("fetch: unexpected row % x", p)
		}
	}
}

// fetch fetches id's cursor two rows at a time until its last row and
// returns how many rows came.
func (c rawStmtClient) fetch(id uint32) int {
	c.t.Helper()
	rows := 0
	for range 10 {
		vals, last := c.fetchN(id, 2)
		rows += len(vals)
		if last {
			return rows
		}
	}
	c.t.Fatalf("fetch: no last row after %d rows", rows)
	return rows
}

// TestMySQLPoolTransactionModeCursorsSameSQL: under transaction pooling,
// client statements with the same SQL share one statement on a
// connection; executing or preparing one of them while another's cursor
// is open must not close or replace that cursor (the proxy prepares a
// statement of its own for the newcomer, closed when the connection goes
// back).
func TestMySQLPoolTransactionModeCursorsSameSQL(t *testing.T) {
	c, tbl, other := cursorPoolSetup(t)
	want := func(who string, got []int64, last bool, wantVals []int64, wantLast bool) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(wantVals) || last != wantLast {
			t.Fatalf("%s: rows %v (last %v), want %v (last %v)", who, got, last, wantVals, wantLast)
		}
	}
	q := "/* sluice:writer */ SELECT id FROM " + tbl + " ORDER BY id"
	a, b := c.prepare(q), c.prepare(q)
	c.execute(a)
	vals, last := c.fetchN(a, 2)
	want("a, first fetch", vals, last, []int64{1, 2}, false)
	c.execute(b) // the same SQL, while a's cursor is open
	vals, last = c.fetchN(b, 10)
	want("b", vals, last, []int64{1, 2, 3, 4, 5}, true)
	vals, last = c.fetchN(a, 10)
	want("a, after b ran", vals, last, []int64{3, 4, 5}, true)

	// Both cursors are done: the connection goes back and serves others.
	other()

	// A statement of the same SQL prepared while a cursor is open.
	c.execute(a)
	vals, last = c.fetchN(a, 1)
	want("a again, first fetch", vals, last, []int64{1}, false)
	d := c.prepare(q)
	c.execute(d)
	vals, last = c.fetchN(d, 10)
	want("d", vals, last, []int64{1, 2, 3, 4, 5}, true)
	vals, last = c.fetchN(a, 10)
	want("a again, after d ran", vals, last, []int64{2, 3, 4, 5}, true)
	other()
	// b still works (on the shared statement now), and so does d.
	for _, id := range []uint32{b, d} {
		c.execute(id)
		vals, last = c.fetchN(id, 10)
		want("b and d once more", vals, last, []int64{1, 2, 3, 4, 5}, true)
	}
	other()

	// In a transaction (the connection stays): COM_STMT_RESET of a
	// statement without a cursor leaves the cursor of another one with the
	// same SQL alone, and so does selecting another database meanwhile.
	query := func(q string) []byte { return append([]byte{mysqlwire.ComQuery}, q...) }
	c.command(query("BEGIN"))
	if got := c.executeAll(a); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("a without a cursor: %v", got)
	}
	c.execute(b)
	vals, last = c.fetchN(b, 2)
	want("b, first fetch", vals, last, []int64{1, 2}, false)
	c.command(mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtReset, a))
	c.command(append([]byte{mysqlwire.ComInitDB}, "information_schema"...))
	c.command(query("DO 1")) // runs in information_schema
	vals, last = c.fetchN(b, 10)
	want("b after a's reset and a USE", vals, last, []int64{3, 4, 5}, true)
	c.command(append([]byte{mysqlwire.ComInitDB}, "app"...))
	c.command(query("COMMIT"))
	other()

	// FETCH of a statement without a cursor gets the server's error, not
	// rows of another statement's cursor on the shared statement.
	c.command(query("BEGIN"))
	if got := c.executeAll(a); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("a without a cursor: %v", got)
	}
	c.execute(b)
	vals, last = c.fetchN(b, 1)
	want("b, first fetch", vals, last, []int64{1}, false)
	c.m.send(binary.LittleEndian.AppendUint32(mysqlwire.AppendStmtCommand(nil, mysqlwire.ComStmtFetch, a), 10))
	if p := c.m.read(); !mysqlwire.IsERR(p) {
		t.Fatalf("FETCH of a statement without a cursor: % x, want ERR 1421", p)
	} else if e, _ := mysqlwire.ParseERR(p); e.Code != mysqlwire.ERStmtHasNoOpenCursor {
		t.Fatalf("FETCH of a statement without a cursor: %v, want 1421", e.Error())
	}
	// More statements prepared than the connection's cache keeps do not
	// close the statement b's cursor runs on.
	for i := range 260 {
		c.prepare(fmt.Sprintf("/* sluice:writer */ SELECT %d", i))
	}
	vals, last = c.fetchN(b, 10)
	want("b after 260 other statements", vals, last, []int64{2, 3, 4, 5}, true)
	c.command(query("COMMIT"))
	other()
}
