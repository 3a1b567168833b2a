package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresNode is one PostgreSQL server of a PostgresCluster. Its methods
// are safe for concurrent use.
type PostgresNode struct {
	// Name is "pg0" for the primary and "pg1", "pg2", … for the replicas.
	// It is the server's cluster_name and the application_name under which
	// a replica streams from the primary (so synchronous_standby_names can
	// name it).
	Name string
	// Port is the TCP port the server listens on, on 127.0.0.1 only.
	Port int
	// DataDir is the server's data directory.
	DataDir string
	// Dir is the node's directory; it holds DataDir and LogFile.
	Dir string
	// LogFile is the server log (the postmaster's stdout and stderr).
	LogFile string
	// SocketDir is the directory of the server's unix socket: Dir, unless
	// that path is too long for a socket address.
	SocketDir string

	c *PostgresCluster

	mu     sync.Mutex
	server *serverProcess // the last postmaster started, nil before the first start
}

// serverProcess is one run of a postmaster, a child of this process.
type serverProcess struct {
	proc *os.Process
	done chan struct{} // closed once the process has been reaped
	err  error         // how it exited; valid once done is closed
}

func (sp *serverProcess) running() bool {
	if sp == nil {
		return false
	}
	select {
	case <-sp.done:
		return false
	default:
		return true
	}
}

// Addr returns the node's TCP address, "127.0.0.1:port".
func (n *PostgresNode) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Port))
}

// AdminDSN returns a URL-style DSN for the superuser "postgres" on database
// db over TCP. pg_hba trusts "postgres" from 127.0.0.1, so it carries no
// password.
func (n *PostgresNode) AdminDSN(db string) string {
	return n.dsn(url.User("postgres"), db)
}

// DSN returns a URL-style DSN for user with password on database db over
// TCP (SCRAM-SHA-256 authentication, no TLS).
func (n *PostgresNode) DSN(user, password, db string) string {
	return n.dsn(url.UserPassword(user, password), db)
}

func (n *PostgresNode) dsn(u *url.Userinfo, db string) string {
	return (&url.URL{
		Scheme:   "postgres",
		User:     u,
		Host:     n.Addr(),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}).String()
}

// Running reports whether the node's postmaster is running (it was started
// and has not exited).
func (n *PostgresNode) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.server.running()
}

// Start starts the node's server and waits until it accepts connections (a
// replica: once it has reached a consistent state and serves reads). It
// fails if the node is already running. If the server does not become
// ready before ctx ends (two minutes if ctx has no deadline) it is killed.
func (n *PostgresNode) Start(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()

	n.mu.Lock()
	if n.server.running() {
		n.mu.Unlock()
		return fmt.Errorf("start %s: already running", n.Name)
	}
	sp, err := n.spawnLocked()
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	n.c.logf("%s: postmaster started (pid %d, port %d), waiting for it to accept connections", n.Name, sp.proc.Pid, n.Port)

	if err := n.waitReady(ctx, sp); err != nil {
		n.mu.Lock()
		if n.server == sp {
			if kerr := n.killLocked(); kerr != nil {
				err = errors.Join(err, kerr)
			}
		}
		n.mu.Unlock()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	return nil
}

// spawnLocked starts the postmaster as a child of this process, its output
// appended to LogFile.
func (n *PostgresNode) spawnLocked() (*serverProcess, error) {
	// Server processes that outlived an earlier postmaster would keep its
	// shared memory busy, and the new postmaster would refuse to start.
	if err := killProcessesUnder(n.DataDir, n.c.postgresExe, time.Now().Add(10*time.Second)); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(n.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	if a := n.c.acct; a.cred != nil {
		if err := logf.Chown(a.uid, a.gid); err != nil {
			logf.Close()
			return nil, fmt.Errorf("chown server log: %w", err)
		}
	}
	cmd := exec.Command(filepath.Join(n.c.BinDir, "postgres"), "-D", n.DataDir)
	cmd.Dir = n.Dir
	cmd.Env = childEnv(n.c.Dir)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = serverSysProcAttr(n.c.acct.cred)
	if err := startServerProcess(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("run postgres: %w", err)
	}
	sp := &serverProcess{proc: cmd.Process, done: make(chan struct{})}
	// This goroutine ends when the postmaster exits; Stop and Kill make
	// sure it does.
	go func() {
		sp.err = cmd.Wait()
		logf.Close()
		close(sp.done)
	}()
	n.server = sp
	return sp, nil
}

// errPortInUse reports that a postmaster exited because it could not
// listen on its port.
var errPortInUse = errors.New("port in use")

// waitReady polls until the server accepts a connection from the admin
// user, failing at once if the postmaster exits. The server that answers
// must run in this node's data directory: if another process holds the
// port, our postmaster exits, and the other one must not pass for it.
func (n *PostgresNode) waitReady(ctx context.Context, sp *serverProcess) error {
	exited := func() error {
		select {
		case <-sp.done:
			tail := n.LogTail(20)
			if strings.Contains(tail, "could not create any TCP/IP sockets") {
				return permanent(fmt.Errorf("postmaster exited (%v): %w; log tail:\n%s", sp.err, errPortInUse, tail))
			}
			return permanent(fmt.Errorf("postmaster exited (%v); log tail:\n%s", sp.err, tail))
		default:
			return nil
		}
	}
	return poll(ctx, "wait until it accepts connections", func(ctx context.Context) (bool, error) {
		if err := exited(); err != nil {
			return false, err
		}
		// Give up the attempt as soon as the postmaster exits.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-sp.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		conn, err := pgx.Connect(ctx, n.AdminDSN("postgres"))
		if err != nil {
			if xerr := exited(); xerr != nil {
				return false, xerr
			}
			return false, err
		}
		defer conn.Close(context.Background())
		var dataDir string
		if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
			return false, err
		}
		if dataDir != n.DataDir {
			return false, fmt.Errorf("the server on port %d runs in %s, not in %s", n.Port, dataDir, n.DataDir)
		}
		return true, nil
	})
}

// Stop shuts the server down with `pg_ctl stop -m fast` and waits for the
// postmaster to exit. If that fails, it kills the postmaster and every
// server process left in the data directory, and returns an error only if
// something survived. Stopping a node that is not running sweeps up stray
// processes and returns nil.
func (n *PostgresNode) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopLocked()
}

func (n *PostgresNode) stopLocked() error {
	sp := n.server
	if !sp.running() {
		return n.killLocked()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := n.c.acct.command(ctx, n.Dir, n.c.Dir, filepath.Join(n.c.BinDir, "pg_ctl"),
		"stop", "-D", n.DataDir, "-m", "fast", "-w", "-t", "30")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t := time.NewTimer(15 * time.Second)
		defer t.Stop()
		select {
		case <-sp.done:
			return nil
		case <-t.C:
			err = errors.New("postmaster still running after pg_ctl stop returned")
		}
	}
	n.c.logf("%s: pg_ctl stop -m fast failed (%v: %s); killing the server", n.Name, err, strings.TrimSpace(string(out)))
	if kerr := n.killLocked(); kerr != nil {
		return fmt.Errorf("stop %s: pg_ctl stop: %v: %s; then: %w", n.Name, err, strings.TrimSpace(string(out)), kerr)
	}
	return nil
}

// kill SIGKILLs the server process and waits until it has exited (and was
// reaped) or deadline passes.
func (sp *serverProcess) kill(deadline time.Time) error {
	if err := sp.proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-sp.done:
		return nil
	case <-t.C:
		return fmt.Errorf("process %d did not exit after SIGKILL", sp.proc.Pid)
	}
}

// Kill SIGKILLs the postmaster and then every server process left working
// in the node's data directory, as a crash of the machine would, and waits
// until they are all gone (so that Start can follow at once). Clients see
// their connections drop. Killing a node that is not running only sweeps
// up stray processes.
func (n *PostgresNode) Kill() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.killLocked()
}

func (n *PostgresNode) killLocked() error {
	deadline := time.Now().Add(15 * time.Second)
	if sp := n.server; sp.running() {
		if err := sp.kill(deadline); err != nil {
			return fmt.Errorf("kill %s: postmaster: %w", n.Name, err)
		}
		n.c.logf("%s: killed postmaster %d", n.Name, sp.proc.Pid)
	}
	if err := killProcessesUnder(n.DataDir, n.c.postgresExe, deadline); err != nil {
		return fmt.Errorf("kill %s: %w", n.Name, err)
	}
	removeSharedMemory(n.DataDir)
	return nil
}

// Promote turns a running replica into a primary (pg_promote) and waits
// until it leaves recovery. Other replicas keep following the old primary.
func (n *PostgresNode) Promote(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.AdminDSN("postgres"))
	if err != nil {
		return fmt.Errorf("promote %s: %w", n.Name, err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil {
		return fmt.Errorf("promote %s: %w", n.Name, err)
	}
	if !ok {
		return fmt.Errorf("promote %s: pg_promote did not finish within 60 s; log tail:\n%s", n.Name, n.LogTail(20))
	}
	return poll(ctx, "promote "+n.Name+": wait until out of recovery", func(ctx context.Context) (bool, error) {
		in, err := queryBool(ctx, n.AdminDSN("postgres"), "SELECT pg_is_in_recovery()")
		return err == nil && !in, err
	})
}

// LogTail returns the last lines of the server log (at most the last 64 KiB
// of it), for test failure messages.
func (n *PostgresNode) LogTail(lines int) string {
	if lines <= 0 {
		return ""
	}
	f, err := os.Open(n.LogFile)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	defer f.Close()
	const maxTail = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxTail {
		if _, err := f.Seek(fi.Size()-maxTail, io.SeekStart); err != nil {
			return fmt.Sprintf("(read server log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read server log: %v)", err)
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// queryBool runs a one-row, one-column boolean query on a fresh connection.
func queryBool(ctx context.Context, dsn, sql string, args ...any) (bool, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var v bool
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		return false, err
	}
	return v, nil
}
