package router

import "strconv"

// Dialect selects the SQL lexer and the classification rules.
type Dialect uint8

const (
	// Postgres is the PostgreSQL dialect.
	Postgres Dialect = iota
	// MySQL is the MySQL / MariaDB dialect.
	MySQL
)

// String returns "postgres" or "mysql".
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	}
	return "dialect(" + strconv.Itoa(int(d)) + ")"
}

// Hint is a routing hint written by the application in a comment:
// /* sluice:writer */, /* sluice:reader */ or -- sluice:writer.
// The hint is case-insensitive and may appear anywhere inside any comment of
// the string. When both hints appear, HintWriter wins.
type Hint uint8

const (
	// HintNone means the string carries no hint.
	HintNone Hint = iota
	// HintWriter asks for the writer.
	HintWriter
	// HintReader asks for a reader.
	HintReader
)

// String returns "none", "writer" or "reader".
func (h Hint) String() string {
	switch h {
	case HintNone:
		return "none"
	case HintWriter:
		return "writer"
	case HintReader:
		return "reader"
	}
	return "hint(" + strconv.Itoa(int(h)) + ")"
}

// PinReason says why a session must stay on the writer from now on.
// The empty string means no pin. The values are stable and meant for metric
// labels (pins_total{reason=…}).
type PinReason string

const (
	// PinTempTable: a temporary table (or view, or sequence) was created.
	PinTempTable PinReason = "temp_table"
	// PinListen: PostgreSQL LISTEN.
	PinListen PinReason = "listen"
	// PinSQLPrepare: a prepared statement created with SQL PREPARE.
	PinSQLPrepare PinReason = "sql_prepare"
	// PinCursorWithHold: PostgreSQL DECLARE … WITH HOLD.
	PinCursorWithHold PinReason = "cursor_with_hold"
	// PinAdvisoryLock: a session-level advisory lock (PostgreSQL
	// pg_advisory_lock*, pg_try_advisory_lock*; MySQL GET_LOCK).
	PinAdvisoryLock PinReason = "advisory_lock"
	// PinSetConfig: PostgreSQL set_config().
	PinSetConfig PinReason = "set_config"
	// PinLockTables: MySQL LOCK TABLES (and other session-held locks such as
	// FLUSH TABLES … WITH READ LOCK, LOCK INSTANCE FOR BACKUP).
	PinLockTables PinReason = "lock_tables"
	// PinUserVariable: a MySQL user variable was assigned (@v := …, SET @v,
	// SELECT … INTO @v).
	PinUserVariable PinReason = "user_variable"
	// PinLastInsertID: a value that only the previous statement's connection
	// knows: MySQL LAST_INSERT_ID(), FOUND_ROWS(), ROW_COUNT(), @@identity,
	// @@last_insert_id, SELECT SQL_CALC_FOUND_ROWS (for the FOUND_ROWS() that
	// follows), MariaDB LASTVAL() / PREVIOUS VALUE FOR, PostgreSQL currval() /
	// lastval().
	PinLastInsertID PinReason = "last_insert_id"
)

// TxEffect is the effect on the transaction of the first statement of a
// string that controls transactions.
type TxEffect uint8

const (
	// TxNone: no statement of the string controls transactions.
	TxNone TxEffect = iota
	// TxBegin: BEGIN / START TRANSACTION (read-write, or PostgreSQL
	// SERIALIZABLE, which hot standbys refuse); MySQL also XA START.
	TxBegin
	// TxBeginReadOnly: BEGIN / START TRANSACTION … READ ONLY.
	TxBeginReadOnly
	// TxCommit: COMMIT / END.
	TxCommit
	// TxRollback: ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT).
	TxRollback
)

// String returns a short lower-case name of the effect.
func (t TxEffect) String() string {
	switch t {
	case TxNone:
		return "none"
	case TxBegin:
		return "begin"
	case TxBeginReadOnly:
		return "begin_read_only"
	case TxCommit:
		return "commit"
	case TxRollback:
		return "rollback"
	}
	return "tx(" + strconv.Itoa(int(t)) + ")"
}

// Class is the classification of one query string, which may hold several
// statements separated by ';'.
type Class struct {
	// Write is true when the string must run on the writer: any statement
	// that is not provably read-only, in any of its statements.
	Write bool
	// Hint is the routing hint found in the string's comments.
	Hint Hint
	// Tx is the effect of the first statement that controls transactions.
	Tx TxEffect
	// Pin is non-empty when the session must be pinned to the writer from
	// now on; it holds the first reason found. A pin always implies Write.
	Pin PinReason
	// SessionSet is true when the string changes session state that must be
	// replayed on the other backends the session uses (see
	// [Classifier.SessionOps]).
	SessionSet bool
	// Statements is the number of non-empty statements in the string.
	Statements int
}
