package localcluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver of database/sql
)

// MariaDBOptions configures StartMariaDB. The zero value asks for a
// primary and two asynchronous replicas on free ports in a new temporary
// directory, with user app (password app) and database app.
type MariaDBOptions struct {
	// Replicas is the number of replicas: 0 means 2, a negative value
	// means none.
	Replicas int
	// Ports are the TCP ports of the nodes, primary first, then replicas.
	// Missing or 0 entries get a free loopback port.
	Ports []int
	// Dir is the base directory of the cluster; "" makes a new one with
	// os.MkdirTemp (falling back to /tmp if the server account cannot
	// reach $TMPDIR). Stop removes it only when it was made here; a given
	// Dir is left with the node directories (and logs) in it, and must not
	// already hold node directories of the same names.
	Dir string
	// Users are created on the primary (and so replicated to every
	// replica) as 'name'@'%' with mysql_native_password. A user gets ALL
	// PRIVILEGES ON *.* except SUPER, READ_ONLY ADMIN and BINLOG ADMIN, so
	// that the read_only replicas refuse its writes (error 1290); with
	// Superuser it gets ALL PRIVILEGES ON *.* WITH GRANT OPTION instead,
	// and can write on a replica. "root" and "repl" are reserved. Empty
	// means {Name: "app", Password: "app"}.
	Users []User
	// Databases are created on the primary. Empty means {"app"}.
	Databases []string
	// SemiSync turns on semi-synchronous replication: the primary
	// (rpl_semi_sync_master_enabled, wait point AFTER_SYNC, a 10-minute
	// timeout before it falls back to asynchronous replication) waits for
	// one replica (rpl_semi_sync_slave_enabled) to have received each
	// commit before acknowledging it. It needs at least one replica.
	SemiSync bool
	// ExtraConf holds extra my.cnf lines for every node; they come last in
	// the node's [mariadbd] section, so they override the defaults of
	// this package.
	ExtraConf []string
	// Log receives progress and diagnostic messages (it may be called from
	// several goroutines at once); nil means silent. Server logs go to
	// each node's LogFile.
	Log func(format string, args ...any)
}

// MariaDBCluster is a running MariaDB primary with its replicas, which
// replicate with global transaction IDs (MASTER_USE_GTID=slave_pos).
type MariaDBCluster struct {
	// Primary is the node the replicas replicate from.
	Primary *MariaDBNode
	// Replicas are the read_only replicas, in name order (mdb1, mdb2, …).
	Replicas []*MariaDBNode
	// Dir is the cluster's base directory.
	Dir string
	// Programs are the MariaDB programs in use.
	Programs MariaDBPrograms
	// Users are the users that were created (after defaults).
	Users []User
	// Databases are the databases that were created (after defaults).
	Databases []string

	opts       MariaDBOptions
	acct       *account
	serverExe  string // resolved path of the server binary
	ownDir     bool   // Dir was made by StartMariaDB
	ownSockDir string // a short socket directory made by StartMariaDB, or ""
	semiSyncOn bool   // SemiSync, and the replicas are attached (set before the nodes are shared)

	stopOnce sync.Once
	stopErr  error
}

// Replication account that every replica uses to connect to its primary.
// It exists on every node, so that replicas can follow a promoted one.
const (
	// MariaDBReplUser is the replication user, with REPLICATION SLAVE on
	// every node.
	MariaDBReplUser = "repl"
	// MariaDBReplPassword is the password of MariaDBReplUser.
	MariaDBReplPassword = "repl"
)

// semiSyncTimeout is rpl_semi_sync_master_timeout in milliseconds: long
// enough that no test silently falls back to asynchronous replication.
const semiSyncTimeout = 10 * 60 * 1000

// MariaDBPrograms are the MariaDB programs that StartMariaDB runs.
type MariaDBPrograms struct {
	// Server is the server program (mariadbd, or mysqld of MariaDB).
	Server string
	// InstallDB initialises data directories (mariadb-install-db or
	// mysql_install_db).
	InstallDB string
	// Version is the first line of `Server --version`.
	Version string
}

// FindMariaDB locates the MariaDB server and mariadb-install-db: in
// $SLUICE_MARIADB_BINDIR if set (both programs must be there), else in
// $PATH, /usr/sbin, /usr/bin and /usr/local/mysql/{bin,sbin}. The server
// must be MariaDB (MySQL lacks the GTID options used here).
func FindMariaDB() (MariaDBPrograms, error) {
	var dirs []string
	if dir := os.Getenv("SLUICE_MARIADB_BINDIR"); dir != "" {
		dirs = []string{dir}
	} else {
		dirs = append(filepath.SplitList(os.Getenv("PATH")), "/usr/sbin", "/usr/bin", "/usr/local/mysql/bin", "/usr/local/mysql/sbin")
	}
	find := func(names ...string) string {
		for _, dir := range dirs {
			if dir == "" {
				continue
			}
			for _, name := range names {
				path := filepath.Join(dir, name)
				if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
					return path
				}
			}
		}
		return ""
	}
	p := MariaDBPrograms{
		Server:    find("mariadbd", "mysqld"),
		InstallDB: find("mariadb-install-db", "mysql_install_db"),
	}
	if p.Server == "" || p.InstallDB == "" {
		return p, fmt.Errorf("no MariaDB server programs (mariadbd, mariadb-install-db) found in %s: install the server package (Debian: mariadb-server) or set SLUICE_MARIADB_BINDIR", strings.Join(dirs, ", "))
	}
	out, err := exec.Command(p.Server, "--no-defaults", "--version").Output()
	if err != nil {
		return p, fmt.Errorf("run %s --version: %w", p.Server, err)
	}
	p.Version, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	if !strings.Contains(p.Version, "MariaDB") {
		return p, fmt.Errorf("%s is not a MariaDB server: %s", p.Server, p.Version)
	}
	return p, nil
}

// StartMariaDB initialises a data directory with mariadb-install-db and
// gives every replica a copy of it before any server runs, starts the
// servers, creates the replication user, the users and the databases on
// the primary, points the replicas at the primary (they replay its whole
// binary log, so every node ends up with the same users and databases),
// and waits until every replica's I/O and SQL threads run and it has
// caught up (and, with SemiSync, until the primary counts every replica as
// a semi-synchronous client). ctx bounds the whole start-up (two minutes
// if it has no deadline). On failure everything started so far is stopped
// and removed again.
func StartMariaDB(ctx context.Context, opts MariaDBOptions) (_ *MariaDBCluster, err error) {
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	start := time.Now()

	replicas := opts.Replicas
	switch {
	case replicas == 0:
		replicas = 2
	case replicas < 0:
		replicas = 0
	}
	if len(opts.Ports) > replicas+1 {
		return nil, fmt.Errorf("start mariadb: %d ports given for %d nodes", len(opts.Ports), replicas+1)
	}
	if opts.SemiSync && replicas == 0 {
		return nil, errors.New("start mariadb: SemiSync needs at least one replica")
	}
	users := opts.Users
	if len(users) == 0 {
		users = []User{{Name: "app", Password: "app"}}
	}
	seenUser := map[string]bool{}
	for _, u := range users {
		switch {
		case u.Name == "":
			return nil, errors.New("start mariadb: a user has no name")
		case u.Name == "root" || u.Name == MariaDBReplUser:
			return nil, fmt.Errorf("start mariadb: user %q is reserved", u.Name)
		case u.Password == "":
			return nil, fmt.Errorf("start mariadb: user %q has no password", u.Name)
		case seenUser[u.Name]:
			return nil, fmt.Errorf("start mariadb: user %q given twice", u.Name)
		}
		seenUser[u.Name] = true
	}
	databases := opts.Databases
	if len(databases) == 0 {
		databases = []string{"app"}
	}
	for _, db := range databases {
		if db == "" {
			return nil, errors.New("start mariadb: a database has no name")
		}
	}

	progs, err := FindMariaDB()
	if err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	exe, err := filepath.EvalSymlinks(progs.Server)
	if err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	acct, err := serverAccountOf("MariaDB", "mysql", "nobody")
	if err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	ports, err := pickPorts(opts.Ports, replicas+1)
	if err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}

	c := &MariaDBCluster{
		Programs:  progs,
		Users:     users,
		Databases: databases,
		opts:      opts,
		acct:      acct,
		serverExe: exe,
	}
	defer func() {
		if err != nil {
			if serr := c.Stop(); serr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", serr))
			}
		}
	}()
	if err := c.makeDirs(ports, replicas); err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	c.logf("mariadb cluster in %s (run as %s), ports %v", c.Dir, acct.name, ports)

	// Initialise the primary's data directory and copy it, untouched by
	// any server yet, to the replicas: every node starts from the same
	// fresh installation, at the cost of one bootstrap instead of one per
	// node (a bootstrap takes 1–3 s of CPU, a copy a few milliseconds).
	if err := c.installDB(ctx, c.Primary); err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	for _, r := range c.Replicas {
		if err := c.acct.copyTree(c.Primary.DataDir, r.DataDir); err != nil {
			return nil, fmt.Errorf("start mariadb: %s: copy the fresh data directory: %w", r.Name, err)
		}
	}
	// Start every node in parallel.
	nodes := c.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startNode(ctx, n, autoPort(opts.Ports, i))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	if err := c.createUsersAndDatabases(ctx); err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}

	// Point the replicas at the primary.
	errs = make([]error, len(c.Replicas))
	for i, r := range c.Replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Follow(ctx, c.Primary)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	if err := c.WaitReplicated(ctx); err != nil {
		return nil, fmt.Errorf("start mariadb: %w", err)
	}
	if opts.SemiSync {
		if err := c.enableSemiSync(ctx); err != nil {
			return nil, fmt.Errorf("start mariadb: %w", err)
		}
	}
	c.logf("mariadb cluster ready in %v: primary %s, %d replica(s)", time.Since(start).Round(time.Millisecond), c.Primary.Addr(), len(c.Replicas))
	return c, nil
}

// makeDirs creates the base directory (unless given) and the node
// directories, owned by the server account, and the node objects with
// their configuration files.
func (c *MariaDBCluster) makeDirs(ports []int, replicas int) error {
	if c.opts.Dir == "" {
		parent := ""
		if c.acct.checkReachable(os.TempDir()) != nil {
			parent = "/tmp"
		}
		dir, err := os.MkdirTemp(parent, "sluice-mdb-")
		if err != nil {
			return fmt.Errorf("create cluster directory: %w", err)
		}
		c.ownDir = true
		c.Dir = dir // set before anything can fail, so that Stop removes it
		if err := c.acct.chownTree(dir); err != nil {
			return err
		}
	} else {
		dir, err := filepath.Abs(c.opts.Dir)
		if err != nil {
			return fmt.Errorf("cluster directory: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cluster directory: %w", err)
		}
		c.Dir = dir
	}
	// Processes report resolved working directories; the sweeps compare
	// against them.
	resolved, err := filepath.EvalSymlinks(c.Dir)
	if err != nil {
		return fmt.Errorf("cluster directory: %w", err)
	}
	c.Dir = resolved
	if err := c.acct.checkReachable(c.Dir); err != nil {
		return err
	}

	for i := 0; i <= replicas; i++ {
		name := fmt.Sprintf("mdb%d", i)
		dir := filepath.Join(c.Dir, name)
		n := &MariaDBNode{
			Name:     name,
			Port:     ports[i],
			Dir:      dir,
			DataDir:  filepath.Join(dir, "data"),
			LogFile:  filepath.Join(dir, "mariadb.log"),
			ConfFile: filepath.Join(dir, "my.cnf"),
			Socket:   filepath.Join(dir, "mysqld.sock"),
			ServerID: i + 1,
			c:        c,
			primary:  i == 0,
		}
		if len(n.Socket) >= maxSocketPath {
			if c.ownSockDir == "" {
				sd, err := os.MkdirTemp("/tmp", "slmdb")
				if err != nil {
					return fmt.Errorf("create socket directory: %w", err)
				}
				c.ownSockDir = sd
				if err := c.acct.chownTree(sd); err != nil {
					return err
				}
			}
			n.Socket = filepath.Join(c.ownSockDir, name+".sock")
		}
		if err := c.acct.mkdir(dir); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := c.acct.mkdir(n.tmpDir()); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := n.writeConf(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if i == 0 {
			c.Primary = n
		} else {
			c.Replicas = append(c.Replicas, n)
		}
	}
	return nil
}

// tmpDir is the node's tmpdir. Every node needs its own: a starting
// server deletes every file named #sql* in its tmpdir, including the
// temporary tables of other servers (such as a bootstrap running next to
// it, or the system's server if it uses /tmp).
func (n *MariaDBNode) tmpDir() string {
	return filepath.Join(n.Dir, "tmp")
}

// sessionTrackVariables is session_track_system_variables on every node:
// the server reports changes of these (and the GTID of each committed
// transaction, last_gtid) in OK packets.
const sessionTrackVariables = "autocommit,character_set_client,character_set_connection,character_set_results,time_zone,last_gtid"

// conf renders the node's my.cnf. The caller holds n.mu or owns n alone.
func (n *MariaDBNode) conf() string {
	c := n.c
	var b strings.Builder
	fmt.Fprintf(&b, "# written by sluice localcluster for %s: settings for tests, not for durability\n[mariadbd]\n", n.Name)
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format+"\n", args...)
	}
	line("datadir=%s", n.DataDir)
	line("port=%d", n.Port)
	line("bind-address=127.0.0.1")
	line("socket=%s", n.Socket)
	line("pid-file=%s", filepath.Join(n.Dir, "mariadbd.pid"))
	line("log-error=%s", n.LogFile)
	line("tmpdir=%s", n.tmpDir())
	line("server-id=%d", n.ServerID)
	line("log-bin=binlog")
	line("relay-log=relay-bin")
	line("log-slave-updates=ON")
	line("binlog-format=ROW")
	line("gtid-strict-mode=ON")
	line("innodb-buffer-pool-size=32M")
	line("innodb-log-file-size=16M")
	line("innodb-flush-log-at-trx-commit=2")
	line("innodb-doublewrite=OFF")
	line("sync-binlog=0")
	line("skip-name-resolve")
	line("max-connections=500")
	line("character-set-server=utf8mb4")
	line("collation-server=utf8mb4_general_ci")
	line("session-track-system-variables=%s", sessionTrackVariables)
	line("slave-net-timeout=10")
	if n.primary {
		line("read-only=OFF")
	} else {
		line("read-only=ON")
	}
	if c.opts.SemiSync {
		line("rpl-semi-sync-master-enabled=%s", onOff(n.primary && c.semiSyncOn))
		line("rpl-semi-sync-slave-enabled=%s", onOff(!n.primary))
		line("rpl-semi-sync-master-wait-point=AFTER_SYNC")
		line("rpl-semi-sync-master-timeout=%d", semiSyncTimeout)
	}
	if len(c.opts.ExtraConf) > 0 {
		line("# MariaDBOptions.ExtraConf")
		for _, l := range c.opts.ExtraConf {
			line("%s", l)
		}
	}
	return b.String()
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// writeConf writes the node's my.cnf, owned by the server account. The
// caller holds n.mu or owns n alone.
func (n *MariaDBNode) writeConf() error {
	f, err := os.OpenFile(n.ConfFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write my.cnf: %w", err)
	}
	_, err = f.WriteString(n.conf())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if a := n.c.acct; err == nil && a.cred != nil {
		err = os.Chown(n.ConfFile, a.uid, a.gid)
	}
	if err != nil {
		return fmt.Errorf("write my.cnf: %w", err)
	}
	return nil
}

// mariadbEnv is the environment for MariaDB programs: childEnv without
// the variables that change where MariaDB programs connect or look for
// option files.
func mariadbEnv(home string) []string {
	var env []string
	for _, kv := range childEnv(home) {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MYSQL") || strings.HasPrefix(k, "MARIADB") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// installDB initialises n's data directory with mariadb-install-db, run as
// the server account. --cross-bootstrap leaves out the root account named
// after this host (which --skip-name-resolve would ignore anyway) and
// skips the host name lookup; the root accounts left (localhost,
// 127.0.0.1, ::1) have no password.
func (c *MariaDBCluster) installDB(ctx context.Context, n *MariaDBNode) error {
	c.logf("%s: mariadb-install-db", n.Name)
	t0 := time.Now()
	cmd := c.acct.command(ctx, n.Dir, c.Dir, c.Programs.InstallDB,
		"--no-defaults",
		"--datadir="+n.DataDir,
		"--tmpdir="+n.tmpDir(),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--cross-bootstrap",
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=16M",
		"--innodb-doublewrite=OFF",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
	)
	cmd.Env = append(mariadbEnv(c.Dir), "MYSQLD_BOOTSTRAP="+c.Programs.Server)
	// The script runs the server in bootstrap mode: on cancellation kill
	// the whole process group, not just the shell.
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: mariadb-install-db: %w\n%s", n.Name, err, out)
	}
	c.logf("%s: data directory initialised in %v", n.Name, time.Since(t0).Round(time.Millisecond))
	return nil
}

// copyTree copies the directory src to dst (which must not exist):
// directories, regular files and their permissions, owned by the account.
func (a *account) copyTree(src, dst string) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return fmt.Errorf("%s is neither a directory nor a regular file", path)
		}
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return a.chownTree(dst)
}

// copyFile copies the regular file src to the new file dst.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// startNode starts n for the first time. A port picked here may have been
// taken since it was found free: then the node moves to another one.
func (c *MariaDBCluster) startNode(ctx context.Context, n *MariaDBNode, autoPort bool) error {
	for attempt := 1; ; attempt++ {
		err := n.Start(ctx)
		if err == nil || !autoPort || attempt == 3 || !errors.Is(err, errPortInUse) {
			return err
		}
		port, perr := FreePort()
		if perr != nil {
			return errors.Join(err, perr)
		}
		c.logf("%s: port %d was taken meanwhile, moving to port %d", n.Name, n.Port, port)
		n.mu.Lock()
		n.Port = port
		err = n.writeConf()
		n.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
}

// createUsersAndDatabases creates the replication user, the users and the
// databases on the primary. Everything goes to the primary's binary log,
// which the replicas replay from its start.
func (c *MariaDBCluster) createUsersAndDatabases(ctx context.Context) error {
	p := c.Primary
	stmts := []string{
		adminSQLMode,
		fmt.Sprintf("CREATE USER %s IDENTIFIED BY %s", mysqlAccount(MariaDBReplUser), mysqlString(MariaDBReplPassword)),
		"GRANT REPLICATION SLAVE ON *.* TO " + mysqlAccount(MariaDBReplUser),
	}
	for _, u := range c.Users {
		acct := mysqlAccount(u.Name)
		stmts = append(stmts, fmt.Sprintf("CREATE USER %s IDENTIFIED VIA mysql_native_password USING PASSWORD(%s)", acct, mysqlString(u.Password)))
		if u.Superuser {
			stmts = append(stmts, "GRANT ALL PRIVILEGES ON *.* TO "+acct+" WITH GRANT OPTION")
		} else {
			stmts = append(stmts,
				"GRANT ALL PRIVILEGES ON *.* TO "+acct,
				"REVOKE SUPER, READ_ONLY ADMIN, BINLOG ADMIN ON *.* FROM "+acct)
		}
	}
	for _, db := range c.Databases {
		stmts = append(stmts, "CREATE DATABASE "+mysqlIdent(db))
	}
	err := withMariaDBConn(ctx, p.AdminDSN(""), func(conn *sql.Conn) error {
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", redactPassword(s), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: create users and databases: %w", p.Name, err)
	}
	c.logf("%s: created users %v and databases %v", p.Name, userNames(c.Users), c.Databases)
	return nil
}

// redactPassword cuts a CREATE USER statement before its password.
func redactPassword(stmt string) string {
	if i := strings.Index(stmt, " IDENTIFIED "); i >= 0 {
		return stmt[:i] + " IDENTIFIED …"
	}
	return stmt
}

// enableSemiSync turns semi-synchronous replication on in the primary
// (only now: with no replica attached, the commits that create the users
// would wait for the timeout), makes the replicas reconnect as
// semi-synchronous clients, and waits until the primary counts them all.
func (c *MariaDBCluster) enableSemiSync(ctx context.Context) error {
	p := c.Primary
	c.semiSyncOn = true
	p.mu.Lock()
	err := p.writeConf()
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	err = withMariaDBConn(ctx, p.AdminDSN(""), func(conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled = ON")
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: enable semi-synchronous replication: %w", p.Name, err)
	}
	for _, r := range c.Replicas {
		err := withMariaDBConn(ctx, r.AdminDSN(""), func(conn *sql.Conn) error {
			for _, s := range []string{"STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD"} {
				if _, err := conn.ExecContext(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: reconnect to %s: %w", r.Name, p.Name, err)
		}
	}
	want := strconv.Itoa(len(c.Replicas))
	var got string
	err = poll(ctx, "wait until every replica is a semi-synchronous client", func(ctx context.Context) (bool, error) {
		err := withMariaDBConn(ctx, p.AdminDSN(""), func(conn *sql.Conn) error {
			var name string
			return conn.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'").Scan(&name, &got)
		})
		return err == nil && got == want, err
	})
	if err != nil {
		return fmt.Errorf("%s: %w (%s of %s clients)", p.Name, err, got, want)
	}
	c.logf("%s: semi-synchronous replication on, %s client(s)", p.Name, got)
	return nil
}

// Nodes returns the primary followed by the replicas.
func (c *MariaDBCluster) Nodes() []*MariaDBNode {
	nodes := make([]*MariaDBNode, 0, 1+len(c.Replicas))
	if c.Primary != nil {
		nodes = append(nodes, c.Primary)
	}
	return append(nodes, c.Replicas...)
}

// WaitReplicated reads the primary's gtid_binlog_pos and waits (with
// MASTER_GTID_WAIT) until every running replica's gtid_slave_pos has
// reached it, so that everything committed on the primary before the call
// is visible on the replicas. Replicas that were promoted are skipped. ctx
// bounds the wait (two minutes if it has no deadline); if it ends, the
// error shows the replica's replication status.
func (c *MariaDBCluster) WaitReplicated(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	var pos string
	err := poll(ctx, "read the primary's gtid_binlog_pos", func(ctx context.Context) (bool, error) {
		if !c.Primary.Running() {
			return false, permanent(fmt.Errorf("%s is not running", c.Primary.Name))
		}
		err := withMariaDBConn(ctx, c.Primary.AdminDSN(""), func(conn *sql.Conn) error {
			return conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos)
		})
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("wait replicated: %w", err)
	}
	if pos == "" {
		return nil
	}
	for _, r := range c.Replicas {
		if !r.Running() || r.isPrimary() {
			continue
		}
		if err := r.waitGTID(ctx, pos); err != nil {
			return fmt.Errorf("wait replicated: %w", err)
		}
	}
	return nil
}

// Stop shuts every node down (replicas first, each with SIGTERM, killing
// what does not stop), kills any server process still working in the
// cluster directory, and removes the directory if StartMariaDB made it.
// Calling it again returns the first call's result.
func (c *MariaDBCluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *MariaDBCluster) stop() error {
	errs := stopNodes(c.Replicas) // replicas first
	if c.Primary != nil {
		errs = append(errs, c.Primary.Stop())
	}
	errs = append(errs, removeClusterFiles(c.Dir, c.serverExe, c.ownDir, c.ownSockDir)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop mariadb cluster: %w", err)
	}
	c.logf("mariadb cluster in %s stopped", c.Dir)
	return nil
}

func (c *MariaDBCluster) logf(format string, args ...any) {
	if c.opts.Log != nil {
		c.opts.Log(format, args...)
	}
}

// withMariaDBConn runs f on a fresh connection made from dsn.
func withMariaDBConn(ctx context.Context, dsn string, f func(conn *sql.Conn) error) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return f(conn)
}

// mysqlString quotes s as a MariaDB string literal for a session whose
// sql_mode lacks NO_BACKSLASH_ESCAPES (see adminSQLMode).
func mysqlString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// adminSQLMode is the sql_mode of the sessions that run statements with
// literals quoted by mysqlString: the server default, whatever ExtraConf
// says, so that backslash escapes work.
const adminSQLMode = "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION'"

// mysqlIdent quotes s as a MariaDB identifier.
func mysqlIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// mysqlAccount is the account name 'user'@'%'.
func mysqlAccount(user string) string {
	return mysqlString(user) + "@'%'"
}
