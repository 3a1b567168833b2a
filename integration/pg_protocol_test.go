package integration

// End-to-end tests of the PostgreSQL wire protocol through Sluice: COPY,
// cancellation, LISTEN/NOTIFY, TLS (including PostgreSQL 17 direct TLS),
// authentication failures, robustness against malformed clients, verbatim
// errors, extended-protocol corner cases and backend connections that die
// under a session.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
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
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"
)

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

// ppSQLState returns the SQLSTATE of the PostgreSQL error inside err, or "".
func ppSQLState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// ppMustPgError returns the PostgreSQL error inside err or fails the test.
func ppMustPgError(t testing.TB, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want a PostgreSQL error, got %v (%T)", err, err)
	}
	return pe
}

// ppUniq returns prefix followed by a random suffix: a name (table, channel,
// application_name) no other test uses.
func ppUniq(prefix string) string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + "_" + hex.EncodeToString(b[:])
}

// ppNamedDSN is appDSN with an application_name, which the proxy forwards to
// the backends, so that the session's backend connections can be found in
// pg_stat_activity.
func ppNamedDSN(t testing.TB, listener, app string) string {
	return dsn(t, listener, "app", "app", "app", "application_name="+app)
}

// ppWithSSLMode replaces the sslmode of a DSN made by dsn (the first sslmode
// in a URL wins, so it cannot simply be appended).
func ppWithSSLMode(s, mode string) string {
	return strings.Replace(s, "sslmode=disable", "sslmode="+mode, 1)
}

// ppConnect connects with pgx and closes the connection when the test ends.
func ppConnect(t testing.TB, ctx context.Context, connString string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatalf("connect %s: %v", connString, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(cctx)
	})
	return c
}

// ppWriterExec runs statements through the writer endpoint.
func ppWriterExec(t testing.TB, ctx context.Context, sqls ...string) {
	t.Helper()
	c, err := pgx.Connect(ctx, appDSN(t, "writer"))
	if err != nil {
		t.Fatalf("connect writer endpoint: %v", err)
	}
	defer c.Close(context.Background())
	for _, q := range sqls {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// ppWriterInt runs a one-integer query through the writer endpoint.
func ppWriterInt(t testing.TB, ctx context.Context, q string, args ...any) int64 {
	t.Helper()
	c, err := pgx.Connect(ctx, appDSN(t, "writer"))
	if err != nil {
		t.Fatalf("connect writer endpoint: %v", err)
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// ppWaitReplicated waits until every replica replayed everything committed on
// the primary so far.
func ppWaitReplicated(t testing.TB, ctx context.Context) {
	t.Helper()
	if err := shared.pg.WaitReplicated(ctx); err != nil {
		t.Fatal(err)
	}
}

// ppEventually polls cond until it reports true, failing the test after a
// generous deadline.
func ppEventually(t testing.TB, ctx context.Context, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var lastErr error
	for {
		ok, err := cond(ctx)
		if err == nil && ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s (last error: %v)", what, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ppBackend is one client backend process seen in pg_stat_activity.
type ppBackend struct {
	node     int // index in shared.pg.Nodes()
	pid      int32
	state    string
	query    string
	recovery bool // the node is a hot standby
}

// ppAdminConns opens a superuser connection to every node (primary first).
func ppAdminConns(t testing.TB, ctx context.Context) []*pgx.Conn {
	t.Helper()
	nodes := shared.pg.Nodes()
	out := make([]*pgx.Conn, len(nodes))
	for i, n := range nodes {
		out[i] = ppConnect(t, ctx, n.AdminDSN("app"))
	}
	return out
}

// ppFindBackends lists the backends with application_name app on every node.
func ppFindBackends(ctx context.Context, adm []*pgx.Conn, app string) ([]ppBackend, error) {
	var out []ppBackend
	for i, c := range adm {
		rows, err := c.Query(ctx, `SELECT pid, coalesce(state, ''), coalesce(query, ''), pg_is_in_recovery()
			FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'`, app)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			b := ppBackend{node: i}
			if err := rows.Scan(&b.pid, &b.state, &b.query, &b.recovery); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, b)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ppWaitBackend polls until a backend of app matches pred and returns it.
func ppWaitBackend(t testing.TB, ctx context.Context, adm []*pgx.Conn, app, what string, pred func(ppBackend) bool) ppBackend {
	t.Helper()
	var found ppBackend
	ppEventually(t, ctx, what, func(ctx context.Context) (bool, error) {
		bs, err := ppFindBackends(ctx, adm, app)
		if err != nil {
			return false, err
		}
		for _, b := range bs {
			if pred(b) {
				found = b
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// ppWaitActive waits until a backend of app is running a statement containing
// fragment.
func ppWaitActive(t testing.TB, ctx context.Context, adm []*pgx.Conn, app, fragment string) ppBackend {
	t.Helper()
	return ppWaitBackend(t, ctx, adm, app, fmt.Sprintf("a backend of %s runs %q", app, fragment), func(b ppBackend) bool {
		return b.state == "active" && strings.Contains(b.query, fragment)
	})
}

// ppWaitNoBackend waits until every backend connection of app is back in
// the proxy's pool, clean: idle (no transaction, nothing running) with the
// pool's reset (DISCARD ALL) as its last statement, or closed.
func ppWaitNoBackend(t testing.TB, ctx context.Context, adm []*pgx.Conn, app string) {
	t.Helper()
	ppEventually(t, ctx, "the backend connections of "+app+" are reset or closed", func(ctx context.Context) (bool, error) {
		bs, err := ppFindBackends(ctx, adm, app)
		if err != nil {
			return false, err
		}
		for _, b := range bs {
			if b.state != "idle" || b.query != "DISCARD ALL" {
				return false, nil
			}
		}
		return true, nil
	})
}

// ppRawDial logs in with pgconn and takes the connection over, for clients
// that speak the protocol by hand.
func ppRawDial(ctx context.Context, connString string) (*pgconn.HijackedConn, error) {
	pc, err := pgconn.Connect(ctx, connString)
	if err != nil {
		return nil, err
	}
	// pgconn may still have a background read pending on the socket:
	// SyncConn stops it, as Hijack's documentation asks.
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	return hc, nil
}

// ppRawClient is an authenticated connection spoken to with pgproto3.
type ppRawClient struct {
	t    testing.TB
	conn net.Conn
	fe   *pgproto3.Frontend
}

func ppNewRawClient(t testing.TB, ctx context.Context, connString string) *ppRawClient {
	t.Helper()
	hc, err := ppRawDial(ctx, connString)
	if err != nil {
		t.Fatalf("connect %s: %v", connString, err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	return &ppRawClient{t: t, conn: hc.Conn, fe: hc.Frontend}
}

// send buffers msgs and flushes them in one write.
func (c *ppRawClient) send(msgs ...pgproto3.FrontendMessage) {
	c.t.Helper()
	for _, m := range msgs {
		c.fe.Send(m)
	}
	c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := c.fe.Flush(); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// recv reads one message and returns its summary.
func (c *ppRawClient) recv() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	m, err := c.fe.Receive()
	if err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	return ppSummarize(m)
}

// recvN reads n messages.
func (c *ppRawClient) recvN(n int) []string {
	c.t.Helper()
	out := make([]string, 0, n)
	for range n {
		out = append(out, c.recv())
	}
	return out
}

// untilReady reads messages up to and including the next ReadyForQuery.
func (c *ppRawClient) untilReady() []string {
	c.t.Helper()
	var out []string
	for {
		s := c.recv()
		out = append(out, s)
		if strings.HasPrefix(s, "ReadyForQuery") {
			return out
		}
		if len(out) > 1000 {
			c.t.Fatalf("no ReadyForQuery after 1000 messages: %v", out[:20])
		}
	}
}

// ppSummarize renders a backend message as a short comparable string
// (copying what it needs: the message is reused by the next Receive).
func ppSummarize(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.ParseComplete:
		return "ParseComplete"
	case *pgproto3.BindComplete:
		return "BindComplete"
	case *pgproto3.CloseComplete:
		return "CloseComplete"
	case *pgproto3.NoData:
		return "NoData"
	case *pgproto3.EmptyQueryResponse:
		return "EmptyQueryResponse"
	case *pgproto3.PortalSuspended:
		return "PortalSuspended"
	case *pgproto3.ParameterDescription:
		return fmt.Sprintf("ParameterDescription(%d)", len(m.ParameterOIDs))
	case *pgproto3.RowDescription:
		names := make([]string, len(m.Fields))
		for i, f := range m.Fields {
			names[i] = string(f.Name)
		}
		return "RowDescription(" + strings.Join(names, ",") + ")"
	case *pgproto3.DataRow:
		vals := make([]string, len(m.Values))
		for i, v := range m.Values {
			if v == nil {
				vals[i] = "NULL"
			} else {
				vals[i] = string(v)
			}
		}
		return "DataRow(" + strings.Join(vals, ",") + ")"
	case *pgproto3.CommandComplete:
		return "CommandComplete(" + string(m.CommandTag) + ")"
	case *pgproto3.ErrorResponse:
		return "ErrorResponse(" + m.Code + ")"
	case *pgproto3.NoticeResponse:
		return "NoticeResponse(" + m.Code + ")"
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery(" + string(m.TxStatus) + ")"
	case *pgproto3.ParameterStatus:
		return "ParameterStatus(" + m.Name + "=" + m.Value + ")"
	case *pgproto3.NotificationResponse:
		return "NotificationResponse(" + m.Channel + "," + m.Payload + ")"
	}
	return fmt.Sprintf("%T", m)
}

// ppExpectSeq compares message summaries.
func ppExpectSeq(t testing.TB, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func ppTextParams(vals ...string) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out
}

// ppIsTimeout reports whether err is a network timeout.
func ppIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ppReadUntilClosed reads from c until the peer closes it. It fails (returns
// an error) if the peer keeps it open past the deadline.
func ppReadUntilClosed(c net.Conn, d time.Duration) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(d))
	var buf bytes.Buffer
	_, err := io.Copy(&buf, c)
	if err != nil && ppIsTimeout(err) {
		return buf.Bytes(), fmt.Errorf("the proxy did not close the connection within %v (received %q)", d, buf.Bytes())
	}
	// nil (EOF) or a reset: closed either way.
	return buf.Bytes(), nil
}

// ppExpectFatalThenClose reads one ErrorResponse of severity FATAL with code
// from fe and then expects the connection to be closed.
func ppExpectFatalThenClose(c net.Conn, fe *pgproto3.Frontend, code string) error {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	m, err := fe.Receive()
	if err != nil {
		return fmt.Errorf("want FATAL ErrorResponse %s, got error %v", code, err)
	}
	er, ok := m.(*pgproto3.ErrorResponse)
	if !ok {
		return fmt.Errorf("want FATAL ErrorResponse %s, got %s", code, ppSummarize(m))
	}
	if er.Code != code || er.Severity != "FATAL" {
		return fmt.Errorf("want FATAL %s, got %s %s: %s", code, er.Severity, er.Code, er.Message)
	}
	m, err = fe.Receive()
	switch {
	case err == nil:
		return fmt.Errorf("connection still open after the FATAL error: received %s", ppSummarize(m))
	case ppIsTimeout(err):
		return fmt.Errorf("the proxy did not close the connection after the FATAL error: %v", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Malformed clients (also used concurrently by the robustness test, so they
// report errors instead of failing the test).
// ---------------------------------------------------------------------------

// ppOversized logs in, announces a 2 MiB message (the shared proxy's
// limit is 1 MiB) and expects FATAL 08P01 and a closed connection.
func ppOversized(ctx context.Context, connString string) error {
	hc, err := ppRawDial(ctx, connString)
	if err != nil {
		return err
	}
	defer hc.Conn.Close()
	hdr := []byte{'Q', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], 2<<20+4)
	hc.Conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := hc.Conn.Write(hdr); err != nil {
		return err
	}
	return ppExpectFatalThenClose(hc.Conn, hc.Frontend, "08P01")
}

// ppUnknownType logs in and sends a message of a type that does not
// exist in the protocol.
func ppUnknownType(ctx context.Context, connString string) error {
	hc, err := ppRawDial(ctx, connString)
	if err != nil {
		return err
	}
	defer hc.Conn.Close()
	hc.Conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := hc.Conn.Write([]byte{'z', 0, 0, 0, 4}); err != nil {
		return err
	}
	return ppExpectFatalThenClose(hc.Conn, hc.Frontend, "08P01")
}

// ppBadLength logs in and sends a message whose length is smaller
// than its length field.
func ppBadLength(ctx context.Context, connString string) error {
	hc, err := ppRawDial(ctx, connString)
	if err != nil {
		return err
	}
	defer hc.Conn.Close()
	hc.Conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := hc.Conn.Write([]byte{'Q', 0, 0, 0, 2}); err != nil {
		return err
	}
	return ppExpectFatalThenClose(hc.Conn, hc.Frontend, "08P01")
}

// ppTruncated logs in, sends the first part of a Query message and
// half-closes the connection; the proxy must end the session.
func ppTruncated(ctx context.Context, connString string) error {
	hc, err := ppRawDial(ctx, connString)
	if err != nil {
		return err
	}
	defer hc.Conn.Close()
	msg := []byte{'Q', 0, 0, 0, 100}
	msg = append(msg, "SELECT 1"...)
	hc.Conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := hc.Conn.Write(msg); err != nil {
		return err
	}
	tc, ok := hc.Conn.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("not a TCP connection: %T", hc.Conn)
	}
	if err := tc.CloseWrite(); err != nil {
		return err
	}
	got, err := ppReadUntilClosed(hc.Conn, 30*time.Second)
	if err != nil {
		return err
	}
	if len(got) > 0 && got[0] != 'E' {
		return fmt.Errorf("unexpected answer to a truncated message: %q", got)
	}
	return nil
}

// ppGarbage sends payload as the very first bytes of a connection
// and expects the proxy to close it. It returns what the proxy answered.
func ppGarbage(ctx context.Context, addr string, payload []byte) ([]byte, error) {
	return ppSendRaw(ctx, addr, payload, false)
}

// ppSendRaw writes payload on a new connection, half-closes it if asked, and
// reads until the proxy closes it.
func ppSendRaw(ctx context.Context, addr string, payload []byte, closeWrite bool) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(payload); err != nil {
		return nil, err
	}
	if closeWrite {
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return nil, err
		}
	}
	return ppReadUntilClosed(c, 30*time.Second)
}

// ppRandomGarbage returns n random bytes that announce an impossible startup
// packet length (so the proxy decides at once instead of waiting for more).
func ppRandomGarbage(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	b[0] = 0x7f // length ≥ 0x7f000000: far above any startup packet; not 0x16 (TLS)
	return b
}

// ppErrorCodeIn returns the SQLSTATE of an ErrorResponse at the start of raw
// bytes received from the proxy.
func ppErrorCodeIn(raw []byte) (severity, code string, err error) {
	if len(raw) < 5 || raw[0] != 'E' {
		return "", "", fmt.Errorf("not an ErrorResponse: %q", raw)
	}
	n := int(binary.BigEndian.Uint32(raw[1:5]))
	if n < 4 || len(raw) < 1+n {
		return "", "", fmt.Errorf("truncated ErrorResponse: %q", raw)
	}
	var er pgproto3.ErrorResponse
	if err := er.Decode(raw[5 : 1+n]); err != nil {
		return "", "", err
	}
	return er.Severity, er.Code, nil
}

// ---------------------------------------------------------------------------
// 1. COPY
// ---------------------------------------------------------------------------

const ppCopyRows = 100000

type ppCopyRow struct {
	id   int64
	name *string
	flag bool
}

func ppCopyRowAt(i int) ppCopyRow {
	r := ppCopyRow{id: int64(i + 1), flag: i%3 == 0}
	switch i % 7 {
	case 0:
		// NULL
	case 1:
		s := fmt.Sprintf("special %d: tab\there, backslash \\ and\nnewline, 'quote' \"dq\" é ✓", i)
		r.name = &s
	case 2:
		s := ""
		r.name = &s
	default:
		s := fmt.Sprintf("name-%06d", i)
		r.name = &s
	}
	return r
}

// ppCopyText renders rows exactly as PostgreSQL's COPY … TO STDOUT (text
// format) does.
func ppCopyText(n int) []byte {
	esc := strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)
	var b bytes.Buffer
	for i := range n {
		r := ppCopyRowAt(i)
		b.WriteString(strconv.FormatInt(r.id, 10))
		b.WriteByte('\t')
		if r.name == nil {
			b.WriteString(`\N`)
		} else {
			b.WriteString(esc.Replace(*r.name))
		}
		b.WriteByte('\t')
		if r.flag {
			b.WriteByte('t')
		} else {
			b.WriteByte('f')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func ppSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ppCopyOut runs a COPY … TO STDOUT and returns the bytes.
func ppCopyOut(t testing.TB, ctx context.Context, c *pgx.Conn, q string, wantRows int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tag, err := c.PgConn().CopyTo(ctx, &buf, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if tag.RowsAffected() != wantRows || !strings.HasPrefix(tag.String(), "COPY") {
		t.Errorf("%s: command tag %q, want COPY %d", q, tag.String(), wantRows)
	}
	return buf.Bytes()
}

func TestPGCopy(t *testing.T) {
	ctx := testCtx(t)
	binTbl, textTbl := ppUniq("copy_bin"), ppUniq("copy_text")
	for _, tbl := range []string{binTbl, textTbl} {
		ppWriterExec(t, ctx, fmt.Sprintf("CREATE TABLE %s (id int8 PRIMARY KEY, name text, flag bool NOT NULL)", tbl))
	}
	// pgx's CopyFrom first describes "SELECT cols FROM table", a read that
	// the auto endpoint sends to a replica: the table must be there.
	ppWaitReplicated(t, ctx)
	want := ppCopyText(ppCopyRows)
	wantSum := ppSHA(want)

	t.Run("pgx CopyFrom through auto", func(t *testing.T) {
		c := ppConnect(t, ctx, appDSN(t, "auto"))
		n, err := c.CopyFrom(ctx, pgx.Identifier{binTbl}, []string{"id", "name", "flag"},
			pgx.CopyFromSlice(ppCopyRows, func(i int) ([]any, error) {
				r := ppCopyRowAt(i)
				return []any{r.id, r.name, r.flag}, nil
			}))
		if err != nil {
			t.Fatalf("CopyFrom: %v", err)
		}
		if n != ppCopyRows {
			t.Fatalf("CopyFrom copied %d rows, want %d", n, ppCopyRows)
		}
		// The same session reads its own write (consistency: session).
		var cnt int64
		if err := c.QueryRow(ctx, "SELECT count(*) FROM "+binTbl).Scan(&cnt); err != nil {
			t.Fatal(err)
		}
		if cnt != ppCopyRows {
			t.Errorf("the session that copied reads %d rows, want %d (read-your-writes after COPY)", cnt, ppCopyRows)
		}
	})

	t.Run("pgconn CopyFrom text stream through auto", func(t *testing.T) {
		c := ppConnect(t, ctx, appDSN(t, "auto"))
		// A reader that hands out small, odd-sized pieces so that rows
		// straddle CopyData messages.
		tag, err := c.PgConn().CopyFrom(ctx, io.LimitReader(&ppChunkReader{data: want, chunk: 4093}, int64(len(want))),
			fmt.Sprintf("COPY %s (id, name, flag) FROM STDIN", textTbl))
		if err != nil {
			t.Fatalf("COPY FROM STDIN: %v", err)
		}
		if tag.RowsAffected() != ppCopyRows {
			t.Fatalf("COPY FROM STDIN: tag %q, want %d rows", tag.String(), ppCopyRows)
		}
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("session unusable after COPY: %v", err)
		}
	})
	if t.Failed() {
		return
	}

	ordered := func(tbl string) string {
		return fmt.Sprintf("COPY (SELECT id, name, flag FROM %s ORDER BY id) TO STDOUT", tbl)
	}
	var writerTable = map[string]string{}

	t.Run("COPY TO STDOUT through writer is byte-exact", func(t *testing.T) {
		c := ppConnect(t, ctx, appDSN(t, "writer"))
		for _, tbl := range []string{binTbl, textTbl} {
			got := ppCopyOut(t, ctx, c, ordered(tbl), ppCopyRows)
			if s := ppSHA(got); s != wantSum {
				t.Errorf("%s: sha256 of COPY TO output %s (%d bytes), want %s (%d bytes); first difference at byte %d",
					tbl, s, len(got), wantSum, len(want), ppFirstDiff(got, want))
			}
			// The table form, whose physical row order the replicas share.
			writerTable[tbl] = ppSHA(ppCopyOut(t, ctx, c, "COPY "+tbl+" TO STDOUT", ppCopyRows))
		}
	})

	t.Run("COPY TO STDOUT through auto from a replica is byte-exact", func(t *testing.T) {
		ppWaitReplicated(t, ctx)
		adm := ppAdminConns(t, ctx)
		app := ppUniq("copyout")
		c := ppConnect(t, ctx, ppNamedDSN(t, "auto", app))
		for _, tbl := range []string{binTbl, textTbl} {
			got := ppCopyOut(t, ctx, c, ordered(tbl), ppCopyRows)
			if s := ppSHA(got); s != wantSum {
				t.Errorf("%s via auto: sha256 %s (%d bytes), want %s (%d bytes); first difference at byte %d",
					tbl, s, len(got), wantSum, len(want), ppFirstDiff(got, want))
			}
			if w, ok := writerTable[tbl]; ok {
				if s := ppSHA(ppCopyOut(t, ctx, c, "COPY "+tbl+" TO STDOUT", ppCopyRows)); s != w {
					t.Errorf("%s via auto: table-form COPY sha256 %s, writer gave %s", tbl, s, w)
				}
			}
		}
		// The session's reads were served by a replica: it holds a backend
		// connection on a standby (at login it only has the writer's).
		bs, err := ppFindBackends(ctx, adm, app)
		if err != nil {
			t.Fatal(err)
		}
		onReplica := false
		for _, b := range bs {
			onReplica = onReplica || b.recovery
		}
		if !onReplica {
			t.Errorf("COPY TO through auto did not reach a replica; backends of the session: %+v", bs)
		}
	})

	t.Run("failed COPY FROM leaves the session usable", func(t *testing.T) {
		c := ppConnect(t, ctx, appDSN(t, "auto"))
		// Bad data: the server rejects the row.
		_, err := c.PgConn().CopyFrom(ctx, strings.NewReader("1000001\tok\tt\nnot-a-number\tx\tf\n"),
			fmt.Sprintf("COPY %s (id, name, flag) FROM STDIN", textTbl))
		if code := ppSQLState(err); code != "22P02" {
			t.Errorf("COPY with a bad row: got %v, want SQLSTATE 22P02", err)
		}
		// The client aborts (CopyFail).
		_, err = c.PgConn().CopyFrom(ctx, io.MultiReader(strings.NewReader("1000002\tok\tt\n"), ppErrReader{errors.New("client gave up")}),
			fmt.Sprintf("COPY %s (id, name, flag) FROM STDIN", textTbl))
		if code := ppSQLState(err); code != "57014" {
			t.Errorf("COPY aborted with CopyFail: got %v, want SQLSTATE 57014", err)
		} else if pe := ppMustPgError(t, err); !strings.Contains(pe.Message, "client gave up") {
			t.Errorf("CopyFail message not relayed: %q", pe.Message)
		}
		var one int
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("session unusable after failed COPY: %v", err)
		}
		if n := ppWriterInt(t, ctx, "SELECT count(*) FROM "+textTbl); n != ppCopyRows {
			t.Errorf("%s has %d rows after the failed COPYs, want %d", textTbl, n, ppCopyRows)
		}
	})
}

// ppChunkReader returns data in pieces of at most chunk bytes.
type ppChunkReader struct {
	data  []byte
	chunk int
}

func (r *ppChunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.chunk, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

type ppErrReader struct{ err error }

func (r ppErrReader) Read([]byte) (int, error) { return 0, r.err }

func ppFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// ---------------------------------------------------------------------------
// 2. Cancel
// ---------------------------------------------------------------------------

// ppCancelConfig returns a pgx configuration whose context cancellation sends
// a CancelRequest and keeps the connection (instead of closing it).
func ppCancelConfig(t testing.TB, connString string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 8 * time.Second}
	}
	return cfg
}

func TestPGCancel(t *testing.T) {
	ctx := testCtx(t)
	adm := ppAdminConns(t, ctx)
	cases := []struct {
		name, listener string
		sslmode        string
		wantReplica    bool
		explicit       bool // pgconn.CancelRequest instead of a context cancellation
	}{
		{name: "auto replica via context", listener: "auto", wantReplica: true},
		{name: "auto replica via CancelRequest", listener: "auto", wantReplica: true, explicit: true},
		{name: "writer via context", listener: "writer"},
		{name: "writer via CancelRequest", listener: "writer", explicit: true},
		{name: "tls listener via CancelRequest over TLS", listener: "tls", sslmode: "require", wantReplica: true, explicit: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			app := ppUniq("cancel")
			cs := ppNamedDSN(t, tc.listener, app)
			if tc.sslmode != "" {
				cs = ppWithSSLMode(cs, tc.sslmode)
			}
			c, err := pgx.ConnectConfig(ctx, ppCancelConfig(t, cs))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			qctx, qcancel := context.WithCancel(ctx)
			defer qcancel()
			done := make(chan error, 1)
			go func() {
				_, err := c.Exec(qctx, "SELECT pg_sleep(10)")
				done <- err
			}()
			b := ppWaitActive(t, ctx, adm, app, "pg_sleep(10)")
			if b.recovery != tc.wantReplica {
				t.Errorf("pg_sleep ran on node %d (standby=%v), want standby=%v", b.node, b.recovery, tc.wantReplica)
			}
			cancelAt := time.Now()
			if tc.explicit {
				if err := c.PgConn().CancelRequest(ctx); err != nil {
					t.Fatalf("CancelRequest: %v", err)
				}
			} else {
				qcancel()
			}
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the cancelled query did not return within 30s")
			}
			if el := time.Since(cancelAt); el > 5*time.Second {
				t.Errorf("the query returned %v after the cancel, want well before pg_sleep's 10s", el)
			}
			if code := ppSQLState(err); code != "57014" {
				t.Fatalf("cancelled query: got %v, want SQLSTATE 57014 (query_canceled)", err)
			}
			if c.IsClosed() {
				t.Fatal("pgx closed the connection after the cancel")
			}
			var v int
			if err := c.QueryRow(ctx, "SELECT 41 + 1").Scan(&v); err != nil || v != 42 {
				t.Fatalf("connection unusable after the cancel: %v (%d)", err, v)
			}
			if _, err := c.Exec(ctx, "SELECT pg_sleep(0.01)"); err != nil {
				t.Errorf("a later statement was hit by the cancel: %v", err)
			}
		})
	}

	t.Run("CancelRequest with a wrong key is ignored", func(t *testing.T) {
		app := ppUniq("cancelkey")
		pc, err := pgconn.Connect(ctx, ppNamedDSN(t, "auto", app))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := pc.Exec(ctx, "SELECT pg_sleep(2)").ReadAll()
			done <- err
		}()
		ppWaitActive(t, ctx, adm, app, "pg_sleep(2)")
		key := bytes.Clone(pc.SecretKey())
		key[0] ^= 0xff
		for _, req := range [][2]any{{pc.PID(), key}, {pc.PID() ^ 0x5a5a, pc.SecretKey()}} {
			pkt := binary.BigEndian.AppendUint32(nil, uint32(12+len(req[1].([]byte))))
			pkt = binary.BigEndian.AppendUint32(pkt, 80877102)
			pkt = binary.BigEndian.AppendUint32(pkt, req[0].(uint32))
			pkt = append(pkt, req[1].([]byte)...)
			// The proxy closes the cancel connection once it handled it.
			if got, err := ppGarbage(ctx, shared.proxy.Addr("auto").String(), pkt); err != nil || len(got) != 0 {
				t.Fatalf("cancel connection: answered %q, err %v", got, err)
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("a CancelRequest with a wrong key cancelled the query: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("pg_sleep(2) did not return")
		}
	})
}

// ---------------------------------------------------------------------------
// 3. LISTEN / NOTIFY
// ---------------------------------------------------------------------------

func TestPGListenNotify(t *testing.T) {
	ctx := testCtx(t)
	ch, ch2 := ppUniq("chan"), ppUniq("chan")
	listener := ppConnect(t, ctx, appDSN(t, "auto"))
	if _, err := listener.Exec(ctx, "LISTEN "+ch); err != nil {
		t.Fatal(err)
	}
	notifier := ppConnect(t, ctx, appDSN(t, "writer"))

	wait := func(wantCh, wantPayload string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("notification %s/%q not delivered to the listening client: %v", wantCh, wantPayload, err)
		}
		if n.Channel != wantCh || n.Payload != wantPayload {
			t.Fatalf("notification %s/%q, want %s/%q", n.Channel, n.Payload, wantCh, wantPayload)
		}
	}

	if _, err := notifier.Exec(ctx, "NOTIFY "+ch+", 'hello'"); err != nil {
		t.Fatal(err)
	}
	wait(ch, "hello")

	// Several, in order, with pg_notify.
	for i := range 5 {
		if _, err := notifier.Exec(ctx, "SELECT pg_notify($1, $2)", ch, fmt.Sprintf("msg-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		wait(ch, fmt.Sprintf("msg-%d", i))
	}

	// Several in one transaction: delivered at commit, in order, before a
	// later one.
	tx, err := notifier.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tx-a", "tx-b", "tx-c"} {
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", ch, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.Exec(ctx, "NOTIFY "+ch+", 'after-tx'"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tx-a", "tx-b", "tx-c", "after-tx"} {
		wait(ch, p)
	}

	// The listening session keeps running statements (reads and writes)
	// and still receives notifications: LISTEN must not be lost when the
	// auto endpoint routes them.
	var one int
	if err := listener.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	tbl := ppUniq("listen")
	if _, err := listener.Exec(ctx, "CREATE TABLE "+tbl+" (id int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := listener.Exec(ctx, "INSERT INTO "+tbl+" VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := listener.QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&one); err != nil || one != 1 {
		t.Fatalf("read after write on the listening session: %v, %d", err, one)
	}
	if _, err := notifier.Exec(ctx, "SELECT pg_notify($1, 'after-queries')", ch); err != nil {
		t.Fatal(err)
	}
	wait(ch, "after-queries")

	// A NOTIFY statement sent through the auto endpoint reaches listeners
	// too (it must run on the writer).
	sender := ppConnect(t, ctx, appDSN(t, "auto"))
	if _, err := sender.Exec(ctx, "NOTIFY "+ch+", 'via-auto'"); err != nil {
		t.Fatalf("NOTIFY through auto: %v", err)
	}
	wait(ch, "via-auto")

	// The listening session notifies itself through the auto endpoint.
	if _, err := listener.Exec(ctx, "NOTIFY "+ch+", 'self'"); err != nil {
		t.Fatalf("NOTIFY from the listening session: %v", err)
	}
	wait(ch, "self")

	// UNLISTEN stops one channel, not the others.
	if _, err := listener.Exec(ctx, "LISTEN "+ch2); err != nil {
		t.Fatal(err)
	}
	if _, err := listener.Exec(ctx, "UNLISTEN "+ch); err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.Exec(ctx, "NOTIFY "+ch+", 'lost'"); err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.Exec(ctx, "NOTIFY "+ch2+", 'kept'"); err != nil {
		t.Fatal(err)
	}
	wait(ch2, "kept")
}

// ---------------------------------------------------------------------------
// 4. TLS
// ---------------------------------------------------------------------------

// ppPsql runs /usr/bin/psql with conninfo and returns its combined output.
func ppPsql(ctx context.Context, connInfo, password string, args ...string) (string, error) {
	all := append([]string{connInfo, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"}, args...)
	cmd := exec.CommandContext(ctx, "psql", all...)
	env := []string{"PGPASSWORD=" + password, "PGCONNECT_TIMEOUT=10"}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PG") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func ppConninfo(listener, user, sslmode string) string {
	host, port, _ := net.SplitHostPort(shared.proxy.Addr(listener).String())
	return fmt.Sprintf("host=%s port=%s user=%s dbname=app sslmode=%s", host, port, user, sslmode)
}

func TestPGTLS(t *testing.T) {
	ctx := testCtx(t)

	checkTLSConn := func(t *testing.T, c *pgx.Conn, user string) {
		t.Helper()
		tc, ok := c.PgConn().Conn().(*tls.Conn)
		if !ok {
			t.Fatalf("client connection is %T, want *tls.Conn", c.PgConn().Conn())
		}
		if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Errorf("TLS version %#x, want ≥ 1.2", v)
		}
		var cu string
		if err := c.QueryRow(ctx, "SELECT current_user").Scan(&cu); err != nil || cu != user {
			t.Fatalf("current_user over TLS: %q, %v", cu, err)
		}
	}

	t.Run("pgx sslmode=require", func(t *testing.T) {
		c := ppConnect(t, ctx, ppWithSSLMode(appDSN(t, "tls"), "require"))
		checkTLSConn(t, c, "app")
		if _, err := c.Exec(ctx, "SELECT pg_sleep(0)"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pgx sslmode=verify-full with the listener certificate", func(t *testing.T) {
		root := filepath.Join(shared.dir, "server.crt")
		c := ppConnect(t, ctx, ppWithSSLMode(appDSN(t, "tls"), "verify-full")+"&sslrootcert="+root)
		checkTLSConn(t, c, "app")
	})

	t.Run("pgx direct TLS (sslnegotiation=direct)", func(t *testing.T) {
		c := ppConnect(t, ctx, ppWithSSLMode(appDSN(t, "tls"), "require")+"&sslnegotiation=direct")
		checkTLSConn(t, c, "app")
		if p := c.PgConn().Conn().(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "postgresql" {
			t.Errorf("ALPN %q, want postgresql", p)
		}
	})

	t.Run("pgx sslmode=disable is refused with 28000", func(t *testing.T) {
		c, err := pgx.Connect(ctx, appDSN(t, "tls"))
		if err == nil {
			c.Close(ctx)
			t.Fatal("cleartext password accepted without TLS")
		}
		pe := ppMustPgError(t, err)
		if pe.Code != "28000" || pe.Severity != "FATAL" {
			t.Errorf("got %s %s %q, want FATAL 28000", pe.Severity, pe.Code, pe.Message)
		}
	})

	t.Run("pgx sslmode=require to a listener without TLS fails cleanly", func(t *testing.T) {
		start := time.Now()
		c, err := pgx.Connect(ctx, ppWithSSLMode(appDSN(t, "auto"), "require"))
		if err == nil {
			c.Close(ctx)
			t.Fatal("TLS connection to a listener without TLS succeeded")
		}
		if !strings.Contains(err.Error(), "refused TLS") {
			t.Errorf("want pgx's 'server refused TLS connection', got %v", err)
		}
		if el := time.Since(start); el > 8*time.Second {
			t.Errorf("refusal took %v (hung until a timeout?)", el)
		}
		// The listener still serves plaintext clients.
		p := ppConnect(t, ctx, appDSN(t, "auto"))
		if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("psql sslmode=require", func(t *testing.T) {
		out, err := ppPsql(ctx, ppConninfo("tls", "app", "require"), "app", "-c", "SELECT 40 + 2", "-c", `\conninfo`)
		if err != nil {
			t.Fatalf("psql: %v\n%s", err, out)
		}
		if !strings.Contains(out, "42\n") || !strings.Contains(out, "SSL connection") {
			t.Errorf("psql output lacks the result or the SSL line:\n%s", out)
		}
	})

	t.Run("psql sslmode=disable is refused", func(t *testing.T) {
		out, err := ppPsql(ctx, ppConninfo("tls", "app", "disable"), "app", "-c", "SELECT 1")
		if err == nil {
			t.Fatalf("psql without TLS succeeded:\n%s", out)
		}
		if !strings.Contains(out, "requires TLS") {
			t.Errorf("psql error does not explain the refusal:\n%s", out)
		}
	})

	t.Run("psql sslmode=require to a listener without TLS", func(t *testing.T) {
		out, err := ppPsql(ctx, ppConninfo("auto", "app", "require"), "app", "-c", "SELECT 1")
		if err == nil {
			t.Fatalf("psql with TLS to a plaintext listener succeeded:\n%s", out)
		}
		if !strings.Contains(out, "does not support SSL") {
			t.Errorf("psql error:\n%s", out)
		}
	})

	directTLS := func(t *testing.T, listener string, protos []string) (*tls.Conn, error) {
		t.Helper()
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", shared.proxy.Addr(listener).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		raw.SetDeadline(time.Now().Add(30 * time.Second))
		tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: protos, MinVersion: tls.VersionTLS12})
		return tc, tc.HandshakeContext(ctx)
	}

	t.Run("direct TLS by hand with pgproto3", func(t *testing.T) {
		tc, err := directTLS(t, "tls", []string{"postgresql"})
		if err != nil {
			t.Fatalf("direct TLS handshake: %v", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "postgresql" {
			t.Errorf("ALPN %q, want postgresql", p)
		}
		fe := pgproto3.NewFrontend(tc, tc)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{
			"user": "app", "database": "app", "application_name": "direct-tls",
		}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.AuthenticationCleartextPassword); !ok {
			t.Fatalf("want AuthenticationCleartextPassword, got %s", ppSummarize(m))
		}
		fe.Send(&pgproto3.PasswordMessage{Password: "app"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		m, err = fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.AuthenticationOk); !ok {
			t.Fatalf("want AuthenticationOk, got %s", ppSummarize(m))
		}
		params := map[string]string{}
		gotKey := false
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if ps, ok := m.(*pgproto3.ParameterStatus); ok {
				params[ps.Name] = ps.Value
				continue
			}
			if _, ok := m.(*pgproto3.BackendKeyData); ok {
				gotKey = true
				continue
			}
			if rfq, ok := m.(*pgproto3.ReadyForQuery); ok {
				if rfq.TxStatus != 'I' {
					t.Errorf("ReadyForQuery(%c), want I", rfq.TxStatus)
				}
				break
			}
			t.Fatalf("unexpected message during startup: %s", ppSummarize(m))
		}
		if !gotKey || params["server_version"] == "" {
			t.Errorf("startup lacked BackendKeyData (%v) or server_version (%v)", gotKey, params)
		}
		c := &ppRawClient{t: t, conn: tc, fe: fe}
		c.send(&pgproto3.Query{String: "SELECT current_user, 1 + 1"})
		ppExpectSeq(t, "query over direct TLS", c.untilReady(), []string{
			"RowDescription(current_user,?column?)", "DataRow(app,2)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)",
		})
		c.send(&pgproto3.Terminate{})
	})

	t.Run("direct TLS without ALPN is refused", func(t *testing.T) {
		tc, err := directTLS(t, "tls", nil)
		if err != nil {
			return // refused during the handshake: fine
		}
		fe := pgproto3.NewFrontend(tc, tc)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "app", "database": "app"}})
		fe.Flush()
		m, err := fe.Receive()
		if err == nil {
			t.Fatalf("direct TLS without ALPN got an answer: %s", ppSummarize(m))
		}
		if ppIsTimeout(err) {
			t.Fatalf("direct TLS without ALPN: connection left open: %v", err)
		}
	})

	t.Run("direct TLS to a listener without TLS is closed", func(t *testing.T) {
		if _, err := directTLS(t, "auto", []string{"postgresql"}); err == nil {
			t.Fatal("TLS handshake succeeded on a listener without TLS")
		} else if ppIsTimeout(err) {
			t.Fatalf("the proxy left the connection open: %v", err)
		}
		p := ppConnect(t, ctx, appDSN(t, "auto"))
		if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	})
}

// ---------------------------------------------------------------------------
// 5. Authentication
// ---------------------------------------------------------------------------

func TestPGAuth(t *testing.T) {
	ctx := testCtx(t)
	// listener → the sslmode it needs.
	listeners := []struct{ name, sslmode string }{{"auto", "disable"}, {"md5", "disable"}, {"tls", "require"}}
	tbl := ppUniq("auth")
	ppWriterExec(t, ctx, "CREATE TABLE "+tbl+" (who text, listener text)", "GRANT SELECT, INSERT ON "+tbl+" TO other")

	connErr := func(t *testing.T, listener, sslmode, user, pw, db string) *pgconn.PgError {
		t.Helper()
		c, err := pgx.Connect(ctx, ppWithSSLMode(dsn(t, listener, user, pw, db, ""), sslmode))
		if err == nil {
			c.Close(ctx)
			t.Fatalf("login of %s/%s on %s (db %s) succeeded", user, pw, listener, db)
		}
		return ppMustPgError(t, err)
	}

	for _, l := range listeners {
		t.Run(l.name, func(t *testing.T) {
			t.Run("wrong password", func(t *testing.T) {
				pe := connErr(t, l.name, l.sslmode, "app", "wrong", "app")
				if pe.Code != "28P01" || pe.Severity != "FATAL" || pe.Message != `password authentication failed for user "app"` {
					t.Errorf("got %s %s %q, want FATAL 28P01 password authentication failed for user \"app\"", pe.Severity, pe.Code, pe.Message)
				}
				pe2 := connErr(t, l.name, l.sslmode, "other", "app", "app")
				if pe2.Code != "28P01" {
					t.Errorf("user other with app's password: got %s %q, want 28P01", pe2.Code, pe2.Message)
				}
			})
			t.Run("unknown user", func(t *testing.T) {
				ref := connErr(t, l.name, l.sslmode, "app", "wrong", "app")
				user := ppUniq("nobody")
				pe := connErr(t, l.name, l.sslmode, user, "whatever", "app")
				if pe.Code != "28P01" {
					t.Errorf("unknown user: got %s %q, want 28P01", pe.Code, pe.Message)
				}
				// The same shape as a wrong password: nothing tells the
				// client the user does not exist.
				if want := strings.Replace(ref.Message, `"app"`, `"`+user+`"`, 1); pe.Message != want {
					t.Errorf("unknown user message %q, want %q", pe.Message, want)
				}
				if pe.Hint != "" || pe.Detail != "" || pe.Severity != ref.Severity || pe.Detail != ref.Detail || pe.Hint != ref.Hint {
					t.Errorf("unknown user error differs in shape: %+v vs wrong password %+v", *pe, *ref)
				}
			})
			t.Run("unknown database", func(t *testing.T) {
				db := ppUniq("nodb")
				pe := connErr(t, l.name, l.sslmode, "app", "app", db)
				if pe.Code != "3D000" || pe.Message != fmt.Sprintf("database %q does not exist", db) {
					t.Errorf("got %s %q, want 3D000 database %q does not exist", pe.Code, pe.Message, db)
				}
			})
			t.Run("right password", func(t *testing.T) {
				for _, u := range []string{"app", "other"} {
					c := ppConnect(t, ctx, ppWithSSLMode(dsn(t, l.name, u, u, "app", ""), l.sslmode))
					var cu string
					var rec bool
					if err := c.QueryRow(ctx, "SELECT current_user, pg_is_in_recovery()").Scan(&cu, &rec); err != nil {
						t.Fatalf("%s: %v", u, err)
					}
					if cu != u {
						t.Errorf("current_user %q, want %q", cu, u)
					}
					if !rec {
						t.Errorf("%s: a read on %s did not reach a replica", u, l.name)
					}
					// Writes run as that user on the writer.
					var who string
					if err := c.QueryRow(ctx, "INSERT INTO "+tbl+" VALUES (current_user, $1) RETURNING who", l.name).Scan(&who); err != nil || who != u {
						t.Fatalf("%s: insert: %v (%q)", u, err, who)
					}
				}
			})
		})
	}

	t.Run("md5 listener asks for md5", func(t *testing.T) {
		hc, err := net.Dial("tcp", shared.proxy.Addr("md5").String())
		if err != nil {
			t.Fatal(err)
		}
		defer hc.Close()
		hc.SetDeadline(time.Now().Add(30 * time.Second))
		fe := pgproto3.NewFrontend(hc, hc)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "app", "database": "app"}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.AuthenticationMD5Password); !ok {
			t.Errorf("md5 listener sent %s, want AuthenticationMD5Password", ppSummarize(m))
		}
	})
}

// ---------------------------------------------------------------------------
// 6. Robustness
// ---------------------------------------------------------------------------

func TestPGRobustness(t *testing.T) {
	ctx := testCtx(t)
	adm := ppAdminConns(t, ctx)
	autoAddr := shared.proxy.Addr("auto").String()

	// A client connected before the misbehaving ones, checked after each.
	pre := ppConnect(t, ctx, appDSN(t, "auto"))
	preWorks := func(t *testing.T) {
		t.Helper()
		var v int
		if err := pre.QueryRow(ctx, "SELECT 7 * 6").Scan(&v); err != nil || v != 42 {
			t.Fatalf("the client connected before is broken: %v (%d)", err, v)
		}
		c := ppConnect(t, ctx, appDSN(t, "auto"))
		if err := c.QueryRow(ctx, "SELECT 6 * 7").Scan(&v); err != nil || v != 42 {
			t.Fatalf("a new client cannot work: %v (%d)", err, v)
		}
	}

	t.Run("oversized message", func(t *testing.T) {
		app := ppUniq("oversized")
		if err := ppOversized(ctx, ppNamedDSN(t, "auto", app)); err != nil {
			t.Fatal(err)
		}
		ppWaitNoBackend(t, ctx, adm, app)
		preWorks(t)
	})

	t.Run("message just under the limit", func(t *testing.T) {
		big := strings.Repeat("x", 1<<20-4096)
		var n int
		if err := pre.QueryRow(ctx, "SELECT length($1::text)", big).Scan(&n); err != nil || n != len(big) {
			t.Fatalf("extended protocol, %d-byte parameter: %v (%d)", len(big), err, n)
		}
		if err := pre.QueryRow(ctx, "SELECT length($1::text)", pgx.QueryExecModeSimpleProtocol, big).Scan(&n); err != nil || n != len(big) {
			t.Fatalf("simple protocol, %d-byte query: %v (%d)", len(big), err, n)
		}
	})

	t.Run("unknown message type", func(t *testing.T) {
		app := ppUniq("unknowntype")
		if err := ppUnknownType(ctx, ppNamedDSN(t, "auto", app)); err != nil {
			t.Fatal(err)
		}
		ppWaitNoBackend(t, ctx, adm, app)
		preWorks(t)
	})

	t.Run("invalid message length", func(t *testing.T) {
		app := ppUniq("badlen")
		if err := ppBadLength(ctx, ppNamedDSN(t, "auto", app)); err != nil {
			t.Fatal(err)
		}
		ppWaitNoBackend(t, ctx, adm, app)
		preWorks(t)
	})

	t.Run("truncated message then EOF", func(t *testing.T) {
		app := ppUniq("truncated")
		if err := ppTruncated(ctx, ppNamedDSN(t, "auto", app)); err != nil {
			t.Fatal(err)
		}
		ppWaitNoBackend(t, ctx, adm, app)
		preWorks(t)
	})

	t.Run("garbage first packet", func(t *testing.T) {
		// Random bytes announcing an impossible length.
		if _, err := ppGarbage(ctx, autoAddr, ppRandomGarbage(256)); err != nil {
			t.Fatalf("random bytes: %v", err)
		}
		// Exactly one length word of garbage: the proxy can answer before
		// closing (nothing left unread, so no reset loses the answer).
		got, err := ppGarbage(ctx, autoAddr, ppRandomGarbage(4))
		if err != nil {
			t.Fatalf("4 random bytes: %v", err)
		}
		if sev, code, err := ppErrorCodeIn(got); err != nil || code != "08P01" || sev != "FATAL" {
			t.Errorf("4 random bytes: answer %q (%s %s, %v), want FATAL 08P01", got, sev, code, err)
		}
		// A well-framed packet with a nonsense protocol version.
		junk := make([]byte, 16)
		rand.Read(junk)
		binary.BigEndian.PutUint32(junk[0:], 16)
		junk[4] = 0xde
		got, err = ppGarbage(ctx, autoAddr, junk)
		if err != nil {
			t.Fatalf("nonsense startup packet: %v", err)
		}
		if sev, code, err := ppErrorCodeIn(got); err != nil || code != "08P01" || sev != "FATAL" {
			t.Errorf("nonsense startup packet: answer %q (%s %s, %v), want FATAL 08P01", got, sev, code, err)
		}
		// An HTTP request.
		if _, err := ppGarbage(ctx, autoAddr, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatalf("HTTP request: %v", err)
		}
		// Only a few bytes, then EOF.
		if _, err := ppSendRaw(ctx, autoAddr, []byte{0, 0}, true); err != nil {
			t.Fatalf("2 bytes then EOF: %v", err)
		}
		preWorks(t)
	})

	t.Run("50 concurrent clients while a client misbehaves", func(t *testing.T) {
		tbl, seed := ppUniq("robust"), ppUniq("seed")
		ppWriterExec(t, ctx,
			"CREATE TABLE "+tbl+" (client int NOT NULL, round int NOT NULL, via text NOT NULL)",
			"CREATE TABLE "+seed+" AS SELECT g AS id FROM generate_series(1, 100) g")
		ppWaitReplicated(t, ctx)

		const clients, rounds = 50, 4
		// A bound well below the test's own, so that a hang is reported
		// as such and leaves time for the checks below.
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		defer wcancel()
		stop := make(chan struct{})
		misDone := make(chan error, 1)
		started := make(chan struct{})
		var cycles atomic.Int64
		go func() {
			var once sync.Once
			defer once.Do(func() { close(started) })
			steps := []func() error{
				func() error { return ppOversized(wctx, appDSN(t, "auto")) },
				func() error { return ppUnknownType(wctx, appDSN(t, "auto")) },
				func() error { return ppTruncated(wctx, appDSN(t, "auto")) },
				func() error { _, err := ppGarbage(wctx, autoAddr, ppRandomGarbage(512)); return err },
				func() error { return ppBadLength(wctx, appDSN(t, "auto")) },
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					misDone <- nil
					return
				default:
				}
				if err := steps[i%len(steps)](); err != nil {
					misDone <- fmt.Errorf("misbehaving client, step %d: %w", i, err)
					return
				}
				cycles.Add(1)
				if i == len(steps)-1 {
					once.Do(func() { close(started) })
				}
			}
		}()
		select {
		case <-started:
		case <-wctx.Done():
			t.Fatal("the misbehaving client did not start")
		}

		worker := func(w int) error {
			cs := appDSN(t, "auto")
			if w%2 == 1 {
				cs += "&default_query_exec_mode=simple_protocol"
			}
			c, err := pgx.Connect(wctx, cs)
			if err != nil {
				return err
			}
			defer c.Close(context.Background())
			for r := range rounds {
				if _, err := c.Exec(wctx, "INSERT INTO "+tbl+" VALUES ($1, $2, 'autocommit')", w, r); err != nil {
					return fmt.Errorf("insert: %w", err)
				}
				var n int
				if err := c.QueryRow(wctx, "SELECT count(*) FROM "+seed).Scan(&n); err != nil || n != 100 {
					return fmt.Errorf("read: %v (%d rows, want 100)", err, n)
				}
				tx, err := c.Begin(wctx)
				if err != nil {
					return err
				}
				if _, err := tx.Exec(wctx, "INSERT INTO "+tbl+" VALUES ($1, $2, 'tx')", w, r); err != nil {
					tx.Rollback(wctx)
					return fmt.Errorf("insert in tx: %w", err)
				}
				if err := tx.QueryRow(wctx, "SELECT count(*) FROM "+tbl+" WHERE client = $1", w).Scan(&n); err != nil || n != 2*r+2 {
					tx.Rollback(wctx)
					return fmt.Errorf("read in tx: %v (%d rows, want %d)", err, n, 2*r+2)
				}
				if err := tx.Commit(wctx); err != nil {
					return fmt.Errorf("commit: %w", err)
				}
			}
			return nil
		}
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := worker(w); err != nil {
					errs <- fmt.Errorf("client %d: %w", w, err)
				}
			}()
		}
		wg.Wait()
		close(stop)
		if err := <-misDone; err != nil {
			t.Error(err)
		}
		close(errs)
		failed := 0
		for err := range errs {
			t.Error(err)
			failed++
		}
		t.Logf("the misbehaving client completed %d attempts during the run", cycles.Load())
		if failed == 0 {
			if n := ppWriterInt(t, ctx, "SELECT count(*) FROM "+tbl); n != clients*rounds*2 {
				t.Errorf("%d rows written, want %d", n, clients*rounds*2)
			}
		}
		preWorks(t)
	})
}

// ---------------------------------------------------------------------------
// 7. Errors pass through verbatim
// ---------------------------------------------------------------------------

func TestPGErrorsPassThrough(t *testing.T) {
	ctx := testCtx(t)
	tbl := ppUniq("errs")
	ppWriterExec(t, ctx, "CREATE TABLE "+tbl+" (id int PRIMARY KEY, v text)", "INSERT INTO "+tbl+" VALUES (1, 'one')")
	ppWaitReplicated(t, ctx)
	direct := ppConnect(t, ctx, shared.pg.Nodes()[0].DSN("app", "app", "app"))

	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{{"extended", pgx.QueryExecModeCacheStatement}, {"simple", pgx.QueryExecModeSimpleProtocol}}

	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := ppConnect(t, ctx, appDSN(t, "auto"))
			run := func(c *pgx.Conn, q string) error {
				_, err := c.Exec(ctx, q, m.mode)
				return err
			}
			// compare runs q through the proxy and directly on the primary
			// and checks that every field of the error is the same.
			compare := func(t *testing.T, q, wantCode string) *pgconn.PgError {
				t.Helper()
				pe := ppMustPgError(t, run(c, q))
				ref := ppMustPgError(t, run(direct, q))
				if pe.Code != wantCode {
					t.Errorf("%s: SQLSTATE %s, want %s (%s)", q, pe.Code, wantCode, pe.Message)
				}
				if *pe != *ref {
					t.Errorf("%s: error through the proxy differs from PostgreSQL's:\n proxy  %+v\n direct %+v", q, *pe, *ref)
				}
				return pe
			}

			t.Run("syntax error", func(t *testing.T) {
				pe := compare(t, "SELECT * FROM WHERE", "42601")
				if pe.Message != `syntax error at or near "WHERE"` || pe.Position != 15 || pe.Severity != "ERROR" {
					t.Errorf("got %q at %d (%s)", pe.Message, pe.Position, pe.Severity)
				}
			})
			t.Run("division by zero", func(t *testing.T) {
				pe := compare(t, "SELECT 1/0", "22012")
				if pe.Message != "division by zero" {
					t.Errorf("got %q", pe.Message)
				}
			})
			t.Run("unique violation", func(t *testing.T) {
				pe := compare(t, "INSERT INTO "+tbl+" VALUES (1, 'dup')", "23505")
				if pe.ConstraintName != tbl+"_pkey" || pe.TableName != tbl || pe.SchemaName != "public" ||
					pe.Detail != "Key (id)=(1) already exists." {
					t.Errorf("fields: constraint %q table %q schema %q detail %q", pe.ConstraintName, pe.TableName, pe.SchemaName, pe.Detail)
				}
			})
			t.Run("undefined table", func(t *testing.T) {
				compare(t, "SELECT * FROM "+ppUniq("missing"), "42P01")
			})
			t.Run("in a transaction", func(t *testing.T) {
				id := 1000 + int(m.mode)
				tx, err := c.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%d, 'in tx')", tbl, id), m.mode); err != nil {
					t.Fatal(err)
				}
				_, err = tx.Exec(ctx, "INSERT INTO "+tbl+" VALUES (1, 'dup')", m.mode)
				if pe := ppMustPgError(t, err); pe.Code != "23505" || pe.ConstraintName != tbl+"_pkey" {
					t.Fatalf("duplicate in tx: %s %q constraint %q", pe.Code, pe.Message, pe.ConstraintName)
				}
				if s := c.PgConn().TxStatus(); s != 'E' {
					t.Errorf("transaction status %c after the error, want E", s)
				}
				for range 2 {
					_, err = tx.Exec(ctx, "SELECT 1", m.mode)
					pe := ppMustPgError(t, err)
					if pe.Code != "25P02" || pe.Message != "current transaction is aborted, commands ignored until end of transaction block" {
						t.Errorf("statement in the aborted transaction: %s %q, want 25P02", pe.Code, pe.Message)
					}
				}
				if err := tx.Rollback(ctx); err != nil {
					t.Fatalf("rollback: %v", err)
				}
				if s := c.PgConn().TxStatus(); s != 'I' {
					t.Errorf("transaction status %c after ROLLBACK, want I", s)
				}
				var v int
				if err := c.QueryRow(ctx, "SELECT 5", m.mode).Scan(&v); err != nil || v != 5 {
					t.Fatalf("after rollback: %v", err)
				}
				if n := ppWriterInt(t, ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id = %d", tbl, id)); n != 0 {
					t.Errorf("the rolled-back insert is visible (%d rows)", n)
				}
			})
			t.Run("read-only transaction on a replica", func(t *testing.T) {
				tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
				if err != nil {
					t.Fatal(err)
				}
				var rec bool
				if err := tx.QueryRow(ctx, "SELECT pg_is_in_recovery()", m.mode).Scan(&rec); err != nil {
					t.Fatal(err)
				}
				_, err = tx.Exec(ctx, "SELECT 1/0", m.mode)
				if code := ppSQLState(err); code != "22012" {
					t.Fatalf("division by zero in a read-only tx: %v", err)
				}
				_, err = tx.Exec(ctx, "SELECT 1", m.mode)
				if code := ppSQLState(err); code != "25P02" {
					t.Errorf("after the error: %v, want 25P02", err)
				}
				if err := tx.Rollback(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Exec(ctx, "SELECT 1", m.mode); err != nil {
					t.Fatal(err)
				}
			})
		})
	}

	t.Run("write on the reader endpoint", func(t *testing.T) {
		c := ppConnect(t, ctx, appDSN(t, "reader"))
		_, err := c.Exec(ctx, "INSERT INTO "+tbl+" VALUES (99, 'no')")
		pe := ppMustPgError(t, err)
		if pe.Code != "25006" || pe.Message != "cannot execute INSERT in a read-only transaction" {
			t.Errorf("got %s %q, want 25006", pe.Code, pe.Message)
		}
	})
}

// ---------------------------------------------------------------------------
// 8. Extended protocol details
// ---------------------------------------------------------------------------

// ppAlternate pipelines n batches (Parse/Bind/Execute/Sync) that alternate
// between a replica (plain reads) and the writer (hinted reads), then checks
// that every response arrives complete and in order.
func ppAlternate(ctx context.Context, connString string, n int) error {
	hc, err := ppRawDial(ctx, connString)
	if err != nil {
		return err
	}
	defer hc.Conn.Close()
	hc.Conn.SetDeadline(time.Now().Add(60 * time.Second))
	for i := range n {
		q := "SELECT $1::int AS i, pg_is_in_recovery() AS standby"
		if i%2 == 1 {
			q = "/* sluice:writer */ " + q
		}
		hc.Frontend.Send(&pgproto3.Parse{Query: q})
		hc.Frontend.Send(&pgproto3.Bind{Parameters: ppTextParams(strconv.Itoa(i))})
		hc.Frontend.Send(&pgproto3.Execute{})
		hc.Frontend.Send(&pgproto3.Sync{})
	}
	// Write from another goroutine: the answers may fill the socket
	// buffers before all batches are sent.
	sendErr := make(chan error, 1)
	go func() { sendErr <- hc.Frontend.Flush() }()
	standby := map[string]int{}
	for i := range n {
		var got []string
		for {
			m, err := hc.Frontend.Receive()
			if err != nil {
				return fmt.Errorf("batch %d: after %v: %w", i, got, err)
			}
			got = append(got, ppSummarize(m))
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		if len(got) != 5 || got[0] != "ParseComplete" || got[1] != "BindComplete" ||
			!strings.HasPrefix(got[2], fmt.Sprintf("DataRow(%d,", i)) || got[3] != "CommandComplete(SELECT 1)" || got[4] != "ReadyForQuery(I)" {
			return fmt.Errorf("batch %d: responses out of order or incomplete: %v", i, got)
		}
		standby[got[2][strings.LastIndexByte(got[2], ',')+1:len(got[2])-1]]++
	}
	if err := <-sendErr; err != nil {
		return err
	}
	if standby["t"] == 0 || standby["f"] == 0 {
		return fmt.Errorf("the batches did not alternate between a replica and the writer: %v", standby)
	}
	return nil
}

func TestPGExtendedProtocol(t *testing.T) {
	ctx := testCtx(t)
	tbl := ppUniq("ext")
	ppWriterExec(t, ctx, "CREATE TABLE "+tbl+" (v int NOT NULL)")
	ppWaitReplicated(t, ctx)

	t.Run("pipelined batches", func(t *testing.T) {
		c := ppNewRawClient(t, ctx, appDSN(t, "auto"))
		c.send(
			// 1: a read (first of the session: a replica)
			&pgproto3.Parse{Query: "SELECT $1::int + 1 AS v, pg_is_in_recovery() AS standby"},
			&pgproto3.Bind{Parameters: ppTextParams("1")},
			&pgproto3.Describe{ObjectType: 'P'},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
			// 2: a write with a named statement
			&pgproto3.Parse{Name: "ins", Query: "INSERT INTO " + tbl + " (v) VALUES ($1) RETURNING v"},
			&pgproto3.Bind{PreparedStatement: "ins", Parameters: ppTextParams("20")},
			&pgproto3.Describe{ObjectType: 'P'},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
			// 3: a read again
			&pgproto3.Parse{Query: "SELECT $1::int * 3 AS v"},
			&pgproto3.Bind{Parameters: ppTextParams("10")},
			&pgproto3.Describe{ObjectType: 'P'},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
			// 4: the named statement again, no Parse
			&pgproto3.Bind{PreparedStatement: "ins", Parameters: ppTextParams("40")},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		)
		want := [][]string{
			{"ParseComplete", "BindComplete", "RowDescription(v,standby)", "DataRow(2,t)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
			{"ParseComplete", "BindComplete", "RowDescription(v)", "DataRow(20)", "CommandComplete(INSERT 0 1)", "ReadyForQuery(I)"},
			{"ParseComplete", "BindComplete", "RowDescription(v)", "DataRow(30)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"},
			{"BindComplete", "DataRow(40)", "CommandComplete(INSERT 0 1)", "ReadyForQuery(I)"},
		}
		for i, w := range want {
			ppExpectSeq(t, fmt.Sprintf("batch %d", i+1), c.untilReady(), w)
		}
		if n := ppWriterInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE v IN (20, 40)"); n != 2 {
			t.Errorf("%d of the 2 pipelined inserts are in the table", n)
		}

		// Many small batches in one write, read afterwards.
		var msgs []pgproto3.FrontendMessage
		for i := range 20 {
			msgs = append(msgs,
				&pgproto3.Parse{Query: "SELECT $1::int AS i"},
				&pgproto3.Bind{Parameters: ppTextParams(strconv.Itoa(i))},
				&pgproto3.Execute{},
				&pgproto3.Sync{})
		}
		c.send(msgs...)
		for i := range 20 {
			ppExpectSeq(t, fmt.Sprintf("small batch %d", i), c.untilReady(), []string{
				"ParseComplete", "BindComplete", fmt.Sprintf("DataRow(%d)", i), "CommandComplete(SELECT 1)", "ReadyForQuery(I)",
			})
		}
	})

	t.Run("pipelined batches alternating between replica and writer keep their order", func(t *testing.T) {
		// Several clients at once, so that the proxy's goroutines compete
		// for the CPU: each switch between backends is a chance for a
		// response to overtake the previous backend's ones.
		const clients, batches = 8, 200
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := ppAlternate(ctx, appDSN(t, "auto"), batches); err != nil {
					errs <- fmt.Errorf("client %d: %w", w, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("Flush without Sync", func(t *testing.T) {
		c := ppNewRawClient(t, ctx, appDSN(t, "auto"))
		c.send(
			&pgproto3.Parse{Name: "fs", Query: "SELECT 42 AS answer"},
			&pgproto3.Describe{ObjectType: 'S', Name: "fs"},
			&pgproto3.Flush{},
		)
		ppExpectSeq(t, "after Flush", c.recvN(3), []string{"ParseComplete", "ParameterDescription(0)", "RowDescription(answer)"})
		c.send(&pgproto3.Bind{PreparedStatement: "fs"}, &pgproto3.Execute{}, &pgproto3.Flush{})
		ppExpectSeq(t, "after second Flush", c.recvN(3), []string{"BindComplete", "DataRow(42)", "CommandComplete(SELECT 1)"})
		c.send(&pgproto3.Sync{})
		ppExpectSeq(t, "after Sync", c.untilReady(), []string{"ReadyForQuery(I)"})
		// A write after Flush-without-Sync, on the same session.
		c.send(
			&pgproto3.Parse{Name: "fw", Query: "INSERT INTO " + tbl + " (v) VALUES (77)"},
			&pgproto3.Flush{},
		)
		ppExpectSeq(t, "write Parse after Flush", c.recvN(1), []string{"ParseComplete"})
		c.send(&pgproto3.Bind{PreparedStatement: "fw"}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "write", c.untilReady(), []string{"BindComplete", "CommandComplete(INSERT 0 1)", "ReadyForQuery(I)"})
		if n := ppWriterInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 77"); n != 1 {
			t.Errorf("insert after Flush: %d rows", n)
		}
	})

	t.Run("Close then re-Parse the same name", func(t *testing.T) {
		c := ppNewRawClient(t, ctx, appDSN(t, "auto"))
		c.send(&pgproto3.Parse{Name: "st", Query: "SELECT 1 AS x"}, &pgproto3.Sync{})
		ppExpectSeq(t, "parse", c.untilReady(), []string{"ParseComplete", "ReadyForQuery(I)"})
		// Redefining without Close is an error and keeps the original.
		c.send(&pgproto3.Parse{Name: "st", Query: "SELECT 2 AS x"}, &pgproto3.Sync{})
		ppExpectSeq(t, "redefine", c.untilReady(), []string{"ErrorResponse(42P05)", "ReadyForQuery(I)"})
		c.send(&pgproto3.Bind{PreparedStatement: "st"}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "original", c.untilReady(), []string{"BindComplete", "DataRow(1)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"})
		c.send(&pgproto3.Close{ObjectType: 'S', Name: "st"}, &pgproto3.Sync{})
		ppExpectSeq(t, "close", c.untilReady(), []string{"CloseComplete", "ReadyForQuery(I)"})
		// Bound after Close: it no longer exists.
		c.send(&pgproto3.Bind{PreparedStatement: "st"}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "bind closed", c.untilReady(), []string{"ErrorResponse(26000)", "ReadyForQuery(I)"})
		c.send(
			&pgproto3.Parse{Name: "st", Query: "SELECT 2 AS x"},
			&pgproto3.Bind{PreparedStatement: "st"},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		)
		ppExpectSeq(t, "re-parse", c.untilReady(), []string{"ParseComplete", "BindComplete", "DataRow(2)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"})
		// Close and Parse of the same name in one batch.
		c.send(
			&pgproto3.Close{ObjectType: 'S', Name: "st"},
			&pgproto3.Parse{Name: "st", Query: "SELECT 3 AS x"},
			&pgproto3.Bind{PreparedStatement: "st"},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		)
		ppExpectSeq(t, "close+parse", c.untilReady(), []string{"CloseComplete", "ParseComplete", "BindComplete", "DataRow(3)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"})
		// Closing a statement that does not exist is not an error.
		c.send(&pgproto3.Close{ObjectType: 'S', Name: "never"}, &pgproto3.Sync{})
		ppExpectSeq(t, "close unknown", c.untilReady(), []string{"CloseComplete", "ReadyForQuery(I)"})
	})

	t.Run("statements follow the session to another backend", func(t *testing.T) {
		c := ppNewRawClient(t, ctx, appDSN(t, "auto"))
		c.send(&pgproto3.Parse{Name: "mv", Query: "SELECT $1::int * 2 AS d"}, &pgproto3.Sync{})
		ppExpectSeq(t, "parse on a replica", c.untilReady(), []string{"ParseComplete", "ReadyForQuery(I)"})
		c.send(&pgproto3.Parse{Name: "keep", Query: "SELECT 'first' AS k"}, &pgproto3.Sync{})
		ppExpectSeq(t, "parse keep", c.untilReady(), []string{"ParseComplete", "ReadyForQuery(I)"})
		c.send(&pgproto3.Parse{Name: "keep", Query: "SELECT 'second' AS k"}, &pgproto3.Sync{})
		ppExpectSeq(t, "failed redefinition", c.untilReady(), []string{"ErrorResponse(42P05)", "ReadyForQuery(I)"})
		// BEGIN takes the session to the writer, where neither statement
		// was prepared by the client.
		c.send(&pgproto3.Query{String: "BEGIN"})
		ppExpectSeq(t, "begin", c.untilReady(), []string{"CommandComplete(BEGIN)", "ReadyForQuery(T)"})
		c.send(
			&pgproto3.Bind{PreparedStatement: "mv", Parameters: ppTextParams("21")},
			&pgproto3.Execute{},
			&pgproto3.Bind{PreparedStatement: "keep"},
			&pgproto3.Execute{},
			&pgproto3.Parse{Query: "SELECT pg_is_in_recovery()"},
			&pgproto3.Bind{},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		)
		ppExpectSeq(t, "statements on the writer", c.untilReady(), []string{
			"BindComplete", "DataRow(42)", "CommandComplete(SELECT 1)",
			"BindComplete", "DataRow(first)", "CommandComplete(SELECT 1)",
			"ParseComplete", "BindComplete", "DataRow(f)", "CommandComplete(SELECT 1)",
			"ReadyForQuery(T)",
		})
		c.send(&pgproto3.Query{String: "COMMIT"})
		ppExpectSeq(t, "commit", c.untilReady(), []string{"CommandComplete(COMMIT)", "ReadyForQuery(I)"})
	})

	t.Run("error in the middle of a pipeline", func(t *testing.T) {
		c := ppNewRawClient(t, ctx, appDSN(t, "auto"))
		c.send(
			&pgproto3.Parse{Query: "SELECT 1 AS a"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
			// execution error (not at Bind: a constant 1/0 would fail
			// while planning): the rest up to Sync is skipped
			&pgproto3.Parse{Query: "SELECT 1/g AS b FROM generate_series(0, 0) g"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "SELECT 2 AS c"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{},
			// parse error
			&pgproto3.Parse{Name: "bad", Query: "SELEC 1"}, &pgproto3.Bind{PreparedStatement: "bad"}, &pgproto3.Execute{},
			&pgproto3.Sync{},
			// write error in a write batch
			&pgproto3.Parse{Query: "INSERT INTO " + tbl + " (v) VALUES (NULL)"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "INSERT INTO " + tbl + " (v) VALUES (555)"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{},
			&pgproto3.Parse{Query: "SELECT 3 AS d"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		)
		ppExpectSeq(t, "batch 1", c.untilReady(), []string{"ParseComplete", "BindComplete", "DataRow(1)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"})
		ppExpectSeq(t, "batch 2 (division by zero)", c.untilReady(), []string{"ParseComplete", "BindComplete", "ErrorResponse(22012)", "ReadyForQuery(I)"})
		ppExpectSeq(t, "batch 3 (syntax error)", c.untilReady(), []string{"ErrorResponse(42601)", "ReadyForQuery(I)"})
		ppExpectSeq(t, "batch 4 (not null violation)", c.untilReady(), []string{"ParseComplete", "BindComplete", "ErrorResponse(23502)", "ReadyForQuery(I)"})
		ppExpectSeq(t, "batch 5", c.untilReady(), []string{"ParseComplete", "BindComplete", "DataRow(3)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"})
		if n := ppWriterInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 555"); n != 0 {
			t.Errorf("a statement after the error in its batch was executed (%d rows)", n)
		}
		// An error while a transaction is open: the transaction is failed
		// until ROLLBACK, across Syncs.
		c.send(&pgproto3.Query{String: "BEGIN"})
		ppExpectSeq(t, "begin", c.untilReady(), []string{"CommandComplete(BEGIN)", "ReadyForQuery(T)"})
		c.send(&pgproto3.Parse{Query: "SELECT 1/g FROM generate_series(0, 0) g"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "error in tx", c.untilReady(), []string{"ParseComplete", "BindComplete", "ErrorResponse(22012)", "ReadyForQuery(E)"})
		ppExpectSeq(t, "aborted tx", c.untilReady(), []string{"ErrorResponse(25P02)", "ReadyForQuery(E)"})
		c.send(&pgproto3.Query{String: "ROLLBACK"})
		ppExpectSeq(t, "rollback", c.untilReady(), []string{"CommandComplete(ROLLBACK)", "ReadyForQuery(I)"})
	})

	t.Run("unnamed statement across Syncs", func(t *testing.T) {
		c := ppNewRawClient(t, ctx, appDSN(t, "auto"))
		c.send(&pgproto3.Parse{Query: "SELECT $1::text AS t"}, &pgproto3.Sync{})
		ppExpectSeq(t, "parse", c.untilReady(), []string{"ParseComplete", "ReadyForQuery(I)"})
		c.send(&pgproto3.Bind{Parameters: ppTextParams("hello")}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "bind", c.untilReady(), []string{"BindComplete", "DataRow(hello)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"})
		c.send(&pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{})
		ppExpectSeq(t, "describe", c.untilReady(), []string{"ParameterDescription(1)", "RowDescription(t)", "ReadyForQuery(I)"})
		// A write, parsed and bound in separate batches.
		c.send(&pgproto3.Parse{Query: "INSERT INTO " + tbl + " (v) VALUES ($1) RETURNING v"}, &pgproto3.Sync{})
		ppExpectSeq(t, "parse write", c.untilReady(), []string{"ParseComplete", "ReadyForQuery(I)"})
		c.send(&pgproto3.Bind{Parameters: ppTextParams("7007")}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "bind write", c.untilReady(), []string{"BindComplete", "DataRow(7007)", "CommandComplete(INSERT 0 1)", "ReadyForQuery(I)"})
		if n := ppWriterInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 7007"); n != 1 {
			t.Errorf("unnamed insert: %d rows", n)
		}
		// A simple Query destroys the unnamed statement.
		c.send(&pgproto3.Query{String: "SELECT 1"})
		c.untilReady()
		c.send(&pgproto3.Bind{Parameters: ppTextParams("x")}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "bind after simple query", c.untilReady(), []string{"ErrorResponse(26000)", "ReadyForQuery(I)"})
	})
}

// ---------------------------------------------------------------------------
// 9. A backend connection dies under a session
// ---------------------------------------------------------------------------

func TestPGBackendTerminated(t *testing.T) {
	ctx := testCtx(t)
	adm := ppAdminConns(t, ctx)
	tbl := ppUniq("term")
	ppWriterExec(t, ctx, "CREATE TABLE "+tbl+" (v int)")
	ppWaitReplicated(t, ctx)

	bystander := ppConnect(t, ctx, appDSN(t, "auto"))
	bystanderWorks := func(t *testing.T) {
		t.Helper()
		if _, err := bystander.Exec(ctx, "INSERT INTO "+tbl+" VALUES (-1)"); err != nil {
			t.Errorf("another client's write failed: %v", err)
		}
		var v int
		if err := bystander.QueryRow(ctx, "SELECT 3").Scan(&v); err != nil {
			t.Errorf("another client's read failed: %v", err)
		}
	}
	terminate := func(t *testing.T, b ppBackend) {
		t.Helper()
		var ok bool
		if err := adm[b.node].QueryRow(ctx, "SELECT pg_terminate_backend($1)", b.pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend(%d) on node %d: %v %v", b.pid, b.node, ok, err)
		}
		ppEventually(t, ctx, fmt.Sprintf("backend %d on node %d is gone", b.pid, b.node), func(ctx context.Context) (bool, error) {
			var n int
			err := adm[b.node].QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", b.pid).Scan(&n)
			return n == 0, err
		})
	}
	// firstThenOK runs stmt twice: the first may fail with a connection
	// class error, the second must succeed.
	firstThenOK := func(t *testing.T, c *pgx.Conn, stmt string) {
		t.Helper()
		if _, err := c.Exec(ctx, stmt); err != nil {
			code := ppSQLState(err)
			if !strings.HasPrefix(code, "08") && code != "57P01" {
				t.Fatalf("first statement after the backend died: %v (SQLSTATE %q), want success or class 08 / 57P01", err, code)
			}
			t.Logf("first statement after the backend died: %v", err)
		}
		if _, err := c.Exec(ctx, stmt); err != nil {
			t.Fatalf("second statement after the backend died: %v (closed=%v)", err, c.IsClosed())
		}
	}
	// notPinned checks that reads still go to a replica (once it replayed
	// the session's writes).
	notPinned := func(t *testing.T, c *pgx.Conn) {
		t.Helper()
		ppEventually(t, ctx, "a read of the session reaches a replica", func(ctx context.Context) (bool, error) {
			var rec bool
			err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
			return rec, err
		})
	}

	t.Run("writer backend terminated while idle", func(t *testing.T) {
		app := ppUniq("termw")
		c := ppConnect(t, ctx, ppNamedDSN(t, "auto", app))
		if _, err := c.Exec(ctx, "INSERT INTO "+tbl+" VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		b := ppWaitBackend(t, ctx, adm, app, "the session's writer backend", func(b ppBackend) bool { return !b.recovery })
		terminate(t, b)
		firstThenOK(t, c, "INSERT INTO "+tbl+" VALUES (2)")
		notPinned(t, c)
		bystanderWorks(t)
	})

	t.Run("replica backend terminated while idle", func(t *testing.T) {
		app := ppUniq("termr")
		c := ppConnect(t, ctx, ppNamedDSN(t, "auto", app))
		var rec bool
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil || !rec {
			t.Fatalf("first read: %v (standby=%v)", err, rec)
		}
		b := ppWaitBackend(t, ctx, adm, app, "the session's replica backend", func(b ppBackend) bool { return b.recovery })
		terminate(t, b)
		firstThenOK(t, c, "SELECT count(*) FROM "+tbl)
		notPinned(t, c)
		bystanderWorks(t)
	})

	// A transaction lost with its backend leaves the client in a failed
	// transaction (as PostgreSQL does after an error) until it ends it;
	// then the session carries on.
	for _, mode := range []string{"simple", "extended"} {
		t.Run("writer backend terminated inside a transaction/"+mode, func(t *testing.T) {
			app := ppUniq("termtx")
			c := ppConnect(t, ctx, ppNamedDSN(t, "auto", app))
			exec := func(sql string, args ...any) error {
				if mode == "simple" {
					args = append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
				} else {
					args = append([]any{pgx.QueryExecModeExec}, args...)
				}
				_, err := c.Exec(ctx, sql, args...)
				return err
			}
			if err := exec("BEGIN"); err != nil {
				t.Fatal(err)
			}
			if err := exec("INSERT INTO "+tbl+" VALUES ($1)", 1001); err != nil {
				t.Fatal(err)
			}
			b := ppWaitBackend(t, ctx, adm, app, "the session's writer backend", func(b ppBackend) bool { return !b.recovery })
			terminate(t, b)
			if err := exec("INSERT INTO "+tbl+" VALUES ($1)", 1002); ppSQLState(err) != "08006" {
				t.Fatalf("first statement of the lost transaction: %v, want SQLSTATE 08006", err)
			}
			if err := exec("SELECT 1"); ppSQLState(err) != "25P02" {
				t.Fatalf("next statement of the lost transaction: %v, want SQLSTATE 25P02", err)
			}
			if err := exec("ROLLBACK"); err != nil {
				t.Fatalf("ROLLBACK of the lost transaction: %v", err)
			}
			if err := exec("INSERT INTO "+tbl+" VALUES ($1)", 1003); err != nil {
				t.Fatalf("statement after ROLLBACK: %v", err)
			}
			var n int
			if err := c.QueryRow(ctx, "/* sluice:writer */ SELECT count(*) FROM "+tbl+" WHERE v IN (1001, 1002)").Scan(&n); err != nil || n != 0 {
				t.Fatalf("rows of the lost transaction: %d %v, want none", n, err)
			}
			// COMMIT of a lost transaction reports ROLLBACK, as PostgreSQL does.
			if err := exec("BEGIN"); err != nil {
				t.Fatal(err)
			}
			if err := exec("INSERT INTO "+tbl+" VALUES ($1)", 1004); err != nil {
				t.Fatal(err)
			}
			b = ppWaitBackend(t, ctx, adm, app, "the session's writer backend", func(b ppBackend) bool { return !b.recovery })
			terminate(t, b)
			if err := exec("INSERT INTO "+tbl+" VALUES ($1)", 1005); ppSQLState(err) != "08006" {
				t.Fatalf("first statement of the lost transaction: %v, want SQLSTATE 08006", err)
			}
			tag, err := c.PgConn().Exec(ctx, "COMMIT").ReadAll()
			if err != nil || len(tag) != 1 || tag[0].CommandTag.String() != "ROLLBACK" {
				t.Fatalf("COMMIT of the lost transaction: %v %v, want tag ROLLBACK", tag, err)
			}
			if err := exec("SELECT 1"); err != nil {
				t.Fatalf("statement after COMMIT: %v", err)
			}
			bystanderWorks(t)
		})
	}

	// The same at the protocol level, as JDBC and other drivers speak it:
	// unnamed statements, a Flush while the transaction is lost, and
	// ROLLBACK through Parse/Bind/Execute.
	t.Run("writer backend terminated inside a transaction/raw extended", func(t *testing.T) {
		app := ppUniq("termraw")
		c := ppNewRawClient(t, ctx, ppNamedDSN(t, "auto", app))
		c.send(&pgproto3.Query{String: "BEGIN"})
		ppExpectSeq(t, "begin", c.untilReady(), []string{"CommandComplete(BEGIN)", "ReadyForQuery(T)"})
		c.send(&pgproto3.Parse{Query: "INSERT INTO " + tbl + " VALUES (2001)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "insert", c.untilReady(), []string{"ParseComplete", "BindComplete", "CommandComplete(INSERT 0 1)", "ReadyForQuery(T)"})
		terminate(t, ppWaitBackend(t, ctx, adm, app, "the session's writer backend", func(b ppBackend) bool { return !b.recovery }))
		// A Flush gets the error at once; the Sync then ReadyForQuery(E).
		c.send(&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Flush{})
		ppExpectSeq(t, "flush in the lost transaction", c.recvN(1), []string{"ErrorResponse(08006)"})
		c.send(&pgproto3.Sync{})
		ppExpectSeq(t, "its sync", c.untilReady(), []string{"ReadyForQuery(E)"})
		c.send(&pgproto3.Parse{Query: "SELECT 2"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "next statement", c.untilReady(), []string{"ErrorResponse(25P02)", "ReadyForQuery(E)"})
		c.send(&pgproto3.Sync{})
		ppExpectSeq(t, "lone sync", c.untilReady(), []string{"ReadyForQuery(E)"})
		c.send(&pgproto3.Parse{Query: "ROLLBACK"}, &pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "rollback", c.untilReady(), []string{"ParseComplete", "BindComplete", "NoData", "CommandComplete(ROLLBACK)", "ReadyForQuery(I)"})
		c.send(&pgproto3.Parse{Query: "SELECT 3"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "after rollback", c.untilReady(), []string{"ParseComplete", "BindComplete", "DataRow(3)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"})
		if n := ppWriterInt(t, ctx, "SELECT count(*) FROM "+tbl+" WHERE v = 2001"); n != 0 {
			t.Errorf("the lost transaction's row is there (%d)", n)
		}
	})

	t.Run("backend terminated during a statement", func(t *testing.T) {
		app := ppUniq("termq")
		c := ppConnect(t, ctx, ppNamedDSN(t, "auto", app))
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
			done <- err
		}()
		b := ppWaitActive(t, ctx, adm, app, "pg_sleep(30)")
		var ok bool
		if err := adm[b.node].QueryRow(ctx, "SELECT pg_terminate_backend($1)", b.pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend: %v %v", ok, err)
		}
		select {
		case err := <-done:
			code := ppSQLState(err)
			if err == nil || (!strings.HasPrefix(code, "08") && code != "57P01") {
				t.Fatalf("the interrupted statement: %v (SQLSTATE %q), want class 08 or 57P01", err, code)
			}
		case <-time.After(25 * time.Second):
			t.Fatal("the interrupted statement did not return")
		}
		var v int
		if err := c.QueryRow(ctx, "SELECT 11").Scan(&v); err != nil || v != 11 {
			t.Fatalf("session unusable after its backend died during a statement: %v (closed=%v)", err, c.IsClosed())
		}
		notPinned(t, c)
		bystanderWorks(t)
	})
}
