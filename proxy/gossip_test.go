package proxy

import (
	"os"
	"testing"

	"github.com/sluicedb/sluice/config"
)

func TestMemberName(t *testing.T) {
	host, _ := os.Hostname()
	for _, c := range []struct {
		cfg  config.Gossip
		want string
	}{
		{config.Gossip{Name: "a", Bind: "10.0.0.1:7946"}, "a"},
		{config.Gossip{Advertise: "10.0.0.9:7946", Bind: "0.0.0.0:7946"}, "10.0.0.9:7946"},
		{config.Gossip{Bind: "10.0.0.1:7946"}, "10.0.0.1:7946"},
		{config.Gossip{Bind: "0.0.0.0:7946"}, host + ":7946"},
		{config.Gossip{Bind: ":7946"}, host + ":7946"},
		{config.Gossip{Bind: "127.0.0.1:0"}, host},
	} {
		if got := memberName(c.cfg); got != c.want {
			t.Errorf("memberName(%+v) = %q, want %q", c.cfg, got, c.want)
		}
	}
}
