package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/integration/localcluster"
)

// runDemo starts a local PostgreSQL primary with two streaming replicas on
// the ports the configuration names, then the proxy in front of them, and
// tears everything down on Ctrl-C.
func runDemo(args []string, stdout, stderr io.Writer) int {
	path, ok := configFlag("demo", args, stderr)
	if !ok {
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n%s\n", path, indent(err.Error()))
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var users []localcluster.User
	for _, u := range cfg.Users {
		users = append(users, localcluster.User{Name: u.Name, Password: u.Password})
	}
	var clusters []*localcluster.PostgresCluster
	defer func() {
		for _, c := range clusters {
			if err := c.Stop(); err != nil {
				fmt.Fprintf(stderr, "stopping the demo cluster: %v\n", err)
			}
		}
	}()
	for name, cc := range cfg.Clusters {
		if cc.Protocol != "postgres" {
			fmt.Fprintf(stderr, "demo: skipping cluster %s (protocol %s is not supported yet)\n", name, cc.Protocol)
			continue
		}
		var ports []int
		for _, b := range cc.Backends {
			host, p, err := net.SplitHostPort(b.Address)
			if err != nil || (host != "127.0.0.1" && host != "localhost") {
				fmt.Fprintf(stderr, "demo: backend %s of cluster %s must be on 127.0.0.1\n", b.Address, name)
				return 1
			}
			port, _ := strconv.Atoi(p)
			ports = append(ports, port)
		}
		fmt.Fprintf(stdout, "starting PostgreSQL cluster %s: primary on port %d, %d replicas…\n", name, ports[0], len(ports)-1)
		sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		c, err := localcluster.StartPostgres(sctx, localcluster.PostgresOptions{
			Replicas:  len(ports) - 1,
			Ports:     ports,
			Users:     users,
			Databases: []string{"app"},
			Log:       func(f string, a ...any) { log.Debug(fmt.Sprintf(f, a...)) },
		})
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "demo: starting cluster %s: %v\n", name, err)
			return 1
		}
		clusters = append(clusters, c)
	}
	u := cfg.Users[0]
	fmt.Fprintln(stdout, "\nSluice is starting. Connect with:")
	for _, l := range cfg.Listeners {
		if l.Protocol != "postgres" {
			continue
		}
		host, port, _ := net.SplitHostPort(l.Address)
		fmt.Fprintf(stdout, "  %-7s psql \"postgres://%s:%s@%s:%s/app\"\n", l.Route+":", u.Name, u.Password, host, port)
	}
	if cfg.HTTP.Address != "" {
		fmt.Fprintf(stdout, "  status: curl http://%s/status   metrics: curl http://%s/metrics\n", cfg.HTTP.Address, cfg.HTTP.Address)
	}
	fmt.Fprintln(stdout, "Press Ctrl-C to stop everything.")
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("sluice stopped", "err", err)
		return 1
	}
	return 0
}
