// Package config owns the schema of config.yaml: loading it with viper (a fresh
// viper instance per load, no global state), environment overrides, defaults
// and validation with messages that name the offending key.
//
// Precedence, highest first: SLUICE_* environment variables, the file, the
// defaults documented on each field.
//
// Key paths in error messages use dots for nested keys and map entries and
// brackets for list items, e.g. "clusters.main-pg.backends[1].address" or
// "listeners[0].tls.cert". Unknown keys, values of the wrong type and
// durations without a unit are errors naming the key and its line.
//
// # Environment overrides
//
// Every scalar key is overridable as SLUICE_<PATH>: the key path in upper
// case, each segment joined by '_', '-' in cluster names replaced by '_', list
// items by their index:
//
//	SLUICE_HEALTH_INTERVAL=1s
//	SLUICE_SERVER_MAX_MESSAGE_SIZE=128MiB
//	SLUICE_HTTP_ADDRESS=0.0.0.0:9187
//	SLUICE_GOSSIP_JOIN=10.0.0.2:7946,10.0.0.3:7946   (lists: comma separated)
//	SLUICE_CLUSTERS_MAIN_PG_MAX_REPLICA_LAG=2s
//	SLUICE_CLUSTERS_MAIN_PG_WRITER_FUNCTIONS=queue_pop,next_id
//	SLUICE_CLUSTERS_MAIN_PG_BACKENDS_0_ADDRESS=db1:5432
//	SLUICE_CLUSTERS_MAIN_PG_POOL_MODE=transaction
//	SLUICE_USERS_0_POOL_MAX_SERVER_CONNS=10   (a user's pool, by list index)
//	SLUICE_LISTENERS_0_ADDRESS=0.0.0.0:6432
//	SLUICE_LISTENERS_0_TLS_CERT=/etc/sluice/server.crt
//	SLUICE_USERS_0_PASSWORD=secret   (replaces a password_env from the file)
//
// Limits: clusters, listeners, users and backends can only be overridden,
// not added, by environment (names and indexes come from the file); an empty
// variable counts as unset, so it cannot clear a value; a variable naming a
// list index or cluster that is not in the file is ignored; two cluster names
// that map to the same variable (main-pg, main_pg) make that variable an
// error when it is set.
package config

import (
	"encoding/base64"
	"fmt"
	"time"
)

// Config is the whole of config.yaml. Load, LoadWith and Parse return it with
// every default applied and Validate passed; the zero value is not valid.
type Config struct {
	// Listeners are the client-facing ports, one per endpoint. At least one is
	// required; there is no default.
	Listeners []Listener `mapstructure:"listeners"`
	// Clusters are the replicated database clusters, keyed by name. A name is
	// lower-case letters, digits, '-' and '_'. No default.
	Clusters map[string]Cluster `mapstructure:"clusters"`
	// Users may connect through the proxy; their credentials are also used
	// towards the backends. At least one is required; there is no default.
	Users []User `mapstructure:"users"`
	// Health configures the backend probes; see Health for the defaults.
	Health Health `mapstructure:"health"`
	// Gossip configures the fleet of proxies; off by default (empty Bind).
	Gossip Gossip `mapstructure:"gossip"`
	// Failover configures what happens when the fleet agrees that a
	// cluster's writer is down; see Failover for the defaults.
	Failover Failover `mapstructure:"failover"`
	// HTTP configures /metrics, /status and /healthz; off by default.
	HTTP HTTP `mapstructure:"http"`
	// Server holds limits and timeouts; see Server for the defaults.
	Server Server `mapstructure:"server"`
	// Log configures logging; default level "info", format "text".
	Log Log `mapstructure:"log"`
}

// Values of Listener.Protocol and Cluster.Protocol (no default for a
// cluster; a listener defaults to its cluster's).
const (
	ProtocolPostgres = "postgres"
	ProtocolMySQL    = "mysql"
)

// Values of Listener.Route.
const (
	RouteAuto   = "auto" // the default
	RouteWriter = "writer"
	RouteReader = "reader"
)

// Values of Listener.Auth.
const (
	AuthSCRAMSHA256          = "scram-sha-256"         // postgres, the default
	AuthMD5                  = "md5"                   // postgres
	AuthPassword             = "password"              // postgres cleartext; needs TLS
	AuthCachingSHA2Password  = "caching_sha2_password" // mysql, the default
	AuthMySQLNativePassword  = "mysql_native_password" // mysql
	defaultPostgresAuth      = AuthSCRAMSHA256
	defaultMySQLAuth         = AuthCachingSHA2Password
	defaultPostgresMonitorDB = "postgres"
)

// Values of Cluster.Consistency.
const (
	ConsistencySession  = "session" // the default: read-your-writes
	ConsistencyEventual = "eventual"
)

// Values of Cluster.ReaderBalance.
const (
	BalanceRoundRobin       = "round_robin" // the default
	BalanceLeastConnections = "least_connections"
)

// Values of Cluster.ReaderFallback.
const (
	FallbackWriter = "writer" // the default
	FallbackError  = "error"
)

// Values of Cluster.BackendTLS.
const (
	BackendTLSDisable = "disable" // the default
	BackendTLSPrefer  = "prefer"
	BackendTLSRequire = "require"
)

// Values of Log.Level.
const (
	LogDebug = "debug"
	LogInfo  = "info" // the default
	LogWarn  = "warn"
	LogError = "error"
)

// Values of Log.Format.
const (
	LogText = "text" // the default
	LogJSON = "json"
)

// Listener is one client-facing port.
type Listener struct {
	// Name identifies the listener (metrics, logs); required and unique.
	Name string `mapstructure:"name"`
	// Protocol is "postgres" or "mysql"; default: the protocol of Cluster.
	// It must equal the cluster's protocol.
	Protocol string `mapstructure:"protocol"`
	// Address is host:port to listen on; required and unique. An empty host
	// means every interface; port 0 picks a free port.
	Address string `mapstructure:"address"`
	// Cluster names an entry of Config.Clusters; required.
	Cluster string `mapstructure:"cluster"`
	// Route is "auto" (default: reads outside transactions go to readers),
	// "writer" or "reader".
	Route string `mapstructure:"route"`
	// TLS offered to clients; default none.
	TLS TLS `mapstructure:"tls"`
	// Auth is how clients authenticate. postgres: "scram-sha-256" (default),
	// "md5" or "password" (cleartext, only accepted over TLS, so it needs
	// TLS configured); mysql: "caching_sha2_password" (default) or
	// "mysql_native_password".
	Auth string `mapstructure:"auth"`
	// LocalInfile (mysql only) lets clients that ask for CLIENT_LOCAL_FILES
	// run LOAD DATA LOCAL INFILE: the backend's file request and the
	// client's file content are relayed. Default false: the capability is
	// not offered, so clients refuse LOCAL themselves.
	LocalInfile bool `mapstructure:"local_infile"`
	// RSAKey (mysql only) is a PEM RSA private key (PKCS#1 or PKCS#8) whose
	// public half caching_sha2_password clients without TLS fetch to
	// encrypt their password during full authentication. Default "": an
	// ephemeral 2048-bit key generated at start.
	RSAKey string `mapstructure:"rsa_key"`
}

// TLS is a certificate and key pair (PEM files). Both empty (the default)
// means no TLS; one without the other is an error; the files must exist and
// form a valid pair. Load resolves relative paths against the directory of
// the config file.
type TLS struct {
	// Cert is the PEM certificate (chain) file; default "" (no TLS).
	Cert string `mapstructure:"cert"`
	// Key is the PEM private key file; default "" (no TLS).
	Key string `mapstructure:"key"`
}

// Enabled reports whether a certificate and key are configured.
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" }

// Cluster is one replicated database cluster. The roles of its backends are
// discovered by probing, not configured.
type Cluster struct {
	// Protocol is "postgres" or "mysql"; required, no default.
	Protocol string `mapstructure:"protocol"`
	// Backends are the database servers; at least one, no default.
	Backends []Backend `mapstructure:"backends"`
	// Consistency is "session" (default: a session reads its own writes) or
	// "eventual".
	Consistency string `mapstructure:"consistency"`
	// ReaderBalance is "round_robin" (default) or "least_connections".
	ReaderBalance string `mapstructure:"reader_balance"`
	// ReaderFallback is what happens to reads when no reader is healthy:
	// "writer" (default: the writer serves them) or "error".
	ReaderFallback string `mapstructure:"reader_fallback"`
	// MaxReplicaLag skips readers lagging more than this; default 10s,
	// 0 means no limit.
	MaxReplicaLag time.Duration `mapstructure:"max_replica_lag"`
	// WriterFunctions are extra function names that send a statement to the
	// writer; default none.
	WriterFunctions []string `mapstructure:"writer_functions"`
	// MonitorUser names the user (from Config.Users) the health probes log in
	// as; default: the first user.
	MonitorUser string `mapstructure:"monitor_user"`
	// AdminUser names the user (from Config.Users) that promotes a replica
	// and re-points the others when failover.promote is on; it needs
	// superuser rights (PostgreSQL: pg_promote, ALTER SYSTEM; MariaDB:
	// SUPER / READ_ONLY ADMIN and REPLICATION SLAVE ADMIN). Default: the
	// monitor user.
	AdminUser string `mapstructure:"admin_user"`
	// MonitorDatabase is the database the probes connect to; default
	// "postgres" for postgres clusters, "" for mysql clusters.
	MonitorDatabase string `mapstructure:"monitor_database"`
	// BackendTLS is TLS towards the backends (client sessions, health
	// probes, promotion): "disable" (default), "prefer" or "require". As
	// libpq's modes of the same names, prefer and require encrypt without
	// verifying the server's certificate; no verifying mode is offered.
	BackendTLS string `mapstructure:"backend_tls"`
	// Pool holds the cluster's connection limits; see Pool.
	Pool Pool `mapstructure:"pool"`
}

// Backend is one database server of a cluster.
type Backend struct {
	// Address is host:port of the server; required, unique in its cluster.
	Address string `mapstructure:"address"`
	// Name identifies the backend in metrics and logs; default: Address.
	// Unique in its cluster.
	Name string `mapstructure:"name"`
}

// User is a login accepted by the proxy and used towards the backends.
type User struct {
	// Name is the user name; required and unique. No default.
	Name string `mapstructure:"name"`
	// Password in clear text; no default. Exactly one of Password and
	// PasswordEnv must be set in the file. After Load, Password holds the
	// password in either case.
	Password string `mapstructure:"password"`
	// PasswordEnv names an environment variable holding the password; no
	// default. Load reads it into Password (an unset or empty variable is an
	// error) and keeps PasswordEnv for the record.
	PasswordEnv string `mapstructure:"password_env"`
	// Pool holds the user's own limits, applied in every cluster the user
	// connects to; default: none of its own.
	Pool Pool `mapstructure:"pool"`
}

// Pool holds the connection limits and backend pooling of a cluster
// (clusters.<name>.pool) or a user (users[].pool).
//
// A user's settings override the cluster's field by field in every cluster
// the user connects to; a user's zero or empty field inherits the cluster's.
// So a user cannot set a field to 0 to mean "no limit" or "never" when the
// cluster sets something else: for a user, 0 always means "the cluster's".
// The defaults below are the cluster's; PoolFor resolves the effective
// settings of a user in a cluster. MaxClientConns is the exception: the
// cluster's and the user's limits both apply, independently.
type Pool struct {
	// MaxClientConns caps client connections: for a cluster, all users and
	// listeners together; for a user, that user's connections to each
	// cluster. Clients over the limit get SQLSTATE 53300 (PostgreSQL) or
	// error 1040 (MySQL). Default 0: no limit. Not inherited: both limits
	// apply.
	MaxClientConns int `mapstructure:"max_client_conns"`
	// Mode is "session" (default: a client session keeps one backend
	// connection, returned to the pool and reset when the client leaves) or
	// "transaction" (a backend connection is held only for a transaction,
	// or a single statement or extended-protocol batch up to Sync outside
	// one, and then returned). For a user, default "": the cluster's.
	Mode string `mapstructure:"mode"`
	// MaxServerConns caps the backend connections of each pool, one pool
	// per (backend, user, database, client startup parameters). Default 0:
	// no limit in session mode,
	// 20 in transaction mode. For a user, 0 means the cluster's.
	MaxServerConns int `mapstructure:"max_server_conns"`
	// MinIdle is how many idle backend connections each pool keeps open;
	// default 0. It must not exceed MaxServerConns when that is set (or 20,
	// the transaction-mode default). For a user, 0 means the cluster's.
	MinIdle int `mapstructure:"min_idle"`
	// IdleTimeout closes backend connections idle for longer than this
	// (beyond the MinIdle kept ready); default 10m, 0 = never. For a user,
	// 0 means the cluster's.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxLifetime closes backend connections older than this (a connection
	// in use is not interrupted, it is closed when returned); default 1h,
	// 0 = no limit. For a user, 0 means the cluster's.
	MaxLifetime time.Duration `mapstructure:"max_lifetime"`
	// CheckoutTimeout is how long a client waits for a free backend
	// connection (when MaxServerConns are in use) before it gets SQLSTATE
	// 53300 (PostgreSQL) or error 1040 (MySQL); default 30s, must be
	// positive. For a user, 0 means the cluster's.
	CheckoutTimeout time.Duration `mapstructure:"checkout_timeout"`
}

// Values of Pool.Mode.
const (
	PoolSession     = "session" // the default
	PoolTransaction = "transaction"
)

// Defaults of Pool (a cluster's; a user's zero fields inherit the cluster's).
const (
	// DefaultTransactionMaxServerConns is what MaxServerConns 0 means in
	// transaction mode (in session mode 0 means no limit).
	DefaultTransactionMaxServerConns = 20
	defaultPoolIdleTimeout           = 10 * time.Minute
	defaultPoolMaxLifetime           = time.Hour
	defaultPoolCheckoutTimeout       = 30 * time.Second
)

// defaultPool is a cluster's pool when the file sets nothing.
func defaultPool() Pool {
	return Pool{
		Mode:            PoolSession,
		IdleTimeout:     defaultPoolIdleTimeout,
		MaxLifetime:     defaultPoolMaxLifetime,
		CheckoutTimeout: defaultPoolCheckoutTimeout,
	}
}

// inherit returns p with every zero or empty field except MaxClientConns
// taken from base.
func (p Pool) inherit(base Pool) Pool {
	if p.Mode == "" {
		p.Mode = base.Mode
	}
	if p.MaxServerConns == 0 {
		p.MaxServerConns = base.MaxServerConns
	}
	if p.MinIdle == 0 {
		p.MinIdle = base.MinIdle
	}
	if p.IdleTimeout == 0 {
		p.IdleTimeout = base.IdleTimeout
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = base.MaxLifetime
	}
	if p.CheckoutTimeout == 0 {
		p.CheckoutTimeout = base.CheckoutTimeout
	}
	p.MaxClientConns = base.MaxClientConns
	return p
}

// resolved fills what stays open after inheritance: an empty Mode is
// session, MaxServerConns 0 in transaction mode is
// DefaultTransactionMaxServerConns, a non-positive CheckoutTimeout is 30s.
func (p Pool) resolved() Pool {
	if p.Mode == "" {
		p.Mode = PoolSession
	}
	if p.MaxServerConns == 0 && p.Mode == PoolTransaction {
		p.MaxServerConns = DefaultTransactionMaxServerConns
	}
	if p.CheckoutTimeout <= 0 {
		p.CheckoutTimeout = defaultPoolCheckoutTimeout
	}
	return p
}

// PoolFor returns the effective pool settings of user in cluster: the
// cluster's pool (as loaded, with its defaults applied) overridden field by
// field by the user's non-zero, non-empty fields, then resolved:
//
//   - Mode is never empty ("session" unless the cluster or user says
//     "transaction");
//   - MaxServerConns 0 becomes 20 (DefaultTransactionMaxServerConns) in
//     transaction mode and stays 0 (no limit) in session mode;
//   - MinIdle, IdleTimeout and MaxLifetime are the user's if set, else the
//     cluster's; 0 there means none / never / no limit;
//   - CheckoutTimeout is the user's if set, else the cluster's, else 30s;
//   - MaxClientConns is the cluster's limit (all users together), not the
//     user's: that one applies in addition (User.Pool.MaxClientConns).
//
// An unknown cluster contributes the defaults (session, 10m, 1h, 30s); an
// unknown user contributes nothing.
func (c *Config) PoolFor(cluster, user string) Pool {
	base := defaultPool()
	if cl, ok := c.Clusters[cluster]; ok {
		base = cl.Pool
	}
	p := base
	if u, ok := c.User(user); ok {
		p = u.Pool.inherit(base)
	}
	return p.resolved()
}

// Health configures the backend probes.
type Health struct {
	// Interval between probes of one backend; default 500ms.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout of one probe; default 1s.
	Timeout time.Duration `mapstructure:"timeout"`
	// Failures is how many consecutive failed probes mark a backend down;
	// default 3.
	Failures int `mapstructure:"failures"`
	// Successes is how many consecutive good probes mark it up again;
	// default 2.
	Successes int `mapstructure:"successes"`
}

// Gossip configures the memberlist fleet of proxies.
type Gossip struct {
	// Bind is host:port for gossip (TCP and UDP); default "" = gossip off.
	// The host must be an IP address; port 0 picks a free port.
	Bind string `mapstructure:"bind"`
	// Name is this proxy's member name, unique in the fleet; the member
	// with the lowest name leads failovers. Default: Advertise, else Bind
	// when it names one IP address and port, else the host name followed by
	// the bind port.
	Name string `mapstructure:"name"`
	// Advertise is the host:port peers should use to reach this proxy;
	// default "" = derived from Bind.
	Advertise string `mapstructure:"advertise"`
	// Join lists host:port of peers to join at start; default none. As an
	// environment variable it is comma separated.
	Join []string `mapstructure:"join"`
	// FleetSize is the configured number of proxies quorum is computed
	// against (never the current member count); default 1.
	FleetSize int `mapstructure:"fleet_size"`
	// SecretKey encrypts gossip: base64 of 16, 24 or 32 bytes (use Key to
	// decode it); default "" = no encryption.
	SecretKey string `mapstructure:"secret_key"`
}

// Enabled reports whether gossip is on (Bind is set).
func (g Gossip) Enabled() bool { return g.Bind != "" }

// Key decodes SecretKey; nil without error when no key is configured.
func (g Gossip) Key() ([]byte, error) {
	if g.SecretKey == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(g.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("not valid base64: %v", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("decodes to %d bytes, want 16, 24 or 32", len(k))
}

// Failover configures failover for every cluster.
type Failover struct {
	// Promote lets the fleet's leader promote the most advanced healthy
	// replica when a quorum agrees the writer is down and no other backend
	// reports itself writer; default false (discovery only: a backend
	// promoted by another tool is adopted).
	Promote bool `mapstructure:"promote"`
	// Hold is how long a statement that needs the writer waits while there
	// is none before it fails; default 10s.
	Hold time.Duration `mapstructure:"hold"`
}

// HTTP configures the HTTP endpoint (/metrics /status /healthz).
type HTTP struct {
	// Address is host:port to listen on; default "" = off.
	Address string `mapstructure:"address"`
}

// Server holds proxy-wide limits and timeouts.
type Server struct {
	// MaxMessageSize caps one protocol message or packet; default 64MiB.
	// Accepts a number of bytes or a string such as "64MiB", "64MB", "512KiB".
	MaxMessageSize ByteSize `mapstructure:"max_message_size"`
	// AuthFailureDelay: every failed login (wrong password, unknown user,
	// unknown database) is answered after this delay; default 100ms, 0 = none.
	AuthFailureDelay time.Duration `mapstructure:"auth_failure_delay"`
	// ConnectTimeout bounds dialing a backend; default 5s.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// ShutdownTimeout bounds draining sessions on shutdown; default 10s.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// StartupTimeout: a client must finish startup and authentication within
	// this; default 10s.
	StartupTimeout time.Duration `mapstructure:"startup_timeout"`
}

// Log configures logging.
type Log struct {
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `mapstructure:"level"`
	// Format is "text" (default) or "json".
	Format string `mapstructure:"format"`
}

// Cluster returns the cluster called name.
func (c *Config) Cluster(name string) (Cluster, bool) {
	cl, ok := c.Clusters[name]
	return cl, ok
}

// User returns the user called name (the first one if names repeat, which
// Validate rejects).
func (c *Config) User(name string) (User, bool) {
	for _, u := range c.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}
