package router

// pgWriterFunc reports whether calling the PostgreSQL function name (as
// written, any case) makes a statement a write, and whether it pins the
// session.
func pgWriterFunc(name string) (write bool, pin PinReason) {
	if len(name) < 5 {
		return false, ""
	}
	switch lower(name[0]) {
	case 'n':
		return eqFold(name, "nextval"), ""
	case 's':
		switch {
		case eqFold(name, "setval"):
			return true, ""
		case eqFold(name, "set_config"):
			return true, PinSetConfig
		}
	case 'c':
		if eqFold(name, "currval") {
			return true, PinLastInsertID
		}
	case 'l':
		switch {
		case eqFold(name, "lastval"):
			return true, PinLastInsertID
		case hasPrefixFold(name, "lo_"), eqFold(name, "lowrite"), eqFold(name, "loread"):
			return true, ""
		}
	case 't':
		return eqFold(name, "txid_current"), ""
	case 'p':
		if !hasPrefixFold(name, "pg_") {
			return false, ""
		}
		rest := name[3:]
		if hasPrefixFold(rest, "try_") {
			rest = rest[4:]
		}
		if hasPrefixFold(rest, "advisory_") {
			// pg_advisory_lock, pg_advisory_lock_shared and the try_ forms
			// take session-level locks; _xact_ locks end with the
			// transaction and unlocking takes nothing.
			return true, pinIf(hasPrefixFold(rest[len("advisory_"):], "lock"), PinAdvisoryLock)
		}
		switch {
		case eqFold(name, "pg_notify"),
			eqFold(name, "pg_current_xact_id"),
			eqFold(name, "pg_switch_wal"),
			eqFold(name, "pg_switch_xlog"),
			eqFold(name, "pg_create_restore_point"):
			return true, ""
		}
	}
	return false, ""
}

// mysqlWriterFunc is pgWriterFunc for MySQL / MariaDB.
func mysqlWriterFunc(name string) (write bool, pin PinReason) {
	if len(name) < 6 {
		return false, ""
	}
	switch lower(name[0]) {
	case 'g':
		if eqFold(name, "get_lock") {
			return true, PinAdvisoryLock
		}
	case 'r':
		switch {
		case eqFold(name, "release_lock"), eqFold(name, "release_all_locks"):
			return true, ""
		case eqFold(name, "row_count"):
			return true, PinLastInsertID
		}
	case 'i':
		return eqFold(name, "is_used_lock") || eqFold(name, "is_free_lock"), ""
	case 'l':
		if eqFold(name, "last_insert_id") || eqFold(name, "lastval") {
			return true, PinLastInsertID
		}
	case 'f':
		if eqFold(name, "found_rows") {
			return true, PinLastInsertID
		}
	case 'n':
		return eqFold(name, "nextval"), ""
	case 's':
		return eqFold(name, "setval"), ""
	}
	return false, ""
}

func pinIf(b bool, r PinReason) PinReason {
	if b {
		return r
	}
	return ""
}

// isExtraWriter reports whether name is one of Options.WriterFunctions.
func (c *Classifier) isExtraWriter(name string) bool {
	if len(c.extra) == 0 {
		return false
	}
	var buf [64]byte
	if len(name) > len(buf) {
		for f := range c.extra {
			if eqFold(name, f) {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(name); i++ {
		buf[i] = lower(name[i])
	}
	_, ok := c.extra[string(buf[:len(name)])]
	return ok
}
