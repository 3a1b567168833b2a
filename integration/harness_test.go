package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/integration/localcluster"
	"github.com/sluicedb/sluice/proxy"
)

// env is the shared test environment: one PostgreSQL primary with two
// streaming replicas, and one Sluice instance in front of it with an auto,
// a writer and a reader listener (plus a TLS-only and an md5 listener).
type env struct {
	pg    *localcluster.PostgresCluster
	proxy *proxy.Proxy
	dir   string
}

var shared *env

func TestMain(m *testing.M) {
	code, err := runMain(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration setup failed:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runMain(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "sluice-it-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	pgc, err := localcluster.StartPostgres(ctx, localcluster.PostgresOptions{
		Replicas:  2,
		Users:     []localcluster.User{{Name: "app", Password: "app"}, {Name: "other", Password: "other"}},
		Databases: []string{"app"},
	})
	if err != nil {
		return 0, fmt.Errorf("starting PostgreSQL: %w", err)
	}
	defer pgc.Stop()
	p, err := startProxy(ctx, dir, pgc, nil)
	if err != nil {
		return 0, err
	}
	shared = &env{pg: pgc, proxy: p, dir: dir}
	code := m.Run()
	stopMySQL()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := p.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "proxy shutdown:", err)
	}
	return code, nil
}

// proxyYAML is the configuration of the shared proxy; ports are 0 (free)
// and read back with Proxy.Addr.
const proxyYAML = `
listeners:
  - {name: auto, address: "127.0.0.1:0", cluster: pg, route: auto}
  - {name: writer, address: "127.0.0.1:0", cluster: pg, route: writer}
  - {name: reader, address: "127.0.0.1:0", cluster: pg, route: reader}
  - {name: md5, address: "127.0.0.1:0", cluster: pg, route: auto, auth: md5}
  - {name: tls, address: "127.0.0.1:0", cluster: pg, route: auto, auth: password, tls: {cert: %[2]q, key: %[3]q}}
  - {name: eventual, address: "127.0.0.1:0", cluster: pg-eventual, route: auto}
clusters:
  pg:
    protocol: postgres
    backends: [{address: %[1]q}, {address: %[4]q}, {address: %[5]q}]
    writer_functions: [my_writer_func]
  pg-eventual:
    protocol: postgres
    consistency: eventual
    backends: [{address: %[1]q}, {address: %[4]q}, {address: %[5]q}]
users:
  - {name: app, password: app}
  - {name: other, password: other}
health: {interval: 200ms, timeout: 2s, failures: 3, successes: 2}
http: {address: "127.0.0.1:0"}
server: {max_message_size: 1MiB, auth_failure_delay: 50ms}
log: {level: warn}
`

func startProxy(ctx context.Context, dir string, pgc *localcluster.PostgresCluster, mutate func(*config.Config)) (*proxy.Proxy, error) {
	cert, key, err := writeSelfSigned(dir)
	if err != nil {
		return nil, err
	}
	nodes := pgc.Nodes()
	yaml := fmt.Sprintf(proxyYAML, nodes[0].Addr(), cert, key, nodes[1].Addr(), nodes[2].Addr())
	cfg, err := config.Parse([]byte(yaml), func(string) string { return "" })
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if mutate != nil {
		mutate(cfg)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := proxy.New(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// startProxyCfg starts a proxy with cfg, logging at level to stderr, and
// shuts it down when the test ends.
func startProxyCfg(t testing.TB, ctx context.Context, cfg *config.Config, level slog.Level) *proxy.Proxy {
	t.Helper()
	p, err := proxy.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Shutdown(sctx)
	})
	return p
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1/localhost.
func writeSelfSigned(dir string) (certPath, keyPath string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sluice-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// dsn returns a connection string for the named listener of the shared proxy.
func dsn(t testing.TB, listener, user, password, db string, extra string) string {
	t.Helper()
	a := shared.proxy.Addr(listener)
	if a == nil {
		t.Fatalf("no listener %q", listener)
	}
	s := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&connect_timeout=10", user, password, a.String(), db)
	if extra != "" {
		s += "&" + extra
	}
	return s
}

// appDSN is dsn for user app on database app.
func appDSN(t testing.TB, listener string) string { return dsn(t, listener, "app", "app", "app", "") }

// testCtx returns a context bounded by a generous deadline for one test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
