package backends

import (
	"errors"
	"testing"

	"github.com/sluicedb/sluice/topology"
)

func TestAdmitClientLimits(t *testing.T) {
	c := NewCluster(ClusterOptions{
		Name:               "c",
		Backends:           []topology.Backend{{Name: "a", Addr: "a:1"}},
		MaxClientConns:     3,
		UserMaxClientConns: map[string]int{"app": 2},
	})
	var rel []func()
	admit := func(user string) error {
		r, err := c.AdmitClient(user)
		if err == nil {
			rel = append(rel, r)
		}
		return err
	}
	for range 2 {
		if err := admit("app"); err != nil {
			t.Fatalf("app within its limit: %v", err)
		}
	}
	if err := admit("app"); !errors.Is(err, ErrTooManyClients) {
		t.Fatalf("third app session: %v, want ErrTooManyClients", err)
	}
	if err := admit("other"); err != nil {
		t.Fatalf("other within the cluster limit: %v", err)
	}
	if err := admit("other"); !errors.Is(err, ErrTooManyClients) {
		t.Fatalf("fourth session: %v, want the cluster limit", err)
	}
	if got := c.Clients(); got != 3 {
		t.Fatalf("Clients() = %d, want 3", got)
	}
	rel[0]()
	rel[0]() // a second call must not give back a second place
	if got := c.Clients(); got != 2 {
		t.Fatalf("after one release Clients() = %d, want 2", got)
	}
	if err := admit("app"); err != nil {
		t.Fatalf("app after a release: %v", err)
	}
	if err := admit("app"); !errors.Is(err, ErrTooManyClients) {
		t.Fatalf("app over its limit again: %v", err)
	}
}

func TestAdmitClientUnlimited(t *testing.T) {
	c := NewCluster(ClusterOptions{Name: "c"})
	for range 1000 {
		if _, err := c.AdmitClient("u"); err != nil {
			t.Fatal(err)
		}
	}
}
