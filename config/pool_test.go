package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

// defaultClusterPool is what a cluster's pool is after Load when the file
// sets nothing.
var defaultClusterPool = Pool{Mode: "session", IdleTimeout: 10 * time.Minute, MaxLifetime: time.Hour, CheckoutTimeout: 30 * time.Second}

// withClusterPool puts a pool section into minimalYAML's cluster.
func withClusterPool(pool string) string {
	return strings.Replace(minimalYAML, "    protocol: postgres\n", "    protocol: postgres\n    pool:\n"+pool, 1)
}

// withUserPool puts a pool section into minimalYAML's user.
func withUserPool(pool string) string {
	return minimalYAML + "    pool:\n" + pool
}

func TestPoolDefaults(t *testing.T) {
	c := mustParse(t, minimalYAML, noEnv)
	if got := c.Clusters["main-pg"].Pool; got != defaultClusterPool {
		t.Errorf("cluster pool = %+v, want %+v", got, defaultClusterPool)
	}
	if got := c.Users[0].Pool; got != (Pool{}) {
		t.Errorf("user pool = %+v, want all zero (inherit)", got)
	}
	if got := c.PoolFor("main-pg", "app"); got != defaultClusterPool {
		t.Errorf("PoolFor = %+v, want %+v", got, defaultClusterPool)
	}

	// A partial section keeps the other defaults; transaction mode resolves
	// max_server_conns 0 to 20 in PoolFor only.
	c = mustParse(t, withClusterPool("      mode: transaction\n      max_client_conns: 7\n"), noEnv)
	want := defaultClusterPool
	want.Mode, want.MaxClientConns = "transaction", 7
	if got := c.Clusters["main-pg"].Pool; got != want {
		t.Errorf("cluster pool = %+v, want %+v", got, want)
	}
	want.MaxServerConns = 20
	if got := c.PoolFor("main-pg", "app"); got != want {
		t.Errorf("PoolFor = %+v, want %+v", got, want)
	}

	// An empty pool section ("pool:" = null) gets the defaults too.
	c = mustParse(t, withClusterPool(""), noEnv)
	if got := c.Clusters["main-pg"].Pool; got != defaultClusterPool {
		t.Errorf("cluster pool with null section = %+v, want %+v", got, defaultClusterPool)
	}
}

func TestPoolExplicitValues(t *testing.T) {
	c := mustParse(t, withClusterPool(`      mode: transaction
      max_server_conns: 50
      min_idle: 5
      idle_timeout: 0
      max_lifetime: 0s
      checkout_timeout: 2s
`), noEnv)
	want := Pool{Mode: "transaction", MaxServerConns: 50, MinIdle: 5, CheckoutTimeout: 2 * time.Second}
	if got := c.Clusters["main-pg"].Pool; got != want {
		t.Errorf("cluster pool = %+v, want %+v (explicit 0 durations kept)", got, want)
	}
	if got := c.PoolFor("main-pg", "app"); got != want {
		t.Errorf("PoolFor = %+v, want %+v", got, want)
	}

	c = mustParse(t, withUserPool(`      mode: transaction
      max_server_conns: 4
      min_idle: 1
      idle_timeout: 1m
      max_lifetime: 2m
      checkout_timeout: 3s
      max_client_conns: 9
`), noEnv)
	wantUser := Pool{MaxClientConns: 9, Mode: "transaction", MaxServerConns: 4, MinIdle: 1,
		IdleTimeout: time.Minute, MaxLifetime: 2 * time.Minute, CheckoutTimeout: 3 * time.Second}
	if got := c.Users[0].Pool; got != wantUser {
		t.Errorf("user pool = %+v, want %+v", got, wantUser)
	}
	wantUser.MaxClientConns = 0 // PoolFor reports the cluster's
	if got := c.PoolFor("main-pg", "app"); got != wantUser {
		t.Errorf("PoolFor = %+v, want %+v", got, wantUser)
	}
}

func TestPoolFor(t *testing.T) {
	cluster := Pool{MaxClientConns: 100, Mode: "session", MaxServerConns: 0, MinIdle: 2,
		IdleTimeout: 5 * time.Minute, MaxLifetime: 0, CheckoutTimeout: 10 * time.Second}
	txCluster := Pool{Mode: "transaction", MaxServerConns: 8, IdleTimeout: time.Minute, MaxLifetime: time.Hour, CheckoutTimeout: time.Second}
	c := &Config{
		Clusters: map[string]Cluster{"pg": {Pool: cluster}, "tx": {Pool: txCluster}, "bare": {}},
		Users: []User{
			{Name: "plain"},
			{Name: "tx", Pool: Pool{Mode: "transaction", MaxClientConns: 1}},
			{Name: "custom", Pool: Pool{MaxServerConns: 3, MinIdle: 1, IdleTimeout: time.Second, MaxLifetime: time.Minute, CheckoutTimeout: 5 * time.Second}},
			{Name: "session", Pool: Pool{Mode: "session"}},
		},
	}
	tests := []struct {
		cluster, user string
		want          Pool
	}{
		{"pg", "plain", cluster},
		{"pg", "nobody", cluster},
		{"pg", "tx", Pool{MaxClientConns: 100, Mode: "transaction", MaxServerConns: 20, MinIdle: 2,
			IdleTimeout: 5 * time.Minute, CheckoutTimeout: 10 * time.Second}},
		{"pg", "custom", Pool{MaxClientConns: 100, Mode: "session", MaxServerConns: 3, MinIdle: 1,
			IdleTimeout: time.Second, MaxLifetime: time.Minute, CheckoutTimeout: 5 * time.Second}},
		{"tx", "plain", txCluster},
		{"tx", "session", Pool{Mode: "session", MaxServerConns: 8, IdleTimeout: time.Minute, MaxLifetime: time.Hour, CheckoutTimeout: time.Second}},
		{"tx", "custom", Pool{Mode: "transaction", MaxServerConns: 3, MinIdle: 1,
			IdleTimeout: time.Second, MaxLifetime: time.Minute, CheckoutTimeout: 5 * time.Second}},
		// Unknown cluster: the defaults.
		{"nope", "plain", defaultClusterPool},
		{"nope", "tx", Pool{Mode: "transaction", MaxServerConns: 20, IdleTimeout: 10 * time.Minute, MaxLifetime: time.Hour, CheckoutTimeout: 30 * time.Second}},
		// A cluster built by hand without defaults: mode and checkout
		// timeout resolved, zero durations mean never / no limit.
		{"bare", "plain", Pool{Mode: "session", CheckoutTimeout: 30 * time.Second}},
		{"bare", "tx", Pool{Mode: "transaction", MaxServerConns: 20, CheckoutTimeout: 30 * time.Second}},
	}
	for _, tc := range tests {
		if got := c.PoolFor(tc.cluster, tc.user); got != tc.want {
			t.Errorf("PoolFor(%q, %q) = %+v\nwant %+v", tc.cluster, tc.user, got, tc.want)
		}
	}
}

func TestPoolEnvOverrides(t *testing.T) {
	yaml := minimalYAML + "  - name: other\n    password: other\n    pool: {max_server_conns: 3}\n"
	c := mustParse(t, yaml, env(
		"SLUICE_CLUSTERS_MAIN_PG_POOL_MODE", "transaction",
		"SLUICE_CLUSTERS_MAIN_PG_POOL_MAX_SERVER_CONNS", "40",
		"SLUICE_CLUSTERS_MAIN_PG_POOL_MIN_IDLE", "4",
		"SLUICE_CLUSTERS_MAIN_PG_POOL_IDLE_TIMEOUT", "0s",
		"SLUICE_CLUSTERS_MAIN_PG_POOL_MAX_LIFETIME", "2h",
		"SLUICE_CLUSTERS_MAIN_PG_POOL_CHECKOUT_TIMEOUT", "1500ms",
		"SLUICE_CLUSTERS_MAIN_PG_POOL_MAX_CLIENT_CONNS", "500",
		"SLUICE_USERS_0_POOL_MODE", "session",
		"SLUICE_USERS_0_POOL_CHECKOUT_TIMEOUT", "5s",
		"SLUICE_USERS_1_POOL_MIN_IDLE", "2",
		"SLUICE_USERS_1_POOL_IDLE_TIMEOUT", "1m",
	))
	wantCluster := Pool{MaxClientConns: 500, Mode: "transaction", MaxServerConns: 40, MinIdle: 4,
		MaxLifetime: 2 * time.Hour, CheckoutTimeout: 1500 * time.Millisecond}
	if got := c.Clusters["main-pg"].Pool; got != wantCluster {
		t.Errorf("cluster pool = %+v, want %+v", got, wantCluster)
	}
	if got, want := c.Users[0].Pool, (Pool{Mode: "session", CheckoutTimeout: 5 * time.Second}); got != want {
		t.Errorf("users[0].pool = %+v, want %+v", got, want)
	}
	if got, want := c.Users[1].Pool, (Pool{MaxServerConns: 3, MinIdle: 2, IdleTimeout: time.Minute}); got != want {
		t.Errorf("users[1].pool = %+v, want %+v", got, want)
	}
	if got, want := c.PoolFor("main-pg", "app"), (Pool{MaxClientConns: 500, Mode: "session", MaxServerConns: 40, MinIdle: 4,
		MaxLifetime: 2 * time.Hour, CheckoutTimeout: 5 * time.Second}); got != want {
		t.Errorf("PoolFor(app) = %+v, want %+v", got, want)
	}
	if got, want := c.PoolFor("main-pg", "other"), (Pool{MaxClientConns: 500, Mode: "transaction", MaxServerConns: 3, MinIdle: 2,
		IdleTimeout: time.Minute, MaxLifetime: 2 * time.Hour, CheckoutTimeout: 1500 * time.Millisecond}); got != want {
		t.Errorf("PoolFor(other) = %+v, want %+v", got, want)
	}

	_, err := Parse([]byte(minimalYAML), env(
		"SLUICE_CLUSTERS_MAIN_PG_POOL_IDLE_TIMEOUT", "10",
		"SLUICE_USERS_0_POOL_MAX_SERVER_CONNS", "lots",
	))
	wantErrors(t, err,
		`SLUICE_CLUSTERS_MAIN_PG_POOL_IDLE_TIMEOUT (clusters.main-pg.pool.idle_timeout): invalid duration "10"`,
		`SLUICE_USERS_0_POOL_MAX_SERVER_CONNS (users[0].pool.max_server_conns): expected a whole number, got "lots"`)

	_, err = Parse([]byte(minimalYAML), env("SLUICE_CLUSTERS_MAIN_PG_POOL_MODE", "statement", "SLUICE_USERS_0_POOL_CHECKOUT_TIMEOUT", "-1s"))
	wantErrors(t, err,
		`clusters.main-pg.pool.mode: invalid value "statement", want one of "session", "transaction"`,
		"users[0].pool.checkout_timeout: must not be negative (0 = the cluster's), got -1s")
}

func TestPoolValidate(t *testing.T) {
	pool := func(f func(*Pool)) func(*Config) {
		return func(c *Config) { mutateCluster(c, func(cl *Cluster) { f(&cl.Pool) }) }
	}
	userPool := func(f func(*Pool)) func(*Config) {
		return func(c *Config) { f(&c.Users[0].Pool) }
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"mode transaction", pool(func(p *Pool) { p.Mode = "transaction" }), nil},
		{"mode required", pool(func(p *Pool) { p.Mode = "" }),
			[]string{`clusters.main-pg.pool.mode: required, one of "session", "transaction"`}},
		{"mode enum", pool(func(p *Pool) { p.Mode = "statement" }),
			[]string{`clusters.main-pg.pool.mode: invalid value "statement", want one of "session", "transaction"`}},
		{"max_server_conns negative", pool(func(p *Pool) { p.MaxServerConns = -1 }),
			[]string{"clusters.main-pg.pool.max_server_conns: must be 0 (default: no limit in session mode, 20 in transaction mode) or more, got -1"}},
		{"min_idle negative", pool(func(p *Pool) { p.MinIdle = -1 }),
			[]string{"clusters.main-pg.pool.min_idle: must be 0 or more, got -1"}},
		{"min_idle above max_server_conns", pool(func(p *Pool) { p.MaxServerConns = 5; p.MinIdle = 6 }),
			[]string{"clusters.main-pg.pool.min_idle: 6 is above clusters.main-pg.pool.max_server_conns 5"}},
		{"min_idle equal to max_server_conns", pool(func(p *Pool) { p.MaxServerConns = 5; p.MinIdle = 5 }), nil},
		{"min_idle without a limit", pool(func(p *Pool) { p.MinIdle = 100 }), nil},
		{"min_idle above the transaction default", pool(func(p *Pool) { p.Mode = "transaction"; p.MinIdle = 21 }),
			[]string{"clusters.main-pg.pool.min_idle: 21 is above the max_server_conns of transaction mode, 20 by default: lower it or set clusters.main-pg.pool.max_server_conns"}},
		{"idle_timeout negative", pool(func(p *Pool) { p.IdleTimeout = -time.Second }),
			[]string{"clusters.main-pg.pool.idle_timeout: must not be negative (0 = never close idle connections), got -1s"}},
		{"idle_timeout 0 is never", pool(func(p *Pool) { p.IdleTimeout = 0 }), nil},
		{"max_lifetime negative", pool(func(p *Pool) { p.MaxLifetime = -time.Minute }),
			[]string{"clusters.main-pg.pool.max_lifetime: must not be negative (0 = no limit), got -1m0s"}},
		{"max_lifetime 0 is no limit", pool(func(p *Pool) { p.MaxLifetime = 0 }), nil},
		{"checkout_timeout 0", pool(func(p *Pool) { p.CheckoutTimeout = 0 }),
			[]string{"clusters.main-pg.pool.checkout_timeout: must be a positive duration, got 0s"}},
		{"max_client_conns negative", pool(func(p *Pool) { p.MaxClientConns = -1 }),
			[]string{"clusters.main-pg.pool.max_client_conns: must be 0 (no limit) or more, got -1"}},

		{"user overrides", userPool(func(p *Pool) {
			*p = Pool{Mode: "transaction", MaxServerConns: 3, MinIdle: 3, IdleTimeout: time.Second, MaxLifetime: time.Second, CheckoutTimeout: time.Second}
		}), nil},
		{"user mode enum", userPool(func(p *Pool) { p.Mode = "Session" }),
			[]string{`users[0].pool.mode: invalid value "Session", want one of "session", "transaction"`}},
		{"user negatives", userPool(func(p *Pool) {
			*p = Pool{MaxClientConns: -1, MaxServerConns: -1, MinIdle: -1, IdleTimeout: -1, MaxLifetime: -time.Second, CheckoutTimeout: -time.Millisecond}
		}), []string{
			"users[0].pool.max_client_conns: must be 0 (no limit) or more, got -1",
			"users[0].pool.max_server_conns: must be 0 (the cluster's) or more, got -1",
			"users[0].pool.min_idle: must be 0 (the cluster's) or more, got -1",
			"users[0].pool.idle_timeout: must not be negative (0 = the cluster's), got -1ns",
			"users[0].pool.max_lifetime: must not be negative (0 = the cluster's), got -1s",
			"users[0].pool.checkout_timeout: must not be negative (0 = the cluster's), got -1ms",
		}},
		{"user min_idle above own max_server_conns", userPool(func(p *Pool) { p.MaxServerConns = 2; p.MinIdle = 3 }),
			[]string{"users[0].pool.min_idle: 3 is above users[0].pool.max_server_conns 2"}},
		{"user min_idle above the cluster's max_server_conns", func(c *Config) {
			pool(func(p *Pool) { p.MaxServerConns = 4 })(c)
			c.Users[0].Pool.MinIdle = 5
		}, []string{`users[0].pool.min_idle: in cluster "main-pg" min_idle 5 (users[0].pool.min_idle) is above max_server_conns 4 (clusters.main-pg.pool.max_server_conns)`}},
		{"user max_server_conns below the cluster's min_idle", func(c *Config) {
			pool(func(p *Pool) { p.MinIdle = 5 })(c)
			c.Users[0].Pool.MaxServerConns = 4
		}, []string{`users[0].pool.max_server_conns: in cluster "main-pg" min_idle 5 (clusters.main-pg.pool.min_idle) is above max_server_conns 4 (users[0].pool.max_server_conns)`}},
		{"user transaction mode under the cluster's min_idle", func(c *Config) {
			pool(func(p *Pool) { p.MinIdle = 25 })(c)
			c.Users[0].Pool.Mode = "transaction"
		}, []string{`users[0].pool.mode: in cluster "main-pg" min_idle 25 (clusters.main-pg.pool.min_idle) is above max_server_conns 20 (the default of transaction mode)`}},
		{"cluster problem reported once", func(c *Config) {
			pool(func(p *Pool) { p.MaxServerConns = 2; p.MinIdle = 3 })(c)
			c.Users[0].Pool.Mode = "transaction"
		}, []string{"clusters.main-pg.pool.min_idle: 3 is above clusters.main-pg.pool.max_server_conns 2"}},
		{"user fixes the cluster's numbers", func(c *Config) {
			pool(func(p *Pool) { p.Mode = "transaction"; p.MaxServerConns = 5 })(c)
			c.Users[0].Pool = Pool{Mode: "session", MinIdle: 5}
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validBase(t)
			tc.mutate(c)
			wantErrors(t, c.Validate(), tc.want...)
		})
	}
}

func TestPoolLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown pool key", withClusterPool("      max_server_con: 5\n"),
			[]string{`unknown key "clusters.main-pg.pool.max_server_con" (line 10; did you mean "max_server_conns"?)`}},
		{"mode is a string", withClusterPool("      mode: 1\n"),
			[]string{`clusters.main-pg.pool.mode: expected a string, got the number 1`}},
		{"duration needs a unit", withClusterPool("      idle_timeout: 600\n"),
			[]string{`clusters.main-pg.pool.idle_timeout: duration 600 needs a unit`}},
		{"user duration", withUserPool("      max_lifetime: forever\n"),
			[]string{`users[0].pool.max_lifetime: invalid duration "forever"`}},
		{"whole number", withUserPool("      min_idle: 1.5\n"),
			[]string{`users[0].pool.min_idle: expected a whole number, got the number 1.5`}},
		{"checkout_timeout 0", withClusterPool("      checkout_timeout: 0s\n"),
			[]string{"clusters.main-pg.pool.checkout_timeout: must be a positive duration, got 0s"}},
		{"negative max_server_conns", withClusterPool("      max_server_conns: -2\n"),
			[]string{"clusters.main-pg.pool.max_server_conns: must be 0 (default: no limit in session mode, 20 in transaction mode) or more, got -2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), noEnv)
			wantErrors(t, err, tc.want...)
		})
	}
}

// The commented users[].pool example of config.yaml must be valid once
// uncommented.
func TestExampleFileUserPool(t *testing.T) {
	data, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inBlock := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(line, "    # pool:") {
			inBlock = true
			line = "    pool:"
		} else if inBlock && strings.HasPrefix(line, "    #   ") {
			line = "    " + line[len("    #"):]
			if i := strings.Index(line, "#"); i >= 0 {
				line = line[:i]
			}
		} else {
			inBlock = false
		}
		out = append(out, line)
	}
	c, err := Parse([]byte(strings.Join(out, "\n")), noEnv)
	if err != nil {
		t.Fatalf("config.yaml with the user pool uncommented: %v", err)
	}
	u := c.Users[0].Pool
	if u.Mode != "transaction" || u.MaxServerConns == 0 || u.IdleTimeout == 0 || u.CheckoutTimeout == 0 {
		t.Errorf("users[0].pool = %+v: want the example's values", u)
	}
	if p := c.PoolFor("main-pg", "app"); p.Mode != "transaction" || p.MaxServerConns != u.MaxServerConns {
		t.Errorf("PoolFor = %+v", p)
	}
}
