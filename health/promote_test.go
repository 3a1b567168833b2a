package health

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sluicedb/sluice/topology"
)

func TestParseConninfo(t *testing.T) {
	cases := []struct {
		in   string
		want []conninfoParam
	}{
		{"", nil},
		{"   ", nil},
		{"host=a port=5432", []conninfoParam{{"host", "a"}, {"port", "5432"}}},
		{"  host = a\tport= 5432 ", []conninfoParam{{"host", "a"}, {"port", "5432"}}},
		{`password='a b' user=x`, []conninfoParam{{"password", "a b"}, {"user", "x"}}},
		{`password='it\'s \\ here'`, []conninfoParam{{"password", `it's \ here`}}},
		{`password=it\'s\ ok`, []conninfoParam{{"password", `it's ok`}}},
		{`options='' host=h`, []conninfoParam{{"options", ""}, {"host", "h"}}},
		{`application_name=pg1 options='-c wal_sender_timeout=5s'`,
			[]conninfoParam{{"application_name", "pg1"}, {"options", "-c wal_sender_timeout=5s"}}},
	}
	for _, c := range cases {
		got, err := parseConninfo(c.in)
		if err != nil {
			t.Errorf("parseConninfo(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseConninfo(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"host", "host a", "=a", "password='open", "host=a port"} {
		if got, err := parseConninfo(bad); err == nil {
			t.Errorf("parseConninfo(%q) = %q, want an error", bad, got)
		}
	}
}

func TestFormatConninfoRoundTrip(t *testing.T) {
	params := []conninfoParam{
		{"host", "127.0.0.1"},
		{"password", `it's a "secret" \ with spaces`},
		{"options", ""},
		{"application_name", "tab\there"},
		{"sslmode", "prefer"},
	}
	s := formatConninfo(params)
	want := `host=127.0.0.1 password='it\'s a "secret" \\ with spaces' options='' application_name='tab	here' sslmode=prefer`
	if s != want {
		t.Errorf("formatConninfo = %s, want %s", s, want)
	}
	back, err := parseConninfo(s)
	if err != nil || !reflect.DeepEqual(back, params) {
		t.Errorf("round trip: %q, %v; want %q", back, err, params)
	}
}

func TestRewriteConninfo(t *testing.T) {
	cases := []struct{ in, want string }{
		// What pg_basebackup -R writes.
		{`user=postgres passfile='/var/lib/postgresql/.pgpass' channel_binding=prefer host=127.0.0.1 port=5433 sslmode=prefer application_name=pg1`,
			`user=postgres passfile=/var/lib/postgresql/.pgpass channel_binding=prefer host=10.0.0.2 port=6543 sslmode=prefer application_name=pg1`},
		{`host=old port=1 password='p w\'d'`, `host=10.0.0.2 port=6543 password='p w\'d'`},
		{`user=repl`, `user=repl host=10.0.0.2 port=6543`},
		{`hostaddr=10.9.9.9 host=old.example port=5432 user=r`, `host=10.0.0.2 port=6543 user=r`},
		{`host=a host=b port=1`, `host=10.0.0.2 port=6543`},
		{`host=a,b port=1,2 user=r`, `host=10.0.0.2 port=6543 user=r`},
		{`postgresql://repl:secret@old:5432/postgres?application_name=pg1`,
			`postgresql://repl:secret@10.0.0.2:6543/postgres?application_name=pg1`},
		{`postgres://old/db?host=x&port=1&sslmode=disable`, `postgres://10.0.0.2:6543/db?sslmode=disable`},
	}
	for _, c := range cases {
		got, err := rewriteConninfo(c.in, "10.0.0.2", "6543")
		if err != nil {
			t.Errorf("rewriteConninfo(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("rewriteConninfo(%q)\n got %s\nwant %s", c.in, got, c.want)
		}
	}
	got, err := rewriteConninfo("host=a", "::1", "5432")
	if err != nil || got != "host=::1 port=5432" {
		t.Errorf("IPv6: %q, %v", got, err)
	}
	if _, err := rewriteConninfo("host='a", "h", "1"); err == nil {
		t.Error("unterminated quote: want an error")
	}
}

func TestPGQuoteLiteral(t *testing.T) {
	cases := map[string]string{
		"":                 `''`,
		"host=a port=1":    `'host=a port=1'`,
		`password='it''s'`: `'password=''it''''s'''`,
		`password='a\'b'`:  `E'password=''a\\''b'''`,
	}
	for in, want := range cases {
		got, err := pgQuoteLiteral(in)
		if err != nil || got != want {
			t.Errorf("pgQuoteLiteral(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := pgQuoteLiteral("a\x00b"); err == nil {
		t.Error("NUL: want an error")
	}
}

func TestWaitSeconds(t *testing.T) {
	if got := waitSeconds(context.Background(), time.Minute); got != 60 {
		t.Errorf("no deadline: %d", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10500*time.Millisecond)
	defer cancel()
	if got := waitSeconds(ctx, time.Minute); got != 10 {
		t.Errorf("10.5 s deadline: %d", got)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel2()
	if got := waitSeconds(ctx2, time.Minute); got != 1 {
		t.Errorf("expiring deadline: %d", got)
	}
}

func TestBackendLabel(t *testing.T) {
	if got := backendLabel(topology.Backend{Name: "pg1", Addr: "h:1"}); got != "pg1 (h:1)" {
		t.Error(got)
	}
	if got := backendLabel(topology.Backend{Name: "h:1", Addr: "h:1"}); got != "h:1" {
		t.Error(got)
	}
}

func TestSlaveStatusLag(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "0": 0, "7": 7 * time.Second, "-1": 0, "x": 0} {
		if got := (slaveStatus{"Seconds_Behind_Master": in}).lag(); got != want {
			t.Errorf("lag(%q) = %v, want %v", in, got, want)
		}
	}
}
