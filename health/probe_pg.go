package health

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/backends"
	"github.com/sluicedb/sluice/topology"
)

// Result is what one successful probe learned about a backend.
type Result struct {
	Role     topology.Role
	Position uint64 // WAL LSN: current on the writer, replayed on a replica
	// Received is the position received and stored: the writer's current
	// WAL LSN / a replica's received LSN (PostgreSQL); the domain-0 GTID
	// sequence of Gtid_IO_Pos on a replica, Position on the writer
	// (MariaDB). See topology.Backend.Received.
	Received uint64
	Lag      time.Duration // replica apply delay; zero when caught up
	// Timeline is a PostgreSQL writer's current timeline ID (every
	// promotion starts a new, higher one); zero on replicas and MariaDB.
	Timeline uint32
}

// Prober probes one backend. Implementations keep a connection between
// probes; Probe must honour ctx's deadline.
type Prober interface {
	Probe(ctx context.Context) (Result, error)
	Close() error
}

// PGProber probes a PostgreSQL backend over a persistent monitoring
// connection: role from pg_is_in_recovery(), position from
// pg_current_wal_lsn() / pg_last_wal_replay_lsn(), received position from
// pg_current_wal_lsn() / pg_last_wal_receive_lsn(), and the age of the last
// replayed transaction (see pgProbeSQL for how it becomes the lag).
type PGProber struct {
	Addr     string
	User     string
	Password string
	Database string // default "postgres"
	TLS      string // sslmode: "disable" (default), "prefer", "require"

	conn *pgconn.PgConn
}

// pgProbeSQL reads the role, the WAL position, and on a replica the age of
// the last replayed transaction. That age is the replica's lag only while
// it is behind the writer; the Monitor zeroes it for replicas that have
// caught up with the writer's position of the same round (an idle primary
// must not make its replicas look stale), and keeps it for replicas that
// fell behind, including ones whose WAL receiver is disconnected.
//
// The fourth column is the received position. On a replica it is the
// greater of pg_last_wal_receive_lsn() and pg_last_wal_replay_lsn(): the
// receive LSN is NULL until the WAL receiver has streamed since the server
// started, and restarts at a segment boundary that may lie before the
// replay LSN when the receiver reconnects; WAL that was replayed was
// received (GREATEST ignores NULLs).
const pgProbeSQL = `SELECT pg_is_in_recovery(),
 CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
 CASE WHEN NOT pg_is_in_recovery() THEN 0
      ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END,
 CASE WHEN pg_is_in_recovery() THEN GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
      ELSE pg_current_wal_lsn() END,
 CASE WHEN pg_is_in_recovery() THEN NULL ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END`

// Probe runs one probe, connecting first if needed.
func (p *PGProber) Probe(ctx context.Context) (Result, error) {
	if p.conn == nil {
		if err := p.connect(ctx); err != nil {
			return Result{}, err
		}
	}
	rr := p.conn.Exec(ctx, pgProbeSQL)
	results, err := rr.ReadAll()
	if err == nil && (len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 5) {
		err = fmt.Errorf("unexpected probe result shape")
	}
	if err != nil {
		p.Close()
		return Result{}, fmt.Errorf("probe %s: %w", p.Addr, err)
	}
	row := results[0].Rows[0]
	var r Result
	if string(row[0]) == "t" {
		r.Role = topology.RoleReader
	} else {
		r.Role = topology.RoleWriter
	}
	if row[1] != nil {
		if r.Position, err = topology.ParseLSN(string(row[1])); err != nil {
			return Result{}, fmt.Errorf("probe %s: %w", p.Addr, err)
		}
	}
	if row[2] != nil {
		secs, err := strconv.ParseFloat(strings.TrimSpace(string(row[2])), 64)
		if err != nil {
			return Result{}, fmt.Errorf("probe %s: lag %q: %w", p.Addr, row[2], err)
		}
		r.Lag = time.Duration(secs * float64(time.Second))
	}
	if row[3] != nil {
		if r.Received, err = topology.ParseLSN(string(row[3])); err != nil {
			return Result{}, fmt.Errorf("probe %s: %w", p.Addr, err)
		}
	}
	if row[4] != nil {
		tl, err := strconv.ParseUint(string(row[4]), 16, 32)
		if err != nil {
			return Result{}, fmt.Errorf("probe %s: timeline %q: %w", p.Addr, row[4], err)
		}
		r.Timeline = uint32(tl)
	}
	return r, nil
}

func (p *PGProber) connect(ctx context.Context) error {
	c, err := pgConnect(ctx, p.Addr, p.User, p.Password, p.Database, p.TLS, "sluice-health", nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", p.Addr, err)
	}
	p.conn = c
	return nil
}

// pgConnect opens a connection to the PostgreSQL server at addr (host:port)
// on database (default "postgres") with sslmode tls (default "disable"),
// announcing appName as application_name. params are further run-time
// parameters.
func pgConnect(ctx context.Context, addr, user, password, database, tls, appName string, params map[string]string) (*pgconn.PgConn, error) {
	if database == "" {
		database = "postgres"
	}
	cfg, err := backends.PGConfig(addr, user, password, database, tls, params)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = appName
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

// Close drops the monitoring connection.
func (p *PGProber) Close() error {
	if p.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := p.conn.Close(ctx)
	p.conn = nil
	return err
}
