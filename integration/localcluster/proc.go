package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// account is the OS account that the database servers and their tools run
// as.
type account struct {
	name     string
	uid, gid int
	cred     *syscall.Credential // nil: run as the current user
}

// serverAccount picks the account to run PostgreSQL as: the current
// user, or, when that is root, the "postgres" account if it exists, else
// "nobody".
func serverAccount() (*account, error) {
	return serverAccountOf("PostgreSQL", "postgres", "nobody")
}

// serverAccountOf picks the account to run the server program what as:
// the current user, or, when that is root, the first of the candidate
// accounts that exists and is not root.
func serverAccountOf(what string, candidates ...string) (*account, error) {
	if os.Geteuid() != 0 {
		name := strconv.Itoa(os.Geteuid())
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		return &account{name: name, uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	var errs []error
	for _, name := range candidates {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, fmt.Errorf("account %s: %w", name, err))
			continue
		}
		if uid == 0 {
			continue
		}
		return &account{
			name: name,
			uid:  uid,
			gid:  gid,
			// An empty (non-nil) Groups drops root's supplementary groups.
			cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		}, nil
	}
	return nil, fmt.Errorf("running as root, but found no unprivileged account (%s) to run %s as: %w", strings.Join(candidates, ", "), what, errors.Join(errs...))
}

// chownTree hands dir and everything below it to the account (a no-op
// when the account is the current user).
func (a *account) chownTree(dir string) error {
	if a.cred == nil {
		return nil
	}
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, a.uid, a.gid)
	})
	if err != nil {
		return fmt.Errorf("chown %s to %s: %w", dir, a.name, err)
	}
	return nil
}

// mkdir creates dir (mode 0700) owned by the account.
func (a *account) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	return a.chownTree(dir)
}

// checkReachable reports an error if the account cannot search every
// directory from / down to dir (ACLs are not considered).
func (a *account) checkReachable(dir string) error {
	if a.cred == nil {
		return nil
	}
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check access of %s: %w", p, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		perm := fi.Mode().Perm()
		var bit fs.FileMode = 0o001
		switch {
		case int(st.Uid) == a.uid:
			bit = 0o100
		case int(st.Gid) == a.gid:
			bit = 0o010
		}
		if perm&bit == 0 {
			return fmt.Errorf("account %s (uid %d) cannot search %s (mode %v): put the cluster directory somewhere it can reach, for example under /tmp", a.name, a.uid, p, perm)
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

// command prepares a PostgreSQL tool to run as the account, in dir, with a
// scrubbed environment (no PG* variables, C locale, HOME=home).
func (a *account) command(ctx context.Context, dir, home, bin string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ctx != nil {
		cmd = exec.CommandContext(ctx, bin, args...)
		cmd.WaitDelay = 5 * time.Second
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Dir = dir
	cmd.Env = childEnv(home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.cred}
	return cmd
}

// childEnv is the environment for PostgreSQL processes: the caller's,
// without anything that would change where or how libpq connects or which
// language the server logs in.
func childEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "LANG=C", "HOME="+home)
}

// spawner starts long-lived server processes from one goroutine locked to
// its OS thread for the life of the process. On Linux a parent-death signal
// fires when the thread that forked the child exits, and the Go runtime
// ends threads whose locked goroutine returns: a thread that never returns
// makes the signal mean "the calling process died".
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// startServerProcess starts cmd (with no context) from the spawner thread.
func startServerProcess(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

// killProcessesUnder SIGKILLs, until none is left or the deadline passes,
// every live process running exe (the resolved path of the postgres
// binary) whose working directory is dir or below it. Every PostgreSQL
// server process works in its data directory, so this finds a postmaster's
// children even after they lost their parent, and never a shell that
// happens to sit in the directory.
func killProcessesUnder(dir, exe string, deadline time.Time) error {
	for {
		pids := processesUnder(dir, exe)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v working in %s survived SIGKILL", pids, dir)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond) // poll interval while the kernel tears them down
	}
}
