package mysqlwire

import "fmt"

// Column and parameter types (enum_field_types): the type byte of a column
// definition and of a COM_STMT_EXECUTE parameter, which decides the binary
// protocol encoding of values.
const (
	TypeDecimal    byte = 0x00 // MYSQL_TYPE_DECIMAL: length-encoded string
	TypeTiny       byte = 0x01 // MYSQL_TYPE_TINY: int<1>
	TypeShort      byte = 0x02 // MYSQL_TYPE_SHORT: int<2>
	TypeLong       byte = 0x03 // MYSQL_TYPE_LONG: int<4>
	TypeFloat      byte = 0x04 // MYSQL_TYPE_FLOAT: 4-byte IEEE 754
	TypeDouble     byte = 0x05 // MYSQL_TYPE_DOUBLE: 8-byte IEEE 754
	TypeNull       byte = 0x06 // MYSQL_TYPE_NULL: no value bytes
	TypeTimestamp  byte = 0x07 // MYSQL_TYPE_TIMESTAMP: length 0/4/7/11 + date-time
	TypeLongLong   byte = 0x08 // MYSQL_TYPE_LONGLONG: int<8>
	TypeInt24      byte = 0x09 // MYSQL_TYPE_INT24: int<4>
	TypeDate       byte = 0x0a // MYSQL_TYPE_DATE: length 0/4/7/11 + date-time
	TypeTime       byte = 0x0b // MYSQL_TYPE_TIME: length 0/8/12 + time
	TypeDateTime   byte = 0x0c // MYSQL_TYPE_DATETIME: length 0/4/7/11 + date-time
	TypeYear       byte = 0x0d // MYSQL_TYPE_YEAR: int<2>
	TypeNewDate    byte = 0x0e // MYSQL_TYPE_NEWDATE (internal): as DATE
	TypeVarchar    byte = 0x0f // MYSQL_TYPE_VARCHAR: length-encoded string
	TypeBit        byte = 0x10 // MYSQL_TYPE_BIT: length-encoded string
	TypeTimestamp2 byte = 0x11 // MYSQL_TYPE_TIMESTAMP2 (internal): as TIMESTAMP
	TypeDateTime2  byte = 0x12 // MYSQL_TYPE_DATETIME2 (internal): as DATETIME
	TypeTime2      byte = 0x13 // MYSQL_TYPE_TIME2 (internal): as TIME
	TypeVector     byte = 0xf2 // MYSQL_TYPE_VECTOR (MySQL 9): length-encoded string
	TypeJSON       byte = 0xf5 // MYSQL_TYPE_JSON: length-encoded string
	TypeNewDecimal byte = 0xf6 // MYSQL_TYPE_NEWDECIMAL: length-encoded string
	TypeEnum       byte = 0xf7 // MYSQL_TYPE_ENUM: length-encoded string
	TypeSet        byte = 0xf8 // MYSQL_TYPE_SET: length-encoded string
	TypeTinyBlob   byte = 0xf9 // MYSQL_TYPE_TINY_BLOB: length-encoded string
	TypeMediumBlob byte = 0xfa // MYSQL_TYPE_MEDIUM_BLOB: length-encoded string
	TypeLongBlob   byte = 0xfb // MYSQL_TYPE_LONG_BLOB: length-encoded string
	TypeBlob       byte = 0xfc // MYSQL_TYPE_BLOB: length-encoded string
	TypeVarString  byte = 0xfd // MYSQL_TYPE_VAR_STRING: length-encoded string
	TypeString     byte = 0xfe // MYSQL_TYPE_STRING: length-encoded string
	TypeGeometry   byte = 0xff // MYSQL_TYPE_GEOMETRY: length-encoded string
)

// Column definition flags (a subset of the field flags).
const (
	FlagNotNull       uint16 = 0x0001 // NOT_NULL_FLAG
	FlagPrimaryKey    uint16 = 0x0002 // PRI_KEY_FLAG
	FlagUniqueKey     uint16 = 0x0004 // UNIQUE_KEY_FLAG
	FlagMultipleKey   uint16 = 0x0008 // MULTIPLE_KEY_FLAG
	FlagBlob          uint16 = 0x0010 // BLOB_FLAG
	FlagUnsigned      uint16 = 0x0020 // UNSIGNED_FLAG
	FlagZerofill      uint16 = 0x0040 // ZEROFILL_FLAG
	FlagBinary        uint16 = 0x0080 // BINARY_FLAG
	FlagEnum          uint16 = 0x0100 // ENUM_FLAG
	FlagAutoIncrement uint16 = 0x0200 // AUTO_INCREMENT_FLAG
	FlagTimestamp     uint16 = 0x0400 // TIMESTAMP_FLAG
	FlagSet           uint16 = 0x0800 // SET_FLAG
	FlagNoDefault     uint16 = 0x1000 // NO_DEFAULT_VALUE_FLAG
	FlagOnUpdateNow   uint16 = 0x2000 // ON_UPDATE_NOW_FLAG
	FlagNum           uint16 = 0x8000 // NUM_FLAG
)

// Collation ids the proxy uses in packets it builds.
const (
	// CollationBinary is "binary" (63), the character set of numeric columns.
	CollationBinary uint16 = 63
	// CollationUTF8MB4GeneralCI is utf8mb4_general_ci (45).
	CollationUTF8MB4GeneralCI uint16 = 45
	// CollationUTF8MB3GeneralCI is utf8mb3_general_ci (33).
	CollationUTF8MB3GeneralCI uint16 = 33
)

// ParseColumnCount decodes the column count that starts a result set (the
// first reply packet to COM_QUERY or COM_STMT_EXECUTE that is not OK, ERR or
// a LOCAL INFILE request), allowing the one-byte metadata-follows flag that
// follows it under MariaDBClientCacheMetadata or
// ClientOptionalResultsetMetadata. ok is false for any other packet.
func ParseColumnCount(payload []byte) (n uint64, ok bool) {
	if len(payload) == 0 {
		return 0, false
	}
	switch payload[0] {
	case OKHeader, LocalInfileHeader, EOFHeader, ERRHeader:
		return 0, false
	}
	n, k, ok := ReadLenEncInt(payload)
	if !ok || len(payload)-k > 1 {
		return 0, false
	}
	return n, true
}

// ParseColumnCountMeta is ParseColumnCount that also reports whether column
// definitions follow: false only when the metadata-follows byte is present
// and 0 (MariaDB skipping unchanged metadata of a prepared statement,
// MySQL's resultset_metadata=NONE).
func ParseColumnCountMeta(payload []byte) (n uint64, metadataFollows, ok bool) {
	n, ok = ParseColumnCount(payload)
	if !ok {
		return 0, false, false
	}
	_, k, _ := ReadLenEncInt(payload)
	return n, k == len(payload) || payload[k] != 0, true
}

// AppendColumnCount appends a column count payload.
func AppendColumnCount(dst []byte, n uint64) []byte { return AppendLenEncInt(dst, n) }

// ColumnDefinition is the ColumnDefinition41 packet describing one column of
// a result set (or one parameter of a prepared statement).
type ColumnDefinition struct {
	Schema   string // database
	Table    string // table alias
	OrgTable string // physical table
	Name     string // column alias
	OrgName  string // physical column
	// ExtendedInfo is MariaDB's extended type information block (with
	// MariaDBClientExtendedTypeInfo), raw.
	ExtendedInfo []byte
	// CharacterSet is the collation id (CollationBinary for numbers).
	CharacterSet uint16
	// ColumnLength is the maximum display length.
	ColumnLength uint32
	// Type is the column type (Type*).
	Type byte
	// Flags are the column flags (Flag*).
	Flags uint16
	// Decimals is the number of decimals (0x1f for non-fixed).
	Decimals byte
}

// ParseColumnDefinition parses a ColumnDefinition41 payload; caps decide
// whether MariaDB's extended type information is present. The default
// values that follow in a COM_FIELD_LIST reply are ignored.
func ParseColumnDefinition(payload []byte, caps uint64) (ColumnDefinition, error) {
	var c ColumnDefinition
	d := NewDecoder(payload)
	if cat := d.LenEncBytes(); d.Err() == nil && string(cat) != "def" {
		return c, fmt.Errorf("%w: column definition catalog %q", ErrMalformed, cat)
	}
	c.Schema = d.LenEncString()
	c.Table = d.LenEncString()
	c.OrgTable = d.LenEncString()
	c.Name = d.LenEncString()
	c.OrgName = d.LenEncString()
	if caps&MariaDBClientExtendedTypeInfo != 0 {
		if ext := d.LenEncBytes(); len(ext) > 0 {
			c.ExtendedInfo = append([]byte(nil), ext...)
		}
	}
	if fixed := d.LenEncInt(); d.Err() == nil && fixed < 0x0c {
		return c, fmt.Errorf("%w: column definition fixed-field length %d", ErrMalformed, fixed)
	}
	c.CharacterSet = d.Uint16()
	c.ColumnLength = d.Uint32()
	c.Type = d.Byte()
	c.Flags = d.Uint16()
	c.Decimals = d.Byte()
	d.Skip(2)
	if d.Err() != nil {
		return c, fmt.Errorf("%w: column definition", ErrMalformed)
	}
	return c, nil
}

// AppendColumnDefinition appends a ColumnDefinition41 payload for the
// negotiated capabilities caps.
func AppendColumnDefinition(dst []byte, c *ColumnDefinition, caps uint64) []byte {
	dst = AppendLenEncString(dst, "def")
	dst = AppendLenEncString(dst, c.Schema)
	dst = AppendLenEncString(dst, c.Table)
	dst = AppendLenEncString(dst, c.OrgTable)
	dst = AppendLenEncString(dst, c.Name)
	dst = AppendLenEncString(dst, c.OrgName)
	if caps&MariaDBClientExtendedTypeInfo != 0 {
		dst = AppendLenEncBytes(dst, c.ExtendedInfo)
	}
	dst = append(dst, 0x0c)
	dst = AppendUint16(dst, c.CharacterSet)
	dst = AppendUint32(dst, c.ColumnLength)
	dst = append(dst, c.Type)
	dst = AppendUint16(dst, c.Flags)
	dst = append(dst, c.Decimals, 0, 0)
	return dst
}

// AppendTextValue appends one column of a text-protocol row: the value as a
// length-encoded string, or NullValue when null is true.
func AppendTextValue(dst []byte, value []byte, null bool) []byte {
	if null {
		return append(dst, NullValue)
	}
	return AppendLenEncBytes(dst, value)
}

// StmtPrepareOK is COM_STMT_PREPARE_OK, the first reply packet to a
// successful COM_STMT_PREPARE. NumParams parameter definitions, then
// NumColumns column definitions follow (each group ended by an EOF packet
// unless CLIENT_DEPRECATE_EOF).
type StmtPrepareOK struct {
	// StatementID is the server's id for the statement (connection-local).
	StatementID uint32
	// NumColumns is the number of result columns (0 for non-SELECT).
	NumColumns uint16
	// NumParams is the number of '?' placeholders.
	NumParams uint16
	// Warnings is the warning count.
	Warnings uint16
	// MetadataFollows is MySQL's metadata_follows byte, present under
	// ClientOptionalResultsetMetadata (1 = RESULTSET_METADATA_FULL); ignored
	// otherwise.
	MetadataFollows byte
}

// ParseStmtPrepareOK parses a COM_STMT_PREPARE_OK payload under caps.
func ParseStmtPrepareOK(payload []byte, caps uint64) (StmtPrepareOK, error) {
	var p StmtPrepareOK
	d := NewDecoder(payload)
	if h := d.Byte(); d.Err() == nil && h != OKHeader {
		return p, fmt.Errorf("%w: COM_STMT_PREPARE_OK header 0x%02x", ErrMalformed, h)
	}
	p.StatementID = d.Uint32()
	p.NumColumns = d.Uint16()
	p.NumParams = d.Uint16()
	d.Skip(1) // reserved
	if d.Err() != nil {
		return p, fmt.Errorf("%w: short COM_STMT_PREPARE_OK", ErrMalformed)
	}
	if d.Len() >= 2 {
		p.Warnings = d.Uint16()
	}
	if caps&ClientOptionalResultsetMetadata != 0 && d.Len() > 0 {
		p.MetadataFollows = d.Byte()
	}
	return p, nil
}

// AppendStmtPrepareOK appends a COM_STMT_PREPARE_OK payload for caps.
func AppendStmtPrepareOK(dst []byte, p StmtPrepareOK, caps uint64) []byte {
	dst = append(dst, OKHeader)
	dst = AppendUint32(dst, p.StatementID)
	dst = AppendUint16(dst, p.NumColumns)
	dst = AppendUint16(dst, p.NumParams)
	dst = append(dst, 0)
	dst = AppendUint16(dst, p.Warnings)
	if caps&ClientOptionalResultsetMetadata != 0 {
		dst = append(dst, p.MetadataFollows)
	}
	return dst
}
