package integration

// End-to-end tests of PostgreSQL transaction pooling (clusters.<name>.pool
// mode "transaction"): each test starts a private proxy on the shared
// cluster with a small max_server_conns and checks, against the real
// servers, that many clients share few backend connections without seeing
// each other's state.

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	dto "github.com/prometheus/client_model/go"
	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/proxy"
)

// ---------------------------------------------------------------------------
// helpers

// tpStartProxy starts a private proxy on cluster pg with transaction pooling,
// maxConns backend connections per pool and the given checkout timeout; it
// is shut down when the test ends (after the test's clients, which register
// their cleanups later). Each of more, if any, changes the configuration
// further.
func tpStartProxy(t testing.TB, ctx context.Context, maxConns int, checkout time.Duration, more ...func(*config.Config)) *proxy.Proxy {
	t.Helper()
	p, err := startProxy(ctx, t.TempDir(), shared.pg, func(c *config.Config) {
		cl := c.Clusters["pg"]
		cl.Pool.Mode = config.PoolTransaction
		cl.Pool.MaxServerConns = maxConns
		cl.Pool.CheckoutTimeout = checkout
		c.Clusters["pg"] = cl
		for _, m := range more {
			m(c)
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
	return p
}

// tpDSN is a DSN for user app on database app through listener of p, with
// an application_name (set by the proxy on the backend connection serving
// the client) so that the backend connections can be found in
// pg_stat_activity.
func tpDSN(t testing.TB, p *proxy.Proxy, listener, app string) string {
	t.Helper()
	a := p.Addr(listener)
	if a == nil {
		t.Fatalf("no listener %q", listener)
	}
	return fmt.Sprintf("postgres://app:app@%s/app?sslmode=disable&connect_timeout=120&application_name=%s", a.String(), app)
}

// tpCountBackends counts the client backends with application_name app on
// every node (primary first).
func tpCountBackends(ctx context.Context, adm []*pgx.Conn, app string) ([]int, error) {
	out := make([]int, len(adm))
	for i, c := range adm {
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND backend_type = 'client backend'`, app).Scan(&out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tpPins reads sluice_pins_total{listener, reason} of p.
func tpPins(p *proxy.Proxy, listener, reason string) float64 {
	var m dto.Metric
	if err := p.Metrics().Pins.WithLabelValues(listener, reason).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// tpPID returns the backend process id serving c's next statement.
func tpPID(t testing.TB, ctx context.Context, c *pgx.Conn, who string) int32 {
	t.Helper()
	var pid int32
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("%s: SELECT pg_backend_pid(): %v", who, err)
	}
	return pid
}

// tpShow runs SHOW name on c.
func tpShow(t testing.TB, ctx context.Context, c *pgx.Conn, who, name string) string {
	t.Helper()
	var v string
	if err := c.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
		t.Fatalf("%s: SHOW %s: %v", who, name, err)
	}
	return v
}

// ---------------------------------------------------------------------------
// 1. many clients, few connections

// TestPGTxPoolManyClients runs 200 clients doing mixed work through a pool
// of 10 backend connections and checks every result, the table's final
// contents and that no node ever saw more than 10 backend connections of
// the clients.
func TestPGTxPoolManyClients(t *testing.T) {
	const (
		clients  = 200
		rounds   = 4
		maxConns = 10
		txRows   = 3
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := tpStartProxy(t, ctx, maxConns, 60*time.Second)
	app := ppUniq("txpool_many")
	tbl := ppUniq("txpool_many")
	ppWriterExec(t, ctx, "CREATE TABLE "+tbl+" (client int NOT NULL, round int NOT NULL, kind text NOT NULL, v int NOT NULL)")
	t.Cleanup(func() { ppWriterExec(t, context.Background(), "DROP TABLE IF EXISTS "+tbl) })
	adm := ppAdminConns(t, ctx)

	// Sample the backend connections of the clients on every node while
	// they run.
	var (
		maxMu   sync.Mutex
		maxSeen = make([]int, len(adm))
		samples int
	)
	sample := func(ctx context.Context) error {
		n, err := tpCountBackends(ctx, adm, app)
		if err != nil {
			return err
		}
		maxMu.Lock()
		defer maxMu.Unlock()
		samples++
		for i := range n {
			maxSeen[i] = max(maxSeen[i], n[i])
		}
		return nil
	}
	stopSampling := make(chan struct{})
	samplerDone := make(chan error, 1)
	go func() {
		for {
			if err := sample(ctx); err != nil {
				samplerDone <- err
				return
			}
			select {
			case <-stopSampling:
				samplerDone <- nil
				return
			case <-time.After(3 * time.Millisecond):
			}
		}
	}()

	d := tpDSN(t, p, "auto", app)
	var failed atomic.Int32
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tpManyClient(ctx, d, tbl, cl, rounds, txRows); err != nil {
				if failed.Add(1) <= 10 {
					t.Errorf("client %d: %v", cl, err)
				}
			}
		}()
	}
	wg.Wait()
	close(stopSampling)
	if err := <-samplerDone; err != nil {
		t.Errorf("sampling pg_stat_activity: %v", err)
	}
	if err := sample(ctx); err != nil {
		t.Errorf("sampling pg_stat_activity: %v", err)
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d clients failed", n, clients)
	}
	maxMu.Lock()
	t.Logf("%d samples of pg_stat_activity; most backend connections seen per node (primary first): %v", samples, maxSeen)
	for i, n := range maxSeen {
		if n > maxConns {
			t.Errorf("node %d had %d backend connections with application_name %s at once, want at most %d", i, n, app, maxConns)
		}
	}
	if maxSeen[0] == 0 {
		t.Errorf("no backend connection with application_name %s was ever seen on the primary: the check is void", app)
	}
	maxMu.Unlock()

	// The table holds exactly what the clients committed.
	rows, err := adm[0].Query(ctx, "SELECT client, kind, count(*), sum(v) FROM "+tbl+" GROUP BY client, kind")
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		client int
		kind   string
	}
	got := map[key][2]int64{}
	for rows.Next() {
		var k key
		var n, s int64
		if err := rows.Scan(&k.client, &k.kind, &n, &s); err != nil {
			t.Fatal(err)
		}
		got[k] = [2]int64{n, s}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[key][2]int64{}
	for cl := range clients {
		var txN, txS, autoN, autoS int64
		for r := range rounds {
			for j := range txRows {
				txN++
				txS += int64(tpTxValue(cl, r, j))
			}
			autoN++
			autoS += int64(tpAutoValue(cl, r))
		}
		want[key{cl, "tx"}] = [2]int64{txN, txS}
		want[key{cl, "auto"}] = [2]int64{autoN, autoS}
	}
	bad := 0
	for k, w := range want {
		if g := got[k]; g != w {
			if bad++; bad <= 10 {
				t.Errorf("client %d kind %s: (count, sum) = %v, want %v", k.client, k.kind, g, w)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			if bad++; bad <= 10 {
				t.Errorf("unexpected rows: client %d kind %s: (count, sum) = %v (rolled back rows must not exist)", k.client, k.kind, g)
			}
		}
	}
}

func tpTxValue(client, round, j int) int { return client*1000 + round*10 + j + 1 }
func tpAutoValue(client, round int) int  { return client*1000 + 500 + round }

// tpManyClient is one client of TestPGTxPoolManyClients.
func tpManyClient(ctx context.Context, dsn, tbl string, cl, rounds, txRows int) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close(context.Background())
	for r := range rounds {
		// An explicit transaction inserting rows and reading them back.
		tx, err := c.Begin(ctx)
		if err != nil {
			return fmt.Errorf("round %d: begin: %w", r, err)
		}
		var want []int
		for j := range txRows {
			v := tpTxValue(cl, r, j)
			want = append(want, v)
			if _, err := tx.Exec(ctx, "INSERT INTO "+tbl+" (client, round, kind, v) VALUES ($1, $2, 'tx', $3)", cl, r, v); err != nil {
				tx.Rollback(ctx)
				return fmt.Errorf("round %d: insert in transaction: %w", r, err)
			}
		}
		seen, err := tpInts(ctx, tx, "SELECT v FROM "+tbl+" WHERE client = $1 AND round = $2 ORDER BY v", cl, r)
		if err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("round %d: read in transaction: %w", r, err)
		}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			tx.Rollback(ctx)
			return fmt.Errorf("round %d: the transaction reads %v, want exactly its own rows %v", r, seen, want)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("round %d: commit: %w", r, err)
		}

		// An autocommit insert.
		if _, err := c.Exec(ctx, "INSERT INTO "+tbl+" (client, round, kind, v) VALUES ($1, $2, 'auto', $3)", cl, r, tpAutoValue(cl, r)); err != nil {
			return fmt.Errorf("round %d: autocommit insert: %w", r, err)
		}

		// Read-only statements with computed results.
		for k := range 3 {
			x := cl*100 + r*10 + k
			var y int
			var s string
			if err := c.QueryRow(ctx, "SELECT $1::int * 2, $2::text || '/' || $1::int", x, "c"+strconv.Itoa(cl)).Scan(&y, &s); err != nil {
				return fmt.Errorf("round %d: computed select: %w", r, err)
			}
			if y != 2*x || s != fmt.Sprintf("c%d/%d", cl, x) {
				return fmt.Errorf("round %d: SELECT $1::int * 2 with %d gave %d, %q", r, x, y, s)
			}
		}

		// A rolled back transaction leaves no row.
		tx, err = c.Begin(ctx)
		if err != nil {
			return fmt.Errorf("round %d: begin (rollback): %w", r, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+tbl+" (client, round, kind, v) VALUES ($1, $2, 'rb', 1)", cl, r); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("round %d: insert to roll back: %w", r, err)
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+tbl+" WHERE client = $1 AND round = $2 AND kind = 'rb'", cl, r).Scan(&n); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("round %d: read before rollback: %w", r, err)
		}
		if n != 1 {
			tx.Rollback(ctx)
			return fmt.Errorf("round %d: the transaction sees %d of its own rows to roll back, want 1", r, n)
		}
		if err := tx.Rollback(ctx); err != nil {
			return fmt.Errorf("round %d: rollback: %w", r, err)
		}
	}
	return nil
}

// tpInts runs a query returning one int column.
func tpInts(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) ([]int, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

// ---------------------------------------------------------------------------
// 2. prepared statements

// TestPGTxPoolPreparedStatements runs many clients using pgx's statement
// cache (so the same statement names on every client) and two clients
// using explicit protocol-level prepares with the same names for different
// statements, over 3 backend connections: every statement must run what
// its own client prepared.
func TestPGTxPoolPreparedStatements(t *testing.T) {
	const (
		clients  = 30
		iters    = 120
		maxConns = 3
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := tpStartProxy(t, ctx, maxConns, 60*time.Second)
	app := ppUniq("txpool_prep")
	var wg sync.WaitGroup
	var failed atomic.Int32
	report := func(who string, err error) {
		if failed.Add(1) <= 10 {
			t.Errorf("%s: %v", who, err)
		}
	}
	for cl := range clients {
		listener := "writer"
		if cl%2 == 1 {
			listener = "auto"
		}
		d := tpDSN(t, p, listener, app)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tpCachedClient(ctx, d, cl, iters); err != nil {
				report(fmt.Sprintf("cached-statement client %d (%s)", cl, listener), err)
			}
		}()
	}
	for i, op := range []string{"+", "*"} {
		d := tpDSN(t, p, "writer", app)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tpNamedClient(ctx, d, op, iters); err != nil {
				report(fmt.Sprintf("named-prepare client %d (%s)", i, op), err)
			}
		}()
	}
	wg.Wait()

	t.Run("errors and DEALLOCATE ALL", func(t *testing.T) { tpPrepErrors(t, ctx, p, app) })
	t.Run("DEALLOCATE ALL forgets the client's statements on every connection", func(t *testing.T) {
		tpDeallocateAllEverywhere(t, ctx)
	})
	t.Run("unknown statement name", func(t *testing.T) { tpUnknownStatement(t, ctx) })
}

// tpPrepErrors checks that statements failing to prepare or to run, and
// DEALLOCATE ALL (as pgx does it, resetting its statement cache), do not
// break a pgx client's later statements.
func tpPrepErrors(t *testing.T, ctx context.Context, p *proxy.Proxy, app string) {
	c := ppConnect(t, ctx, tpDSN(t, p, "writer", app))
	check := func(what string) {
		t.Helper()
		for k := range 5 {
			var a, b int
			var s string
			if err := c.QueryRow(ctx, "SELECT $1::int + 1, $2::int * 3, $3::text", k, k+1, "s"+strconv.Itoa(k)).Scan(&a, &b, &s); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if a != k+1 || b != 3*(k+1) || s != "s"+strconv.Itoa(k) {
				t.Fatalf("%s: got %d, %d, %q for %d", what, a, b, s, k)
			}
		}
	}
	check("before errors")
	_, err := c.Exec(ctx, "SELECT no_such_column_x FROM (SELECT $1::int AS a) s", 1)
	if code := ppSQLState(err); code != "42703" {
		t.Fatalf("statement with an unknown column: %v, want SQLSTATE 42703", err)
	}
	check("after a statement that failed to prepare (42703)")
	_, err = c.Exec(ctx, "SELEC $1::int", 1)
	if code := ppSQLState(err); code != "42601" {
		t.Fatalf("statement with a syntax error: %v, want SQLSTATE 42601", err)
	}
	check("after a syntax error (42601)")
	var zero int
	err = c.QueryRow(ctx, "SELECT 1 / $1::int", 0).Scan(&zero)
	if code := ppSQLState(err); code != "22012" {
		t.Fatalf("division by zero: %v, want SQLSTATE 22012", err)
	}
	check("after an execution error (22012)")
	if err := c.DeallocateAll(ctx); err != nil {
		t.Fatalf("DEALLOCATE ALL: %v", err)
	}
	check("after DEALLOCATE ALL")
	if err := c.DeallocateAll(ctx); err != nil {
		t.Fatalf("second DEALLOCATE ALL: %v", err)
	}
	check("after a second DEALLOCATE ALL")
	// Another client's statements are untouched by this client's
	// DEALLOCATE ALL.
	if err := tpCachedClient(ctx, tpDSN(t, p, "writer", app), 7, 30); err != nil {
		t.Errorf("a client after another's DEALLOCATE ALL: %v", err)
	}
}

// tpExecText executes the prepared statement name (no parameters) on pc
// and returns its rows as text.
func tpExecText(ctx context.Context, pc *pgconn.PgConn, name string) ([]string, error) {
	res := pc.ExecPrepared(ctx, name, nil, nil, nil).Read()
	var out []string
	for _, r := range res.Rows {
		for _, v := range r {
			out = append(out, string(v))
		}
	}
	return out, res.Err
}

// tpPgconn connects with pgconn and closes the connection when the test
// ends.
func tpPgconn(t testing.TB, ctx context.Context, dsn string) *pgconn.PgConn {
	t.Helper()
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { pc.Close(context.Background()) })
	return pc
}

// tpHold begins a transaction on c and returns it with the backend process
// id holding it.
func tpHold(t testing.TB, ctx context.Context, c *pgx.Conn, who string) (pgx.Tx, int32) {
	t.Helper()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatalf("%s: begin: %v", who, err)
	}
	return tx, tpPID(t, ctx, tx.Conn(), who+" in its transaction")
}

// tpDeallocateAllEverywhere: after a client's DEALLOCATE ALL, which runs on
// one pooled connection, the client's statements are gone on the others
// too: executing one fails with SQLSTATE 26000 as on PostgreSQL. With a
// pool of 2, two holder clients steer which connection serves what: X
// prepares on P2, DEALLOCATE ALL runs on P1, the execution on P2.
func tpDeallocateAllEverywhere(t *testing.T, ctx context.Context) {
	p := tpStartProxy(t, ctx, 2, 60*time.Second)
	app := ppUniq("txpool_dealloc")
	d := tpDSN(t, p, "writer", app)
	x := tpPgconn(t, ctx, d)
	z := ppConnect(t, ctx, d)
	w := ppConnect(t, ctx, d)
	name := ppUniq("ps")

	tz, p1 := tpHold(t, ctx, z, "Z") // Z holds P1
	if _, err := x.Prepare(ctx, name, "SELECT 'prepared by X'::text", nil); err != nil {
		t.Fatalf("X: prepare %s: %v", name, err) // on P2, the only free connection
	}
	tw, p2 := tpHold(t, ctx, w, "W") // W holds P2
	if p1 == p2 {
		t.Fatalf("Z and W hold the same backend %d in concurrent transactions", p1)
	}
	if err := tz.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Exec(ctx, "DEALLOCATE ALL").ReadAll(); err != nil {
		t.Fatalf("X: DEALLOCATE ALL (on P1, backend %d): %v", p1, err)
	}
	tz, p1b := tpHold(t, ctx, z, "Z") // Z holds P1 again
	if p1b != p1 {
		t.Fatalf("Z's new transaction runs on backend %d, want %d", p1b, p1)
	}
	if err := tw.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// X's next statement can only run on P2, which still has the
	// statement prepared under that name.
	rows, err := tpExecText(ctx, x, name)
	if code := ppSQLState(err); code != "26000" {
		t.Errorf("X: executing %s after its DEALLOCATE ALL (on backend %d; DEALLOCATE ALL ran on backend %d): rows %q, error %v; want SQLSTATE 26000 (prepared statement does not exist) as on PostgreSQL",
			name, p2, p1, rows, err)
	}
	if err := tz.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// X can prepare the name again, as something else.
	if _, err := x.Prepare(ctx, name, "SELECT 'prepared again'::text", nil); err != nil {
		t.Fatalf("X: prepare %s again: %v", name, err)
	}
	for range 4 {
		if rows, err := tpExecText(ctx, x, name); err != nil || fmt.Sprint(rows) != "[prepared again]" {
			t.Fatalf("X: executing %s prepared again: %q, %v", name, rows, err)
		}
	}
}

// tpUnknownStatement: a client executing (or describing) a statement name it
// never prepared gets SQLSTATE 26000, even when the pooled connection that
// serves it has a statement of that name prepared by another client.
func tpUnknownStatement(t *testing.T, ctx context.Context) {
	p := tpStartProxy(t, ctx, 1, 60*time.Second)
	app := ppUniq("txpool_unknown")
	d := tpDSN(t, p, "writer", app)
	x := tpPgconn(t, ctx, d)
	y := tpPgconn(t, ctx, d)
	name := ppUniq("secret")
	if _, err := x.Prepare(ctx, name, "SELECT 'secret of X'::text", nil); err != nil {
		t.Fatalf("X: prepare %s: %v", name, err)
	}
	if rows, err := tpExecText(ctx, x, name); err != nil || fmt.Sprint(rows) != "[secret of X]" {
		t.Fatalf("X: execute %s: %q, %v", name, rows, err)
	}
	// Y shares the only backend connection with X and never prepared name.
	rows, err := tpExecText(ctx, y, name)
	if code := ppSQLState(err); code != "26000" {
		t.Errorf("Y: executing %s, which only X prepared (Bind/Execute/Sync): rows %q, error %v; want SQLSTATE 26000: another client's statement must not be reachable", name, rows, err)
	}
	_, err = y.Prepare(ctx, "", "SELECT 1", nil) // something valid in between
	if err != nil {
		t.Fatalf("Y: prepare unnamed: %v", err)
	}
	sd, err := tpDescribe(ctx, y, name)
	if code := ppSQLState(err); code != "26000" {
		t.Errorf("Y: describing %s, which only X prepared: %v, error %v; want SQLSTATE 26000", name, sd, err)
	}
	// X's statement still works.
	if rows, err := tpExecText(ctx, x, name); err != nil || fmt.Sprint(rows) != "[secret of X]" {
		t.Fatalf("X: execute %s after Y's attempts: %q, %v", name, rows, err)
	}
}

// tpDescribe sends Describe(statement name) + Sync and returns the result
// columns described, or the error.
func tpDescribe(ctx context.Context, pc *pgconn.PgConn, name string) ([]string, error) {
	pc.Frontend().Send(&pgproto3.Describe{ObjectType: 'S', Name: name})
	pc.Frontend().Send(&pgproto3.Sync{})
	if err := pc.Frontend().Flush(); err != nil {
		return nil, err
	}
	var cols []string
	var perr error
	for {
		m, err := pc.ReceiveMessage(ctx)
		if err != nil {
			return cols, err
		}
		switch m := m.(type) {
		case *pgproto3.RowDescription:
			for _, f := range m.Fields {
				cols = append(cols, string(f.Name))
			}
		case *pgproto3.ErrorResponse:
			perr = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			return cols, perr
		}
	}
}

// tpCachedClient is a pgx client with the default statement cache running
// shared and client-specific parametrised queries, some inside
// transactions.
func tpCachedClient(ctx context.Context, dsn string, cl, iters int) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close(context.Background())
	rnd := rand.New(rand.NewSource(int64(cl)))
	own := fmt.Sprintf("SELECT $1::int * %d, 'client %d'::text", cl+2, cl)
	var tx pgx.Tx
	q := func() interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	} {
		if tx != nil {
			return tx
		}
		return c
	}
	for i := range iters {
		if i%20 == 5 {
			if tx, err = c.Begin(ctx); err != nil {
				return fmt.Errorf("iteration %d: begin: %w", i, err)
			}
		}
		x := rnd.Intn(1000)
		switch rnd.Intn(5) {
		case 0:
			var y int
			if err := q().QueryRow(ctx, "SELECT $1::int + 1", x).Scan(&y); err != nil {
				return fmt.Errorf("iteration %d: shared query 1: %w", i, err)
			}
			if y != x+1 {
				return fmt.Errorf("iteration %d: SELECT $1::int + 1 with %d gave %d", i, x, y)
			}
		case 1:
			var s string
			if err := q().QueryRow(ctx, "SELECT $1::text || '-' || $2::text", strconv.Itoa(x), "c"+strconv.Itoa(cl)).Scan(&s); err != nil {
				return fmt.Errorf("iteration %d: shared query 2: %w", i, err)
			}
			if want := fmt.Sprintf("%d-c%d", x, cl); s != want {
				return fmt.Errorf("iteration %d: concatenation gave %q, want %q", i, s, want)
			}
		case 2:
			var y int
			var s string
			if err := q().QueryRow(ctx, own, x).Scan(&y, &s); err != nil {
				return fmt.Errorf("iteration %d: own query: %w", i, err)
			}
			if y != x*(cl+2) || s != fmt.Sprintf("client %d", cl) {
				return fmt.Errorf("iteration %d: %s with %d gave %d, %q", i, own, x, y, s)
			}
		case 3:
			var n, sum int
			if err := q().QueryRow(ctx, "SELECT count(*)::int, coalesce(sum(g), 0)::int FROM generate_series(1, $1::int) g", x%50).Scan(&n, &sum); err != nil {
				return fmt.Errorf("iteration %d: generate_series: %w", i, err)
			}
			if m := x % 50; n != m || sum != m*(m+1)/2 {
				return fmt.Errorf("iteration %d: generate_series(1, %d) gave count %d sum %d", i, m, n, sum)
			}
		case 4:
			var a int
			var b float64
			var s string
			if err := q().QueryRow(ctx, "SELECT $1::int, $2::float8 / 2, upper($3::text)", x, float64(x), "abc").Scan(&a, &b, &s); err != nil {
				return fmt.Errorf("iteration %d: mixed types: %w", i, err)
			}
			if a != x || b != float64(x)/2 || s != "ABC" {
				return fmt.Errorf("iteration %d: mixed types gave %d, %v, %q", i, a, b, s)
			}
		}
		if tx != nil && i%20 == 12 {
			if err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("iteration %d: commit: %w", i, err)
			}
			tx = nil
		}
	}
	if tx != nil {
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("final commit: %w", err)
		}
	}
	return nil
}

// tpNamedClient prepares statements ps_0, ps_1, … (SELECT $1::int <op> k)
// with pgconn and executes them many times, interleaved with more
// prepares, a re-prepare of a name with a different statement and DEALLOCATE
// ALL (after which the names are prepared again as other statements). Two
// such clients with different ops use the same names.
func tpNamedClient(ctx context.Context, dsn, op string, iters int) error {
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pc.Close(context.Background())
	// sqls[name] is what name is prepared as now; ks[name] its constant.
	ks := map[string]int{}
	prepare := func(name string, k int) error {
		if _, err := pc.Prepare(ctx, name, fmt.Sprintf("SELECT $1::int %s %d", op, k), nil); err != nil {
			return fmt.Errorf("prepare %s: %w", name, err)
		}
		ks[name] = k
		return nil
	}
	exec := func(name string, x int) error {
		res := pc.ExecPrepared(ctx, name, [][]byte{[]byte(strconv.Itoa(x))}, nil, nil).Read()
		if res.Err != nil {
			return fmt.Errorf("execute %s(%d): %w", name, x, res.Err)
		}
		k := ks[name]
		want := x + k
		if op == "*" {
			want = x * k
		}
		if len(res.Rows) != 1 || len(res.Rows[0]) != 1 || string(res.Rows[0][0]) != strconv.Itoa(want) {
			return fmt.Errorf("execute %s(%d) (SELECT $1::int %s %d) returned %q, want %d", name, x, op, k, res.Rows, want)
		}
		return nil
	}
	rnd := rand.New(rand.NewSource(int64(len(op) + int(op[0]))))
	names := []string{}
	for i := range iters {
		if i%6 == 0 && len(names) < 20 {
			name := fmt.Sprintf("ps_%d", len(names))
			if err := prepare(name, len(names)+3); err != nil {
				return err
			}
			names = append(names, name)
		}
		if i == iters/2 {
			// Re-prepare a name as a different statement.
			if err := pc.Deallocate(ctx, names[0]); err != nil {
				return fmt.Errorf("deallocate %s: %w", names[0], err)
			}
			if err := prepare(names[0], 1000); err != nil {
				return err
			}
		}
		for range 2 {
			if err := exec(names[rnd.Intn(len(names))], rnd.Intn(1000)); err != nil {
				return fmt.Errorf("iteration %d: %w", i, err)
			}
		}
	}
	// DEALLOCATE ALL forgets this client's statements.
	if _, err := pc.Exec(ctx, "DEALLOCATE ALL").ReadAll(); err != nil {
		return fmt.Errorf("DEALLOCATE ALL: %w", err)
	}
	for i, name := range names[:5] {
		if err := prepare(name, 50+i); err != nil {
			return fmt.Errorf("after DEALLOCATE ALL: %w", err)
		}
	}
	for i := range 20 {
		if err := exec(names[i%5], i); err != nil {
			return fmt.Errorf("after DEALLOCATE ALL: %w", err)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// 3. session settings

// TestPGTxPoolNoSettingLeak has two clients share the one backend
// connection of a pool: the settings one SETs are not seen by the other.
func TestPGTxPoolNoSettingLeak(t *testing.T) {
	ctx := testCtx(t)
	p := tpStartProxy(t, ctx, 1, 60*time.Second)
	schema := ppUniq("a_schema")
	ppWriterExec(t, ctx, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { ppWriterExec(t, context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	app := ppUniq("txpool_set")
	d := tpDSN(t, p, "writer", app)

	// The defaults, from a direct connection with the same parameters.
	direct := ppConnect(t, ctx, shared.pg.Nodes()[0].DSN("app", "app", "app")+"&application_name="+app)
	defPath := tpShow(t, ctx, direct, "direct", "search_path")
	defTZ := tpShow(t, ctx, direct, "direct", "TimeZone")
	if defTZ == "Asia/Tokyo" {
		t.Fatalf("the server's default TimeZone is already Asia/Tokyo: the test is void")
	}

	a := ppConnect(t, ctx, d)
	b := ppConnect(t, ctx, d)
	for _, q := range []string{
		"SET search_path TO " + schema + ", public",
		"SET TIME ZONE 'Asia/Tokyo'",
		"SET application_name = 'a_own_name'",
	} {
		if _, err := a.Exec(ctx, q); err != nil {
			t.Fatalf("A: %s: %v", q, err)
		}
	}
	wantPath := schema + ", public"
	checkA := func(when string) int32 {
		t.Helper()
		pid := tpPID(t, ctx, a, "A")
		if v := tpShow(t, ctx, a, "A", "search_path"); v != wantPath {
			t.Errorf("A %s: search_path %q, want %q", when, v, wantPath)
		}
		if v := tpShow(t, ctx, a, "A", "TimeZone"); v != "Asia/Tokyo" {
			t.Errorf("A %s: TimeZone %q, want Asia/Tokyo", when, v)
		}
		if v := tpShow(t, ctx, a, "A", "application_name"); v != "a_own_name" {
			t.Errorf("A %s: application_name %q, want a_own_name", when, v)
		}
		var tz string
		if err := a.QueryRow(ctx, "SELECT current_setting('TimeZone')").Scan(&tz); err != nil || tz != "Asia/Tokyo" {
			t.Errorf("A %s: current_setting('TimeZone') = %q, %v; want Asia/Tokyo", when, tz, err)
		}
		return pid
	}
	checkDefaults := func(c *pgx.Conn, who, when string) int32 {
		t.Helper()
		pid := tpPID(t, ctx, c, who)
		if v := tpShow(t, ctx, c, who, "search_path"); v != defPath {
			t.Errorf("%s %s: search_path %q, want the default %q", who, when, v, defPath)
		}
		if v := tpShow(t, ctx, c, who, "TimeZone"); v != defTZ {
			t.Errorf("%s %s: TimeZone %q, want the default %q", who, when, v, defTZ)
		}
		if v := tpShow(t, ctx, c, who, "application_name"); v != app {
			t.Errorf("%s %s: application_name %q, want the startup one %q", who, when, v, app)
		}
		return pid
	}
	pidA := checkA("after its SETs")
	pidB := checkDefaults(b, "B", "after A's SETs")
	if pidB != pidA {
		t.Fatalf("A ran on backend %d and B on %d: with max_server_conns 1 they must share one connection (the test is void)", pidA, pidB)
	}
	if pid := checkA("after B used the connection"); pid != pidA {
		t.Fatalf("A moved from backend %d to %d", pidA, pid)
	}
	// Interleave some more, in transactions too.
	for i := range 3 {
		tx, err := b.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var path string
		if err := tx.QueryRow(ctx, "SELECT current_setting('search_path')").Scan(&path); err != nil {
			t.Fatal(err)
		}
		if path != defPath {
			t.Errorf("B in a transaction (%d): search_path %q, want %q", i, path, defPath)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		checkA(fmt.Sprintf("after B's transaction %d", i))
	}
	// The table lookup follows A's search_path, not B's.
	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatalf("A: CREATE TABLE in its schema: %v", err)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT count(*) FROM "+schema+".only_in_a").Scan(&n); err != nil {
		t.Fatalf("A's table was not created in its schema %s: %v", schema, err)
	}
	_, err := b.Exec(ctx, "SELECT * FROM only_in_a")
	if code := ppSQLState(err); code != "42P01" {
		t.Errorf("B: SELECT from A's schema-qualified table without the schema: %v, want SQLSTATE 42P01 (A's search_path leaked)", err)
	}

	if _, err := a.Exec(ctx, "RESET ALL"); err != nil {
		t.Fatalf("A: RESET ALL: %v", err)
	}
	if pid := checkDefaults(a, "A", "after RESET ALL"); pid != pidA {
		t.Errorf("A moved from backend %d to %d", pidA, pid)
	}
	checkDefaults(b, "B", "after A's RESET ALL")
	checkDefaults(a, "A", "after RESET ALL and B's statements")
}

// ---------------------------------------------------------------------------
// 4. checkout timeout

// TestPGTxPoolCheckoutTimeout has a client hold the only connection of a
// pool in a transaction: another client's statement fails with 53300 once
// checkout_timeout passes, and works after the transaction ends.
func TestPGTxPoolCheckoutTimeout(t *testing.T) {
	ctx := testCtx(t)
	p := tpStartProxy(t, ctx, 1, 500*time.Millisecond)
	app := ppUniq("txpool_timeout")
	d := tpDSN(t, p, "writer", app)
	// Both log in while the connection is free (logging in needs one).
	a := ppConnect(t, ctx, d)
	b := ppConnect(t, ctx, d)
	pidA := tpPID(t, ctx, a, "A")
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pid := tpPID(t, ctx, tx.Conn(), "A in its transaction"); pid != pidA {
		t.Logf("A's transaction runs on backend %d (before: %d)", pid, pidA)
	}
	for i, q := range []string{"SELECT 1", "SELECT $1::int"} {
		var args []any
		if i == 1 {
			args = append(args, 5)
		}
		_, err := b.Exec(ctx, q, args...)
		if code := ppSQLState(err); code != "53300" {
			t.Fatalf("B: %s while A holds the only connection: %v, want SQLSTATE 53300", q, err)
		}
		t.Logf("B: %s: %v", q, err)
	}
	// A is not disturbed.
	var x int
	if err := tx.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&x); err != nil || x != 42 {
		t.Fatalf("A in its transaction: %d, %v", x, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("A: commit: %v", err)
	}
	if err := b.QueryRow(ctx, "SELECT $1::int * 2", 21).Scan(&x); err != nil || x != 42 {
		t.Fatalf("B after A committed: %d, %v", x, err)
	}
	var s string
	if err := b.QueryRow(ctx, "SELECT 'ok'").Scan(&s); err != nil || s != "ok" {
		t.Fatalf("B after A committed: %q, %v", s, err)
	}
	if err := a.QueryRow(ctx, "SELECT 1").Scan(&x); err != nil || x != 1 {
		t.Fatalf("A after its commit: %d, %v", x, err)
	}
}

// ---------------------------------------------------------------------------
// 5. client gone mid-transaction

// TestPGTxPoolDisconnectMidTransaction cuts a client's network connection
// in the middle of a transaction: its backend connection is closed (the
// transaction rolled back), not returned to the pool, and the pool serves
// others.
func TestPGTxPoolDisconnectMidTransaction(t *testing.T) {
	ctx := testCtx(t)
	p := tpStartProxy(t, ctx, 1, 60*time.Second)
	tbl := ppUniq("txpool_gone")
	ppWriterExec(t, ctx, "CREATE TABLE "+tbl+" (id int PRIMARY KEY, who text)")
	t.Cleanup(func() { ppWriterExec(t, context.Background(), "DROP TABLE IF EXISTS "+tbl) })
	adm := ppAdminConns(t, ctx)
	app := ppUniq("txpool_gone")
	d := tpDSN(t, p, "writer", app)

	c, err := pgx.Connect(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+tbl+" VALUES (1, 'gone')"); err != nil {
		t.Fatal(err)
	}
	inTx := ppWaitBackend(t, ctx, adm, app, "the client's backend is idle in transaction", func(b ppBackend) bool {
		return b.node == 0 && b.state == "idle in transaction"
	})
	// Abruptly: no Terminate, no ROLLBACK.
	if err := c.PgConn().Conn().Close(); err != nil {
		t.Fatal(err)
	}
	ppEventually(t, ctx, "no backend of the client is idle in transaction and its backend connection is closed", func(ctx context.Context) (bool, error) {
		bs, err := ppFindBackends(ctx, adm, app)
		if err != nil {
			return false, err
		}
		for _, b := range bs {
			if strings.HasPrefix(b.state, "idle in transaction") || (b.node == inTx.node && b.pid == inTx.pid) {
				return false, nil
			}
		}
		return true, nil
	})
	var n int
	if err := adm[0].QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows in %s after the client left mid-transaction, want 0 (the transaction must be rolled back)", n, tbl)
	}

	// The pool (one connection at most) serves others.
	o := ppConnect(t, ctx, d)
	if _, err := o.Exec(ctx, "INSERT INTO "+tbl+" VALUES (1, 'other')"); err != nil {
		t.Fatalf("another client inserting the same key: %v", err)
	}
	var who string
	if err := o.QueryRow(ctx, "SELECT who FROM "+tbl+" WHERE id = $1", 1).Scan(&who); err != nil || who != "other" {
		t.Fatalf("another client: %q, %v", who, err)
	}
	if pid := tpPID(t, ctx, o, "other"); pid == inTx.pid {
		t.Errorf("the other client runs on backend %d, the dead client's connection", pid)
	}
	tx2, err := o.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Exec(ctx, "UPDATE "+tbl+" SET who = 'other2' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := adm[0].QueryRow(ctx, "SELECT who FROM "+tbl+" WHERE id = 1").Scan(&who); err != nil || who != "other2" {
		t.Fatalf("after the other client's transaction: %q, %v", who, err)
	}
}

// ---------------------------------------------------------------------------
// 6. pinning

// TestPGTxPoolPinning has a client create a temp table, which pins it to
// its backend connection: it keeps seeing the table across many statements
// while other clients share the rest of the pool and never get that
// connection, which is closed (not returned) when the client leaves.
func TestPGTxPoolPinning(t *testing.T) {
	const maxConns = 2
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := tpStartProxy(t, ctx, maxConns, 60*time.Second)
	adm := ppAdminConns(t, ctx)
	app := ppUniq("txpool_pin")
	d := tpDSN(t, p, "writer", app)
	before := tpPins(p, "writer", "temp_table")

	pc, err := pgx.Connect(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	tmp := ppUniq("tmp")
	if _, err := pc.Exec(ctx, "CREATE TEMP TABLE "+tmp+" (x int)"); err != nil {
		t.Fatal(err)
	}
	pinnedPID := tpPID(t, ctx, pc, "pinned client")
	if after := tpPins(p, "writer", "temp_table"); after < before+1 {
		t.Errorf("pins_total{listener=writer,reason=temp_table} went from %v to %v, want an increase", before, after)
	}

	// Others run while the pinned client works.
	stop := make(chan struct{})
	var (
		othersMu   sync.Mutex
		otherPIDs  = map[int32]int{}
		othersErr  []error
		othersWG   sync.WaitGroup
		otherCalls atomic.Int64
	)
	for i := range 6 {
		othersWG.Add(1)
		go func() {
			defer othersWG.Done()
			fail := func(err error) {
				othersMu.Lock()
				othersErr = append(othersErr, fmt.Errorf("other client %d: %w", i, err))
				othersMu.Unlock()
			}
			c, err := pgx.Connect(ctx, d)
			if err != nil {
				fail(err)
				return
			}
			defer c.Close(context.Background())
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				var pid int32
				var y int
				if err := c.QueryRow(ctx, "SELECT pg_backend_pid(), $1::int * 2", k).Scan(&pid, &y); err != nil {
					fail(err)
					return
				}
				if y != 2*k {
					fail(fmt.Errorf("SELECT $1::int * 2 with %d gave %d", k, y))
					return
				}
				othersMu.Lock()
				otherPIDs[pid]++
				othersMu.Unlock()
				otherCalls.Add(1)
				if k%10 == 3 {
					var n int
					err := c.QueryRow(ctx, "SELECT count(*) FROM "+tmp).Scan(&n)
					if code := ppSQLState(err); code != "42P01" {
						fail(fmt.Errorf("another client reading the pinned client's temp table %s: n=%d, %v; want SQLSTATE 42P01", tmp, n, err))
						return
					}
				}
			}
		}()
	}

	for i := range 60 {
		if _, err := pc.Exec(ctx, "INSERT INTO "+tmp+" VALUES ($1)", i); err != nil {
			t.Fatalf("pinned client, statement %d: insert into its temp table: %v", i, err)
		}
		var n, sum int
		var pid int32
		if err := pc.QueryRow(ctx, "SELECT count(*)::int, coalesce(sum(x), 0)::int, pg_backend_pid() FROM "+tmp).Scan(&n, &sum, &pid); err != nil {
			t.Fatalf("pinned client, statement %d: read of its temp table: %v", i, err)
		}
		if n != i+1 || sum != i*(i+1)/2 {
			t.Fatalf("pinned client, statement %d: temp table has %d rows summing to %d, want %d and %d", i, n, sum, i+1, i*(i+1)/2)
		}
		if pid != pinnedPID {
			t.Fatalf("pinned client, statement %d: ran on backend %d, want %d", i, pid, pinnedPID)
		}
		if i%10 == 9 {
			// Transactions keep the pin too.
			tx, err := pc.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.QueryRow(ctx, "SELECT count(*)::int FROM "+tmp).Scan(&n); err != nil || n != i+1 {
				t.Fatalf("pinned client in a transaction: %d rows, %v; want %d", n, err, i+1)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Let the others run at least a little alongside.
	waitLimit(t, ctx, "the other clients ran statements", func() bool { return otherCalls.Load() >= 20 })
	close(stop)
	othersWG.Wait()
	for _, err := range othersErr {
		t.Error(err)
	}
	pids := make([]int, 0, len(otherPIDs))
	for pid := range otherPIDs {
		pids = append(pids, int(pid))
	}
	sort.Ints(pids)
	t.Logf("pinned client on backend %d; the others ran %d statements on backends %v", pinnedPID, otherCalls.Load(), pids)
	if otherPIDs[pinnedPID] > 0 {
		t.Errorf("other clients ran %d statements on backend %d, the pinned client's connection", otherPIDs[pinnedPID], pinnedPID)
	}
	// The others shared what the pin left (distinct pids over time are no
	// measure: a connection may be replaced, e.g. after a health flap
	// under load); at no time may the pool exceed its limit.
	if bs, err := ppFindBackends(ctx, adm, app); err != nil {
		t.Fatal(err)
	} else if len(bs) > maxConns {
		t.Errorf("%d backend connections of %s, want at most %d", len(bs), app, maxConns)
	}

	// The pinned client leaves: its connection is closed, not returned.
	if err := pc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ppEventually(t, ctx, fmt.Sprintf("the pinned connection (backend %d) is closed", pinnedPID), func(ctx context.Context) (bool, error) {
		bs, err := ppFindBackends(ctx, adm, app)
		if err != nil {
			return false, err
		}
		for _, b := range bs {
			if b.node == 0 && b.pid == pinnedPID {
				return false, nil
			}
		}
		return true, nil
	})
	// The pool serves others, at full size again, and nobody sees the
	// temp table.
	c1 := ppConnect(t, ctx, d)
	c2 := ppConnect(t, ctx, d)
	tx1, err := c1.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx2, err := c2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p1 := tpPID(t, ctx, tx1.Conn(), "c1 in a transaction")
	p2 := tpPID(t, ctx, tx2.Conn(), "c2 in a transaction")
	if p1 == p2 || p1 == pinnedPID || p2 == pinnedPID {
		t.Errorf("two concurrent transactions after the pinned client left ran on backends %d and %d (pinned was %d)", p1, p2, pinnedPID)
	}
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*pgx.Conn{c1, c2} {
		_, err := c.Exec(ctx, "SELECT count(*) FROM "+tmp)
		if code := ppSQLState(err); code != "42P01" {
			t.Errorf("the temp table of the client that left is visible: %v, want SQLSTATE 42P01", err)
		}
	}
}

// TestPGTxPoolApplicationName: clients that differ only in application_name
// (or extra_float_digits) share one pool under transaction pooling; each
// sees its own value wherever its statements run (login ParameterStatus,
// SHOW, pg_stat_activity), a SET of its own on top, and its startup value
// again after RESET.
func TestPGTxPoolApplicationName(t *testing.T) {
	ctx := testCtx(t)
	p := tpStartProxy(t, ctx, 1, 60*time.Second)
	appA, appB := ppUniq("txpool_app_a"), ppUniq("txpool_app_b")
	a := ppConnect(t, ctx, tpDSN(t, p, "writer", appA))
	b := ppConnect(t, ctx, tpDSN(t, p, "writer", appB)+"&extra_float_digits=3")
	for who, c := range map[string]*pgx.Conn{appA: a, appB: b} {
		if got := c.PgConn().ParameterStatus("application_name"); got != who {
			t.Errorf("login ParameterStatus application_name = %q, want %q", got, who)
		}
	}
	check := func(c *pgx.Conn, who, wantApp, wantDigits string) {
		t.Helper()
		var app, seen, digits string
		if err := c.QueryRow(ctx, `SELECT current_setting('application_name'),
			(SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()),
			current_setting('extra_float_digits')`).Scan(&app, &seen, &digits); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if app != wantApp || seen != wantApp || digits != wantDigits {
			t.Errorf("%s: application_name %q (pg_stat_activity %q), extra_float_digits %s; want %q and %s", who, app, seen, digits, wantApp, wantDigits)
		}
		if ps := c.PgConn().ParameterStatus("application_name"); ps != wantApp {
			t.Errorf("%s: the driver's application_name (ParameterStatus) is %q, want %q", who, ps, wantApp)
		}
	}
	pidA := tpPID(t, ctx, a, "A")
	for i := 0; i < 3; i++ {
		check(a, "A", appA, "1")
		check(b, "B", appB, "3")
	}
	if pidB := tpPID(t, ctx, b, "B"); pidB != pidA {
		t.Errorf("A and B ran on backends %d and %d: one pool of one connection should serve both", pidA, pidB)
	}
	if _, err := a.Exec(ctx, "SET application_name = 'renamed'"); err != nil {
		t.Fatal(err)
	}
	check(b, "B after A's SET", appB, "3")
	check(a, "A after its SET", "renamed", "1")
	for _, q := range []string{"RESET application_name", "RESET ALL"} {
		if _, err := b.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
		// Told at once: the next statement may find a connection that
		// needs no replay.
		if ps := b.PgConn().ParameterStatus("application_name"); ps != appB {
			t.Errorf("B right after %s: the driver's application_name is %q, want %q", q, ps, appB)
		}
		check(b, "B after "+q, appB, "3")
		check(a, "A after B's "+q, "renamed", "1")
	}
	if _, err := a.Exec(ctx, "DISCARD ALL"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeallocateAll(ctx); err != nil { // DISCARD ALL dropped pgx's cached statements
		t.Fatal(err)
	}
	check(a, "A after DISCARD ALL", appA, "1")

	// A value the server refuses still fails the login, as without the proxy.
	if c, err := pgx.Connect(ctx, tpDSN(t, p, "writer", appA)+"&extra_float_digits=99"); ppSQLState(err) != "22023" {
		if c != nil {
			c.Close(ctx)
		}
		t.Errorf("login with extra_float_digits=99: %v, want SQLSTATE 22023", err)
	}
}

// TestPGSessionPoolApplicationName: under session pooling too, a client
// gets its application_name on a connection that served a client with
// another one.
func TestPGSessionPoolApplicationName(t *testing.T) {
	ctx := testCtx(t)
	p := tpStartProxy(t, ctx, 1, 60*time.Second, func(c *config.Config) {
		cl := c.Clusters["pg"]
		cl.Pool.Mode = config.PoolSession
		c.Clusters["pg"] = cl
	})
	var pids []int32
	for i, app := range []string{ppUniq("session_app_a"), ppUniq("session_app_b"), ppUniq("session_app_a")} {
		c, err := pgx.Connect(ctx, tpDSN(t, p, "writer", app))
		if err != nil {
			t.Fatal(err)
		}
		var got string
		var pid int32
		err = c.QueryRow(ctx, "SELECT current_setting('application_name'), pg_backend_pid()").Scan(&got, &pid)
		c.Close(ctx)
		if err != nil || got != app {
			t.Fatalf("client %d: application_name %q, %v; want %q", i, got, err, app)
		}
		pids = append(pids, pid)
	}
	if pids[0] != pids[1] || pids[1] != pids[2] {
		t.Errorf("backends %v: the pool of one connection should have served all three clients", pids)
	}
}

// TestPGTxPoolRoleDoesNotLeak: RESET ALL leaves a role set with SET ROLE
// (and SET SESSION AUTHORIZATION) in force on the server, so the proxy must
// not count the connection as clean after it: the next client on the same
// connection runs as itself, with or without settings of its own.
func TestPGTxPoolRoleDoesNotLeak(t *testing.T) {
	ctx := testCtx(t)
	role, _ := tpRoleOfApp(t, ctx, "txpool_role")
	p := tpStartProxy(t, ctx, 1, 60*time.Second)
	app := ppUniq("txpool_role")
	noApp := func(dsn string) string { return strings.Replace(dsn, "&application_name="+app, "", 1) }
	// X with an application_name (settings the proxy replays), then without.
	for _, xdsn := range []string{tpDSN(t, p, "writer", app), noApp(tpDSN(t, p, "writer", app))} {
		x := ppConnect(t, ctx, xdsn)
		for i, reset := range []string{"RESET ALL", "DISCARD ALL", "RESET ALL"} {
			if _, err := x.Exec(ctx, "SET ROLE "+role, pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatal(err)
			}
			if _, err := x.Exec(ctx, reset, pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := x.QueryRow(ctx, "SELECT current_user", pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil {
				t.Fatal(err)
			}
			want := role // RESET ALL keeps the role, as on the server
			if reset == "DISCARD ALL" {
				want = "app"
			}
			if got != want {
				t.Errorf("X after SET ROLE; %s: current_user %q, want %q", reset, got, want)
			}
			// Y on the same connection: without settings of its own, then
			// with an application_name.
			dsn := noApp(tpDSN(t, p, "writer", app))
			if i > 0 {
				dsn = tpDSN(t, p, "writer", ppUniq("txpool_role_y"))
			}
			y, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			err = y.QueryRow(ctx, "SELECT current_user", pgx.QueryExecModeSimpleProtocol).Scan(&got)
			y.Close(ctx)
			if err != nil || got != "app" {
				t.Errorf("Y after X's SET ROLE; %s (round %d): current_user %q, %v; want app", reset, i, got, err)
			}
			if _, err := x.Exec(ctx, "RESET ROLE", pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatal(err)
			}
		}
		// RESET SESSION AUTHORIZATION drops the role too, also when the
		// connection serves another client in between and X's state is
		// replayed.
		for _, q := range []string{"SET SESSION AUTHORIZATION app", "SET ROLE " + role, "RESET SESSION AUTHORIZATION"} {
			if _, err := x.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		y, err := pgx.Connect(ctx, tpDSN(t, p, "writer", ppUniq("txpool_role_y")))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := y.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		y.Close(ctx)
		var got string
		if err := x.QueryRow(ctx, "SELECT current_user", pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil || got != "app" {
			t.Errorf("X after RESET SESSION AUTHORIZATION (and another client in between): current_user %q, %v; want app", got, err)
		}
		x.Close(ctx)
	}
}

// TestPGTxPoolRoleNotRestored: when the replay of a client's role fails on
// the connection that serves its next statement (here: the membership was
// revoked meanwhile), the statement must not run as the login user: the
// session ends with an error instead, and other clients carry on.
func TestPGTxPoolRoleNotRestored(t *testing.T) {
	ctx := testCtx(t)
	role, adm := tpRoleOfApp(t, ctx, "txpool_role_gone")
	p := tpStartProxy(t, ctx, 1, 60*time.Second)
	x := ppConnect(t, ctx, tpDSN(t, p, "writer", ppUniq("txpool_role_x")))
	y := ppConnect(t, ctx, tpDSN(t, p, "writer", ppUniq("txpool_role_y")))
	var got string
	if _, err := x.Exec(ctx, "SET ROLE "+role, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if err := x.QueryRow(ctx, "SELECT current_user", pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil || got != role {
		t.Fatalf("X after SET ROLE: %q, %v", got, err)
	}
	if _, err := y.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil { // the connection takes Y's state
		t.Fatal(err)
	}
	if _, err := adm.Exec(ctx, "REVOKE "+role+" FROM app"); err != nil {
		t.Fatal(err)
	}
	err := x.QueryRow(ctx, "SELECT current_user", pgx.QueryExecModeSimpleProtocol).Scan(&got)
	if err == nil {
		t.Fatalf("X's statement ran as %q after its role could not be restored", got)
	}
	t.Logf("X: %v", err)
	if err := y.QueryRow(ctx, "SELECT current_user", pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil || got != "app" {
		t.Fatalf("Y afterwards: %q, %v", got, err)
	}
}

// tpRoleOfApp creates a role (named from prefix) that user app is a member
// of, dropped when the test ends, and returns it with the primary's
// superuser connection.
func tpRoleOfApp(t *testing.T, ctx context.Context, prefix string) (string, *pgx.Conn) {
	t.Helper()
	role := ppUniq(prefix)
	adm := ppAdminConns(t, ctx)[0]
	for _, q := range []string{"CREATE ROLE " + role, "GRANT " + role + " TO app"} {
		if _, err := adm.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { adm.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	return role, adm
}
