package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/proxy"
)

// protocol is one of the two database flavours under test.
type protocol struct {
	key     string // flag value: pg, mysql
	title   string
	cfgName string // clusters.X.protocol
	start   func(ctx context.Context, logf func(string, ...any)) (dbCluster, error)
	dial    dialFunc
}

var protocols = []protocol{
	{key: "pg", title: "PostgreSQL 15, synchronous replication (ANY 1 of 2 replicas)", cfgName: config.ProtocolPostgres, start: startPG, dial: dialPG},
	{key: "mysql", title: "MariaDB 10.11, semi-synchronous replication (AFTER_SYNC)", cfgName: config.ProtocolMySQL, start: startMy, dial: dialMy},
}

// options are the knobs of one run.
type options struct {
	warmup          time.Duration
	after           time.Duration // writes after the old primary is back
	readyTimeout    time.Duration
	failoverTimeout time.Duration
	stmtTimeout     time.Duration
	retryDelay      time.Duration
	readPause       time.Duration
	proxyLogLevel   slog.Level
	verbose         bool
}

const instances = 3

// result is what one run measured.
type result struct {
	run        int
	err        error  // the run could not be carried out (set-up, Ctrl-C)
	promoted   string // the backend the fleet made writer, "" if none
	oldName    string
	failedOver bool
	firstAny   time.Duration // kill → first acknowledged write started after the kill, on any instance
	firstAll   time.Duration // … on every instance (the slowest instance)
	perInst    [instances]time.Duration
	killTook   time.Duration
	acked      int64
	failedW    int64 // failed INSERT statements
	failedR    int64 // failed reads
	connFails  int64 // failed connection attempts (writers and readers)
	lost       int64 // acknowledged ids missing on the new writer (-1: not checked)
	misrouted  int64 // ids allocated after the kill found on the old primary (-1: not checked)
	notes      []string
}

func (r *result) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// ack is one acknowledged insert.
type ack struct {
	id     int64
	start  time.Time
	finish time.Time
}

// traffic is the clients of one run.
type traffic struct {
	nextID atomic.Int64
	cutoff atomic.Int64 // unix nanos when the primary was dead; 0 before the kill
	killAt time.Time    // set before cutoff

	writers [instances]*writer
	readers [instances]*reader
	errMu   sync.Mutex
	errs    map[string]int // error samples: "writer 1: message" → count
	wg      sync.WaitGroup
}

type writer struct {
	inst      int
	addr      string
	acks      []ack // owned by the writer goroutine until it ends
	acked     atomic.Int64
	fails     atomic.Int64
	connFails atomic.Int64
	first     atomic.Int64 // nanos from the kill to the first post-kill ack; 0 = none yet
}

type reader struct {
	inst      int
	addr      string
	ok        atomic.Int64
	fails     atomic.Int64
	connFails atomic.Int64
}

func (t *traffic) noteErr(who string, err error) {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	k := who + ": " + msg
	t.errMu.Lock()
	if t.errs == nil {
		t.errs = map[string]int{}
	}
	t.errs[k]++
	t.errMu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (t *traffic) runWriter(ctx context.Context, w *writer, dial dialFunc, o options) {
	defer t.wg.Done()
	who := fmt.Sprintf("writer %d", w.inst+1)
	var s session
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	for ctx.Err() == nil {
		if s == nil {
			dctx, cancel := context.WithTimeout(ctx, o.stmtTimeout)
			ns, err := dial(dctx, w.addr)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w.connFails.Add(1)
				t.noteErr(who+" connect", err)
				sleepCtx(ctx, o.retryDelay)
				continue
			}
			s = ns
		}
		id := t.nextID.Add(1)
		start := time.Now()
		sctx, cancel := context.WithTimeout(ctx, o.stmtTimeout)
		err := s.insert(sctx, id, w.inst+1)
		cancel()
		finish := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return // stopped by the run, not a failure
			}
			w.fails.Add(1)
			t.noteErr(who, err)
			if s.broken() {
				s.close()
				s = nil
			}
			sleepCtx(ctx, o.retryDelay)
			continue
		}
		w.acks = append(w.acks, ack{id, start, finish})
		w.acked.Add(1)
		if c := t.cutoff.Load(); c != 0 && start.UnixNano() > c && w.first.Load() == 0 {
			w.first.Store(int64(finish.Sub(t.killAt)))
		}
	}
}

func (t *traffic) runReader(ctx context.Context, r *reader, dial dialFunc, o options) {
	defer t.wg.Done()
	who := fmt.Sprintf("reader %d", r.inst+1)
	var s session
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	for ctx.Err() == nil {
		if s == nil {
			dctx, cancel := context.WithTimeout(ctx, o.stmtTimeout)
			ns, err := dial(dctx, r.addr)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.connFails.Add(1)
				t.noteErr(who+" connect", err)
				sleepCtx(ctx, o.retryDelay)
				continue
			}
			s = ns
		}
		sctx, cancel := context.WithTimeout(ctx, o.stmtTimeout)
		err := s.read(sctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.fails.Add(1)
			t.noteErr(who, err)
			if s.broken() {
				s.close()
				s = nil
			}
			sleepCtx(ctx, o.retryDelay)
			continue
		}
		r.ok.Add(1)
		sleepCtx(ctx, o.readPause)
	}
}

// proxyYAML is the configuration of instance k (1-based) of the fleet.
func proxyYAML(p protocol, nodes []node, k int, join string) string {
	var bs []string
	for _, n := range nodes {
		bs = append(bs, fmt.Sprintf("{address: %q, name: %q}", n.addr, n.name))
	}
	joinLine := ""
	if join != "" {
		joinLine = fmt.Sprintf(", join: [%q]", join)
	}
	return fmt.Sprintf(`
listeners:
  - {name: auto, address: "127.0.0.1:0", cluster: db, route: auto}
  - {name: reader, address: "127.0.0.1:0", cluster: db, route: reader}
clusters:
  db:
    protocol: %s
    backends: [%s]
    admin_user: %s
users:
  - {name: %s, password: %s}
health: {interval: 200ms, timeout: 1s, failures: 2, successes: 2}
gossip: {bind: "127.0.0.1:0", name: "sluice-%d", fleet_size: %d%s}
failover: {promote: true}
log: {level: info}
`, p.cfgName, strings.Join(bs, ", "), benchUser, benchUser, benchPassword, k, instances, joinLine)
}

// runOnce carries out one run: fresh cluster, three proxies, traffic, kill,
// failover, restart of the old primary, checks, teardown.
func runOnce(ctx context.Context, p protocol, run int, o options, logDir string, progress func(string, ...any)) (res result) {
	res = result{run: run, lost: -1, misrouted: -1}
	prefix := fmt.Sprintf("%s-run%d", p.key, run)
	benchLog, err := os.Create(filepath.Join(logDir, prefix+"-bench.log"))
	if err != nil {
		res.err = err
		return res
	}
	defer benchLog.Close()
	t0 := time.Now()
	logf := func(format string, args ...any) {
		line := fmt.Sprintf("%8.3fs "+format, append([]any{time.Since(t0).Seconds()}, args...)...)
		fmt.Fprintln(benchLog, line)
		if o.verbose {
			fmt.Fprintf(os.Stderr, "%s: %s\n", prefix, line)
		}
	}
	step := func(format string, args ...any) {
		logf(format, args...)
		progress("%s run %d: "+format, append([]any{p.key, run}, args...)...)
	}

	// ---- cluster
	step("starting %s cluster (primary + 2 replicas)", p.key)
	sctx, scancel := context.WithTimeout(ctx, 3*time.Minute)
	c, err := p.start(sctx, func(format string, args ...any) { logf("cluster: "+format, args...) })
	scancel()
	if err != nil {
		res.err = fmt.Errorf("start cluster: %w", err)
		return res
	}
	nodes := c.nodes()
	res.oldName = c.primary()
	defer func() {
		for _, n := range nodes {
			if err := os.WriteFile(filepath.Join(logDir, prefix+"-"+n.name+".log"), []byte(c.logTail(n.name, 300)), 0o644); err != nil {
				logf("save log of %s: %v", n.name, err)
			}
		}
		if err := c.stop(); err != nil {
			logf("stop cluster: %v", err)
			res.notef("stop cluster: %v", err)
		}
		logf("cluster stopped")
	}()
	logf("cluster up in %v: %v", time.Since(t0).Round(time.Millisecond), nodes)
	if err := c.createTable(ctx); err != nil {
		res.err = fmt.Errorf("create table: %w", err)
		return res
	}

	// ---- proxies
	var proxies []*proxy.Proxy
	defer func() {
		for i, px := range proxies {
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := px.Shutdown(dctx); err != nil {
				logf("shutdown sluice-%d: %v", i+1, err)
			}
			cancel()
		}
		logf("proxies stopped")
	}()
	join := ""
	for k := 1; k <= instances; k++ {
		cfg, err := config.Parse([]byte(proxyYAML(p, nodes, k, join)), func(string) string { return "" })
		if err != nil {
			res.err = fmt.Errorf("sluice-%d config: %w", k, err)
			return res
		}
		lf, err := os.Create(filepath.Join(logDir, fmt.Sprintf("%s-sluice-%d.log", prefix, k)))
		if err != nil {
			res.err = err
			return res
		}
		defer lf.Close()
		log := slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: o.proxyLogLevel}))
		px, err := proxy.New(cfg, log)
		if err != nil {
			res.err = fmt.Errorf("sluice-%d: %w", k, err)
			return res
		}
		if err := px.Start(ctx); err != nil {
			res.err = fmt.Errorf("sluice-%d start: %w", k, err)
			return res
		}
		proxies = append(proxies, px)
		if join == "" {
			join = px.FleetAddr()
		}
		logf("sluice-%d: auto %v, reader %v, gossip %s", k, px.Addr("auto"), px.Addr("reader"), px.FleetAddr())
	}

	dumpStatus := func(what string) {
		for i, px := range proxies {
			b, _ := json.Marshal(px.Status())
			logf("status of sluice-%d %s: %s", i+1, what, b)
		}
	}

	step("waiting for the fleet (3 members, writer %s writable on every instance)", res.oldName)
	ready := func() bool {
		for _, px := range proxies {
			st := px.Status()
			if st.Fleet == nil || len(st.Fleet.Members) != instances || len(st.Clusters) != 1 {
				return false
			}
			if cs := st.Clusters[0]; !cs.Writable || cs.Writer != res.oldName {
				return false
			}
		}
		return true
	}
	if err := poll(ctx, o.readyTimeout, 100*time.Millisecond, ready); err != nil {
		dumpStatus("when the fleet was not ready")
		res.err = fmt.Errorf("fleet not ready: %w", err)
		return res
	}
	logf("fleet ready")

	// ---- traffic
	tctx, tcancel := context.WithCancel(ctx)
	t := &traffic{}
	stopTraffic := func() {
		tcancel()
		t.wg.Wait()
	}
	defer stopTraffic()
	for i, px := range proxies {
		t.writers[i] = &writer{inst: i, addr: px.Addr("auto").String()}
		t.readers[i] = &reader{inst: i, addr: px.Addr("reader").String()}
		t.wg.Add(2)
		go t.runWriter(tctx, t.writers[i], p.dial, o)
		go t.runReader(tctx, t.readers[i], p.dial, o)
	}
	allWrote := func() bool {
		for _, w := range t.writers {
			if w.acked.Load() == 0 {
				return false
			}
		}
		return true
	}
	if err := poll(ctx, o.readyTimeout, 20*time.Millisecond, allWrote); err != nil {
		res.err = fmt.Errorf("no write through every instance: %w", err)
		return res
	}
	logf("writes flow through every instance; warm-up %v", o.warmup)
	sleepCtx(ctx, o.warmup)
	if ctx.Err() != nil {
		res.err = ctx.Err()
		return res
	}
	var preAcks int64
	for _, w := range t.writers {
		preAcks += w.acked.Load()
	}

	// ---- kill
	step("killing the primary %s (after %d acknowledged writes)", res.oldName, preAcks)
	t.killAt = time.Now()
	if err := c.killPrimary(); err != nil {
		res.err = fmt.Errorf("kill primary: %w", err)
		return res
	}
	res.killTook = time.Since(t.killAt)
	cutoffID := t.nextID.Load() // every id above was allocated once the primary was dead
	t.cutoff.Store(time.Now().UnixNano())
	logf("primary dead %v after SIGKILL; ids > %d allocated afterwards", res.killTook.Round(time.Microsecond), cutoffID)

	failedOver := func() bool {
		for _, w := range t.writers {
			if w.first.Load() == 0 {
				return false
			}
		}
		return true
	}
	ferr := poll(ctx, o.failoverTimeout, 10*time.Millisecond, failedOver)
	for i, w := range t.writers {
		if f := w.first.Load(); f != 0 {
			res.perInst[i] = time.Duration(f)
			if res.firstAny == 0 || res.perInst[i] < res.firstAny {
				res.firstAny = res.perInst[i]
			}
			res.firstAll = max(res.firstAll, res.perInst[i])
		} else {
			res.perInst[i] = -1
		}
	}
	if ferr != nil {
		if ctx.Err() != nil {
			res.err = ctx.Err()
			return res
		}
		dumpStatus("when the failover timed out")
		res.notef("no write through every instance within %v of the kill", o.failoverTimeout)
		step("FAILOVER INCOMPLETE after %v: first write per instance %v", o.failoverTimeout, res.perInst)
		if res.firstAny == 0 {
			res.firstAny = -1
		}
		res.firstAll = -1
	} else {
		step("writes resumed: first %v, all instances %v (per instance %v)", res.firstAny.Round(time.Millisecond), res.firstAll.Round(time.Millisecond), res.perInst)
	}

	// The writer each instance now routes to.
	writers := map[string]int{}
	for _, px := range proxies {
		cs := px.Status().Clusters[0]
		w := cs.Writer
		if !cs.Writable {
			w += " (not writable)"
		}
		writers[w]++
	}
	if len(writers) == 1 {
		for w := range writers {
			res.promoted = w
		}
	} else {
		res.notef("instances disagree on the writer: %v", writers)
	}
	res.failedOver = ferr == nil && res.promoted != "" && res.promoted != res.oldName && !strings.Contains(res.promoted, " ")
	dumpStatus("after the failover")

	// ---- old primary back
	if res.failedOver {
		step("restarting the old primary %s; %v more writes", res.oldName, o.after)
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
		err := c.startPrimary(rctx)
		rcancel()
		if err != nil {
			res.notef("restart of the old primary failed: %v", err)
			logf("restart old primary: %v", err)
		} else {
			logf("old primary %s running again", res.oldName)
			// Let every instance probe it again before the clock for the
			// extra writes starts: it must be seen (up or fenced), not just
			// be down, for the misrouting check to mean something.
			seen := func() bool {
				for _, px := range proxies {
					for _, b := range px.Status().Clusters[0].Backends {
						if b.Name == res.oldName && b.State == "down" {
							return false
						}
					}
				}
				return true
			}
			if err := poll(ctx, 30*time.Second, 20*time.Millisecond, seen); err != nil {
				res.notef("the instances still see the restarted old primary down after 30s")
			} else {
				logf("every instance sees the old primary again")
			}
		}
		sleepCtx(ctx, o.after)
		dumpStatus("with the old primary back")
	} else {
		res.notef("old primary not restarted: no failover to check misrouting against")
	}
	stopTraffic()
	if ctx.Err() != nil {
		res.err = ctx.Err()
		return res
	}

	// ---- counts
	for i := range instances {
		w, r := t.writers[i], t.readers[i]
		res.acked += w.acked.Load()
		res.failedW += w.fails.Load()
		res.failedR += r.fails.Load()
		res.connFails += w.connFails.Load() + r.connFails.Load()
		logf("instance %d: %d writes acknowledged, %d failed, %d reads ok, %d failed, %d+%d failed connects",
			i+1, w.acked.Load(), w.fails.Load(), r.ok.Load(), r.fails.Load(), w.connFails.Load(), r.connFails.Load())
	}
	t.errMu.Lock()
	for _, k := range slices.Sorted(maps.Keys(t.errs)) {
		n := t.errs[k]
		logf("error ×%d: %s", n, k)
		res.notef("%d× %s", n, k)
	}
	t.errMu.Unlock()

	// ---- checks, directly on the backends
	qctx, qcancel := context.WithTimeout(ctx, time.Minute)
	defer qcancel()
	if res.failedOver {
		have, err := c.ids(qctx, res.promoted)
		if err != nil {
			res.notef("read ids on the new writer %s: %v", res.promoted, err)
		} else {
			var missing []int64
			for _, w := range t.writers {
				for _, a := range w.acks {
					if _, ok := have[a.id]; !ok {
						missing = append(missing, a.id)
					}
				}
			}
			res.lost = int64(len(missing))
			if len(missing) > 0 {
				res.notef("lost ids (acknowledged, missing on %s): %v", res.promoted, head(missing, 20))
			}
			logf("new writer %s holds %d rows; %d acknowledged ids missing", res.promoted, len(have), len(missing))
		}
		bad, err := c.idsAbove(qctx, res.oldName, cutoffID)
		if err != nil {
			res.notef("read ids on the old primary %s: %v", res.oldName, err)
		} else {
			res.misrouted = int64(len(bad))
			if len(bad) > 0 {
				res.notef("ids written after the kill found on the old primary %s: %v", res.oldName, head(bad, 20))
			}
			logf("old primary %s: %d rows with ids > %d", res.oldName, len(bad), cutoffID)
		}
	}
	return res
}

func head(ids []int64, n int) []int64 {
	if len(ids) > n {
		return ids[:n]
	}
	return ids
}

// poll calls cond every interval until it holds, ctx ends or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return errors.New("timed out after " + timeout.String())
		}
		sleepCtx(ctx, interval)
	}
}
