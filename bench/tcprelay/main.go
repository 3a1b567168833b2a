// Command tcprelay is the smallest TCP proxy Go can express: every accepted
// connection is paired with a new connection to one backend and bytes are
// copied both ways by two goroutines, with no protocol handling at all.
//
// The benchmark scripts run it beside Sluice as the "go-relay" target. It
// is not a product; it measures the floor: what a goroutine-per-connection
// Go proxy costs per round trip on the machine at hand (the Go scheduler,
// the netpoller and the loopback system calls), so that Sluice's numbers can
// be read against both that floor and the C proxies (PgBouncer, HAProxy).
//
// Usage:
//
//	tcprelay -listen 127.0.0.1:0 -backend 127.0.0.1:5432
//
// Once listening it prints "LISTEN=<address>" on standard output. SIGINT or
// SIGTERM stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept clients on")
	backend := flag.String("backend", "", "address every client connection is relayed to (required)")
	flag.Parse()
	if *backend == "" {
		fmt.Fprintln(os.Stderr, "tcprelay: -backend is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *backend); err != nil {
		log.Fatalf("tcprelay: %v", err)
	}
}

// run accepts on listen until ctx is done, relaying every connection to
// backend; it returns once every relay has ended.
func run(ctx context.Context, listen, backend string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	fmt.Printf("LISTEN=%s\n", ln.Addr())
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool // ctx is done: no new relays
	)
	// track adds (or removes) a client connection to the set closed on
	// shutdown; adding reports false once shutdown has begun.
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if !add {
			delete(conns, c)
			return true
		}
		if closed {
			return false
		}
		conns[c] = struct{}{}
		return true
	}
	go func() {
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		closed = true
		for c := range conns {
			c.Close()
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				wg.Wait()
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			log.Printf("tcprelay: accept: %v", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !track(c, true) {
				c.Close()
				return
			}
			defer track(c, false)
			relay(c, backend)
		}()
	}
}

// relay copies between client and a new connection to backend until either
// side closes.
func relay(client net.Conn, backend string) {
	defer client.Close()
	b, err := net.Dial("tcp", backend)
	if err != nil {
		log.Printf("tcprelay: dial %s: %v", backend, err)
		return
	}
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(client, b) //nolint:errcheck // ends with either side
		client.Close()
	}()
	io.Copy(b, client) //nolint:errcheck // ends with either side
	b.Close()
	<-done
}
