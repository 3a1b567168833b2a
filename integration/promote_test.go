package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/health"
	"github.com/sluicedb/sluice/integration/localcluster"
	"github.com/sluicedb/sluice/topology"
)

// These tests start clusters of their own: they kill the primary.

const (
	promoteUser     = "failover"
	promotePassword = "fail over's pw" // a space and a quote, to exercise quoting
)

// promoteEventually polls cond every 100 ms until it holds or ctx ends.
func promoteEventually(t *testing.T, ctx context.Context, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (last error: %v)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// promoteWriteUntilKilled inserts ids 1, 2, … one autocommit statement at a
// time through insert until it fails, and kills the primary with kill once
// at least minRows were acknowledged (or after 3 s). It returns the highest
// acknowledged id: every id up to it was committed before the kill.
func promoteWriteUntilKilled(t *testing.T, ctx context.Context, insert func(ctx context.Context, id int64) error, kill func() error, minRows int64) int64 {
	t.Helper()
	var acked atomic.Int64
	done := make(chan error, 1)
	go func() {
		for id := int64(1); ; id++ {
			if err := insert(ctx, id); err != nil {
				done <- err
				return
			}
			acked.Store(id)
		}
	}()
	limit := time.Now().Add(3 * time.Second)
	for acked.Load() < minRows && time.Now().Before(limit) {
		select {
		case err := <-done:
			t.Fatalf("writes failed before the kill (after %d rows): %v", acked.Load(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("writer stopped by the kill after %d acknowledged rows: %v", acked.Load(), err)
	case <-ctx.Done():
		t.Fatal("the writer did not notice the kill")
	}
	n := acked.Load()
	if n == 0 {
		t.Fatal("no row was acknowledged before the kill")
	}
	return n
}

// promoteCandidate probes the replicas and returns the one with the highest
// Received position and the others.
func promoteCandidate(t *testing.T, ctx context.Context, replicas []topology.Backend, newProber func(addr string) health.Prober) (topology.Backend, []topology.Backend) {
	t.Helper()
	best := -1
	for i := range replicas {
		p := newProber(replicas[i].Addr)
		r, err := p.Probe(ctx)
		p.Close()
		if err != nil {
			t.Fatalf("probe %s: %v", replicas[i].Name, err)
		}
		if r.Role != topology.RoleReader {
			t.Fatalf("%s: role %v, want reader", replicas[i].Name, r.Role)
		}
		if r.Received < r.Position {
			t.Errorf("%s: received %d < position %d", replicas[i].Name, r.Received, r.Position)
		}
		replicas[i].Role, replicas[i].Position, replicas[i].Received = r.Role, r.Position, r.Received
		t.Logf("%s: position %d, received %d", replicas[i].Name, r.Position, r.Received)
		if best < 0 || r.Received > replicas[best].Received {
			best = i
		}
	}
	var others []topology.Backend
	for i, b := range replicas {
		if i != best {
			others = append(others, b)
		}
	}
	return replicas[best], others
}

// promoteTwiceConcurrently promotes b from two goroutines at once, then once
// more: all three calls must succeed.
func promoteTwiceConcurrently(t *testing.T, ctx context.Context, p health.Promoter, b topology.Backend) {
	t.Helper()
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Promote(ctx, b)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Promote: %v", err)
	}
	t.Logf("promoted %s in %v", b.Name, time.Since(t0).Round(time.Millisecond))
	if err := p.Promote(ctx, b); err != nil {
		t.Fatalf("Promote again: %v", err)
	}
}

func TestPromotePostgres(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := localcluster.StartPostgres(ctx, localcluster.PostgresOptions{
		Replicas:    2,
		Synchronous: true,
		Users:       []localcluster.User{{Name: promoteUser, Password: promotePassword, Superuser: true}},
		Databases:   []string{"app"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	t.Logf("cluster started in %v", time.Since(start).Round(time.Millisecond))
	connect := func(ctx context.Context, n *localcluster.PostgresNode) (*pgx.Conn, error) {
		return pgx.Connect(ctx, n.DSN(promoteUser, promotePassword, "app"))
	}
	pconn, err := connect(ctx, c.Primary)
	if err != nil {
		t.Fatal(err)
	}
	defer pconn.Close(context.Background())
	if _, err := pconn.Exec(ctx, "CREATE TABLE failover_rows (id bigint PRIMARY KEY, phase text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	acked := promoteWriteUntilKilled(t, ctx, func(ctx context.Context, id int64) error {
		_, err := pconn.Exec(ctx, "INSERT INTO failover_rows VALUES ($1, 'before')", id)
		return err
	}, c.Primary.Kill, 200)

	nodes := map[string]*localcluster.PostgresNode{}
	var replicas []topology.Backend
	for _, r := range c.Replicas {
		nodes[r.Addr()] = r
		replicas = append(replicas, topology.Backend{Name: r.Name, Addr: r.Addr()})
	}
	cand, others := promoteCandidate(t, ctx, replicas, func(addr string) health.Prober {
		return &health.PGProber{Addr: addr, User: promoteUser, Password: promotePassword, Database: "app"}
	})
	promoter := &health.PGPromoter{User: promoteUser, Password: promotePassword, Database: "app"}
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	promoteTwiceConcurrently(t, pctx, promoter, cand)
	for _, o := range others {
		if err := promoter.Follow(pctx, o, cand); err != nil {
			t.Fatal(err)
		}
		if err := promoter.Follow(pctx, o, cand); err != nil {
			t.Fatalf("Follow again: %v", err)
		}
	}

	wconn, err := connect(ctx, nodes[cand.Addr])
	if err != nil {
		t.Fatal(err)
	}
	defer wconn.Close(context.Background())
	var inRecovery bool
	var n int64
	if err := wconn.QueryRow(ctx, "SELECT pg_is_in_recovery(), count(*) FROM failover_rows WHERE id <= $1", acked).Scan(&inRecovery, &n); err != nil {
		t.Fatal(err)
	}
	if inRecovery {
		t.Fatalf("%s is still in recovery after Promote", cand.Name)
	}
	if n != acked {
		t.Fatalf("new writer %s has %d of the %d rows acknowledged before the kill", cand.Name, n, acked)
	}
	const after = 10
	for i := int64(1); i <= after; i++ {
		if _, err := wconn.Exec(ctx, "INSERT INTO failover_rows VALUES ($1, 'after')", 1_000_000+i); err != nil {
			t.Fatalf("write on the new writer: %v", err)
		}
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	for _, o := range others {
		oconn, err := connect(ctx, nodes[o.Addr])
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		promoteEventually(t, fctx, o.Name+" replays the rows written after the promotion", func(ctx context.Context) (bool, error) {
			var got int64
			err := oconn.QueryRow(ctx, "SELECT count(*) FROM failover_rows WHERE phase = 'after'").Scan(&got)
			return err == nil && got == after, err
		})
		t.Logf("%s caught up in %v", o.Name, time.Since(t0).Round(time.Millisecond))
		if err := oconn.QueryRow(ctx, "SELECT count(*) FROM failover_rows WHERE id <= $1", acked).Scan(&n); err != nil || n != acked {
			t.Errorf("%s: %d of %d rows from before the kill (%v)", o.Name, n, acked, err)
		}
		oconn.Close(context.Background())
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

func TestPromoteMariaDB(t *testing.T) {
	if _, err := localcluster.FindMariaDB(); err != nil {
		t.Skip(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := localcluster.StartMariaDB(ctx, localcluster.MariaDBOptions{
		Replicas:  2,
		SemiSync:  true,
		Users:     []localcluster.User{{Name: promoteUser, Password: promotePassword, Superuser: true}},
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
	t.Logf("cluster started in %v", time.Since(start).Round(time.Millisecond))
	open := func(n *localcluster.MariaDBNode) *sql.DB {
		cfg := mysql.NewConfig()
		cfg.Net = "tcp"
		cfg.Addr = n.Addr()
		cfg.User = promoteUser
		cfg.Passwd = promotePassword
		cfg.DBName = "app"
		cfg.AllowNativePasswords = true
		cfg.Timeout = 5 * time.Second
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		return db
	}
	pdb := open(c.Primary)
	if _, err := pdb.ExecContext(ctx, "CREATE TABLE failover_rows (id BIGINT PRIMARY KEY, phase VARCHAR(10) NOT NULL) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	acked := promoteWriteUntilKilled(t, ctx, func(ctx context.Context, id int64) error {
		_, err := pdb.ExecContext(ctx, "INSERT INTO failover_rows VALUES (?, 'before')", id)
		return err
	}, c.Primary.Kill, 200)

	nodes := map[string]*localcluster.MariaDBNode{}
	var replicas []topology.Backend
	for _, r := range c.Replicas {
		nodes[r.Addr()] = r
		replicas = append(replicas, topology.Backend{Name: r.Name, Addr: r.Addr()})
	}
	cand, others := promoteCandidate(t, ctx, replicas, func(addr string) health.Prober {
		return &health.MySQLProber{Addr: addr, User: promoteUser, Password: promotePassword, Database: "app"}
	})
	if cand.Received < uint64(acked) {
		// Each acknowledged autocommit insert is one GTID; the CREATE TABLE
		// and the set-up add a few more.
		t.Errorf("candidate %s received up to sequence %d, but %d inserts were acknowledged", cand.Name, cand.Received, acked)
	}
	promoter := &health.MySQLPromoter{User: promoteUser, Password: promotePassword}
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	promoteTwiceConcurrently(t, pctx, promoter, cand)
	for _, o := range others {
		if err := promoter.Follow(pctx, o, cand); err != nil {
			t.Fatal(err)
		}
		if err := promoter.Follow(pctx, o, cand); err != nil {
			t.Fatalf("Follow again: %v", err)
		}
	}

	wdb := open(nodes[cand.Addr])
	var ro, n int64
	if err := wdb.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only, (SELECT count(*) FROM failover_rows WHERE id <= ?)", acked).Scan(&ro, &n); err != nil {
		t.Fatal(err)
	}
	if ro != 0 {
		t.Fatalf("%s is still read_only after Promote", cand.Name)
	}
	if n != acked {
		t.Fatalf("new writer %s has %d of the %d rows acknowledged before the kill", cand.Name, n, acked)
	}
	const after = 10
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second) // a semi-sync commit waits for a replica's ack
	defer wcancel()
	for i := int64(1); i <= after; i++ {
		if _, err := wdb.ExecContext(wctx, "INSERT INTO failover_rows VALUES (?, 'after')", 1_000_000+i); err != nil {
			t.Fatalf("write on the new writer: %v", err)
		}
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	for _, o := range others {
		odb := open(nodes[o.Addr])
		t0 := time.Now()
		promoteEventually(t, fctx, o.Name+" applies the rows written after the promotion", func(ctx context.Context) (bool, error) {
			var got int64
			err := odb.QueryRowContext(ctx, "SELECT count(*) FROM failover_rows WHERE phase = 'after'").Scan(&got)
			return err == nil && got == after, err
		})
		t.Logf("%s caught up in %v", o.Name, time.Since(t0).Round(time.Millisecond))
		if err := odb.QueryRowContext(ctx, "SELECT count(*) FROM failover_rows WHERE id <= ?", acked).Scan(&n); err != nil || n != acked {
			t.Errorf("%s: %d of %d rows from before the kill (%v)", o.Name, n, acked, err)
		}
		var sro int64
		if err := odb.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&sro); err != nil || sro != 1 {
			t.Errorf("%s: read_only = %d (%v), want 1", o.Name, sro, err)
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// TestPromoteConninfoQuoting checks, against a real replica, that Follow
// keeps a primary_conninfo whose values need quoting intact (a password
// with a space and a quote), and only swaps host and port.
func TestPromoteConninfoQuoting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := localcluster.StartPostgres(ctx, localcluster.PostgresOptions{
		Replicas:  1,
		Users:     []localcluster.User{{Name: promoteUser, Password: promotePassword, Superuser: true}},
		Databases: []string{"app"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	r := c.Replicas[0]
	conn, err := pgx.Connect(ctx, r.DSN(promoteUser, promotePassword, "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	orig := fmt.Sprintf(`host=127.0.0.1 port=%d user=postgres password='it\'s a \\ secret' application_name=%s`, c.Primary.Port, r.Name)
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET primary_conninfo = $q$"+orig+"$q$"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	promoter := &health.PGPromoter{User: promoteUser, Password: promotePassword, Database: "app"}
	rb := topology.Backend{Name: r.Name, Addr: r.Addr()}
	// Re-point to the same primary, named by "localhost" so the host
	// changes: the replica must keep streaming.
	w := topology.Backend{Name: "pg0", Addr: fmt.Sprintf("localhost:%d", c.Primary.Port)}
	if err := promoter.Follow(ctx, rb, w); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`host=localhost port=%d user=postgres password='it\'s a \\ secret' application_name=%s`, c.Primary.Port, r.Name)
	promoteEventually(t, ctx, "primary_conninfo rewritten and the replica streaming", func(ctx context.Context) (bool, error) {
		var got, status string
		err := conn.QueryRow(ctx, "SELECT current_setting('primary_conninfo'), coalesce((SELECT status FROM pg_stat_wal_receiver), '')").Scan(&got, &status)
		if err != nil {
			return false, err
		}
		if got != want {
			return false, fmt.Errorf("primary_conninfo = %s, want %s", got, want)
		}
		return status == "streaming", fmt.Errorf("wal receiver status %q", status)
	})
	// A writer refuses to follow.
	if err := promoter.Follow(ctx, topology.Backend{Name: "pg0", Addr: c.Primary.Addr()}, rb); err == nil {
		t.Error("Follow on the primary succeeded, want an error")
	}
	// Promote is a no-op on the writer.
	if err := promoter.Promote(ctx, topology.Backend{Name: "pg0", Addr: c.Primary.Addr()}); err != nil {
		t.Errorf("Promote on the writer: %v", err)
	}
}
