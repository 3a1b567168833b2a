package health

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
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
// monitoring user may not run it, or the replica is caught up).
type MySQLProber struct {
	Addr     string
	User     string
	Password string
	Database string

	db *sql.DB
}

// Probe runs one probe, connecting first if needed.
func (p *MySQLProber) Probe(ctx context.Context) (Result, error) {
	if p.db == nil {
		cfg := mysql.NewConfig()
		cfg.Net = "tcp"
		cfg.Addr = p.Addr
		cfg.User = p.User
		cfg.Passwd = p.Password
		cfg.DBName = p.Database
		cfg.AllowNativePasswords = true
		cfg.Timeout = 5 * time.Second
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return Result{}, fmt.Errorf("probe %s: %w", p.Addr, err)
		}
		p.db = sql.OpenDB(conn)
		p.db.SetMaxOpenConns(1)
		p.db.SetMaxIdleConns(1)
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
		r.Position = GTIDSequence(slavePos.String, 0)
		r.Lag = p.replicaLag(ctx)
	} else {
		r.Role = topology.RoleWriter
		r.Position = GTIDSequence(binlogPos.String, 0)
	}
	return r, nil
}

// replicaLag reads Seconds_Behind_Master; errors and NULL (replication
// stopped: the health of the replica is judged by the role and position,
// not here) yield zero.
func (p *MySQLProber) replicaLag(ctx context.Context) time.Duration {
	rows, err := p.db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return 0
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil || !rows.Next() {
		return 0
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if rows.Scan(ptrs...) != nil {
		return 0
	}
	for i, c := range cols {
		if c == "Seconds_Behind_Master" && vals[i] != nil {
			secs, err := strconv.ParseInt(string(vals[i]), 10, 64)
			if err == nil && secs > 0 {
				return time.Duration(secs) * time.Second
			}
		}
	}
	return 0
}

// GTIDSequence returns the sequence number of the GTID of replication
// domain domain in a MariaDB GTID position ("0-1-42,1-2-7"), 0 when the
// domain is absent or the text malformed.
func GTIDSequence(pos string, domain uint32) uint64 {
	for _, g := range strings.Split(pos, ",") {
		parts := strings.Split(strings.TrimSpace(g), "-")
		if len(parts) != 3 {
			continue
		}
		d, err := strconv.ParseUint(parts[0], 10, 32)
		if err != nil || uint32(d) != domain {
			continue
		}
		seq, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			return 0
		}
		return seq
	}
	return 0
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
