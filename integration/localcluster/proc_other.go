//go:build unix && !linux

package localcluster

import "syscall"

// serverSysProcAttr is the process setup for a postmaster: run as the
// account, in a process group of its own.
func serverSysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}

// processesUnder cannot find processes by working directory without
// /proc: stray processes are not swept on this system.
func processesUnder(string, string) []int { return nil }

// removeSharedMemory is a no-op without the Linux System V interface.
func removeSharedMemory(string) {}
