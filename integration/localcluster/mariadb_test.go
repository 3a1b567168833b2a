package localcluster_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicedb/sluice/integration/localcluster"
)

// requireMariaDB skips the test when no MariaDB server is installed,
// except in CI, where that is a failure.
func requireMariaDB(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts MariaDB servers")
	}
	if _, err := localcluster.FindMariaDB(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// startMariaDB starts a cluster and stops it when the test ends.
func startMariaDB(t *testing.T, ctx context.Context, opts localcluster.MariaDBOptions) *localcluster.MariaDBCluster {
	t.Helper()
	opts.Log = testLog(t)
	start := time.Now()
	c, err := localcluster.StartMariaDB(ctx, opts)
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

// openMariaDB opens a connection pool on dsn and checks that it connects.
func openMariaDB(t *testing.T, ctx context.Context, n *localcluster.MariaDBNode, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("connect to %s: %v\n%s", n.Name, err, n.LogTail(20))
	}
	return db
}

func mariaInt(t *testing.T, ctx context.Context, n *localcluster.MariaDBNode, db *sql.DB, query string) int64 {
	t.Helper()
	var v int64
	if err := db.QueryRowContext(ctx, query).Scan(&v); err != nil {
		t.Fatalf("%s: %s: %v\n%s", n.Name, query, err, n.LogTail(20))
	}
	return v
}

func mariaString(t *testing.T, ctx context.Context, n *localcluster.MariaDBNode, db *sql.DB, query string) string {
	t.Helper()
	var v string
	if err := db.QueryRowContext(ctx, query).Scan(&v); err != nil {
		t.Fatalf("%s: %s: %v\n%s", n.Name, query, err, n.LogTail(20))
	}
	return v
}

// mysqlErrno returns the server error number of err, or 0.
func mysqlErrno(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// ourMariaDBProcesses lists the mariadbd processes (as `pgrep -a`
// shows them) whose command line names dir; others, such as the system's
// server, are ignored.
func ourMariaDBProcesses(t *testing.T, dir string) []string {
	t.Helper()
	out, err := exec.Command("pgrep", "-a", "mariadbd").Output()
	if err != nil && len(out) > 0 {
		t.Fatalf("pgrep: %v", err)
	}
	t.Logf("pgrep -a mariadbd:\n%s", out)
	var ours []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && strings.Contains(line, dir) {
			ours = append(ours, line)
		}
	}
	return ours
}

func TestMariaDBCluster(t *testing.T) {
	requireMariaDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	c := startMariaDB(t, ctx, localcluster.MariaDBOptions{})

	// Shape.
	nodes := c.Nodes()
	if len(nodes) != 3 || len(c.Replicas) != 2 || nodes[0] != c.Primary {
		t.Fatalf("got %d nodes, %d replicas", len(nodes), len(c.Replicas))
	}
	seen := map[int]bool{}
	for i, n := range nodes {
		if want := "mdb" + strconv.Itoa(i); n.Name != want {
			t.Errorf("node %d is named %q, want %q", i, n.Name, want)
		}
		if n.ServerID != i+1 {
			t.Errorf("%s: server id %d, want %d", n.Name, n.ServerID, i+1)
		}
		if seen[n.Port] || n.Port == 3306 || n.Port == 5432 {
			t.Errorf("%s: bad port %d", n.Name, n.Port)
		}
		seen[n.Port] = true
		if !n.Running() {
			t.Errorf("%s is not running", n.Name)
		}
		if len(n.Socket) >= 100 {
			t.Errorf("%s: socket path %s is too long", n.Name, n.Socket)
		}
		if fi, err := os.Stat(n.Socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Errorf("%s: no unix socket at %s (%v)", n.Name, n.Socket, err)
		}
	}

	// The primary: writable through the app user.
	primary := openMariaDB(t, ctx, c.Primary, c.Primary.DSN("app", "app", "app"))
	if got := mariaInt(t, ctx, c.Primary, primary, "SELECT @@read_only"); got != 0 {
		t.Errorf("%s: read_only = %d, want 0", c.Primary.Name, got)
	}
	if _, err := primary.ExecContext(ctx, "CREATE TABLE t (id int PRIMARY KEY, v varchar(32))"); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.ExecContext(ctx, "INSERT INTO t SELECT seq, concat('row ', seq) FROM seq_1_to_100"); err != nil {
		t.Fatal(err)
	}
	if db, err := sql.Open("mysql", c.Primary.DSN("app", "wrong", "app")); err != nil {
		t.Fatal(err)
	} else {
		err := db.PingContext(ctx)
		db.Close()
		if errno := mysqlErrno(err); errno != 1045 {
			t.Errorf("wrong password: got %v (error %d), want error 1045", err, errno)
		}
	}

	// Every node: same users and databases, session tracking of last_gtid.
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	binlogPos := ""
	for _, n := range nodes {
		admin := openMariaDB(t, ctx, n, n.AdminDSN(""))
		if got := mariaInt(t, ctx, n, admin, "SELECT count(*) FROM mysql.user WHERE User IN ('app', 'repl') AND Host = '%'"); got != 2 {
			t.Errorf("%s: %d of the users app and repl", n.Name, got)
		}
		if got := mariaInt(t, ctx, n, admin, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'app'"); got != 1 {
			t.Errorf("%s: database app missing", n.Name)
		}
		if got := mariaString(t, ctx, n, admin, "SELECT @@session_track_system_variables"); !strings.Contains(got, "last_gtid") {
			t.Errorf("%s: session_track_system_variables = %q, lacks last_gtid", n.Name, got)
		}
		if got := mariaString(t, ctx, n, admin, "SELECT concat_ws(',', @@log_bin, @@log_slave_updates, @@binlog_format, @@gtid_strict_mode, @@server_id)"); got != "ON,ON,ROW,ON,"+strconv.Itoa(n.ServerID) {
			t.Errorf("%s: log_bin, log_slave_updates, binlog_format, gtid_strict_mode, server_id = %s", n.Name, got)
		}
		if n == c.Primary {
			binlogPos = mariaString(t, ctx, n, admin, "SELECT @@gtid_binlog_pos")
		} else if got := mariaString(t, ctx, n, admin, "SELECT @@gtid_slave_pos"); got != binlogPos {
			t.Errorf("%s: gtid_slave_pos %q, primary's gtid_binlog_pos %q", n.Name, got, binlogPos)
		}
	}
	if !strings.HasPrefix(binlogPos, "0-1-") {
		t.Errorf("primary's gtid_binlog_pos = %q, want 0-1-N", binlogPos)
	}

	// The replicas: same data, read_only, refusing the app's writes.
	for _, r := range c.Replicas {
		db := openMariaDB(t, ctx, r, r.DSN("app", "app", "app"))
		if got := mariaInt(t, ctx, r, db, "SELECT count(*) FROM t"); got != 100 {
			t.Errorf("%s: %d rows, want 100", r.Name, got)
		}
		if got := mariaString(t, ctx, r, db, "SELECT v FROM t WHERE id = 42"); got != "row 42" {
			t.Errorf("%s: row 42 is %q", r.Name, got)
		}
		if got := mariaInt(t, ctx, r, db, "SELECT @@read_only"); got != 1 {
			t.Errorf("%s: read_only = %d, want 1", r.Name, got)
		}
		_, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1000, 'misrouted')")
		if errno := mysqlErrno(err); errno != 1290 {
			t.Errorf("%s: write on a replica: got %v (error %d), want error 1290", r.Name, err, errno)
		}
		// Without SUPER / READ_ONLY ADMIN the app cannot lift read_only.
		_, err = db.ExecContext(ctx, "SET GLOBAL read_only = 0")
		if errno := mysqlErrno(err); errno != 1227 {
			t.Errorf("%s: SET GLOBAL read_only as app: got %v (error %d), want error 1227", r.Name, err, errno)
		}
		_, err = db.ExecContext(ctx, "SET SESSION sql_log_bin = 0")
		if errno := mysqlErrno(err); errno != 1227 {
			t.Errorf("%s: SET sql_log_bin as app: got %v (error %d), want error 1227", r.Name, err, errno)
		}
	}
	grants := mariaString(t, ctx, c.Primary, primary, "SHOW GRANTS")
	for _, priv := range []string{"SUPER", "READ_ONLY ADMIN", "BINLOG ADMIN"} {
		if strings.Contains(grants, priv) {
			t.Errorf("the app user has %s: %s", priv, grants)
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
	if _, err := primary.ExecContext(ctx, "INSERT INTO t SELECT seq, concat('row ', seq) FROM seq_101_to_150"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctx); err != nil { // skips the stopped replica
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s killed, restarted and caught up in %v", r.Name, time.Since(killed).Round(time.Millisecond))
	db := openMariaDB(t, ctx, r, r.DSN("app", "app", "app"))
	if got := mariaInt(t, ctx, r, db, "SELECT count(*) FROM t"); got != 150 {
		t.Errorf("%s after restart: %d rows, want 150", r.Name, got)
	}
	if got := mariaInt(t, ctx, r, db, "SELECT @@read_only"); got != 1 {
		t.Errorf("%s after restart: read_only = %d, want 1", r.Name, got)
	}

	// Stop: everything down, the directory gone, a second Stop harmless.
	for _, db := range []*sql.DB{db, primary} {
		db.Close()
	}
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
	if left := ourMariaDBProcesses(t, c.Dir); len(left) > 0 {
		t.Errorf("mariadbd processes of this cluster left: %v", left)
	}
}

// Semi-synchronous replication, options, and promotion of a replica after
// the primary crashed.
func TestMariaDBSemiSyncPromote(t *testing.T) {
	requireMariaDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	dir := reachableTempDir(t)
	c := startMariaDB(t, ctx, localcluster.MariaDBOptions{
		Replicas:  1,
		Dir:       dir,
		SemiSync:  true,
		Users:     []localcluster.User{{Name: "owner", Password: `it's a \secret`}, {Name: "boss", Password: "b", Superuser: true}},
		Databases: []string{"one", "two"},
		ExtraConf: []string{"max_allowed_packet = 32M"},
	})
	if c.Dir != dir || len(c.Replicas) != 1 {
		t.Fatalf("Dir %s (want %s), %d replicas", c.Dir, dir, len(c.Replicas))
	}
	p, r := c.Primary, c.Replicas[0]

	owner := openMariaDB(t, ctx, p, p.DSN("owner", `it's a \secret`, "two"))
	if got := mariaInt(t, ctx, p, owner, "SELECT @@max_allowed_packet"); got != 32<<20 {
		t.Errorf("max_allowed_packet = %d, want 32M from ExtraConf", got)
	}
	if got := mariaString(t, ctx, p, owner, "SELECT concat_ws(',', @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_master_wait_point)"); got != "ON,AFTER_SYNC" {
		t.Errorf("primary: rpl_semi_sync_master_enabled, wait point = %s", got)
	}
	boss := openMariaDB(t, ctx, r, r.DSN("boss", "b", "one"))
	if got := mariaInt(t, ctx, r, boss, "SELECT @@rpl_semi_sync_slave_enabled"); got != 1 {
		t.Errorf("replica: rpl_semi_sync_slave_enabled = %d", got)
	}
	if got := mariaString(t, ctx, r, boss, "SHOW GRANTS"); !strings.Contains(got, "WITH GRANT OPTION") {
		t.Errorf("grants of the superuser boss: %s", got)
	}

	if _, err := owner.ExecContext(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	// With the only semi-synchronous replica down, a commit waits.
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := owner.ExecContext(wctx, "INSERT INTO t VALUES (1)")
	wcancel()
	if err == nil {
		t.Fatal("a commit returned with no semi-synchronous replica running")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.ExecContext(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}

	// The primary crashes; the replica has every acknowledged commit (and
	// the interrupted one, which was already in the primary's binlog).
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	if err := r.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s promoted in %v", r.Name, time.Since(promoted).Round(time.Millisecond))
	w := openMariaDB(t, ctx, r, r.DSN("owner", `it's a \secret`, "two"))
	if got := mariaInt(t, ctx, r, w, "SELECT count(*) FROM t"); got != 2 {
		t.Errorf("promoted replica has %d rows, want 2", got)
	}
	if got := mariaInt(t, ctx, r, w, "SELECT @@read_only"); got != 0 {
		t.Errorf("promoted replica: read_only = %d", got)
	}
	// It stays a primary across a restart.
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w = openMariaDB(t, ctx, r, r.DSN("owner", `it's a \secret`, "two"))
	if got := mariaString(t, ctx, r, w, "SELECT concat_ws(',', @@read_only, @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled)"); got != "OFF,ON,OFF" {
		t.Errorf("promoted replica after restart: read_only, semi-sync master, slave = %s", got)
	}
	// The old primary comes back and follows the new one, which then
	// has a semi-synchronous replica again and can commit.
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Follow(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, "INSERT INTO t VALUES (3)"); err != nil {
		t.Fatalf("write on the promoted replica: %v", err)
	}
	if got := mariaString(t, ctx, r, w, "SELECT @@gtid_binlog_pos"); !strings.HasPrefix(got, "0-2-") {
		t.Errorf("promoted replica: gtid_binlog_pos = %q, want 0-2-N", got)
	}
	old := openMariaDB(t, ctx, p, p.DSN("owner", `it's a \secret`, "two"))
	err = localclusterPoll(ctx, func() bool {
		var n int
		return old.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n) == nil && n == 3
	})
	if err != nil {
		t.Errorf("the old primary did not catch up with the promoted one: %v\n%s", err, p.LogTail(10))
	}
	if got := mariaInt(t, ctx, p, old, "SELECT @@read_only"); got != 1 {
		t.Errorf("old primary following: read_only = %d", got)
	}

	for _, db := range []*sql.DB{owner, boss, w, old} {
		db.Close()
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// A given directory is kept, with the logs.
	if _, err := os.Stat(p.LogFile); err != nil {
		t.Errorf("server log of a given Dir: %v", err)
	}
	if left := ourMariaDBProcesses(t, dir); len(left) > 0 {
		t.Errorf("mariadbd processes of this cluster left: %v", left)
	}
}

// localclusterPoll waits until cond holds or ctx ends.
func localclusterPoll(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// A replica that cannot start (its port is taken) fails StartMariaDB,
// which must leave nothing running.
func TestStartMariaDBCleansUpAfterFailure(t *testing.T) {
	requireMariaDB(t)
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
	c, err := localcluster.StartMariaDB(ctx, localcluster.MariaDBOptions{
		Replicas: 1,
		Dir:      dir,
		Ports:    []int{primaryPort, taken.Addr().(*net.TCPAddr).Port},
		Log:      testLog(t),
	})
	if err == nil {
		c.Stop()
		t.Fatal("StartMariaDB succeeded with a replica port taken")
	}
	t.Logf("StartMariaDB failed as expected: %v", err)
	if !strings.Contains(err.Error(), "mdb1") {
		t.Errorf("the error does not name the failed node mdb1: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(primaryPort)), time.Second); err == nil {
		conn.Close()
		t.Error("the primary still accepts connections after the failed start")
	}
	if left := serverProcessesUnder(dir); len(left) > 0 {
		t.Errorf("processes left working in %s: %v", dir, left)
	}
	if _, err := os.Stat(filepath.Join(dir, "mdb1", "mariadb.log")); err != nil {
		t.Errorf("the log of the failed node is gone from the given Dir: %v", err)
	}
}

func TestStartMariaDBRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	for name, opts := range map[string]localcluster.MariaDBOptions{
		"semisync without replicas": {Replicas: -1, SemiSync: true},
		"too many ports":            {Replicas: 1, Ports: []int{0, 0, 0}},
		"duplicate ports":           {Ports: []int{40001, 40001}},
		"reserved user root":        {Users: []localcluster.User{{Name: "root", Password: "x"}}},
		"reserved user repl":        {Users: []localcluster.User{{Name: "repl", Password: "x"}}},
		"no password":               {Users: []localcluster.User{{Name: "u"}}},
		"empty database name":       {Databases: []string{""}},
	} {
		if c, err := localcluster.StartMariaDB(ctx, opts); err == nil {
			c.Stop()
			t.Errorf("%s: no error", name)
		}
	}
}
