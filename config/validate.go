package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicedb/sluice/internal/mysqlwire"
)

// problems collects validation errors, each prefixed with its key path.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// oneOf checks an enum value.
func (p *problems) oneOf(key, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	q := make([]string, len(allowed))
	for i, a := range allowed {
		q[i] = strconv.Quote(a)
	}
	if val == "" {
		p.add(key, "required, one of %s", strings.Join(q, ", "))
		return
	}
	p.add(key, "invalid value %q, want one of %s", val, strings.Join(q, ", "))
}

func (p *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		p.add(key, "must be a positive duration, got %s", d)
	}
}

// writerFunctionPattern: a bare or schema-qualified function name.
var writerFunctionPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)

// Validate checks the whole configuration and returns every problem found,
// joined with errors.Join, each naming its key path, for example
// `clusters.main-pg.backends[1].address: missing port in address "db1"`.
// It expects defaults to be applied (Load does that): an empty enum is
// reported as missing. It reads TLS files but opens no sockets (see
// CheckPorts).
func (c *Config) Validate() error {
	return c.validate(nil)
}

// validate is Validate, without the password problems of the users whose
// password_env Load already reported.
func (c *Config) validate(passwordReported map[int]bool) error {
	var p problems

	// Clusters, sorted by name for stable messages.
	names := make([]string, 0, len(c.Clusters))
	for name := range c.Clusters {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(c.Clusters) == 0 {
		p.add("clusters", "at least one cluster is required")
	}
	for _, name := range names {
		c.validateCluster(&p, name, c.Clusters[name])
	}

	// Listeners.
	if len(c.Listeners) == 0 {
		p.add("listeners", "at least one listener is required")
	}
	listenerNames := map[string]int{}
	var binds []bind
	for i, l := range c.Listeners {
		key := fmt.Sprintf("listeners[%d]", i)
		switch prev, dup := listenerNames[l.Name]; {
		case l.Name == "":
			p.add(key+".name", "required")
		case dup:
			p.add(key+".name", "%q is already used by listeners[%d]", l.Name, prev)
		default:
			listenerNames[l.Name] = i
		}
		if b, ok := checkListenAddr(&p, key+".address", l.Address); ok {
			binds = append(binds, b)
		}
		var cl Cluster
		var clusterOK bool
		if l.Cluster == "" {
			p.add(key+".cluster", "required")
		} else if cl, clusterOK = c.Clusters[l.Cluster]; !clusterOK {
			p.add(key+".cluster", "unknown cluster %q (not in clusters)", l.Cluster)
		}
		p.oneOf(key+".route", l.Route, RouteAuto, RouteWriter, RouteReader)
		if l.Protocol != "" || clusterOK { // else the unknown cluster says it all
			p.oneOf(key+".protocol", l.Protocol, ProtocolPostgres, ProtocolMySQL)
		}
		if clusterOK && l.Protocol != "" && cl.Protocol != "" && l.Protocol != cl.Protocol {
			p.add(key+".protocol", "%q does not match clusters.%s.protocol %q", l.Protocol, l.Cluster, cl.Protocol)
		}
		switch l.Protocol {
		case ProtocolPostgres:
			p.oneOf(key+".auth", l.Auth, AuthSCRAMSHA256, AuthMD5, AuthPassword)
		case ProtocolMySQL:
			p.oneOf(key+".auth", l.Auth, AuthCachingSHA2Password, AuthMySQLNativePassword)
		}
		validateTLS(&p, key+".tls", l.TLS)
		if l.Protocol == ProtocolPostgres {
			if l.LocalInfile {
				p.add(key+".local_infile", "only for mysql listeners")
			}
			if l.RSAKey != "" {
				p.add(key+".rsa_key", "only for mysql listeners")
			}
		}
		if l.RSAKey != "" {
			if b, err := os.ReadFile(l.RSAKey); err != nil {
				p.add(key+".rsa_key", "%v", err)
			} else if _, err := mysqlwire.ParsePrivateKeyPEM(b); err != nil {
				p.add(key+".rsa_key", "%q: %v", l.RSAKey, err)
			}
		}
		if l.Auth == AuthPassword && l.Protocol == ProtocolPostgres && !l.TLS.Enabled() {
			p.add(key+".auth", "%q sends passwords in clear text and is only accepted over TLS: set %s.tls.cert and %s.tls.key", l.Auth, key, key)
		}
	}

	// Users.
	if len(c.Users) == 0 {
		p.add("users", "at least one user is required")
	}
	userNames := map[string]int{}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		if u.Pool.MaxClientConns < 0 {
			p.add(key+".pool.max_client_conns", "must be 0 (no limit) or more, got %d", u.Pool.MaxClientConns)
		}
		validateUserPool(&p, key+".pool", u.Pool)
		switch prev, dup := userNames[u.Name]; {
		case u.Name == "":
			p.add(key+".name", "required")
		case dup:
			p.add(key+".name", "%q is already used by users[%d]", u.Name, prev)
		default:
			userNames[u.Name] = i
		}
		switch {
		case u.Password != "" || passwordReported[i]:
		case u.PasswordEnv != "":
			p.add(key+".password_env", "environment variable %s was not read into password (Load does that)", u.PasswordEnv)
		default:
			p.add(key, "one of password or password_env is required")
		}
	}
	for _, name := range names {
		if mu := c.Clusters[name].MonitorUser; mu != "" && len(c.Users) > 0 {
			if _, ok := c.User(mu); !ok {
				p.add("clusters."+name+".monitor_user", "unknown user %q (not in users)", mu)
			}
		}
		if n := c.Clusters[name].Pool.MaxClientConns; n < 0 {
			p.add("clusters."+name+".pool.max_client_conns", "must be 0 (no limit) or more, got %d", n)
		}
		for i, u := range c.Users {
			checkUserMinIdle(&p, fmt.Sprintf("users[%d].pool", i), "clusters."+name+".pool", name, c.Clusters[name].Pool, u.Pool)
		}
		if au := c.Clusters[name].AdminUser; au != "" && len(c.Users) > 0 {
			if _, ok := c.User(au); !ok {
				p.add("clusters."+name+".admin_user", "unknown user %q (not in users)", au)
			}
		}
	}

	// Health.
	p.positive("failover.hold", c.Failover.Hold)
	p.positive("health.interval", c.Health.Interval)
	p.positive("health.timeout", c.Health.Timeout)
	if c.Health.Failures < 1 {
		p.add("health.failures", "must be at least 1, got %d", c.Health.Failures)
	}
	if c.Health.Successes < 1 {
		p.add("health.successes", "must be at least 1, got %d", c.Health.Successes)
	}

	// Gossip.
	g := c.Gossip
	if g.Bind != "" {
		if b, ok := checkListenAddr(&p, "gossip.bind", g.Bind); ok {
			binds = append(binds, b)
			if b.host != "" && net.ParseIP(b.host) == nil {
				p.add("gossip.bind", "host %q must be an IP address", b.host)
			}
		}
	} else {
		if g.Advertise != "" {
			p.add("gossip.advertise", "set but gossip is off: set gossip.bind too")
		}
		if len(g.Join) > 0 {
			p.add("gossip.join", "set but gossip is off: set gossip.bind too")
		}
	}
	if g.Advertise != "" {
		checkDialAddr(&p, "gossip.advertise", g.Advertise)
	}
	for i, j := range g.Join {
		checkDialAddr(&p, fmt.Sprintf("gossip.join[%d]", i), j)
	}
	if g.FleetSize < 1 {
		p.add("gossip.fleet_size", "must be at least 1, got %d", g.FleetSize)
	}
	if _, err := g.Key(); err != nil {
		p.add("gossip.secret_key", "%v", err)
	}

	// HTTP.
	if c.HTTP.Address != "" {
		if b, ok := checkListenAddr(&p, "http.address", c.HTTP.Address); ok {
			binds = append(binds, b)
		}
	}
	checkBindConflicts(&p, binds)

	// Server.
	s := c.Server
	if s.MaxMessageSize <= 0 {
		p.add("server.max_message_size", "must be positive, got %d", s.MaxMessageSize)
	}
	if s.AuthFailureDelay < 0 {
		p.add("server.auth_failure_delay", "must not be negative (0 = no delay), got %s", s.AuthFailureDelay)
	}
	p.positive("server.connect_timeout", s.ConnectTimeout)
	p.positive("server.shutdown_timeout", s.ShutdownTimeout)
	p.positive("server.startup_timeout", s.StartupTimeout)

	// Log.
	p.oneOf("log.level", c.Log.Level, LogDebug, LogInfo, LogWarn, LogError)
	p.oneOf("log.format", c.Log.Format, LogText, LogJSON)

	return errors.Join(p...)
}

func (c *Config) validateCluster(p *problems, name string, cl Cluster) {
	key := "clusters." + name
	if !namePattern.MatchString(name) {
		p.add(key, "invalid name %q: %s", name, nameRule)
	}
	p.oneOf(key+".protocol", cl.Protocol, ProtocolPostgres, ProtocolMySQL)
	if len(cl.Backends) == 0 {
		p.add(key+".backends", "at least one backend is required")
	}
	addrs, bnames := map[string]int{}, map[string]int{}
	for i, b := range cl.Backends {
		bkey := fmt.Sprintf("%s.backends[%d]", key, i)
		if checkDialAddr(p, bkey+".address", b.Address) {
			norm := strings.ToLower(b.Address)
			if prev, dup := addrs[norm]; dup {
				p.add(bkey+".address", "%q is already used by %s.backends[%d]", b.Address, key, prev)
			} else {
				addrs[norm] = i
			}
		}
		switch prev, dup := bnames[b.Name]; {
		case b.Name == "":
			if b.Address != "" {
				p.add(bkey+".name", "required")
			}
		case dup:
			p.add(bkey+".name", "%q is already used by %s.backends[%d]", b.Name, key, prev)
		default:
			bnames[b.Name] = i
		}
	}
	p.oneOf(key+".consistency", cl.Consistency, ConsistencySession, ConsistencyEventual)
	p.oneOf(key+".reader_balance", cl.ReaderBalance, BalanceRoundRobin, BalanceLeastConnections)
	p.oneOf(key+".reader_fallback", cl.ReaderFallback, FallbackWriter, FallbackError)
	p.oneOf(key+".backend_tls", cl.BackendTLS, BackendTLSDisable, BackendTLSPrefer, BackendTLSRequire)
	if cl.MaxReplicaLag < 0 {
		p.add(key+".max_replica_lag", "must not be negative (0 = no limit), got %s", cl.MaxReplicaLag)
	}
	for i, f := range cl.WriterFunctions {
		if !writerFunctionPattern.MatchString(f) {
			p.add(fmt.Sprintf("%s.writer_functions[%d]", key, i), "invalid function name %q: want a bare name such as \"my_func\" or \"my_schema.my_func\", without parentheses", f)
		}
	}
	if cl.MonitorUser == "" && len(c.Users) > 0 {
		p.add(key+".monitor_user", "required")
	}
	validateClusterPool(p, key+".pool", cl.Pool)
	if cl.Protocol == ProtocolPostgres && cl.MonitorDatabase == "" {
		p.add(key+".monitor_database", "required for postgres clusters")
	}
}

// validateClusterPool checks a cluster's pool settings (defaults applied).
// max_client_conns is checked by the caller.
func validateClusterPool(p *problems, key string, pl Pool) {
	p.oneOf(key+".mode", pl.Mode, PoolSession, PoolTransaction)
	if pl.MaxServerConns < 0 {
		p.add(key+".max_server_conns", "must be 0 (default: no limit in session mode, %d in transaction mode) or more, got %d",
			DefaultTransactionMaxServerConns, pl.MaxServerConns)
	}
	if pl.MinIdle < 0 {
		p.add(key+".min_idle", "must be 0 or more, got %d", pl.MinIdle)
	} else if r := pl.resolved(); r.MaxServerConns > 0 && pl.MinIdle > r.MaxServerConns {
		if pl.MaxServerConns > 0 {
			p.add(key+".min_idle", "%d is above %s.max_server_conns %d", pl.MinIdle, key, pl.MaxServerConns)
		} else {
			p.add(key+".min_idle", "%d is above the max_server_conns of transaction mode, %d by default: lower it or set %s.max_server_conns",
				pl.MinIdle, r.MaxServerConns, key)
		}
	}
	if pl.IdleTimeout < 0 {
		p.add(key+".idle_timeout", "must not be negative (0 = never close idle connections), got %s", pl.IdleTimeout)
	}
	if pl.MaxLifetime < 0 {
		p.add(key+".max_lifetime", "must not be negative (0 = no limit), got %s", pl.MaxLifetime)
	}
	p.positive(key+".checkout_timeout", pl.CheckoutTimeout)
}

// validateUserPool checks a user's pool overrides, where zero or empty
// means "the cluster's". max_client_conns is checked by the caller; min_idle
// against the clusters' max_server_conns by checkUserMinIdle.
func validateUserPool(p *problems, key string, pl Pool) {
	if pl.Mode != "" {
		p.oneOf(key+".mode", pl.Mode, PoolSession, PoolTransaction)
	}
	if pl.MaxServerConns < 0 {
		p.add(key+".max_server_conns", "must be 0 (the cluster's) or more, got %d", pl.MaxServerConns)
	}
	if pl.MinIdle < 0 {
		p.add(key+".min_idle", "must be 0 (the cluster's) or more, got %d", pl.MinIdle)
	} else if pl.MaxServerConns > 0 && pl.MinIdle > pl.MaxServerConns {
		p.add(key+".min_idle", "%d is above %s.max_server_conns %d", pl.MinIdle, key, pl.MaxServerConns)
	}
	for _, d := range []struct {
		name string
		val  time.Duration
	}{{"idle_timeout", pl.IdleTimeout}, {"max_lifetime", pl.MaxLifetime}, {"checkout_timeout", pl.CheckoutTimeout}} {
		if d.val < 0 {
			p.add(key+"."+d.name, "must not be negative (0 = the cluster's), got %s", d.val)
		}
	}
}

// checkUserMinIdle reports a user whose overrides, combined with a
// cluster's pool, give a min_idle above max_server_conns, unless that is
// already reported for the cluster itself or for the user's own values.
func checkUserMinIdle(p *problems, userKey, clusterKey, cluster string, cl, u Pool) {
	if u.Mode == "" && u.MaxServerConns == 0 && u.MinIdle == 0 {
		return // the cluster's own numbers, checked with the cluster
	}
	if u.MinIdle < 0 || u.MaxServerConns < 0 || cl.MinIdle < 0 || cl.MaxServerConns < 0 ||
		(u.MaxServerConns > 0 && u.MinIdle > 0) {
		return // invalid, or both the user's own: reported elsewhere
	}
	if u.Mode != "" && u.Mode != PoolSession && u.Mode != PoolTransaction {
		return
	}
	own, eff := cl.resolved(), u.inherit(cl).resolved()
	if eff.MaxServerConns == 0 || eff.MinIdle <= eff.MaxServerConns ||
		(eff.MinIdle == own.MinIdle && eff.MaxServerConns == own.MaxServerConns) {
		return
	}
	field := "min_idle"
	switch {
	case u.MinIdle != 0:
	case u.MaxServerConns != 0:
		field = "max_server_conns"
	default:
		field = "mode"
	}
	var from string
	switch {
	case u.MaxServerConns != 0:
		from = userKey + ".max_server_conns"
	case cl.MaxServerConns != 0:
		from = clusterKey + ".max_server_conns"
	default:
		from = "the default of transaction mode"
	}
	minFrom := clusterKey + ".min_idle"
	if u.MinIdle != 0 {
		minFrom = userKey + ".min_idle"
	}
	p.add(userKey+"."+field, "in cluster %q min_idle %d (%s) is above max_server_conns %d (%s)",
		cluster, eff.MinIdle, minFrom, eff.MaxServerConns, from)
}

// validateTLS checks a cert/key pair: both or neither, existing files, a
// loadable pair.
func validateTLS(p *problems, key string, t TLS) {
	if !t.Enabled() {
		return
	}
	ok := true
	if t.Cert == "" {
		p.add(key+".cert", "required when %s.key is set", key)
		ok = false
	}
	if t.Key == "" {
		p.add(key+".key", "required when %s.cert is set", key)
		ok = false
	}
	for _, f := range []struct{ key, path string }{{key + ".cert", t.Cert}, {key + ".key", t.Key}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			p.add(f.key, "file %q does not exist", f.path)
			ok = false
		case err != nil:
			p.add(f.key, "%v", err)
			ok = false
		case !st.Mode().IsRegular():
			p.add(f.key, "%q is not a regular file", f.path)
			ok = false
		}
	}
	if ok {
		if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			p.add(key, "cannot load certificate %q and key %q: %v", t.Cert, t.Key, err)
		}
	}
}

// bind is a validated listen address.
type bind struct {
	key, addr, host string
	port            int
}

func splitAddr(p *problems, key, addr string) (host string, port int, ok bool) {
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			p.add(key, "%s %q", ae.Err, addr)
		} else {
			p.add(key, "invalid address %q: %v", addr, err)
		}
		return "", 0, false
	}
	n, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		p.add(key, "invalid port %q in address %q: want a number from 0 to 65535", ps, addr)
		return "", 0, false
	}
	if strings.ContainsAny(h, " \t/") {
		p.add(key, "invalid host %q in address %q", h, addr)
		return "", 0, false
	}
	return h, int(n), true
}

// checkListenAddr checks host:port to listen on; an empty host means every
// interface and port 0 a free port.
func checkListenAddr(p *problems, key, addr string) (bind, bool) {
	if addr == "" {
		p.add(key, "required, host:port")
		return bind{}, false
	}
	h, port, ok := splitAddr(p, key, addr)
	if !ok {
		return bind{}, false
	}
	return bind{key: key, addr: addr, host: strings.ToLower(h), port: port}, true
}

// checkDialAddr checks host:port to connect to: host and port required.
func checkDialAddr(p *problems, key, addr string) bool {
	if addr == "" {
		p.add(key, "required, host:port")
		return false
	}
	h, port, ok := splitAddr(p, key, addr)
	if !ok {
		return false
	}
	if h == "" {
		p.add(key, "missing host in address %q", addr)
		return false
	}
	if port == 0 {
		p.add(key, "port 0 is not allowed in address %q", addr)
		return false
	}
	return true
}

func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

// checkBindConflicts reports two listen addresses on the same port that
// would collide (same host, or one of them on every interface). Port 0 never
// collides.
func checkBindConflicts(p *problems, binds []bind) {
	for i, b := range binds {
		if b.port == 0 {
			continue
		}
		for _, a := range binds[:i] {
			if a.port == b.port && (a.host == b.host || isWildcard(a.host) || isWildcard(b.host)) {
				p.add(b.key, "%q collides with %s %q", b.addr, a.key, a.addr)
				break
			}
		}
	}
}
