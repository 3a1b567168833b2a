// Package pg is Sluice's PostgreSQL front end: it accepts client
// connections, negotiates TLS, authenticates clients, and runs one session
// per client that routes every statement (through package router) to a
// backend connection of the cluster (package backends) and relays the
// results back untouched.
//
// A session owns one goroutine that reads the client and one relay
// goroutine per backend connection it has opened. Statements are routed as
// batches: a simple Query, or the extended-protocol messages up to a Sync.
// Responses are relayed as raw messages; the proxy looks only at
// ReadyForQuery (transaction status), ErrorResponse, CommandComplete of
// COMMIT/ROLLBACK, and the completions of the Parse/Close messages it
// injects itself to re-prepare statements on another backend.
package pg
