package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitGoroutines polls until at most n goroutines run, failing the test at
// the deadline.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= n {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines still running, want at most %d:\n%s", got, n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// do performs a request with the given method and returns status, content type
// and body.
func do(t *testing.T, c *http.Client, method, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

type testStatus struct {
	Instance string         `json:"instance"`
	Epochs   map[string]int `json:"epochs"`
}

// TestServerEndToEnd starts a real server on 127.0.0.1:0, exercises every
// route and checks that Shutdown leaves no goroutine behind. It must not run
// in parallel with other tests because it counts goroutines.
func TestServerEndToEnd(t *testing.T) {
	before := runtime.NumGoroutine()

	m := NewMetrics()
	m.ClientConnsTotal.WithLabelValues("pg").Add(2)
	other := NewMetrics() // a second instance in the same process
	other.ClientConnsTotal.WithLabelValues("pg").Add(40)

	var unhealthy atomic.Pointer[error]
	srv := NewServer(ServerOptions{
		Address: "127.0.0.1:0",
		Metrics: m,
		Status: func() any {
			return testStatus{Instance: "sluice-1", Epochs: map[string]int{"main-pg": 3}}
		},
		Healthy: func() error {
			if e := unhealthy.Load(); e != nil {
				return *e
			}
			return nil
		},
	})
	addr, err := srv.Start()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if tcp, ok := addr.(*net.TCPAddr); !ok || tcp.Port == 0 {
		t.Fatalf("Start returned %v, want a TCP address with a real port", addr)
	}
	base := "http://" + addr.String()
	tr := &http.Transport{}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	code, _, body := do(t, c, "GET", base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d", code)
	}
	if !strings.Contains(body, `sluice_client_connections_total{listener="pg"} 2`+"\n") {
		t.Errorf("/metrics lacks the incremented counter (or shows another instance's):\n%s", body)
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Error("/metrics lacks the Go collector")
	}

	code, ctype, body := do(t, c, "GET", base+"/status")
	if code != http.StatusOK || ctype != "application/json" {
		t.Fatalf("/status: status %d, content type %q", code, ctype)
	}
	var st testStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	if st.Instance != "sluice-1" || st.Epochs["main-pg"] != 3 {
		t.Errorf("/status = %+v", st)
	}
	if !strings.Contains(body, "\n  \"instance\"") {
		t.Errorf("/status is not indented:\n%s", body)
	}

	if code, _, body := do(t, c, "GET", base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz healthy: %d %q", code, body)
	}
	down := errors.New("writer of main-pg unknown")
	unhealthy.Store(&down)
	if code, _, body := do(t, c, "GET", base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, down.Error()) {
		t.Errorf("/healthz unhealthy: %d %q", code, body)
	}

	if code, _, _ := do(t, c, "GET", base+"/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: status %d, want 404", code)
	}
	if code, _, _ := do(t, c, "GET", base+"/"); code != http.StatusNotFound {
		t.Errorf("/: status %d, want 404", code)
	}
	if code, _, _ := do(t, c, "POST", base+"/healthz"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: status %d, want 405", code)
	}
	if code, _, _ := do(t, c, "HEAD", base+"/metrics"); code != http.StatusOK {
		t.Errorf("HEAD /metrics: status %d, want 200", code)
	}

	// Shut down with a keep-alive connection still open: the server must
	// close it itself.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := srv.Start(); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
	if _, err := c.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answering after Shutdown")
	}
	tr.CloseIdleConnections()
	waitGoroutines(t, before)
}

// TestShutdownDeadline checks that a request stuck past the Shutdown
// deadline does not make Shutdown hang, and that Shutdown reports it.
func TestShutdownDeadline(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	srv := NewServer(ServerOptions{
		Address: "127.0.0.1:0",
		Status: func() any {
			close(entered)
			<-release
			return "late"
		},
	})
	addr, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	reqDone := make(chan error, 1)
	go func() {
		resp, err := c.Get("http://" + addr.String() + "/status")
		if err == nil {
			resp.Body.Close()
		}
		reqDone <- err
	}()
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Shutdown(ctx) }()
	select {
	case err := <-stopped:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown hung on a stuck request")
	}
	close(release)
	<-reqDone
}

func TestStartErrors(t *testing.T) {
	if _, err := NewServer(ServerOptions{}).Start(); err == nil {
		t.Error("Start with no address succeeded")
	}

	a := NewServer(ServerOptions{Address: "127.0.0.1:0"})
	addr, err := a.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if _, err := a.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	b := NewServer(ServerOptions{Address: addr.String()})
	if _, err := b.Start(); err == nil {
		b.Shutdown(context.Background())
		t.Error("Start on an address in use succeeded")
	}

	if err := NewServer(ServerOptions{Address: "127.0.0.1:0"}).Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of a server never started: %v", err)
	}
}

// serve runs one request through h without a network.
func serve(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHandlerOptionalRoutes(t *testing.T) {
	h := NewServer(ServerOptions{}).Handler()
	for _, path := range []string{"/metrics", "/status"} {
		if rec := serve(h, "GET", path); rec.Code != http.StatusNotFound {
			t.Errorf("%s without a source: status %d, want 404", path, rec.Code)
		}
	}
	rec := serve(h, "GET", "/healthz")
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Errorf("/healthz with no Healthy func: %d %q", rec.Code, rec.Body.String())
	}
}

func TestStatusEncodingError(t *testing.T) {
	h := NewServer(ServerOptions{Status: func() any { return make(chan int) }}).Handler()
	rec := serve(h, "GET", "/status")
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("unencodable status: %d, want 500", rec.Code)
	}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Error("an error answered as application/json")
	}
}
