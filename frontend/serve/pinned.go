package serve

// PinnedSession describes a client session pinned to one backend
// connection by session state that cannot move (see router.PinReason), as
// listed in /status.
type PinnedSession struct {
	// PID is the id the proxy gave the client: PostgreSQL's BackendKeyData
	// process ID, MySQL's connection id.
	PID uint32 `json:"pid"`
	// Listener and Cluster say where the client is connected.
	Listener string `json:"listener"`
	Cluster  string `json:"cluster"`
	// User is the client's user name; Client its address.
	User   string `json:"user"`
	Client string `json:"client"`
	// Reason is what pinned it (temp_table, listen, get_lock, …); Backend
	// the address of the connection it is pinned to ("" once that
	// connection is gone).
	Reason  string `json:"reason"`
	Backend string `json:"backend,omitempty"`
}
