package integration

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestSmokeAutoEndpoint(t *testing.T) {
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, appDSN(t, "auto"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var rec bool
	if err := c.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&rec); err != nil {
		t.Fatal(err)
	}
	if !rec {
		t.Error("a plain read on the auto endpoint did not reach a replica")
	}
}
