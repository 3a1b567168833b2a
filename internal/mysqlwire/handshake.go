package mysqlwire

import (
	"fmt"
	"slices"
	"strings"
)

// ProtocolVersion10 is the protocol version of HandshakeV10, the only
// initial handshake in use since MySQL 3.21.
const ProtocolVersion10 byte = 10

// Handshake is the server's initial handshake packet (HandshakeV10).
type Handshake struct {
	// ServerVersion is the human-readable version; MariaDB 10.x prefixes it
	// with "5.5.5-" (e.g. "5.5.5-10.11.6-MariaDB").
	ServerVersion string
	// ConnectionID is the server thread id (the target of KILL).
	ConnectionID uint32
	// AuthPluginData is the authentication challenge, normally the
	// 20-byte scramble, without the NUL that terminates it on the wire.
	AuthPluginData []byte
	// Capabilities are the server's capability flags, MariaDB extended
	// capabilities in the high 32 bits (sent only when ClientMySQL is clear).
	Capabilities uint64
	// CharacterSet is the server's default collation id (low byte).
	CharacterSet byte
	// StatusFlags are the initial server status flags.
	StatusFlags uint16
	// AuthPluginName is the default authentication plugin (with
	// ClientPluginAuth), e.g. "mysql_native_password".
	AuthPluginName string
}

// IsMariaDB reports whether the handshake comes from MariaDB: its version
// string says so, or the server cleared ClientMySQL to announce extended
// capabilities.
func (h *Handshake) IsMariaDB() bool {
	return strings.Contains(h.ServerVersion, "MariaDB") || h.Capabilities&ClientMySQL == 0
}

// Append appends the HandshakeV10 payload. The scramble (AuthPluginData) is
// written as 8 bytes, filler, then the rest NUL-terminated and padded to at
// least 13 bytes; it should be 20 bytes without NUL bytes (NewScramble).
// Data beyond what the format can carry (254 bytes, or 21 without
// ClientPluginAuth) is cut.
func (h *Handshake) Append(dst []byte) []byte {
	caps := h.Capabilities
	dst = append(dst, ProtocolVersion10)
	dst = AppendNulString(dst, h.ServerVersion)
	dst = AppendUint32(dst, h.ConnectionID)
	var part1 [8]byte
	copy(part1[:], h.AuthPluginData)
	dst = append(dst, part1[:]...)
	dst = append(dst, 0)
	dst = AppendUint16(dst, uint16(caps))
	dst = append(dst, h.CharacterSet)
	dst = AppendUint16(dst, h.StatusFlags)
	dst = AppendUint16(dst, uint16(caps>>16))
	// The length byte counts the scramble's NUL terminator; the second
	// part on the wire is max(13, length-8) bytes: the rest of the data,
	// then NUL padding.
	part2Len := 13
	if caps&ClientPluginAuth != 0 {
		n := min(len(h.AuthPluginData)+1, 255)
		dst = append(dst, byte(n))
		part2Len = max(13, n-8)
	} else {
		dst = append(dst, 0)
	}
	dst = append(dst, 0, 0, 0, 0, 0, 0)
	if caps&ClientMySQL == 0 {
		dst = AppendUint32(dst, uint32(caps>>32))
	} else {
		dst = append(dst, 0, 0, 0, 0)
	}
	if caps&ClientSecureConnection != 0 {
		var part2 []byte
		if len(h.AuthPluginData) > 8 {
			part2 = h.AuthPluginData[8:]
		}
		part2 = part2[:min(len(part2), part2Len)]
		dst = append(dst, part2...)
		for i := len(part2); i < part2Len; i++ {
			dst = append(dst, 0)
		}
	}
	if caps&ClientPluginAuth != 0 {
		dst = AppendNulString(dst, h.AuthPluginName)
	}
	return dst
}

// ParseHandshake parses the server's initial handshake. If the server sent
// an ERR packet instead (too many connections, host blocked), the error is
// an *ERRPacket.
func ParseHandshake(payload []byte) (*Handshake, error) {
	if IsERR(payload) {
		e, err := ParseERR(payload)
		if err != nil {
			return nil, err
		}
		return nil, &e
	}
	d := NewDecoder(payload)
	if v := d.Byte(); d.Err() == nil && v != ProtocolVersion10 {
		return nil, fmt.Errorf("%w: unsupported protocol version %d", ErrMalformed, v)
	}
	h := &Handshake{}
	h.ServerVersion = d.NulString()
	h.ConnectionID = d.Uint32()
	part1 := d.Bytes(8)
	d.Skip(1)
	caps := uint64(d.Uint16())
	h.CharacterSet = d.Byte()
	h.StatusFlags = d.Uint16()
	caps |= uint64(d.Uint16()) << 16
	dataLen := int(d.Byte())
	d.Skip(6)
	ext := d.Uint32()
	if caps&ClientMySQL == 0 {
		caps |= uint64(ext) << 32
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("%w: short handshake", ErrMalformed)
	}
	h.Capabilities = caps
	h.AuthPluginData = append(make([]byte, 0, 20), part1...)
	if caps&ClientSecureConnection != 0 {
		n := 13
		if caps&ClientPluginAuth != 0 {
			n = max(13, dataLen-8)
		}
		part2 := d.Bytes(n)
		if d.Err() != nil {
			return nil, fmt.Errorf("%w: short handshake scramble", ErrMalformed)
		}
		if part2[len(part2)-1] == 0 {
			part2 = part2[:len(part2)-1]
		}
		h.AuthPluginData = append(h.AuthPluginData, part2...)
	}
	if caps&ClientPluginAuth != 0 {
		h.AuthPluginName = string(d.NulBytesOrEOF())
	}
	return h, nil
}

// HandshakeResponse is the client's HandshakeResponse41 (and, cut short, the
// SSLRequest that precedes it when the client switches to TLS).
type HandshakeResponse struct {
	// Capabilities are the client's capability flags, MariaDB extended
	// capabilities in the high 32 bits (sent only when ClientMySQL is clear).
	Capabilities uint64
	// MaxPacketSize is the largest packet the client will send.
	MaxPacketSize uint32
	// CharacterSet is the client's collation id (low byte).
	CharacterSet byte
	// Username is the login name.
	Username string
	// AuthResponse is the answer to the scramble for AuthPluginName
	// (empty for an empty password with mysql_native_password).
	AuthResponse []byte
	// Database is the initial schema (with ClientConnectWithDB).
	Database string
	// AuthPluginName is the plugin that computed AuthResponse (with
	// ClientPluginAuth).
	AuthPluginName string
	// ConnectAttrs are the connection attributes (with ClientConnectAttrs),
	// such as _client_name and program_name; nil when none were sent.
	ConnectAttrs map[string]string
	// ZstdLevel is the zstd compression level (with
	// ClientZstdCompressionAlgorithm).
	ZstdLevel byte
}

// sslRequestLen is the payload length of an SSLRequest: the fixed part of a
// HandshakeResponse41.
const sslRequestLen = 32

// IsSSLRequest reports whether payload is an SSLRequest: the 32-byte fixed
// prefix of a HandshakeResponse41 with ClientSSL set, after which the client
// starts a TLS handshake.
func IsSSLRequest(payload []byte) bool {
	return len(payload) == sslRequestLen && uint64(le32(payload))&ClientSSL != 0
}

// appendFixed appends the 32-byte prefix shared by SSLRequest and
// HandshakeResponse41.
func appendFixed(dst []byte, caps uint64, maxPacket uint32, charset byte) []byte {
	dst = AppendUint32(dst, uint32(caps))
	dst = AppendUint32(dst, maxPacket)
	dst = append(dst, charset)
	dst = append(dst, make([]byte, 19)...)
	if caps&ClientMySQL == 0 {
		return AppendUint32(dst, uint32(caps>>32))
	}
	return append(dst, 0, 0, 0, 0)
}

// AppendSSLRequest appends an SSLRequest payload; caps must include
// ClientSSL.
func AppendSSLRequest(dst []byte, caps uint64, maxPacket uint32, charset byte) []byte {
	return appendFixed(dst, caps|ClientSSL, maxPacket, charset)
}

// Append appends the HandshakeResponse41 payload. The auth response is
// length-encoded with ClientPluginAuthLenencClientData, else prefixed by
// one length byte with ClientSecureConnection (at most 255 bytes are sent),
// else NUL-terminated. Connection attributes are written in sorted order.
func (r *HandshakeResponse) Append(dst []byte) []byte {
	caps := r.Capabilities
	dst = appendFixed(dst, caps, r.MaxPacketSize, r.CharacterSet)
	dst = AppendNulString(dst, r.Username)
	switch {
	case caps&ClientPluginAuthLenencClientData != 0:
		dst = AppendLenEncBytes(dst, r.AuthResponse)
	case caps&ClientSecureConnection != 0:
		a := r.AuthResponse[:min(len(r.AuthResponse), 255)]
		dst = append(dst, byte(len(a)))
		dst = append(dst, a...)
	default:
		dst = append(dst, r.AuthResponse...)
		dst = append(dst, 0)
	}
	if caps&ClientConnectWithDB != 0 {
		dst = AppendNulString(dst, r.Database)
	}
	if caps&ClientPluginAuth != 0 {
		dst = AppendNulString(dst, r.AuthPluginName)
	}
	if caps&ClientConnectAttrs != 0 {
		dst = appendConnectAttrs(dst, r.ConnectAttrs)
	}
	if caps&ClientZstdCompressionAlgorithm != 0 {
		dst = append(dst, r.ZstdLevel)
	}
	return dst
}

// appendConnectAttrs appends the length-prefixed key/value block.
func appendConnectAttrs(dst []byte, attrs map[string]string) []byte {
	keys := make([]string, 0, len(attrs))
	size := 0
	for k, v := range attrs {
		keys = append(keys, k)
		size += LenEncIntSize(uint64(len(k))) + len(k) + LenEncIntSize(uint64(len(v))) + len(v)
	}
	slices.Sort(keys)
	dst = AppendLenEncInt(dst, uint64(size))
	for _, k := range keys {
		dst = AppendLenEncString(dst, k)
		dst = AppendLenEncString(dst, attrs[k])
	}
	return dst
}

// parseConnectAttrs reads the length-prefixed key/value block.
func parseConnectAttrs(d *Decoder) (map[string]string, error) {
	block := d.LenEncBytes()
	if d.Err() != nil {
		return nil, fmt.Errorf("%w: connection attributes", ErrMalformed)
	}
	if len(block) == 0 {
		return nil, nil
	}
	attrs := make(map[string]string)
	a := NewDecoder(block)
	for a.Len() > 0 {
		k := a.LenEncBytes()
		v := a.LenEncBytes()
		if a.Err() != nil {
			return nil, fmt.Errorf("%w: connection attributes", ErrMalformed)
		}
		attrs[string(k)] = string(v)
	}
	return attrs, nil
}

// ParseHandshakeResponse parses a HandshakeResponse41. An SSLRequest (see
// IsSSLRequest) parses into its fixed fields. Trailing optional fields that
// a client leaves out (database, plugin name, attributes) parse as empty.
// Pre-4.1 responses (without ClientProtocol41) are rejected.
func ParseHandshakeResponse(payload []byte) (*HandshakeResponse, error) {
	if len(payload) < sslRequestLen {
		return nil, fmt.Errorf("%w: short handshake response", ErrMalformed)
	}
	d := NewDecoder(payload)
	r := &HandshakeResponse{}
	caps := uint64(d.Uint32())
	if caps&ClientProtocol41 == 0 {
		return nil, fmt.Errorf("%w: client does not speak protocol 4.1", ErrMalformed)
	}
	r.MaxPacketSize = d.Uint32()
	r.CharacterSet = d.Byte()
	d.Skip(19)
	ext := d.Uint32()
	if caps&ClientMySQL == 0 {
		caps |= uint64(ext) << 32
	}
	r.Capabilities = caps
	if d.Len() == 0 && caps&ClientSSL != 0 {
		return r, nil // SSLRequest
	}
	r.Username = d.NulString()
	switch {
	case caps&ClientPluginAuthLenencClientData != 0:
		r.AuthResponse = d.LenEncBytes()
	case caps&ClientSecureConnection != 0:
		r.AuthResponse = d.Bytes(int(d.Byte()))
	default:
		r.AuthResponse = d.NulBytes()
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("%w: handshake response user or auth response", ErrMalformed)
	}
	r.AuthResponse = slices.Clone(r.AuthResponse)
	if r.AuthResponse == nil {
		r.AuthResponse = []byte{}
	}
	if caps&ClientConnectWithDB != 0 && d.Len() > 0 {
		r.Database = d.NulString()
	}
	if caps&ClientPluginAuth != 0 && d.Len() > 0 {
		r.AuthPluginName = string(d.NulBytesOrEOF())
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("%w: handshake response database", ErrMalformed)
	}
	if caps&ClientConnectAttrs != 0 && d.Len() > 0 {
		attrs, err := parseConnectAttrs(&d)
		if err != nil {
			return nil, err
		}
		r.ConnectAttrs = attrs
	}
	if caps&ClientZstdCompressionAlgorithm != 0 && d.Len() > 0 {
		r.ZstdLevel = d.Byte()
	}
	return r, nil
}

// ChangeUser is the payload of COM_CHANGE_USER, which re-authenticates a
// connection as another user and resets its session state.
type ChangeUser struct {
	// User is the new login name.
	User string
	// AuthResponse answers the scramble of the connection's handshake for
	// AuthPluginName.
	AuthResponse []byte
	// Database is the new default schema.
	Database string
	// CharacterSet is the collation id (2 bytes on the wire; 0 if absent).
	CharacterSet uint16
	// AuthPluginName is the plugin that computed AuthResponse (with
	// ClientPluginAuth).
	AuthPluginName string
	// ConnectAttrs are connection attributes (with ClientConnectAttrs).
	ConnectAttrs map[string]string
}

// ParseChangeUser parses a COM_CHANGE_USER payload (command byte included)
// sent under the negotiated capabilities caps. Fields after the database
// are optional.
func ParseChangeUser(payload []byte, caps uint64) (*ChangeUser, error) {
	d := NewDecoder(payload)
	if c := d.Byte(); d.Err() != nil || c != ComChangeUser {
		return nil, fmt.Errorf("%w: not COM_CHANGE_USER", ErrMalformed)
	}
	c := &ChangeUser{}
	c.User = d.NulString()
	if caps&ClientSecureConnection != 0 {
		c.AuthResponse = d.Bytes(int(d.Byte()))
	} else {
		c.AuthResponse = d.NulBytes()
	}
	c.AuthResponse = slices.Clone(c.AuthResponse)
	if c.AuthResponse == nil {
		c.AuthResponse = []byte{}
	}
	if d.Len() > 0 {
		c.Database = string(d.NulBytesOrEOF())
	}
	if d.Len() >= 2 {
		c.CharacterSet = d.Uint16()
	} else {
		d.Skip(d.Len())
	}
	if caps&ClientPluginAuth != 0 && d.Len() > 0 {
		c.AuthPluginName = string(d.NulBytesOrEOF())
	}
	if caps&ClientConnectAttrs != 0 && d.Len() > 0 {
		attrs, err := parseConnectAttrs(&d)
		if err != nil {
			return nil, err
		}
		c.ConnectAttrs = attrs
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("%w: COM_CHANGE_USER", ErrMalformed)
	}
	return c, nil
}

// Append appends the COM_CHANGE_USER payload (command byte included) for the
// negotiated capabilities caps.
func (c *ChangeUser) Append(dst []byte, caps uint64) []byte {
	dst = append(dst, ComChangeUser)
	dst = AppendNulString(dst, c.User)
	if caps&ClientSecureConnection != 0 {
		a := c.AuthResponse[:min(len(c.AuthResponse), 255)]
		dst = append(dst, byte(len(a)))
		dst = append(dst, a...)
	} else {
		dst = append(dst, c.AuthResponse...)
		dst = append(dst, 0)
	}
	dst = AppendNulString(dst, c.Database)
	dst = AppendUint16(dst, c.CharacterSet)
	if caps&ClientPluginAuth != 0 {
		dst = AppendNulString(dst, c.AuthPluginName)
	}
	if caps&ClientConnectAttrs != 0 {
		dst = appendConnectAttrs(dst, c.ConnectAttrs)
	}
	return dst
}
