// Command idleconns measures what idle client connections cost a
// PostgreSQL or MySQL proxy, and how long opening one takes. It is run by
// scripts/bench-pool.sh.
//
// -protocol mysql takes a go-sql-driver/mysql DSN and opens raw driver
// connections (handshake and authentication complete, then idle):
//
//	idleconns -protocol mysql -dsn 'app:app@tcp(127.0.0.1:3307)/app' -n 5000 -pid 1234
//
// Idle mode (the default) opens -warmup connections, reads the VmRSS of the
// process -pid from /proc/PID/status, opens -n more connections (-concurrency
// at a time; each completes the start-up and authentication and waits for
// ReadyForQuery), keeps them all idle, reads VmRSS again once they are all
// open, prints the RSS growth per connection and closes them all:
//
//	idleconns -dsn postgres://app:app@127.0.0.1:6432/app?sslmode=disable -n 10000 -pid 1234
//
// Sequential mode opens and closes -n connections one after the other
// (connect, authenticate, wait for ReadyForQuery, Terminate; no query) and
// prints the total and per-connection time:
//
//	idleconns -sequential -dsn ... -n 1000
//
// Besides a human-readable summary on stderr, the results go to stdout as
// KEY=VALUE lines (idle: OPENED, FAILED, RSS_BEFORE_KIB, RSS_AFTER_KIB,
// RSS_PER_CONN_KIB, OPEN_SECONDS; sequential: CONNECTS, FAILED, TOTAL_MS,
// PER_CONN_MS, P50_MS, P99_MS, MAX_MS). The exit status is 1 if any
// connection failed (the figures are still printed), 2 on a usage error.
package main

import (
	"bufio"
	"context"
	"database/sql/driver"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

func main() {
	os.Exit(run())
}

func run() int {
	dsn := flag.String("dsn", "", "connection string of the server or proxy: PostgreSQL (URL or key=value), or with -protocol mysql a go-sql-driver DSN (user:pass@tcp(host:port)/db)")
	protocol := flag.String("protocol", "postgres", "postgres or mysql")
	n := flag.Int("n", 10000, "connections to open (idle mode: in addition to -warmup)")
	pid := flag.Int("pid", 0, "idle mode: PID of the process whose VmRSS to measure (required)")
	concurrency := flag.Int("concurrency", 64, "idle mode: connections being opened at the same time")
	warmup := flag.Int("warmup", 16, "idle mode: connections opened (and kept) before the first RSS reading")
	settle := flag.Duration("settle", 2*time.Second, "idle mode: pause before each RSS reading")
	sequential := flag.Bool("sequential", false, "open and close -n connections one after the other and time them")
	connectTimeout := flag.Duration("connect-timeout", 30*time.Second, "bound on one connection's start-up")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: unexpected argument %q\n", flag.Arg(0))
		return 2
	}
	if *dsn == "" || *n <= 0 {
		fmt.Fprintln(os.Stderr, "idleconns: -dsn and a positive -n are required")
		return 2
	}
	var cfg dialer
	switch *protocol {
	case "postgres", "postgresql", "pg":
		pc, err := pgconn.ParseConfig(*dsn)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idleconns: -dsn: %v\n", err)
			return 2
		}
		// One address, no retry elsewhere: a failure must show as a failure.
		pc.Fallbacks = nil
		pc.ConnectTimeout = *connectTimeout
		cfg = pgDialer{pc}
	case "mysql":
		mc, err := mysql.ParseDSN(*dsn)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idleconns: -dsn: %v\n", err)
			return 2
		}
		mc.Timeout = *connectTimeout
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idleconns: -dsn: %v\n", err)
			return 2
		}
		cfg = myDialer{conn, *connectTimeout}
	default:
		fmt.Fprintf(os.Stderr, "idleconns: -protocol %q: want postgres or mysql\n", *protocol)
		return 2
	}

	if *sequential {
		return runSequential(cfg, *n)
	}
	if *pid <= 0 || *concurrency <= 0 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "idleconns: idle mode needs -pid, a positive -concurrency and -warmup >= 0")
		return 2
	}
	return runIdle(cfg, *n, *pid, *concurrency, *warmup, *settle)
}

// dialer opens one connection, complete with start-up and authentication
// (PostgreSQL: up to ReadyForQuery; MySQL: up to the server's OK).
type dialer interface {
	connect() (io.Closer, error)
}

type pgDialer struct{ cfg *pgconn.Config }

func (d pgDialer) connect() (io.Closer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ConnectTimeout)
	defer cancel()
	c, err := pgconn.ConnectConfig(ctx, d.cfg)
	if err != nil {
		return nil, err
	}
	return pgCloser{c}, nil
}

type pgCloser struct{ c *pgconn.PgConn }

func (c pgCloser) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.c.Close(ctx)
}

// myDialer opens raw driver connections (no database/sql pool, which would
// close or share them): each stays open and idle until closed.
type myDialer struct {
	c       driver.Connector
	timeout time.Duration
}

func (d myDialer) connect() (io.Closer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	return d.c.Connect(ctx) // driver.Conn: Close sends COM_QUIT
}

func connect(cfg dialer) (io.Closer, error) { return cfg.connect() }

func closeConn(c io.Closer) { _ = c.Close() }

func runSequential(cfg dialer, n int) int {
	times := make([]time.Duration, 0, n)
	failed := 0
	var firstErr error
	start := time.Now()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		c, err := connect(cfg)
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		closeConn(c)
		times = append(times, time.Since(t0))
	}
	total := time.Since(start)
	ok := len(times)
	fmt.Printf("CONNECTS=%d\nFAILED=%d\nTOTAL_MS=%.1f\n", ok, failed, ms(total))
	if ok > 0 {
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		var sum time.Duration
		for _, d := range times {
			sum += d
		}
		per := ms(sum) / float64(ok)
		fmt.Printf("PER_CONN_MS=%.3f\nP50_MS=%.3f\nP99_MS=%.3f\nMAX_MS=%.3f\n",
			per, ms(pct(times, 50)), ms(pct(times, 99)), ms(times[ok-1]))
		fmt.Fprintf(os.Stderr, "idleconns: %d sequential connects in %.0f ms: %.3f ms each (p50 %.3f, p99 %.3f)\n",
			ok, ms(total), per, ms(pct(times, 50)), ms(pct(times, 99)))
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: %d of %d connects failed; first error: %v\n", failed, n, firstErr)
		return 1
	}
	return 0
}

func runIdle(cfg dialer, n, pid, concurrency, warmup int, settle time.Duration) int {
	var conns []io.Closer
	defer func() { closeAll(conns, concurrency) }()

	if _, err := vmRSS(pid); err != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
		return 2
	}
	warm, wfail, werr := openMany(cfg, warmup, concurrency)
	conns = append(conns, warm...)
	if wfail > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: %d of %d warm-up connections failed; first error: %v\n", wfail, warmup, werr)
		return 1
	}
	time.Sleep(settle)
	before, err := vmRSS(pid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "idleconns: %d warm-up connections open, VmRSS of %d: %d KiB; opening %d more (%d at a time)\n",
		len(warm), pid, before, n, concurrency)

	start := time.Now()
	more, failed, firstErr := openMany(cfg, n, concurrency)
	openTime := time.Since(start)
	conns = append(conns, more...)
	time.Sleep(settle)
	after, err := vmRSS(pid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
		return 1
	}
	opened := len(more)
	fmt.Printf("OPENED=%d\nFAILED=%d\nRSS_BEFORE_KIB=%d\nRSS_AFTER_KIB=%d\nOPEN_SECONDS=%.1f\n",
		opened, failed, before, after, openTime.Seconds())
	if opened > 0 {
		per := float64(after-before) / float64(opened)
		fmt.Printf("RSS_PER_CONN_KIB=%.2f\n", per)
		fmt.Fprintf(os.Stderr, "idleconns: %d idle connections open in %.1fs; VmRSS %d -> %d KiB: %.2f KiB per connection\n",
			opened, openTime.Seconds(), before, after, per)
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: %d of %d connections failed; first error: %v\n", failed, n, firstErr)
		return 1
	}
	return 0
}

// openMany opens n connections, workers at a time, and returns those that
// opened, how many failed and the first error.
func openMany(cfg dialer, n, workers int) ([]io.Closer, int, error) {
	if workers > n {
		workers = n
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		conns    = make([]io.Closer, 0, n)
		failed   int
		firstErr error
		wg       sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				c, err := connect(cfg)
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, failed, firstErr
}

func closeAll(conns []io.Closer, workers int) {
	ch := make(chan io.Closer)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				closeConn(c)
			}
		}()
	}
	for _, c := range conns {
		ch <- c
	}
	close(ch)
	wg.Wait()
}

// vmRSS returns the resident set size of process pid in KiB.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("reading the RSS of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "123456 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading the RSS of pid %d: %w", pid, err)
	}
	return 0, errors.New("no VmRSS line in /proc/" + strconv.Itoa(pid) + "/status (a zombie or a kernel thread?)")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct returns the p-th percentile of sorted, a non-empty ascending slice.
func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return sorted[i-1]
}
