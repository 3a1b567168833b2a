// Package pgwire frames PostgreSQL protocol 3.0 messages without decoding
// them, and decodes the few messages that a proxy must look inside.
//
// The hot path of a proxy relays messages untouched: Reader hands out a
// message as a slice of its own buffer (type byte, 4-byte length, body) that
// the caller writes to the other side before asking for the next message.
// Only the messages that routing needs are parsed, by the small Parse*
// functions in this package; replies that the proxy itself generates are
// built with the Append* functions.
package pgwire
