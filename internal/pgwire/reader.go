package pgwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderLen is the size of a typed message header: one type byte and a
// 4-byte big-endian length that counts itself but not the type byte.
const HeaderLen = 5

// DefaultMaxMessageSize is the largest message Reader accepts unless told
// otherwise (64 MiB).
const DefaultMaxMessageSize = 64 << 20

// ErrMessageTooLarge is returned (wrapped) when a message announces a body
// larger than the reader's limit. The stream cannot be resynchronised after it.
var ErrMessageTooLarge = errors.New("pgwire: message exceeds the maximum size")

// ErrBadLength is returned (wrapped) when a message announces a length smaller
// than the length field itself.
var ErrBadLength = errors.New("pgwire: invalid message length")

// Message is one framed message. Raw holds the whole message, header
// included; it aliases the Reader's buffer and is valid only until the next
// call to Reader.Next.
type Message struct {
	Type byte
	Raw  []byte
}

// Body returns the message body, without the 5-byte header.
func (m Message) Body() []byte { return m.Raw[HeaderLen:] }

// Reader reads typed messages from a buffered stream. It is not safe for
// concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int
	big     []byte // reused for messages larger than the bufio buffer
	discard int    // bytes of the previous message still to drop from br
}

// NewReader returns a Reader over br that rejects messages whose body exceeds
// max bytes (DefaultMaxMessageSize when max <= 0).
func NewReader(br *bufio.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	return &Reader{br: br, max: max}
}

// SetMaxMessageSize changes the body size limit (DefaultMaxMessageSize when
// max <= 0), for example when authentication ends and the session's limit
// applies.
func (r *Reader) SetMaxMessageSize(max int) {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	r.max = max
}

// Buffered reports how many bytes can be read without touching the
// underlying stream: when it is zero the peer has nothing more in flight and
// pending output should be flushed.
func (r *Reader) Buffered() int { return r.br.Buffered() - r.discard }

// Next returns the next message. Small messages are returned without copying
// (a view into the bufio buffer); messages larger than the buffer are copied
// into a scratch slice that is reused.
func (r *Reader) Next() (Message, error) {
	if r.discard > 0 {
		if _, err := r.br.Discard(r.discard); err != nil {
			return Message{}, err
		}
		r.discard = 0
	}
	hdr, err := r.br.Peek(HeaderLen)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return Message{}, err
	}
	typ := hdr[0]
	n := int(binary.BigEndian.Uint32(hdr[1:5]))
	if n < 4 {
		return Message{}, fmt.Errorf("%w: type %q length %d", ErrBadLength, typ, n)
	}
	if n-4 > r.max {
		return Message{}, fmt.Errorf("%w: type %q announces %d bytes, limit %d", ErrMessageTooLarge, typ, n-4, r.max)
	}
	total := n + 1
	if total <= r.br.Size() {
		raw, err := r.br.Peek(total)
		if err != nil {
			return Message{}, unexpected(err)
		}
		r.discard = total
		return Message{Type: typ, Raw: raw}, nil
	}
	if cap(r.big) < total {
		r.big = make([]byte, total)
	}
	raw := r.big[:total]
	if _, err := io.ReadFull(r.br, raw); err != nil {
		return Message{}, unexpected(err)
	}
	if cap(r.big) > 1<<20 {
		// Do not keep a huge scratch buffer alive for the session's life.
		r.big = nil
	}
	return Message{Type: typ, Raw: raw}, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
