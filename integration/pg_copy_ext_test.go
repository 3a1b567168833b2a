package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPGExtendedCopyIn runs COPY FROM STDIN through the extended protocol
// (Parse/Bind/Execute/Sync, then CopyData/CopyDone/Sync: the server ignores
// the Sync sent during copy-in), on the auto endpoint and under transaction
// pooling with a single backend connection, which must stay with the client
// for the whole COPY.
func TestPGExtendedCopyIn(t *testing.T) {
	ctx := testCtx(t)
	tbl := ppUniq("extcopy")
	ppWriterExec(t, ctx, "CREATE TABLE "+tbl+" (v int)")
	ppWaitReplicated(t, ctx)
	copyIn := func(t *testing.T, dsn string, first int) {
		c := ppNewRawClient(t, ctx, dsn)
		c.send(&pgproto3.Parse{Query: "COPY " + tbl + " (v) FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		ppExpectSeq(t, "COPY started", c.recvN(3), []string{"ParseComplete", "BindComplete", "*pgproto3.CopyInResponse"})
		for i := 0; i < 3; i++ {
			c.send(&pgproto3.CopyData{Data: []byte(strconv.Itoa(first+i) + "\n")})
		}
		c.send(&pgproto3.CopyDone{}, &pgproto3.Sync{})
		ppExpectSeq(t, "COPY done", c.untilReady(), []string{"CommandComplete(COPY 3)", "ReadyForQuery(I)"})
		c.send(&pgproto3.Query{String: "SELECT count(*) FROM " + tbl + " WHERE v >= " + strconv.Itoa(first) + " AND v < " + strconv.Itoa(first+3)})
		ppExpectSeq(t, "rows of this COPY", c.untilReady(), []string{"RowDescription(count)", "DataRow(3)", "CommandComplete(SELECT 1)", "ReadyForQuery(I)"})
	}
	t.Run("auto endpoint", func(t *testing.T) { copyIn(t, appDSN(t, "auto"), 100) })
	t.Run("transaction pooling", func(t *testing.T) {
		p := tpStartProxy(t, ctx, 1, time.Minute)
		copyIn(t, tpDSN(t, p, "auto", ppUniq("extcopyapp")), 200)
		copyIn(t, tpDSN(t, p, "writer", ppUniq("extcopyapp")), 300)
	})
	if n := ppWriterInt(t, ctx, "SELECT count(*) FROM "+tbl); n != 9 {
		t.Errorf("%d rows in %s, want 9", n, tbl)
	}
}
