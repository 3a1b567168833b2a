package integration

// End-to-end tests of the routing contract (ARCHITECTURE.md, "The routing
// contract") for PostgreSQL: which backend serves each statement on the auto,
// writer, reader and eventual listeners, what pins a session to the writer,
// and which session state is replayed on other backends.
//
// Every assertion about routing checks the server that actually ran the
// statement (inet_server_port(), pg_is_in_recovery(), pg_backend_pid()), or
// an effect that only exists on that server, never just the absence of an
// error.
//
// Reads on the auto endpoint of cluster pg use read-your-writes: right after
// a write of the session, a read may legitimately be served by the writer
// until a replica is known to have replayed the write. Tests that need a read
// on a replica after a write of the same session therefore poll until the
// read lands on a replica (and check every intermediate answer too), while
// tests that need an immediate replica read use a fresh session that has not
// written anything.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	dto "github.com/prometheus/client_model/go"
)

// ---------------------------------------------------------------------------
// helpers

// served says which server ran a statement.
type rtServed struct {
	Port     int
	Recovery bool
	PID      int32
}

func (s rtServed) String() string {
	return fmt.Sprintf("port %d (in recovery: %v, backend pid %d)", s.Port, s.Recovery, s.PID)
}

// whereCols are the columns that fill a served.
const rtWhereCols = "inet_server_port(), pg_is_in_recovery(), pg_backend_pid()"

// whereSQL is a plain read reporting the server that ran it.
const rtWhereSQL = "SELECT " + rtWhereCols

type rtQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func rtPrimaryPort() int { return shared.pg.Nodes()[0].Port }

func rtReplicaPorts() map[int]bool {
	nodes := shared.pg.Nodes()
	return map[int]bool{nodes[1].Port: true, nodes[2].Port: true}
}

// queryWhere runs sql (which must return exactly the whereCols columns) and
// returns the server that ran it.
func rtQueryWhere(t testing.TB, ctx context.Context, q rtQuerier, sql string, args ...any) rtServed {
	t.Helper()
	var s rtServed
	if err := q.QueryRow(ctx, sql, args...).Scan(&s.Port, &s.Recovery, &s.PID); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// checkPrimary fails the test unless s is the primary.
func rtCheckPrimary(t testing.TB, s rtServed, what string) {
	t.Helper()
	if s.Port != rtPrimaryPort() || s.Recovery {
		t.Errorf("%s: served by %s, want the primary (port %d, not in recovery)", what, s, rtPrimaryPort())
	}
}

// checkReplica fails the test unless s is one of the replicas.
func rtCheckReplica(t testing.TB, s rtServed, what string) {
	t.Helper()
	if !rtReplicaPorts()[s.Port] || !s.Recovery {
		t.Errorf("%s: served by %s, want a replica (ports %v, in recovery)", what, s, rtSortedPorts(rtReplicaPorts()))
	}
}

func rtIsReplica(s rtServed) bool { return rtReplicaPorts()[s.Port] && s.Recovery }

func rtSortedPorts(m map[int]bool) []int {
	var out []int
	for p := range m {
		out = append(out, p)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// connect opens a pgx connection to a listener of the shared proxy as app/app
// on database app, closed when the test ends.
func rtConnect(t testing.TB, ctx context.Context, listener string) *pgx.Conn {
	t.Helper()
	return rtConnectWith(t, ctx, listener, nil)
}

func rtConnectWith(t testing.TB, ctx context.Context, listener string, modify func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(appDSN(t, listener))
	if err != nil {
		t.Fatal(err)
	}
	if modify != nil {
		modify(cfg)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to listener %s: %v", listener, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Close(cctx)
	})
	return c
}

// connectNode opens an administrative (superuser) connection straight to
// node i, bypassing the proxy.
func rtConnectNode(t testing.TB, ctx context.Context, i int) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, shared.pg.Nodes()[i].AdminDSN("app"))
	if err != nil {
		t.Fatalf("connect to node %d: %v", i, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Close(cctx)
	})
	return c
}

var rtUniqSeq atomic.Int64

// uniq returns a fresh lower-case SQL identifier derived from the test name.
func rtUniq(t testing.TB, base string) string {
	t.Helper()
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := strings.TrimPrefix(b.String(), "testrouting")
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	return fmt.Sprintf("rt_%s_%s_%d", strings.Trim(name, "_"), base, rtUniqSeq.Add(1))
}

// eventually polls cond until it reports true, failing the test at the
// deadline with the last error.
func rtEventually(t testing.TB, ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	var lastErr error
	for {
		ok, err := cond()
		if ok && err == nil {
			return
		}
		lastErr = err
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// waitProxyReady waits until the proxy's view of cluster pg (and
// pg-eventual) has a healthy writer on the primary and both replicas as
// healthy readers.
func rtWaitProxyReady(t testing.TB, ctx context.Context) {
	t.Helper()
	nodes := shared.pg.Nodes()
	for _, name := range []string{"pg", "pg-eventual"} {
		cl := shared.proxy.Cluster(name)
		if cl == nil {
			t.Fatalf("proxy has no cluster %q", name)
		}
		rtEventually(t, ctx, time.Minute, "cluster "+name+" to have a writer and two readers", func() (bool, error) {
			s := cl.Snapshot()
			w, ok := s.WriterBackend()
			if !ok || w.Addr != nodes[0].Addr() {
				return false, fmt.Errorf("writer: %+v (ok %v)", w, ok)
			}
			readers := 0
			for _, b := range s.Backends {
				if b.Healthy && b.Role.String() == "reader" && (b.Addr == nodes[1].Addr() || b.Addr == nodes[2].Addr()) {
					readers++
				}
			}
			if readers != 2 {
				return false, fmt.Errorf("%d healthy readers", readers)
			}
			return true, nil
		})
	}
}

// execWriter runs statements on the writer endpoint (as app), one by one.
func rtExecWriter(t testing.TB, ctx context.Context, stmts ...string) {
	t.Helper()
	c, err := pgx.Connect(ctx, appDSN(t, "writer"))
	if err != nil {
		t.Fatalf("connect writer endpoint: %v", err)
	}
	defer c.Close(context.Background())
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("writer endpoint: %s: %v", s, err)
		}
	}
}

// waitReplicas polls cond (a query returning one boolean) on every replica,
// directly, until it is true on all of them.
func rtWaitReplicas(t testing.TB, ctx context.Context, cond string, args ...any) {
	t.Helper()
	for i := 1; i < len(shared.pg.Nodes()); i++ {
		c := rtConnectNode(t, ctx, i)
		rtEventually(t, ctx, time.Minute, fmt.Sprintf("replica %d: %s", i, cond), func() (bool, error) {
			var ok bool
			err := c.QueryRow(ctx, cond, args...).Scan(&ok)
			return ok, err
		})
	}
}

// waitTable waits until the relation exists on every replica.
func rtWaitTable(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	rtWaitReplicas(t, ctx, "SELECT to_regclass($1) IS NOT NULL", name)
}

// newTable creates table name (id int primary key, v text, port int) through
// the writer endpoint, fills ids 1..rows, and waits for it on the replicas.
func rtNewTable(t testing.TB, ctx context.Context, name string, rows int) {
	t.Helper()
	stmts := []string{fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, v text, port int)", name)}
	if rows > 0 {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (id, v) SELECT g, 'row' || g FROM generate_series(1, %d) g", name, rows))
	}
	rtExecWriter(t, ctx, stmts...)
	if rows > 0 {
		rtWaitReplicas(t, ctx, fmt.Sprintf("SELECT to_regclass(%s) IS NOT NULL AND (SELECT count(*) FROM %s) = %d",
			rtQuoteLit(name), name, rows))
	} else {
		rtWaitTable(t, ctx, name)
	}
}

func rtQuoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// primaryInt runs a query returning one integer directly on the primary.
func rtPrimaryInt(t testing.TB, ctx context.Context, sql string, args ...any) int64 {
	t.Helper()
	c := rtConnectNode(t, ctx, 0)
	var n int64
	if err := c.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("on the primary: %s: %v", sql, err)
	}
	return n
}

// pgCode returns the SQLSTATE of err, or "".
func rtPgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// pins reads sluice_pins_total{listener, reason}. (The module does not
// require prometheus/testutil's dependencies, so the counter is read through
// its protobuf form, as testutil.ToFloat64 does.)
func rtPins(listener, reason string) float64 {
	var m dto.Metric
	if err := shared.proxy.Metrics().Pins.WithLabelValues(listener, reason).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// untilReplica repeats read (which reports the server it ran on) until it
// is served by a replica; every answer, wherever it came from, goes through
// read's own checks. It is for reads that follow a write of the same
// session, which read-your-writes may send to the writer for a while.
func rtUntilReplica(t testing.TB, ctx context.Context, what string, read func() rtServed) rtServed {
	t.Helper()
	var last rtServed
	rtEventually(t, ctx, time.Minute, what+" to be served by a replica", func() (bool, error) {
		last = read()
		if !rtIsReplica(last) && (last.Port != rtPrimaryPort() || last.Recovery) {
			t.Fatalf("%s: served by %s, which is neither the primary nor a replica", what, last)
		}
		if !rtIsReplica(last) {
			return false, fmt.Errorf("last served by %s", last)
		}
		return true, nil
	})
	return last
}

// ---------------------------------------------------------------------------
// 1. plain reads go to the replicas, spread over both

func TestRoutingPlainReadsSpreadOverReplicas(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)

	t.Run("separate_connections", func(t *testing.T) {
		seen := map[int]int{}
		for i := 0; i < 20; i++ {
			c, err := pgx.Connect(ctx, appDSN(t, "auto"))
			if err != nil {
				t.Fatal(err)
			}
			s := rtQueryWhere(t, ctx, c, rtWhereSQL)
			// a second read of the same session also goes to a replica
			s2 := rtQueryWhere(t, ctx, c, "SELECT "+rtWhereCols+" FROM pg_class LIMIT 1")
			c.Close(ctx)
			rtCheckReplica(t, s, fmt.Sprintf("connection %d: plain SELECT", i))
			rtCheckReplica(t, s2, fmt.Sprintf("connection %d: second plain SELECT", i))
			seen[s.Port]++
		}
		if len(seen) != 2 {
			t.Errorf("20 connections' reads were served by ports %v, want both replicas %v", seen, rtSortedPorts(rtReplicaPorts()))
		}
		t.Logf("reads per replica port: %v", seen)
	})

	t.Run("concurrent_connections", func(t *testing.T) {
		// 8 sessions open at the same time (as a connection pool holds them)
		const n = 8
		conns := make([]*pgx.Conn, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conns[i], errs[i] = pgx.Connect(ctx, appDSN(t, "auto"))
			}()
		}
		wg.Wait()
		for i, c := range conns {
			if errs[i] != nil {
				t.Fatalf("connection %d: %v", i, errs[i])
			}
			defer c.Close(ctx)
		}
		seen := map[int]int{}
		results := make([]rtServed, n)
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var s rtServed
				errs[i] = c.QueryRow(ctx, rtWhereSQL).Scan(&s.Port, &s.Recovery, &s.PID)
				results[i] = s
			}()
		}
		wg.Wait()
		for i, s := range results {
			if errs[i] != nil {
				t.Fatalf("connection %d: %v", i, errs[i])
			}
			rtCheckReplica(t, s, fmt.Sprintf("concurrent connection %d", i))
			seen[s.Port]++
		}
		if len(seen) != 2 {
			t.Errorf("%d concurrent sessions' reads were served by ports %v, want both replicas %v", n, seen, rtSortedPorts(rtReplicaPorts()))
		}
	})
}

// ---------------------------------------------------------------------------
// 2. writes go to the primary

func TestRoutingWritesLandOnPrimary(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 0)
	c := rtConnect(t, ctx, "auto")

	s := rtQueryWhere(t, ctx, c, fmt.Sprintf("INSERT INTO %s (id, v) VALUES (1, 'a') RETURNING %s", tbl, rtWhereCols))
	rtCheckPrimary(t, s, "INSERT … RETURNING (extended protocol)")
	s = rtQueryWhere(t, ctx, c, fmt.Sprintf("INSERT INTO %s (id, v) VALUES (2, 'b') RETURNING %s", tbl, rtWhereCols), pgx.QueryExecModeSimpleProtocol)
	rtCheckPrimary(t, s, "INSERT … RETURNING (simple protocol)")
	s = rtQueryWhere(t, ctx, c, fmt.Sprintf("UPDATE %s SET v = 'bb' WHERE id = 2 RETURNING %s", tbl, rtWhereCols))
	rtCheckPrimary(t, s, "UPDATE … RETURNING")
	s = rtQueryWhere(t, ctx, c, fmt.Sprintf("DELETE FROM %s WHERE id = 1 RETURNING %s", tbl, rtWhereCols))
	rtCheckPrimary(t, s, "DELETE … RETURNING")
	if tag, err := c.Exec(ctx, fmt.Sprintf("INSERT INTO %s (id, v, port) VALUES ($1, $2, inet_server_port())", tbl), 3, "c"); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("INSERT with Exec: %v %v", tag, err)
	}
	if n := rtPrimaryInt(t, ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE (id = 2 AND v = 'bb') OR (id = 3 AND port = %d)", tbl, rtPrimaryPort())); n != 2 {
		t.Errorf("the primary holds %d of the 2 rows written through the auto endpoint", n)
	}
	if n := rtPrimaryInt(t, ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id = 1", tbl)); n != 0 {
		t.Errorf("the row deleted through the auto endpoint is still on the primary")
	}
	// DDL too
	if _, err := c.Exec(ctx, fmt.Sprintf("CREATE INDEX %s_v ON %s (v)", tbl, tbl)); err != nil {
		t.Fatalf("CREATE INDEX through the auto endpoint: %v", err)
	}
	if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM pg_indexes WHERE indexname = $1", tbl+"_v"); n != 1 {
		t.Errorf("the index created through the auto endpoint is not on the primary")
	}
}

// ---------------------------------------------------------------------------
// 3. read-your-writes, and the eventual listener

func TestRoutingReadYourWritesUnderLoad(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "ryw")
	load := rtUniq(t, "load")
	rtNewTable(t, ctx, tbl, 0)
	rtExecWriter(t, ctx, fmt.Sprintf("CREATE TABLE %s (w int, n int, pad text)", load))
	rtWaitTable(t, ctx, load)

	// background write load through the proxy
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var loadRows atomic.Int64
	loadErrs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		lc := rtConnect(t, ctx, "auto")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := lc.Exec(ctx, fmt.Sprintf("INSERT INTO %s (w, n, pad) VALUES ($1, $2, repeat('x', 200))", load), w, n); err != nil {
					loadErrs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				loadRows.Add(1)
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

	c := rtConnect(t, ctx, "auto")
	onReplica := 0
	const rounds = 1000
	for i := 1; i <= rounds; i++ {
		var port int
		if err := c.QueryRow(ctx, fmt.Sprintf("INSERT INTO %s (id, v) VALUES ($1, $2) RETURNING inet_server_port()", tbl), i, "v"+strconv.Itoa(i)).Scan(&port); err != nil {
			t.Fatalf("round %d: insert: %v", i, err)
		}
		if port != rtPrimaryPort() {
			t.Fatalf("round %d: insert served by port %d, want the primary %d", i, port, rtPrimaryPort())
		}
		var v string
		var rec bool
		var rport int
		err := c.QueryRow(ctx, fmt.Sprintf("SELECT v, pg_is_in_recovery(), inet_server_port() FROM %s WHERE id = $1", tbl), i).Scan(&v, &rec, &rport)
		if errors.Is(err, pgx.ErrNoRows) {
			t.Fatalf("round %d: the row just inserted is not visible to the same session (read served by port %d, in recovery %v)", i, rport, rec)
		}
		if err != nil {
			t.Fatalf("round %d: select: %v", i, err)
		}
		if v != "v"+strconv.Itoa(i) {
			t.Fatalf("round %d: read %q, want %q", i, v, "v"+strconv.Itoa(i))
		}
		if rec {
			onReplica++
		}
	}
	stopLoad()
	close(loadErrs)
	for err := range loadErrs {
		t.Errorf("background load: %v", err)
	}
	if loadRows.Load() == 0 {
		t.Errorf("the background writers inserted nothing: no concurrent load was applied")
	}
	t.Logf("%d/%d reads-after-write served by a replica; %d concurrent load rows", onReplica, rounds, loadRows.Load())
}

func TestRoutingEventualReadsStayOnReplicas(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 0)
	c := rtConnect(t, ctx, "eventual")
	for i := 1; i <= 20; i++ {
		s := rtQueryWhere(t, ctx, c, fmt.Sprintf("INSERT INTO %s (id, v) VALUES ($1, 'x') RETURNING %s", tbl, rtWhereCols), i)
		rtCheckPrimary(t, s, fmt.Sprintf("round %d: eventual listener: INSERT", i))
		s = rtQueryWhere(t, ctx, c, "SELECT "+rtWhereCols+" FROM "+tbl+" LIMIT 1")
		rtCheckReplica(t, s, fmt.Sprintf("round %d: eventual listener: read right after a write", i))
		s = rtQueryWhere(t, ctx, c, rtWhereSQL, pgx.QueryExecModeSimpleProtocol)
		rtCheckReplica(t, s, fmt.Sprintf("round %d: eventual listener: simple-protocol read right after a write", i))
	}
}

// TestRoutingReadYourWritesReturnsToReplicas checks that read-your-writes
// only delays a session's return to the replicas: once the probes show a
// replica has replayed the session's write, its reads go there again, and
// they see the write.
func TestRoutingReadYourWritesReturnsToReplicas(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 0)
	c := rtConnect(t, ctx, "auto")
	if _, err := c.Exec(ctx, "INSERT INTO "+tbl+" (id, v) VALUES (1, 'mine')"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rec bool
		var v string
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery(), (SELECT v FROM "+tbl+" WHERE id = 1)").Scan(&rec, &v); err != nil {
			t.Fatal(err)
		}
		if v != "mine" {
			t.Fatalf("the session's own write is not visible (recovery=%v): %q", rec, v)
		}
		if rec {
			return // back on a replica, which has the row
		}
		if time.Now().After(deadline) {
			t.Fatal("reads never returned to a replica after the session's write was replayed")
		}
		time.Sleep(50 * time.Millisecond) // polling interval between checks
	}
}

// ---------------------------------------------------------------------------
// 4. transactions stay on one backend

func TestRoutingTransactionOnPrimary(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 0)

	run := func(t *testing.T, begin string, useTx bool) {
		c := rtConnect(t, ctx, "auto")
		var q rtQuerier = c
		var tx pgx.Tx
		if useTx {
			var err error
			if tx, err = c.Begin(ctx); err != nil {
				t.Fatal(err)
			}
			q = tx
		} else if _, err := c.Exec(ctx, begin); err != nil {
			t.Fatal(err)
		}
		first := rtQueryWhere(t, ctx, q, rtWhereSQL)
		rtCheckPrimary(t, first, "first SELECT of the transaction")
		id := int(rtUniqSeq.Add(1))
		s := rtQueryWhere(t, ctx, q, fmt.Sprintf("INSERT INTO %s (id, v) VALUES ($1, 'tx') RETURNING %s", tbl, rtWhereCols), id)
		rtCheckPrimary(t, s, "INSERT in the transaction")
		if s.PID != first.PID {
			t.Errorf("INSERT ran on backend pid %d, the transaction's first SELECT on %d", s.PID, first.PID)
		}
		s = rtQueryWhere(t, ctx, q, "SELECT "+rtWhereCols+" FROM "+tbl+" WHERE id = $1", id)
		rtCheckPrimary(t, s, "SELECT of the uncommitted row")
		if s.PID != first.PID {
			t.Errorf("SELECT ran on backend pid %d, the transaction's first SELECT on %d", s.PID, first.PID)
		}
		s = rtQueryWhere(t, ctx, q, rtWhereSQL, pgx.QueryExecModeSimpleProtocol)
		if s.PID != first.PID {
			t.Errorf("simple-protocol SELECT ran on backend pid %d, the transaction's first SELECT on %d", s.PID, first.PID)
		}
		if st := c.PgConn().TxStatus(); st != 'T' {
			t.Errorf("transaction status %q inside the transaction, want 'T'", st)
		}
		if useTx {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		} else if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Errorf("transaction status %q after COMMIT, want 'I'", st)
		}
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE id = $1", id); n != 1 {
			t.Errorf("the committed row is not on the primary")
		}
	}
	t.Run("BEGIN", func(t *testing.T) { run(t, "BEGIN", false) })
	t.Run("START_TRANSACTION", func(t *testing.T) { run(t, "START TRANSACTION", false) })
	t.Run("BEGIN_ISOLATION_LEVEL_REPEATABLE_READ", func(t *testing.T) { run(t, "BEGIN ISOLATION LEVEL REPEATABLE READ", false) })
	t.Run("pgx_Begin", func(t *testing.T) { run(t, "", true) })

	// SERIALIZABLE READ ONLY cannot run on a hot standby: it must go to the writer.
	t.Run("BEGIN_SERIALIZABLE_READ_ONLY", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		if _, err := c.Exec(ctx, "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY"); err != nil {
			t.Fatal(err)
		}
		s := rtQueryWhere(t, ctx, c, rtWhereSQL)
		rtCheckPrimary(t, s, "SELECT in BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY")
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRoutingReadOnlyTransactionOnReplica(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 5)

	for _, begin := range []string{
		"BEGIN READ ONLY",
		"START TRANSACTION READ ONLY",
		"BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
		"start transaction read only",
		"pgx BeginTx ReadOnly",
	} {
		t.Run(strings.ReplaceAll(begin, " ", "_"), func(t *testing.T) {
			c := rtConnect(t, ctx, "auto")
			var q rtQuerier = c
			var tx pgx.Tx
			if strings.HasPrefix(begin, "pgx") {
				var err error
				if tx, err = c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly}); err != nil {
					t.Fatal(err)
				}
				q = tx
			} else if _, err := c.Exec(ctx, begin); err != nil {
				t.Fatal(err)
			}
			first := rtQueryWhere(t, ctx, q, rtWhereSQL)
			rtCheckReplica(t, first, "first SELECT of the read-only transaction")
			for i := 0; i < 10; i++ {
				var s rtServed
				var n int
				var ro string
				sql := "SELECT " + rtWhereCols + ", (SELECT count(*) FROM " + tbl + "), current_setting('transaction_read_only')"
				var args []any
				if i%2 == 1 {
					args = append(args, pgx.QueryExecModeSimpleProtocol)
				}
				if err := q.QueryRow(ctx, sql, args...).Scan(&s.Port, &s.Recovery, &s.PID, &n, &ro); err != nil {
					t.Fatalf("statement %d: %v", i, err)
				}
				if s != first {
					t.Errorf("statement %d of the read-only transaction served by %s, the first one by %s", i, s, first)
				}
				if n != 5 || ro != "on" {
					t.Errorf("statement %d: count %d, transaction_read_only %q; want 5, on", i, n, ro)
				}
			}
			if tx != nil {
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			} else if _, err := c.Exec(ctx, "COMMIT"); err != nil {
				t.Fatal(err)
			}
			if st := c.PgConn().TxStatus(); st != 'I' {
				t.Errorf("transaction status %q after COMMIT, want 'I'", st)
			}
		})
	}

	t.Run("write_inside_read_only_transaction_fails", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		if _, err := c.Exec(ctx, "BEGIN READ ONLY"); err != nil {
			t.Fatal(err)
		}
		first := rtQueryWhere(t, ctx, c, rtWhereSQL)
		rtCheckReplica(t, first, "SELECT in BEGIN READ ONLY")
		_, err := c.Exec(ctx, "INSERT INTO "+tbl+" (id, v) VALUES (100, 'no')")
		if rtPgCode(err) != "25006" {
			t.Errorf("INSERT inside BEGIN READ ONLY: got %v, want SQLSTATE 25006", err)
		}
		if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE id = 100"); n != 0 {
			t.Errorf("a write inside a read-only transaction reached the primary")
		}
	})
}

func TestRoutingFailedTransactionThenRead(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 0)

	t.Run("read_write_transaction", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		first := rtQueryWhere(t, ctx, c, rtWhereSQL)
		rtCheckPrimary(t, first, "SELECT after BEGIN")
		if _, err := c.Exec(ctx, "INSERT INTO "+tbl+" (id, v) VALUES (1, 'rolled back')"); err != nil {
			t.Fatal(err)
		}
		_, err := c.Exec(ctx, "SELECT 1/0")
		if rtPgCode(err) != "22012" {
			t.Fatalf("SELECT 1/0: got %v, want SQLSTATE 22012", err)
		}
		if st := c.PgConn().TxStatus(); st != 'E' {
			t.Errorf("transaction status %q after the error, want 'E'", st)
		}
		// Still routed to the failed transaction: a plain read fails with 25P02
		// (it would succeed on a replica).
		_, err = c.Exec(ctx, "SELECT 1")
		if rtPgCode(err) != "25P02" {
			t.Errorf("read inside the failed transaction: got %v, want SQLSTATE 25P02", err)
		}
		var x int
		err = c.QueryRow(ctx, "SELECT $1::int", 7).Scan(&x)
		if rtPgCode(err) != "25P02" {
			t.Errorf("extended-protocol read inside the failed transaction: got %v, want SQLSTATE 25P02", err)
		}
		if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Errorf("transaction status %q after ROLLBACK, want 'I'", st)
		}
		rtUntilReplica(t, ctx, "plain read after ROLLBACK", func() rtServed {
			return rtQueryWhere(t, ctx, c, rtWhereSQL)
		})
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl); n != 0 {
			t.Errorf("the rolled-back row reached the primary")
		}
	})

	t.Run("read_only_transaction", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		if _, err := c.Exec(ctx, "BEGIN READ ONLY"); err != nil {
			t.Fatal(err)
		}
		first := rtQueryWhere(t, ctx, c, rtWhereSQL)
		rtCheckReplica(t, first, "SELECT after BEGIN READ ONLY")
		if _, err := c.Exec(ctx, "SELECT 1/0"); rtPgCode(err) != "22012" {
			t.Fatalf("SELECT 1/0: got %v, want SQLSTATE 22012", err)
		}
		if _, err := c.Exec(ctx, "SELECT 1"); rtPgCode(err) != "25P02" {
			t.Errorf("read inside the failed read-only transaction: got %v, want SQLSTATE 25P02", err)
		}
		if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		// Nothing was written: the next read goes to a replica at once.
		s := rtQueryWhere(t, ctx, c, rtWhereSQL)
		rtCheckReplica(t, s, "plain read after ROLLBACK of a read-only transaction")
		s = rtQueryWhere(t, ctx, c, rtWhereSQL, pgx.QueryExecModeSimpleProtocol)
		rtCheckReplica(t, s, "second plain read after ROLLBACK of a read-only transaction")
	})
}

// ---------------------------------------------------------------------------
// 5. writer-bound statements

func TestRoutingWriterBoundStatements(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	seq := rtUniq(t, "seq")
	proc := rtUniq(t, "proc")
	plainFunc := rtUniq(t, "plain_func")
	rtNewTable(t, ctx, tbl, 50)
	rtExecWriter(t, ctx,
		"CREATE SEQUENCE "+seq,
		fmt.Sprintf("CREATE PROCEDURE %s(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO %s (id, v, port) VALUES (i, 'call', inet_server_port()); END $$", proc, tbl),
		fmt.Sprintf("CREATE FUNCTION %s() RETURNS int LANGUAGE sql AS $$ SELECT 7 $$", plainFunc),
	)
	// the configured writer function, created on the primary
	admin := rtConnectNode(t, ctx, 0)
	if _, err := admin.Exec(ctx, "CREATE OR REPLACE FUNCTION public.my_writer_func() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$"); err != nil {
		t.Fatal(err)
	}
	rtWaitTable(t, ctx, seq)
	rtWaitReplicas(t, ctx, "SELECT to_regproc('public.my_writer_func') IS NOT NULL AND to_regproc($1) IS NOT NULL AND to_regprocedure($2) IS NOT NULL",
		plainFunc, proc+"(int)")

	fresh := func(t *testing.T) *pgx.Conn { return rtConnect(t, ctx, "auto") }
	nextID := func() int { return 1000 + int(rtUniqSeq.Add(1)) }
	rowOnPrimary := func(t *testing.T, id int, what string) {
		t.Helper()
		if n := rtPrimaryInt(t, ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id = $1", tbl), id); n != 1 {
			t.Errorf("%s: row %d is not on the primary", what, id)
		}
	}

	t.Run("control_plain_select_goes_to_replica", func(t *testing.T) {
		s := rtQueryWhere(t, ctx, fresh(t), "SELECT "+rtWhereCols+" FROM "+tbl+" WHERE id = 1")
		rtCheckReplica(t, s, "plain SELECT of the same table")
	})
	for _, lock := range []string{"FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE", "FOR UPDATE SKIP LOCKED", "for update nowait"} {
		t.Run("select_"+strings.ReplaceAll(strings.ToLower(lock), " ", "_"), func(t *testing.T) {
			c := fresh(t)
			sql := "SELECT " + rtWhereCols + " FROM " + tbl + " WHERE id = 2 " + lock
			rtCheckPrimary(t, rtQueryWhere(t, ctx, c, sql), "SELECT … "+lock)
			rtCheckPrimary(t, rtQueryWhere(t, ctx, c, sql, pgx.QueryExecModeSimpleProtocol), "simple-protocol SELECT … "+lock)
		})
	}
	t.Run("writing_cte", func(t *testing.T) {
		c := fresh(t)
		var s rtServed
		var n int
		err := c.QueryRow(ctx, fmt.Sprintf("WITH d AS (DELETE FROM %s WHERE id = 3 RETURNING *) SELECT %s, (SELECT count(*) FROM d)", tbl, rtWhereCols)).
			Scan(&s.Port, &s.Recovery, &s.PID, &n)
		if err != nil {
			t.Fatal(err)
		}
		rtCheckPrimary(t, s, "WITH d AS (DELETE … RETURNING *) SELECT …")
		if n != 1 {
			t.Errorf("the writing CTE deleted %d rows, want 1", n)
		}
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE id = 3"); n != 0 {
			t.Errorf("the row deleted by the writing CTE is still on the primary")
		}
		s = rtQueryWhere(t, ctx, c, fmt.Sprintf("WITH u AS (UPDATE %s SET v = 'cte' WHERE id = 4 RETURNING id) SELECT %s FROM u", tbl, rtWhereCols))
		rtCheckPrimary(t, s, "WITH u AS (UPDATE …) SELECT …")
		s = rtQueryWhere(t, ctx, c, fmt.Sprintf("WITH i AS (INSERT INTO %s (id, v) VALUES (%d, 'cte') RETURNING id) SELECT %s FROM i", tbl, nextID(), rtWhereCols))
		rtCheckPrimary(t, s, "WITH i AS (INSERT …) SELECT …")
	})
	t.Run("select_into", func(t *testing.T) {
		c := fresh(t)
		nt := rtUniq(t, "into")
		tag, err := c.Exec(ctx, fmt.Sprintf("SELECT id, v INTO %s FROM %s WHERE id <= 10", nt, tbl))
		if err != nil {
			t.Fatalf("SELECT … INTO: %v", err)
		}
		if tag.RowsAffected() < 8 {
			t.Errorf("SELECT … INTO: tag %q", tag)
		}
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM pg_class WHERE relname = $1", nt); n != 1 {
			t.Errorf("the table made by SELECT … INTO is not on the primary")
		}
		nt2 := rtUniq(t, "into_table")
		if _, err := c.Exec(ctx, fmt.Sprintf("SELECT 1 AS x INTO TABLE %s", nt2)); err != nil {
			t.Fatalf("SELECT … INTO TABLE: %v", err)
		}
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM pg_class WHERE relname = $1", nt2); n != 1 {
			t.Errorf("the table made by SELECT … INTO TABLE is not on the primary")
		}
	})
	t.Run("nextval_setval_currval", func(t *testing.T) {
		c := fresh(t)
		var v int64
		var s rtServed
		if err := c.QueryRow(ctx, "SELECT nextval($1::regclass), "+rtWhereCols, seq).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
			t.Fatal(err)
		}
		rtCheckPrimary(t, s, "SELECT nextval(…)")
		if err := c.QueryRow(ctx, "SELECT currval($1::regclass)", seq).Scan(&v); err != nil {
			t.Fatalf("currval after nextval in the same session: %v", err)
		}
		if err := c.QueryRow(ctx, "SELECT setval($1::regclass, 100), "+rtWhereCols, seq).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
			t.Fatal(err)
		}
		rtCheckPrimary(t, s, "SELECT setval(…)")
		if err := c.QueryRow(ctx, "SELECT nextval('"+seq+"')", pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != 101 {
			t.Errorf("nextval after setval(100) = %d, want 101", v)
		}
		if n := rtPrimaryInt(t, ctx, "SELECT last_value FROM "+seq); n != 101 {
			t.Errorf("the primary's sequence is at %d, want 101", n)
		}
	})
	t.Run("pg_advisory_lock_pins", func(t *testing.T) {
		c := fresh(t)
		key := 900000 + rtUniqSeq.Add(1)
		before := rtPins("auto", "advisory_lock")
		s := rtQueryWhere(t, ctx, c, "SELECT "+rtWhereCols+" FROM pg_advisory_lock($1::bigint)", key)
		rtCheckPrimary(t, s, "pg_advisory_lock")
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = $1 AND pid = $2 AND granted", key, s.PID); n != 1 {
			t.Errorf("the advisory lock is not held by backend %d on the primary", s.PID)
		}
		for i := 0; i < 5; i++ {
			s2 := rtQueryWhere(t, ctx, c, rtWhereSQL)
			rtCheckPrimary(t, s2, "plain SELECT after pg_advisory_lock (session pinned)")
			if s2.PID != s.PID {
				t.Errorf("plain SELECT after pg_advisory_lock ran on backend %d, the lock is held by %d", s2.PID, s.PID)
			}
		}
		var unlocked bool
		if err := c.QueryRow(ctx, "SELECT pg_advisory_unlock($1::bigint)", key).Scan(&unlocked); err != nil {
			t.Fatal(err)
		}
		if !unlocked {
			t.Errorf("pg_advisory_unlock returned false: it did not run on the backend holding the lock")
		}
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, rtWhereSQL), "plain SELECT after pg_advisory_unlock (session stays pinned)")
		if after := rtPins("auto", "advisory_lock"); after < before+1 {
			t.Errorf("pins_total{listener=auto,reason=advisory_lock} went from %v to %v, want an increase", before, after)
		}
	})
	t.Run("pg_try_advisory_lock_pins", func(t *testing.T) {
		c := fresh(t)
		key := 900000 + rtUniqSeq.Add(1)
		var got bool
		var s rtServed
		if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1::bigint), "+rtWhereCols, key).Scan(&got, &s.Port, &s.Recovery, &s.PID); err != nil {
			t.Fatal(err)
		}
		rtCheckPrimary(t, s, "pg_try_advisory_lock")
		if !got {
			t.Fatal("pg_try_advisory_lock returned false")
		}
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, rtWhereSQL), "plain SELECT after pg_try_advisory_lock (session pinned)")
		if err := c.QueryRow(ctx, "SELECT pg_advisory_unlock($1::bigint)", key).Scan(&got); err != nil || !got {
			t.Errorf("pg_advisory_unlock: %v %v, want true", got, err)
		}
	})
	t.Run("pg_advisory_xact_lock_in_read", func(t *testing.T) {
		c := fresh(t)
		key := 900000 + rtUniqSeq.Add(1)
		s := rtQueryWhere(t, ctx, c, "SELECT "+rtWhereCols+" FROM pg_advisory_xact_lock($1::bigint)", key)
		rtCheckPrimary(t, s, "SELECT … FROM pg_advisory_xact_lock(…)")
		var s2 rtServed
		var n int
		if err := c.QueryRow(ctx, "SELECT "+rtWhereCols+", (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = $1) FROM pg_advisory_xact_lock_shared($1::bigint)", key).
			Scan(&s2.Port, &s2.Recovery, &s2.PID, &n); err != nil {
			t.Fatal(err)
		}
		rtCheckPrimary(t, s2, "SELECT … pg_advisory_xact_lock_shared(…)")
		if n != 1 {
			t.Errorf("pg_advisory_xact_lock_shared: %d advisory locks visible in its own statement, want 1", n)
		}
		// A transaction-level lock ends with the statement: it does not pin,
		// so reads go back to the replicas.
		rtUntilReplica(t, ctx, "plain read after pg_advisory_xact_lock", func() rtServed {
			return rtQueryWhere(t, ctx, c, rtWhereSQL)
		})
	})
	t.Run("explain_analyze_insert", func(t *testing.T) {
		c := fresh(t)
		for _, form := range []string{"EXPLAIN ANALYZE", "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)", "explain analyse verbose"} {
			id := nextID()
			if _, err := c.Exec(ctx, fmt.Sprintf("%s INSERT INTO %s (id, v, port) VALUES (%d, 'explain', inet_server_port())", form, tbl, id)); err != nil {
				t.Fatalf("%s INSERT: %v", form, err)
			}
			if n := rtPrimaryInt(t, ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id = $1 AND port = $2", tbl), id, rtPrimaryPort()); n != 1 {
				t.Errorf("%s INSERT: the row is not on the primary with the primary's port", form)
			}
		}
	})
	t.Run("copy_from_stdin", func(t *testing.T) {
		c := fresh(t)
		ct := rtUniq(t, "copy")
		rtExecWriter(t, ctx, "CREATE TABLE "+ct+" (id int, v text)")
		rtWaitTable(t, ctx, ct)
		var rows [][]any
		for i := 0; i < 200; i++ {
			rows = append(rows, []any{int32(i), fmt.Sprintf("copy %d", i)})
		}
		n, err := c.CopyFrom(ctx, pgx.Identifier{ct}, []string{"id", "v"}, pgx.CopyFromRows(rows))
		if err != nil {
			t.Fatalf("CopyFrom: %v", err)
		}
		if n != 200 {
			t.Errorf("CopyFrom copied %d rows, want 200", n)
		}
		if m := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+ct); m != 200 {
			t.Errorf("the primary holds %d copied rows, want 200", m)
		}
		// read-your-writes after COPY
		var m int64
		if err := c.QueryRow(ctx, "SELECT count(*) FROM "+ct).Scan(&m); err != nil {
			t.Fatal(err)
		}
		if m != 200 {
			t.Errorf("the session reads %d of its 200 copied rows", m)
		}
		// and the session keeps working for plain reads and writes
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, "INSERT INTO "+ct+" (id, v) VALUES (1000, 'after') RETURNING "+rtWhereCols), "INSERT after COPY")
	})
	t.Run("do_block", func(t *testing.T) {
		c := fresh(t)
		id := nextID()
		if _, err := c.Exec(ctx, fmt.Sprintf("DO $$ BEGIN INSERT INTO %s (id, v, port) VALUES (%d, 'do', inet_server_port()); END $$", tbl, id)); err != nil {
			t.Fatalf("DO: %v", err)
		}
		if n := rtPrimaryInt(t, ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id = $1 AND port = $2", tbl), id, rtPrimaryPort()); n != 1 {
			t.Errorf("DO: the row is not on the primary with the primary's port")
		}
		// a DO block that only raises a notice still runs (on the writer: DO is not a read)
		if _, err := c.Exec(ctx, "DO $body$ BEGIN PERFORM 1; END $body$"); err != nil {
			t.Errorf("DO $body$ … $body$: %v", err)
		}
	})
	t.Run("call_procedure", func(t *testing.T) {
		c := fresh(t)
		id := nextID()
		if _, err := c.Exec(ctx, fmt.Sprintf("CALL %s(%d)", proc, id)); err != nil {
			t.Fatalf("CALL: %v", err)
		}
		id2 := nextID()
		if _, err := c.Exec(ctx, fmt.Sprintf("CALL %s($1)", proc), id2); err != nil {
			t.Fatalf("CALL with a parameter: %v", err)
		}
		for _, i := range []int{id, id2} {
			if n := rtPrimaryInt(t, ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id = $1 AND port = $2", tbl), i, rtPrimaryPort()); n != 1 {
				t.Errorf("CALL: row %d is not on the primary with the primary's port", i)
			}
		}
	})
	t.Run("hint_writer", func(t *testing.T) {
		c := fresh(t)
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, "/* sluice:writer */ "+rtWhereSQL), "/* sluice:writer */ SELECT")
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, "/* sluice:writer */ "+rtWhereSQL, pgx.QueryExecModeSimpleProtocol), "simple-protocol /* sluice:writer */ SELECT")
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, rtWhereSQL+" /* SLUICE:WRITER */"), "SELECT … /* SLUICE:WRITER */ (hint at the end, upper case)")
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, "-- sluice:writer\n"+rtWhereSQL), "-- sluice:writer line comment")
	})
	t.Run("hint_reader", func(t *testing.T) {
		c := fresh(t)
		rtCheckReplica(t, rtQueryWhere(t, ctx, c, "/* sluice:reader */ "+rtWhereSQL), "/* sluice:reader */ SELECT")
		rtCheckReplica(t, rtQueryWhere(t, ctx, c, "/* sluice:reader */ "+rtWhereSQL, pgx.QueryExecModeSimpleProtocol), "simple-protocol /* sluice:reader */ SELECT")
		rtCheckReplica(t, rtQueryWhere(t, ctx, c, "/* sluice:reader */ SELECT "+rtWhereCols+" FROM "+tbl+" WHERE id = 1"), "/* sluice:reader */ SELECT from a table")
	})
	t.Run("configured_writer_function", func(t *testing.T) {
		c := fresh(t)
		var v int
		var s rtServed
		for _, sql := range []string{
			"SELECT my_writer_func(), " + rtWhereCols,
			"SELECT public.my_writer_func(), " + rtWhereCols,
			"SELECT MY_WRITER_FUNC(), " + rtWhereCols,
			"SELECT x, " + rtWhereCols + " FROM my_writer_func() AS x",
		} {
			if err := c.QueryRow(ctx, sql).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			rtCheckPrimary(t, s, sql)
			if v != 42 {
				t.Errorf("%s: my_writer_func() = %d, want 42", sql, v)
			}
		}
		// control: an unconfigured function of the same shape stays on a replica
		c2 := fresh(t)
		if err := c2.QueryRow(ctx, "SELECT "+plainFunc+"(), "+rtWhereCols).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
			t.Fatal(err)
		}
		rtCheckReplica(t, s, "SELECT of an unconfigured function")
	})
	t.Run("multi_statement_with_write", func(t *testing.T) {
		c := fresh(t)
		id := nextID()
		res, err := c.PgConn().Exec(ctx, fmt.Sprintf("SELECT %s; INSERT INTO %s (id, v, port) VALUES (%d, 'multi', inet_server_port())", rtWhereCols, tbl, id)).ReadAll()
		if err != nil {
			t.Fatalf("multi-statement string: %v", err)
		}
		if len(res) != 2 || len(res[0].Rows) != 1 {
			t.Fatalf("multi-statement string: %d results", len(res))
		}
		port, _ := strconv.Atoi(string(res[0].Rows[0][0]))
		rtCheckPrimary(t, rtServed{Port: port, Recovery: string(res[0].Rows[0][1]) == "t"}, "the SELECT of `SELECT …; INSERT …`")
		if n := rtPrimaryInt(t, ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id = $1 AND port = $2", tbl), id, rtPrimaryPort()); n != 1 {
			t.Errorf("`SELECT …; INSERT …`: the row is not on the primary")
		}
		// control: a multi-statement string of reads goes to a replica
		c2 := fresh(t)
		res, err = c2.PgConn().Exec(ctx, "SELECT 1; SELECT "+rtWhereCols).ReadAll()
		if err != nil || len(res) != 2 || len(res[1].Rows) != 1 {
			t.Fatalf("`SELECT 1; SELECT …`: %v", err)
		}
		port, _ = strconv.Atoi(string(res[1].Rows[0][0]))
		rtCheckReplica(t, rtServed{Port: port, Recovery: string(res[1].Rows[0][1]) == "t"}, "`SELECT 1; SELECT …` (only reads)")
	})
	t.Run("write_after_comment", func(t *testing.T) {
		c := fresh(t)
		for _, prefix := range []string{"/* x */ ", "-- x\n", "/* a /* nested */ comment */ ", "/* SELECT */ "} {
			id := nextID()
			s := rtQueryWhere(t, ctx, c, fmt.Sprintf("%sINSERT INTO %s (id, v) VALUES (%d, 'c') RETURNING %s", prefix, tbl, id, rtWhereCols), pgx.QueryExecModeSimpleProtocol)
			rtCheckPrimary(t, s, fmt.Sprintf("%q INSERT …", prefix))
			rowOnPrimary(t, id, fmt.Sprintf("%q INSERT …", prefix))
		}
		id := nextID()
		s := rtQueryWhere(t, ctx, c, fmt.Sprintf("/* x */ INSERT INTO %s (id, v) VALUES ($1, 'c') RETURNING %s", tbl, rtWhereCols), id)
		rtCheckPrimary(t, s, "/* x */ INSERT … (extended protocol)")
		rowOnPrimary(t, id, "/* x */ INSERT … (extended protocol)")
	})
	t.Run("keywords_in_literals_stay_reads", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT 'DELETE FROM " + tbl + "' AS s, " + rtWhereCols,
			"SELECT $$UPDATE " + tbl + " SET v = 1$$ AS s, " + rtWhereCols,
			"SELECT $q$INSERT INTO x VALUES (1)$q$ AS s, " + rtWhereCols,
			"SELECT E'it\\'s a DELETE' AS s, " + rtWhereCols,
			"SELECT 'C:\\' AS s, " + rtWhereCols + " -- DELETE",
			"SELECT 'x' AS \"delete\", " + rtWhereCols,
			"/* DELETE FROM x; */ SELECT 'y' AS s, " + rtWhereCols,
			"SELECT 'for update' AS s, " + rtWhereCols,
		} {
			c := fresh(t)
			var str string
			var s rtServed
			if err := c.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&str, &s.Port, &s.Recovery, &s.PID); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			rtCheckReplica(t, s, sql)
		}
	})
}

// ---------------------------------------------------------------------------
// 6. session state that pins

func TestRoutingPins(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)

	t.Run("temp_table", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		before := rtPins("auto", "temp_table")
		tmp := rtUniq(t, "tmp")
		if _, err := c.Exec(ctx, "CREATE TEMP TABLE "+tmp+" (id int)"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO "+tmp+" SELECT generate_series(1, 3)"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			var n int
			var s rtServed
			var args []any
			if i%2 == 1 {
				args = append(args, pgx.QueryExecModeSimpleProtocol)
			}
			if err := c.QueryRow(ctx, "SELECT count(*), "+rtWhereCols+" FROM "+tmp, args...).Scan(&n, &s.Port, &s.Recovery, &s.PID); err != nil {
				t.Fatalf("read %d of the temp table: %v", i, err)
			}
			if n != 3 {
				t.Errorf("read %d of the temp table: %d rows, want 3", i, n)
			}
			rtCheckPrimary(t, s, "read of a temp table")
			rtCheckPrimary(t, rtQueryWhere(t, ctx, c, rtWhereSQL), "plain SELECT of a session with a temp table")
		}
		if after := rtPins("auto", "temp_table"); after < before+1 {
			t.Errorf("pins_total{listener=auto,reason=temp_table} went from %v to %v, want an increase", before, after)
		}
	})
	t.Run("select_into_temp", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		tmp := rtUniq(t, "tmp")
		if _, err := c.Exec(ctx, "SELECT g AS id INTO TEMP "+tmp+" FROM generate_series(1, 4) g"); err != nil {
			t.Fatal(err)
		}
		var n int
		var s rtServed
		if err := c.QueryRow(ctx, "SELECT count(*), "+rtWhereCols+" FROM "+tmp).Scan(&n, &s.Port, &s.Recovery, &s.PID); err != nil {
			t.Fatalf("read of the temp table made by SELECT … INTO TEMP: %v", err)
		}
		if n != 4 {
			t.Errorf("temp table made by SELECT … INTO TEMP has %d rows, want 4", n)
		}
		rtCheckPrimary(t, s, "read of a temp table made by SELECT … INTO TEMP")
	})
	t.Run("listen", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		before := rtPins("auto", "listen")
		ch := rtUniq(t, "chan")
		if _, err := c.Exec(ctx, "LISTEN "+ch); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			rtCheckPrimary(t, rtQueryWhere(t, ctx, c, rtWhereSQL), "plain SELECT after LISTEN")
		}
		admin := rtConnectNode(t, ctx, 0)
		if _, err := admin.Exec(ctx, "SELECT pg_notify($1, 'hello')", ch); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		n, err := c.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("waiting for the notification: %v", err)
		}
		if n.Channel != ch || n.Payload != "hello" {
			t.Errorf("notification %q/%q, want %q/hello", n.Channel, n.Payload, ch)
		}
		if after := rtPins("auto", "listen"); after < before+1 {
			t.Errorf("pins_total{listener=auto,reason=listen} went from %v to %v, want an increase", before, after)
		}
	})
	t.Run("sql_prepare", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		before := rtPins("auto", "sql_prepare")
		name := rtUniq(t, "q")
		if _, err := c.Exec(ctx, "PREPARE "+name+"(int) AS SELECT $1 + 1, "+rtWhereCols); err != nil {
			t.Fatal(err)
		}
		var first rtServed
		for i := 0; i < 10; i++ {
			var v int
			var s rtServed
			var args []any
			if i%2 == 1 {
				args = append(args, pgx.QueryExecModeSimpleProtocol)
			}
			if err := c.QueryRow(ctx, fmt.Sprintf("EXECUTE %s(%d)", name, i), args...).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
				t.Fatalf("EXECUTE %d: %v", i, err)
			}
			if v != i+1 {
				t.Errorf("EXECUTE %s(%d) = %d, want %d", name, i, v, i+1)
			}
			rtCheckPrimary(t, s, "EXECUTE of a SQL-prepared statement")
			if i == 0 {
				first = s
			} else if s.PID != first.PID {
				t.Errorf("EXECUTE %d ran on backend %d, the first on %d", i, s.PID, first.PID)
			}
			rtCheckPrimary(t, rtQueryWhere(t, ctx, c, rtWhereSQL), "plain SELECT after PREPARE (session pinned)")
		}
		if _, err := c.Exec(ctx, "DEALLOCATE "+name); err != nil {
			t.Errorf("DEALLOCATE: %v", err)
		}
		if after := rtPins("auto", "sql_prepare"); after < before+1 {
			t.Errorf("pins_total{listener=auto,reason=sql_prepare} went from %v to %v, want an increase", before, after)
		}
	})
	t.Run("declare_with_hold", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		before := rtPins("auto", "cursor_with_hold")
		cur := rtUniq(t, "cur")
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "DECLARE "+cur+" CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 10) g"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		fetch := func(want ...int) {
			t.Helper()
			rows, err := c.Query(ctx, fmt.Sprintf("FETCH %d FROM %s", len(want), cur), pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				t.Fatalf("FETCH after COMMIT: %v", err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
			if err != nil {
				t.Fatalf("FETCH after COMMIT: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("FETCH after COMMIT returned %v, want %v", got, want)
			}
		}
		fetch(1, 2, 3)
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, rtWhereSQL), "plain SELECT with an open WITH HOLD cursor")
		fetch(4, 5, 6)
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, rtWhereSQL, pgx.QueryExecModeSimpleProtocol), "plain simple-protocol SELECT with an open WITH HOLD cursor")
		fetch(7, 8, 9)
		if _, err := c.Exec(ctx, "CLOSE "+cur); err != nil {
			t.Errorf("CLOSE: %v", err)
		}
		if after := rtPins("auto", "cursor_with_hold"); after < before+1 {
			t.Errorf("pins_total{listener=auto,reason=cursor_with_hold} went from %v to %v, want an increase", before, after)
		}
	})
}

// TestRoutingSessionStateFromReadOnlyTransaction checks that session state
// created inside a read-only transaction (which runs on a replica) is not
// silently lost once the transaction ends: the routing contract says session
// state is either replayed elsewhere or pins the session, and here the state
// lives on the replica that ran the transaction.
func TestRoutingSessionStateFromReadOnlyTransaction(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)

	begin := func(t *testing.T, c *pgx.Conn) rtServed {
		t.Helper()
		if _, err := c.Exec(ctx, "BEGIN READ ONLY"); err != nil {
			t.Fatal(err)
		}
		s := rtQueryWhere(t, ctx, c, rtWhereSQL)
		rtCheckReplica(t, s, "SELECT in BEGIN READ ONLY")
		return s
	}
	commit := func(t *testing.T, c *pgx.Conn) {
		t.Helper()
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("cursor_with_hold", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		begin(t, c)
		cur := rtUniq(t, "cur")
		if _, err := c.Exec(ctx, "DECLARE "+cur+" CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 5) g"); err != nil {
			t.Fatal(err)
		}
		commit(t, c)
		var v int
		if err := c.QueryRow(ctx, "FETCH 1 FROM "+cur, pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil {
			t.Fatalf("FETCH from a WITH HOLD cursor declared in a read-only transaction, after COMMIT: %v", err)
		}
		if v != 1 {
			t.Errorf("FETCH returned %d, want 1", v)
		}
	})
	t.Run("sql_prepare", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		begin(t, c)
		name := rtUniq(t, "q")
		if _, err := c.Exec(ctx, "PREPARE "+name+" AS SELECT 5"); err != nil {
			t.Fatal(err)
		}
		commit(t, c)
		var v int
		if err := c.QueryRow(ctx, "EXECUTE "+name, pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil {
			t.Fatalf("EXECUTE of a statement PREPAREd in a read-only transaction, after COMMIT: %v", err)
		}
		if v != 5 {
			t.Errorf("EXECUTE returned %d, want 5", v)
		}
	})
	t.Run("advisory_lock", func(t *testing.T) {
		c := rtConnect(t, ctx, "auto")
		begin(t, c)
		key := 900000 + rtUniqSeq.Add(1)
		if _, err := c.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_lock(%d)", key)); err != nil {
			t.Fatal(err)
		}
		commit(t, c)
		var ok bool
		if err := c.QueryRow(ctx, fmt.Sprintf("SELECT pg_advisory_unlock(%d)", key), pgx.QueryExecModeSimpleProtocol).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("pg_advisory_unlock after a read-only transaction took the lock returned false: the unlock ran on a backend that does not hold the session lock")
		}
	})
}

// ---------------------------------------------------------------------------
// 7. SET replay

// settingRead reads a setting and reports where it was read.
func rtSettingRead(t testing.TB, ctx context.Context, c *pgx.Conn, expr string, args ...any) (string, rtServed) {
	t.Helper()
	var v string
	var s rtServed
	if err := c.QueryRow(ctx, "SELECT "+expr+", "+rtWhereCols, args...).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
		t.Fatalf("SELECT %s: %v", expr, err)
	}
	return v, s
}

// show runs SHOW name and returns the value.
func rtShow(t testing.TB, ctx context.Context, c *pgx.Conn, name string, args ...any) string {
	t.Helper()
	var v string
	if err := c.QueryRow(ctx, "SHOW "+name, args...).Scan(&v); err != nil {
		t.Fatalf("SHOW %s: %v", name, err)
	}
	return v
}

// checkSettingEverywhere checks that the session sees want for the setting
// both on a replica (polling until a read lands on one, checking every
// answer) and on the primary (through a write, and a writer-hinted SHOW).
func rtCheckSettingEverywhere(t testing.TB, ctx context.Context, c *pgx.Conn, tbl, setting, want string) {
	t.Helper()
	expr := fmt.Sprintf("current_setting('%s')", setting)
	rtUntilReplica(t, ctx, "read of "+setting, func() rtServed {
		v, s := rtSettingRead(t, ctx, c, expr)
		if v != want {
			t.Fatalf("read served by %s sees %s = %q, want %q", s, setting, v, want)
		}
		if v := rtShow(t, ctx, c, setting); v != want {
			t.Fatalf("SHOW %s = %q, want %q", setting, v, want)
		}
		if v := rtShow(t, ctx, c, setting, pgx.QueryExecModeSimpleProtocol); v != want {
			t.Fatalf("simple-protocol SHOW %s = %q, want %q", setting, v, want)
		}
		return s
	})
	// on a replica now: SHOW once more while there
	if v := rtShow(t, ctx, c, setting); v != want {
		t.Errorf("SHOW %s on a replica = %q, want %q", setting, v, want)
	}
	id := 10000 + int(rtUniqSeq.Add(1))
	var v string
	var s rtServed
	err := c.QueryRow(ctx, fmt.Sprintf("INSERT INTO %s (id, v) VALUES ($1, %s) RETURNING v, %s", tbl, expr, rtWhereCols), id).
		Scan(&v, &s.Port, &s.Recovery, &s.PID)
	if err != nil {
		t.Fatal(err)
	}
	rtCheckPrimary(t, s, "INSERT reading "+setting)
	if v != want {
		t.Errorf("a write on the primary sees %s = %q, want %q", setting, v, want)
	}
	v, s = rtSettingRead(t, ctx, c, "/* sluice:writer */ "+expr)
	rtCheckPrimary(t, s, "writer-hinted read of "+setting)
	if v != want {
		t.Errorf("a writer-hinted read sees %s = %q, want %q", setting, v, want)
	}
}

func TestRoutingSessionSetReplay(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 0)

	// baseline returns a fresh session whose first read (on a replica) has
	// opened a replica connection, and the session's default application_name.
	baseline := func(t *testing.T) (*pgx.Conn, string) {
		c := rtConnect(t, ctx, "auto")
		v, s := rtSettingRead(t, ctx, c, "current_setting('application_name')")
		rtCheckReplica(t, s, "first read of a fresh session")
		return c, v
	}

	t.Run("application_name_and_reset", func(t *testing.T) {
		c, base := baseline(t)
		app := rtUniq(t, "app")
		if _, err := c.Exec(ctx, "SET application_name = '"+app+"'"); err != nil {
			t.Fatal(err)
		}
		rtCheckSettingEverywhere(t, ctx, c, tbl, "application_name", app)
		if _, err := c.Exec(ctx, "RESET application_name"); err != nil {
			t.Fatal(err)
		}
		rtCheckSettingEverywhere(t, ctx, c, tbl, "application_name", base)
	})
	t.Run("search_path", func(t *testing.T) {
		c, _ := baseline(t)
		schema := rtUniq(t, "schema")
		rtExecWriter(t, ctx,
			"CREATE SCHEMA "+schema,
			"CREATE TABLE "+schema+".only_here (v text)",
			"INSERT INTO "+schema+".only_here VALUES ('in-schema')",
		)
		rtWaitReplicas(t, ctx, "SELECT to_regclass($1) IS NOT NULL AND (SELECT count(*) FROM "+schema+".only_here) = 1", schema+".only_here")
		if _, err := c.Exec(ctx, "SET search_path = "+schema+", public"); err != nil {
			t.Fatal(err)
		}
		rtUntilReplica(t, ctx, "read through the search_path", func() rtServed {
			var v string
			var s rtServed
			if err := c.QueryRow(ctx, "SELECT v, "+rtWhereCols+" FROM only_here").Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
				t.Fatalf("unqualified read after SET search_path: %v", err)
			}
			if v != "in-schema" {
				t.Fatalf("read %q, want in-schema", v)
			}
			return s
		})
		if v := rtShow(t, ctx, c, "search_path"); !strings.HasPrefix(v, schema) {
			t.Errorf("SHOW search_path on a replica = %q, want it to start with %s", v, schema)
		}
		s := rtQueryWhere(t, ctx, c, "INSERT INTO only_here VALUES ('from-write') RETURNING "+rtWhereCols)
		rtCheckPrimary(t, s, "unqualified INSERT after SET search_path")
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+schema+".only_here WHERE v = 'from-write'"); n != 1 {
			t.Errorf("the unqualified INSERT did not land in %s on the primary", schema)
		}
	})
	t.Run("time_zone", func(t *testing.T) {
		c, _ := baseline(t)
		if _, err := c.Exec(ctx, "SET TIME ZONE 'Asia/Tokyo'"); err != nil {
			t.Fatal(err)
		}
		rtCheckSettingEverywhere(t, ctx, c, tbl, "TimeZone", "Asia/Tokyo")
		// the setting has its effect on the replica too
		rtUntilReplica(t, ctx, "time zone conversion", func() rtServed {
			var h string
			var s rtServed
			if err := c.QueryRow(ctx, "SELECT to_char(timestamptz '2020-01-01 00:00:00+00', 'HH24'), "+rtWhereCols).Scan(&h, &s.Port, &s.Recovery, &s.PID); err != nil {
				t.Fatal(err)
			}
			if h != "09" {
				t.Fatalf("midnight UTC shown as %s h by %s, want 09 (Asia/Tokyo)", h, s)
			}
			return s
		})
	})
	t.Run("set_via_extended_protocol", func(t *testing.T) {
		c, _ := baseline(t)
		app := rtUniq(t, "ext")
		// pgx Query without arguments in the default mode uses Parse/Bind/Execute
		rows, err := c.Query(ctx, "SET application_name = '"+app+"'")
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rtCheckSettingEverywhere(t, ctx, c, tbl, "application_name", app)
	})
	t.Run("set_in_committed_transaction_is_kept", func(t *testing.T) {
		c, _ := baseline(t)
		app := rtUniq(t, "committed")
		for _, q := range []string{"BEGIN", "SET application_name = '" + app + "'", "COMMIT"} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		rtCheckSettingEverywhere(t, ctx, c, tbl, "application_name", app)
	})
	t.Run("set_in_rolled_back_transaction_is_not_replayed", func(t *testing.T) {
		c, base := baseline(t)
		app := rtUniq(t, "rolledback")
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SET application_name = '"+app+"'"); err != nil {
			t.Fatal(err)
		}
		if v, _ := rtSettingRead(t, ctx, c, "current_setting('application_name')"); v != app {
			t.Fatalf("inside the transaction application_name = %q, want %q", v, app)
		}
		if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		rtCheckSettingEverywhere(t, ctx, c, tbl, "application_name", base)
	})
	t.Run("set_in_failed_transaction_is_not_replayed", func(t *testing.T) {
		c, base := baseline(t)
		app := rtUniq(t, "failed")
		for _, q := range []string{"BEGIN", "SET application_name = '" + app + "'"} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if _, err := c.Exec(ctx, "SELECT 1/0"); rtPgCode(err) != "22012" {
			t.Fatalf("SELECT 1/0: %v", err)
		}
		if _, err := c.Exec(ctx, "COMMIT"); err != nil { // COMMIT of a failed transaction rolls back
			t.Fatal(err)
		}
		rtCheckSettingEverywhere(t, ctx, c, tbl, "application_name", base)
	})
	t.Run("set_local_is_not_kept", func(t *testing.T) {
		c, base := baseline(t)
		app := rtUniq(t, "local")
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SET LOCAL application_name = '"+app+"'"); err != nil {
			t.Fatal(err)
		}
		if v, _ := rtSettingRead(t, ctx, c, "current_setting('application_name')"); v != app {
			t.Fatalf("inside the transaction application_name = %q, want %q", v, app)
		}
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		rtCheckSettingEverywhere(t, ctx, c, tbl, "application_name", base)
	})
}

// ---------------------------------------------------------------------------
// 8. reader and writer endpoints

func TestRoutingReaderEndpoint(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	seq := rtUniq(t, "seq")
	rtNewTable(t, ctx, tbl, 3)
	rtExecWriter(t, ctx, "CREATE SEQUENCE "+seq)
	rtWaitTable(t, ctx, seq)

	c := rtConnect(t, ctx, "reader")
	for _, q := range []string{
		"INSERT INTO " + tbl + " (id, v) VALUES (100, 'no')",
		"UPDATE " + tbl + " SET v = 'no'",
		"DELETE FROM " + tbl,
		"CREATE TABLE " + rtUniq(t, "no") + " (id int)",
		"SELECT nextval('" + seq + "')",
		"/* sluice:writer */ INSERT INTO " + tbl + " (id, v) VALUES (101, 'no')",
	} {
		_, err := c.Exec(ctx, q)
		if rtPgCode(err) != "25006" {
			t.Errorf("reader endpoint: %s: got %v, want SQLSTATE 25006", q, err)
		}
		// the session still works after the error, on a replica
		rtCheckReplica(t, rtQueryWhere(t, ctx, c, rtWhereSQL), "reader endpoint: read after a refused write")
	}
	// extended protocol write
	_, err := c.Exec(ctx, "INSERT INTO "+tbl+" (id, v) VALUES ($1, $2)", 102, "no")
	if rtPgCode(err) != "25006" {
		t.Errorf("reader endpoint: extended-protocol INSERT: got %v, want SQLSTATE 25006", err)
	}
	if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE id >= 100 OR v = 'no'"); n != 0 {
		t.Errorf("writes through the reader endpoint reached the primary")
	}
	var n int
	var s rtServed
	if err := c.QueryRow(ctx, "SELECT count(*), "+rtWhereCols+" FROM "+tbl).Scan(&n, &s.Port, &s.Recovery, &s.PID); err != nil {
		t.Fatal(err)
	}
	rtCheckReplica(t, s, "reader endpoint: read")
	if n != 3 {
		t.Errorf("reader endpoint: read %d rows, want 3", n)
	}
	// transactions and FOR UPDATE go to readers as well
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	rtCheckReplica(t, rtQueryWhere(t, ctx, c, rtWhereSQL), "reader endpoint: SELECT in BEGIN")
	if _, err := c.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, "SELECT * FROM "+tbl+" FOR UPDATE")
	if rtPgCode(err) != "25006" {
		t.Errorf("reader endpoint: SELECT … FOR UPDATE: got %v, want SQLSTATE 25006", err)
	}
}

func TestRoutingWriterEndpoint(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 3)
	c := rtConnect(t, ctx, "writer")
	for i := 0; i < 10; i++ {
		var args []any
		if i%2 == 1 {
			args = append(args, pgx.QueryExecModeSimpleProtocol)
		}
		rtCheckPrimary(t, rtQueryWhere(t, ctx, c, "SELECT "+rtWhereCols+" FROM "+tbl+" LIMIT 1", args...), "writer endpoint: plain read")
	}
	rtCheckPrimary(t, rtQueryWhere(t, ctx, c, "/* sluice:reader */ "+rtWhereSQL), "writer endpoint: reader-hinted read")
	if _, err := c.Exec(ctx, "BEGIN READ ONLY"); err != nil {
		t.Fatal(err)
	}
	rtCheckPrimary(t, rtQueryWhere(t, ctx, c, rtWhereSQL), "writer endpoint: SELECT in BEGIN READ ONLY")
	if _, err := c.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	rtCheckPrimary(t, rtQueryWhere(t, ctx, c, "INSERT INTO "+tbl+" (id, v) VALUES (10, 'w') RETURNING "+rtWhereCols), "writer endpoint: INSERT")
	// a fresh writer session's very first statement too
	c2 := rtConnect(t, ctx, "writer")
	rtCheckPrimary(t, rtQueryWhere(t, ctx, c2, rtWhereSQL), "writer endpoint: first read of a session")
}

// ---------------------------------------------------------------------------
// 9. prepared statements and the pgx query modes

func TestRoutingPreparedStatementCache(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)

	const readConst = "SELECT $1::int + 1000, " + rtWhereCols
	const queries = 500

	t.Run("auto", func(t *testing.T) {
		tbl := rtUniq(t, "t")
		rtNewTable(t, ctx, tbl, 0)
		c := rtConnect(t, ctx, "auto") // default mode: QueryExecModeCacheStatement
		if m := c.Config().DefaultQueryExecMode; m != pgx.QueryExecModeCacheStatement {
			t.Fatalf("default query exec mode is %v", m)
		}
		readBack := "SELECT v, " + rtWhereCols + " FROM " + tbl + " WHERE id = $1"
		write := "INSERT INTO " + tbl + " (id, v) VALUES ($1, $2) RETURNING id, v, " + rtWhereCols
		ports := map[string]map[int]bool{"const": {}, "back": {}}
		// The first reads of the fresh session go to a replica, where the
		// statements get prepared; after the first write they are re-used on
		// the writer (read-your-writes) and, when a replica catches up, on
		// a replica again.
		for i := 0; i < queries; i++ {
			var s rtServed
			switch {
			case i%2 == 0 && (i/2)%2 == 0:
				var v int
				if err := c.QueryRow(ctx, readConst, i).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatalf("query %d (read): %v", i, err)
				}
				if v != i+1000 {
					t.Fatalf("query %d (read): got %d, want %d", i, v, i+1000)
				}
				if i == 0 {
					rtCheckReplica(t, s, "first read of a fresh session")
				}
				ports["const"][s.Port] = true
			case i%2 == 0:
				var v string
				err := c.QueryRow(ctx, readBack, i-1).Scan(&v, &s.Port, &s.Recovery, &s.PID)
				if err != nil {
					t.Fatalf("query %d (read of row %d written by the session): %v", i, i-1, err)
				}
				if v != "w"+strconv.Itoa(i-1) {
					t.Fatalf("query %d: read %q, want %q", i, v, "w"+strconv.Itoa(i-1))
				}
				ports["back"][s.Port] = true
			default:
				var id int
				var v string
				if err := c.QueryRow(ctx, write, i, "w"+strconv.Itoa(i)).Scan(&id, &v, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatalf("query %d (write): %v", i, err)
				}
				if id != i || v != "w"+strconv.Itoa(i) {
					t.Fatalf("query %d (write): got %d %q", i, id, v)
				}
				rtCheckPrimary(t, s, fmt.Sprintf("query %d (write)", i))
			}
		}
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl); n != queries/2 {
			t.Errorf("the primary holds %d rows, want %d", n, queries/2)
		}
		if !ports["const"][rtPrimaryPort()] {
			t.Logf("note: every constant read was served by a replica (%v)", ports["const"])
		}
		t.Logf("servers of the reads: %v", ports)
	})

	// On the eventual listener every read goes to a replica and every write
	// to the primary, so the cached statements are certainly prepared on
	// one backend and re-used on others.
	t.Run("eventual", func(t *testing.T) {
		tbl := rtUniq(t, "t")
		rtNewTable(t, ctx, tbl, 20)
		c := rtConnect(t, ctx, "eventual")
		readRow := "SELECT v, " + rtWhereCols + " FROM " + tbl + " WHERE id = $1"
		write := "INSERT INTO " + tbl + " (id, v) VALUES ($1, $2) RETURNING id, " + rtWhereCols
		readers := map[int]bool{}
		for i := 0; i < queries; i++ {
			var s rtServed
			switch i % 4 {
			case 0:
				var v int
				if err := c.QueryRow(ctx, readConst, i).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatalf("query %d (read): %v", i, err)
				}
				if v != i+1000 {
					t.Fatalf("query %d (read): got %d, want %d", i, v, i+1000)
				}
				rtCheckReplica(t, s, fmt.Sprintf("query %d (read)", i))
				readers[s.Port] = true
			case 2:
				id := 1 + (i/4)%20
				var v string
				if err := c.QueryRow(ctx, readRow, id).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatalf("query %d (read of row %d): %v", i, id, err)
				}
				if v != "row"+strconv.Itoa(id) {
					t.Fatalf("query %d: read %q, want %q", i, v, "row"+strconv.Itoa(id))
				}
				rtCheckReplica(t, s, fmt.Sprintf("query %d (read)", i))
			default:
				var id int
				if err := c.QueryRow(ctx, write, 1000+i, "w").Scan(&id, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatalf("query %d (write): %v", i, err)
				}
				if id != 1000+i {
					t.Fatalf("query %d (write): id %d", i, id)
				}
				rtCheckPrimary(t, s, fmt.Sprintf("query %d (write)", i))
			}
			if t.Failed() {
				t.FailNow()
			}
		}
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE id >= 1000"); n != queries/2 {
			t.Errorf("the primary holds %d written rows, want %d", n, queries/2)
		}
	})
}

func TestRoutingExplicitPrepare(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 0)

	for _, listener := range []string{"auto", "eventual"} {
		t.Run(listener, func(t *testing.T) {
			c := rtConnect(t, ctx, listener)
			if _, err := c.Prepare(ctx, "rt_read", "SELECT $1::int * 2, "+rtWhereCols); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Prepare(ctx, "rt_write", "INSERT INTO "+tbl+" (id, v) VALUES ($1, $2) RETURNING "+rtWhereCols); err != nil {
				t.Fatal(err)
			}
			var v int
			var s rtServed
			if err := c.QueryRow(ctx, "rt_read", 21).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
				t.Fatal(err)
			}
			if v != 42 {
				t.Errorf("rt_read(21) = %d, want 42", v)
			}
			rtCheckReplica(t, s, "first execution of a named read statement in a fresh session")
			base := int(rtUniqSeq.Add(1000))
			for i := 1; i <= 30; i++ {
				w := rtQueryWhere(t, ctx, c, "rt_write", base+i, "p")
				rtCheckPrimary(t, w, fmt.Sprintf("rt_write #%d", i))
				if err := c.QueryRow(ctx, "rt_read", i).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatalf("rt_read #%d: %v", i, err)
				}
				if v != 2*i {
					t.Errorf("rt_read(%d) = %d, want %d", i, v, 2*i)
				}
				if listener == "eventual" {
					rtCheckReplica(t, s, fmt.Sprintf("rt_read #%d on the eventual listener", i))
				}
			}
			if n := rtPrimaryInt(t, ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id > %d AND id <= %d", tbl, base, base+30)); n != 30 {
				t.Errorf("the primary holds %d of the 30 rows written by rt_write", n)
			}
			// redefine rt_read: no backend may keep running the old text
			if err := c.Deallocate(ctx, "rt_read"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Prepare(ctx, "rt_read", "SELECT $1::int * 3, "+rtWhereCols); err != nil {
				t.Fatal(err)
			}
			sawReplica, sawPrimary := false, false
			for i := 1; i <= 10; i++ {
				w := rtQueryWhere(t, ctx, c, "rt_write", base+100+i, "p")
				rtCheckPrimary(t, w, "rt_write after the redefinition")
				if err := c.QueryRow(ctx, "rt_read", i).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatalf("redefined rt_read #%d: %v", i, err)
				}
				if v != 3*i {
					t.Errorf("redefined rt_read(%d) = %d (served by %s), want %d", i, v, s, 3*i)
				}
				sawReplica = sawReplica || rtIsReplica(s)
				sawPrimary = sawPrimary || s.Port == rtPrimaryPort()
			}
			// make sure the redefined statement also ran on a replica
			rtUntilReplica(t, ctx, "redefined rt_read", func() rtServed {
				if err := c.QueryRow(ctx, "rt_read", 5).Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatalf("redefined rt_read: %v", err)
				}
				if v != 15 {
					t.Fatalf("redefined rt_read(5) = %d (served by %s), want 15", v, s)
				}
				return s
			})
			t.Logf("redefined rt_read served by a replica: %v, by the primary: %v", sawReplica, sawPrimary)
		})
	}
}

func TestRoutingQueryExecModes(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 0)
	modes := []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement,
		pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec,
		pgx.QueryExecModeExec,
		pgx.QueryExecModeSimpleProtocol,
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			c := rtConnectWith(t, ctx, "auto", func(cfg *pgx.ConnConfig) { cfg.DefaultQueryExecMode = mode })
			var n int
			var str string
			var s rtServed
			if err := c.QueryRow(ctx, "SELECT $1::int + 1, $2::text, "+rtWhereCols, 41, "it's").Scan(&n, &str, &s.Port, &s.Recovery, &s.PID); err != nil {
				t.Fatal(err)
			}
			if n != 42 || str != "it's" {
				t.Errorf("read returned %d %q, want 42 \"it's\"", n, str)
			}
			rtCheckReplica(t, s, "first read of a fresh session")
			for i := 0; i < 10; i++ {
				id := 100000 + int(rtUniqSeq.Add(1))
				w := rtQueryWhere(t, ctx, c, "INSERT INTO "+tbl+" (id, v) VALUES ($1, $2) RETURNING "+rtWhereCols, id, "m'"+strconv.Itoa(i))
				rtCheckPrimary(t, w, "INSERT")
				var v string
				if err := c.QueryRow(ctx, "SELECT v FROM "+tbl+" WHERE id = $1", id).Scan(&v); err != nil {
					t.Fatalf("read-your-writes of row %d: %v", id, err)
				}
				if v != "m'"+strconv.Itoa(i) {
					t.Errorf("read %q, want %q", v, "m'"+strconv.Itoa(i))
				}
				if err := c.QueryRow(ctx, "SELECT $1::int + 1", i).Scan(&n); err != nil || n != i+1 {
					t.Errorf("SELECT %d + 1 = %d (%v)", i, n, err)
				}
				tag, err := c.Exec(ctx, "UPDATE "+tbl+" SET v = v || $2 WHERE id = $1", id, "!")
				if err != nil || tag.RowsAffected() != 1 {
					t.Errorf("UPDATE: %v %v", tag, err)
				}
			}
			// after the session's writes, reads reach a replica again
			rtUntilReplica(t, ctx, "read", func() rtServed {
				if err := c.QueryRow(ctx, "SELECT $1::int + 1, $2::text, "+rtWhereCols, 1, "x").Scan(&n, &str, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatal(err)
				}
				if n != 2 || str != "x" {
					t.Fatalf("read returned %d %q", n, str)
				}
				return s
			})
		})
	}
}

func TestRoutingBatch(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	tbl := rtUniq(t, "t")
	rtNewTable(t, ctx, tbl, 0)
	modes := []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement,
		pgx.QueryExecModeDescribeExec,
		pgx.QueryExecModeExec,
		pgx.QueryExecModeSimpleProtocol,
	}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			c := rtConnectWith(t, ctx, "auto", func(cfg *pgx.ConnConfig) { cfg.DefaultQueryExecMode = mode })

			// a batch of reads runs on one replica
			rb := &pgx.Batch{}
			for i := 0; i < 5; i++ {
				rb.Queue("SELECT $1::int * 10, "+rtWhereCols, i)
			}
			br := c.SendBatch(ctx, rb)
			var first rtServed
			for i := 0; i < 5; i++ {
				var v int
				var s rtServed
				if err := br.QueryRow().Scan(&v, &s.Port, &s.Recovery, &s.PID); err != nil {
					t.Fatalf("read batch, result %d: %v", i, err)
				}
				if v != i*10 {
					t.Errorf("read batch, result %d = %d, want %d", i, v, i*10)
				}
				rtCheckReplica(t, s, fmt.Sprintf("read batch, result %d", i))
				if i == 0 {
					first = s
				} else if s != first {
					t.Errorf("read batch, result %d served by %s, result 0 by %s", i, s, first)
				}
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}

			// a batch mixing reads and writes is one pipeline: it runs on the
			// primary, in order
			id := 200000 + int(rtUniqSeq.Add(10))
			b := &pgx.Batch{}
			b.Queue("SELECT $1::int + 1, "+rtWhereCols, 1)
			b.Queue("INSERT INTO "+tbl+" (id, v) VALUES ($1, $2) RETURNING id, "+rtWhereCols, id, "a")
			b.Queue("SELECT count(*), "+rtWhereCols+" FROM "+tbl+" WHERE id = $1", id)
			b.Queue("UPDATE "+tbl+" SET v = $2 WHERE id = $1 RETURNING v, "+rtWhereCols, id, "b")
			b.Queue("SELECT v, "+rtWhereCols+" FROM "+tbl+" WHERE id = $1", id)
			b.Queue("INSERT INTO "+tbl+" (id, v) VALUES ($1, $2) RETURNING id, "+rtWhereCols, id+1, "c")
			b.Queue("SELECT string_agg(v, ',' ORDER BY id), "+rtWhereCols+" FROM "+tbl+" WHERE id IN ($1, $2)", id, id+1)
			br = c.SendBatch(ctx, b)
			var all []rtServed
			scan := func(what string, dst ...any) rtServed {
				t.Helper()
				var s rtServed
				if err := br.QueryRow().Scan(append(dst, &s.Port, &s.Recovery, &s.PID)...); err != nil {
					t.Fatalf("mixed batch, %s: %v", what, err)
				}
				all = append(all, s)
				return s
			}
			var n, gotID int
			var v string
			scan("read 1", &n)
			if n != 2 {
				t.Errorf("mixed batch, read 1 = %d, want 2", n)
			}
			scan("insert", &gotID)
			if gotID != id {
				t.Errorf("mixed batch, insert returned id %d, want %d", gotID, id)
			}
			scan("count", &n)
			if n != 1 {
				t.Errorf("mixed batch, count after insert = %d, want 1", n)
			}
			scan("update", &v)
			if v != "b" {
				t.Errorf("mixed batch, update returned %q", v)
			}
			scan("read after update", &v)
			if v != "b" {
				t.Errorf("mixed batch, read after update = %q, want b", v)
			}
			scan("second insert", &gotID)
			scan("aggregate", &v)
			if v != "b,c" {
				t.Errorf("mixed batch, aggregate = %q, want b,c", v)
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			for i, s := range all {
				rtCheckPrimary(t, s, fmt.Sprintf("mixed batch, result %d", i))
				if s.PID != all[0].PID {
					t.Errorf("mixed batch, result %d ran on backend %d, result 0 on %d", i, s.PID, all[0].PID)
				}
			}
			if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE id IN ($1, $2)", id, id+1); n != 2 {
				t.Errorf("the primary holds %d of the batch's 2 rows", n)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 10. psql

func rtPsqlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed")
	}
	return p
}

// runPsql runs psql against the auto listener with extra arguments and
// returns its standard output; it fails the test on a non-zero exit.
func rtRunPsql(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	full := append([]string{appDSN(t, "auto"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-P", "pager=off"}, args...)
	cmd := exec.CommandContext(ctx, rtPsqlPath(t), full...)
	env := []string{"PGCONNECT_TIMEOUT=10"}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PG") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("psql %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

func rtOutputLines(s string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		lines = append(lines, strings.TrimRight(l, "\r"))
	}
	return lines
}

func TestRoutingPsql(t *testing.T) {
	ctx := testCtx(t)
	rtPsqlPath(t)
	rtWaitProxyReady(t, ctx)

	t.Run("read_on_replica", func(t *testing.T) {
		out := rtRunPsql(t, ctx, "", "-c", "select pg_is_in_recovery()")
		if strings.TrimSpace(out) != "t" {
			t.Errorf("psql -c 'select pg_is_in_recovery()' printed %q, want t", out)
		}
		out = rtRunPsql(t, ctx, "", "-c", "select inet_server_port()")
		port, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil || !rtReplicaPorts()[port] {
			t.Errorf("psql -c 'select inet_server_port()' printed %q, want a replica port %v", out, rtSortedPorts(rtReplicaPorts()))
		}
		out = rtRunPsql(t, ctx, "", "-c", "/* sluice:writer */ select pg_is_in_recovery()")
		if strings.TrimSpace(out) != "f" {
			t.Errorf("psql -c '/* sluice:writer */ select pg_is_in_recovery()' printed %q, want f", out)
		}
	})

	t.Run("copy", func(t *testing.T) {
		tbl := rtUniq(t, "t")
		rtNewTable(t, ctx, tbl, 0)
		dir := t.TempDir()
		in := filepath.Join(dir, "in.csv")
		content := "1,one\n2,two\n3,\"three, with comma\"\n"
		if err := os.WriteFile(in, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		out := rtRunPsql(t, ctx, "", "-c", fmt.Sprintf(`\copy %s (id, v) from '%s' with (format csv)`, tbl, in))
		if strings.TrimSpace(out) != "COPY 3" {
			t.Errorf(`\copy from printed %q, want "COPY 3"`, out)
		}
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl); n != 3 {
			t.Fatalf("the primary holds %d rows after \\copy from, want 3", n)
		}
		rtWaitReplicas(t, ctx, "SELECT count(*) = 3 FROM "+tbl)
		outFile := filepath.Join(dir, "out.csv")
		out = rtRunPsql(t, ctx, "", "-c", fmt.Sprintf(`\copy (select id, v from %s order by id) to '%s' with (format csv)`, tbl, outFile))
		if strings.TrimSpace(out) != "COPY 3" {
			t.Errorf(`\copy to printed %q, want "COPY 3"`, out)
		}
		got, err := os.ReadFile(outFile)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Errorf("\\copy to wrote %q, want %q", got, content)
		}
		// COPY TO STDOUT through the auto endpoint is a read
		out = rtRunPsql(t, ctx, "", "-c", "copy (select pg_is_in_recovery()) to stdout")
		if strings.TrimSpace(out) != "t" {
			t.Errorf("COPY (SELECT pg_is_in_recovery()) TO STDOUT printed %q, want t", out)
		}
	})

	t.Run("script_with_transaction", func(t *testing.T) {
		tbl := rtUniq(t, "t")
		rtNewTable(t, ctx, tbl, 0)
		script := fmt.Sprintf(`select 'start-recovery=' || pg_is_in_recovery();
begin;
select 'tx=' || inet_server_port() || '/' || pg_backend_pid();
insert into %[1]s (id, v) values (1, 'one');
insert into %[1]s (id, v) values (2, 'two');
select 'tx=' || inet_server_port() || '/' || pg_backend_pid();
select 'in-tx-count=' || count(*) from %[1]s;
commit;
select 'after-count=' || count(*) from %[1]s;
begin;
insert into %[1]s (id, v) values (3, 'three');
rollback;
select 'final-count=' || count(*) from %[1]s;
`, tbl)
		path := filepath.Join(t.TempDir(), "script.sql")
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, how := range []string{"file", "stdin"} {
			if how == "stdin" {
				rtExecWriter(t, ctx, "TRUNCATE "+tbl)
			}
			var out string
			if how == "file" {
				out = rtRunPsql(t, ctx, "", "-f", path)
			} else {
				out = rtRunPsql(t, ctx, script)
			}
			lines := rtOutputLines(out)
			if len(lines) != 13 {
				t.Fatalf("psql script (%s) printed %d lines, want 13:\n%s", how, len(lines), out)
			}
			if lines[0] != "start-recovery=true" {
				t.Errorf("script (%s): first read printed %q, want start-recovery=true (a replica)", how, lines[0])
			}
			wantTx := fmt.Sprintf("tx=%d/", rtPrimaryPort())
			if !strings.HasPrefix(lines[2], wantTx) || lines[5] != lines[2] {
				t.Errorf("script (%s): transaction ran on %q and %q, want both %s<same pid>", how, lines[2], lines[5], wantTx)
			}
			want := map[int]string{1: "BEGIN", 3: "INSERT 0 1", 4: "INSERT 0 1", 6: "in-tx-count=2", 7: "COMMIT",
				8: "after-count=2", 9: "BEGIN", 10: "INSERT 0 1", 11: "ROLLBACK", 12: "final-count=2"}
			for i, w := range want {
				if lines[i] != w {
					t.Errorf("script (%s): line %d = %q, want %q\n%s", how, i+1, lines[i], w, out)
				}
			}
			if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl); n != 2 {
				t.Errorf("script (%s): the primary holds %d rows, want 2", how, n)
			}
		}
	})

	t.Run("multi_statement_command", func(t *testing.T) {
		tbl := rtUniq(t, "t")
		rtNewTable(t, ctx, tbl, 0)
		out := rtRunPsql(t, ctx, "", "-c", fmt.Sprintf("select pg_is_in_recovery(); insert into %s (id, v, port) values (1, 'psql', inet_server_port())", tbl))
		lines := rtOutputLines(out)
		// psql 15 prints every result of the string (SHOW_ALL_RESULTS), older
		// versions only the last one
		if !(len(lines) == 2 && lines[0] == "f" && lines[1] == "INSERT 0 1") && !(len(lines) == 1 && lines[0] == "INSERT 0 1") {
			t.Errorf("psql -c 'select pg_is_in_recovery(); insert …' printed %q, want [f, INSERT 0 1] (the whole string on the primary)", lines)
		}
		if n := rtPrimaryInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE port = $1", rtPrimaryPort()); n != 1 {
			t.Errorf("the row written by psql is not on the primary")
		}
	})
}

// TestRoutingDeallocateAllAcrossBackends prepares a statement on a replica,
// uses it in a transaction on the writer (where the proxy prepares it too),
// runs DEALLOCATE ALL (on the writer), and prepares the same name again on
// the replica: the proxy must know that the client no longer has it and
// re-prepare cleanly instead of failing with 42P05. (The eventual listener,
// so that read-your-writes does not keep the reads on the writer.)
func TestRoutingDeallocateAllAcrossBackends(t *testing.T) {
	ctx := testCtx(t)
	rtWaitProxyReady(t, ctx)
	c := rtConnect(t, ctx, "eventual")
	const q = "SELECT pg_is_in_recovery()"
	if _, err := c.Prepare(ctx, "dealloc_s1", q); err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rec bool
	if err := tx.QueryRow(ctx, "dealloc_s1").Scan(&rec); err != nil || rec {
		t.Fatalf("prepared statement inside a transaction: recovery=%v err=%v (want the writer)", rec, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.DeallocateAll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prepare(ctx, "dealloc_s1", q); err != nil {
		t.Fatalf("preparing the name again after DEALLOCATE ALL: %v", err)
	}
	if err := c.QueryRow(ctx, "dealloc_s1").Scan(&rec); err != nil || !rec {
		t.Fatalf("re-prepared statement: recovery=%v err=%v (want a replica)", rec, err)
	}
}
