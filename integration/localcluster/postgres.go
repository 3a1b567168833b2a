package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is a login role created on the primary (and so present on every
// replica).
type User struct {
	// Name is the role name. "postgres" is reserved for administration.
	Name string
	// Password is stored as a SCRAM-SHA-256 verifier; it must not be empty.
	Password string
	// Superuser makes the role a superuser.
	Superuser bool
}

// PostgresOptions configures StartPostgres. The zero value asks for a
// primary and two asynchronous replicas on free ports in a new temporary
// directory, with user app (password app) owning database app.
type PostgresOptions struct {
	// Replicas is the number of streaming replicas: 0 means 2, a negative
	// value means none.
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
	// Users are created on the primary with SCRAM-SHA-256 passwords.
	// Empty means {Name: "app", Password: "app"}.
	Users []User
	// Databases are created on the primary, owned by the first user.
	// Empty means {"app"}.
	Databases []string
	// Synchronous makes the primary wait for one replica to confirm each
	// commit: synchronous_standby_names = 'ANY 1 (pg1, pg2, …)'. It is set
	// once the replicas stream, and needs at least one replica.
	Synchronous bool
	// ExtraConf holds extra postgresql.conf lines for every node; they
	// come last, so they override the defaults of this package.
	ExtraConf []string
	// Log receives progress and diagnostic messages (it may be called from
	// several goroutines at once); nil means silent. Server logs go to
	// each node's LogFile.
	Log func(format string, args ...any)
}

// PostgresCluster is a running PostgreSQL primary with its streaming
// replicas.
type PostgresCluster struct {
	// Primary is the node the replicas were cloned from and stream from.
	Primary *PostgresNode
	// Replicas are the hot standbys, in name order (pg1, pg2, …).
	Replicas []*PostgresNode
	// Dir is the cluster's base directory.
	Dir string
	// BinDir is the directory of the PostgreSQL programs in use.
	BinDir string
	// Users are the login roles that were created (after defaults).
	Users []User
	// Databases are the databases that were created (after defaults).
	Databases []string

	opts        PostgresOptions
	acct        *account
	postgresExe string // resolved path of the postgres binary
	ownDir      bool   // Dir was made by StartPostgres
	ownSockDir  string // a short socket directory made by StartPostgres, or ""

	stopOnce sync.Once
	stopErr  error
}

// maxSocketPath bounds the path of a unix socket's lock file
// (<dir>/.s.PGSQL.<port>.lock), which must fit in sockaddr_un with room to
// spare.
const maxSocketPath = 100

// StartPostgres initialises a primary, creates the users and databases on
// it, clones the replicas from it with pg_basebackup, starts them, and
// waits until every replica is in recovery and streaming (and, with
// Synchronous, counted as a synchronous standby). ctx bounds the whole
// start-up (two minutes if it has no deadline). On failure everything
// started so far is stopped and removed again.
func StartPostgres(ctx context.Context, opts PostgresOptions) (_ *PostgresCluster, err error) {
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
		return nil, fmt.Errorf("start postgres: %d ports given for %d nodes", len(opts.Ports), replicas+1)
	}
	if opts.Synchronous && replicas == 0 {
		return nil, errors.New("start postgres: Synchronous needs at least one replica")
	}
	users := opts.Users
	if len(users) == 0 {
		users = []User{{Name: "app", Password: "app"}}
	}
	for _, u := range users {
		switch {
		case u.Name == "":
			return nil, errors.New("start postgres: a user has no name")
		case u.Name == "postgres":
			return nil, errors.New(`start postgres: user "postgres" is reserved for administration`)
		case u.Password == "":
			return nil, fmt.Errorf("start postgres: user %q has no password", u.Name)
		}
	}
	databases := opts.Databases
	if len(databases) == 0 {
		databases = []string{"app"}
	}

	binDir, err := PostgresBinDir()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	exe, err := filepath.EvalSymlinks(filepath.Join(binDir, "postgres"))
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	ports, err := pickPorts(opts.Ports, replicas+1)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}

	c := &PostgresCluster{
		BinDir:      binDir,
		Users:       users,
		Databases:   databases,
		opts:        opts,
		acct:        acct,
		postgresExe: exe,
	}
	defer func() {
		if err != nil {
			if serr := c.Stop(); serr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", serr))
			}
		}
	}()
	if err := c.makeDirs(ports, replicas); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c.logf("postgres cluster in %s (run as %s), ports %v", c.Dir, acct.name, ports)

	if err := c.initPrimary(ctx); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := c.startNode(ctx, c.Primary, autoPort(opts.Ports, 0)); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := c.createUsersAndDatabases(ctx); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}

	// Clone and start the replicas in parallel.
	errs := make([]error, len(c.Replicas))
	var wg sync.WaitGroup
	for i, r := range c.Replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.cloneReplica(ctx, r); err != nil {
				errs[i] = err
				return
			}
			errs[i] = c.startNode(ctx, r, autoPort(opts.Ports, i+1))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := c.WaitStreaming(ctx); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if opts.Synchronous {
		if err := c.makeSynchronous(ctx); err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
	}
	c.logf("postgres cluster ready in %v: primary %s, %d replica(s)", time.Since(start).Round(time.Millisecond), c.Primary.Addr(), len(c.Replicas))
	return c, nil
}

// autoPort reports whether the port of node i was picked here rather than
// given.
func autoPort(given []int, i int) bool {
	return i >= len(given) || given[i] == 0
}

// startNode starts n for the first time. A port picked here may have been
// taken since it was found free: then the node moves to another one.
func (c *PostgresCluster) startNode(ctx context.Context, n *PostgresNode, autoPort bool) error {
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
		n.Port = port
		if err := c.writeNodeConf(n); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
}

// pickPorts fills the missing or zero entries of given with free ports.
func pickPorts(given []int, n int) ([]int, error) {
	ports := make([]int, n)
	copy(ports, given)
	missing := 0
	seen := map[int]bool{}
	for _, p := range ports {
		switch {
		case p == 0:
			missing++
		case p < 0 || p > 65535:
			return nil, fmt.Errorf("invalid port %d", p)
		case seen[p]:
			return nil, fmt.Errorf("port %d given twice", p)
		}
		seen[p] = true
	}
	if missing == 0 {
		return ports, nil
	}
	// Ask for a few more than needed in case a free port equals a given one.
	free, err := freePorts(missing + len(given))
	if err != nil {
		return nil, err
	}
	for i := range ports {
		for ports[i] == 0 {
			p := free[0]
			free = free[1:]
			if !seen[p] {
				seen[p] = true
				ports[i] = p
			}
		}
	}
	return ports, nil
}

// makeDirs creates the base directory (unless given) and the node
// directories, owned by the server account, and the node objects.
func (c *PostgresCluster) makeDirs(ports []int, replicas int) error {
	if c.opts.Dir == "" {
		parent := ""
		if c.acct.checkReachable(os.TempDir()) != nil {
			parent = "/tmp"
		}
		dir, err := os.MkdirTemp(parent, "sluice-pg-")
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
		name := fmt.Sprintf("pg%d", i)
		dir := filepath.Join(c.Dir, name)
		n := &PostgresNode{
			Name:      name,
			Port:      ports[i],
			Dir:       dir,
			DataDir:   filepath.Join(dir, "data"),
			LogFile:   filepath.Join(dir, "postgres.log"),
			SocketDir: dir,
			c:         c,
		}
		if len(dir)+len("/.s.PGSQL.65535.lock") >= maxSocketPath {
			if c.ownSockDir == "" {
				sd, err := os.MkdirTemp("/tmp", "slpg")
				if err != nil {
					return fmt.Errorf("create socket directory: %w", err)
				}
				c.ownSockDir = sd
				if err := c.acct.chownTree(sd); err != nil {
					return err
				}
			}
			n.SocketDir = c.ownSockDir
		}
		if err := c.acct.mkdir(dir); err != nil {
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

// hbaConf is the client authentication of every node.
const hbaConf = `# written by sluice localcluster
# TYPE  DATABASE     USER      ADDRESS        METHOD
local   all          all                      trust
local   replication  all                      trust
host    all          postgres  127.0.0.1/32   trust
host    replication  all       127.0.0.1/32   trust
host    all          all       127.0.0.1/32   scram-sha-256
`

// commonConf is appended to postgresql.conf on the primary, and so copied
// to every replica. Node-specific settings live in node.conf.
const commonConf = `
# sluice localcluster: settings for tests, not for durability
listen_addresses = '127.0.0.1'
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
wal_retrieve_retry_interval = 1s
wal_receiver_status_interval = 1s
max_connections = 300
shared_buffers = 32MB
password_encryption = 'scram-sha-256'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
include 'node.conf'
`

// initPrimary runs initdb for the primary and writes its configuration.
func (c *PostgresCluster) initPrimary(ctx context.Context) error {
	p := c.Primary
	c.logf("%s: initdb", p.Name)
	cmd := c.acct.command(ctx, p.Dir, c.Dir, filepath.Join(c.BinDir, "initdb"),
		"-D", p.DataDir, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: initdb: %w\n%s", p.Name, err, out)
	}
	if err := c.writeFile(filepath.Join(p.DataDir, "pg_hba.conf"), hbaConf, false); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	conf := commonConf
	if len(c.opts.ExtraConf) > 0 {
		conf += "# PostgresOptions.ExtraConf\n" + strings.Join(c.opts.ExtraConf, "\n") + "\n"
	}
	if err := c.writeFile(filepath.Join(p.DataDir, "postgresql.conf"), conf, true); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	if err := c.writeNodeConf(p); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

// writeNodeConf writes the settings that differ between nodes.
func (c *PostgresCluster) writeNodeConf(n *PostgresNode) error {
	sock, err := quoteLiteral(n.SocketDir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	conf := fmt.Sprintf("# written by sluice localcluster for %s\nport = %d\nunix_socket_directories = %s\ncluster_name = '%s'\n",
		n.Name, n.Port, sock, n.Name)
	return c.writeFile(filepath.Join(n.DataDir, "node.conf"), conf, false)
}

// writeFile writes (or appends to) a file in a data directory, owned by
// the server account.
func (c *PostgresCluster) writeFile(path, content string, appendTo bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && c.acct.cred != nil {
		err = os.Chown(path, c.acct.uid, c.acct.gid)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// createUsersAndDatabases creates (or updates) the login roles and the
// databases on the primary.
func (c *PostgresCluster) createUsersAndDatabases(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.Primary.AdminDSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect to primary: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
		return fmt.Errorf("set password_encryption: %w", err)
	}
	for _, u := range c.Users {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", u.Name).Scan(&exists); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
		pw, err := quoteLiteral(u.Password)
		if err != nil {
			return fmt.Errorf("user %s: password: %w", u.Name, err)
		}
		verb, super := "CREATE", "NOSUPERUSER"
		if exists {
			verb = "ALTER"
		}
		if u.Superuser {
			super = "SUPERUSER"
		}
		sql := fmt.Sprintf("%s ROLE %s WITH LOGIN %s PASSWORD %s", verb, pgx.Identifier{u.Name}.Sanitize(), super, pw)
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s user %s: %w", strings.ToLower(verb), u.Name, err)
		}
	}
	owner := pgx.Identifier{c.Users[0].Name}.Sanitize()
	for _, db := range c.Databases {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
			return fmt.Errorf("database %s: %w", db, err)
		}
		sql := fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{db}.Sanitize(), owner)
		if exists {
			sql = fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", pgx.Identifier{db}.Sanitize(), owner)
		}
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("database %s: %w", db, err)
		}
	}
	c.logf("%s: created users %v and databases %v", c.Primary.Name, userNames(c.Users), c.Databases)
	return nil
}

func userNames(users []User) []string {
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Name
	}
	return names
}

// cloneReplica makes r's data directory with pg_basebackup from the
// primary (-R writes standby.signal and primary_conninfo, whose
// application_name is r.Name) and writes r's node.conf over the copy of
// the primary's.
func (c *PostgresCluster) cloneReplica(ctx context.Context, r *PostgresNode) error {
	c.logf("%s: pg_basebackup from %s", r.Name, c.Primary.Name)
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", c.Primary.Port, r.Name)
	cmd := c.acct.command(ctx, r.Dir, c.Dir, filepath.Join(c.BinDir, "pg_basebackup"),
		"-D", r.DataDir, "-d", conninfo, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: pg_basebackup: %w\n%s", r.Name, err, out)
	}
	if err := c.writeNodeConf(r); err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	return nil
}

// WaitStreaming waits until every running replica is in recovery and the
// primary's pg_stat_replication shows it streaming. ctx bounds the wait
// (two minutes if it has no deadline).
func (c *PostgresCluster) WaitStreaming(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	for _, r := range c.Replicas {
		if !r.Running() {
			continue
		}
		err := poll(ctx, r.Name+": wait until in recovery", func(ctx context.Context) (bool, error) {
			return queryBool(ctx, r.AdminDSN("postgres"), "SELECT pg_is_in_recovery()")
		})
		if err == nil {
			err = poll(ctx, r.Name+": wait until streaming from "+c.Primary.Name, func(ctx context.Context) (bool, error) {
				return queryBool(ctx, c.Primary.AdminDSN("postgres"),
					"SELECT EXISTS (SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming')", r.Name)
			})
		}
		if err != nil {
			return fmt.Errorf("%w; log tail of %s:\n%s", err, r.Name, r.LogTail(10))
		}
	}
	c.logf("replicas streaming")
	return nil
}

// makeSynchronous sets synchronous_standby_names on the primary and waits
// until every replica counts as a (quorum) synchronous standby.
func (c *PostgresCluster) makeSynchronous(ctx context.Context) error {
	names := make([]string, len(c.Replicas))
	for i, r := range c.Replicas {
		names[i] = `"` + r.Name + `"`
	}
	value, err := quoteLiteral("ANY 1 (" + strings.Join(names, ", ") + ")")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.Primary.AdminDSN("postgres"))
	if err != nil {
		return fmt.Errorf("synchronous replication: connect to primary: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = "+value); err != nil {
		return fmt.Errorf("synchronous replication: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("synchronous replication: reload: %w", err)
	}
	err = poll(ctx, "wait until the replicas are synchronous standbys", func(ctx context.Context) (bool, error) {
		return queryBool(ctx, c.Primary.AdminDSN("postgres"),
			"SELECT count(*) = $1 FROM pg_stat_replication WHERE application_name = ANY($2) AND sync_state IN ('quorum', 'sync')",
			len(c.Replicas), replicaNames(c.Replicas))
	})
	if err != nil {
		return fmt.Errorf("synchronous replication: %w", err)
	}
	c.logf("synchronous_standby_names = %s", value)
	return nil
}

func replicaNames(nodes []*PostgresNode) []string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return names
}

// Nodes returns the primary followed by the replicas.
func (c *PostgresCluster) Nodes() []*PostgresNode {
	nodes := make([]*PostgresNode, 0, 1+len(c.Replicas))
	if c.Primary != nil {
		nodes = append(nodes, c.Primary)
	}
	return append(nodes, c.Replicas...)
}

// WaitReplicated reads the primary's current WAL position
// (pg_current_wal_lsn) and waits until every running replica has replayed
// up to it, so that everything committed on the primary before the call
// is visible on the replicas. ctx bounds the wait (two minutes if it has
// no deadline).
func (c *PostgresCluster) WaitReplicated(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, defaultTimeout)
	defer cancel()
	var lsn string
	err := poll(ctx, "read the primary's WAL position", func(ctx context.Context) (bool, error) {
		if !c.Primary.Running() {
			return false, permanent(fmt.Errorf("%s is not running", c.Primary.Name))
		}
		conn, err := pgx.Connect(ctx, c.Primary.AdminDSN("postgres"))
		if err != nil {
			return false, err
		}
		defer conn.Close(context.Background())
		err = conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("wait replicated: %w", err)
	}
	for _, r := range c.Replicas {
		if !r.Running() {
			continue
		}
		err := poll(ctx, r.Name+": wait until WAL "+lsn+" is replayed", func(ctx context.Context) (bool, error) {
			return queryBool(ctx, r.AdminDSN("postgres"),
				"SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn)
		})
		if err != nil {
			return fmt.Errorf("wait replicated: %w; log tail of %s:\n%s", err, r.Name, r.LogTail(10))
		}
	}
	return nil
}

// Stop shuts every node down (replicas first, each with a fast shutdown,
// killing what does not stop), kills any server process still working in
// the cluster directory, and removes the directory if StartPostgres made
// it. Calling it again returns the first call's result.
func (c *PostgresCluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *PostgresCluster) stop() error {
	errs := stopNodes(c.Replicas) // replicas first
	if c.Primary != nil {
		errs = append(errs, c.Primary.Stop())
	}
	errs = append(errs, removeClusterFiles(c.Dir, c.postgresExe, c.ownDir, c.ownSockDir)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop postgres cluster: %w", err)
	}
	c.logf("postgres cluster in %s stopped", c.Dir)
	return nil
}

func (c *PostgresCluster) logf(format string, args ...any) {
	if c.opts.Log != nil {
		c.opts.Log(format, args...)
	}
}
