package pgwire

import "encoding/binary"

// Message type bytes used by the proxy. Client (frontend) and server
// (backend) share some letters; the direction tells them apart.
const (
	// Frontend messages.
	MsgQuery      byte = 'Q'
	MsgParse      byte = 'P'
	MsgBind       byte = 'B'
	MsgDescribe   byte = 'D'
	MsgExecute    byte = 'E'
	MsgClose      byte = 'C'
	MsgSync       byte = 'S'
	MsgFlush      byte = 'H'
	MsgTerminate  byte = 'X'
	MsgCopyData   byte = 'd'
	MsgCopyDone   byte = 'c'
	MsgCopyFail   byte = 'f'
	MsgFuncCall   byte = 'F'
	MsgPassword   byte = 'p' // PasswordMessage, SASLInitialResponse, SASLResponse
	MsgSSLRequest byte = 0   // pseudo type of untyped startup packets

	// Backend messages.
	MsgAuthentication   byte = 'R'
	MsgBackendKeyData   byte = 'K'
	MsgParameterStatus  byte = 'S'
	MsgReadyForQuery    byte = 'Z'
	MsgErrorResponse    byte = 'E'
	MsgNoticeResponse   byte = 'N'
	MsgNotification     byte = 'A'
	MsgCommandComplete  byte = 'C'
	MsgDataRow          byte = 'D'
	MsgRowDescription   byte = 'T'
	MsgParseComplete    byte = '1'
	MsgBindComplete     byte = '2'
	MsgCloseComplete    byte = '3'
	MsgCopyInResponse   byte = 'G'
	MsgCopyOutResponse  byte = 'H'
	MsgCopyBothResponse byte = 'W'
	MsgNoData           byte = 'n'
	MsgParamDescription byte = 't'
)

// Authentication request codes carried by MsgAuthentication.
const (
	AuthOK                uint32 = 0
	AuthCleartextPassword uint32 = 3
	AuthMD5Password       uint32 = 5
	AuthSASL              uint32 = 10
	AuthSASLContinue      uint32 = 11
	AuthSASLFinal         uint32 = 12
)

// begin appends a message header with a placeholder length and returns the
// offset of the length word for finish.
func begin(dst []byte, typ byte) ([]byte, int) {
	dst = append(dst, typ, 0, 0, 0, 0)
	return dst, len(dst) - 4
}

func finish(dst []byte, at int) []byte {
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at))
	return dst
}

func appendCString(dst []byte, s string) []byte {
	dst = append(dst, s...)
	return append(dst, 0)
}

// AppendErrorResponse appends an ErrorResponse with the given severity
// ("ERROR", "FATAL"), SQLSTATE and message.
func AppendErrorResponse(dst []byte, severity, code, message string) []byte {
	dst, at := begin(dst, MsgErrorResponse)
	dst = append(dst, 'S')
	dst = appendCString(dst, severity)
	dst = append(dst, 'V')
	dst = appendCString(dst, severity)
	dst = append(dst, 'C')
	dst = appendCString(dst, code)
	dst = append(dst, 'M')
	dst = appendCString(dst, message)
	dst = append(dst, 0)
	return finish(dst, at)
}

// AppendReadyForQuery appends a ReadyForQuery with the transaction status
// byte ('I', 'T' or 'E').
func AppendReadyForQuery(dst []byte, status byte) []byte {
	return append(dst, MsgReadyForQuery, 0, 0, 0, 5, status)
}

// AppendEmpty appends a message that has no body (ParseComplete,
// BindComplete, CloseComplete, NoData).
func AppendEmpty(dst []byte, typ byte) []byte {
	return append(dst, typ, 0, 0, 0, 4)
}

// AppendCommandComplete appends a CommandComplete with the given tag.
func AppendCommandComplete(dst []byte, tag string) []byte {
	dst, at := begin(dst, MsgCommandComplete)
	dst = appendCString(dst, tag)
	return finish(dst, at)
}

// AppendNoParams appends a ParameterDescription of a statement without
// parameters.
func AppendNoParams(dst []byte) []byte {
	return append(dst, MsgParamDescription, 0, 0, 0, 6, 0, 0)
}

// AppendParameterStatus appends a ParameterStatus message.
func AppendParameterStatus(dst []byte, name, value string) []byte {
	dst, at := begin(dst, MsgParameterStatus)
	dst = appendCString(dst, name)
	dst = appendCString(dst, value)
	return finish(dst, at)
}

// AppendBackendKeyData appends a BackendKeyData with a 4-byte secret key
// (protocol 3.0).
func AppendBackendKeyData(dst []byte, pid, key uint32) []byte {
	dst = append(dst, MsgBackendKeyData, 0, 0, 0, 12)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return binary.BigEndian.AppendUint32(dst, key)
}

// AppendAuthentication appends an Authentication request with the given code
// and code-specific payload (the MD5 salt, the SASL mechanism list or SASL
// data).
func AppendAuthentication(dst []byte, code uint32, payload []byte) []byte {
	dst, at := begin(dst, MsgAuthentication)
	dst = binary.BigEndian.AppendUint32(dst, code)
	dst = append(dst, payload...)
	return finish(dst, at)
}

// AppendQuery appends a simple-protocol Query message.
func AppendQuery(dst []byte, sql string) []byte {
	dst, at := begin(dst, MsgQuery)
	dst = appendCString(dst, sql)
	return finish(dst, at)
}

// AppendClose appends a Close message for a statement ('S') or portal ('P').
func AppendClose(dst []byte, kind byte, name string) []byte {
	dst, at := begin(dst, MsgClose)
	dst = append(dst, kind)
	dst = appendCString(dst, name)
	return finish(dst, at)
}

// AppendSync appends a Sync message.
func AppendSync(dst []byte) []byte { return append(dst, MsgSync, 0, 0, 0, 4) }

// AppendCancelRequest appends an untyped CancelRequest packet.
func AppendCancelRequest(dst []byte, pid uint32, key []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(12+len(key)))
	dst = binary.BigEndian.AppendUint32(dst, CancelRequestCode)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return append(dst, key...)
}
