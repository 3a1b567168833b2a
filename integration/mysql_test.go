package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func myErrCode(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func myMustExec(t *testing.T, ctx context.Context, c interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := c.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func myScanInt(t *testing.T, ctx context.Context, c *sql.Conn, q string, args ...any) int64 {
	t.Helper()
	var v int64
	if err := c.QueryRowContext(ctx, q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func TestMySQLReadsOnReplicas(t *testing.T) {
	ctx := testCtx(t)
	db := myOpen(t, "my-auto", nil)
	ids := map[int64]bool{}
	for range 4 {
		c := myConn(t, db)
		if ro := myScanInt(t, ctx, c, "SELECT @@read_only"); ro != 1 {
			t.Fatalf("read ran with read_only=%d, want a replica", ro)
		}
		ids[myScanInt(t, ctx, c, "SELECT @@server_id")] = true
	}
	if len(ids) < 2 {
		t.Fatalf("reads used replicas %v, want both", ids)
	}
	c := myConn(t, db)
	if ro := myScanInt(t, ctx, c, "/* sluice:writer */ SELECT @@read_only"); ro != 0 {
		t.Fatalf("hinted read ran with read_only=%d, want the primary", ro)
	}
	if ro := myScanInt(t, ctx, c, "SELECT @@read_only FROM DUAL FOR UPDATE"); ro != 0 {
		t.Fatalf("FOR UPDATE ran with read_only=%d, want the primary", ro)
	}
}

func TestMySQLWritesAndReadYourWrites(t *testing.T) {
	ctx := testCtx(t)
	db := myOpen(t, "my-auto", nil)
	c := myConn(t, db)
	myMustExec(t, ctx, c, "CREATE TABLE IF NOT EXISTS ryw (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)")
	myMustExec(t, ctx, c, "CREATE TABLE IF NOT EXISTS ryw_load (id INT AUTO_INCREMENT PRIMARY KEY, g INT NOT NULL, v INT NOT NULL)")
	// Concurrent write load through the proxy: other sessions insert into
	// another table for the whole loop, so that replicas always have
	// something to replay and the session's GTID is never the newest.
	const loaders = 3
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loadErr := make(chan error, loaders)
	var loadRows [loaders]int
	for g := range loaders {
		lc := myConn(t, db)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := lc.ExecContext(ctx, "INSERT INTO ryw_load (g, v) VALUES (?, ?)", g, j); err != nil {
					loadErr <- fmt.Errorf("loader %d: %w", g, err)
					return
				}
				loadRows[g]++
			}
		}()
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopLoad()
	primaryID := myScanInt(t, ctx, c, "/* sluice:writer */ SELECT @@server_id")
	start := time.Now()
	onReplica := 0
	for i := range 1000 {
		myMustExec(t, ctx, c, "INSERT INTO ryw (v) VALUES (?)", i)
		var sid, n int64
		if err := c.QueryRowContext(ctx, "SELECT @@server_id, COUNT(*) FROM ryw WHERE v = ?", i).Scan(&sid, &n); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		if n < 1 {
			t.Fatalf("iteration %d: the row just inserted is not visible (server %d)", i, sid)
		}
		if sid != primaryID {
			onReplica++
		}
	}
	stopLoad()
	close(loadErr)
	for err := range loadErr {
		t.Fatal(err)
	}
	total := 0
	for _, n := range loadRows {
		total += n
	}
	if total < loaders {
		t.Fatalf("the load inserted %d rows", total)
	}
	t.Logf("1000 insert-then-select iterations in %v (%d reads on replicas) under %d concurrent inserts",
		time.Since(start).Round(time.Millisecond), onReplica, total)
	// Once the replicas have replayed the session's last write, its reads
	// go back to them (and still see the write). (MariaDB reports
	// @@read_only=0 in a query that reads an InnoDB table even on a
	// read_only replica: compare server ids instead.)
	myMustExec(t, ctx, c, "INSERT INTO ryw (v) VALUES (-1)")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var sid, n int64
		if err := c.QueryRowContext(ctx, "SELECT @@server_id, COUNT(*) FROM ryw WHERE v = -1").Scan(&sid, &n); err != nil {
			t.Fatal(err)
		}
		if n < 1 {
			t.Fatalf("read on server %d does not see the session's write", sid)
		}
		if sid != primaryID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reads never returned to a replica after the write replicated")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The rows are on the primary.
	var n int64
	e := mysqlEnv(t)
	pdb := myOpenDSN(t, e.cluster.Primary.AdminDSN("app"))
	if err := pdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM ryw").Scan(&n); err != nil || n < 1000 {
		t.Fatalf("primary has %d rows (%v), want ≥ 1000", n, err)
	}
}

func TestMySQLTransactionsStayOnOneBackend(t *testing.T) {
	ctx := testCtx(t)
	db := myOpen(t, "my-auto", nil)
	c := myConn(t, db)
	myMustExec(t, ctx, c, "CREATE TABLE IF NOT EXISTS txt (id INT PRIMARY KEY)")
	myMustExec(t, ctx, c, "BEGIN")
	if ro := myScanInt(t, ctx, c, "SELECT @@read_only"); ro != 0 {
		t.Fatal("a read inside BEGIN left the primary")
	}
	myMustExec(t, ctx, c, "INSERT INTO txt VALUES (1) ON DUPLICATE KEY UPDATE id = id")
	if ro := myScanInt(t, ctx, c, "SELECT @@read_only"); ro != 0 {
		t.Fatal("a read inside the transaction left the primary")
	}
	myMustExec(t, ctx, c, "COMMIT")

	c2 := myConn(t, db)
	myMustExec(t, ctx, c2, "START TRANSACTION READ ONLY")
	sid := myScanInt(t, ctx, c2, "SELECT @@server_id")
	for range 5 {
		if ro := myScanInt(t, ctx, c2, "SELECT @@read_only"); ro != 1 {
			t.Fatal("a read-only transaction left the replica")
		}
		if s := myScanInt(t, ctx, c2, "SELECT @@server_id"); s != sid {
			t.Fatal("a read-only transaction moved between replicas")
		}
	}
	myMustExec(t, ctx, c2, "COMMIT")

	// autocommit=0 keeps every statement on the primary until it is back on.
	c3 := myConn(t, db)
	myMustExec(t, ctx, c3, "SET autocommit = 0")
	for range 3 {
		if ro := myScanInt(t, ctx, c3, "SELECT @@read_only"); ro != 0 {
			t.Fatal("a read with autocommit=0 left the primary")
		}
	}
	myMustExec(t, ctx, c3, "COMMIT")
	if ro := myScanInt(t, ctx, c3, "SELECT @@read_only"); ro != 0 {
		t.Fatal("a read with autocommit=0 after COMMIT left the primary")
	}
	myMustExec(t, ctx, c3, "SET autocommit = 1")
	if ro := myScanInt(t, ctx, c3, "SELECT @@read_only"); ro != 1 {
		t.Fatal("after autocommit=1 the read did not go to a replica")
	}
	if v := myScanInt(t, ctx, c3, "SELECT @@autocommit"); v != 1 {
		t.Fatalf("replica has autocommit=%d, want the replayed 1", v)
	}
}

func TestMySQLSessionStateReplayed(t *testing.T) {
	ctx := testCtx(t)
	db := myOpen(t, "my-auto", nil)
	c := myConn(t, db)
	myMustExec(t, ctx, c, "SET SESSION sql_mode = 'ANSI_QUOTES'")
	var mode string
	if err := c.QueryRowContext(ctx, "SELECT @@sql_mode").Scan(&mode); err != nil || mode != "ANSI_QUOTES" {
		t.Fatalf("sql_mode on the replica = %q (%v)", mode, err)
	}
	// USE is replayed too.
	myMustExec(t, ctx, c, "USE mysql")
	var cur string
	if err := c.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&cur); err != nil || cur != "mysql" {
		t.Fatalf("DATABASE() = %q (%v)", cur, err)
	}
	// A user variable pins the session to the primary.
	myMustExec(t, ctx, c, "SET @x = 42")
	if v := myScanInt(t, ctx, c, "SELECT @x"); v != 42 {
		t.Fatalf("@x = %d, want 42", v)
	}
	if ro := myScanInt(t, ctx, c, "SELECT @@read_only"); ro != 0 {
		t.Fatal("pinned session read from a replica")
	}
}

func TestMySQLEndpoints(t *testing.T) {
	ctx := testCtx(t)
	w := myConn(t, myOpen(t, "my-writer", nil))
	if ro := myScanInt(t, ctx, w, "SELECT @@read_only"); ro != 0 {
		t.Fatal("writer endpoint read from a replica")
	}
	r := myConn(t, myOpen(t, "my-reader", nil))
	if ro := myScanInt(t, ctx, r, "SELECT @@read_only"); ro != 1 {
		t.Fatal("reader endpoint read from the primary")
	}
	_, err := r.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS nope (id INT)")
	if code := myErrCode(err); code != 1290 {
		t.Fatalf("write on the reader endpoint: %v, want error 1290", err)
	}
}

func TestMySQLPreparedStatements(t *testing.T) {
	ctx := testCtx(t)
	db := myOpen(t, "my-auto", nil)
	c := myConn(t, db)
	myMustExec(t, ctx, c, "CREATE TABLE IF NOT EXISTS ps (id INT PRIMARY KEY, s VARCHAR(50))")
	myMustExec(t, ctx, c, "DELETE FROM ps")
	sel, err := c.PrepareContext(ctx, "SELECT ? + 1, CONCAT('x', ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	ins, err := c.PrepareContext(ctx, "INSERT INTO ps VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	get, err := c.PrepareContext(ctx, "SELECT s FROM ps WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer get.Close()
	for i := range 300 {
		var n int64
		var s string
		if err := sel.QueryRowContext(ctx, i, fmt.Sprint(i)).Scan(&n, &s); err != nil || n != int64(i+1) || s != fmt.Sprint("x", i) {
			t.Fatalf("select %d: %d %q %v", i, n, s, err)
		}
		if i%3 == 0 {
			if _, err := ins.ExecContext(ctx, i, fmt.Sprint("v", i)); err != nil {
				t.Fatalf("insert %d: %v", i, err)
			}
			if err := get.QueryRowContext(ctx, i).Scan(&s); err != nil || s != fmt.Sprint("v", i) {
				t.Fatalf("get %d: %q %v", i, s, err)
			}
		}
	}
}

func TestMySQLLargeResult(t *testing.T) {
	ctx := testCtx(t)
	db := myOpen(t, "my-auto", nil)
	c := myConn(t, db)
	for _, prepared := range []bool{false, true} {
		q := "SELECT seq, REPEAT('x', seq % 50) FROM seq_1_to_100000"
		var rows *sql.Rows
		var err error
		if prepared {
			rows, err = c.QueryContext(ctx, q+" WHERE seq > ?", 0)
		} else {
			rows, err = c.QueryContext(ctx, q)
		}
		if err != nil {
			t.Fatal(err)
		}
		var sum, n, chars int64
		for rows.Next() {
			var v int64
			var s string
			if err := rows.Scan(&v, &s); err != nil {
				t.Fatal(err)
			}
			sum += v
			chars += int64(len(s))
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		var wantChars int64
		for i := int64(1); i <= 100000; i++ {
			wantChars += i % 50
		}
		if n != 100000 || sum != 5000050000 || chars != wantChars {
			t.Fatalf("prepared=%v: %d rows, sum %d, chars %d", prepared, n, sum, chars)
		}
	}
}

func TestMySQLMultiStatements(t *testing.T) {
	ctx := testCtx(t)
	db := myOpen(t, "my-auto", func(c *mysql.Config) { c.MultiStatements = true })
	c := myConn(t, db)
	rows, err := c.QueryContext(ctx, "SELECT 1; SELECT 2, 3; DO 0; SELECT 4")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprint(vals...))
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if strings.Join(got, "|") != "[49]|[50] [51]|[52]" && strings.Join(got, "|") != "1|2 3|4" {
		t.Fatalf("results %q", got)
	}
	// The session still works after the multi-result response.
	if v := myScanInt(t, ctx, c, "SELECT 7"); v != 7 {
		t.Fatal(v)
	}
}

func TestMySQLKillQuery(t *testing.T) {
	ctx := testCtx(t)
	db := myOpen(t, "my-auto", nil)
	victim := myConn(t, db)
	id := myScanInt(t, ctx, victim, "SELECT CONNECTION_ID()")
	killer := myConn(t, db)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		var v int64
		done <- victim.QueryRowContext(ctx, "SELECT SLEEP(10)").Scan(&v)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case err := <-done:
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("SLEEP(10) ended after %v (%v)", el, err)
			}
			if v := myScanInt(t, ctx, victim, "SELECT 1"); v != 1 {
				t.Fatal("session unusable after KILL QUERY")
			}
			// KILL <id> ends the session; unknown ids are refused.
			myMustExec(t, ctx, killer, fmt.Sprintf("KILL %d", id))
			var v int64
			if err := victim.QueryRowContext(ctx, "SELECT 1").Scan(&v); err == nil {
				t.Fatal("session still works after KILL CONNECTION")
			}
			if _, err := killer.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); myErrCode(err) != 1094 {
				t.Fatalf("KILL of a finished session: %v, want 1094", err)
			}
			return
		case <-tick.C:
			if _, err := killer.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id)); err != nil {
				t.Fatalf("KILL QUERY: %v", err)
			}
		}
	}
}

func TestMySQLAuth(t *testing.T) {
	ctx := testCtx(t)
	for _, l := range []string{"my-auto", "my-native"} {
		db, err := sql.Open("mysql", myDSN(t, l, "app", "wrong", "app", nil))
		if err != nil {
			t.Fatal(err)
		}
		err = db.PingContext(ctx)
		db.Close()
		if myErrCode(err) != 1045 {
			t.Fatalf("%s: wrong password: %v, want 1045", l, err)
		}
		db, _ = sql.Open("mysql", myDSN(t, l, "app", "app", "nosuchdb", nil))
		err = db.PingContext(ctx)
		db.Close()
		if myErrCode(err) != 1049 {
			t.Fatalf("%s: unknown database: %v, want 1049", l, err)
		}
		good := myOpen(t, l, nil)
		if err := good.PingContext(ctx); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
}

func TestMySQLCLI(t *testing.T) {
	e := mysqlEnv(t)
	cli, err := exec.LookPath("mariadb")
	if err != nil {
		t.Skip("no mariadb CLI")
	}
	for _, l := range []string{"my-native", "my-auto"} {
		a := e.proxy.Addr(l).String()
		host, port, _ := strings.Cut(a, ":")
		out, err := exec.CommandContext(testCtx(t), cli, "--protocol=tcp", "-h", host, "-P", port, "-uapp", "-papp", "-N", "-B",
			"--ssl=0", "app", "-e", "SELECT @@read_only; SELECT 1+1; CREATE TEMPORARY TABLE tt (i INT); INSERT INTO tt VALUES (5); SELECT i FROM tt").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", l, err, out)
		}
		if got := strings.Fields(string(out)); strings.Join(got, ",") != "1,2,5" {
			t.Fatalf("%s: output %q", l, out)
		}
		// The CLI's "use" sends COM_INIT_DB; the database is replayed on
		// the backends the session uses next.
		out, err = exec.CommandContext(testCtx(t), cli, "--protocol=tcp", "-h", host, "-P", port, "-uapp", "-papp", "-N", "-B",
			"--ssl=0", "app", "-e", "use mysql; SELECT DATABASE(); SELECT /* sluice:writer */ DATABASE()").CombinedOutput()
		if err != nil || strings.Join(strings.Fields(string(out)), ",") != "mysql,mysql" {
			t.Fatalf("%s: use: %v %q", l, err, out)
		}
	}
	// A client that answers the handshake with another plugin is switched
	// to the listener's (AuthSwitchRequest).
	for l, plugin := range map[string]string{"my-auto": "mysql_native_password", "my-native": "caching_sha2_password"} {
		host, port, _ := strings.Cut(e.proxy.Addr(l).String(), ":")
		out, err := exec.CommandContext(testCtx(t), cli, "--protocol=tcp", "-h", host, "-P", port, "-uapp", "-papp", "-N", "-B",
			"--ssl=0", "--default-auth="+plugin, "app", "-e", "SELECT 6*7").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "42" {
			t.Fatalf("%s with %s: %v %q", l, plugin, err, out)
		}
	}
	// LOAD DATA LOCAL is not offered: a clear error, and the session lives on.
	a := e.proxy.Addr("my-auto").String()
	host, port, _ := strings.Cut(a, ":")
	out, err := exec.CommandContext(testCtx(t), cli, "--protocol=tcp", "-h", host, "-P", port, "-uapp", "-papp", "--ssl=0", "--local-infile=1",
		"app", "-e", "CREATE TABLE IF NOT EXISTS li (s TEXT); LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE li").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "local infile") {
		t.Fatalf("LOAD DATA LOCAL: %v %q", err, out)
	}
}

func TestMySQLTLS(t *testing.T) {
	ctx := testCtx(t)
	tlsOn := func(c *mysql.Config) { c.TLSConfig = "skip-verify" }
	c := myConn(t, myOpen(t, "my-tls", tlsOn))
	if ro := myScanInt(t, ctx, c, "SELECT @@read_only"); ro != 1 {
		t.Fatal("TLS session did not read from a replica")
	}
	// TLS is optional on the listener.
	plain := myConn(t, myOpen(t, "my-tls", nil))
	if v := myScanInt(t, ctx, plain, "SELECT 3"); v != 3 {
		t.Fatal(v)
	}
	// A wrong password over TLS goes through caching_sha2_password's full
	// authentication (the password in clear) and is refused.
	db, _ := sql.Open("mysql", myDSN(t, "my-tls", "app", "wrong", "app", tlsOn))
	err := db.PingContext(ctx)
	db.Close()
	if myErrCode(err) != 1045 {
		t.Fatalf("wrong password over TLS: %v, want 1045", err)
	}
}

func TestMySQLOversizedPacket(t *testing.T) {
	ctx := testCtx(t)
	c := myConn(t, myOpen(t, "my-auto", nil))
	q := "SELECT '" + strings.Repeat("x", 2<<20) + "'"
	_, err := c.ExecContext(ctx, q)
	if myErrCode(err) != 1153 {
		t.Fatalf("2 MiB packet on a 1 MiB limit: %v, want 1153", err)
	}
}

func TestMySQLDiagnostics(t *testing.T) {
	ctx := testCtx(t)
	c := myConn(t, myOpen(t, "my-auto", nil))
	countWarnings := func() int {
		t.Helper()
		rows, err := c.QueryContext(ctx, "SHOW WARNINGS")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
		}
		return n
	}
	myMustExec(t, ctx, c, "CREATE TABLE IF NOT EXISTS diag (id INT PRIMARY KEY)")
	myMustExec(t, ctx, c, "DELETE FROM diag")
	myMustExec(t, ctx, c, "INSERT INTO diag VALUES (1), (2)")
	if n := myScanInt(t, ctx, c, "SELECT ROW_COUNT()"); n != 2 {
		t.Fatalf("ROW_COUNT() after a 2-row insert = %d", n)
	}
	myMustExec(t, ctx, c, "INSERT IGNORE INTO diag VALUES (1)")
	if n := countWarnings(); n != 1 {
		t.Fatalf("SHOW WARNINGS after a duplicate INSERT IGNORE: %d rows, want 1", n)
	}
	// A warning of a read on a replica is shown too.
	fresh := myConn(t, myOpen(t, "my-auto", nil))
	var v int64
	if err := fresh.QueryRowContext(ctx, "SELECT CAST('12x' AS SIGNED)").Scan(&v); err != nil {
		t.Fatal(err)
	}
	rows, err := fresh.QueryContext(ctx, "SHOW WARNINGS")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if n != 1 {
		t.Fatalf("SHOW WARNINGS after a read with a warning: %d rows, want 1", n)
	}
}
