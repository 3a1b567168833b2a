package localcluster_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicedb/sluice/integration/localcluster"
)

// requirePostgres skips the test when no PostgreSQL server programs are
// installed, except in CI, where that is a failure.
func requirePostgres(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL servers")
	}
	if _, err := localcluster.PostgresBinDir(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// testLog returns a PostgresOptions.Log that stamps messages with the time
// since the call.
func testLog(t *testing.T) func(string, ...any) {
	t0 := time.Now()
	return func(format string, args ...any) {
		t.Logf("%6.3fs "+format, append([]any{time.Since(t0).Seconds()}, args...)...)
	}
}

// startCluster starts a cluster and stops it when the test ends.
func startCluster(t *testing.T, ctx context.Context, opts localcluster.PostgresOptions) *localcluster.PostgresCluster {
	t.Helper()
	opts.Log = testLog(t)
	start := time.Now()
	c, err := localcluster.StartPostgres(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster started in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func connect(t *testing.T, ctx context.Context, n *localcluster.PostgresNode, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v\n%s", n.Name, err, n.LogTail(20))
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryInt(t *testing.T, ctx context.Context, n *localcluster.PostgresNode, conn *pgx.Conn, sql string) int {
	t.Helper()
	var v int
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		t.Fatalf("%s: %s: %v\n%s", n.Name, sql, err, n.LogTail(20))
	}
	return v
}

func inRecovery(t *testing.T, ctx context.Context, n *localcluster.PostgresNode, conn *pgx.Conn) bool {
	t.Helper()
	var v bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&v); err != nil {
		t.Fatalf("%s: pg_is_in_recovery: %v", n.Name, err)
	}
	return v
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func TestPostgresCluster(t *testing.T) {
	requirePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	c := startCluster(t, ctx, localcluster.PostgresOptions{})

	// Shape.
	nodes := c.Nodes()
	if len(nodes) != 3 || len(c.Replicas) != 2 || nodes[0] != c.Primary {
		t.Fatalf("got %d nodes, %d replicas", len(nodes), len(c.Replicas))
	}
	seen := map[int]bool{}
	for i, n := range nodes {
		if want := "pg" + string(rune('0'+i)); n.Name != want {
			t.Errorf("node %d is named %q, want %q", i, n.Name, want)
		}
		if seen[n.Port] || n.Port == 5432 || n.Port == 3306 {
			t.Errorf("%s: bad port %d", n.Name, n.Port)
		}
		seen[n.Port] = true
		if !n.Running() {
			t.Errorf("%s is not running", n.Name)
		}
	}

	// The primary: writes through the app user, SCRAM verifier stored.
	primary := connect(t, ctx, c.Primary, c.Primary.DSN("app", "app", "app"))
	if inRecovery(t, ctx, c.Primary, primary) {
		t.Fatal("the primary is in recovery")
	}
	if _, err := primary.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.Exec(ctx, "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g"); err != nil {
		t.Fatal(err)
	}
	admin := connect(t, ctx, c.Primary, c.Primary.AdminDSN("postgres"))
	var verifier string
	if err := admin.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'").Scan(&verifier); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(verifier, "SCRAM-SHA-256$") {
		t.Errorf("password of app is stored as %.20q…, want a SCRAM-SHA-256 verifier", verifier)
	}
	if conn, err := pgx.Connect(ctx, c.Primary.DSN("app", "wrong", "app")); err == nil {
		conn.Close(ctx)
		t.Error("connected with a wrong password")
	} else if code := sqlState(err); code != "28P01" {
		t.Errorf("wrong password: got %v (SQLSTATE %q), want 28P01", err, code)
	}
	rows, err := admin.Query(ctx, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	streaming, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(streaming, ",") != "pg1,pg2" {
		t.Errorf("streaming replicas: %v, want [pg1 pg2]", streaming)
	}

	// The replicas: same data, in recovery, refusing writes.
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Replicas {
		conn := connect(t, ctx, r, r.DSN("app", "app", "app"))
		if got := queryInt(t, ctx, r, conn, "SELECT count(*) FROM t"); got != 100 {
			t.Errorf("%s: %d rows, want 100", r.Name, got)
		}
		if !inRecovery(t, ctx, r, conn) {
			t.Errorf("%s is not in recovery", r.Name)
		}
		_, err := conn.Exec(ctx, "INSERT INTO t VALUES (1000, 'misrouted')")
		if code := sqlState(err); code != "25006" {
			t.Errorf("%s: write on a replica: got %v (SQLSTATE %q), want SQLSTATE 25006", r.Name, err, code)
		}
	}

	// Kill a replica, write while it is down, restart it: it catches up.
	r := c.Replicas[1]
	killed := time.Now()
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if r.Running() {
		t.Fatalf("%s still running after Kill", r.Name)
	}
	if conn, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts TCP connections after Kill", r.Name)
	}
	if _, err := primary.Exec(ctx, "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(101, 150) g"); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s killed, restarted and caught up in %v", r.Name, time.Since(killed).Round(time.Millisecond))
	conn := connect(t, ctx, r, r.DSN("app", "app", "app"))
	if got := queryInt(t, ctx, r, conn, "SELECT count(*) FROM t"); got != 150 {
		t.Errorf("%s after restart: %d rows, want 150", r.Name, got)
	}
	if !inRecovery(t, ctx, r, conn) {
		t.Errorf("%s is not in recovery after restart", r.Name)
	}
	if err := c.WaitStreaming(ctx); err != nil {
		t.Fatal(err)
	}
	if log := r.LogTail(1000); !strings.Contains(log, "database system is ready to accept read-only connections") {
		t.Errorf("%s: the log shows no hot standby start:\n%s", r.Name, log)
	}

	// Stop: everything down, the directory gone, a second Stop harmless.
	conn.Close(ctx)
	primary.Close(ctx)
	admin.Close(ctx)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, n := range nodes {
		if n.Running() {
			t.Errorf("%s still running after Stop", n.Name)
		}
		if conn, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts TCP connections after Stop", n.Name)
		}
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still exists after Stop (%v)", c.Dir, err)
	}
	if left := serverProcessesUnder(c.Dir); len(left) > 0 {
		t.Errorf("processes left working in %s: %v", c.Dir, left)
	}
}

func TestPostgresSynchronous(t *testing.T) {
	requirePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	dir := reachableTempDir(t)
	c := startCluster(t, ctx, localcluster.PostgresOptions{
		Replicas:    1,
		Dir:         dir,
		Synchronous: true,
		Users:       []localcluster.User{{Name: "owner", Password: "it's secret"}, {Name: "boss", Password: "b", Superuser: true}},
		Databases:   []string{"one", "two"},
		ExtraConf:   []string{"work_mem = '8MB'"},
	})
	if c.Dir != dir || len(c.Replicas) != 1 {
		t.Fatalf("Dir %s (want %s), %d replicas", c.Dir, dir, len(c.Replicas))
	}
	p, r := c.Primary, c.Replicas[0]

	owner := connect(t, ctx, p, p.DSN("owner", "it's secret", "two"))
	var workMem, syncNames string
	var super bool
	if err := owner.QueryRow(ctx, "SELECT current_setting('work_mem'), current_setting('synchronous_standby_names'), rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&workMem, &syncNames, &super); err != nil {
		t.Fatal(err)
	}
	if workMem != "8MB" || syncNames != `ANY 1 ("pg1")` || super {
		t.Errorf("work_mem %q, synchronous_standby_names %q, owner superuser %v", workMem, syncNames, super)
	}
	var dbOwner string
	if err := owner.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'one'").Scan(&dbOwner); err != nil || dbOwner != "owner" {
		t.Errorf("owner of database one: %q, %v", dbOwner, err)
	}
	boss := connect(t, ctx, r, r.DSN("boss", "b", "one"))
	if err := boss.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || !super {
		t.Errorf("boss superuser: %v, %v", super, err)
	}

	if _, err := owner.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}
	// With the only synchronous standby down, a commit waits.
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := owner.Exec(wctx, "INSERT INTO t VALUES (1)")
	wcancel()
	if err == nil {
		t.Fatal("a commit returned with no synchronous standby running")
	}
	// pgx closes a connection whose query was interrupted by its context.
	owner = connect(t, ctx, p, p.DSN("owner", "it's secret", "two"))
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	// Synchronous commit (remote flush) does not imply replay: wait for it.
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	rc := connect(t, ctx, r, r.DSN("owner", "it's secret", "two"))
	if got := queryInt(t, ctx, r, rc, "SELECT count(*) FROM t"); got != 2 {
		t.Errorf("replica has %d rows, want 2 (the interrupted commit was already local)", got)
	}

	rc.Close(ctx)
	owner.Close(ctx)
	boss.Close(ctx)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// A given directory is kept, with the logs.
	if _, err := os.Stat(p.LogFile); err != nil {
		t.Errorf("server log of a given Dir: %v", err)
	}
}

// reachableTempDir returns a t.TempDir that the server account can reach
// when the test runs as root (t.TempDir and its parent are mode 0700).
func reachableTempDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// serverProcessesUnder lists the processes working in dir or below it.
func serverProcessesUnder(dir string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && strings.HasPrefix(cwd+"/", dir+"/") {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			found = append(found, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}

// A replica that cannot start (its port is taken) fails StartPostgres,
// which must leave nothing running.
func TestStartPostgresCleansUpAfterFailure(t *testing.T) {
	requirePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	primaryPort, err := localcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := reachableTempDir(t)
	c, err := localcluster.StartPostgres(ctx, localcluster.PostgresOptions{
		Replicas: 1,
		Dir:      dir,
		Ports:    []int{primaryPort, taken.Addr().(*net.TCPAddr).Port},
		Log:      testLog(t),
	})
	if err == nil {
		c.Stop()
		t.Fatal("StartPostgres succeeded with a replica port taken")
	}
	t.Logf("StartPostgres failed as expected: %v", err)
	if !strings.Contains(err.Error(), "pg1") {
		t.Errorf("the error does not name the failed node pg1: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(primaryPort)), time.Second); err == nil {
		conn.Close()
		t.Error("the primary still accepts connections after the failed start")
	}
	if left := serverProcessesUnder(dir); len(left) > 0 {
		t.Errorf("processes left working in %s: %v", dir, left)
	}
}

func TestStartPostgresRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	for name, opts := range map[string]localcluster.PostgresOptions{
		"sync without replicas": {Replicas: -1, Synchronous: true},
		"too many ports":        {Replicas: 1, Ports: []int{0, 0, 0}},
		"duplicate ports":       {Ports: []int{40001, 40001}},
		"reserved user":         {Users: []localcluster.User{{Name: "postgres", Password: "x"}}},
		"no password":           {Users: []localcluster.User{{Name: "u"}}},
	} {
		if c, err := localcluster.StartPostgres(ctx, opts); err == nil {
			c.Stop()
			t.Errorf("%s: no error", name)
		}
	}
}

func TestFreePort(t *testing.T) {
	port, err := localcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("FreePort returned %d, which cannot be bound: %v", port, err)
	}
	l.Close()
}
