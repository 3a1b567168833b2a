package integration

import (
	"context"
	"testing"
	"time"

	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/internal/mysqlwire"
	"github.com/sluicedb/sluice/proxy"
)

// A client queued for a connection of a full pool must not hold up a
// shutdown until its checkout_timeout: closing its session ends the wait.
// Each test fills a pool of one connection with a transaction, queues a
// second client behind it with a checkout_timeout (and a writer hold: a
// failed checkout is retried while it lasts) of ten minutes, and shuts the
// proxy down with a short grace period. Before the fix Shutdown returned
// only when the queued checkout timed out.

// shutdownCheckoutTimeout is the checkout_timeout and failover.hold of these
// tests: far longer than their deadline for Shutdown, so that only the fix
// lets them pass.
const shutdownCheckoutTimeout = 10 * time.Minute

// longHold sets failover.hold to shutdownCheckoutTimeout.
func longHold(c *config.Config) { c.Failover.Hold = shutdownCheckoutTimeout }

// shutdownWhileQueued runs stmt (client B's statement, which queues for the
// full pool of cluster) in the background, shuts p down once B is queued,
// and checks that B gets an error rather than a result or nothing.
func shutdownWhileQueued(t *testing.T, ctx context.Context, p *proxy.Proxy, cluster string, stmt func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- stmt() }()
	waitPoolWaiting(t, ctx, p, cluster, 1)
	shutdownPromptly(t, p)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("B's statement succeeded although the proxy shut down while it waited")
		}
		t.Logf("B: %v", err)
	case <-ctx.Done():
		t.Fatal("B's statement has no answer after the shutdown")
	}
}

// waitPoolWaiting waits until cluster's pools on p have n clients queued.
func waitPoolWaiting(t *testing.T, ctx context.Context, p *proxy.Proxy, cluster string, n int) {
	t.Helper()
	for {
		got := 0
		for _, c := range p.Status().Clusters {
			if c.Name == cluster {
				for _, ps := range c.Pools {
					got += ps.Waiting
				}
			}
		}
		if got == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pools of %s: %d clients waiting, want %d", cluster, got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// shutdownPromptly shuts p down with a grace period of 200ms and fails the
// test if Shutdown has not returned well before shutdownCheckoutTimeout.
func shutdownPromptly(t *testing.T, p *proxy.Proxy) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		p.Shutdown(sctx)
	}()
	start := time.Now()
	defer func() { t.Logf("Shutdown took %v", time.Since(start)) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("Shutdown has not returned after 2 minutes: the client waiting for a pooled connection holds it up (checkout_timeout %v)", shutdownCheckoutTimeout)
	}
}

func TestPGTxPoolShutdownWakesWaitingClient(t *testing.T) {
	ctx := testCtx(t)
	p := tpStartProxy(t, ctx, 1, shutdownCheckoutTimeout, longHold)
	d := tpDSN(t, p, "writer", ppUniq("txpool_shutdown"))
	a := ppConnect(t, ctx, d)
	b := ppConnect(t, ctx, d)
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tpPID(t, ctx, tx.Conn(), "A in its transaction") // A now holds the only connection
	shutdownWhileQueued(t, ctx, p, "pg", func() error {
		_, err := b.Exec(ctx, "SELECT 1")
		return err
	})
}

func TestMySQLPoolShutdownWakesWaitingClient(t *testing.T) {
	ctx := testCtx(t)
	p, dsn := myPoolProxyCfg(t, func(pl *config.Pool) {
		pl.Mode = config.PoolTransaction
		pl.MaxServerConns = 1
		pl.CheckoutTimeout = shutdownCheckoutTimeout
	}, longHold)
	b := myFillPoolOfOne(t, ctx, dsn(nil))
	shutdownWhileQueued(t, ctx, p, "my", func() error {
		_, err := b.ExecContext(ctx, "UPDATE pool_acct SET n = n WHERE client = -2")
		if err != nil && myErrCode(err) != mysqlwire.ERServerShutdown {
			t.Errorf("B: %v, want error 1053 (server shutdown)", err)
		}
		return err
	})
}
