// Command pgcluster starts a throwaway PostgreSQL cluster (a primary plus
// optional streaming replicas) for scripts/bench.sh, prints where it
// listens, and keeps it running until SIGINT or SIGTERM (or until its parent
// process goes away), then stops it and removes its directory.
//
//	pgcluster [-replicas 0] [-port 0] [-max-connections 300] [-shared-buffers 256MB]
//	pgcluster -free-ports N     print N free loopback ports, one a line, and exit
//
// Once the cluster accepts connections it prints, on stdout, lines of the
// form KEY=VALUE followed by a final line READY:
//
//	DIR=/tmp/sluice-pg-123         cluster directory (server logs in pg*/postgres.log)
//	BINDIR=/usr/lib/postgresql/15/bin
//	PRIMARY_PORT=40123
//	PRIMARY_ADDR=127.0.0.1:40123
//	PRIMARY_DSN=postgres://app:app@127.0.0.1:40123/app?sslmode=disable
//	PRIMARY_LOG=/tmp/sluice-pg-123/pg0/postgres.log
//	REPLICA1_PORT=...              (and so on for each replica)
//	READY
//
// The user is app (password app), owning database app. On failure it
// prints a message on stderr and exits with status 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluicedb/sluice/integration/localcluster"
)

func main() {
	os.Exit(run())
}

func run() int {
	replicas := flag.Int("replicas", 0, "number of streaming replicas")
	port := flag.Int("port", 0, "TCP port of the primary (0 = a free one)")
	maxConns := flag.Int("max-connections", 300, "max_connections of every node")
	sharedBuffers := flag.String("shared-buffers", "256MB", "shared_buffers of every node")
	freePorts := flag.Int("free-ports", 0, "print this many free loopback ports and exit")
	verbose := flag.Bool("v", false, "log progress on stderr")
	timeout := flag.Duration("timeout", 2*time.Minute, "bound on the start-up")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pgcluster: unexpected argument %q\n", flag.Arg(0))
		return 2
	}

	if *freePorts > 0 {
		return printFreePorts(*freePorts)
	}

	// Without replicas the option value must be negative (0 means 2).
	reps := *replicas
	if reps <= 0 {
		reps = -1
	}
	ports := []int{*port}
	if *port == 0 {
		ports = nil
	}
	opts := localcluster.PostgresOptions{
		Replicas:  reps,
		Ports:     ports,
		Users:     []localcluster.User{{Name: "app", Password: "app"}},
		Databases: []string{"app"},
		ExtraConf: []string{
			fmt.Sprintf("max_connections = %d", *maxConns),
			fmt.Sprintf("shared_buffers = '%s'", *sharedBuffers),
		},
	}
	if *verbose {
		opts.Log = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "pgcluster: "+format+"\n", args...)
		}
	}

	// Catch the signals before starting, so that a signal during start-up
	// also leads to an orderly stop.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	type result struct {
		c   *localcluster.PostgresCluster
		err error
	}
	started := make(chan result, 1)
	go func() {
		c, err := localcluster.StartPostgres(ctx, opts)
		started <- result{c, err}
	}()
	var c *localcluster.PostgresCluster
	select {
	case r := <-started:
		cancel()
		if r.err != nil {
			fmt.Fprintf(os.Stderr, "pgcluster: %v\n", r.err)
			return 1
		}
		c = r.c
	case s := <-sigs:
		// StartPostgres stops what it started when its context ends.
		fmt.Fprintf(os.Stderr, "pgcluster: %v during start-up, stopping\n", s)
		cancel()
		if r := <-started; r.err == nil {
			_ = r.c.Stop()
		}
		return 1
	}

	fmt.Printf("DIR=%s\nBINDIR=%s\n", c.Dir, c.BinDir)
	for i, n := range c.Nodes() {
		key := "PRIMARY"
		if i > 0 {
			key = fmt.Sprintf("REPLICA%d", i)
		}
		fmt.Printf("%s_PORT=%d\n%s_ADDR=%s\n%s_DSN=%s\n%s_LOG=%s\n",
			key, n.Port, key, n.Addr(), key, n.DSN("app", "app", "app"), key, n.LogFile)
	}
	fmt.Println("READY")
	_ = os.Stdout.Sync()

	// Wait for a signal, or for the parent (the script) to die without
	// stopping us: then we are re-parented and Getppid changes.
	ppid := os.Getppid()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "pgcluster: %v, stopping the cluster\n", s)
			waiting = false
		case <-tick.C:
			if os.Getppid() != ppid {
				fmt.Fprintln(os.Stderr, "pgcluster: parent process gone, stopping the cluster")
				waiting = false
			}
		}
	}
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgcluster: %v\n", err)
		return 1
	}
	return 0
}

func printFreePorts(n int) int {
	seen := map[int]bool{}
	for len(seen) < n {
		p, err := localcluster.FreePort()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgcluster: %v\n", err)
			return 1
		}
		if !seen[p] {
			seen[p] = true
			fmt.Println(p)
		}
	}
	return 0
}
