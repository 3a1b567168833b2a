package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// CheckPorts tries to bind every listen address of the configuration —
// each listener (TCP), http.address (TCP) and gossip.bind (TCP and UDP) —
// and releases them all before returning. Problems are joined, for example
// `listeners[0].address 127.0.0.1:6432: port in use`. Addresses that are
// empty (off) or fail Validate are skipped; port 0 always binds. Meant for
// `sluice check-config` and start-up diagnostics: a port found free here may
// be taken before the proxy binds it.
func (c *Config) CheckPorts() error {
	type target struct {
		key, network, addr string
	}
	var targets []target
	for i, l := range c.Listeners {
		targets = append(targets, target{fmt.Sprintf("listeners[%d].address", i), "tcp", l.Address})
	}
	if c.HTTP.Address != "" {
		targets = append(targets, target{"http.address", "tcp", c.HTTP.Address})
	}
	if c.Gossip.Bind != "" {
		targets = append(targets,
			target{"gossip.bind", "tcp", c.Gossip.Bind},
			target{"gossip.bind", "udp", c.Gossip.Bind})
	}

	var errs []error
	var held []io.Closer
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for _, t := range targets {
		if _, _, err := net.SplitHostPort(t.addr); err != nil {
			continue // Validate reports it
		}
		var h io.Closer
		var err error
		if t.network == "udp" {
			h, err = net.ListenPacket("udp", t.addr)
		} else {
			h, err = net.Listen("tcp", t.addr)
		}
		if err != nil {
			what := t.network + " port"
			if t.network == "tcp" {
				what = "port"
			}
			switch {
			case errors.Is(err, syscall.EADDRINUSE):
				errs = append(errs, fmt.Errorf("%s %s: %s in use", t.key, t.addr, what))
			case errors.Is(err, syscall.EACCES):
				errs = append(errs, fmt.Errorf("%s %s: permission denied (ports below 1024 need privileges)", t.key, t.addr))
			case errors.Is(err, syscall.EADDRNOTAVAIL):
				errs = append(errs, fmt.Errorf("%s %s: address not available on this host", t.key, t.addr))
			default:
				errs = append(errs, fmt.Errorf("%s %s: cannot bind: %v", t.key, t.addr, err))
			}
			continue
		}
		held = append(held, h)
	}
	return errors.Join(errs...)
}
