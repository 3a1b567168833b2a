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

// runDemo starts, for every cluster of the configuration, a local
// PostgreSQL primary with streaming replicas or a MariaDB primary with GTID
// replicas on the ports the configuration names, then the proxy in front of
// them, and tears everything down on Ctrl-C.
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
	var clusters []interface{ Stop() error }
	defer func() {
		for _, c := range clusters {
			if err := c.Stop(); err != nil {
				fmt.Fprintf(stderr, "stopping the demo cluster: %v\n", err)
			}
		}
	}()
	for name, cc := range cfg.Clusters {
		if cc.Protocol != config.ProtocolPostgres && cc.Protocol != config.ProtocolMySQL {
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
		sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		var c interface{ Stop() error }
		if cc.Protocol == config.ProtocolMySQL {
			fmt.Fprintf(stdout, "starting MariaDB cluster %s: primary on port %d, %d replicas…\n", name, ports[0], len(ports)-1)
			replicas := len(ports) - 1
			if replicas == 0 {
				replicas = -1 // MariaDBOptions: negative means none
			}
			var mc *localcluster.MariaDBCluster
			mc, err = localcluster.StartMariaDB(sctx, localcluster.MariaDBOptions{
				Replicas:  replicas,
				Ports:     ports,
				Users:     users,
				Databases: []string{"app"},
				Log:       func(f string, a ...any) { log.Debug(fmt.Sprintf(f, a...)) },
			})
			if err == nil {
				c = mc
			}
		} else {
			fmt.Fprintf(stdout, "starting PostgreSQL cluster %s: primary on port %d, %d replicas…\n", name, ports[0], len(ports)-1)
			var pc *localcluster.PostgresCluster
			pc, err = localcluster.StartPostgres(sctx, localcluster.PostgresOptions{
				Replicas:  len(ports) - 1,
				Ports:     ports,
				Users:     users,
				Databases: []string{"app"},
				Log:       func(f string, a ...any) { log.Debug(fmt.Sprintf(f, a...)) },
			})
			if err == nil {
				c = pc
			}
		}
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
		host, port, _ := net.SplitHostPort(l.Address)
		switch l.Protocol {
		case config.ProtocolPostgres:
			fmt.Fprintf(stdout, "  %-7s psql \"postgres://%s:%s@%s:%s/app\"\n", l.Route+":", u.Name, u.Password, host, port)
		case config.ProtocolMySQL:
			fmt.Fprintf(stdout, "  %-7s mariadb --protocol=tcp -h %s -P %s -u%s -p%s app\n", l.Route+":", host, port, u.Name, u.Password)
		}
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
