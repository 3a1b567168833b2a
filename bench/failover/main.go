// Command failover measures how long writes stop when the primary of a
// replicated cluster dies behind a fleet of three Sluice instances that
// promote a replica themselves (failover.promote: true), and checks that no
// acknowledged write is lost and none goes to the old primary once it is
// back. `make bench-failover` runs it.
//
//	go run ./bench/failover [-runs 5] [-protocols pg,mysql] [-v]
//
// For each protocol (PostgreSQL 15 with synchronous replication, MariaDB
// 10.11 with semi-synchronous replication) and each run it starts a fresh
// cluster (primary + 2 replicas, integration/localcluster) and three Sluice
// instances in this process, gossiping on 127.0.0.1 (fleet_size 3, health
// interval 200ms, timeout 1s, failures 2, successes 2). Once the fleet has
// three members and the writer is writable on all of them, one writer
// client per instance inserts numbered rows (one autocommit INSERT at a
// time) through the instance's auto listener and one reader client per
// instance reads through its reader listener. After the warm-up the
// primary is SIGKILLed (localcluster Node.Kill). Measured per run:
//
//   - kill → first write: from the SIGKILL to the first acknowledged INSERT
//     sent after the primary was dead, through any instance, and through
//     every instance (the slowest one);
//   - failed writes / failed reads: statements that returned an error
//     (clients retry after -retry-delay, reconnecting when the connection
//     is gone; failed connection attempts are counted apart);
//   - lost: acknowledged ids missing on the new writer (read directly from
//     it as the administrator after the run);
//   - misrouted: once the new writer is in place the old primary is started
//     again and the clients write for -after more; rows on the old primary
//     with ids allocated after the kill are misrouted writes (must be 0).
//
// The tables (one row per run, p50 and max of the times, totals) go to
// stdout in Markdown and to bench/results/failover-<date>.md; the proxies'
// logs, the benchmark's timeline and the tails of the server logs of every
// run go to bench/results/failover-<date>-logs/. The exit status is 1 when
// a run could not be carried out or the bar (p50 ≤ 2 s and max ≤ 5 s from
// kill to the first write on every instance, no lost or misrouted write,
// no failed read) is missed.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

func main() {
	os.Exit(run())
}

func run() int {
	runs := flag.Int("runs", 5, "runs per protocol")
	protos := flag.String("protocols", "pg,mysql", "comma-separated protocols: pg, mysql")
	verbose := flag.Bool("v", false, "log every step (and the cluster helpers' messages) on stderr")
	outDir := flag.String("out", "bench/results", "directory for the results file and the logs")
	var o options
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "traffic before the kill")
	flag.DurationVar(&o.after, "after", 2*time.Second, "traffic after the old primary is back")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 90*time.Second, "bound on the fleet becoming ready and the first writes")
	flag.DurationVar(&o.failoverTimeout, "failover-timeout", 60*time.Second, "bound on writes resuming on every instance after the kill")
	flag.DurationVar(&o.stmtTimeout, "stmt-timeout", 15*time.Second, "client-side timeout of one statement or connection attempt (failover.hold is 10s)")
	flag.DurationVar(&o.retryDelay, "retry-delay", 50*time.Millisecond, "pause of a client after a failed statement")
	flag.DurationVar(&o.readPause, "read-pause", 10*time.Millisecond, "pause of a reader between two reads")
	logLevel := flag.String("proxy-log-level", "info", "level of the proxies' logs: debug, info, warn, error")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "failover: unexpected argument %q\n", flag.Arg(0))
		return 2
	}
	o.verbose = *verbose
	if !o.verbose {
		// go-sql-driver logs dropped connections on its own; the clients
		// count and report the errors that reach them.
		_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	}
	if err := o.proxyLogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "failover: -proxy-log-level: %v\n", err)
		return 2
	}
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "failover: -runs must be at least 1")
		return 2
	}
	var selected []protocol
	for _, k := range strings.Split(*protos, ",") {
		k = strings.TrimSpace(k)
		i := slices.IndexFunc(protocols, func(p protocol) bool { return p.key == k })
		if i < 0 {
			fmt.Fprintf(os.Stderr, "failover: unknown protocol %q (want pg, mysql)\n", k)
			return 2
		}
		selected = append(selected, protocols[i])
	}

	// The first SIGINT/SIGTERM stops the current run in order (clients,
	// proxies, cluster); a second one exits at once (localcluster's servers
	// get SIGQUIT when this process dies).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "failover: %v: stopping (again to exit at once)\n", s)
		cancel()
		<-sigs
		os.Exit(130)
	}()

	stamp := time.Now().Format("2006-01-02-150405")
	logDir := filepath.Join(*outDir, "failover-"+stamp+"-logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "failover: %v\n", err)
		return 1
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}

	var md bytes.Buffer
	writeHeader(&md, *runs, o)
	ok := true
	for _, p := range selected {
		var results []result
		for r := 1; r <= *runs && ctx.Err() == nil; r++ {
			res := runOnce(ctx, p, r, o, logDir, progress)
			if res.err != nil {
				progress("%s run %d: ERROR: %v", p.key, r, res.err)
			}
			results = append(results, res)
		}
		if !writeTable(&md, p, results, *runs) {
			ok = false
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintf(&md, "\nLogs of every run (proxies at level %s, the benchmark's timeline, server log tails): `%s/`.\n", o.proxyLogLevel, logDir)
	if ctx.Err() != nil {
		md.WriteString("\n**Interrupted**: the tables hold the runs finished before Ctrl-C.\n")
		ok = false
	}
	os.Stdout.Write(md.Bytes())
	out := filepath.Join(*outDir, "failover-"+stamp+".md")
	if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "failover: %v\n", err)
		return 1
	}
	progress("results written to %s", out)
	if !ok {
		return 1
	}
	return 0
}

func writeHeader(md *bytes.Buffer, runs int, o options) {
	fmt.Fprintf(md, "# Sluice failover benchmark — %s\n\n", time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(md, "Machine: %s, %d CPUs, %s/%s, %s. Numbers depend on the machine and on whatever else runs on it.\n\n",
		cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(md, "Set-up per run: a fresh cluster (primary + 2 replicas) and 3 Sluice instances in one process, gossip on 127.0.0.1 "+
		"(fleet_size 3), `failover: {promote: true}` (hold 10s, the default), health interval 200ms, timeout 1s, failures 2, successes 2. "+
		"One writer client per instance (autocommit INSERTs of numbered rows, back to back, through the auto listener) and one reader "+
		"client per instance (`SELECT count(*)`, %v apart, through the reader listener); clients pause %v after an error and reconnect "+
		"when the connection is gone. After %v of traffic the primary is SIGKILLed; once writes flow through every instance again the "+
		"old primary is restarted and the clients go on for %v. %d runs per protocol.\n\n",
		o.readPause, o.retryDelay, o.warmup, o.after, runs)
	md.WriteString("Columns: **first write** — from the SIGKILL to the first acknowledged INSERT sent after the primary was dead, through any " +
		"instance; **all instances** — the same through every instance (the slowest); **failed writes/reads** — statements that returned an " +
		"error (failed connection attempts in brackets); **lost** — acknowledged ids missing on the new writer; **misrouted** — rows on the " +
		"restarted old primary with ids allocated after the kill.\n\n")
	md.WriteString("The bar: p50 ≤ 2 s and max ≤ 5 s (kill → first write on every instance), 0 lost, 0 misrouted, 0 failed reads.\n")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtCount(n int64) string {
	if n < 0 {
		return "n/a"
	}
	return fmt.Sprint(n)
}

// median is the middle value (mean of the two middle ones for an even
// count); a negative value ("never") sorts last.
func median(ds []time.Duration) time.Duration {
	s := sortedDurations(ds)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	a, b := s[n/2-1], s[n/2]
	if a < 0 || b < 0 {
		return -1
	}
	return (a + b) / 2
}

func maxDur(ds []time.Duration) time.Duration {
	s := sortedDurations(ds)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

func sortedDurations(ds []time.Duration) []time.Duration {
	s := slices.Clone(ds)
	slices.SortFunc(s, func(a, b time.Duration) int {
		switch {
		case a == b:
			return 0
		case a < 0:
			return 1
		case b < 0:
			return -1
		case a < b:
			return -1
		}
		return 1
	})
	return s
}

// writeTable writes one protocol's table and reports whether every run was
// carried out and the bar was met.
func writeTable(md *bytes.Buffer, p protocol, results []result, runs int) bool {
	fmt.Fprintf(md, "\n## %s\n\n", p.title)
	md.WriteString("| run | promoted | first write | all instances | per instance | acked writes | failed writes | failed reads | lost | misrouted |\n")
	md.WriteString("|---:|---|---:|---:|---|---:|---:|---:|---:|---:|\n")
	var anyT, allT []time.Duration
	var tot result
	ok := len(results) == runs
	lostChecked, misChecked := true, true
	for _, r := range results {
		if r.err != nil {
			ok = false
			fmt.Fprintf(md, "| %d | error: %s | | | | | | | | |\n", r.run, strings.ReplaceAll(r.err.Error(), "|", `\|`))
			continue
		}
		var per []string
		for _, d := range r.perInst {
			per = append(per, strings.TrimSuffix(fmtDur(d), " s"))
		}
		promoted := r.promoted
		if promoted == "" {
			promoted = "(none)"
		}
		fmt.Fprintf(md, "| %d | %s → %s | %s | %s | %s | %d | %d (%d) | %d | %s | %s |\n",
			r.run, r.oldName, promoted, fmtDur(r.firstAny), fmtDur(r.firstAll), strings.Join(per, " / "),
			r.acked, r.failedW, r.connFails, r.failedR, fmtCount(r.lost), fmtCount(r.misrouted))
		anyT = append(anyT, r.firstAny)
		allT = append(allT, r.firstAll)
		tot.acked += r.acked
		tot.failedW += r.failedW
		tot.failedR += r.failedR
		tot.connFails += r.connFails
		if r.lost < 0 {
			lostChecked = false
		} else {
			tot.lost += r.lost
		}
		if r.misrouted < 0 {
			misChecked = false
		} else {
			tot.misrouted += r.misrouted
		}
	}
	if len(anyT) > 0 {
		fmt.Fprintf(md, "| **p50** | | %s | %s | | | | | | |\n", fmtDur(median(anyT)), fmtDur(median(allT)))
		fmt.Fprintf(md, "| **max** | | %s | %s | | | | | | |\n", fmtDur(maxDur(anyT)), fmtDur(maxDur(allT)))
		lost, mis := fmtCount(tot.lost), fmtCount(tot.misrouted)
		if !lostChecked {
			lost += " (not checked in every run)"
		}
		if !misChecked {
			mis += " (not checked in every run)"
		}
		fmt.Fprintf(md, "| **total** | | | | | %d | %d (%d) | %d | %s | %s |\n", tot.acked, tot.failedW, tot.connFails, tot.failedR, lost, mis)
	}

	// The bar.
	if len(allT) > 0 {
		p50, mx := median(allT), maxDur(allT)
		check := func(name string, pass bool) string {
			if !pass {
				ok = false
				return name + ": **FAIL**"
			}
			return name + ": pass"
		}
		fmt.Fprintf(md, "\nBar: %s; %s; %s; %s; %s.\n",
			check(fmt.Sprintf("p50 %s ≤ 2 s", fmtDur(p50)), p50 >= 0 && p50 <= 2*time.Second),
			check(fmt.Sprintf("max %s ≤ 5 s", fmtDur(mx)), mx >= 0 && mx <= 5*time.Second),
			check(fmt.Sprintf("lost %s", fmtCount(tot.lost)), lostChecked && tot.lost == 0),
			check(fmt.Sprintf("misrouted %s", fmtCount(tot.misrouted)), misChecked && tot.misrouted == 0),
			check(fmt.Sprintf("failed reads %d", tot.failedR), tot.failedR == 0))
	}

	// Notes: errors seen by the clients, anomalies.
	var notes []string
	for _, r := range results {
		for _, n := range r.notes {
			notes = append(notes, fmt.Sprintf("- run %d: %s", r.run, strings.ReplaceAll(n, "\n", " ")))
		}
	}
	if len(notes) > 0 {
		md.WriteString("\nNotes (errors the clients saw, with counts; anomalies):\n\n")
		md.WriteString(strings.Join(notes, "\n"))
		md.WriteString("\n")
	}
	return ok
}
