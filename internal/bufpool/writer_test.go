package bufpool

import (
	"bytes"
	"errors"
	"testing"
)

type errWriter struct{ n int }

func (w *errWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		return 0, errors.New("boom")
	}
	w.n--
	return len(p), nil
}

func TestWriter(t *testing.T) {
	var out, want bytes.Buffer
	w := NewWriter(&out, New(16))
	for _, n := range []int{0, 1, 5, 10, 16, 3, 40, 15, 1, 16, 0, 33} {
		p := bytes.Repeat([]byte{byte('a' + n%26)}, n)
		want.Write(p)
		if k, err := w.Write(p); k != n || err != nil {
			t.Fatalf("Write(%d): %d %v", n, k, err)
		}
		if w.Buffered() >= 16+1 {
			t.Fatalf("Buffered %d beyond the buffer", w.Buffered())
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Fatalf("got %q\nwant %q", out.Bytes(), want.Bytes())
	}
	if w.Holding() || w.Buffered() != 0 {
		t.Fatal("a buffer is held after Flush")
	}
	if err := w.Flush(); err != nil || w.Holding() {
		t.Fatal("empty Flush")
	}
}

func TestWriterError(t *testing.T) {
	w := NewWriter(&errWriter{n: 1}, New(8))
	if _, err := w.Write([]byte("12345678901")); err != nil { // direct
		t.Fatal(err)
	}
	w.Write([]byte("abc"))
	if err := w.Flush(); err == nil {
		t.Fatal("Flush did not fail")
	}
	if w.Holding() {
		t.Fatal("buffer held after an error")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("error not sticky")
	}
}
