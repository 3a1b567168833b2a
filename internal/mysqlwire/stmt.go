package mysqlwire

import (
	"fmt"
	"slices"
)

// COM_STMT_EXECUTE flags (enum_cursor_type, plus MySQL's
// PARAMETER_COUNT_AVAILABLE).
const (
	CursorTypeNoCursor      byte = 0x00 // CURSOR_TYPE_NO_CURSOR
	CursorTypeReadOnly      byte = 0x01 // CURSOR_TYPE_READ_ONLY: rows come by COM_STMT_FETCH
	CursorTypeForUpdate     byte = 0x02 // CURSOR_TYPE_FOR_UPDATE
	CursorTypeScrollable    byte = 0x04 // CURSOR_TYPE_SCROLLABLE
	ParameterCountAvailable byte = 0x08 // PARAMETER_COUNT_AVAILABLE (with ClientQueryAttributes)
)

// ParamUnsigned is the bit of a parameter's flag byte that marks an
// unsigned integer.
const ParamUnsigned byte = 0x80

// LastStatementID is MariaDB's statement id -1: "the statement prepared last
// on this connection", used to pipeline COM_STMT_PREPARE and
// COM_STMT_EXECUTE. A proxy that maps statement ids must resolve it itself.
const LastStatementID uint32 = 0xffffffff

// ParamType is the two-byte type of a COM_STMT_EXECUTE parameter.
type ParamType struct {
	// Type is the field type (Type*).
	Type byte
	// Flags holds ParamUnsigned.
	Flags byte
}

// StmtParam is one decoded COM_STMT_EXECUTE parameter.
type StmtParam struct {
	// Type is the parameter's type, sent in this packet or bound earlier.
	Type ParamType
	// Name is the parameter (query attribute) name, sent with
	// ClientQueryAttributes when types are bound; empty otherwise.
	Name []byte
	// Null reports the parameter's bit in the NULL bitmap.
	Null bool
	// LongData reports that the value was sent by COM_STMT_SEND_LONG_DATA
	// and is not in this packet.
	LongData bool
	// Value is the value exactly as encoded in the packet (length prefix
	// included), a sub-slice of the payload; nil when Null or LongData.
	Value []byte
}

// Data returns the parameter's value without its length prefix (for
// strings, decimals, blobs and temporal types).
func (p *StmtParam) Data() []byte {
	if len(p.Value) == 0 {
		return p.Value
	}
	switch binaryClass(p.Type.Type) {
	case classLenEnc:
		b, _, _ := ReadLenEncBytes(p.Value)
		return b
	case classDate, classTime:
		return p.Value[1:]
	}
	return p.Value
}

// StmtState is what the server remembers about a prepared statement between
// executions, and what decoding a COM_STMT_EXECUTE therefore needs: the
// parameter count from COM_STMT_PREPARE_OK, the parameter types bound by an
// earlier execution (a client sends types only when they change), and which
// parameters received COM_STMT_SEND_LONG_DATA since the last execution.
type StmtState struct {
	// NumParams is the placeholder count from COM_STMT_PREPARE_OK.
	NumParams int
	// BoundTypes are the types sent by the last execution that bound types
	// (nil before the first).
	BoundTypes []ParamType
	// LongData[i] is true when parameter i was sent by
	// COM_STMT_SEND_LONG_DATA (nil when none was).
	LongData []bool
}

// MarkLongData records a COM_STMT_SEND_LONG_DATA for parameter i.
func (s *StmtState) MarkLongData(i int) {
	if i < 0 || i >= 1<<16 {
		return
	}
	if i >= len(s.LongData) {
		s.LongData = append(s.LongData, make([]bool, i+1-len(s.LongData))...)
	}
	s.LongData[i] = true
}

// Executed updates the state after x was sent: types bound by x become the
// statement's bound types, and long data is consumed. Call it also (with
// a nil x) on COM_STMT_RESET, which discards long data.
func (s *StmtState) Executed(x *StmtExecute) {
	clear(s.LongData)
	s.LongData = s.LongData[:0]
	if x == nil || !x.NewParamsBound {
		return
	}
	s.BoundTypes = s.BoundTypes[:0]
	for i := range x.Params {
		s.BoundTypes = append(s.BoundTypes, x.Params[i].Type)
	}
}

func (s *StmtState) longData(i int) bool {
	return s != nil && i < len(s.LongData) && s.LongData[i]
}

// StmtExecute is a decoded COM_STMT_EXECUTE.
type StmtExecute struct {
	// StatementID identifies the prepared statement (LastStatementID on
	// MariaDB: the last one prepared).
	StatementID uint32
	// Flags are the cursor flags (CursorType*, ParameterCountAvailable).
	Flags byte
	// IterationCount is always 1 in practice.
	IterationCount uint32
	// NewParamsBound reports that the packet carries parameter types; when
	// false the types come from the StmtState. Set it before Append to
	// re-send the types (to a backend connection where the statement was
	// just prepared again).
	NewParamsBound bool
	// Params are the parameters: NumParams of them, or the count sent under
	// ClientQueryAttributes (which may add named query attributes).
	Params []StmtParam
}

// ParseStmtExecute decodes a COM_STMT_EXECUTE payload (command byte
// included) for a statement in state st under the negotiated capabilities
// caps. Values are sub-slices of payload. Bytes after the last value are
// ignored.
func ParseStmtExecute(payload []byte, st *StmtState, caps uint64) (*StmtExecute, error) {
	x := &StmtExecute{}
	if err := x.Decode(payload, st, caps); err != nil {
		return nil, err
	}
	return x, nil
}

// Decode is ParseStmtExecute into x, reusing x.Params.
func (x *StmtExecute) Decode(payload []byte, st *StmtState, caps uint64) error {
	d := NewDecoder(payload)
	if c := d.Byte(); d.Err() == nil && c != ComStmtExecute {
		return fmt.Errorf("%w: not COM_STMT_EXECUTE (0x%02x)", ErrMalformed, c)
	}
	x.StatementID = d.Uint32()
	x.Flags = d.Byte()
	x.IterationCount = d.Uint32()
	x.NewParamsBound = false
	x.Params = x.Params[:0]
	if d.Err() != nil {
		return fmt.Errorf("%w: short COM_STMT_EXECUTE", ErrMalformed)
	}
	numParams := 0
	if st != nil {
		numParams = st.NumParams
	}
	qa := caps&ClientQueryAttributes != 0
	count := numParams
	if qa && (numParams > 0 || x.Flags&ParameterCountAvailable != 0) {
		pc := d.LenEncInt()
		if d.Err() != nil || pc < uint64(numParams) || pc > uint64(d.Len())*8 {
			return fmt.Errorf("%w: COM_STMT_EXECUTE parameter count", ErrMalformed)
		}
		count = int(pc)
	}
	if count <= 0 {
		return nil
	}
	if count > d.Len()*8 {
		return fmt.Errorf("%w: COM_STMT_EXECUTE too short for %d parameters", ErrMalformed, count)
	}
	nulls := d.Bytes((count + 7) / 8)
	x.NewParamsBound = d.Byte() != 0
	if d.Err() != nil {
		return fmt.Errorf("%w: COM_STMT_EXECUTE NULL bitmap", ErrMalformed)
	}
	if !x.NewParamsBound && (st == nil || len(st.BoundTypes) < count) {
		return fmt.Errorf("%w: COM_STMT_EXECUTE without parameter types, none bound before", ErrMalformed)
	}
	x.Params = slices.Grow(x.Params, count)[:count]
	for i := range x.Params {
		p := &x.Params[i]
		*p = StmtParam{Null: nulls[i/8]&(1<<(uint(i)%8)) != 0}
		if x.NewParamsBound {
			p.Type.Type = d.Byte()
			p.Type.Flags = d.Byte()
			if qa {
				p.Name = d.LenEncBytes()
			}
		} else {
			p.Type = st.BoundTypes[i]
		}
	}
	if d.Err() != nil {
		return fmt.Errorf("%w: COM_STMT_EXECUTE parameter types", ErrMalformed)
	}
	for i := range x.Params {
		p := &x.Params[i]
		if st.longData(i) {
			p.LongData = true
			continue
		}
		if p.Null {
			continue
		}
		off := d.Offset()
		n, err := BinaryValueSize(p.Type.Type, payload[off:])
		if err != nil {
			return fmt.Errorf("parameter %d: %w", i, err)
		}
		p.Value = d.Bytes(n)
	}
	return nil
}

// Append appends x as a COM_STMT_EXECUTE payload (command byte included)
// for caps. Types (and query attribute names) are written when
// NewParamsBound is set; values are copied as they were decoded.
func (x *StmtExecute) Append(dst []byte, caps uint64) []byte {
	dst = append(dst, ComStmtExecute)
	dst = AppendUint32(dst, x.StatementID)
	dst = append(dst, x.Flags)
	dst = AppendUint32(dst, x.IterationCount)
	qa := caps&ClientQueryAttributes != 0
	count := len(x.Params)
	if qa && (count > 0 || x.Flags&ParameterCountAvailable != 0) {
		dst = AppendLenEncInt(dst, uint64(count))
	}
	if count == 0 {
		return dst
	}
	start := len(dst)
	dst = append(dst, make([]byte, (count+7)/8)...)
	for i := range x.Params {
		if x.Params[i].Null {
			dst[start+i/8] |= 1 << (uint(i) % 8)
		}
	}
	if !x.NewParamsBound {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		for i := range x.Params {
			p := &x.Params[i]
			dst = append(dst, p.Type.Type, p.Type.Flags)
			if qa {
				dst = AppendLenEncBytes(dst, p.Name)
			}
		}
	}
	for i := range x.Params {
		if p := &x.Params[i]; !p.Null && !p.LongData {
			dst = append(dst, p.Value...)
		}
	}
	return dst
}

// Value encoding classes of the binary protocol.
const (
	classUnknown = iota
	classFixed
	classLenEnc
	classDate // 1-byte length 0/4/7/11 + data
	classTime // 1-byte length 0/8/12 + data
)

func binaryClass(typ byte) int {
	switch typ {
	case TypeNull, TypeTiny, TypeShort, TypeYear, TypeLong, TypeInt24, TypeFloat,
		TypeLongLong, TypeDouble:
		return classFixed
	case TypeDate, TypeDateTime, TypeTimestamp, TypeNewDate, TypeTimestamp2, TypeDateTime2:
		return classDate
	case TypeTime, TypeTime2:
		return classTime
	case TypeDecimal, TypeNewDecimal, TypeVarchar, TypeBit, TypeJSON, TypeEnum, TypeSet,
		TypeTinyBlob, TypeMediumBlob, TypeLongBlob, TypeBlob, TypeVarString, TypeString,
		TypeGeometry, TypeVector:
		return classLenEnc
	}
	return classUnknown
}

// BinaryValueSize returns the number of bytes that the binary-protocol value
// of type typ takes at the start of b (COM_STMT_EXECUTE parameters and
// binary result set rows share the encoding). It fails on unknown types,
// invalid temporal lengths and values that run past the end of b.
func BinaryValueSize(typ byte, b []byte) (int, error) {
	n := 0
	switch binaryClass(typ) {
	case classFixed:
		switch typ {
		case TypeNull:
			n = 0
		case TypeTiny:
			n = 1
		case TypeShort, TypeYear:
			n = 2
		case TypeLong, TypeInt24, TypeFloat:
			n = 4
		default:
			n = 8
		}
	case classDate, classTime:
		if len(b) == 0 {
			return 0, fmt.Errorf("%w: missing temporal value length", ErrMalformed)
		}
		l := b[0]
		valid := l == 0 || (typ == TypeTime || typ == TypeTime2) && (l == 8 || l == 12) ||
			!(typ == TypeTime || typ == TypeTime2) && (l == 4 || l == 7 || l == 11)
		if !valid {
			return 0, fmt.Errorf("%w: temporal value length %d for type 0x%02x", ErrMalformed, l, typ)
		}
		n = 1 + int(l)
	case classLenEnc:
		_, k, ok := ReadLenEncBytes(b)
		if !ok {
			return 0, fmt.Errorf("%w: length-encoded value", ErrMalformed)
		}
		n = k
	default:
		return 0, fmt.Errorf("%w: unknown value type 0x%02x", ErrMalformed, typ)
	}
	if n > len(b) {
		return 0, fmt.Errorf("%w: value of type 0x%02x truncated", ErrMalformed, typ)
	}
	return n, nil
}

// hasStatementID reports whether command cmd starts with a statement id.
func hasStatementID(cmd byte) bool {
	switch cmd {
	case ComStmtExecute, ComStmtSendLongData, ComStmtClose, ComStmtReset, ComStmtFetch, ComStmtBulkExecute:
		return true
	}
	return false
}

// StatementID returns the statement id of a COM_STMT_EXECUTE,
// COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE, COM_STMT_RESET, COM_STMT_FETCH or
// COM_STMT_BULK_EXECUTE payload (command byte included); ok is false for
// other payloads.
func StatementID(payload []byte) (id uint32, ok bool) {
	if len(payload) < 5 || !hasStatementID(payload[0]) {
		return 0, false
	}
	return le32(payload[1:]), true
}

// SetStatementID overwrites, in place, the statement id of a payload
// accepted by StatementID: the proxy maps the client's ids to the backend's.
func SetStatementID(payload []byte, id uint32) error {
	if len(payload) < 5 || !hasStatementID(payload[0]) {
		return fmt.Errorf("%w: not a statement command", ErrMalformed)
	}
	payload[1], payload[2], payload[3], payload[4] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
	return nil
}

// SetPrepareOKStatementID overwrites, in place, the statement id of a
// COM_STMT_PREPARE_OK payload (the backend's id replaced by the one the
// proxy hands to the client).
func SetPrepareOKStatementID(payload []byte, id uint32) error {
	if len(payload) < 9 || payload[0] != OKHeader {
		return fmt.Errorf("%w: not COM_STMT_PREPARE_OK", ErrMalformed)
	}
	payload[1], payload[2], payload[3], payload[4] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
	return nil
}

// ParseStmtSendLongData decodes a COM_STMT_SEND_LONG_DATA payload (command
// byte included); data is a sub-slice of payload.
func ParseStmtSendLongData(payload []byte) (stmtID uint32, param uint16, data []byte, err error) {
	if len(payload) < 7 || payload[0] != ComStmtSendLongData {
		return 0, 0, nil, fmt.Errorf("%w: not COM_STMT_SEND_LONG_DATA", ErrMalformed)
	}
	return le32(payload[1:]), le16(payload[5:]), payload[7:len(payload):len(payload)], nil
}

// ParseStmtFetch decodes a COM_STMT_FETCH payload (command byte included).
func ParseStmtFetch(payload []byte) (stmtID, numRows uint32, err error) {
	if len(payload) < 9 || payload[0] != ComStmtFetch {
		return 0, 0, fmt.Errorf("%w: not COM_STMT_FETCH", ErrMalformed)
	}
	return le32(payload[1:]), le32(payload[5:]), nil
}

// AppendStmtCommand appends the payload of a command that takes only a
// statement id: COM_STMT_CLOSE or COM_STMT_RESET.
func AppendStmtCommand(dst []byte, cmd byte, stmtID uint32) []byte {
	return AppendUint32(append(dst, cmd), stmtID)
}
