package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// defaultTimeout bounds a wait whose context carries no deadline.
const defaultTimeout = 2 * time.Minute

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the caller binds it; StartPostgres
// picks all its ports at once so that they at least differ from each other.
func FreePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// freePorts returns n distinct ports that were free on 127.0.0.1, holding
// each listener open until all are chosen.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// postgresTools are the programs this package runs from the bin directory.
var postgresTools = []string{"initdb", "postgres", "pg_ctl", "pg_basebackup"}

// PostgresBinDir finds the directory of the PostgreSQL server programs:
// $SLUICE_PG_BINDIR if set, else `pg_config --bindir` if that directory
// holds initdb, else the first of /usr/lib/postgresql/{17,16,15}/bin that
// does. The directory must hold initdb, postgres, pg_ctl and pg_basebackup.
func PostgresBinDir() (string, error) {
	if dir := os.Getenv("SLUICE_PG_BINDIR"); dir != "" {
		if err := checkBinDir(dir); err != nil {
			return "", fmt.Errorf("SLUICE_PG_BINDIR: %w", err)
		}
		return dir, nil
	}
	var tried []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if checkBinDir(dir) == nil {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	for _, v := range []string{"17", "16", "15"} {
		dir := filepath.Join("/usr/lib/postgresql", v, "bin")
		if checkBinDir(dir) == nil {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	return "", fmt.Errorf("no PostgreSQL server programs (initdb, postgres, pg_ctl, pg_basebackup) found in %s: install the server package (Debian: postgresql-15) or set SLUICE_PG_BINDIR", strings.Join(tried, ", "))
}

// checkBinDir reports whether dir holds every program in postgresTools.
func checkBinDir(dir string) error {
	for _, tool := range postgresTools {
		fi, err := os.Stat(filepath.Join(dir, tool))
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", filepath.Join(dir, tool))
		}
	}
	return nil
}

// withDefaultTimeout returns ctx bounded by d unless it already has a
// deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// permanentError stops a poll: the condition can no longer become true.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanent marks err as one that ends a poll at once.
func permanent(err error) error { return &permanentError{err: err} }

// attemptTimeout bounds one check of a polled condition, so that a single
// hung connection attempt cannot use up the whole deadline.
const attemptTimeout = 5 * time.Second

// poll calls cond until it reports true, returns a permanent error, or ctx
// ends. Other errors are remembered and reported if the deadline passes.
func poll(ctx context.Context, what string, cond func(ctx context.Context) (bool, error)) error {
	interval := 20 * time.Millisecond
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ok, err := cond(actx)
		cancel()
		if ok {
			return nil
		}
		if pe := (*permanentError)(nil); errors.As(err, &pe) {
			return fmt.Errorf("%s: %w", what, pe.err)
		}
		if err != nil {
			last = err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			if last != nil {
				return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
		if interval < 200*time.Millisecond {
			interval += interval / 2
		}
	}
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on in every server this package starts).
func quoteLiteral(s string) (string, error) {
	if strings.ContainsRune(s, 0) {
		return "", errors.New("string contains a NUL byte")
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
}

// stopNodes stops nodes in parallel and returns their errors.
func stopNodes[N interface{ Stop() error }](nodes []N) []error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Stop()
		}()
	}
	wg.Wait()
	return errs
}

// removeClusterFiles kills server processes (of executable exe) that escaped
// the nodes' own bookkeeping under dir, then removes dir if the cluster made
// it, and the separate socket directory if there is one.
func removeClusterFiles(dir, exe string, ownDir bool, sockDir string) []error {
	var errs []error
	if dir != "" {
		if err := killProcessesUnder(dir, exe, time.Now().Add(10*time.Second)); err != nil {
			errs = append(errs, err)
		}
	}
	if ownDir && dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove cluster directory: %w", err))
		}
	}
	if sockDir != "" {
		if err := os.RemoveAll(sockDir); err != nil {
			errs = append(errs, fmt.Errorf("remove socket directory: %w", err))
		}
	}
	return errs
}
