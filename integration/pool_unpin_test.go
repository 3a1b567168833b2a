package integration

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/frontend/serve"
	"github.com/sluicedb/sluice/proxy"
)

// TestPGTxPoolDiscardAllUnpins: under transaction pooling, a client pinned
// by a temporary table holds the only backend connection (another client
// times out with 53300) until it runs DISCARD ALL, which drops what pinned
// it; then the connection serves the other client again.
func TestPGTxPoolDiscardAllUnpins(t *testing.T) {
	ctx := testCtx(t)
	p := tpStartProxy(t, ctx, 1, 500*time.Millisecond)
	app := ppUniq("unpin")
	a, err := pgx.Connect(ctx, tpDSN(t, p, "writer", app))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := pgx.Connect(ctx, tpDSN(t, p, "writer", app))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if _, err := a.Exec(ctx, "CREATE TEMP TABLE pinned_here (v int)"); err != nil {
		t.Fatal(err)
	}
	if pins := tpStatusPins(p, "pg"); len(pins) != 1 || pins[0].Reason != "temp_table" || pins[0].Listener != "writer" {
		t.Errorf("/status pinned sessions %+v, want one temp_table pin on the writer listener", pins)
	}
	if _, err := b.Exec(ctx, "SELECT 1"); ppSQLState(err) != "53300" {
		t.Fatalf("other client while the only connection is pinned: %v, want SQLSTATE 53300", err)
	}
	if _, err := a.Exec(ctx, "DISCARD ALL"); err != nil {
		t.Fatal(err)
	}
	if pins := tpStatusPins(p, "pg"); len(pins) != 0 {
		t.Errorf("/status pinned sessions after DISCARD ALL: %+v, want none", pins)
	}
	var v int
	if err := b.QueryRow(ctx, "SELECT 41 + 1").Scan(&v); err != nil || v != 42 {
		t.Fatalf("other client after DISCARD ALL: %v (%d)", err, v)
	}
	if err := a.QueryRow(ctx, "SELECT 2 * 21").Scan(&v); err != nil || v != 42 {
		t.Fatalf("the client that ran DISCARD ALL: %v (%d)", err, v)
	}
}

// tpStatusPins returns the pinned sessions /status lists for cluster.
func tpStatusPins(p *proxy.Proxy, cluster string) []serve.PinnedSession {
	for _, c := range p.Status().Clusters {
		if c.Name == cluster {
			return c.Pinned
		}
	}
	return nil
}
