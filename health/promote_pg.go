package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/topology"
)

// PGPromoter promotes and re-points PostgreSQL streaming replicas. Every
// call opens one short-lived connection (application_name
// sluice-failover) to the backend it changes. The user must be a superuser,
// or have been granted EXECUTE on pg_promote, ALTER SYSTEM on
// primary_conninfo, EXECUTE on pg_reload_conf and pg_read_all_settings.
type PGPromoter struct {
	User     string
	Password string
	Database string // default "postgres"
	TLS      string // sslmode: "disable" (default), "prefer", "require"
}

// Promote promotes b with pg_promote(true, n), n being the whole seconds
// left until ctx's deadline (60 without a deadline). The startup process
// replays all WAL the replica has received before it leaves recovery, so
// nothing the replica received is lost. A backend that is not in recovery
// is already a writer: Promote succeeds without doing anything, also when
// a concurrent promotion (from another Sluice instance) finished first.
func (p *PGPromoter) Promote(ctx context.Context, b topology.Backend) error {
	if err := p.promote(ctx, b); err != nil {
		return fmt.Errorf("promote %s: %w", backendLabel(b), err)
	}
	return nil
}

func (p *PGPromoter) promote(ctx context.Context, b topology.Backend) error {
	conn, err := p.connect(ctx, b)
	if err != nil {
		return err
	}
	defer closePG(conn)
	inRecovery, err := pgQueryValue(ctx, conn, "SELECT pg_is_in_recovery()")
	if err != nil {
		return err
	}
	if inRecovery == "f" {
		return nil
	}
	secs := waitSeconds(ctx, defaultPromoteWait)
	done, err := pgQueryValue(ctx, conn, fmt.Sprintf("SELECT pg_promote(true, %d)", secs))
	if err != nil {
		// pg_promote fails with "recovery is not in progress" (55000) when
		// a concurrent promotion finished in between.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55000" {
			if again, qerr := pgQueryValue(ctx, conn, "SELECT pg_is_in_recovery()"); qerr == nil && again == "f" {
				return nil
			}
		}
		return fmt.Errorf("pg_promote: %w", err)
	}
	if done != "t" {
		if again, qerr := pgQueryValue(ctx, conn, "SELECT pg_is_in_recovery()"); qerr == nil && again == "f" {
			return nil
		}
		return fmt.Errorf("pg_promote: still in recovery after %d s (the promotion may yet complete)", secs)
	}
	return nil
}

// Follow re-points replica r to w: it reads r's primary_conninfo, replaces
// the host and port in it with w's (dropping any hostaddr and any further
// hosts of a multi-host string; user, password, application_name and the
// other settings stay), stores it with ALTER SYSTEM SET primary_conninfo
// and reloads the configuration, upon which the replica restarts its WAL
// receiver. The replica then follows w's new timeline
// (recovery_target_timeline 'latest', the default), which works as long as
// it has not replayed WAL beyond the point where w was promoted — true when
// w was chosen as the replica with the highest Received. A
// primary_slot_name is kept, so that slot must exist on w. Follow does not
// wait until the replica streams. It fails for a backend that is not in
// recovery: a former writer must be rewound (pg_rewind) and restarted as a
// standby first.
func (p *PGPromoter) Follow(ctx context.Context, r, w topology.Backend) error {
	if err := p.follow(ctx, r, w); err != nil {
		return fmt.Errorf("%s: follow %s: %w", backendLabel(r), backendLabel(w), err)
	}
	return nil
}

func (p *PGPromoter) follow(ctx context.Context, r, w topology.Backend) error {
	if r.Addr == w.Addr {
		return errors.New("a backend cannot follow itself")
	}
	host, port, err := net.SplitHostPort(w.Addr)
	if err != nil {
		return err
	}
	conn, err := p.connect(ctx, r)
	if err != nil {
		return err
	}
	defer closePG(conn)
	inRecovery, err := pgQueryValue(ctx, conn, "SELECT pg_is_in_recovery()")
	if err != nil {
		return err
	}
	if inRecovery != "t" {
		return errors.New("not in recovery: a writer must be rewound and restarted as a standby before it can follow")
	}
	cur, err := pgQueryValue(ctx, conn, "SELECT current_setting('primary_conninfo')")
	if err != nil {
		return err
	}
	if strings.TrimSpace(cur) == "" {
		return errors.New("primary_conninfo is empty: no replication credentials to re-point")
	}
	next, err := rewriteConninfo(cur, host, port)
	if err != nil {
		return fmt.Errorf("primary_conninfo: %w", err)
	}
	lit, err := pgQuoteLiteral(next)
	if err != nil {
		return fmt.Errorf("primary_conninfo: %w", err)
	}
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET primary_conninfo = "+lit).ReadAll(); err != nil {
		return fmt.Errorf("alter system set primary_conninfo: %w", err)
	}
	if _, err := pgQueryValue(ctx, conn, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("pg_reload_conf: %w", err)
	}
	return nil
}

func (p *PGPromoter) connect(ctx context.Context, b topology.Backend) (*pgconn.PgConn, error) {
	// No statement_timeout of the role may cut pg_promote's wait short.
	return pgConnect(ctx, b.Addr, p.User, p.Password, p.Database, p.TLS, "sluice-failover",
		map[string]string{"statement_timeout": "0"})
}

func closePG(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}

// pgQueryValue runs a query returning one row of one column and returns
// its text ("" for NULL).
func pgQueryValue(ctx context.Context, conn *pgconn.PgConn, sql string) (string, error) {
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 1 {
		return "", fmt.Errorf("%s: unexpected result shape", sql)
	}
	return string(results[0].Rows[0][0]), nil
}

// pgQuoteLiteral renders s as an SQL string literal, whatever
// standard_conforming_strings is: '...' with quotes doubled, or E'...' with
// backslashes doubled too when s holds a backslash.
func pgQuoteLiteral(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("string contains a NUL byte")
	}
	q := strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return "E'" + strings.ReplaceAll(q, `\`, `\\`) + "'", nil
	}
	return "'" + q + "'", nil
}

// conninfoParam is one keyword = value pair of a libpq connection string.
type conninfoParam struct{ key, val string }

// parseConninfo parses a libpq keyword/value connection string
// ("host=a port=5432 password='x y'") the way libpq does: pairs separated
// by whitespace, optional whitespace around "=", values either single-quoted
// (a backslash escapes the next character, so \' and \\) or running to the
// next whitespace (a backslash escapes the next character there too).
func parseConninfo(s string) ([]conninfoParam, error) {
	var out []conninfoParam
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) || s[i] != '=' || key == "" {
			return nil, fmt.Errorf("missing \"=\" after %q in connection info string", key)
		}
		i++
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				i++
				if c == '\\' {
					if i < len(s) {
						val.WriteByte(s[i])
						i++
					}
					continue
				}
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, errors.New("unterminated quoted string in connection info string")
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				c := s[i]
				i++
				if c == '\\' {
					if i == len(s) {
						break
					}
					c = s[i]
					i++
				}
				val.WriteByte(c)
			}
		}
		out = append(out, conninfoParam{key, val.String()})
	}
}

// formatConninfo renders params as a libpq keyword/value connection string,
// quoting values that are empty or hold whitespace, quotes or backslashes.
func formatConninfo(params []conninfoParam) string {
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		if p.val != "" && !strings.ContainsAny(p.val, " \t\n\r\f\v'\\") {
			b.WriteString(p.val)
			continue
		}
		b.WriteByte('\'')
		for j := 0; j < len(p.val); j++ {
			if c := p.val[j]; c == '\'' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(p.val[j])
		}
		b.WriteByte('\'')
	}
	return b.String()
}

// rewriteConninfo returns the libpq connection string s (keyword/value or
// postgres:// URI form) with its host and port replaced by host and port.
// Any hostaddr is dropped (it would take precedence over host), as are
// further occurrences of host and port; everything else is kept, in order.
func rewriteConninfo(s, host, port string) (string, error) {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "postgresql://") || strings.HasPrefix(t, "postgres://") {
		u, err := url.Parse(t)
		if err != nil {
			return "", err
		}
		u.Host = net.JoinHostPort(host, port)
		if q := u.Query(); q.Has("host") || q.Has("hostaddr") || q.Has("port") {
			q.Del("host")
			q.Del("hostaddr")
			q.Del("port")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	params, err := parseConninfo(s)
	if err != nil {
		return "", err
	}
	out := make([]conninfoParam, 0, len(params)+2)
	var haveHost, havePort bool
	for _, p := range params {
		switch p.key {
		case "hostaddr":
			continue
		case "host":
			if haveHost {
				continue
			}
			haveHost, p.val = true, host
		case "port":
			if havePort {
				continue
			}
			havePort, p.val = true, port
		}
		out = append(out, p)
	}
	if !haveHost {
		out = append(out, conninfoParam{"host", host})
	}
	if !havePort {
		out = append(out, conninfoParam{"port", port})
	}
	return formatConninfo(out), nil
}
