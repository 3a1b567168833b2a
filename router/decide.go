package router

import (
	"fmt"
	"strconv"
	"strings"
)

// Route is the kind of a listener's endpoint.
type Route uint8

const (
	// RouteAuto splits reads to readers and everything else to the writer.
	RouteAuto Route = iota
	// RouteWriter sends everything to the writer.
	RouteWriter
	// RouteReader sends everything to readers.
	RouteReader
)

// ParseRoute parses "auto", "writer" or "reader" (case-insensitive, surrounding
// space ignored).
func ParseRoute(s string) (Route, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		return RouteAuto, nil
	case "writer":
		return RouteWriter, nil
	case "reader":
		return RouteReader, nil
	}
	return RouteAuto, fmt.Errorf("router: unknown route %q (want auto, writer or reader)", s)
}

// String returns "auto", "writer" or "reader".
func (r Route) String() string {
	switch r {
	case RouteAuto:
		return "auto"
	case RouteWriter:
		return "writer"
	case RouteReader:
		return "reader"
	}
	return "route(" + strconv.Itoa(int(r)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (r Route) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseRoute.
func (r *Route) UnmarshalText(b []byte) error {
	v, err := ParseRoute(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Target is where a statement runs.
type Target uint8

const (
	// TargetWriter is the writer (primary).
	TargetWriter Target = iota
	// TargetReader is a reader (replica).
	TargetReader
)

// String returns "writer" or "reader".
func (t Target) String() string {
	switch t {
	case TargetWriter:
		return "writer"
	case TargetReader:
		return "reader"
	}
	return "target(" + strconv.Itoa(int(t)) + ")"
}

// State is what the routing decision needs to know about a session.
type State struct {
	// InTx is true while the server reports the session inside a
	// transaction (the server is the source of truth).
	InTx bool
	// TxTarget is where the current transaction runs; used when InTx.
	TxTarget Target
	// Pinned is true once the session is pinned to the writer.
	Pinned bool
}

// Decide returns where a statement of class c goes for a session in state s
// on an endpoint of kind r.
//
// RouteWriter → writer; RouteReader → reader. RouteAuto, in this order: in a
// transaction → where the transaction runs; pinned → writer; hint writer →
// writer; hint reader → reader; BEGIN … READ ONLY → reader; BEGIN → writer;
// a write → writer; otherwise a reader.
func Decide(r Route, c Class, s State) Target {
	switch r {
	case RouteWriter:
		return TargetWriter
	case RouteReader:
		return TargetReader
	case RouteAuto:
	default:
		return TargetWriter // unknown endpoint kind
	}
	switch {
	case s.InTx:
		return s.TxTarget
	case s.Pinned:
		return TargetWriter
	case c.Hint == HintWriter:
		return TargetWriter
	case c.Hint == HintReader:
		return TargetReader
	case c.Tx == TxBeginReadOnly:
		return TargetReader
	case c.Tx == TxBegin:
		return TargetWriter
	case c.Write:
		return TargetWriter
	}
	return TargetReader
}
