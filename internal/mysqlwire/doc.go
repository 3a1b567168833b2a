// Package mysqlwire is the MySQL / MariaDB client/server protocol codec shared
// by Sluice's client-facing MySQL server and its backend client side.
//
// The package is transport-agnostic: PacketReader and PacketWriter frame
// packets over buffered readers and writers, every other function works on
// payload byte slices. It follows the rules of a proxy's hot path:
//
//   - Relay, don't re-encode. PacketReader.ReadRawPacket and RelayPacket hand
//     out physical packets with their 4-byte header so that result sets flow
//     from backend to client untouched; ReadPacket reassembles a logical
//     payload (split into 0xffffff-byte chunks) into a reused buffer. The
//     slices they return are views valid until the next read.
//   - Peek, don't parse. IsOK, IsERR, IsEOF, StatusFlags and ParseColumnCount
//     classify a packet and extract the transaction status without
//     allocating; the full parsers (ParseOK, ParseERR, ParseHandshake, ...)
//     are for the few packets the proxy must understand or build.
//   - Never panic on malformed input. Parsers return errors wrapping
//     ErrMalformed; the fuzz targets in this package hold them to that.
//
// Capability flags are carried as a uint64: the low 32 bits are the
// standard MySQL flags, the high 32 bits MariaDB's extended capabilities,
// which MariaDB exchanges in otherwise reserved handshake bytes when the
// CLIENT_MYSQL bit (ClientMySQL, the old CLIENT_LONG_PASSWORD) is clear.
//
// Only protocol 4.1 (CLIENT_PROTOCOL_41) peers are supported, as by every
// server and driver since MySQL 4.1.
package mysqlwire
