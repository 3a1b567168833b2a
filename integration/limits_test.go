package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/config"
)

// TestPGMaxClientConns checks clusters.*.pool.max_client_conns and
// users[].pool.max_client_conns: clients over a limit get SQLSTATE 53300,
// and a closed client gives its place back.
func TestPGMaxClientConns(t *testing.T) {
	ctx := testCtx(t)
	p, err := startProxy(ctx, t.TempDir(), shared.pg, func(c *config.Config) {
		cl := c.Clusters["pg"]
		cl.Pool.MaxClientConns = 3
		c.Clusters["pg"] = cl
		for i := range c.Users {
			if c.Users[i].Name == "other" {
				c.Users[i].Pool.MaxClientConns = 1
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Shutdown(sctx)
	})
	connect := func(user string) (*pgx.Conn, error) {
		return pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s/app?sslmode=disable", user, user, p.Addr("auto")))
	}
	want53300 := func(what string, err error) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "53300" {
			t.Fatalf("%s: %v, want SQLSTATE 53300", what, err)
		}
	}
	o1, err := connect("other")
	if err != nil {
		t.Fatal(err)
	}
	_, err = connect("other")
	want53300("second connection of a user limited to 1", err)
	a1, err := connect("app")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := connect("app")
	if err != nil {
		t.Fatal(err)
	}
	_, err = connect("app")
	want53300("fourth connection to a cluster limited to 3", err)
	// The admitted clients work; a closed one gives its place back.
	for _, c := range []*pgx.Conn{o1, a1, a2} {
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("admitted client: %v", err)
		}
	}
	o1.Close(ctx)
	waitLimit(t, ctx, "the closed client's place is given back", func() bool {
		c, err := connect("other")
		if err != nil {
			return false
		}
		c.Close(ctx)
		return true
	})
	a1.Close(ctx)
	a2.Close(ctx)
}

// TestMySQLMaxClientConns is TestPGMaxClientConns for MySQL: error 1040.
func TestMySQLMaxClientConns(t *testing.T) {
	e := mysqlEnv(t)
	ctx := testCtx(t)
	n := e.cluster.Nodes()
	yaml := fmt.Sprintf(`
listeners:
  - {name: my, protocol: mysql, address: "127.0.0.1:0", cluster: my, route: auto, auth: mysql_native_password}
clusters:
  my:
    protocol: mysql
    backends: [{address: %q}, {address: %q}, {address: %q}]
    pool: {max_client_conns: 2}
users:
  - {name: app, password: app}
health: {interval: 200ms, timeout: 2s, failures: 3, successes: 2}
log: {level: warn}
`, n[0].Addr(), n[1].Addr(), n[2].Addr())
	cfg, err := config.Parse([]byte(yaml), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p := startProxyCfg(t, ctx, cfg, slog.LevelWarn)
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr, mc.DBName = "app", "app", "tcp", p.Addr("my").String(), "app"
	open := func() (*sql.Conn, error) {
		db, err := sql.Open("mysql", mc.FormatDSN())
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { db.Close() })
		db.SetMaxIdleConns(0)
		return db.Conn(ctx)
	}
	c1, err := open()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := open()
	if err != nil {
		t.Fatal(err)
	}
	_, err = open()
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1040 {
		t.Fatalf("third connection to a cluster limited to 2: %v, want error 1040", err)
	}
	for _, c := range []*sql.Conn{c1, c2} {
		if _, err := c.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatalf("admitted client: %v", err)
		}
	}
	c1.Raw(func(dc any) error { return driverConnClose(dc) })
	c1.Close()
	waitLimit(t, ctx, "the closed client's place is given back", func() bool {
		c, err := open()
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	c2.Close()
}

// driverConnClose closes the driver connection under a database/sql Conn so
// that the server side sees the client leave now.
func driverConnClose(dc any) error {
	if c, ok := dc.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// waitLimit polls cond until it holds or the test's context ends.
func waitLimit(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
