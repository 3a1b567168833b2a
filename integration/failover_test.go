package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/admin"
	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/integration/faultnet"
	"github.com/sluicedb/sluice/integration/localcluster"
	"github.com/sluicedb/sluice/proxy"
)

// End-to-end failover: a fleet of three Sluice instances in front of a
// cluster of its own, under write and read load, when the primary dies,
// when one instance is cut off from it, and when the instance that sees it
// die is alone.

// failoverTable holds the rows of every load writer: inst is the writer
// (its instance's member name, or a test session), id its sequence number.
const failoverTable = "fo_rows"

// ---- PostgreSQL helpers ----

// startFailoverPG starts a primary with two replicas (synchronous: every
// commit waits for one replica), the users app and the superuser
// promoteUser, and the table failoverTable.
func startFailoverPG(t *testing.T, ctx context.Context, synchronous bool) *localcluster.PostgresCluster {
	t.Helper()
	t0 := time.Now()
	c, err := localcluster.StartPostgres(ctx, localcluster.PostgresOptions{
		Replicas:    2,
		Synchronous: synchronous,
		Users: []localcluster.User{
			{Name: "app", Password: "app"},
			{Name: promoteUser, Password: promotePassword, Superuser: true},
		},
		Databases: []string{"app"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	conn, err := pgx.Connect(ctx, c.Primary.DSN("app", "app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE "+failoverTable+" (inst text NOT NULL, id bigint NOT NULL, PRIMARY KEY (inst, id))"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL cluster started in %v", time.Since(t0).Round(time.Millisecond))
	return c
}

func pgFleetBackends(c *localcluster.PostgresCluster) []fleetBackend {
	var bs []fleetBackend
	for _, n := range c.Nodes() {
		bs = append(bs, fleetBackend{Name: n.Name, Addr: n.Addr()})
	}
	return bs
}

// pgNode returns the node called name.
func pgNode(t *testing.T, c *localcluster.PostgresCluster, name string) *localcluster.PostgresNode {
	t.Helper()
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %q", name)
	return nil
}

// fleetPGDSN is the DSN of user app on database app through a listener.
func fleetPGDSN(t *testing.T, p *proxy.Proxy, listener string) string {
	t.Helper()
	a := p.Addr(listener)
	if a == nil {
		t.Fatalf("no listener %q", listener)
	}
	return fmt.Sprintf("postgres://app:app@%s/app?sslmode=disable&connect_timeout=10", a)
}

// pgLoadWriter inserts rows (inst, 1), (inst, 2), … through the auto
// listener of p, over one connection (opened again when it closes).
func pgLoadWriter(t *testing.T, p *proxy.Proxy, inst string) *loadWriter {
	dsn := fleetPGDSN(t, p, "auto")
	var conn *pgx.Conn
	return startLoadWriter(t, inst, func(ctx context.Context, id int64) error {
		if conn == nil || conn.IsClosed() {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			conn = c
		}
		_, err := conn.Exec(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ($1, $2)", inst, id)
		return err
	}, func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	})
}

// pgLoadReader reads through the reader listener of p over one connection.
func pgLoadReader(t *testing.T, p *proxy.Proxy, inst string) *loadReader {
	dsn := fleetPGDSN(t, p, "reader")
	var conn *pgx.Conn
	return startLoadReader(t, inst, func(ctx context.Context) error {
		if conn == nil || conn.IsClosed() {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			conn = c
		}
		var n int64
		var rec bool
		if err := conn.QueryRow(ctx, "SELECT count(*), pg_is_in_recovery() FROM "+failoverTable).Scan(&n, &rec); err != nil {
			return err
		}
		if !rec {
			return fmt.Errorf("%w: %s is not in recovery", errOffReplica, conn.PgConn().Conn().RemoteAddr())
		}
		return nil
	}, func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	})
}

// pgCheckAcked asserts that every row each writer had acknowledged is on
// the server of dsn.
func pgCheckAcked(t *testing.T, ctx context.Context, where, dsn string, ws []*loadWriter) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, w := range ws {
		acked, fails, _ := w.snapshot()
		rows, err := conn.Query(ctx, "SELECT id FROM "+failoverTable+" WHERE inst = $1", w.name)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		checkAcked(t, where, w.name, acked, fails, ids)
	}
}

// checkAcked compares the acknowledged ids with the ids present.
func checkAcked(t *testing.T, where, inst string, acked []int64, fails int, present []int64) {
	t.Helper()
	have := make(map[int64]bool, len(present))
	for _, id := range present {
		have[id] = true
	}
	var missing []int64
	for _, id := range acked {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	extra := len(present) - (len(acked) - len(missing))
	t.Logf("%s: writer %s: %d rows acknowledged, all but %d on %s; %d failed statements, %d unacknowledged rows committed anyway", where, inst, len(acked), len(missing), where, fails, extra)
	if len(missing) > 0 {
		t.Errorf("%s: %d acknowledged rows of writer %s are missing: %v", where, len(missing), inst, head(missing, 20))
	}
}

func head[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// pgCount counts the rows of failoverTable on conn.
func pgCount(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, "SELECT count(*) FROM "+failoverTable).Scan(&n)
	return n, err
}

// waitFailedOver waits until every running instance has moved past epoch0
// to the same epoch and the same writer (not old), writable, with old
// down, and returns that epoch and writer.
func waitFailedOver(t *testing.T, ctx context.Context, f *testFleet, epoch0 uint64, old string) (uint64, string) {
	t.Helper()
	var epoch uint64
	var writer string
	d := f.waitAll(ctx, 60*time.Second, "every instance agrees on the new writer", func(i int, st proxy.Status) error {
		cs := st.Clusters[0]
		if i == 0 {
			epoch, writer = cs.Epoch, cs.Writer
		}
		if cs.Epoch <= epoch0 || cs.Writer == old || cs.Writer == "" {
			return fmt.Errorf("epoch %d writer %q (decision %q)", cs.Epoch, cs.Writer, cs.Failover.Decision)
		}
		if cs.Epoch != epoch || cs.Writer != writer {
			return fmt.Errorf("epoch %d writer %q, but %s has epoch %d writer %q", cs.Epoch, cs.Writer, f.insts[0].Name, epoch, writer)
		}
		if !cs.Writable {
			return fmt.Errorf("writer %s not writable (held %q)", cs.Writer, cs.Held)
		}
		if b, _ := backendStatus(cs, old); b.Healthy {
			return fmt.Errorf("old writer %s is healthy (%s)", old, b.State)
		}
		return nil
	})
	t.Logf("every instance at epoch %d with writer %s (%v after the writes resumed)", epoch, writer, d.Round(time.Millisecond))
	for i := range f.insts {
		// Checked apart from the wait: the dead old writer must be shown
		// down, not fenced (it accepts nothing).
		if b, _ := backendStatus(f.status(i), old); b.State != "down" {
			t.Errorf("%s: the dead old writer %s has state %q (role %s, healthy %v, last error %q), want down", f.insts[i].Name, old, b.State, b.Role, b.Healthy, b.LastError)
		}
	}
	failovers := 0
	for i := range f.insts {
		fs := f.status(i).Failover
		failovers += fs.Failovers
		t.Logf("%s: failovers %d, decision: %s", f.insts[i].Name, fs.Failovers, fs.Decision)
	}
	if failovers != 1 {
		t.Errorf("the fleet decided %d failovers, want 1", failovers)
	}
	return epoch, writer
}

// waitFenced waits until every running instance reports backend name as
// fenced while epoch and writer stay.
func waitFenced(t *testing.T, ctx context.Context, f *testFleet, name string, epoch uint64, writer string) {
	t.Helper()
	d := f.waitAll(ctx, 60*time.Second, "every instance reports the restarted old writer fenced", func(_ int, st proxy.Status) error {
		cs := st.Clusters[0]
		if cs.Epoch != epoch || cs.Writer != writer || !cs.Writable {
			return fmt.Errorf("epoch %d writer %q writable %v, want epoch %d writer %q", cs.Epoch, cs.Writer, cs.Writable, epoch, writer)
		}
		b, _ := backendStatus(cs, name)
		if b.State != "fenced" || !b.Healthy || b.Role != "writer" {
			return fmt.Errorf("%s is %s (role %s, healthy %v), want fenced, healthy, writer", name, b.State, b.Role, b.Healthy)
		}
		return nil
	})
	t.Logf("every instance reports %s fenced, %v after its restart", name, d.Round(time.Millisecond))
}

// logReaders logs the readers' results and reports failed reads. Reads
// answered by the promoted replica in the moment between its promotion and
// the instance's next topology are logged, not failed: the data is right.
func logReaders(t *testing.T, rs []*loadReader, killAt time.Time) {
	t.Helper()
	for _, r := range rs {
		ok, fails, errs := r.result()
		t.Logf("reader %s: %d reads, %d failed %v", r.name, ok, fails, errs)
		if n, first, last, msg := r.offReplica(); n > 0 {
			t.Logf("reader %s: %d reads answered by a server that is not a replica, %v to %v after the kill (first: %s)", r.name, n, first.Sub(killAt).Round(time.Millisecond), last.Sub(killAt).Round(time.Millisecond), msg)
		}
		if ok == 0 {
			t.Errorf("reader %s: no read succeeded", r.name)
		}
		if fails > 0 {
			t.Errorf("reader %s: %d reads through the reader listener failed although the replicas stayed up: %s", r.name, fails, strings.Join(errs, "; "))
		}
	}
}

func TestFailoverPostgresKillPrimary(t *testing.T) {
	requirePostgres(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := startFailoverPG(t, ctx, true)
	f := startFleet(t, ctx, fleetSpec{Protocol: config.ProtocolPostgres, Backends: pgFleetBackends(c)})
	old := c.Primary.Name
	epoch0 := f.status(0).Epoch

	// A session idle during the failover, and one with a transaction open
	// on the old writer.
	idle, err := pgx.Connect(ctx, fleetPGDSN(t, f.insts[0].P, "auto"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(context.Background())
	txc, err := pgx.Connect(ctx, fleetPGDSN(t, f.insts[1].P, "auto"))
	if err != nil {
		t.Fatal(err)
	}
	defer txc.Close(context.Background())
	if _, err := txc.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := txc.Exec(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('tx', 1)"); err != nil {
		t.Fatal(err)
	}

	var ws []*loadWriter
	var rs []*loadReader
	for _, in := range f.insts {
		ws = append(ws, pgLoadWriter(t, in.P, in.Name))
		rs = append(rs, pgLoadReader(t, in.P, in.Name))
	}
	waitAcked(t, ctx, 30*time.Second, "writes before the kill", ws, nil, 20, nil)

	killAt := time.Now()
	if err := c.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	atKill := counts(ws)
	t.Logf("killed %s with %v rows acknowledged", old, atKill)
	d := waitAcked(t, ctx, 60*time.Second, "writes resume through every instance", ws, atKill, 10, nil)
	t.Logf("writes resumed through every instance %v after the kill", d.Round(time.Millisecond))
	for _, w := range ws {
		n, longest, last := w.failuresSince(killAt)
		t.Logf("writer %s: %d failed statements since the kill (longest %v), last error: %s", w.name, n, longest.Round(time.Millisecond), last)
	}
	epoch, writer := waitFailedOver(t, ctx, f, epoch0, old)
	newWriter := pgNode(t, c, writer)

	// The transaction open on the dead writer is reported lost (08006) and
	// kept failed until ROLLBACK; then the session works.
	_, err = txc.Exec(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('tx', 2)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "08006" {
		t.Errorf("statement in the transaction open on the dead writer: %v, want SQLSTATE 08006", err)
	} else {
		t.Logf("interrupted transaction: %v", err)
	}
	if _, err := txc.Exec(ctx, "ROLLBACK"); err != nil {
		t.Errorf("ROLLBACK after the lost transaction: %v", err)
	}
	if _, err := txc.Exec(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('tx', 3)"); err != nil {
		t.Errorf("write after ROLLBACK: %v", err)
	}
	// The idle session works.
	if _, err := idle.Exec(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('idle', 1)"); err != nil {
		t.Errorf("write on the session idle during the failover: %v", err)
	}
	var n int64
	if err := idle.QueryRow(ctx, "SELECT count(*) FROM "+failoverTable+" WHERE inst = 'idle'").Scan(&n); err != nil || n != 1 {
		t.Errorf("read-your-write on the idle session: %d rows, %v", n, err)
	}

	// The old primary comes back as a writer (its synchronous standbys
	// turned off, so that a write sent to it would commit): it must be
	// fenced, and nothing written through Sluice may land on it.
	restartAt := time.Now()
	if err := c.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	oc, err := pgx.Connect(ctx, c.Primary.AdminDSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close(context.Background())
	for _, q := range []string{"ALTER SYSTEM SET synchronous_standby_names = ''", "SELECT pg_reload_conf()"} {
		if _, err := oc.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s restarted in %v", old, time.Since(restartAt).Round(time.Millisecond))
	waitFenced(t, ctx, f, old, epoch, writer)
	base, err := pgCount(ctx, oc)
	if err != nil {
		t.Fatal(err)
	}
	before := counts(ws)
	waitAcked(t, ctx, 30*time.Second, "writes continue with the old writer back", ws, before, 30, func() error {
		n, err := pgCount(ctx, oc)
		if err != nil {
			return err
		}
		if n != base {
			return fmt.Errorf("the fenced old writer %s went from %d to %d rows", old, base, n)
		}
		return nil
	})
	for _, w := range ws {
		w.stop()
	}
	for _, r := range rs {
		r.stop()
	}
	if n, err := pgCount(ctx, oc); err != nil || n != base {
		t.Errorf("fenced %s: %d rows (%v), %d at its restart", old, n, err, base)
	}

	pgCheckAcked(t, ctx, writer, newWriter.AdminDSN("app"), ws)
	wc, err := pgx.Connect(ctx, newWriter.AdminDSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close(context.Background())
	rows, err := wc.Query(ctx, "SELECT inst || ':' || id FROM "+failoverTable+" WHERE inst IN ('tx', 'idle') ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"idle:1", "tx:3"}; !slices.Equal(got, want) {
		t.Errorf("session rows on the new writer: %v, want %v", got, want)
	}
	logReaders(t, rs, killAt)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// ---- MariaDB ----

// startFailoverMariaDB starts a semi-synchronous primary with two
// replicas, the users app and the superuser promoteUser, and the table
// failoverTable.
func startFailoverMariaDB(t *testing.T, ctx context.Context) *localcluster.MariaDBCluster {
	t.Helper()
	t0 := time.Now()
	c, err := localcluster.StartMariaDB(ctx, localcluster.MariaDBOptions{
		Replicas: 2,
		SemiSync: true,
		Users: []localcluster.User{
			{Name: "app", Password: "app"},
			{Name: promoteUser, Password: promotePassword, Superuser: true},
		},
		Databases: []string{"app"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	db := openMyDSN(t, c.Primary.DSN("app", "app", "app"))
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+failoverTable+" (inst VARCHAR(20) NOT NULL, id BIGINT NOT NULL, PRIMARY KEY (inst, id)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("MariaDB cluster started in %v", time.Since(t0).Round(time.Millisecond))
	return c
}

// openMyDSN opens a pool of at most one connection.
func openMyDSN(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db := myOpenDSN(t, dsn)
	db.SetMaxOpenConns(1)
	return db
}

// fleetMyDSN is the DSN of user app on database app through a listener.
func fleetMyDSN(t *testing.T, p *proxy.Proxy, listener string) string {
	t.Helper()
	a := p.Addr(listener)
	if a == nil {
		t.Fatalf("no listener %q", listener)
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = a.String()
	cfg.User, cfg.Passwd, cfg.DBName = "app", "app", "app"
	cfg.InterpolateParams = true
	cfg.AllowNativePasswords = true
	cfg.Timeout = 10 * time.Second
	return cfg.FormatDSN()
}

func myLoadWriter(t *testing.T, p *proxy.Proxy, inst string) *loadWriter {
	db := openMyDSN(t, fleetMyDSN(t, p, "auto"))
	return startLoadWriter(t, inst, func(ctx context.Context, id int64) error {
		_, err := db.ExecContext(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES (?, ?)", inst, id)
		return err
	}, nil)
}

func myLoadReader(t *testing.T, p *proxy.Proxy, inst string) *loadReader {
	db := openMyDSN(t, fleetMyDSN(t, p, "reader"))
	return startLoadReader(t, inst, func(ctx context.Context) error {
		var n, ro, port int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+failoverTable).Scan(&n); err != nil {
			return err
		}
		// Not in the statement above: MariaDB answers @@GLOBAL.read_only
		// with 0 on a replica in a statement that reads a table.
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only, @@port").Scan(&ro, &port); err != nil {
			return err
		}
		if ro == 0 {
			return fmt.Errorf("%w: port %d is not read_only", errOffReplica, port)
		}
		return nil
	}, nil)
}

func myCheckAcked(t *testing.T, ctx context.Context, where string, db *sql.DB, ws []*loadWriter) {
	t.Helper()
	for _, w := range ws {
		acked, fails, _ := w.snapshot()
		rows, err := db.QueryContext(ctx, "SELECT id FROM "+failoverTable+" WHERE inst = ?", w.name)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		checkAcked(t, where, w.name, acked, fails, ids)
	}
}

func myCount(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+failoverTable).Scan(&n)
	return n, err
}

func TestFailoverMariaDBKillPrimary(t *testing.T) {
	requireMariaDB(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := startFailoverMariaDB(t, ctx)
	var bs []fleetBackend
	for _, n := range c.Nodes() {
		bs = append(bs, fleetBackend{Name: n.Name, Addr: n.Addr()})
	}
	t.Logf("backends: %v", bs)
	f := startFleet(t, ctx, fleetSpec{Protocol: config.ProtocolMySQL, Backends: bs})
	old := c.Primary.Name
	epoch0 := f.status(0).Epoch

	idlePool := openMyDSN(t, fleetMyDSN(t, f.insts[0].P, "auto"))
	idle, err := idlePool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := idle.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	txPool := openMyDSN(t, fleetMyDSN(t, f.insts[1].P, "auto"))
	txc, err := txPool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txc.Close()
	if _, err := txc.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := txc.ExecContext(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('tx', 1)"); err != nil {
		t.Fatal(err)
	}

	var ws []*loadWriter
	var rs []*loadReader
	for _, in := range f.insts {
		ws = append(ws, myLoadWriter(t, in.P, in.Name))
		rs = append(rs, myLoadReader(t, in.P, in.Name))
	}
	waitAcked(t, ctx, 30*time.Second, "writes before the kill", ws, nil, 20, nil)

	killAt := time.Now()
	if err := c.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	atKill := counts(ws)
	t.Logf("killed %s with %v rows acknowledged", old, atKill)
	d := waitAcked(t, ctx, 60*time.Second, "writes resume through every instance", ws, atKill, 10, nil)
	t.Logf("writes resumed through every instance %v after the kill", d.Round(time.Millisecond))
	for _, w := range ws {
		n, longest, last := w.failuresSince(killAt)
		t.Logf("writer %s: %d failed statements since the kill (longest %v), last error: %s", w.name, n, longest.Round(time.Millisecond), last)
	}
	epoch, writer := waitFailedOver(t, ctx, f, epoch0, old)
	var newWriter *localcluster.MariaDBNode
	for _, n := range c.Nodes() {
		if n.Name == writer {
			newWriter = n
		}
	}

	// The transaction open on the dead writer fails with 2013 (lost
	// connection); the session stays usable.
	_, err = txc.ExecContext(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('tx', 2)")
	var myErr *mysql.MySQLError
	if !errors.As(err, &myErr) || myErr.Number != 2013 {
		t.Errorf("statement in the transaction open on the dead writer: %v, want MySQL error 2013", err)
	} else {
		t.Logf("interrupted transaction: %v", err)
	}
	if _, err := txc.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Errorf("ROLLBACK after the lost transaction: %v", err)
	}
	if _, err := txc.ExecContext(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('tx', 3)"); err != nil {
		t.Errorf("write after the lost transaction: %v", err)
	}
	if _, err := idle.ExecContext(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('idle', 1)"); err != nil {
		t.Errorf("write on the session idle during the failover: %v", err)
	}
	var n int64
	if err := idle.QueryRowContext(ctx, "SELECT count(*) FROM "+failoverTable+" WHERE inst = 'idle'").Scan(&n); err != nil || n != 1 {
		t.Errorf("read-your-write on the idle session: %d rows, %v", n, err)
	}

	// The old primary comes back writable (semi-sync off, so that a write
	// sent to it would commit at once): fenced, and it gets no rows.
	restartAt := time.Now()
	if err := c.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	odb := openMyDSN(t, c.Primary.AdminDSN("app"))
	if _, err := odb.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled = OFF"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s restarted in %v", old, time.Since(restartAt).Round(time.Millisecond))
	waitFenced(t, ctx, f, old, epoch, writer)
	base, err := myCount(ctx, odb)
	if err != nil {
		t.Fatal(err)
	}
	before := counts(ws)
	waitAcked(t, ctx, 30*time.Second, "writes continue with the old writer back", ws, before, 30, func() error {
		n, err := myCount(ctx, odb)
		if err != nil {
			return err
		}
		if n != base {
			return fmt.Errorf("the fenced old writer %s went from %d to %d rows", old, base, n)
		}
		return nil
	})
	for _, w := range ws {
		w.stop()
	}
	for _, r := range rs {
		r.stop()
	}
	if n, err := myCount(ctx, odb); err != nil || n != base {
		t.Errorf("fenced %s: %d rows (%v), %d at its restart", old, n, err, base)
	}

	wdb := openMyDSN(t, newWriter.AdminDSN("app"))
	myCheckAcked(t, ctx, writer, wdb, ws)
	rows, err := wdb.QueryContext(ctx, "SELECT CONCAT(inst, ':', id) FROM "+failoverTable+" WHERE inst IN ('tx', 'idle') ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	rows.Close()
	if want := []string{"idle:1", "tx:3"}; !slices.Equal(got, want) {
		t.Errorf("session rows on the new writer: %v, want %v", got, want)
	}
	logReaders(t, rs, killAt)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// ---- partitions and minorities ----

// TestFailoverPartitionNoFailover cuts one instance (C) off from the
// primary: the others still see it, so there must be no failover; C holds
// and then fails its writes, and works again once the path heals.
func TestFailoverPartitionNoFailover(t *testing.T) {
	requirePostgres(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startFailoverPG(t, ctx, false)
	relay, err := faultnet.Listen(c.Primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	const hold = 2 * time.Second
	const cIdx = 2
	primary := c.Primary.Name
	f := startFleet(t, ctx, fleetSpec{
		Protocol: config.ProtocolPostgres,
		Backends: pgFleetBackends(c),
		AddrFor: func(i int, b fleetBackend) string {
			if i == cIdx && b.Name == primary {
				return relay.Addr()
			}
			return b.Addr
		},
		Hold: hold,
	})
	epoch0 := f.status(0).Epoch
	var ws []*loadWriter
	for _, in := range f.insts {
		ws = append(ws, pgLoadWriter(t, in.P, in.Name))
	}
	waitAcked(t, ctx, 30*time.Second, "writes before the partition", ws, nil, 10, nil)

	cName := f.insts[cIdx].Name
	preIdle, err := pgx.Connect(ctx, fleetPGDSN(t, f.insts[cIdx].P, "auto"))
	if err != nil {
		t.Fatal(err)
	}
	defer preIdle.Close(context.Background())
	preWrote, err := pgx.Connect(ctx, fleetPGDSN(t, f.insts[cIdx].P, "auto"))
	if err != nil {
		t.Fatal(err)
	}
	defer preWrote.Close(context.Background())
	if _, err := preWrote.Exec(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('wrote', 1)"); err != nil {
		t.Fatal(err)
	}

	relay.Block()
	blockAt := time.Now()
	d := f.waitSome(ctx, 30*time.Second, cName+" sees the primary down and decides no failover", []int{cIdx}, func(_ int, st proxy.Status) error {
		cs := st.Clusters[0]
		b, _ := backendStatus(cs, primary)
		if b.State != "down" || cs.Writable || !strings.Contains(cs.Failover.Decision, "no failover") {
			return fmt.Errorf("%s %s, writable %v, decision %q", primary, b.State, cs.Writable, cs.Failover.Decision)
		}
		return nil
	})
	downAt := time.Now()
	t.Logf("%s: %s down %v after the block; decision: %s", cName, primary, d.Round(time.Millisecond), f.status(cIdx).Failover.Decision)

	// Writes through C fail within about failover.hold, saying why, on
	// sessions opened before the partition (one idle, one that wrote and
	// then reads) and on a new one.
	for _, k := range []struct {
		what string
		args []any
	}{
		{"simple-protocol", nil},
		{"extended-protocol", []any{"partition", 2}},
	} {
		sql := "INSERT INTO " + failoverTable + " (inst, id) VALUES ('partition', 1)"
		if k.args != nil {
			sql = "INSERT INTO " + failoverTable + " (inst, id) VALUES ($1, $2)"
		}
		for try := 1; try <= 1; try++ {
			t0 := time.Now()
			_, err := preIdle.Exec(ctx, sql, k.args...)
			el := time.Since(t0)
			t.Logf("%s write through %s during the partition (try %d): failed after %v: %v", k.what, cName, try, el.Round(time.Millisecond), err)
			checkHeld(t, k.what+" write through "+cName, err, el, hold)
		}
	}
	t0 := time.Now()
	nc, err := pgx.Connect(ctx, fleetPGDSN(t, f.insts[cIdx].P, "auto"))
	el := time.Since(t0)
	if err == nil {
		nc.Close(context.Background())
	}
	t.Logf("new session on %s's auto listener during the partition: %v after %v", cName, err, el.Round(time.Millisecond))
	t0 = time.Now()
	_, err = preWrote.Exec(ctx, "SELECT count(*) FROM "+failoverTable)
	t.Logf("read through %s during the partition on a session that wrote before it: %v after %v", cName, err, time.Since(t0).Round(time.Millisecond))

	// Hold the partition for 30 of C's probe rounds, checking all along
	// that nothing fails over and A and B keep writing.
	windowAt := time.Now()
	errBase := f.probeCount(cIdx, primary, admin.ResultError)
	abBase := counts(ws[:cIdx])
	const rounds = 30
	err = pollUntil(ctx, 60*time.Second, func() error {
		for i := range f.insts {
			cs := f.status(i)
			if cs.Epoch != epoch0 || cs.Writer != primary || cs.Failover.Failovers != 0 {
				return permanentErr{fmt.Errorf("%s: epoch %d writer %q failovers %d during the partition, want epoch %d writer %s and none; decision %q",
					f.insts[i].Name, cs.Epoch, cs.Writer, cs.Failover.Failovers, epoch0, primary, cs.Failover.Decision)}
			}
			if want := i != cIdx; cs.Writable != want {
				return permanentErr{fmt.Errorf("%s: writable %v during the partition, want %v (held %q)", f.insts[i].Name, cs.Writable, want, cs.Held)}
			}
		}
		for _, w := range ws[:cIdx] {
			if n, _, last := w.failuresSince(windowAt); n > 0 {
				return permanentErr{fmt.Errorf("writer %s: %d failed writes during the partition: %s", w.name, n, last)}
			}
		}
		if got := f.probeCount(cIdx, primary, admin.ResultError) - errBase; got < rounds {
			return fmt.Errorf("%v failed probes of %s by %s so far", got, primary, cName)
		}
		return nil
	})
	var pe permanentErr
	if errors.As(err, &pe) {
		t.Fatalf("%v\n%s", pe.err, f.dump())
	}
	if err != nil {
		t.Fatalf("partition window: %v\n%s", err, f.dump())
	}
	ab := counts(ws[:cIdx])
	for i := range ab {
		if ab[i] <= abBase[i] {
			t.Errorf("writer %s acknowledged no row during the partition", ws[i].name)
		}
	}
	wc := ws[cIdx]
	nC, longest, last := wc.failuresSince(downAt)
	t.Logf("partition held %v (%d probe rounds): A, B acknowledged %v more rows; C: %d writes failed (longest %v): %s",
		time.Since(windowAt).Round(time.Millisecond), rounds, []int64{ab[0] - abBase[0], ab[1] - abBase[1]}, nC, longest.Round(time.Millisecond), last)
	_, _, cErrs := wc.snapshot()
	t.Logf("writer %s errors: %s (block at %s)", cName, strings.Join(cErrs, "; "), blockAt.Format("15:04:05.000"))
	if nC == 0 {
		t.Errorf("no write through %s failed during the partition", cName)
	}
	if longest > hold+1500*time.Millisecond {
		t.Errorf("a write of load writer %s took %v to fail, want about failover.hold (%v)", cName, longest.Round(time.Millisecond), hold)
	}
	if !strings.Contains(last, "no writer available") {
		t.Errorf("write through %s failed with %q, want an error saying there is no writer", cName, last)
	}

	relay.Heal()
	cAcked := wc.n.Load()
	d = waitAcked(t, ctx, 30*time.Second, cName+" writes again after the heal", []*loadWriter{wc}, []int64{cAcked}, 5, nil)
	t.Logf("%s writes again %v after the heal (%v after the block)", cName, d.Round(time.Millisecond), time.Since(blockAt).Round(time.Millisecond))
	for i := range f.insts {
		cs := f.status(i)
		if cs.Epoch != epoch0 || cs.Writer != primary || !cs.Writable || cs.Failover.Failovers != 0 {
			t.Errorf("%s after the heal: epoch %d writer %q writable %v failovers %d", f.insts[i].Name, cs.Epoch, cs.Writer, cs.Writable, cs.Failover.Failovers)
		}
	}
	for _, w := range ws {
		w.stop()
	}
	pgCheckAcked(t, ctx, primary, c.Primary.AdminDSN("app"), ws)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestFailoverMinorityNeverPromotes stops two of the three instances and
// kills the primary: the remaining one sees a minority of the fleet and
// must never promote.
func TestFailoverMinorityNeverPromotes(t *testing.T) {
	requirePostgres(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startFailoverPG(t, ctx, false)
	const hold = 2 * time.Second
	f := startFleet(t, ctx, fleetSpec{Protocol: config.ProtocolPostgres, Backends: pgFleetBackends(c), Hold: hold})
	primary := c.Primary.Name
	epoch0 := f.status(0).Epoch
	// New sessions on the auto listener need the writer: open one now.
	conn, err := pgx.Connect(ctx, fleetPGDSN(t, f.insts[0].P, "auto"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	f.stop(1)
	f.stop(2)
	a := f.insts[0].Name
	d := f.waitAll(ctx, 30*time.Second, a+" sees itself alone", func(_ int, st proxy.Status) error {
		cs := st.Clusters[0]
		if len(st.Fleet.Members) != 1 || cs.Failover.CanAct || cs.Held == "" || cs.Writable {
			return fmt.Errorf("members %v, can_act %v, held %q, writable %v", st.Fleet.Members, cs.Failover.CanAct, cs.Held, cs.Writable)
		}
		return nil
	})
	t.Logf("%s alone after %v; writes held: %s", a, d.Round(time.Millisecond), f.status(0).Held)

	if err := c.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	f.waitAll(ctx, 30*time.Second, a+" sees the primary down", func(_ int, st proxy.Status) error {
		b, _ := backendStatus(st.Clusters[0], primary)
		if b.State != "down" {
			return fmt.Errorf("%s is %s", primary, b.State)
		}
		return nil
	})
	windowAt := time.Now()
	errBase := f.probeCount(0, primary, admin.ResultError)
	const rounds = 20
	err = pollUntil(ctx, 60*time.Second, func() error {
		cs := f.status(0)
		if cs.Epoch != epoch0 || cs.Writer != primary || cs.Failover.Failovers != 0 || cs.Failover.CanAct || cs.Writable {
			return permanentErr{fmt.Errorf("epoch %d writer %q failovers %d can_act %v writable %v, want epoch %d writer %s, no failover, held; decision %q",
				cs.Epoch, cs.Writer, cs.Failover.Failovers, cs.Failover.CanAct, cs.Writable, epoch0, primary, cs.Failover.Decision)}
		}
		if got := f.probeCount(0, primary, admin.ResultError) - errBase; got < rounds {
			return fmt.Errorf("%v failed probes of %s so far", got, primary)
		}
		return nil
	})
	var pe permanentErr
	if errors.As(err, &pe) {
		t.Fatalf("%v\n%s", pe.err, f.dump())
	}
	if err != nil {
		t.Fatalf("minority window: %v\n%s", err, f.dump())
	}
	cs := f.status(0)
	t.Logf("%s held for %v (%d failed probes of %s); decision %q, held %q", a, time.Since(windowAt).Round(time.Millisecond), rounds, primary, cs.Failover.Decision, cs.Held)
	for _, r := range c.Replicas {
		in, err := func() (bool, error) {
			conn, err := pgx.Connect(ctx, r.AdminDSN("postgres"))
			if err != nil {
				return false, err
			}
			defer conn.Close(context.Background())
			var in bool
			err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&in)
			return in, err
		}()
		if err != nil || !in {
			t.Errorf("%s: in recovery %v (%v), want still a replica", r.Name, in, err)
		}
	}
	// A write through the lone instance fails after failover.hold.
	t0 := time.Now()
	_, err = conn.Exec(ctx, "INSERT INTO "+failoverTable+" (inst, id) VALUES ('alone', 1)")
	el := time.Since(t0)
	t.Logf("write through the lone instance failed after %v: %v", el.Round(time.Millisecond), err)
	checkHeld(t, "write through the lone instance", err, el, hold)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// checkHeld asserts that a write held for lack of a writer failed after
// about hold, saying so.
func checkHeld(t *testing.T, what string, err error, el, hold time.Duration) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want it held and failed", what)
		return
	}
	if el > hold+1500*time.Millisecond {
		t.Errorf("%s took %v to fail, want about failover.hold (%v)", what, el.Round(time.Millisecond), hold)
	}
	if !strings.Contains(err.Error(), "no writer available") {
		t.Errorf("%s: %v, want an error saying there is no writer", what, err)
	}
}
