package health

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sluicedb/sluice/topology"
)

// MySQLPromoter promotes and re-points MariaDB replicas that replicate with
// global transaction IDs (MASTER_USE_GTID=slave_pos). Every call opens one
// short-lived connection to the backend it changes and holds the
// server-side lock GET_LOCK('sluice_failover') while it works, so that
// concurrent calls for the same backend (from several Sluice instances)
// run one after the other. The user needs REPLICATION SLAVE ADMIN, SLAVE
// MONITOR and READ_ONLY ADMIN (or SUPER), and SYSTEM VARIABLES ADMIN for
// the semi-synchronous settings.
//
// Semi-synchronous replication: Promote cannot ask the old primary (it is
// usually gone), so it takes the candidate's own configuration as the
// hint: if the candidate had rpl_semi_sync_slave_enabled=ON (it was a
// semi-synchronous replica) and the server has rpl_semi_sync_master_enabled,
// Promote turns the latter ON before it makes the server writable. Commits
// on the new writer then wait (up to rpl_semi_sync_master_timeout, after
// which the server falls back to asynchronous replication) until a replica
// — re-pointed with Follow, which leaves rpl_semi_sync_slave_enabled as it
// was — acknowledges them. Nothing else about semi-sync is changed.
type MySQLPromoter struct {
	User     string
	Password string
	TLS      string // go-sql-driver/mysql tls parameter: "" / "false" (default), "true", "skip-verify", "preferred"
}

// promoteLockName is the GET_LOCK name that serialises Promote and Follow
// calls on one server.
const promoteLockName = "sluice_failover"

// Promote makes b writable. On a replica it stops the I/O thread, waits
// (bounded by ctx) until the SQL thread has applied everything the I/O
// thread received (MASTER_GTID_WAIT on Gtid_IO_Pos; a stopped SQL thread
// without an error is started for that, one stopped by an error fails the
// promotion), then runs STOP SLAVE, RESET SLAVE ALL, the semi-sync step
// described on MySQLPromoter, and SET GLOBAL read_only = OFF. If the wait
// fails the I/O thread is started again, so a replica that could not be
// promoted keeps replicating. A server without replication configuration
// that is already read_only=OFF is left alone: promoting it again succeeds.
func (p *MySQLPromoter) Promote(ctx context.Context, b topology.Backend) error {
	err := p.withLockedConn(ctx, b, func(conn *sql.Conn) error { return p.promote(ctx, conn, b) })
	if err != nil {
		return fmt.Errorf("promote %s: %w", backendLabel(b), err)
	}
	return nil
}

func (p *MySQLPromoter) promote(ctx context.Context, conn *sql.Conn, b topology.Backend) error {
	var ro int
	if err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
		return err
	}
	st, err := showSlaveStatus(ctx, conn)
	if err != nil {
		return err
	}
	if st == nil && ro == 0 {
		return nil // already the writer
	}
	if st != nil {
		if err := drainRelayLog(ctx, conn, st); err != nil {
			// Keep replicating from whatever the old primary is.
			p.restartIOThread(conn, b)
			return err
		}
		for _, s := range []string{"STOP SLAVE", "RESET SLAVE ALL"} {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", strings.ToLower(s), err)
			}
		}
	}
	if err := enableSemiSyncMaster(ctx, conn); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "SET GLOBAL read_only = OFF"); err != nil {
		return fmt.Errorf("set global read_only = off: %w", err)
	}
	return nil
}

// drainRelayLog stops the I/O thread and waits until the SQL thread has
// applied everything it had received.
func drainRelayLog(ctx context.Context, conn *sql.Conn, st slaveStatus) error {
	if st["Slave_IO_Running"] != "No" {
		if _, err := conn.ExecContext(ctx, "STOP SLAVE IO_THREAD"); err != nil {
			return fmt.Errorf("stop slave io_thread: %w", err)
		}
	}
	st, err := showSlaveStatus(ctx, conn)
	if err != nil {
		return err
	}
	pos := ""
	if st != nil {
		pos = st["Gtid_IO_Pos"]
	}
	if pos == "" {
		return nil // nothing received since the server started
	}
	for {
		if st["Slave_SQL_Running"] != "Yes" {
			if st["Last_SQL_Errno"] != "" && st["Last_SQL_Errno"] != "0" {
				return fmt.Errorf("the SQL thread stopped with an error before applying %s: %s", pos, st.summary())
			}
			if _, err := conn.ExecContext(ctx, "START SLAVE SQL_THREAD"); err != nil {
				return fmt.Errorf("start slave sql_thread: %w", err)
			}
		}
		// Wait in short steps, to notice a failing SQL thread early.
		var res sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 1)", pos).Scan(&res); err != nil {
			return fmt.Errorf("wait until %s is applied: %w", pos, err)
		}
		if res.Valid && res.Int64 == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait until %s is applied: %w", pos, err)
		}
		if st, err = showSlaveStatus(ctx, conn); err != nil {
			return err
		}
		if st == nil {
			return errors.New("replication configuration vanished while waiting for the SQL thread")
		}
	}
}

// restartIOThread starts the I/O thread again after a failed promotion,
// on a new connection if conn broke (a cancelled query closes it).
func (p *MySQLPromoter) restartIOThread(conn *sql.Conn, b topology.Backend) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, "START SLAVE IO_THREAD"); err == nil {
		return
	}
	db, err := openMySQL(b.Addr, p.User, p.Password, "", p.TLS)
	if err != nil {
		return
	}
	defer db.Close()
	db.ExecContext(ctx, "START SLAVE IO_THREAD")
}

// enableSemiSyncMaster turns rpl_semi_sync_master_enabled on when the
// server was a semi-synchronous replica and has that variable (see
// MySQLPromoter).
func enableSemiSyncMaster(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('rpl_semi_sync_slave_enabled', 'rpl_semi_sync_master_enabled')")
	if err != nil {
		return fmt.Errorf("read semi-sync settings: %w", err)
	}
	vars := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			rows.Close()
			return fmt.Errorf("read semi-sync settings: %w", err)
		}
		vars[strings.ToLower(name)] = strings.ToUpper(value)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read semi-sync settings: %w", err)
	}
	master, ok := vars["rpl_semi_sync_master_enabled"]
	if !ok || master == "ON" || vars["rpl_semi_sync_slave_enabled"] != "ON" {
		return nil
	}
	if _, err := conn.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled = ON"); err != nil {
		return fmt.Errorf("set global rpl_semi_sync_master_enabled = on: %w", err)
	}
	return nil
}

// Follow re-points replica r to w: STOP SLAVE; CHANGE MASTER TO
// MASTER_HOST, MASTER_PORT (w's), MASTER_USE_GTID = slave_pos; START
// SLAVE. The replication user and password stay those r used so far, and
// r continues after the last transaction it applied (gtid_slave_pos);
// relay-log events it had received but not applied are fetched again from
// w, which has them when it was chosen as the replica with the highest
// Received. A replica that already replicates from w with GTIDs and both
// threads running is left alone. Follow does not wait until r has caught
// up. It fails for a server without replication configuration (there are
// no credentials to reuse) and for one that accepts writes (read_only=OFF:
// it may hold transactions w lacks).
func (p *MySQLPromoter) Follow(ctx context.Context, r, w topology.Backend) error {
	err := p.withLockedConn(ctx, r, func(conn *sql.Conn) error { return mysqlFollow(ctx, conn, r, w) })
	if err != nil {
		return fmt.Errorf("%s: follow %s: %w", backendLabel(r), backendLabel(w), err)
	}
	return nil
}

func mysqlFollow(ctx context.Context, conn *sql.Conn, r, w topology.Backend) error {
	if r.Addr == w.Addr {
		return errors.New("a backend cannot follow itself")
	}
	host, portText, err := net.SplitHostPort(w.Addr)
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return fmt.Errorf("port of %s: %w", w.Addr, err)
	}
	if host == "" || strings.ContainsAny(host, "'\\\x00\"`") {
		return fmt.Errorf("unusable host %q", host)
	}
	var ro int
	if err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
		return err
	}
	if ro == 0 {
		return errors.New("accepts writes (read_only=OFF): a writer must be re-seeded before it can follow")
	}
	st, err := showSlaveStatus(ctx, conn)
	if err != nil {
		return err
	}
	if st == nil {
		return errors.New("no replication configured: no replication user and password to reuse")
	}
	if st["Master_Host"] == host && st["Master_Port"] == portText && strings.EqualFold(st["Using_Gtid"], "Slave_Pos") &&
		st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" {
		return nil
	}
	stmts := []string{
		"STOP SLAVE",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST = '%s', MASTER_PORT = %d, MASTER_USE_GTID = slave_pos", host, port),
		"START SLAVE",
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// withLockedConn runs f on a new connection to b while holding the
// promotion lock of b's server.
func (p *MySQLPromoter) withLockedConn(ctx context.Context, b topology.Backend, f func(*sql.Conn) error) error {
	db, err := openMySQL(b.Addr, p.User, p.Password, "", p.TLS)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	secs := waitSeconds(ctx, defaultPromoteWait)
	if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT GET_LOCK('%s', %d)", promoteLockName, secs)).Scan(&got); err != nil {
		return fmt.Errorf("get_lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("get_lock(%q): another failover step held the lock for %d s", promoteLockName, secs)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn.ExecContext(rctx, "DO RELEASE_LOCK('"+promoteLockName+"')")
	}()
	return f(conn)
}
