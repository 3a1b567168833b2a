// Package router classifies SQL statements and decides where they run.
//
// Classification is done by a small hand-written lexer per dialect
// (PostgreSQL and MySQL/MariaDB): no parser, no allocation on the hot path.
// The lexer understands comments, every quoting form of the dialect and
// statement separators, and the classifier looks only at the few words that
// decide whether a statement is provably read-only. Anything unknown or
// ambiguous is treated as a write, so it goes to the writer; so is a string
// that ends inside a quote or a comment.
//
// The routing decision itself ([Decide]) combines a statement's [Class] with
// the session's [State] and the kind of endpoint ([Route]) the client used.
//
// What the classifier cannot see, by design:
//   - the body of a dollar-quoted DO block or function (DO is a write anyway,
//     but a session lock taken inside one does not pin);
//   - what a user-defined function does: name writing functions in
//     [Options.WriterFunctions], or the replica's read-only error will tell;
//   - server settings that change lexing: PostgreSQL
//     standard_conforming_strings=off and MySQL NO_BACKSLASH_ESCAPES or
//     ANSI_QUOTES. A mismatch can at worst send a write to a replica, which
//     refuses it loudly;
//   - the statements after a compound body (CREATE FUNCTION … BEGIN ATOMIC,
//     MySQL CREATE PROCEDURE … BEGIN, MariaDB BEGIN NOT ATOMIC): the rest of
//     the string counts as that one statement, a write.
package router
