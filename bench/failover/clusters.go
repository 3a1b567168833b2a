package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/integration/localcluster"
)

// Credentials of the benchmark's one user: a superuser, so that Sluice can
// promote with it (clusters.X.admin_user) and the clients can use it too.
const (
	benchUser     = "bench"
	benchPassword = "bench"
	benchDB       = "app"
)

// node is one database server as the benchmark sees it.
type node struct {
	name, addr string
}

// dbCluster is a primary with two replicas, PostgreSQL or MariaDB.
type dbCluster interface {
	nodes() []node
	primary() string
	killPrimary() error
	startPrimary(ctx context.Context) error
	createTable(ctx context.Context) error
	// ids returns every id in bench_rows on the named node, read directly
	// (not through Sluice) as the administrator.
	ids(ctx context.Context, name string) (map[int64]struct{}, error)
	// idsAbove returns the ids greater than id on the named node.
	idsAbove(ctx context.Context, name string, id int64) ([]int64, error)
	logTail(name string, lines int) string
	stop() error
}

// ---------------------------------------------------------------- PostgreSQL

type pgCluster struct{ c *localcluster.PostgresCluster }

func startPG(ctx context.Context, logf func(string, ...any)) (dbCluster, error) {
	c, err := localcluster.StartPostgres(ctx, localcluster.PostgresOptions{
		Replicas:    2,
		Synchronous: true,
		Users:       []localcluster.User{{Name: benchUser, Password: benchPassword, Superuser: true}},
		Databases:   []string{benchDB},
		Log:         logf,
	})
	if err != nil {
		return nil, err
	}
	return &pgCluster{c: c}, nil
}

func (p *pgCluster) node(name string) *localcluster.PostgresNode {
	for _, n := range p.c.Nodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (p *pgCluster) nodes() []node {
	var out []node
	for _, n := range p.c.Nodes() {
		out = append(out, node{n.Name, n.Addr()})
	}
	return out
}

func (p *pgCluster) primary() string                        { return p.c.Primary.Name }
func (p *pgCluster) killPrimary() error                     { return p.c.Primary.Kill() }
func (p *pgCluster) startPrimary(ctx context.Context) error { return p.c.Primary.Start(ctx) }
func (p *pgCluster) stop() error                            { return p.c.Stop() }

func (p *pgCluster) logTail(name string, lines int) string {
	if n := p.node(name); n != nil {
		return n.LogTail(lines)
	}
	return ""
}

func (p *pgCluster) createTable(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.c.Primary.DSN(benchUser, benchPassword, benchDB))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE bench_rows (id bigint PRIMARY KEY, inst int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"); err != nil {
		return err
	}
	return p.c.WaitReplicated(ctx)
}

func (p *pgCluster) query(ctx context.Context, name, q string, args ...any) ([]int64, error) {
	n := p.node(name)
	if n == nil {
		return nil, fmt.Errorf("no node %q", name)
	}
	conn, err := pgx.Connect(ctx, n.AdminDSN(benchDB))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

func (p *pgCluster) ids(ctx context.Context, name string) (map[int64]struct{}, error) {
	ids, err := p.query(ctx, name, "SELECT id FROM bench_rows")
	return toSet(ids), err
}

func (p *pgCluster) idsAbove(ctx context.Context, name string, id int64) ([]int64, error) {
	return p.query(ctx, name, "SELECT id FROM bench_rows WHERE id > $1 ORDER BY id", id)
}

// ---------------------------------------------------------------- MariaDB

type myCluster struct{ c *localcluster.MariaDBCluster }

func startMy(ctx context.Context, logf func(string, ...any)) (dbCluster, error) {
	if _, err := localcluster.FindMariaDB(); err != nil {
		return nil, err
	}
	c, err := localcluster.StartMariaDB(ctx, localcluster.MariaDBOptions{
		Replicas:  2,
		SemiSync:  true,
		Users:     []localcluster.User{{Name: benchUser, Password: benchPassword, Superuser: true}},
		Databases: []string{benchDB},
		Log:       logf,
	})
	if err != nil {
		return nil, err
	}
	return &myCluster{c: c}, nil
}

func (m *myCluster) node(name string) *localcluster.MariaDBNode {
	for _, n := range m.c.Nodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (m *myCluster) nodes() []node {
	var out []node
	for _, n := range m.c.Nodes() {
		out = append(out, node{n.Name, n.Addr()})
	}
	return out
}

func (m *myCluster) primary() string                        { return m.c.Primary.Name }
func (m *myCluster) killPrimary() error                     { return m.c.Primary.Kill() }
func (m *myCluster) startPrimary(ctx context.Context) error { return m.c.Primary.Start(ctx) }
func (m *myCluster) stop() error                            { return m.c.Stop() }

func (m *myCluster) logTail(name string, lines int) string {
	if n := m.node(name); n != nil {
		return n.LogTail(lines)
	}
	return ""
}

func (m *myCluster) createTable(ctx context.Context) error {
	db, err := sql.Open("mysql", m.c.Primary.DSN(benchUser, benchPassword, benchDB))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE bench_rows (id BIGINT PRIMARY KEY, inst INT NOT NULL, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"); err != nil {
		return err
	}
	return m.c.WaitReplicated(ctx)
}

func (m *myCluster) query(ctx context.Context, name, q string, args ...any) ([]int64, error) {
	n := m.node(name)
	if n == nil {
		return nil, fmt.Errorf("no node %q", name)
	}
	db, err := sql.Open("mysql", n.AdminDSN(benchDB))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (m *myCluster) ids(ctx context.Context, name string) (map[int64]struct{}, error) {
	ids, err := m.query(ctx, name, "SELECT id FROM bench_rows")
	return toSet(ids), err
}

func (m *myCluster) idsAbove(ctx context.Context, name string, id int64) ([]int64, error) {
	return m.query(ctx, name, "SELECT id FROM bench_rows WHERE id > ? ORDER BY id", id)
}

func toSet(ids []int64) map[int64]struct{} {
	s := make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		s[id] = struct{}{}
	}
	return s
}

// ---------------------------------------------------------------- clients

// session is one client connection through a Sluice listener.
type session interface {
	insert(ctx context.Context, id int64, inst int) error
	read(ctx context.Context) error
	// broken reports whether the connection is unusable after an error
	// (the caller then dials again).
	broken() bool
	close()
}

type dialFunc func(ctx context.Context, addr string) (session, error)

type pgSession struct{ c *pgx.Conn }

func dialPG(ctx context.Context, addr string) (session, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&application_name=sluice-bench-failover", benchUser, benchPassword, addr, benchDB))
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = 5 * time.Second
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &pgSession{c: c}, nil
}

func (s *pgSession) insert(ctx context.Context, id int64, inst int) error {
	_, err := s.c.Exec(ctx, "INSERT INTO bench_rows (id, inst) VALUES ($1, $2)", id, inst)
	return err
}

func (s *pgSession) read(ctx context.Context) error {
	var n int64
	return s.c.QueryRow(ctx, "SELECT count(*) FROM bench_rows").Scan(&n)
}

func (s *pgSession) broken() bool { return s.c.IsClosed() }
func (s *pgSession) close()       { _ = s.c.Close(context.Background()) }

// mySession is a database/sql pool of one connection, as an application
// would use go-sql-driver/mysql: the pool replaces a broken connection by
// itself.
type mySession struct{ db *sql.DB }

func dialMy(ctx context.Context, addr string) (session, error) {
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = addr
	cfg.User = benchUser
	cfg.Passwd = benchPassword
	cfg.DBName = benchDB
	cfg.AllowNativePasswords = true
	cfg.InterpolateParams = true // one text statement per insert
	cfg.Timeout = 5 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return &mySession{db: db}, nil
}

func (s *mySession) insert(ctx context.Context, id int64, inst int) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO bench_rows (id, inst) VALUES (?, ?)", id, inst)
	return err
}

func (s *mySession) read(ctx context.Context) error {
	var n int64
	return s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM bench_rows").Scan(&n)
}

func (s *mySession) broken() bool { return false }
func (s *mySession) close()       { s.db.Close() }
