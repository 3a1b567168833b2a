package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Top-level defaults. Per-item defaults (listener route, protocol and auth,
// cluster settings, backend names, monitor user) are applied by
// applyDefaults because they depend on other keys.
var topDefaults = []struct {
	key   string
	value any
}{
	{"health.interval", 500 * time.Millisecond},
	{"health.timeout", time.Second},
	{"health.failures", 3},
	{"health.successes", 2},
	{"gossip.fleet_size", 1},
	{"failover.promote", false},
	{"failover.hold", 10 * time.Second},
	{"server.max_message_size", 64 * MiB},
	{"server.auth_failure_delay", 100 * time.Millisecond},
	{"server.connect_timeout", 5 * time.Second},
	{"server.shutdown_timeout", 10 * time.Second},
	{"server.startup_timeout", 10 * time.Second},
	{"log.level", LogInfo},
	{"log.format", LogText},
}

// defaultMaxReplicaLag is the default of Cluster.MaxReplicaLag.
const defaultMaxReplicaLag = 10 * time.Second

// Load reads the YAML file at path, applies SLUICE_* environment overrides
// (from the process environment) and defaults, resolves users' password_env
// and relative TLS paths (against the file's directory), and validates the
// result. All problems found are returned together (errors.Join), each
// naming its key.
func Load(path string) (*Config, error) {
	return LoadWith(path, os.Getenv)
}

// LoadWith is Load with an explicit environment lookup (nil = os.Getenv),
// used for SLUICE_* overrides and for password_env. An empty value counts as
// unset.
func LoadWith(path string, getenv func(string) string) (*Config, error) {
	if path == "" {
		return nil, errors.New("config: no config file given")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(data, path, filepath.Dir(path), getenv)
}

// Parse is LoadWith for YAML already in memory (tests, `sluice demo`):
// relative TLS paths stay relative to the working directory.
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	return parse(data, "config", "", getenv)
}

func parse(data []byte, name, baseDir string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}

	// 1. Schema check on the YAML itself: unknown keys and value types, with
	// line numbers, before viper lower-cases and flattens everything.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if errs := checkDocument(&doc); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// 2. A fresh viper per load: file, then defaults. The file goes in as
	// the decoded document without its null values: in viper a key set to
	// null (an empty "gossip:" section) shadows the defaults below it.
	fileMap := map[string]any{}
	if doc.Kind != 0 {
		if err := doc.Decode(&fileMap); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	dropNulls(fileMap, reflect.TypeFor[Config]())
	v := viper.NewWithOptions()
	if err := v.MergeConfigMap(fileMap); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, d := range topDefaults {
		v.SetDefault(d.key, d.value)
	}
	if clusters, ok := v.Get("clusters").(map[string]any); ok {
		for cname := range clusters {
			v.SetDefault("clusters."+cname+".max_replica_lag", defaultMaxReplicaLag)
			// Per-cluster defaults go to viper so that an explicit 0 in the
			// file or the environment (never close, no limit) is kept.
			// Users' pools get none: there 0 means "the cluster's".
			v.SetDefault("clusters."+cname+".pool.idle_timeout", defaultPoolIdleTimeout)
			v.SetDefault("clusters."+cname+".pool.max_lifetime", defaultPoolMaxLifetime)
			v.SetDefault("clusters."+cname+".pool.checkout_timeout", defaultPoolCheckoutTimeout)
		}
	}

	// 3. Environment overrides. viper's AutomaticEnv only reaches Unmarshal
	// for keys it already knows and cannot take an injected lookup, so every
	// scalar key of the schema (with the cluster names and list indexes
	// present in the file) is enumerated and looked up explicitly, then set
	// as a viper override.
	if err := applyEnv(v, getenv); err != nil {
		return nil, err
	}

	// 4. Strict decode.
	var cfg Config
	err := v.UnmarshalExact(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.WeaklyTypedInput = false
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			durationHook(), byteSizeHook(), stringListHook())
	})
	if err != nil {
		return nil, decodeError(err)
	}

	// 5. Defaults that depend on other keys, credentials, paths; validate.
	cfg.applyDefaults()
	var errs []error
	unresolved := map[int]bool{}
	for i := range cfg.Users {
		if err := cfg.Users[i].resolvePassword(i, getenv); err != nil {
			errs = append(errs, err)
			unresolved[i] = true
		}
	}
	if baseDir != "" {
		for i := range cfg.Listeners {
			t := &cfg.Listeners[i].TLS
			t.Cert = resolvePath(baseDir, t.Cert)
			t.Key = resolvePath(baseDir, t.Key)
			cfg.Listeners[i].RSAKey = resolvePath(baseDir, cfg.Listeners[i].RSAKey)
		}
	}
	if err := cfg.validate(unresolved); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// applyEnv looks up every overridable key and sets the ones present.
func applyEnv(v *viper.Viper, getenv func(string) string) error {
	raw := v.AllSettings()
	var vars []envVar
	envVars(reflect.TypeFor[Config](), raw, nil, &vars)

	var errs []error
	seen := map[string]keyPath{}
	overridden := map[string]bool{} // paths of list items set by env
	for _, ev := range vars {
		s := getenv(ev.name)
		if prev, dup := seen[ev.name]; dup {
			if s != "" {
				errs = append(errs, fmt.Errorf("%s: ambiguous: overrides both %s and %s (rename a cluster)", ev.name, prev, ev.path))
			}
			continue
		}
		seen[ev.name] = ev.path
		if s == "" {
			continue
		}
		val, err := parseEnv(ev.typ, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %v", ev.name, ev.path, err))
			continue
		}
		// Keys inside list items cannot be addressed as viper keys: change
		// the item in the merged settings and override the whole list.
		setKey := ev.path
		for i, seg := range ev.path {
			if _, isIndex := seg.(int); isIndex {
				setKey = ev.path[:i]
				break
			}
		}
		if len(setKey) == len(ev.path) {
			v.Set(setKey.viperKey(), val)
			continue
		}
		setRaw(raw, ev.path, val)
		v.Set(setKey.viperKey(), getRaw(raw, setKey))
		overridden[ev.path.String()] = true
	}

	// A user's password given by environment replaces a password_env from
	// the file and vice versa (both given by environment is an error later).
	for i := range len(asList(raw["users"])) {
		p := keyPath{"users", i}
		pw, pwEnv := overridden[p.key("password").String()], overridden[p.key("password_env").String()]
		switch {
		case pw && !pwEnv:
			setRaw(raw, p.key("password_env"), "")
		case pwEnv && !pw:
			setRaw(raw, p.key("password"), "")
		default:
			continue
		}
		v.Set("users", raw["users"])
	}
	return errors.Join(errs...)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// dropNulls removes null values from a decoded document of schema type t
// (a struct): null keys are deleted, null map entries and list items (a
// cluster declared as "name:" with nothing under it) become empty maps.
func dropNulls(val any, t reflect.Type) {
	switch {
	case isLeaf(t):
	case t.Kind() == reflect.Struct:
		m, _ := val.(map[string]any)
		for _, f := range fieldsOf(t) {
			if sub, ok := m[f.name]; ok {
				if sub == nil {
					delete(m, f.name)
				} else {
					dropNulls(sub, f.typ)
				}
			}
		}
	case t.Kind() == reflect.Map:
		m, _ := val.(map[string]any)
		for k, sub := range m {
			if sub == nil {
				m[k] = map[string]any{}
			} else {
				dropNulls(sub, t.Elem())
			}
		}
	case t.Kind() == reflect.Slice:
		s, _ := val.([]any)
		for i, sub := range s {
			if sub == nil {
				s[i] = map[string]any{}
			} else {
				dropNulls(sub, t.Elem())
			}
		}
	}
}

// getRaw follows a path without indexes through nested maps.
func getRaw(root map[string]any, p keyPath) any {
	var cur any = root
	for _, seg := range p {
		m, _ := cur.(map[string]any)
		cur = m[seg.(string)]
	}
	return cur
}

// setRaw sets a value at path in the merged settings, creating maps on the
// way. List items along the path exist (their indexes came from the file).
func setRaw(root map[string]any, p keyPath, val any) {
	var cur any = root
	for i, seg := range p {
		last := i == len(p)-1
		switch seg := seg.(type) {
		case string:
			m := cur.(map[string]any)
			if last {
				m[seg] = val
				return
			}
			if _, isIndex := p[i+1].(int); isIndex {
				cur = m[seg] // a list
				continue
			}
			next, ok := m[seg].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[seg] = next
			}
			cur = next
		case int:
			s := cur.([]any)
			if last {
				s[seg] = val
				return
			}
			next, ok := s[seg].(map[string]any)
			if !ok {
				next = map[string]any{}
				s[seg] = next
			}
			cur = next
		}
	}
}

// decodeError rewrites mapstructure's "'health.interval' ..." into
// "health.interval: ...". The schema check normally catches these first.
func decodeError(err error) error {
	var des []*mapstructure.DecodeError
	collectDecodeErrors(err, &des)
	if len(des) == 0 {
		return fmt.Errorf("config: %w", err)
	}
	errs := make([]error, len(des))
	for i, de := range des {
		errs[i] = fmt.Errorf("%s: %w", de.Name(), de.Unwrap())
	}
	return errors.Join(errs...)
}

func collectDecodeErrors(err error, out *[]*mapstructure.DecodeError) {
	if de, ok := err.(*mapstructure.DecodeError); ok {
		*out = append(*out, de)
		return
	}
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			collectDecodeErrors(x, out)
		}
	case interface{ Unwrap() error }:
		collectDecodeErrors(e.Unwrap(), out)
	}
}

func durationHook() mapstructure.DecodeHookFuncType {
	return func(from, to reflect.Type, data any) (any, error) {
		if to != durationType {
			return data, nil
		}
		switch d := data.(type) {
		case time.Duration:
			return d, nil
		case string:
			v, err := time.ParseDuration(strings.TrimSpace(d))
			if err != nil {
				return nil, fmt.Errorf("invalid duration %q", d)
			}
			return v, nil
		}
		if rv := reflect.ValueOf(data); rv.CanInt() && rv.Int() == 0 {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("duration %v needs a unit, e.g. \"500ms\"", data)
	}
}

func stringListHook() mapstructure.DecodeHookFuncType {
	return func(from, to reflect.Type, data any) (any, error) {
		if s, ok := data.(string); ok && to == stringsType {
			return splitList(s), nil
		}
		return data, nil
	}
}

func resolvePath(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// applyDefaults fills the per-item defaults that depend on other keys.
func (c *Config) applyDefaults() {
	for name, cl := range c.Clusters {
		if cl.Consistency == "" {
			cl.Consistency = ConsistencySession
		}
		if cl.ReaderBalance == "" {
			cl.ReaderBalance = BalanceRoundRobin
		}
		if cl.ReaderFallback == "" {
			cl.ReaderFallback = FallbackWriter
		}
		if cl.BackendTLS == "" {
			cl.BackendTLS = BackendTLSDisable
		}
		if cl.Pool.Mode == "" {
			cl.Pool.Mode = PoolSession
		}
		if cl.MonitorUser == "" && len(c.Users) > 0 {
			cl.MonitorUser = c.Users[0].Name
		}
		if cl.AdminUser == "" {
			cl.AdminUser = cl.MonitorUser
		}
		if cl.MonitorDatabase == "" && cl.Protocol == ProtocolPostgres {
			cl.MonitorDatabase = defaultPostgresMonitorDB
		}
		for i := range cl.Backends {
			if cl.Backends[i].Name == "" {
				cl.Backends[i].Name = cl.Backends[i].Address
			}
		}
		c.Clusters[name] = cl
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Route == "" {
			l.Route = RouteAuto
		}
		if cl, ok := c.Clusters[l.Cluster]; ok && l.Protocol == "" {
			l.Protocol = cl.Protocol
		}
		if l.Auth == "" {
			switch l.Protocol {
			case ProtocolPostgres:
				l.Auth = defaultPostgresAuth
			case ProtocolMySQL:
				l.Auth = defaultMySQLAuth
			}
		}
	}
}

// resolvePassword checks that exactly one of password / password_env is set
// and reads password_env into Password.
func (u *User) resolvePassword(i int, getenv func(string) string) error {
	switch {
	case u.Password != "" && u.PasswordEnv != "":
		return fmt.Errorf("users[%d]: password and password_env are mutually exclusive", i)
	case u.Password == "" && u.PasswordEnv == "":
		return nil // Validate reports it
	case u.PasswordEnv != "":
		pw := getenv(u.PasswordEnv)
		if pw == "" {
			return fmt.Errorf("users[%d].password_env: environment variable %s is not set (or empty)", i, u.PasswordEnv)
		}
		u.Password = pw
	}
	return nil
}
