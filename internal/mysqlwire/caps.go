package mysqlwire

import (
	"strconv"
	"strings"
)

// Capability flags (the MySQL names are given in each comment). The low 32
// bits travel in the standard handshake fields; the MariaDB* flags are
// MariaDB's extended capabilities, carried in the high 32 bits.
const (
	// ClientLongPassword is CLIENT_LONG_PASSWORD: new (4.1+) password hashing.
	ClientLongPassword uint64 = 1 << 0
	// ClientMySQL is CLIENT_MYSQL, MariaDB's name for bit 0: a peer that clears
	// it speaks MariaDB and exchanges extended capabilities.
	ClientMySQL = ClientLongPassword
	// ClientFoundRows is CLIENT_FOUND_ROWS: affected rows counts found rows.
	ClientFoundRows uint64 = 1 << 1
	// ClientLongFlag is CLIENT_LONG_FLAG: all column flags are sent.
	ClientLongFlag uint64 = 1 << 2
	// ClientConnectWithDB is CLIENT_CONNECT_WITH_DB: the handshake response
	// names a database.
	ClientConnectWithDB uint64 = 1 << 3
	// ClientNoSchema is CLIENT_NO_SCHEMA (deprecated).
	ClientNoSchema uint64 = 1 << 4
	// ClientCompress is CLIENT_COMPRESS: zlib-compressed protocol.
	ClientCompress uint64 = 1 << 5
	// ClientODBC is CLIENT_ODBC (unused).
	ClientODBC uint64 = 1 << 6
	// ClientLocalFiles is CLIENT_LOCAL_FILES: LOAD DATA LOCAL INFILE allowed.
	ClientLocalFiles uint64 = 1 << 7
	// ClientIgnoreSpace is CLIENT_IGNORE_SPACE: spaces allowed before '('.
	ClientIgnoreSpace uint64 = 1 << 8
	// ClientProtocol41 is CLIENT_PROTOCOL_41: the 4.1 protocol.
	ClientProtocol41 uint64 = 1 << 9
	// ClientInteractive is CLIENT_INTERACTIVE: interactive_timeout applies.
	ClientInteractive uint64 = 1 << 10
	// ClientSSL is CLIENT_SSL: switch to TLS after the SSLRequest.
	ClientSSL uint64 = 1 << 11
	// ClientIgnoreSigpipe is CLIENT_IGNORE_SIGPIPE (client-side only).
	ClientIgnoreSigpipe uint64 = 1 << 12
	// ClientTransactions is CLIENT_TRANSACTIONS: status flags in OK packets.
	ClientTransactions uint64 = 1 << 13
	// ClientReserved is CLIENT_RESERVED (old 4.1 protocol flag).
	ClientReserved uint64 = 1 << 14
	// ClientSecureConnection is CLIENT_SECURE_CONNECTION (CLIENT_RESERVED2):
	// 4.1 authentication, length-prefixed auth response.
	ClientSecureConnection uint64 = 1 << 15
	// ClientMultiStatements is CLIENT_MULTI_STATEMENTS: ';'-separated
	// statements in one COM_QUERY.
	ClientMultiStatements uint64 = 1 << 16
	// ClientMultiResults is CLIENT_MULTI_RESULTS: multiple result sets.
	ClientMultiResults uint64 = 1 << 17
	// ClientPSMultiResults is CLIENT_PS_MULTI_RESULTS: multiple result sets
	// from COM_STMT_EXECUTE (CALL).
	ClientPSMultiResults uint64 = 1 << 18
	// ClientPluginAuth is CLIENT_PLUGIN_AUTH: pluggable authentication.
	ClientPluginAuth uint64 = 1 << 19
	// ClientConnectAttrs is CLIENT_CONNECT_ATTRS: connection attributes in the
	// handshake response.
	ClientConnectAttrs uint64 = 1 << 20
	// ClientPluginAuthLenencClientData is CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
	// the auth response is a length-encoded string.
	ClientPluginAuthLenencClientData uint64 = 1 << 21
	// ClientCanHandleExpiredPasswords is CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS.
	ClientCanHandleExpiredPasswords uint64 = 1 << 22
	// ClientSessionTrack is CLIENT_SESSION_TRACK: session state changes in OK
	// packets.
	ClientSessionTrack uint64 = 1 << 23
	// ClientDeprecateEOF is CLIENT_DEPRECATE_EOF: no EOF after column
	// definitions; result sets end with an OK packet headed 0xfe.
	ClientDeprecateEOF uint64 = 1 << 24
	// ClientOptionalResultsetMetadata is CLIENT_OPTIONAL_RESULTSET_METADATA
	// (MySQL 8): a metadata-follows byte after the column count.
	ClientOptionalResultsetMetadata uint64 = 1 << 25
	// ClientZstdCompressionAlgorithm is CLIENT_ZSTD_COMPRESSION_ALGORITHM
	// (MySQL 8): zstd compression, level byte in the handshake response.
	ClientZstdCompressionAlgorithm uint64 = 1 << 26
	// ClientQueryAttributes is CLIENT_QUERY_ATTRIBUTES (MySQL 8): query
	// attributes in COM_QUERY and COM_STMT_EXECUTE.
	ClientQueryAttributes uint64 = 1 << 27
	// ClientMultiFactorAuthentication is MULTI_FACTOR_AUTHENTICATION (MySQL 8).
	ClientMultiFactorAuthentication uint64 = 1 << 28
	// ClientCapabilityExtension is CLIENT_CAPABILITY_EXTENSION (MySQL); MariaDB
	// used this bit for its obsolete CLIENT_PROGRESS_OBSOLETE.
	ClientCapabilityExtension uint64 = 1 << 29
	// ClientSSLVerifyServerCert is CLIENT_SSL_VERIFY_SERVER_CERT (client-side).
	ClientSSLVerifyServerCert uint64 = 1 << 30
	// ClientRememberOptions is CLIENT_REMEMBER_OPTIONS (client-side).
	ClientRememberOptions uint64 = 1 << 31

	// MariaDBClientProgress is MARIADB_CLIENT_PROGRESS: the server may send
	// progress reports, ERR-headed packets with code 0xffff, mid-command.
	MariaDBClientProgress uint64 = 1 << 32
	// MariaDBClientComMulti is MARIADB_CLIENT_COM_MULTI: COM_MULTI (0xfe)
	// batches several commands in one packet.
	MariaDBClientComMulti uint64 = 1 << 33
	// MariaDBClientStmtBulkOperations is MARIADB_CLIENT_STMT_BULK_OPERATIONS:
	// COM_STMT_BULK_EXECUTE (0xfa).
	MariaDBClientStmtBulkOperations uint64 = 1 << 34
	// MariaDBClientExtendedTypeInfo is MARIADB_CLIENT_EXTENDED_TYPE_INFO
	// (MARIADB_CLIENT_EXTENDED_METADATA): column definitions carry an extra
	// length-encoded block of type/format information.
	MariaDBClientExtendedTypeInfo uint64 = 1 << 35
	// MariaDBClientExtendedMetadata is the newer name of
	// MariaDBClientExtendedTypeInfo.
	MariaDBClientExtendedMetadata = MariaDBClientExtendedTypeInfo
	// MariaDBClientCacheMetadata is MARIADB_CLIENT_CACHE_METADATA: the column
	// count packet carries a metadata-follows byte and COM_STMT_EXECUTE
	// responses may omit unchanged column definitions.
	MariaDBClientCacheMetadata uint64 = 1 << 36
	// MariaDBClientBulkUnitResults is MARIADB_CLIENT_BULK_UNIT_RESULTS
	// (MariaDB 11.5): one result per bulk row.
	MariaDBClientBulkUnitResults uint64 = 1 << 37
)

var capabilityNames = [...]string{
	"CLIENT_LONG_PASSWORD", "CLIENT_FOUND_ROWS", "CLIENT_LONG_FLAG", "CLIENT_CONNECT_WITH_DB",
	"CLIENT_NO_SCHEMA", "CLIENT_COMPRESS", "CLIENT_ODBC", "CLIENT_LOCAL_FILES",
	"CLIENT_IGNORE_SPACE", "CLIENT_PROTOCOL_41", "CLIENT_INTERACTIVE", "CLIENT_SSL",
	"CLIENT_IGNORE_SIGPIPE", "CLIENT_TRANSACTIONS", "CLIENT_RESERVED", "CLIENT_SECURE_CONNECTION",
	"CLIENT_MULTI_STATEMENTS", "CLIENT_MULTI_RESULTS", "CLIENT_PS_MULTI_RESULTS", "CLIENT_PLUGIN_AUTH",
	"CLIENT_CONNECT_ATTRS", "CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA", "CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS", "CLIENT_SESSION_TRACK",
	"CLIENT_DEPRECATE_EOF", "CLIENT_OPTIONAL_RESULTSET_METADATA", "CLIENT_ZSTD_COMPRESSION_ALGORITHM", "CLIENT_QUERY_ATTRIBUTES",
	"MULTI_FACTOR_AUTHENTICATION", "CLIENT_CAPABILITY_EXTENSION", "CLIENT_SSL_VERIFY_SERVER_CERT", "CLIENT_REMEMBER_OPTIONS",
	"MARIADB_CLIENT_PROGRESS", "MARIADB_CLIENT_COM_MULTI", "MARIADB_CLIENT_STMT_BULK_OPERATIONS", "MARIADB_CLIENT_EXTENDED_TYPE_INFO",
	"MARIADB_CLIENT_CACHE_METADATA", "MARIADB_CLIENT_BULK_UNIT_RESULTS",
}

// FormatCapabilities renders capability flags as MySQL flag names joined by
// '|', for logs and error messages. Unnamed bits appear as "bitN".
func FormatCapabilities(caps uint64) string {
	var b strings.Builder
	for i := 0; i < 64; i++ {
		if caps&(1<<uint(i)) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		if i < len(capabilityNames) {
			b.WriteString(capabilityNames[i])
		} else {
			b.WriteString("bit")
			b.WriteString(strconv.Itoa(i))
		}
	}
	return b.String()
}

// Server status flags, carried in OK and EOF packets and in the handshake.
const (
	// ServerStatusInTrans is SERVER_STATUS_IN_TRANS: a transaction is open.
	ServerStatusInTrans uint16 = 0x0001
	// ServerStatusAutocommit is SERVER_STATUS_AUTOCOMMIT: autocommit is on.
	ServerStatusAutocommit uint16 = 0x0002
	// ServerMoreResultsExists is SERVER_MORE_RESULTS_EXISTS: another result
	// (result set or OK) follows this one.
	ServerMoreResultsExists uint16 = 0x0008
	// ServerQueryNoGoodIndexUsed is SERVER_QUERY_NO_GOOD_INDEX_USED.
	ServerQueryNoGoodIndexUsed uint16 = 0x0010
	// ServerQueryNoIndexUsed is SERVER_QUERY_NO_INDEX_USED.
	ServerQueryNoIndexUsed uint16 = 0x0020
	// ServerStatusCursorExists is SERVER_STATUS_CURSOR_EXISTS: a
	// COM_STMT_EXECUTE opened a cursor; rows come by COM_STMT_FETCH.
	ServerStatusCursorExists uint16 = 0x0040
	// ServerStatusLastRowSent is SERVER_STATUS_LAST_ROW_SENT: the cursor is
	// exhausted.
	ServerStatusLastRowSent uint16 = 0x0080
	// ServerStatusDBDropped is SERVER_STATUS_DB_DROPPED.
	ServerStatusDBDropped uint16 = 0x0100
	// ServerStatusNoBackslashEscapes is SERVER_STATUS_NO_BACKSLASH_ESCAPES:
	// sql_mode NO_BACKSLASH_ESCAPES is on (matters to a statement lexer).
	ServerStatusNoBackslashEscapes uint16 = 0x0200
	// ServerStatusMetadataChanged is SERVER_STATUS_METADATA_CHANGED.
	ServerStatusMetadataChanged uint16 = 0x0400
	// ServerQueryWasSlow is SERVER_QUERY_WAS_SLOW.
	ServerQueryWasSlow uint16 = 0x0800
	// ServerPSOutParams is SERVER_PS_OUT_PARAMS: the result set holds OUT
	// parameters of a CALL.
	ServerPSOutParams uint16 = 0x1000
	// ServerStatusInTransReadonly is SERVER_STATUS_IN_TRANS_READONLY: the open
	// transaction is READ ONLY.
	ServerStatusInTransReadonly uint16 = 0x2000
	// ServerSessionStateChanged is SERVER_SESSION_STATE_CHANGED: the OK packet
	// carries session state information (CLIENT_SESSION_TRACK).
	ServerSessionStateChanged uint16 = 0x4000
)

// Command bytes: the first byte of every command-phase client packet.
const (
	ComSleep            byte = 0x00 // COM_SLEEP (server internal)
	ComQuit             byte = 0x01 // COM_QUIT
	ComInitDB           byte = 0x02 // COM_INIT_DB: USE <schema>
	ComQuery            byte = 0x03 // COM_QUERY: text protocol statement
	ComFieldList        byte = 0x04 // COM_FIELD_LIST (deprecated)
	ComCreateDB         byte = 0x05 // COM_CREATE_DB (deprecated)
	ComDropDB           byte = 0x06 // COM_DROP_DB (deprecated)
	ComRefresh          byte = 0x07 // COM_REFRESH (deprecated)
	ComShutdown         byte = 0x08 // COM_SHUTDOWN (deprecated)
	ComStatistics       byte = 0x09 // COM_STATISTICS
	ComProcessInfo      byte = 0x0a // COM_PROCESS_INFO (deprecated)
	ComConnect          byte = 0x0b // COM_CONNECT (server internal)
	ComProcessKill      byte = 0x0c // COM_PROCESS_KILL (deprecated)
	ComDebug            byte = 0x0d // COM_DEBUG
	ComPing             byte = 0x0e // COM_PING
	ComTime             byte = 0x0f // COM_TIME (server internal)
	ComDelayedInsert    byte = 0x10 // COM_DELAYED_INSERT (server internal)
	ComChangeUser       byte = 0x11 // COM_CHANGE_USER
	ComBinlogDump       byte = 0x12 // COM_BINLOG_DUMP
	ComTableDump        byte = 0x13 // COM_TABLE_DUMP
	ComConnectOut       byte = 0x14 // COM_CONNECT_OUT
	ComRegisterSlave    byte = 0x15 // COM_REGISTER_SLAVE
	ComStmtPrepare      byte = 0x16 // COM_STMT_PREPARE
	ComStmtExecute      byte = 0x17 // COM_STMT_EXECUTE
	ComStmtSendLongData byte = 0x18 // COM_STMT_SEND_LONG_DATA (no response)
	ComStmtClose        byte = 0x19 // COM_STMT_CLOSE (no response)
	ComStmtReset        byte = 0x1a // COM_STMT_RESET
	ComSetOption        byte = 0x1b // COM_SET_OPTION: multi-statements on/off
	ComStmtFetch        byte = 0x1c // COM_STMT_FETCH
	ComDaemon           byte = 0x1d // COM_DAEMON (server internal)
	ComBinlogDumpGTID   byte = 0x1e // COM_BINLOG_DUMP_GTID
	ComResetConnection  byte = 0x1f // COM_RESET_CONNECTION
	ComStmtBulkExecute  byte = 0xfa // COM_STMT_BULK_EXECUTE (MariaDB)
	ComMulti            byte = 0xfe // COM_MULTI (MariaDB)
)

// COM_SET_OPTION arguments.
const (
	// SetOptionMultiStatementsOn is MYSQL_OPTION_MULTI_STATEMENTS_ON.
	SetOptionMultiStatementsOn uint16 = 0
	// SetOptionMultiStatementsOff is MYSQL_OPTION_MULTI_STATEMENTS_OFF.
	SetOptionMultiStatementsOff uint16 = 1
)

// MySQL error codes the proxy sends or recognises. SQLStateFor gives the
// SQLSTATE that belongs to each.
const (
	ERConCountError                    uint16 = 1040 // ER_CON_COUNT_ERROR: too many connections
	ERHandshakeError                   uint16 = 1043 // ER_HANDSHAKE_ERROR: bad handshake
	ERDBAccessDeniedError              uint16 = 1044 // ER_DBACCESS_DENIED_ERROR
	ERAccessDeniedError                uint16 = 1045 // ER_ACCESS_DENIED_ERROR
	ERNoDBError                        uint16 = 1046 // ER_NO_DB_ERROR
	ERUnknownComError                  uint16 = 1047 // ER_UNKNOWN_COM_ERROR: unknown command
	ERBadDBError                       uint16 = 1049 // ER_BAD_DB_ERROR: unknown database
	ERServerShutdown                   uint16 = 1053 // ER_SERVER_SHUTDOWN
	ERUnknownError                     uint16 = 1105 // ER_UNKNOWN_ERROR
	ERNetPacketTooLarge                uint16 = 1153 // ER_NET_PACKET_TOO_LARGE
	ERUnknownStmtHandler               uint16 = 1243 // ER_UNKNOWN_STMT_HANDLER
	ERNotSupportedAuthMode             uint16 = 1251 // ER_NOT_SUPPORTED_AUTH_MODE
	EROptionPreventsStatement          uint16 = 1290 // ER_OPTION_PREVENTS_STATEMENT (e.g. --read-only)
	ERQueryInterrupted                 uint16 = 1317 // ER_QUERY_INTERRUPTED
	ERStmtHasNoOpenCursor              uint16 = 1421 // ER_STMT_HAS_NO_OPEN_CURSOR
	ERCantExecuteInReadOnlyTransaction uint16 = 1792 // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	ERConnectionKilled                 uint16 = 1927 // ER_CONNECTION_KILLED (MariaDB)
	CRServerLost                       uint16 = 2013 // CR_SERVER_LOST: lost connection during query
)

// SQLStateFor returns the SQLSTATE the server pairs with a MySQL error code,
// "HY000" (general error) for codes it does not know.
func SQLStateFor(code uint16) string {
	switch code {
	case ERAccessDeniedError:
		return "28000"
	case ERDBAccessDeniedError, ERBadDBError:
		return "42000"
	case ERNoDBError:
		return "3D000"
	case ERNetPacketTooLarge, ERUnknownComError, ERHandshakeError, ERServerShutdown:
		return "08S01"
	case ERConCountError, ERNotSupportedAuthMode:
		return "08004"
	case ERQueryInterrupted, ERConnectionKilled:
		return "70100"
	case ERCantExecuteInReadOnlyTransaction:
		return "25006"
	default:
		return "HY000"
	}
}
