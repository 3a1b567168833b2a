package mysqlwire

import (
	"bytes"
	"errors"
)

// ErrMalformed is returned (possibly wrapped) when a payload does not match
// the layout of the packet it is parsed as.
var ErrMalformed = errors.New("mysqlwire: malformed packet")

// NullValue is the byte that stands for SQL NULL in a text-protocol row, in
// place of a length-encoded string (it is not a valid length-encoded integer).
const NullValue byte = 0xfb

// AppendUint16 appends v as a 2-byte little-endian integer (int<2>).
func AppendUint16(dst []byte, v uint16) []byte {
	return append(dst, byte(v), byte(v>>8))
}

// AppendUint24 appends the low 24 bits of v little-endian (int<3>).
func AppendUint24(dst []byte, v uint32) []byte {
	return append(dst, byte(v), byte(v>>8), byte(v>>16))
}

// AppendUint32 appends v as a 4-byte little-endian integer (int<4>).
func AppendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

// AppendUint64 appends v as an 8-byte little-endian integer (int<8>).
func AppendUint64(dst []byte, v uint64) []byte {
	return append(dst, byte(v), byte(v>>8), byte(v>>16), byte(v>>24),
		byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
}

// LenEncIntSize returns how many bytes AppendLenEncInt uses for v.
func LenEncIntSize(v uint64) int {
	switch {
	case v < 0xfb:
		return 1
	case v < 1<<16:
		return 3
	case v < 1<<24:
		return 4
	default:
		return 9
	}
}

// AppendLenEncInt appends v as a length-encoded integer (int<lenenc>) in its
// shortest form: one byte below 0xfb, else 0xfc/0xfd/0xfe followed by 2, 3 or
// 8 little-endian bytes.
func AppendLenEncInt(dst []byte, v uint64) []byte {
	switch {
	case v < 0xfb:
		return append(dst, byte(v))
	case v < 1<<16:
		return append(dst, 0xfc, byte(v), byte(v>>8))
	case v < 1<<24:
		return append(dst, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	default:
		return AppendUint64(append(dst, 0xfe), v)
	}
}

// AppendLenEncString appends s as a length-encoded string (string<lenenc>).
func AppendLenEncString(dst []byte, s string) []byte {
	return append(AppendLenEncInt(dst, uint64(len(s))), s...)
}

// AppendLenEncBytes appends b as a length-encoded string (string<lenenc>).
func AppendLenEncBytes(dst []byte, b []byte) []byte {
	return append(AppendLenEncInt(dst, uint64(len(b))), b...)
}

// AppendNulString appends s followed by a NUL byte (string<NUL>). s must not
// contain NUL: a reader would stop at it.
func AppendNulString(dst []byte, s string) []byte {
	return append(append(dst, s...), 0)
}

// ReadLenEncInt decodes the length-encoded integer at the start of b and
// returns it with the number of bytes it took. ok is false when b is empty
// or truncated, or starts with 0xfb (NULL) or 0xff (not an integer).
func ReadLenEncInt(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch c := b[0]; {
	case c < 0xfb:
		return uint64(c), 1, true
	case c == 0xfc:
		if len(b) < 3 {
			return 0, 0, false
		}
		return uint64(b[1]) | uint64(b[2])<<8, 3, true
	case c == 0xfd:
		if len(b) < 4 {
			return 0, 0, false
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4, true
	case c == 0xfe:
		if len(b) < 9 {
			return 0, 0, false
		}
		return le64(b[1:9]), 9, true
	default: // 0xfb NULL, 0xff undefined
		return 0, 0, false
	}
}

// ReadLenEncBytes decodes the length-encoded string at the start of b and
// returns it (a sub-slice of b) with the number of bytes consumed.
func ReadLenEncBytes(b []byte) (s []byte, n int, ok bool) {
	l, m, ok := ReadLenEncInt(b)
	if !ok || l > uint64(len(b)-m) {
		return nil, 0, false
	}
	end := m + int(l)
	return b[m:end:end], end, true
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 {
	return uint64(le32(b)) | uint64(le32(b[4:]))<<32
}

// Decoder is a cursor over a payload with a sticky error: after the first
// read that runs past the end (or meets an invalid encoding) every further
// read returns a zero value and Err reports ErrMalformed. Slices it returns
// are sub-slices of the payload, not copies.
//
// The zero Decoder reads an empty payload; use NewDecoder or Reset.
type Decoder struct {
	buf []byte
	off int
	err error
}

// NewDecoder returns a Decoder positioned at the start of b.
func NewDecoder(b []byte) Decoder { return Decoder{buf: b} }

// Reset repositions d at the start of b and clears its error.
func (d *Decoder) Reset(b []byte) { *d = Decoder{buf: b} }

// Err returns ErrMalformed if a read failed, else nil.
func (d *Decoder) Err() error { return d.err }

// Offset returns the number of bytes consumed so far.
func (d *Decoder) Offset() int { return d.off }

// Len returns the number of unread bytes (0 after an error).
func (d *Decoder) Len() int {
	if d.err != nil {
		return 0
	}
	return len(d.buf) - d.off
}

// fail records the sticky error.
func (d *Decoder) fail() {
	if d.err == nil {
		d.err = ErrMalformed
	}
}

// need reports whether n more bytes are available, failing otherwise.
func (d *Decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || n > len(d.buf)-d.off {
		d.fail()
		return false
	}
	return true
}

// Peek returns the next byte without consuming it; ok is false at the end.
func (d *Decoder) Peek() (b byte, ok bool) {
	if d.err != nil || d.off >= len(d.buf) {
		return 0, false
	}
	return d.buf[d.off], true
}

// Byte reads one byte (int<1>).
func (d *Decoder) Byte() byte {
	if !d.need(1) {
		return 0
	}
	d.off++
	return d.buf[d.off-1]
}

// Uint16 reads a 2-byte little-endian integer.
func (d *Decoder) Uint16() uint16 {
	if !d.need(2) {
		return 0
	}
	d.off += 2
	return le16(d.buf[d.off-2:])
}

// Uint24 reads a 3-byte little-endian integer.
func (d *Decoder) Uint24() uint32 {
	if !d.need(3) {
		return 0
	}
	d.off += 3
	b := d.buf[d.off-3:]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
}

// Uint32 reads a 4-byte little-endian integer.
func (d *Decoder) Uint32() uint32 {
	if !d.need(4) {
		return 0
	}
	d.off += 4
	return le32(d.buf[d.off-4:])
}

// Uint64 reads an 8-byte little-endian integer.
func (d *Decoder) Uint64() uint64 {
	if !d.need(8) {
		return 0
	}
	d.off += 8
	return le64(d.buf[d.off-8:])
}

// Bytes reads the next n bytes.
func (d *Decoder) Bytes(n int) []byte {
	if !d.need(n) {
		return nil
	}
	d.off += n
	return d.buf[d.off-n : d.off : d.off]
}

// Skip advances past n bytes.
func (d *Decoder) Skip(n int) {
	if d.need(n) {
		d.off += n
	}
}

// Rest consumes and returns everything that is left (string<EOF>).
func (d *Decoder) Rest() []byte {
	if d.err != nil {
		return nil
	}
	b := d.buf[d.off:len(d.buf):len(d.buf)]
	d.off = len(d.buf)
	return b
}

// LenEncInt reads a length-encoded integer; NULL (0xfb) is an error.
func (d *Decoder) LenEncInt() uint64 {
	v, null := d.LenEncIntOrNull()
	if null {
		d.fail()
	}
	return v
}

// LenEncIntOrNull reads a length-encoded integer, reporting NULL (0xfb) as
// null=true instead of failing.
func (d *Decoder) LenEncIntOrNull() (v uint64, null bool) {
	if d.err != nil {
		return 0, false
	}
	if d.off < len(d.buf) && d.buf[d.off] == NullValue {
		d.off++
		return 0, true
	}
	v, n, ok := ReadLenEncInt(d.buf[d.off:])
	if !ok {
		d.fail()
		return 0, false
	}
	d.off += n
	return v, false
}

// LenEncBytes reads a length-encoded string.
func (d *Decoder) LenEncBytes() []byte {
	l := d.LenEncInt()
	if d.err != nil {
		return nil
	}
	if l > uint64(len(d.buf)-d.off) {
		d.fail()
		return nil
	}
	return d.Bytes(int(l))
}

// LenEncString reads a length-encoded string as a Go string (a copy).
func (d *Decoder) LenEncString() string { return string(d.LenEncBytes()) }

// NulBytes reads a NUL-terminated string, consuming the NUL, and returns it
// without the NUL. A missing terminator is an error.
func (d *Decoder) NulBytes() []byte {
	if d.err != nil {
		return nil
	}
	i := bytes.IndexByte(d.buf[d.off:], 0)
	if i < 0 {
		d.fail()
		return nil
	}
	b := d.buf[d.off : d.off+i : d.off+i]
	d.off += i + 1
	return b
}

// NulString reads a NUL-terminated string as a Go string (a copy).
func (d *Decoder) NulString() string { return string(d.NulBytes()) }

// NulBytesOrEOF reads a string terminated by NUL or by the end of the
// payload (servers and clients omit the final NUL in a few places).
func (d *Decoder) NulBytesOrEOF() []byte {
	if d.err != nil {
		return nil
	}
	rest := d.buf[d.off:]
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		d.off += i + 1
		return rest[:i:i]
	}
	d.off = len(d.buf)
	return rest[:len(rest):len(rest)]
}
