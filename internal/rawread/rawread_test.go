//go:build unix

package rawread

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-done
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestReadBorrowsOnlyToRead: the buffer is asked for on each attempt and
// given back (empty) when the socket is empty; data, EOF and deadlines come
// through.
func TestReadBorrowsOnlyToRead(t *testing.T) {
	client, server := pair(t)
	buf := make([]byte, 64)
	held := false
	empties := 0
	r := New(server, func() []byte { held = true; return buf }, func() { held = false; empties++ })
	if r == nil {
		t.Fatal("New returned nil for a TCP connection")
	}
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	n, err := r.Read()
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %d %q, %v; want hello", n, buf[:n], err)
	}
	if !held {
		t.Error("the buffer was not asked for by the attempt that read")
	}
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := r.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	if held || empties == 0 {
		t.Errorf("waiting on an empty socket: buffer held=%v, empty called %d times", held, empties)
	}
	server.SetReadDeadline(time.Time{})
	client.Close()
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("Read after the peer closed: %v, want io.EOF", err)
	}
}

func TestReadAfterCloseFails(t *testing.T) {
	_, server := pair(t)
	r := New(server, func() []byte { return make([]byte, 8) }, nil)
	server.Close()
	if _, err := r.Read(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a closed connection: %v, want net.ErrClosed", err)
	}
}

func TestNewWithoutDescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if r := New(a, func() []byte { return nil }, nil); r != nil {
		t.Fatal("New returned a Reader for a net.Pipe connection")
	}
}
