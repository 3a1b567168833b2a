package pool

import (
	"context"
	"io"
	"time"
)

// Settings is how one user's backend connections are pooled in a cluster,
// as the front ends take it from the configuration.
type Settings struct {
	// Transaction selects transaction pooling: a backend connection is
	// held only for a transaction (or one statement outside one) and then
	// returned. False is session pooling: a connection serves one client
	// session and is reset and returned when the client leaves.
	Transaction bool
	// MaxServerConns caps the connections of one pool (one Key); 0 means
	// no limit.
	MaxServerConns int
	// MinIdle connections are kept open per pool once it has been used.
	MinIdle int
	// IdleTimeout closes connections idle longer than this; 0 never.
	IdleTimeout time.Duration
	// MaxLifetime closes connections older than this when they are
	// returned or idle; 0 never.
	MaxLifetime time.Duration
	// CheckoutTimeout is how long a client waits for a connection of a
	// full pool before it gets an error; 0 means 30s.
	CheckoutTimeout time.Duration
}

// DefaultSettingsCheckoutTimeout is Settings.CheckoutTimeout's default.
const DefaultSettingsCheckoutTimeout = 30 * time.Second

// WithDefaults returns s with its zero defaults resolved.
func (s Settings) WithDefaults() Settings {
	if s.CheckoutTimeout <= 0 {
		s.CheckoutTimeout = DefaultSettingsCheckoutTimeout
	}
	return s
}

// NewWith returns a pool with settings s (defaults resolved), dialling
// with dial and vetting idle connections with healthy (nil: always
// healthy).
func NewWith[C io.Closer](s Settings, dial func(context.Context, Key) (C, error), healthy func(C) bool) *Pool[C] {
	s = s.WithDefaults()
	return New(Options[C]{
		MaxServerConns:  s.MaxServerConns,
		MinIdle:         s.MinIdle,
		IdleTimeout:     s.IdleTimeout,
		MaxLifetime:     s.MaxLifetime,
		CheckoutTimeout: s.CheckoutTimeout,
		Dial:            dial,
		Healthy:         healthy,
	})
}
