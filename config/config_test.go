package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const minimalYAML = `
listeners:
  - name: pg
    address: 127.0.0.1:6432
    cluster: main-pg
clusters:
  main-pg:
    protocol: postgres
    backends:
      - address: 127.0.0.1:25432
      - address: 127.0.0.1:25433
users:
  - name: app
    password: app
`

// env returns a getenv over key/value pairs.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

var noEnv = env()

func mustParse(t *testing.T, yaml string, getenv func(string) string) *Config {
	t.Helper()
	c, err := Parse([]byte(yaml), getenv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// errorList splits a joined error into its messages.
func errorList(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		out = append(out, e.Error())
	}
	walk(err)
	return out
}

// wantErrors checks that err consists of exactly len(want) problems, the
// i-th containing want[i].
func wantErrors(t *testing.T, err error, want ...string) {
	t.Helper()
	got := errorList(err)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("error %d = %q, want it to contain %q", i, got[i], want[i])
		}
	}
}

func TestLoadExampleFile(t *testing.T) {
	c, err := LoadWith("../config.yaml", noEnv)
	if err != nil {
		t.Fatalf("LoadWith(config.yaml): %v", err)
	}
	wantListeners := []Listener{
		{Name: "pg", Protocol: "postgres", Address: "127.0.0.1:6432", Cluster: "main-pg", Route: "auto", Auth: "scram-sha-256"},
		{Name: "pg-writer", Protocol: "postgres", Address: "127.0.0.1:6433", Cluster: "main-pg", Route: "writer", Auth: "scram-sha-256"},
		{Name: "pg-reader", Protocol: "postgres", Address: "127.0.0.1:6434", Cluster: "main-pg", Route: "reader", Auth: "scram-sha-256"},
		{Name: "mysql", Protocol: "mysql", Address: "127.0.0.1:6033", Cluster: "main-mysql", Route: "auto", Auth: "caching_sha2_password"},
		{Name: "mysql-writer", Protocol: "mysql", Address: "127.0.0.1:6034", Cluster: "main-mysql", Route: "writer", Auth: "caching_sha2_password"},
		{Name: "mysql-reader", Protocol: "mysql", Address: "127.0.0.1:6035", Cluster: "main-mysql", Route: "reader", Auth: "caching_sha2_password"},
	}
	if !reflect.DeepEqual(c.Listeners, wantListeners) {
		t.Errorf("listeners = %+v\nwant %+v", c.Listeners, wantListeners)
	}
	if len(c.Clusters) != 2 {
		t.Errorf("clusters = %v, want main-pg and main-mysql", c.Clusters)
	}
	cl, ok := c.Cluster("main-pg")
	if !ok {
		t.Fatal(`Cluster("main-pg") not found`)
	}
	wantCluster := Cluster{
		Protocol: "postgres",
		Backends: []Backend{
			{Address: "127.0.0.1:25432", Name: "127.0.0.1:25432"},
			{Address: "127.0.0.1:25433", Name: "127.0.0.1:25433"},
			{Address: "127.0.0.1:25434", Name: "127.0.0.1:25434"},
		},
		Consistency: "session", ReaderBalance: "round_robin", ReaderFallback: "writer",
		MaxReplicaLag: 10 * time.Second, WriterFunctions: []string{},
		MonitorUser: "app", AdminUser: "app", MonitorDatabase: "postgres", BackendTLS: "disable",
		Pool: Pool{Mode: "session", IdleTimeout: 10 * time.Minute, MaxLifetime: time.Hour, CheckoutTimeout: 30 * time.Second},
	}
	if !reflect.DeepEqual(cl, wantCluster) {
		t.Errorf("main-pg = %+v\nwant %+v", cl, wantCluster)
	}
	if u, ok := c.User("app"); !ok || u.Password != "app" {
		t.Errorf(`User("app") = %+v, %v`, u, ok)
	}
	if _, ok := c.User("nobody"); ok {
		t.Error(`User("nobody") found`)
	}
	if my, ok := c.Cluster("main-mysql"); !ok || my.Protocol != "mysql" || len(my.Backends) != 3 || my.MonitorDatabase != "" {
		t.Errorf(`Cluster("main-mysql") = %+v, %v; want a mysql cluster of 3 backends`, my, ok)
	}
	if want := (Health{500 * time.Millisecond, time.Second, 3, 2}); c.Health != want {
		t.Errorf("health = %+v, want %+v", c.Health, want)
	}
	if c.Gossip.Enabled() || c.Gossip.FleetSize != 1 {
		t.Errorf("gossip = %+v, want off with fleet_size 1", c.Gossip)
	}
	if c.HTTP.Address != "127.0.0.1:9187" {
		t.Errorf("http.address = %q", c.HTTP.Address)
	}
	wantServer := Server{64 * MiB, 100 * time.Millisecond, 5 * time.Second, 10 * time.Second, 10 * time.Second}
	if c.Server != wantServer {
		t.Errorf("server = %+v, want %+v", c.Server, wantServer)
	}
	if c.Log != (Log{"info", "text"}) {
		t.Errorf("log = %+v", c.Log)
	}
}

// The MySQL part of config.yaml is commented out until MySQL support lands;
// make sure it is valid once uncommented.
func TestExampleFileMySQLSection(t *testing.T) {
	data, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inBlock := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.Contains(line, "(MySQL support: coming)") {
			inBlock = true
			continue
		}
		if inBlock && strings.HasPrefix(line, "  # ") {
			line = "  " + line[4:]
		} else {
			inBlock = false
		}
		out = append(out, line)
	}
	c, err := Parse([]byte(strings.Join(out, "\n")), noEnv)
	if err != nil {
		t.Fatalf("config.yaml with the MySQL section uncommented: %v", err)
	}
	if len(c.Listeners) != 6 {
		t.Fatalf("got %d listeners, want 6", len(c.Listeners))
	}
	for _, l := range c.Listeners[3:] {
		if l.Protocol != "mysql" || l.Cluster != "main-mysql" || l.Auth != "caching_sha2_password" {
			t.Errorf("listener %+v: want mysql on main-mysql with caching_sha2_password", l)
		}
	}
	if got := []string{c.Listeners[3].Address, c.Listeners[4].Address, c.Listeners[5].Address}; !reflect.DeepEqual(got, []string{"127.0.0.1:6033", "127.0.0.1:6034", "127.0.0.1:6035"}) {
		t.Errorf("mysql listener addresses = %v", got)
	}
	my := c.Clusters["main-mysql"]
	if my.Protocol != "mysql" || len(my.Backends) != 3 || my.Backends[2].Address != "127.0.0.1:23308" || my.MonitorDatabase != "" {
		t.Errorf("main-mysql = %+v", my)
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, minimalYAML, noEnv)
	l := c.Listeners[0]
	if l.Protocol != "postgres" || l.Route != "auto" || l.Auth != "scram-sha-256" || l.TLS.Enabled() {
		t.Errorf("listener defaults: %+v", l)
	}
	cl := c.Clusters["main-pg"]
	if cl.Consistency != "session" || cl.ReaderBalance != "round_robin" || cl.ReaderFallback != "writer" ||
		cl.MaxReplicaLag != 10*time.Second || cl.MonitorUser != "app" || cl.MonitorDatabase != "postgres" ||
		cl.BackendTLS != "disable" || len(cl.WriterFunctions) != 0 {
		t.Errorf("cluster defaults: %+v", cl)
	}
	if cl.Backends[1].Name != "127.0.0.1:25433" {
		t.Errorf("backend name default = %q, want the address", cl.Backends[1].Name)
	}
	if want := (Health{500 * time.Millisecond, time.Second, 3, 2}); c.Health != want {
		t.Errorf("health = %+v, want %+v", c.Health, want)
	}
	if want := (Gossip{FleetSize: 1}); !reflect.DeepEqual(c.Gossip, want) {
		t.Errorf("gossip = %+v, want %+v", c.Gossip, want)
	}
	if c.HTTP.Address != "" {
		t.Errorf("http.address = %q, want off", c.HTTP.Address)
	}
	wantServer := Server{64 * MiB, 100 * time.Millisecond, 5 * time.Second, 10 * time.Second, 10 * time.Second}
	if c.Server != wantServer {
		t.Errorf("server = %+v, want %+v", c.Server, wantServer)
	}
	if c.Log != (Log{"info", "text"}) {
		t.Errorf("log = %+v", c.Log)
	}

	// MySQL defaults.
	my := mustParse(t, `
listeners: [{name: my, address: ":6033", cluster: db}]
clusters: {db: {protocol: mysql, backends: [{address: "db1:3306"}]}}
users: [{name: u, password: p}, {name: monitor, password: m}]
`, noEnv)
	if l := my.Listeners[0]; l.Protocol != "mysql" || l.Auth != "caching_sha2_password" || l.LocalInfile || l.RSAKey != "" {
		t.Errorf("mysql listener defaults: %+v", l)
	}
	if cl := my.Clusters["db"]; cl.MonitorDatabase != "" || cl.MonitorUser != "u" {
		t.Errorf("mysql cluster defaults: %+v", cl)
	}
}

func TestExplicitValuesAreNotDefaulted(t *testing.T) {
	yaml := strings.Replace(minimalYAML, "    protocol: postgres\n", "    protocol: postgres\n    max_replica_lag: 0\n", 1) + `
server:
  auth_failure_delay: 0s
`
	c := mustParse(t, yaml, noEnv)
	if lag := c.Clusters["main-pg"].MaxReplicaLag; lag != 0 {
		t.Errorf("explicit max_replica_lag: 0 became %s, want 0 (no limit)", lag)
	}
	if d := c.Server.AuthFailureDelay; d != 0 {
		t.Errorf("explicit auth_failure_delay: 0s became %s", d)
	}
	_, err := Parse([]byte(minimalYAML+"health:\n  failures: 0\n"), noEnv)
	wantErrors(t, err, "health.failures: must be at least 1, got 0")
}

// validBase is a parsed minimal config to mutate in validation tests.
func validBase(t *testing.T) *Config {
	t.Helper()
	return mustParse(t, minimalYAML, noEnv)
}

func mutateCluster(c *Config, f func(*Cluster)) {
	cl := c.Clusters["main-pg"]
	f(&cl)
	c.Clusters["main-pg"] = cl
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "a")
	otherCert, _ := writeCert(t, dir, "b")
	second := Listener{Name: "pg2", Protocol: "postgres", Address: "127.0.0.1:6433", Cluster: "main-pg", Route: "writer", Auth: "md5"}

	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // nil: valid
	}{
		{"base is valid", func(c *Config) {}, nil},
		{"no listeners", func(c *Config) { c.Listeners = nil }, []string{"listeners: at least one listener is required"}},
		{"no users", func(c *Config) { c.Users = nil },
			[]string{"users: at least one user is required"}},
		{"no clusters", func(c *Config) { c.Clusters = nil },
			[]string{"clusters: at least one cluster is required", `listeners[0].cluster: unknown cluster "main-pg"`}},
		{"listener name required", func(c *Config) { c.Listeners[0].Name = "" }, []string{"listeners[0].name: required"}},
		{"listener names unique", func(c *Config) {
			l := second
			l.Name = "pg"
			c.Listeners = append(c.Listeners, l)
		}, []string{`listeners[1].name: "pg" is already used by listeners[0]`}},
		{"listener address missing port", func(c *Config) { c.Listeners[0].Address = "127.0.0.1" },
			[]string{`listeners[0].address: missing port in address "127.0.0.1"`}},
		{"listener address required", func(c *Config) { c.Listeners[0].Address = "" },
			[]string{`listeners[0].address: required, host:port`}},
		{"listener address bad port", func(c *Config) { c.Listeners[0].Address = "127.0.0.1:pg" },
			[]string{`listeners[0].address: invalid port "pg" in address "127.0.0.1:pg"`}},
		{"listener port out of range", func(c *Config) { c.Listeners[0].Address = "127.0.0.1:70000" },
			[]string{`listeners[0].address: invalid port "70000"`}},
		{"listener addresses unique", func(c *Config) {
			l := second
			l.Address = "127.0.0.1:6432"
			c.Listeners = append(c.Listeners, l)
		}, []string{`listeners[1].address: "127.0.0.1:6432" collides with listeners[0].address "127.0.0.1:6432"`}},
		{"wildcard address collides", func(c *Config) {
			l := second
			l.Address = ":6432"
			c.Listeners = append(c.Listeners, l)
		}, []string{`listeners[1].address: ":6432" collides with listeners[0].address "127.0.0.1:6432"`}},
		{"same port on other host is fine", func(c *Config) {
			l := second
			l.Address = "127.0.0.2:6432"
			c.Listeners = append(c.Listeners, l)
		}, nil},
		{"port 0 twice is fine", func(c *Config) {
			c.Listeners[0].Address = "127.0.0.1:0"
			l := second
			l.Address = "127.0.0.1:0"
			c.Listeners = append(c.Listeners, l)
		}, nil},
		{"http collides with a listener", func(c *Config) { c.HTTP.Address = "127.0.0.1:6432" },
			[]string{`http.address: "127.0.0.1:6432" collides with listeners[0].address`}},
		{"gossip collides with http", func(c *Config) { c.HTTP.Address = "0.0.0.0:9000"; c.Gossip.Bind = "127.0.0.1:9000" },
			[]string{`http.address: "0.0.0.0:9000" collides with gossip.bind "127.0.0.1:9000"`}},
		{"listener cluster required", func(c *Config) { c.Listeners[0].Cluster = "" },
			[]string{"listeners[0].cluster: required"}},
		{"listener cluster must exist", func(c *Config) { c.Listeners[0].Cluster = "nope" },
			[]string{`listeners[0].cluster: unknown cluster "nope" (not in clusters)`}},
		{"route enum", func(c *Config) { c.Listeners[0].Route = "both" },
			[]string{`listeners[0].route: invalid value "both", want one of "auto", "writer", "reader"`}},
		{"protocol enum", func(c *Config) { c.Listeners[0].Protocol = "oracle" },
			[]string{`listeners[0].protocol: invalid value "oracle", want one of "postgres", "mysql"`,
				`listeners[0].protocol: "oracle" does not match clusters.main-pg.protocol "postgres"`}},
		{"protocol must match the cluster", func(c *Config) {
			c.Listeners[0].Protocol = "mysql"
			c.Listeners[0].Auth = "mysql_native_password"
		}, []string{`listeners[0].protocol: "mysql" does not match clusters.main-pg.protocol "postgres"`}},
		{"postgres auth enum", func(c *Config) { c.Listeners[0].Auth = "caching_sha2_password" },
			[]string{`listeners[0].auth: invalid value "caching_sha2_password", want one of "scram-sha-256", "md5", "password"`}},
		{"cleartext password needs TLS", func(c *Config) { c.Listeners[0].Auth = "password" },
			[]string{`listeners[0].auth: "password" sends passwords in clear text and is only accepted over TLS`}},
		{"cleartext password with TLS", func(c *Config) {
			c.Listeners[0].Auth = "password"
			c.Listeners[0].TLS = TLS{Cert: cert, Key: key}
		}, nil},
		{"tls cert without key", func(c *Config) { c.Listeners[0].TLS.Cert = cert },
			[]string{"listeners[0].tls.key: required when listeners[0].tls.cert is set"}},
		{"tls key without cert", func(c *Config) { c.Listeners[0].TLS.Key = key },
			[]string{"listeners[0].tls.cert: required when listeners[0].tls.key is set"}},
		{"tls files must exist", func(c *Config) {
			c.Listeners[0].TLS = TLS{Cert: filepath.Join(dir, "missing.crt"), Key: key}
		}, []string{`listeners[0].tls.cert: file "` + filepath.Join(dir, "missing.crt") + `" does not exist`}},
		{"tls file is a directory", func(c *Config) { c.Listeners[0].TLS = TLS{Cert: cert, Key: dir} },
			[]string{`listeners[0].tls.key: "` + dir + `" is not a regular file`}},
		{"tls pair must match", func(c *Config) { c.Listeners[0].TLS = TLS{Cert: otherCert, Key: key} },
			[]string{"listeners[0].tls: cannot load certificate"}},
		{"cluster name", func(c *Config) {
			c.Clusters["Main"] = c.Clusters["main-pg"]
		}, []string{`clusters.Main: invalid name "Main"`}},
		{"cluster protocol required", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.Protocol = "" }) },
			[]string{`clusters.main-pg.protocol: required, one of "postgres", "mysql"`}},
		{"cluster needs a backend", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.Backends = nil }) },
			[]string{"clusters.main-pg.backends: at least one backend is required"}},
		{"backend address missing port", func(c *Config) {
			mutateCluster(c, func(cl *Cluster) { cl.Backends[1] = Backend{Address: "db1", Name: "db1"} })
		}, []string{`clusters.main-pg.backends[1].address: missing port in address "db1"`}},
		{"backend address needs a host", func(c *Config) {
			mutateCluster(c, func(cl *Cluster) { cl.Backends[1] = Backend{Address: ":5432", Name: "x"} })
		}, []string{`clusters.main-pg.backends[1].address: missing host in address ":5432"`}},
		{"backend port 0", func(c *Config) {
			mutateCluster(c, func(cl *Cluster) { cl.Backends[1] = Backend{Address: "db1:0", Name: "x"} })
		}, []string{`clusters.main-pg.backends[1].address: port 0 is not allowed in address "db1:0"`}},
		{"backend address required", func(c *Config) {
			mutateCluster(c, func(cl *Cluster) { cl.Backends[1] = Backend{} })
		}, []string{`clusters.main-pg.backends[1].address: required, host:port`}},
		{"backend addresses unique", func(c *Config) {
			mutateCluster(c, func(cl *Cluster) { cl.Backends[1] = Backend{Address: "127.0.0.1:25432", Name: "other"} })
		}, []string{`clusters.main-pg.backends[1].address: "127.0.0.1:25432" is already used by clusters.main-pg.backends[0]`}},
		{"backend names unique", func(c *Config) {
			mutateCluster(c, func(cl *Cluster) { cl.Backends[1].Name = "127.0.0.1:25432" })
		}, []string{`clusters.main-pg.backends[1].name: "127.0.0.1:25432" is already used by clusters.main-pg.backends[0]`}},
		{"IPv6 backend", func(c *Config) {
			mutateCluster(c, func(cl *Cluster) { cl.Backends[1] = Backend{Address: "[::1]:5432", Name: "v6"} })
		}, nil},
		{"consistency enum", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.Consistency = "strong" }) },
			[]string{`clusters.main-pg.consistency: invalid value "strong", want one of "session", "eventual"`}},
		{"reader_balance enum", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.ReaderBalance = "random" }) },
			[]string{`clusters.main-pg.reader_balance: invalid value "random", want one of "round_robin", "least_connections"`}},
		{"reader_fallback enum", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.ReaderFallback = "wait" }) },
			[]string{`clusters.main-pg.reader_fallback: invalid value "wait", want one of "writer", "error"`}},
		{"backend_tls enum", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.BackendTLS = "verify-full" }) },
			[]string{`clusters.main-pg.backend_tls: invalid value "verify-full", want one of "disable", "prefer", "require"`}},
		{"max_replica_lag negative", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.MaxReplicaLag = -time.Second }) },
			[]string{"clusters.main-pg.max_replica_lag: must not be negative (0 = no limit), got -1s"}},
		{"max_replica_lag 0 is no limit", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.MaxReplicaLag = 0 }) }, nil},
		{"writer_functions names", func(c *Config) {
			mutateCluster(c, func(cl *Cluster) { cl.WriterFunctions = []string{"my_func", "q.pop", "bad()", ""} })
		}, []string{`clusters.main-pg.writer_functions[2]: invalid function name "bad()"`,
			`clusters.main-pg.writer_functions[3]: invalid function name ""`}},
		{"monitor_user must exist", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.MonitorUser = "bob" }) },
			[]string{`clusters.main-pg.monitor_user: unknown user "bob" (not in users)`}},
		{"monitor_database required for postgres", func(c *Config) { mutateCluster(c, func(cl *Cluster) { cl.MonitorDatabase = "" }) },
			[]string{"clusters.main-pg.monitor_database: required for postgres clusters"}},
		{"user name required", func(c *Config) { c.Users = append(c.Users, User{Password: "x"}) },
			[]string{"users[1].name: required"}},
		{"user names unique", func(c *Config) { c.Users = append(c.Users, User{Name: "app", Password: "x"}) },
			[]string{`users[1].name: "app" is already used by users[0]`}},
		{"user needs a password", func(c *Config) { c.Users[0].Password = "" },
			[]string{"users[0]: one of password or password_env is required"}},
		{"unresolved password_env", func(c *Config) { c.Users[0] = User{Name: "app", PasswordEnv: "PW"} },
			[]string{"users[0].password_env: environment variable PW was not read into password"}},
		{"health interval", func(c *Config) { c.Health.Interval = 0 },
			[]string{"health.interval: must be a positive duration, got 0s"}},
		{"health timeout", func(c *Config) { c.Health.Timeout = -time.Second },
			[]string{"health.timeout: must be a positive duration, got -1s"}},
		{"health failures", func(c *Config) { c.Health.Failures = 0 },
			[]string{"health.failures: must be at least 1, got 0"}},
		{"health successes", func(c *Config) { c.Health.Successes = -1 },
			[]string{"health.successes: must be at least 1, got -1"}},
		{"gossip on", func(c *Config) {
			c.Gossip = Gossip{Bind: "127.0.0.1:7946", Advertise: "10.0.0.1:7946", Join: []string{"10.0.0.2:7946"}, FleetSize: 3,
				SecretKey: "MDEyMzQ1Njc4OWFiY2RlZg=="}
		}, nil},
		{"gossip bind address", func(c *Config) { c.Gossip.Bind = "7946" },
			[]string{`gossip.bind: missing port in address "7946"`}},
		{"gossip join without bind", func(c *Config) { c.Gossip.Join = []string{"10.0.0.2:7946"} },
			[]string{"gossip.join: set but gossip is off: set gossip.bind too"}},
		{"gossip advertise without bind", func(c *Config) { c.Gossip.Advertise = "10.0.0.1:7946" },
			[]string{"gossip.advertise: set but gossip is off: set gossip.bind too"}},
		{"gossip join addresses", func(c *Config) { c.Gossip.Bind = ":7946"; c.Gossip.Join = []string{"10.0.0.2:7946", "peer"} },
			[]string{`gossip.join[1]: missing port in address "peer"`}},
		{"gossip fleet_size", func(c *Config) { c.Gossip.FleetSize = 0 },
			[]string{"gossip.fleet_size: must be at least 1, got 0"}},
		{"gossip secret_key base64", func(c *Config) { c.Gossip.SecretKey = "not base64!" },
			[]string{"gossip.secret_key: not valid base64"}},
		{"gossip secret_key length", func(c *Config) { c.Gossip.SecretKey = "c2hvcnQ=" },
			[]string{"gossip.secret_key: decodes to 5 bytes, want 16, 24 or 32"}},
		{"http address", func(c *Config) { c.HTTP.Address = "localhost" },
			[]string{`http.address: missing port in address "localhost"`}},
		{"max_message_size", func(c *Config) { c.Server.MaxMessageSize = 0 },
			[]string{"server.max_message_size: must be positive, got 0"}},
		{"auth_failure_delay negative", func(c *Config) { c.Server.AuthFailureDelay = -time.Millisecond },
			[]string{"server.auth_failure_delay: must not be negative (0 = no delay), got -1ms"}},
		{"auth_failure_delay 0", func(c *Config) { c.Server.AuthFailureDelay = 0 }, nil},
		{"connect_timeout", func(c *Config) { c.Server.ConnectTimeout = 0 },
			[]string{"server.connect_timeout: must be a positive duration, got 0s"}},
		{"shutdown_timeout", func(c *Config) { c.Server.ShutdownTimeout = 0 },
			[]string{"server.shutdown_timeout: must be a positive duration, got 0s"}},
		{"startup_timeout", func(c *Config) { c.Server.StartupTimeout = -1 },
			[]string{"server.startup_timeout: must be a positive duration, got -1ns"}},
		{"log level", func(c *Config) { c.Log.Level = "trace" },
			[]string{`log.level: invalid value "trace", want one of "debug", "info", "warn", "error"`}},
		{"log format", func(c *Config) { c.Log.Format = "" },
			[]string{`log.format: required, one of "text", "json"`}},
		{"all problems at once", func(c *Config) {
			c.Listeners[0].Route = "x"
			c.Health.Failures = 0
			c.Log.Level = "x"
		}, []string{"listeners[0].route", "health.failures", "log.level"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validBase(t)
			tc.mutate(c)
			wantErrors(t, c.Validate(), tc.want...)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	withCluster := func(extra string) string {
		return strings.Replace(minimalYAML, "    protocol: postgres\n", "    protocol: postgres\n"+extra, 1)
	}
	tests := []struct {
		name string
		yaml string
		env  func(string) string
		want []string
	}{
		{"unknown cluster key", withCluster("    backend:\n      - address: x:1\n"), noEnv,
			[]string{`unknown key "clusters.main-pg.backend" (line 9; did you mean "backends"?)`}},
		{"unknown top-level key", minimalYAML + "helth:\n  interval: 1s\n", noEnv,
			[]string{`unknown key "helth" (line 15; did you mean "health"?)`}},
		{"unknown key in a list item", strings.Replace(minimalYAML, "    address: 127.0.0.1:6432", "    adress: 127.0.0.1:6432", 1), noEnv,
			[]string{`unknown key "listeners[0].adress" (line 4; did you mean "address"?)`}},
		{"keys are lower case", minimalYAML + "Health:\n  interval: 1s\n", noEnv,
			[]string{`unknown key "Health" (line 15; did you mean "health"?)`}},
		{"unknown nested key", minimalYAML + "server:\n  max_msg_size: 1\n", noEnv,
			[]string{`unknown key "server.max_msg_size"`}},
		{"unknown key, no suggestion", minimalYAML + "frobnicate: true\n", noEnv,
			[]string{`unknown key "frobnicate" (line 15)`}},
		{"bad duration", minimalYAML + "health:\n  interval: 5x\n", noEnv,
			[]string{`health.interval: invalid duration "5x"`}},
		{"duration without unit", minimalYAML + "health:\n  timeout: 5\n", noEnv,
			[]string{`health.timeout: duration 5 needs a unit, e.g. "5s" or "5ms" (line 16)`}},
		{"bad cluster duration", withCluster("    max_replica_lag: soon\n"), noEnv,
			[]string{`clusters.main-pg.max_replica_lag: invalid duration "soon"`}},
		{"negative duration", minimalYAML + "server:\n  connect_timeout: -5s\n", noEnv,
			[]string{"server.connect_timeout: must be a positive duration, got -5s"}},
		{"string expected", strings.Replace(minimalYAML, "password: app", "password: 1234", 1), noEnv,
			[]string{`users[0].password: expected a string, got the number 1234 (quote it if you mean the text: "1234")`}},
		{"integer expected", minimalYAML + "health:\n  failures: three\n", noEnv,
			[]string{`health.failures: expected a whole number, got "three"`}},
		{"mapping expected", minimalYAML + "health: 5\n", noEnv,
			[]string{"health: expected a mapping of keys, got the number 5"}},
		{"list expected", minimalYAML + "gossip:\n  join: {a: b}\n", noEnv,
			[]string{"gossip.join: expected a list of strings, got a mapping"}},
		{"bad byte size", minimalYAML + "server:\n  max_message_size: 64 furlongs\n", noEnv,
			[]string{`server.max_message_size: invalid byte size "64 furlongs": unknown unit "furlongs"`}},
		{"negative byte size", minimalYAML + "server:\n  max_message_size: -1\n", noEnv,
			[]string{"server.max_message_size: invalid byte size -1"}},
		{"cluster name case", strings.ReplaceAll(minimalYAML, "main-pg", "Main-PG"), noEnv,
			[]string{`clusters.Main-PG: invalid name "Main-PG"`}},
		{"cluster name with a dot", strings.ReplaceAll(minimalYAML, "main-pg", "main.pg"), noEnv,
			[]string{`clusters.main.pg: invalid name "main.pg"`}},
		{"yaml syntax", "listeners: [\n", noEnv, []string{"config: yaml: line"}},
		{"not a mapping", "- a\n- b\n", noEnv, []string{"expected a mapping of keys, got a list"}},
		{"empty file", "", noEnv, []string{
			"clusters: at least one cluster is required",
			"listeners: at least one listener is required",
			"users: at least one user is required"}},
		{"empty cluster", "listeners: [{name: a, address: ':1', cluster: c}]\nclusters: {c: }\nusers: [{name: u, password: p}]\n", noEnv, []string{
			`clusters.c.protocol: required`,
			"clusters.c.backends: at least one backend is required",
			`listeners[0].protocol: required`}},
		{"password and password_env", strings.Replace(minimalYAML, "password: app", "password: app\n    password_env: APP_PW", 1), env("APP_PW", "x"),
			[]string{"users[0]: password and password_env are mutually exclusive"}},
		{"password_env unset", strings.Replace(minimalYAML, "password: app", "password_env: APP_PW", 1), noEnv,
			[]string{"users[0].password_env: environment variable APP_PW is not set"}},
		{"no password", strings.Replace(minimalYAML, "password: app", "password: ''", 1), noEnv,
			[]string{"users[0]: one of password or password_env is required"}},
		{"listener tls file missing", strings.Replace(minimalYAML, "    cluster: main-pg\n", "    cluster: main-pg\n    tls: {cert: /nonexistent/c.pem, key: /nonexistent/k.pem}\n", 1), noEnv,
			[]string{`listeners[0].tls.cert: file "/nonexistent/c.pem" does not exist`, `listeners[0].tls.key: file "/nonexistent/k.pem" does not exist`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), tc.env)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with an error")
			}
			wantErrors(t, err, tc.want...)
		})
	}
}

// In viper a key set to null shadows the defaults beneath it; empty
// sections must still get their defaults and env overrides.
func TestNullSections(t *testing.T) {
	c := mustParse(t, minimalYAML+"http:\ngossip:\nhealth: {}\nserver: ~\nlog:\n", env(
		"SLUICE_HTTP_ADDRESS", "127.0.0.1:9100",
		"SLUICE_GOSSIP_BIND", "127.0.0.1:7946",
		"SLUICE_GOSSIP_JOIN", "10.0.0.2:7946",
	))
	if c.Gossip.FleetSize != 1 || c.Health.Interval != 500*time.Millisecond || c.Server.MaxMessageSize != 64*MiB || c.Log.Level != "info" {
		t.Errorf("defaults lost under null sections: %+v", c)
	}
	if c.HTTP.Address != "127.0.0.1:9100" || c.Gossip.Bind != "127.0.0.1:7946" || len(c.Gossip.Join) != 1 {
		t.Errorf("env overrides lost under null sections: http %+v gossip %+v", c.HTTP, c.Gossip)
	}

	// A cluster declared with nothing under it exists and takes its scalar
	// keys by env (backends cannot be added by env).
	_, err := Parse([]byte(`
listeners: [{name: l, address: ":6033", cluster: c}]
clusters: {c: }
users: [{name: u, password: p}]
`), env("SLUICE_CLUSTERS_C_PROTOCOL", "mysql"))
	wantErrors(t, err, "clusters.c.backends: at least one backend is required")
}

func TestYAMLAnchors(t *testing.T) {
	c := mustParse(t, minimalYAML+`
health:
  interval: &d 1s
  timeout: *d
`, noEnv)
	if c.Health.Interval != time.Second || c.Health.Timeout != time.Second {
		t.Errorf("health = %+v", c.Health)
	}
	c = mustParse(t, `
listeners:
  - &l {name: a, address: ":7001", cluster: c}
  - {<<: *l, name: b, address: ":7002", route: reader}
clusters:
  c: {protocol: postgres, backends: [{address: "db:5432"}]}
users: [{name: u, password: p}]
`, noEnv)
	if l := c.Listeners[1]; l.Name != "b" || l.Cluster != "c" || l.Route != "reader" {
		t.Errorf("merged listener = %+v", l)
	}
}

func TestEnvOverrides(t *testing.T) {
	yaml := strings.Replace(minimalYAML, "password: app", "password_env: APP_PW", 1) + `
  - name: other
    password: other
`
	c := mustParse(t, yaml, env(
		"APP_PW", "from-env",
		"SLUICE_HEALTH_INTERVAL", "1s",
		"SLUICE_HEALTH_TIMEOUT", "250ms",
		"SLUICE_HEALTH_FAILURES", "5",
		"SLUICE_SERVER_CONNECT_TIMEOUT", "2s",
		"SLUICE_SERVER_MAX_MESSAGE_SIZE", "512KiB",
		"SLUICE_GOSSIP_BIND", "127.0.0.1:7946",
		"SLUICE_GOSSIP_JOIN", "10.0.0.2:7946, 10.0.0.3:7946,",
		"SLUICE_GOSSIP_FLEET_SIZE", "3",
		"SLUICE_GOSSIP_SECRET_KEY", "MDEyMzQ1Njc4OWFiY2RlZg==",
		"SLUICE_HTTP_ADDRESS", "127.0.0.1:9999", // no http section in the file
		"SLUICE_LOG_LEVEL", "debug",
		"SLUICE_LOG_FORMAT", "json",
		"SLUICE_CLUSTERS_MAIN_PG_CONSISTENCY", "eventual",
		"SLUICE_CLUSTERS_MAIN_PG_MAX_REPLICA_LAG", "2s",
		"SLUICE_CLUSTERS_MAIN_PG_WRITER_FUNCTIONS", "queue_pop,app.next_id",
		"SLUICE_CLUSTERS_MAIN_PG_MONITOR_USER", "other",
		"SLUICE_CLUSTERS_MAIN_PG_BACKENDS_1_ADDRESS", "db9:5433",
		"SLUICE_LISTENERS_0_ADDRESS", "0.0.0.0:7432",
		"SLUICE_LISTENERS_0_ROUTE", "writer",
		"SLUICE_USERS_1_PASSWORD", "changed",
	))
	if want := (Health{time.Second, 250 * time.Millisecond, 5, 2}); c.Health != want {
		t.Errorf("health = %+v, want %+v", c.Health, want)
	}
	if c.Server.ConnectTimeout != 2*time.Second || c.Server.MaxMessageSize != 512*KiB {
		t.Errorf("server = %+v", c.Server)
	}
	wantGossip := Gossip{Bind: "127.0.0.1:7946", Join: []string{"10.0.0.2:7946", "10.0.0.3:7946"}, FleetSize: 3, SecretKey: "MDEyMzQ1Njc4OWFiY2RlZg=="}
	if !reflect.DeepEqual(c.Gossip, wantGossip) {
		t.Errorf("gossip = %+v, want %+v", c.Gossip, wantGossip)
	}
	if c.HTTP.Address != "127.0.0.1:9999" || c.Log != (Log{"debug", "json"}) {
		t.Errorf("http = %+v, log = %+v", c.HTTP, c.Log)
	}
	cl := c.Clusters["main-pg"]
	if cl.Consistency != "eventual" || cl.MaxReplicaLag != 2*time.Second || cl.MonitorUser != "other" ||
		!reflect.DeepEqual(cl.WriterFunctions, []string{"queue_pop", "app.next_id"}) {
		t.Errorf("cluster = %+v", cl)
	}
	if b := cl.Backends[1]; b.Address != "db9:5433" || b.Name != "db9:5433" {
		t.Errorf("backend 1 = %+v, want the overridden address (and name defaulting to it)", b)
	}
	if l := c.Listeners[0]; l.Address != "0.0.0.0:7432" || l.Route != "writer" || l.Name != "pg" {
		t.Errorf("listener 0 = %+v", l)
	}
	if u := c.Users[0]; u.Password != "from-env" || u.PasswordEnv != "APP_PW" {
		t.Errorf("users[0] = %+v, want password from APP_PW", u)
	}
	if u := c.Users[1]; u.Password != "changed" {
		t.Errorf("users[1] = %+v", u)
	}
}

func TestEnvOverridesMore(t *testing.T) {
	t.Run("password replaces password_env", func(t *testing.T) {
		yaml := strings.Replace(minimalYAML, "password: app", "password_env: APP_PW", 1)
		c := mustParse(t, yaml, env("SLUICE_USERS_0_PASSWORD", "direct")) // APP_PW unset: not needed
		if u := c.Users[0]; u.Password != "direct" || u.PasswordEnv != "" {
			t.Errorf("users[0] = %+v", u)
		}
	})
	t.Run("password_env replaces password", func(t *testing.T) {
		c := mustParse(t, minimalYAML, env("SLUICE_USERS_0_PASSWORD_ENV", "PW2", "PW2", "s3cret"))
		if u := c.Users[0]; u.Password != "s3cret" || u.PasswordEnv != "PW2" {
			t.Errorf("users[0] = %+v", u)
		}
	})
	t.Run("both by env", func(t *testing.T) {
		_, err := Parse([]byte(minimalYAML), env("SLUICE_USERS_0_PASSWORD_ENV", "PW2", "PW2", "s", "SLUICE_USERS_0_PASSWORD", "p"))
		wantErrors(t, err, "users[0]: password and password_env are mutually exclusive")
	})
	t.Run("explicit zero lag by env", func(t *testing.T) {
		c := mustParse(t, minimalYAML, env("SLUICE_CLUSTERS_MAIN_PG_MAX_REPLICA_LAG", "0s"))
		if lag := c.Clusters["main-pg"].MaxReplicaLag; lag != 0 {
			t.Errorf("lag = %s", lag)
		}
	})
	t.Run("listener tls by env", func(t *testing.T) {
		dir := t.TempDir()
		cert, key := writeCert(t, dir, "srv")
		c := mustParse(t, minimalYAML, env("SLUICE_LISTENERS_0_TLS_CERT", cert, "SLUICE_LISTENERS_0_TLS_KEY", key, "SLUICE_LISTENERS_0_AUTH", "password"))
		if l := c.Listeners[0]; l.TLS != (TLS{cert, key}) || l.Auth != "password" {
			t.Errorf("listener = %+v", l)
		}
	})
	t.Run("invalid values", func(t *testing.T) {
		_, err := Parse([]byte(minimalYAML), env(
			"SLUICE_HEALTH_INTERVAL", "soon",
			"SLUICE_HEALTH_FAILURES", "many",
			"SLUICE_SERVER_MAX_MESSAGE_SIZE", "big",
		))
		wantErrors(t, err,
			`SLUICE_HEALTH_INTERVAL (health.interval): invalid duration "soon"`,
			`SLUICE_HEALTH_FAILURES (health.failures): expected a whole number, got "many"`,
			`SLUICE_SERVER_MAX_MESSAGE_SIZE (server.max_message_size): invalid byte size "big"`)
	})
	t.Run("overridden values are validated", func(t *testing.T) {
		_, err := Parse([]byte(minimalYAML), env("SLUICE_LOG_LEVEL", "loud", "SLUICE_LISTENERS_0_ADDRESS", "nowhere"))
		wantErrors(t, err, `listeners[0].address: missing port in address "nowhere"`, `log.level: invalid value "loud"`)
	})
	t.Run("ambiguous cluster names", func(t *testing.T) {
		yaml := strings.Replace(minimalYAML, "clusters:\n", "clusters:\n  main_pg: {protocol: postgres, backends: [{address: 'x:1'}]}\n", 1)
		if _, err := Parse([]byte(yaml), noEnv); err != nil {
			t.Fatalf("without env overrides: %v", err)
		}
		_, err := Parse([]byte(yaml), env("SLUICE_CLUSTERS_MAIN_PG_CONSISTENCY", "eventual"))
		wantErrors(t, err, "SLUICE_CLUSTERS_MAIN_PG_CONSISTENCY: ambiguous: overrides both clusters.main-pg.consistency and clusters.main_pg.consistency")
	})
	t.Run("process environment", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "sluice.yaml")
		if err := os.WriteFile(path, []byte(minimalYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("SLUICE_HEALTH_SUCCESSES", "7")
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Health.Successes != 7 {
			t.Errorf("successes = %d", c.Health.Successes)
		}
	})
}

func TestLoadResolvesRelativeTLSPaths(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "server")
	yaml := strings.Replace(minimalYAML, "    cluster: main-pg\n", "    cluster: main-pg\n    tls: {cert: server.crt, key: server.key}\n", 1)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadWith(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Listeners[0].TLS.Cert, filepath.Join(dir, "server.crt"); got != want {
		t.Errorf("cert = %q, want %q", got, want)
	}
	if _, err := LoadWith(filepath.Join(dir, "missing.yaml"), noEnv); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := Load(""); err == nil {
		t.Error("Load(\"\") succeeded")
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr string
	}{
		{"67108864", 64 * MiB, ""},
		{"64MiB", 64 * MiB, ""},
		{"64MB", 64 * MiB, ""},
		{"64mb", 64 * MiB, ""},
		{"64M", 64 * MiB, ""},
		{"512KiB", 512 * KiB, ""},
		{"512 KiB", 512 * KiB, ""},
		{"512kB", 512 * KiB, ""},
		{"1GiB", GiB, ""},
		{"2G", 2 * GiB, ""},
		{"1TiB", TiB, ""},
		{"10B", 10, ""},
		{"0", 0, ""},
		{" 8 ", 8, ""},
		{"", 0, "want a whole number"},
		{"MiB", 0, "want a whole number"},
		{"-1", 0, "want a whole number"},
		{"1.5MiB", 0, `unknown unit ".5MiB"`},
		{"64XB", 0, `unknown unit "XB"`},
		{"99999999999999999999", 0, "out of range"},
		{"9999999TiB", 0, "out of range"},
	}
	for _, tc := range tests {
		got, err := ParseByteSize(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseByteSize(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}

	for _, tc := range []struct {
		b    ByteSize
		want string
	}{{64 * MiB, "64MiB"}, {1000, "1000B"}, {0, "0B"}, {1536, "1536B"}, {3 * KiB, "3KiB"}, {2 * TiB, "2TiB"}} {
		if got := tc.b.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.b), got, tc.want)
		}
		if back, err := ParseByteSize(tc.want); err != nil || back != tc.b {
			t.Errorf("round trip %q = %v, %v", tc.want, back, err)
		}
	}
	var b ByteSize
	if err := b.UnmarshalText([]byte("4KiB")); err != nil || b != 4*KiB {
		t.Errorf("UnmarshalText = %v, %v", b, err)
	}

	// In the file: a number of bytes or a string.
	for in, want := range map[string]ByteSize{"67108864": 64 * MiB, "1MiB": MiB, `"2MB"`: 2 * MiB} {
		c := mustParse(t, minimalYAML+"server:\n  max_message_size: "+in+"\n", noEnv)
		if c.Server.MaxMessageSize != want {
			t.Errorf("max_message_size: %s = %v, want %v", in, c.Server.MaxMessageSize, want)
		}
	}
}

func TestCheckPorts(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// A UDP port in use whose TCP twin is free.
	var busyUDP net.PacketConn
	for busyUDP == nil {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if l, err := net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			l.Close()
			busyUDP = pc
		} else {
			pc.Close()
		}
	}
	defer busyUDP.Close()

	c := validBase(t)
	c.Listeners[0].Address = "127.0.0.1:0"
	if err := c.CheckPorts(); err != nil {
		t.Fatalf("free ports: %v", err)
	}

	c.Listeners = append(c.Listeners, Listener{Name: "b", Address: busy.Addr().String(), Cluster: "main-pg"})
	c.HTTP.Address = busy.Addr().String()
	c.Gossip.Bind = busyUDP.LocalAddr().String()
	wantErrors(t, c.CheckPorts(),
		"listeners[1].address "+busy.Addr().String()+": port in use",
		"http.address "+busy.Addr().String()+": port in use",
		"gossip.bind "+busyUDP.LocalAddr().String()+": udp port in use")

	// Everything was released: the same addresses bind again.
	c = validBase(t)
	c.Listeners[0].Address = "127.0.0.1:0"
	c.Gossip.Bind = "127.0.0.1:0"
	for range 2 {
		if err := c.CheckPorts(); err != nil {
			t.Fatal(err)
		}
	}
}

// Loads share no state: run several at once with different environments.
func TestConcurrentLoads(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			d := time.Duration(i+1) * time.Second
			c, err := Parse([]byte(minimalYAML), env("SLUICE_HEALTH_INTERVAL", d.String()))
			if err != nil {
				errs <- err
				return
			}
			if c.Health.Interval != d {
				errs <- errors.New("interval " + c.Health.Interval.String() + " != " + d.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// writeCert writes a self-signed certificate and key as dir/name.crt and
// dir/name.key.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestMySQLListenerKeys(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	if err := os.WriteFile(filepath.Join(dir, "rsa.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, ecKey := writeCert(t, dir, "ec")
	load := func(listener string) (*Config, error) {
		yaml := `
listeners:
  - {name: l, address: "127.0.0.1:6033", cluster: db` + listener + `}
clusters:
  db: {protocol: mysql, backends: [{address: "db1:3306"}]}
users: [{name: u, password: p}]
`
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return LoadWith(path, noEnv)
	}
	c, err := load(", local_infile: true, rsa_key: rsa.pem")
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Listeners[0]; !l.LocalInfile || l.RSAKey != filepath.Join(dir, "rsa.pem") {
		t.Errorf("listener = %+v, want local_infile and an absolute rsa_key", l)
	}
	_, err = load(", rsa_key: missing.pem")
	if err == nil || !strings.Contains(err.Error(), "listeners[0].rsa_key:") || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing rsa_key: %v", err)
	}
	_, err = load(", rsa_key: " + ecKey)
	wantErrors(t, err, fmt.Sprintf(`listeners[0].rsa_key: %q: mysqlwire: private key is *ecdsa.PrivateKey, not RSA`, ecKey))
	_, err = loadPG(t, dir, "    local_infile: true\n    rsa_key: rsa.pem\n")
	wantErrors(t, err, "listeners[0].local_infile: only for mysql listeners", "listeners[0].rsa_key: only for mysql listeners")
	_, err = loadPG(t, dir, "    local_infile: false\n")
	if err != nil {
		t.Errorf("postgres listener with local_infile false: %v", err)
	}
}

// loadPG loads minimalYAML (a postgres listener) with extra listener lines.
func loadPG(t *testing.T, dir, extra string) (*Config, error) {
	t.Helper()
	yaml := strings.Replace(minimalYAML, "    cluster: main-pg\n", "    cluster: main-pg\n"+extra, 1)
	path := filepath.Join(dir, "pg.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return LoadWith(path, noEnv)
}
