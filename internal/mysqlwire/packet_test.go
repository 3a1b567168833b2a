package mysqlwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// writeAll frames payloads with a PacketWriter of the given chunk size.
func writeAll(t testing.TB, chunk int, seq byte, payloads ...[]byte) []byte {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 64)
	w := NewPacketWriter(bw)
	w.chunk = chunk
	for _, p := range payloads {
		var err error
		if seq, err = w.WritePacket(seq, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestPacketRoundTripSmallAndBuffered(t *testing.T) {
	big := bytes.Repeat([]byte("y"), 100_000)
	payloads := [][]byte{[]byte("\x03SELECT 1"), {}, big, []byte("\x0e")}
	in := writeAll(t, MaxChunk, 0, payloads...)
	r := NewPacketReader(bufio.NewReaderSize(bytes.NewReader(in), 4096))
	for i, want := range payloads {
		seq, got, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if seq != byte(i) || !bytes.Equal(got, want) {
			t.Fatalf("packet %d: seq %d, %d bytes; want seq %d, %d bytes", i, seq, len(got), i, len(want))
		}
	}
	if _, _, err := r.ReadPacket(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

// TestPacketSplitting checks the 16 MiB boundary with the real chunk size:
// exactly MaxChunk bytes needs an empty trailing packet, 2*MaxChunk+1 three
// packets. TestPacketSplittingSmallChunk covers every other size around the
// boundary with a tiny chunk.
func TestPacketSplitting(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~100 MB")
	}
	for _, tc := range []struct {
		size    int
		packets []int
	}{
		{MaxChunk, []int{MaxChunk, 0}},
		{2*MaxChunk + 1, []int{MaxChunk, MaxChunk, 1}},
	} {
		// A non-repeating-at-chunk-boundaries pattern, filled by copying
		// (per-byte loops are slow under the race detector).
		payload := make([]byte, tc.size)
		n := copy(payload, "0123456789abcdefghijklmnopqrstuvwxyz!")
		for n < len(payload) {
			n += copy(payload[n:], payload[:n])
		}
		in := writeAll(t, MaxChunk, 250, payload)
		// Physical layout.
		off := 0
		for i, n := range tc.packets {
			l, seq, ok := PacketHeader(in[off:])
			if !ok || l != n || seq != byte(250+i) {
				t.Fatalf("size %d packet %d: length %d seq %d, want %d seq %d", tc.size, i, l, seq, n, byte(250+i))
			}
			off += HeaderSize + l
		}
		if off != len(in) {
			t.Fatalf("size %d: %d trailing bytes", tc.size, len(in)-off)
		}
		framed, next := AppendPacket(nil, 250, payload)
		if !bytes.Equal(framed, in) || next != byte(250+len(tc.packets)) {
			t.Fatalf("size %d: AppendPacket differs from WritePacket", tc.size)
		}
		// Reassembly.
		r := NewPacketReader(bufio.NewReader(bytes.NewReader(in)))
		seq, got, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("size %d: %v", tc.size, err)
		}
		if seq != byte(250+len(tc.packets)-1) || !bytes.Equal(got, payload) {
			t.Fatalf("size %d: seq %d, %d bytes back", tc.size, seq, len(got))
		}
		// Raw relay sees the physical packets.
		r = NewPacketReader(bufio.NewReader(bytes.NewReader(in)))
		var relayed bytes.Buffer
		for range tc.packets {
			if _, _, err := r.RelayPacket(&relayed); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(relayed.Bytes(), in) {
			t.Fatalf("size %d: relay differs", tc.size)
		}
		// Unbuffered reader.
		seq, got, err = ReadPacketUnbuffered(bytes.NewReader(in), 0)
		if err != nil || !bytes.Equal(got, payload) || seq != byte(250+len(tc.packets)-1) {
			t.Fatalf("size %d: unbuffered: %v", tc.size, err)
		}
	}
}

func TestPacketSplittingSmallChunk(t *testing.T) {
	// The same logic with a tiny chunk, for every size around the boundary.
	const chunk = 8
	for size := 0; size <= 3*chunk+1; size++ {
		payload := bytes.Repeat([]byte{byte(size)}, size)
		in := writeAll(t, chunk, 0, payload, []byte("next"))
		r := NewPacketReader(bufio.NewReaderSize(bytes.NewReader(in), 16))
		r.chunk = chunk
		seq, got, err := r.ReadPacket()
		if err != nil || !bytes.Equal(got, payload) || int(seq) != size/chunk {
			t.Fatalf("size %d: seq %d err %v got %d bytes", size, seq, err, len(got))
		}
		seq, got, err = r.ReadPacket()
		if err != nil || string(got) != "next" || int(seq) != size/chunk+1 {
			t.Fatalf("size %d: second packet seq %d err %v %q", size, seq, err, got)
		}
	}
}

func TestPacketSequenceError(t *testing.T) {
	in, _ := AppendPacket(nil, 0, bytes.Repeat([]byte("a"), MaxChunk))
	in[MaxChunk+HeaderSize+3] = 5 // the trailing empty packet should have seq 1
	r := NewPacketReader(bufio.NewReader(bytes.NewReader(in)))
	if _, _, err := r.ReadPacket(); !errors.Is(err, ErrSequence) {
		t.Fatalf("got %v, want ErrSequence", err)
	}
}

func TestPacketTooLarge(t *testing.T) {
	in, _ := AppendPacket(nil, 0, make([]byte, 1000))
	r := NewPacketReader(bufio.NewReader(bytes.NewReader(in)))
	r.SetMaxPayload(999)
	if _, _, err := r.ReadPacket(); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("got %v, want ErrPacketTooLarge", err)
	}
	// Split payload over the limit, each chunk under it.
	in = writeAll(t, 8, 0, make([]byte, 30))
	r = NewPacketReader(bufio.NewReader(bytes.NewReader(in)))
	r.chunk = 8
	r.SetMaxPayload(20)
	if _, _, err := r.ReadPacket(); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("split: got %v, want ErrPacketTooLarge", err)
	}
	// A header announcing 16 MiB followed by a few bytes must not allocate
	// 16 MiB.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r = NewPacketReader(bufio.NewReaderSize(bytes.NewReader([]byte{0xff, 0xff, 0xfe, 0, 1, 2, 3}), 16))
	if _, _, err := r.ReadPacket(); err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("a 7-byte input allocated %d bytes", n)
	}
}

func TestPacketTruncated(t *testing.T) {
	in, _ := AppendPacket(nil, 3, []byte("hello"))
	for cut := 1; cut < len(in); cut++ {
		r := NewPacketReader(bufio.NewReaderSize(bytes.NewReader(in[:cut]), 16))
		if _, _, err := r.ReadPacket(); err != io.ErrUnexpectedEOF {
			t.Fatalf("cut %d: ReadPacket %v", cut, err)
		}
		r = NewPacketReader(bufio.NewReaderSize(bytes.NewReader(in[:cut]), 16))
		if _, err := r.ReadRawPacket(); err != io.ErrUnexpectedEOF {
			t.Fatalf("cut %d: ReadRawPacket %v", cut, err)
		}
		r = NewPacketReader(bufio.NewReaderSize(bytes.NewReader(in[:cut]), 16))
		if _, _, err := r.RelayPacket(io.Discard); err != io.ErrUnexpectedEOF {
			t.Fatalf("cut %d: RelayPacket %v", cut, err)
		}
		if _, _, err := ReadPacketUnbuffered(bytes.NewReader(in[:cut]), 0); err != io.ErrUnexpectedEOF {
			t.Fatalf("cut %d: ReadPacketUnbuffered %v", cut, err)
		}
	}
	if _, _, err := ReadPacketUnbuffered(bytes.NewReader(nil), 0); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
}

func TestReadRawPacket(t *testing.T) {
	p1, _ := AppendPacket(nil, 1, []byte("\x01"))
	p2, _ := AppendPacket(nil, 2, bytes.Repeat([]byte("z"), 5000))
	in := append(append([]byte{}, p1...), p2...)
	r := NewPacketReader(bufio.NewReaderSize(bytes.NewReader(in), 4096))
	for i, want := range [][]byte{p1, p2} {
		raw, err := r.ReadRawPacket()
		if err != nil || !bytes.Equal(raw, want) {
			t.Fatalf("raw %d: %v", i, err)
		}
	}
	if _, err := r.ReadRawPacket(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// TestReadPacketUnbufferedExact checks that nothing after the packet is
// consumed (the TLS ClientHello after an SSLRequest).
func TestReadPacketUnbufferedExact(t *testing.T) {
	ssl := AppendSSLRequest(nil, ClientProtocol41|ClientSecureConnection, 1<<24, 45)
	in, _ := AppendPacket(nil, 1, ssl)
	in = append(in, 0x16, 0x03, 0x01)
	rd := bytes.NewReader(in)
	seq, got, err := ReadPacketUnbuffered(rd, 1024)
	if err != nil || seq != 1 || !IsSSLRequest(got) {
		t.Fatalf("seq %d err %v ssl %v", seq, err, IsSSLRequest(got))
	}
	if rd.Len() != 3 {
		t.Fatalf("%d bytes left, want 3", rd.Len())
	}
}

func TestReadPacketZeroAlloc(t *testing.T) {
	pkt, _ := AppendPacket(nil, 0, []byte("\x00\x00\x00\x02\x00\x00\x00"))
	in := bytes.Repeat(pkt, 1000)
	src := bytes.NewReader(in)
	br := bufio.NewReaderSize(src, 4096)
	r := NewPacketReader(br)
	allocs := testing.AllocsPerRun(500, func() {
		if _, _, err := r.ReadPacket(); err != nil {
			src.Reset(in)
			br.Reset(src)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadPacket allocates %.1f times per small packet", allocs)
	}
}

func BenchmarkReadPacketSmall(b *testing.B) {
	pkt, _ := AppendPacket(nil, 1, []byte("\x03def\x00\x01a\x01a\x01a\x01a\x0c?\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00"))
	in := bytes.Repeat(pkt, 4096)
	src := bytes.NewReader(in)
	br := bufio.NewReaderSize(src, 16<<10)
	r := NewPacketReader(br)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.ReadPacket(); err != nil {
			src.Reset(in)
			br.Reset(src)
		}
	}
}
