package mysqlwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"

	"github.com/sluicedb/sluice/internal/bufpool"
)

const (
	// HeaderSize is the size of a packet header: a 3-byte little-endian
	// payload length and a 1-byte sequence id.
	HeaderSize = 4
	// MaxChunk is the largest payload one physical packet carries. A logical
	// payload of MaxChunk bytes or more is split into MaxChunk-byte packets
	// followed by a shorter one (possibly empty).
	MaxChunk = 0xffffff
	// DefaultMaxPayload is the default limit on a reassembled payload.
	DefaultMaxPayload = 64 << 20
)

// retainLimit is the capacity above which a PacketReader does not keep its
// reassembly buffer for reuse (so that one big packet does not pin megabytes
// per idle connection).
const retainLimit = 64 << 10

var (
	// ErrPacketTooLarge is returned when a payload exceeds the reader's
	// maximum. The stream is not resynchronised: close the connection (after
	// telling the client with ERNetPacketTooLarge).
	ErrPacketTooLarge = errors.New("mysqlwire: packet exceeds the maximum payload size")
	// ErrSequence is returned when the chunks of a split payload do not carry
	// consecutive sequence ids.
	ErrSequence = errors.New("mysqlwire: packet out of sequence")
)

// PacketReader reads MySQL packets from a buffered reader (a bufio.Reader,
// or a ConnReader: see NewConnPacketReader). Payloads that fit
// in the buffer are returned as views into it, without
// copying; larger ones are assembled in a buffer owned by the reader. Either
// way the returned slice is valid only until the next call on the reader.
//
// A PacketReader is not safe for concurrent use.
type PacketReader struct {
	r     bufferedReader // a *bufio.Reader or conn
	conn  *ConnReader    // set by NewConnPacketReader
	max   int
	chunk int // MaxChunk; smaller in tests
	buf   []byte
}

// NewPacketReader returns a PacketReader over r with the default maximum
// payload size (DefaultMaxPayload).
func NewPacketReader(r *bufio.Reader) *PacketReader {
	return &PacketReader{r: r, max: DefaultMaxPayload, chunk: MaxChunk}
}

// NewConnPacketReader returns a PacketReader (default maximum payload)
// that reads c through a ConnReader borrowing its buffers from pool, so that
// while the peer is silent between packets the reader holds no buffer: not
// the pool's, nor a reassembly buffer (a payload that does not fit in a
// pool buffer is assembled in a slice allocated for it, dropped before the
// reader next waits with nothing buffered). Payloads up to pool.Size()-4
// bytes are views into the pool buffer. Otherwise the contract is
// NewPacketReader's. Call Release when the connection is done with.
func NewConnPacketReader(c net.Conn, pool *bufpool.Pool) *PacketReader {
	cr := NewConnReader(c, pool)
	return &PacketReader{r: cr, conn: cr, max: DefaultMaxPayload, chunk: MaxChunk}
}

// Reset makes p read from r, keeping its settings and buffer (a reader
// made by NewConnPacketReader gives its pool buffer back first).
func (p *PacketReader) Reset(r *bufio.Reader) {
	if p.conn != nil {
		p.conn.Release()
	}
	p.r, p.conn = r, nil
}

// Release gives back the buffers the reader holds (its ConnReader's pool
// buffer, its reassembly buffer); unread buffered bytes are lost with a
// ConnReader, kept with a bufio.Reader. The reader stays usable.
func (p *PacketReader) Release() {
	if p.conn != nil {
		p.conn.Release()
	}
	p.buf = nil
}

// idle is called at the start of every read: a connection reader about to
// wait for the peer keeps no reassembly buffer meanwhile.
func (p *PacketReader) idle() {
	if p.conn != nil && p.buf != nil && p.conn.Buffered() == 0 {
		p.buf = nil
	}
}

// DiscardPacket reads and drops the physical packets of the payload whose
// header is next, typically after ReadPacket failed with
// ErrPacketTooLarge (which consumes nothing of the offending packet), up
// to about limit payload bytes: it stops after a packet shorter than
// MaxChunk, or at limit, or at an error.
func (p *PacketReader) DiscardPacket(limit int) error {
	for total := 0; total < limit; {
		h, err := p.r.Peek(HeaderSize)
		if err != nil {
			return eofErr(err, len(h))
		}
		n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
		if _, err := p.r.Discard(HeaderSize + n); err != nil {
			return eofErr(err, 1)
		}
		total += n
		if n < p.chunk {
			return nil
		}
	}
	return nil
}

// SetMaxPayload sets the largest payload ReadPacket accepts (and the largest
// physical packet ReadRawPacket and RelayPacket accept); n <= 0 restores
// DefaultMaxPayload.
func (p *PacketReader) SetMaxPayload(n int) {
	if n <= 0 {
		n = DefaultMaxPayload
	}
	p.max = n
}

// MaxPayload returns the current payload limit.
func (p *PacketReader) MaxPayload() int { return p.max }

// Buffered returns the number of bytes already read from the transport and
// waiting in the buffer: zero means the next read will block, the moment for
// a relay to flush what it has written.
func (p *PacketReader) Buffered() int { return p.r.Buffered() }

// header reads and consumes nothing: it peeks the next header.
func (p *PacketReader) header() (n int, seq byte, err error) {
	h, err := p.r.Peek(HeaderSize)
	if err != nil {
		return 0, 0, eofErr(err, len(h))
	}
	return int(h[0]) | int(h[1])<<8 | int(h[2])<<16, h[3], nil
}

// eofErr maps io.EOF after a partial read to io.ErrUnexpectedEOF.
func eofErr(err error, got int) error {
	if err == io.EOF && got > 0 {
		return io.ErrUnexpectedEOF
	}
	return err
}

// view returns the next n bytes as a view into the bufio buffer (n must not
// exceed its size) and consumes them.
func (p *PacketReader) view(n int) ([]byte, error) {
	b, err := p.r.Peek(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	_, _ = p.r.Discard(n) // cannot fail: the bytes are buffered
	return b[:n:n], nil
}

// scratch returns the reassembly buffer emptied, dropping an oversized one.
func (p *PacketReader) scratch() []byte {
	if cap(p.buf) > retainLimit {
		p.buf = nil
	}
	return p.buf[:0]
}

// ReadPacket reads one logical packet, reassembling payloads split over
// several physical packets, and returns its payload together with the
// sequence id of its last physical packet (the next packet of the exchange
// carries seq+1). At a clean end of stream it returns io.EOF; a stream cut
// inside a packet yields io.ErrUnexpectedEOF.
func (p *PacketReader) ReadPacket() (seq byte, payload []byte, err error) {
	p.idle()
	n, seq, err := p.header()
	if err != nil {
		return 0, nil, err
	}
	if n > p.max {
		return seq, nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrPacketTooLarge, n, p.max)
	}
	if n < p.chunk && HeaderSize+n <= p.r.Size() {
		b, err := p.view(HeaderSize + n)
		if err != nil {
			return seq, nil, err
		}
		return seq, b[HeaderSize:], nil
	}
	_, _ = p.r.Discard(HeaderSize)
	buf := p.scratch()
	for {
		if buf, err = readFull(p.r, buf, n); err != nil {
			p.buf = buf
			return seq, nil, err
		}
		if n < p.chunk {
			break
		}
		var next byte
		n, next, err = p.header()
		if err != nil {
			p.buf = buf
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return seq, nil, err
		}
		if next != seq+1 {
			p.buf = buf
			return seq, nil, fmt.Errorf("%w: got %d after %d", ErrSequence, next, seq)
		}
		seq = next
		if n > p.max-len(buf) {
			p.buf = buf
			return seq, nil, fmt.Errorf("%w: more than %d bytes", ErrPacketTooLarge, p.max)
		}
		_, _ = p.r.Discard(HeaderSize)
	}
	p.buf = buf
	return seq, buf, nil
}

// readFull appends exactly n bytes from r to buf, growing buf only as data
// arrives (a header announcing 16 MiB does not allocate 16 MiB up front).
func readFull(r io.Reader, buf []byte, n int) ([]byte, error) {
	for n > 0 {
		if cap(buf) == len(buf) {
			buf = slices.Grow(buf, min(max(len(buf), 4<<10), n))
		}
		k := min(n, cap(buf)-len(buf))
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+k])
		buf = buf[:len(buf)+m]
		n -= m
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// ReadRawPacket reads one physical packet and returns it with its 4-byte
// header, for relaying untouched. It does not reassemble: a packet whose
// payload length is MaxChunk is continued by the next one, whose first
// payload byte is data, not a packet type. The slice is valid until the
// next call.
func (p *PacketReader) ReadRawPacket() ([]byte, error) {
	p.idle()
	n, _, err := p.header()
	if err != nil {
		return nil, err
	}
	if n > p.max {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrPacketTooLarge, n, p.max)
	}
	if HeaderSize+n <= p.r.Size() {
		return p.view(HeaderSize + n)
	}
	buf, err := readFull(p.r, p.scratch(), HeaderSize+n)
	p.buf = buf
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// RelayPacket copies one physical packet, header included, from the reader
// to w without holding it in memory as a whole (large rows stream through
// the bufio buffer). It returns the packet's sequence id and payload length;
// a length of MaxChunk means the payload continues in the next packet.
func (p *PacketReader) RelayPacket(w io.Writer) (seq byte, length int, err error) {
	n, seq, err := p.header()
	if err != nil {
		return 0, 0, err
	}
	if n > p.max {
		return seq, n, fmt.Errorf("%w: %d bytes (limit %d)", ErrPacketTooLarge, n, p.max)
	}
	rem := HeaderSize + n
	for rem > 0 {
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return seq, n, err
			}
		}
		k := min(rem, p.r.Buffered())
		b, _ := p.r.Peek(k)
		if _, err := w.Write(b); err != nil {
			return seq, n, err
		}
		_, _ = p.r.Discard(k)
		rem -= k
	}
	return seq, n, nil
}

// ReadPacketUnbuffered reads one logical packet from r with exact-size reads,
// never consuming a byte beyond the packet. Use it where the stream changes
// hands after the packet, as with the SSLRequest that precedes a TLS
// handshake (a bufio.Reader could swallow the start of the ClientHello). It
// allocates the payload.
func ReadPacketUnbuffered(r io.Reader, maxPayload int) (seq byte, payload []byte, err error) {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	var h [HeaderSize]byte
	var buf []byte
	for first := true; ; first = false {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if err == io.EOF && !first {
				err = io.ErrUnexpectedEOF
			}
			return seq, nil, err
		}
		n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
		if !first && h[3] != seq+1 {
			return seq, nil, fmt.Errorf("%w: got %d after %d", ErrSequence, h[3], seq)
		}
		seq = h[3]
		if n > maxPayload-len(buf) {
			return seq, nil, fmt.Errorf("%w: limit %d", ErrPacketTooLarge, maxPayload)
		}
		if buf, err = readFull(r, buf, n); err != nil {
			return seq, nil, err
		}
		if n < MaxChunk {
			if buf == nil {
				buf = []byte{}
			}
			return seq, buf, nil
		}
	}
}

// PacketWriter frames payloads as MySQL packets onto a bufio.Writer. It does
// not flush: call Flush when the peer is expected to answer (or when the
// reader on the other side has been drained, for a relay).
type PacketWriter struct {
	w     *bufio.Writer
	chunk int // MaxChunk; smaller in tests
}

// NewPacketWriter returns a PacketWriter over w.
func NewPacketWriter(w *bufio.Writer) *PacketWriter {
	return &PacketWriter{w: w, chunk: MaxChunk}
}

// Reset makes p write to w.
func (p *PacketWriter) Reset(w *bufio.Writer) { p.w = w }

// WritePacket writes payload as one logical packet starting with sequence id
// seq, splitting it into MaxChunk-byte packets (with an empty trailing packet
// when its length is a multiple of MaxChunk), and returns the sequence id
// for the next packet.
func (p *PacketWriter) WritePacket(seq byte, payload []byte) (nextSeq byte, err error) {
	for {
		n := min(len(payload), p.chunk)
		h := [HeaderSize]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}
		if _, err := p.w.Write(h[:]); err != nil {
			return seq, err
		}
		if _, err := p.w.Write(payload[:n]); err != nil {
			return seq, err
		}
		seq++
		payload = payload[n:]
		if n < p.chunk {
			return seq, nil
		}
	}
}

// WriteRaw writes already framed bytes (packets read with ReadRawPacket or
// built with AppendPacket) unchanged.
func (p *PacketWriter) WriteRaw(raw []byte) error {
	_, err := p.w.Write(raw)
	return err
}

// Flush writes buffered data to the underlying writer.
func (p *PacketWriter) Flush() error { return p.w.Flush() }

// Buffered returns the number of bytes written but not yet flushed.
func (p *PacketWriter) Buffered() int { return p.w.Buffered() }

// AppendPacket appends payload framed as one logical packet (split as
// WritePacket does) to dst, starting with sequence id seq, and returns the
// extended slice and the next sequence id.
func AppendPacket(dst []byte, seq byte, payload []byte) ([]byte, byte) {
	for {
		n := min(len(payload), MaxChunk)
		dst = append(dst, byte(n), byte(n>>8), byte(n>>16), seq)
		dst = append(dst, payload[:n]...)
		seq++
		payload = payload[n:]
		if n < MaxChunk {
			return dst, seq
		}
	}
}

// PacketHeader decodes the header at the start of a raw packet: the payload
// length and the sequence id. ok is false if raw is shorter than a header.
func PacketHeader(raw []byte) (length int, seq byte, ok bool) {
	if len(raw) < HeaderSize {
		return 0, 0, false
	}
	return int(raw[0]) | int(raw[1])<<8 | int(raw[2])<<16, raw[3], true
}

// SetPacketSeq overwrites the sequence id of a raw packet (a relay that
// renumbers packets). It does nothing if raw is shorter than a header.
func SetPacketSeq(raw []byte, seq byte) {
	if len(raw) >= HeaderSize {
		raw[3] = seq
	}
}
