package health

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sluicedb/sluice/topology"
)

// MySQLProber probes a MySQL / MariaDB backend over a persistent monitoring
// connection: role from @@read_only (ON = reader), position from the
// GTID state.
//
// Position simplification: a MariaDB GTID position (domain-server-seq, one
// per replication domain) is not a single comparable number in general. The
// prober stores the sequence number of the domain-0 GTID — from
// @@gtid_binlog_pos on a writer, from @@gtid_slave_pos on a replica — as
// topology.Backend.Position. This is exact for the usual single-domain
// setup (domain 0, one primary at a time) and what read-your-writes
// compares against the @@last_gtid captured after a session's write.
// Lag is Seconds_Behind_Master from SHOW SLAVE STATUS (zero when the
// monitoring user may not run it, or the replica is caught up). On a
// replica, Received is the domain-0 sequence number of Gtid_IO_Pos from
// the same SHOW SLAVE STATUS (what the I/O thread has written to the relay
// log), never less than Position; it equals Position on a writer, and
// when SHOW SLAVE STATUS fails or is empty. SHOW SLAVE STATUS needs the
// SLAVE MONITOR privilege (or SUPER / REPLICATION CLIENT on old servers).
type MySQLProber struct {
	Addr     string
	User     string
	Password string
	Database string
	// TLS is go-sql-driver/mysql's tls parameter ("" / "false" for none,
	// "skip-verify", "preferred", ...).
	TLS string

	db *sql.DB
}

// Probe runs one probe, connecting first if needed.
func (p *MySQLProber) Probe(ctx context.Context) (Result, error) {
	if p.db == nil {
		db, err := openMySQL(p.Addr, p.User, p.Password, p.Database, p.TLS)
		if err != nil {
			return Result{}, fmt.Errorf("probe %s: %w", p.Addr, err)
		}
		p.db = db
	}
	var ro int
	var binlogPos, slavePos sql.NullString
	err := p.db.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only, @@GLOBAL.gtid_binlog_pos, @@GLOBAL.gtid_slave_pos").
		Scan(&ro, &binlogPos, &slavePos)
	if err != nil {
		p.Close()
		return Result{}, fmt.Errorf("probe %s: %w", p.Addr, err)
	}
	var r Result
	if ro != 0 {
		r.Role = topology.RoleReader
		r.Position = topology.GTIDSequence(slavePos.String, 0)
		r.Received = r.Position
		if st, err := showSlaveStatus(ctx, p.db); err == nil && st != nil {
			r.Lag = st.lag()
			r.Received = max(r.Position, topology.GTIDSequence(st["Gtid_IO_Pos"], 0))
		}
	} else {
		r.Role = topology.RoleWriter
		r.Position = topology.GTIDSequence(binlogPos.String, 0)
		r.Received = r.Position
	}
	return r, nil
}

// openMySQL returns a handle holding at most one connection to the MySQL /
// MariaDB server at addr. tls is go-sql-driver/mysql's tls parameter
// ("", "false", "true", "skip-verify", "preferred").
func openMySQL(addr, user, password, database, tls string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = addr
	cfg.User = user
	cfg.Passwd = password
	cfg.DBName = database
	cfg.TLSConfig = tls
	cfg.AllowNativePasswords = true
	cfg.Timeout = 5 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return db, nil
}

// slaveStatus is the row of SHOW SLAVE STATUS, by column name (NULL reads
// as "").
type slaveStatus map[string]string

// lag returns Seconds_Behind_Master; NULL (replication stopped: the health
// of the replica is judged by the role and position, not here) yields
// zero.
func (st slaveStatus) lag() time.Duration {
	secs, err := strconv.ParseInt(st["Seconds_Behind_Master"], 10, 64)
	if err != nil || secs <= 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// summary describes the state of replication, for error messages.
func (st slaveStatus) summary() string {
	if st == nil {
		return "no replication configured"
	}
	return fmt.Sprintf("Slave_IO_Running=%s Slave_SQL_Running=%s Gtid_IO_Pos=%q Gtid_Slave_Pos=%q Last_IO_Error=%q Last_SQL_Error=%q",
		st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Gtid_IO_Pos"], st["Gtid_Slave_Pos"], st["Last_IO_Error"], st["Last_SQL_Error"])
}

// mysqlQuerier is what showSlaveStatus needs of *sql.DB and *sql.Conn.
type mysqlQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// showSlaveStatus runs SHOW SLAVE STATUS and returns its (first) row, or
// nil when the server does not replicate.
func showSlaveStatus(ctx context.Context, q mysqlQuerier) (slaveStatus, error) {
	rows, err := q.QueryContext(ctx, "SHOW SLAVE STATUS")
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
	st := make(slaveStatus, len(cols))
	for i, c := range cols {
		st[c] = vals[i].String
	}
	return st, rows.Close()
}

// Close drops the monitoring connection.
func (p *MySQLProber) Close() error {
	if p.db == nil {
		return nil
	}
	err := p.db.Close()
	p.db = nil
	return err
}
