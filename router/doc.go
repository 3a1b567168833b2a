// Package router classifies SQL statements and decides where they run.
//
// Classification is done by a small hand-written lexer per dialect
// (PostgreSQL and MySQL/MariaDB): no parser, no allocation on the hot path.
// The lexer understands comments, every quoting form of the dialect and
// statement separators, and the classifier looks only at the few words that
// decide whether a statement is provably read-only. Anything unknown or
// ambiguous is treated as a write, so it goes to the writer.
//
// The routing decision itself ([Decide]) combines a statement's [Class] with
// the session's [State] and the kind of endpoint ([Route]) the client used.
package router
