package router

// nextMySQL fills t with the next MySQL / MariaDB token. It knows:
//   - # and "-- " line comments (-- must be followed by whitespace, a control
//     character or the end of the input) and /* */ block comments (not nested);
//   - executable comments /*! … */, /*!50700 … */ and MariaDB's /*M! … */,
//     whose content is lexed as SQL (so a write inside is seen);
//   - '…' and "…" strings with backslash escapes and doubled quotes;
//   - `quoted identifiers` with doubled backticks;
//   - @user_var, @'user var', @@system_var, @@session.var and ? parameters.
//
// The lexer assumes the default sql_mode: no NO_BACKSLASH_ESCAPES (a mismatch
// can only make a write reach a replica, which refuses it loudly).
func (l *lexer) nextMySQL(t *token) {
	src := l.src
	for {
		i := l.pos
		for i < len(src) && charClass[src[i]]&cSpace != 0 {
			i++
		}
		l.pos = i
		if i >= len(src) {
			break
		}
		c := src[i]
		cls := charClass[c]
		if cls&cIdentCont != 0 && cls&cDigit == 0 {
			// letters, '_', '$' and multi-byte characters
			// a word, inlined: the most frequent token
			j := i + 1
			for j < len(src) && charClass[src[j]]&cIdentCont != 0 {
				j++
			}
			l.pos = j
			t.kind, t.start, t.end, t.c = tWord, i, j, 0
			t.kw = lookupKW(src[i:j])
			return
		}
		var n byte
		if l.pos+1 < len(src) {
			n = src[l.pos+1]
		}
		switch {
		case c == '#':
			l.lineComment(l.pos+1, false)
			continue
		case c == '-' && n == '-' && (l.pos+2 >= len(src) || src[l.pos+2] <= ' '):
			l.lineComment(l.pos+2, false)
			continue
		case c == '/' && n == '*':
			l.mysqlBlockComment()
			continue
		case c == '*' && n == '/' && l.inExec:
			l.inExec = false
			l.pos += 2
			continue
		}
		start := l.pos
		switch {
		case isDigit(c) || (c == '.' && isDigit(n)):
			l.number(t)
			return
		case c == '\'' || c == '"':
			l.pos++
			l.quoted(c, true)
			l.set(t, tString, start)
			return
		case c == '`':
			l.pos++
			l.quoted('`', false)
			l.set(t, tQIdent, start)
			return
		case c == '@':
			l.mysqlVar(t)
			return
		case c == '?':
			l.pos++
			l.set(t, tParam, start)
			return
		case c == ':' && n == '=':
			l.pos += 2
			l.set(t, tOp, start)
			return
		}
		l.punct(t)
		return
	}
	if l.inExec {
		l.open = true
	}
	l.set(t, tEOF, len(src))
}

// mysqlBlockComment handles "/*" at l.pos: an executable comment is entered
// (its content is then lexed normally), any other comment is skipped.
func (l *lexer) mysqlBlockComment() {
	src := l.src
	i := l.pos + 2
	if i < len(src) && (src[i] == '!' || (src[i] == 'M' && i+1 < len(src) && src[i+1] == '!')) && !l.inExec {
		if src[i] == 'M' {
			i++
		}
		i++
		for i < len(src) && isDigit(src[i]) {
			i++
		}
		l.inExec = true
		l.pos = i
		return
	}
	for ; i+1 < len(src); i++ {
		if src[i] == '*' && src[i+1] == '/' {
			l.scanHint(src[l.pos : i+2])
			l.pos = i + 2
			return
		}
	}
	l.scanHint(src[l.pos:])
	l.pos = len(src)
	l.open = true
}

// mysqlVar scans @name, @'name', @"name", @`name`, @@name or @@scope.name
// starting at l.pos. A lone '@' is punctuation.
func (l *lexer) mysqlVar(t *token) {
	src, start := l.src, l.pos
	i := l.pos + 1
	if i < len(src) && src[i] == '@' {
		i++
	} else if i < len(src) && (src[i] == '\'' || src[i] == '"' || src[i] == '`') {
		l.pos = i + 1
		l.quoted(src[i], src[i] != '`')
		l.set(t, tVar, start)
		return
	}
	j := i
	for j < len(src) && (isIdentCont(src[j]) || src[j] == '.') {
		j++
	}
	if j == i {
		l.punct(t)
		return
	}
	l.pos = j
	l.set(t, tVar, start)
}
