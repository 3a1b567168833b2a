package integration

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/integration/localcluster"
	"github.com/sluicedb/sluice/proxy"
)

// myEnv is the MariaDB side of the test environment: a primary with two
// GTID replicas and a Sluice instance with MySQL listeners in front. It is
// started lazily by the first test that needs it (mysqlEnv) and stopped by
// runMain through stopMySQL.
type myEnv struct {
	cluster *localcluster.MariaDBCluster
	proxy   *proxy.Proxy
	dir     string
}

var (
	myOnce   sync.Once
	myShared *myEnv
	myErr    error
)

const mysqlProxyYAML = `
listeners:
  - {name: my-auto, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: auto}
  - {name: my-writer, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: writer}
  - {name: my-reader, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: reader}
  - {name: my-native, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: auto, auth: mysql_native_password}
  - {name: my-tls, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: auto, tls: {cert: %[4]q, key: %[5]q}}
  - {name: my-infile, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: auto, local_infile: true}
  - {name: my-rsa, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: writer, rsa_key: %[6]q}
clusters:
  my:
    protocol: mysql
    backends: [{address: %[1]q}, {address: %[2]q}, {address: %[3]q}]
users:
  - {name: app, password: app}
health: {interval: 100ms, timeout: 2s, failures: 3, successes: 1}
server: {auth_failure_delay: 10ms, max_message_size: 1MiB}
log: {level: warn}
`

// mysqlEnv starts the MariaDB cluster and its proxy once, or skips the
// test when MariaDB is not installed.
func mysqlEnv(t testing.TB) *myEnv {
	t.Helper()
	myOnce.Do(func() {
		if _, err := localcluster.FindMariaDB(); err != nil {
			myErr = fmt.Errorf("skip: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c, err := localcluster.StartMariaDB(ctx, localcluster.MariaDBOptions{})
		if err != nil {
			myErr = fmt.Errorf("starting MariaDB: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "sluice-it-my-")
		if err != nil {
			c.Stop()
			myErr = err
			return
		}
		cert, key, err := writeSelfSigned(dir)
		if err != nil {
			c.Stop()
			os.RemoveAll(dir)
			myErr = err
			return
		}
		rsaKey, err := writeRSAKey(dir)
		if err != nil {
			c.Stop()
			os.RemoveAll(dir)
			myErr = err
			return
		}
		n := c.Nodes()
		cfg, err := config.Parse([]byte(fmt.Sprintf(mysqlProxyYAML, n[0].Addr(), n[1].Addr(), n[2].Addr(), cert, key, rsaKey)), func(string) string { return "" })
		if err != nil {
			c.Stop()
			os.RemoveAll(dir)
			myErr = fmt.Errorf("config: %w", err)
			return
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		p, err := proxy.New(cfg, log)
		if err == nil {
			err = p.Start(ctx)
		}
		if err != nil {
			c.Stop()
			os.RemoveAll(dir)
			myErr = fmt.Errorf("proxy: %w", err)
			return
		}
		myShared = &myEnv{cluster: c, proxy: p, dir: dir}
	})
	if myErr != nil {
		if len(myErr.Error()) > 5 && myErr.Error()[:5] == "skip:" {
			t.Skip(myErr)
		}
		t.Fatal(myErr)
	}
	return myShared
}

// stopMySQL stops what mysqlEnv started (called by runMain).
func stopMySQL() {
	if myShared == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := myShared.proxy.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "mysql proxy shutdown:", err)
	}
	if err := myShared.cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "mariadb stop:", err)
	}
	os.RemoveAll(myShared.dir)
}

// myDSN returns a go-sql-driver DSN for a listener of the MySQL proxy.
func myDSN(t testing.TB, listener, user, password, db string, mutate func(*mysql.Config)) string {
	t.Helper()
	e := mysqlEnv(t)
	a := e.proxy.Addr(listener)
	if a == nil {
		t.Fatalf("no listener %q", listener)
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = a.String()
	cfg.User = user
	cfg.Passwd = password
	cfg.DBName = db
	cfg.InterpolateParams = false
	cfg.AllowNativePasswords = true
	cfg.Timeout = 10 * time.Second
	if mutate != nil {
		mutate(cfg)
	}
	return cfg.FormatDSN()
}

// myOpen opens a database/sql pool on a listener of the MySQL proxy as app.
func myOpen(t testing.TB, listener string, mutate func(*mysql.Config)) *sql.DB {
	t.Helper()
	return myOpenDSN(t, myDSN(t, listener, "app", "app", "app", mutate))
}

// myOpenDSN opens a database/sql handle on dsn (go-sql-driver/mysql),
// closed when the test ends.
func myOpenDSN(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// myConn returns one dedicated session on a listener.
func myConn(t testing.TB, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
