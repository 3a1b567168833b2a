package pg

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"github.com/sluicedb/sluice/frontend/serve"
	"sync"
	"time"
)

// CancelRegistry maps the (process ID, secret key) pairs that Sluice hands
// to its clients to the sessions they belong to. It is safe for concurrent
// use; share one among all PostgreSQL listeners of a process.
type CancelRegistry struct {
	mu sync.Mutex
	m  map[uint32]*session
}

// NewCancelRegistry returns an empty registry.
func NewCancelRegistry() *CancelRegistry {
	return &CancelRegistry{m: make(map[uint32]*session)}
}

// register assigns a fresh random key pair to sess.
func (r *CancelRegistry) register(sess *session) (pid, key uint32) {
	var b [8]byte
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		rand.Read(b[:])
		pid = binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		key = binary.BigEndian.Uint32(b[4:])
		if _, taken := r.m[pid]; pid != 0 && !taken {
			r.m[pid] = sess
			return pid, key
		}
	}
}

func (r *CancelRegistry) unregister(pid uint32) {
	r.mu.Lock()
	delete(r.m, pid)
	r.mu.Unlock()
}

func (r *CancelRegistry) lookup(pid uint32, key []byte) *session {
	r.mu.Lock()
	sess := r.m[pid]
	r.mu.Unlock()
	if sess == nil || len(key) != 4 {
		return nil
	}
	var want [4]byte
	binary.BigEndian.PutUint32(want[:], sess.key)
	if subtle.ConstantTimeCompare(want[:], key) != 1 {
		return nil
	}
	return sess
}

// serveCancel forwards a client's CancelRequest to the backend that is
// running that client's statement right now. As in PostgreSQL, nothing is
// answered either way.
func (s *Server) serveCancel(pid uint32, key []byte) {
	sess := s.opts.Cancels.lookup(pid, key)
	if sess == nil {
		s.log.Debug("cancel request for an unknown key", "pid", pid)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess.cancelRunning(ctx)
}

// Pinned lists the pinned sessions of every listener sharing the registry,
// in no particular order.
func (r *CancelRegistry) Pinned() []serve.PinnedSession {
	r.mu.Lock()
	sessions := make([]*session, 0, len(r.m))
	for _, s := range r.m {
		sessions = append(sessions, s)
	}
	r.mu.Unlock()
	var out []serve.PinnedSession
	for _, s := range sessions {
		s.mu.Lock()
		reason, to := s.pinned, s.pinnedTo
		backend := ""
		if to != nil {
			backend = to.addr
		}
		s.mu.Unlock()
		if reason == "" {
			continue
		}
		out = append(out, serve.PinnedSession{PID: s.pid, Listener: s.srv.opts.Name, Cluster: s.srv.opts.Cluster.Name(),
			User: s.user, Client: s.conn.RemoteAddr().String(), Reason: string(reason), Backend: backend})
	}
	return out
}
