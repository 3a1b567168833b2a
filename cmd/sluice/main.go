// Command sluice runs the Sluice SQL proxy.
//
//	sluice [--config config.yaml]        run the proxy
//	sluice check-config [FILE]           validate a configuration and exit
//	sluice demo [--config config.yaml]   start a local replicated PostgreSQL
//	                                     cluster and the proxy in front of it
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluicedb/sluice/config"
	"github.com/sluicedb/sluice/proxy"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "", "run":
		return runProxy(args, stderr)
	case "check-config":
		return checkConfig(args, stdout, stderr)
	case "demo":
		return runDemo(args, stdout, stderr)
	case "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "sluice: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  sluice [--config FILE]             run the proxy (default config.yaml)
  sluice check-config [FILE]         validate a configuration (also checks that ports are free)
  sluice demo [--config FILE]        start a local PostgreSQL primary + 2 replicas and the proxy
`)
}

func configFlag(name string, args []string, stderr io.Writer) (string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", false
	}
	return *path, true
}

func checkConfig(args []string, stdout, stderr io.Writer) int {
	path := "config.yaml"
	if len(args) == 1 {
		path = args[0]
	} else if len(args) > 1 {
		fmt.Fprintln(stderr, "usage: sluice check-config [FILE]")
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n%s\n", path, indent(err.Error()))
		return 1
	}
	if err := cfg.CheckPorts(); err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", path, indent(err.Error()))
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d clusters, %d users)\n", path, len(cfg.Listeners), len(cfg.Clusters), len(cfg.Users))
	return 0
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runProxy(args []string, stderr io.Writer) int {
	path, ok := configFlag("run", args, stderr)
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
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("sluice stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the proxy until ctx ends, then shuts it down within the
// configured shutdown timeout.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if addr := os.Getenv("SLUICE_PPROF_ADDR"); addr != "" {
		stopPprof, err := startPprof(addr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	p, err := proxy.New(cfg, log)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = p.Start(startCtx)
	cancel()
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down", "drain_timeout", cfg.Server.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
