package localcluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBNode is one MariaDB server of a MariaDBCluster. Its methods are
// safe for concurrent use.
type MariaDBNode struct {
	// Name is "mdb0" for the primary and "mdb1", "mdb2", … for the
	// replicas.
	Name string
	// Port is the TCP port the server listens on, on 127.0.0.1 only.
	Port int
	// Dir is the node's directory; it holds DataDir, LogFile and ConfFile.
	Dir string
	// DataDir is the server's data directory (binary logs: binlog.*,
	// relay logs: relay-bin.*).
	DataDir string
	// LogFile is the server's error log (log-error), which also receives
	// the server's stdout and stderr.
	LogFile string
	// ConfFile is the node's option file, the only one the server reads
	// (--defaults-file): this package's settings, then
	// MariaDBOptions.ExtraConf.
	ConfFile string
	// Socket is the path of the server's unix socket: in Dir, unless that
	// path is too long for a socket address.
	Socket string
	// ServerID is the node's server_id: 1 for the primary, 2, 3, … for the
	// replicas. GTIDs of transactions committed on the node carry it.
	ServerID int

	c *MariaDBCluster

	mu      sync.Mutex
	server  *serverProcess // the last server started, nil before the first start
	primary bool           // writable (read_only=OFF): the primary, or promoted
}

// Addr returns the node's TCP address, "127.0.0.1:port".
func (n *MariaDBNode) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Port))
}

// AdminDSN returns a go-sql-driver/mysql DSN for root on database db ("" for
// none) over TCP. Root has an empty password and exists only as
// root@localhost, root@127.0.0.1 and root@::1; it has every privilege,
// so it can write on a read_only replica.
func (n *MariaDBNode) AdminDSN(db string) string {
	return n.DSN("root", "", db)
}

// DSN returns a go-sql-driver/mysql DSN for user with password on database
// db ("" for none) over TCP to 127.0.0.1 (no TLS).
func (n *MariaDBNode) DSN(user, password, db string) string {
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Passwd = password
	cfg.Net = "tcp"
	cfg.Addr = n.Addr()
	cfg.DBName = db
	return cfg.FormatDSN()
}

// Running reports whether the node's server is running (it was started and
// has not exited).
func (n *MariaDBNode) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.server.running()
}

func (n *MariaDBNode) isPrimary() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.primary
}

// Start starts the node's server and waits until it accepts connections.
// A replica resumes replication by itself (from its gtid_slave_pos); use
// MariaDBCluster.WaitReplicated to wait until it has caught up. Start
// fails if the node is already running. If the server does not become
// ready before ctx ends (two minutes if ctx has no deadline) it is killed.
func (n *MariaDBNode) Start(ctx context.Context) error {
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
	n.c.logf("%s: mariadbd started (pid %d, port %d), waiting for it to accept connections", n.Name, sp.proc.Pid, n.Port)

	t0 := time.Now()
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
	n.c.logf("%s: accepting connections after %v", n.Name, time.Since(t0).Round(time.Millisecond))
	return nil
}

// spawnLocked starts the server as a child of this process, in a process
// group of its own, with its stdout and stderr appended to LogFile.
func (n *MariaDBNode) spawnLocked() (*serverProcess, error) {
	if err := killProcessesUnder(n.Dir, n.c.serverExe, time.Now().Add(10*time.Second)); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(n.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	if a := n.c.acct; a.cred != nil {
		if err := logf.Chown(a.uid, a.gid); err != nil {
			logf.Close()
			return nil, fmt.Errorf("chown server log: %w", err)
		}
	}
	// --defaults-file must come first; it keeps the server from reading
	// any other option file (/etc/mysql/my.cnf, ~/.my.cnf).
	cmd := exec.Command(n.c.Programs.Server, "--defaults-file="+n.ConfFile)
	cmd.Dir = n.Dir
	cmd.Env = mariadbEnv(n.c.Dir)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = serverSysProcAttr(n.c.acct.cred)
	if err := startServerProcess(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("run mariadbd: %w", err)
	}
	sp := &serverProcess{proc: cmd.Process, done: make(chan struct{})}
	// This goroutine ends when the server exits; Stop and Kill make sure
	// it does.
	go func() {
		sp.err = cmd.Wait()
		logf.Close()
		close(sp.done)
	}()
	n.server = sp
	return sp, nil
}

// waitReady polls until the server accepts a connection from root,
// failing at once if the server exits. The server that answers must run in
// this node's data directory: if another process holds the port, our
// server exits, and the other one must not pass for it.
func (n *MariaDBNode) waitReady(ctx context.Context, sp *serverProcess) error {
	exited := func() error {
		select {
		case <-sp.done:
			tail := n.LogTail(20)
			if strings.Contains(tail, "Bind on TCP/IP port") || strings.Contains(tail, "Address already in use") {
				return permanent(fmt.Errorf("mariadbd exited (%v): %w; log tail:\n%s", sp.err, errPortInUse, tail))
			}
			return permanent(fmt.Errorf("mariadbd exited (%v); log tail:\n%s", sp.err, tail))
		default:
			return nil
		}
	}
	return poll(ctx, "wait until it accepts connections", func(ctx context.Context) (bool, error) {
		if err := exited(); err != nil {
			return false, err
		}
		// Give up the attempt as soon as the server exits.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-sp.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		var dataDir string
		err := withMariaDBConn(ctx, n.AdminDSN(""), func(conn *sql.Conn) error {
			return conn.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dataDir)
		})
		if err != nil {
			if xerr := exited(); xerr != nil {
				return false, xerr
			}
			return false, err
		}
		if filepath.Clean(dataDir) != n.DataDir {
			return false, fmt.Errorf("the server on port %d runs in %s, not in %s", n.Port, dataDir, n.DataDir)
		}
		return true, nil
	})
}

// Stop shuts the server down (SIGTERM: a clean shutdown) and waits for it
// to exit. If it does not within 30 s, Stop kills it, and returns an error
// only if something survived. Stopping a node that is not running sweeps
// up stray server processes and returns nil.
func (n *MariaDBNode) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopLocked()
}

func (n *MariaDBNode) stopLocked() error {
	sp := n.server
	if !sp.running() {
		return n.killLocked()
	}
	var err error
	if serr := sp.proc.Signal(syscall.SIGTERM); serr != nil && !errors.Is(serr, os.ErrProcessDone) {
		err = fmt.Errorf("send SIGTERM: %w", serr)
	} else {
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-sp.done:
			n.c.logf("%s: stopped", n.Name)
			return killProcessesUnder(n.Dir, n.c.serverExe, time.Now().Add(10*time.Second))
		case <-t.C:
			err = errors.New("mariadbd still running 30 s after SIGTERM")
		}
	}
	n.c.logf("%s: %v; killing the server", n.Name, err)
	if kerr := n.killLocked(); kerr != nil {
		return fmt.Errorf("stop %s: %v; then: %w", n.Name, err, kerr)
	}
	return nil
}

// Kill SIGKILLs the server, as a crash would, and waits until it is gone
// (so that Start can follow at once). Clients see their connections drop.
// Killing a node that is not running only sweeps up stray server
// processes.
func (n *MariaDBNode) Kill() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.killLocked()
}

func (n *MariaDBNode) killLocked() error {
	deadline := time.Now().Add(15 * time.Second)
	if sp := n.server; sp.running() {
		if err := sp.kill(deadline); err != nil {
			return fmt.Errorf("kill %s: mariadbd: %w", n.Name, err)
		}
		n.c.logf("%s: killed mariadbd %d", n.Name, sp.proc.Pid)
	}
	if err := killProcessesUnder(n.Dir, n.c.serverExe, deadline); err != nil {
		return fmt.Errorf("kill %s: %w", n.Name, err)
	}
	return nil
}

// Promote turns a running replica into a primary: it stops the I/O
// thread, waits until the SQL thread has applied everything already
// received (Gtid_IO_Pos; with SemiSync these are transactions the old
// primary may have acknowledged), then runs STOP SLAVE, RESET SLAVE ALL and
// SET GLOBAL read_only=OFF (with SemiSync it also becomes the semi-sync
// master). The node stays writable across restarts. Other replicas keep
// following the old primary (see Follow), and the cluster's Primary and
// Replicas fields do not change. Promoting a node that does not replicate
// only makes it writable.
func (n *MariaDBNode) Promote(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	if err := n.promote(ctx); err != nil {
		return fmt.Errorf("promote %s: %w", n.Name, err)
	}
	n.c.logf("%s: promoted", n.Name)
	return nil
}

func (n *MariaDBNode) promote(ctx context.Context) error {
	if !n.Running() {
		return errors.New("not running")
	}
	return withMariaDBConn(ctx, n.AdminDSN(""), func(conn *sql.Conn) error {
		st, err := slaveStatus(ctx, conn)
		if err != nil {
			return err
		}
		if st != nil {
			if _, err := conn.ExecContext(ctx, "STOP SLAVE IO_THREAD"); err != nil {
				return fmt.Errorf("stop slave io_thread: %w", err)
			}
			if st, err = slaveStatus(ctx, conn); err != nil {
				return err
			}
			if pos := st["Gtid_IO_Pos"]; pos != "" {
				if st["Slave_SQL_Running"] != "Yes" && st["Last_SQL_Errno"] == "0" {
					if _, err := conn.ExecContext(ctx, "START SLAVE SQL_THREAD"); err != nil {
						return fmt.Errorf("start slave sql_thread: %w", err)
					}
				}
				if err := n.waitGTID(ctx, pos); err != nil {
					return fmt.Errorf("apply the relay log: %w", err)
				}
			}
		}
		stmts := []string{"STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF"}
		if n.c.opts.SemiSync {
			stmts = append(stmts, "SET GLOBAL rpl_semi_sync_slave_enabled = OFF", "SET GLOBAL rpl_semi_sync_master_enabled = ON")
		}
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		n.primary = true
		return n.writeConf()
	})
}

// Follow makes the node a read_only replica of primary (which may be a
// promoted replica): SET GLOBAL read_only=ON, STOP SLAVE, CHANGE MASTER TO
// primary with MASTER_USE_GTID=slave_pos, START SLAVE, then it waits until
// both replication threads run. A node that was writable (the primary, or
// promoted) first sets gtid_slave_pos to its gtid_binlog_pos, so that it
// continues after its own last transaction; it must not have transactions
// that primary lacks (gtid_strict_mode stops replication then). Use
// MariaDBCluster.WaitReplicated or MASTER_GTID_WAIT to wait until it has
// caught up.
func (n *MariaDBNode) Follow(ctx context.Context, primary *MariaDBNode) error {
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	if err := n.follow(ctx, primary); err != nil {
		return fmt.Errorf("%s: follow %s: %w", n.Name, primary.Name, err)
	}
	return nil
}

func (n *MariaDBNode) follow(ctx context.Context, primary *MariaDBNode) error {
	if !n.Running() {
		return errors.New("not running")
	}
	stmts := []string{
		adminSQLMode,
		"SET GLOBAL read_only = ON",
		"STOP SLAVE",
	}
	if n.isPrimary() {
		// A node that took writes has its position in its own binary log:
		// continue from there, not from the start of primary's.
		stmts = append(stmts, "SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")
	}
	stmts = append(stmts,
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %d, MASTER_USER = %s, MASTER_PASSWORD = %s, MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
			primary.Port, mysqlString(MariaDBReplUser), mysqlString(MariaDBReplPassword)),
	)
	if n.c.opts.SemiSync {
		stmts = append(stmts, "SET GLOBAL rpl_semi_sync_master_enabled = OFF", "SET GLOBAL rpl_semi_sync_slave_enabled = ON")
	}
	stmts = append(stmts, "START SLAVE")
	err := withMariaDBConn(ctx, n.AdminDSN(""), func(conn *sql.Conn) error {
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", strings.SplitN(s, " MASTER_USER", 2)[0], err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.primary = false
	err = n.writeConf()
	n.mu.Unlock()
	if err != nil {
		return err
	}
	var st statusMap
	err = poll(ctx, "wait until the replication threads run", func(ctx context.Context) (bool, error) {
		err := withMariaDBConn(ctx, n.AdminDSN(""), func(conn *sql.Conn) error {
			var err error
			st, err = slaveStatus(ctx, conn)
			return err
		})
		if err != nil {
			return false, err
		}
		if st == nil {
			return false, permanent(errors.New("SHOW SLAVE STATUS is empty"))
		}
		if st["Slave_SQL_Running"] == "No" || (st["Slave_IO_Running"] == "No" && st["Last_IO_Errno"] != "0") {
			return false, permanent(errors.New(st.summary()))
		}
		return st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes", nil
	})
	if err != nil {
		return fmt.Errorf("%w; %s; log tail:\n%s", err, st.summary(), n.LogTail(10))
	}
	return nil
}

// waitGTID waits until the node's gtid_slave_pos has reached pos (a GTID
// position such as the primary's gtid_binlog_pos). It fails early if the
// node stops or its SQL thread stops with an error.
func (n *MariaDBNode) waitGTID(ctx context.Context, pos string) error {
	var st statusMap
	err := poll(ctx, n.Name+": wait until GTID "+pos+" is applied", func(ctx context.Context) (bool, error) {
		if !n.Running() {
			return false, permanent(fmt.Errorf("%s is not running", n.Name))
		}
		var done bool
		err := withMariaDBConn(ctx, n.AdminDSN(""), func(conn *sql.Conn) error {
			var res sql.NullInt64
			if err := conn.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 1)", pos).Scan(&res); err != nil {
				return err
			}
			if done = res.Valid && res.Int64 == 0; done {
				return nil
			}
			var err error
			st, err = slaveStatus(ctx, conn)
			if err != nil {
				return err
			}
			if st["Slave_SQL_Running"] != "Yes" && st["Last_SQL_Errno"] != "0" {
				return permanent(errors.New(st.summary()))
			}
			return nil
		})
		return done, err
	})
	if err != nil {
		return fmt.Errorf("%w; %s; log tail of %s:\n%s", err, st.summary(), n.Name, n.LogTail(10))
	}
	return nil
}

// statusMap is a row of SHOW SLAVE STATUS, by column name.
type statusMap map[string]string

// summary describes the state of replication, for error messages.
func (st statusMap) summary() string {
	if st == nil {
		return "no replication status"
	}
	return fmt.Sprintf("Slave_IO_Running=%s Slave_SQL_Running=%s Gtid_IO_Pos=%q Gtid_Slave_Pos=%q Last_IO_Error=%q Last_SQL_Error=%q",
		st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Gtid_IO_Pos"], st["Gtid_Slave_Pos"], st["Last_IO_Error"], st["Last_SQL_Error"])
}

// slaveStatus returns the row of SHOW SLAVE STATUS, or nil if the server
// does not replicate.
func slaveStatus(ctx context.Context, conn *sql.Conn) (statusMap, error) {
	rows, err := conn.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	st := make(statusMap, len(cols))
	for i, c := range cols {
		st[c] = vals[i].String
	}
	return st, rows.Close()
}

// LogTail returns the last lines of the server log (at most the last 64 KiB
// of it), for test failure messages.
func (n *MariaDBNode) LogTail(lines int) string {
	return tailFile(n.LogFile, lines)
}

// tailFile returns the last lines of the file at path (at most the last
// 64 KiB of it), or a note saying why it cannot.
func tailFile(path string, lines int) string {
	if lines <= 0 {
		return ""
	}
	f, err := os.Open(path)
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
