// Command mycluster starts a throwaway MariaDB server (a primary, no
// replicas) for scripts/bench-mysql.sh, prints where it listens, and keeps
// it running until SIGINT or SIGTERM (or until its parent process goes
// away), then stops it and removes its directory.
//
//	mycluster [-port 0] [-max-connections 500] [-buffer-pool 256M]
//	mycluster -free-ports N     print N free loopback ports, one a line, and exit
//
// Once the server accepts connections it prints, on stdout, lines of the
// form KEY=VALUE followed by a final line READY:
//
//	DIR=/tmp/sluice-mdb-123        cluster directory
//	VERSION=mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)
//	PRIMARY_PORT=40123
//	PRIMARY_ADDR=127.0.0.1:40123
//	PRIMARY_LOG=/tmp/sluice-mdb-123/mdb0/mariadb.log
//	READY
//
// The user is app (password app, mysql_native_password) with database app.
// On failure it prints a message on stderr and exits with status 1.
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
	port := flag.Int("port", 0, "TCP port of the primary (0 = a free one)")
	maxConns := flag.Int("max-connections", 500, "max_connections of the server")
	bufferPool := flag.String("buffer-pool", "256M", "innodb_buffer_pool_size of the server")
	freePorts := flag.Int("free-ports", 0, "print this many free loopback ports and exit")
	verbose := flag.Bool("v", false, "log progress on stderr")
	timeout := flag.Duration("timeout", 2*time.Minute, "bound on the start-up")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mycluster: unexpected argument %q\n", flag.Arg(0))
		return 2
	}

	if *freePorts > 0 {
		return printFreePorts(*freePorts)
	}

	var ports []int
	if *port != 0 {
		ports = []int{*port}
	}
	opts := localcluster.MariaDBOptions{
		Replicas:  -1, // 0 would mean 2
		Ports:     ports,
		Users:     []localcluster.User{{Name: "app", Password: "app"}},
		Databases: []string{"app"},
		ExtraConf: []string{
			fmt.Sprintf("max-connections=%d", *maxConns),
			fmt.Sprintf("innodb-buffer-pool-size=%s", *bufferPool),
		},
	}
	if *verbose {
		opts.Log = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "mycluster: "+format+"\n", args...)
		}
	}

	// Catch the signals before starting, so that a signal during start-up
	// also leads to an orderly stop.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	type result struct {
		c   *localcluster.MariaDBCluster
		err error
	}
	started := make(chan result, 1)
	go func() {
		c, err := localcluster.StartMariaDB(ctx, opts)
		started <- result{c, err}
	}()
	var c *localcluster.MariaDBCluster
	select {
	case r := <-started:
		cancel()
		if r.err != nil {
			fmt.Fprintf(os.Stderr, "mycluster: %v\n", r.err)
			return 1
		}
		c = r.c
	case s := <-sigs:
		// StartMariaDB stops what it started when its context ends.
		fmt.Fprintf(os.Stderr, "mycluster: %v during start-up, stopping\n", s)
		cancel()
		if r := <-started; r.err == nil {
			_ = r.c.Stop()
		}
		return 1
	}

	p := c.Primary
	fmt.Printf("DIR=%s\nVERSION=%s\n", c.Dir, c.Programs.Version)
	fmt.Printf("PRIMARY_PORT=%d\nPRIMARY_ADDR=%s\nPRIMARY_LOG=%s\n", p.Port, p.Addr(), p.LogFile)
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
			fmt.Fprintf(os.Stderr, "mycluster: %v, stopping the server\n", s)
			waiting = false
		case <-tick.C:
			if os.Getppid() != ppid {
				fmt.Fprintln(os.Stderr, "mycluster: parent process gone, stopping the server")
				waiting = false
			}
		}
	}
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "mycluster: %v\n", err)
		return 1
	}
	return 0
}

func printFreePorts(n int) int {
	seen := map[int]bool{}
	for len(seen) < n {
		p, err := localcluster.FreePort()
		if err != nil {
			fmt.Fprintf(os.Stderr, "mycluster: %v\n", err)
			return 1
		}
		if !seen[p] {
			seen[p] = true
			fmt.Println(p)
		}
	}
	return 0
}
