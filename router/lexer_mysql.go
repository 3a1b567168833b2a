package router

// nextMySQL returns the next MySQL / MariaDB token. It knows:
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
func (l *lexer) nextMySQL() token {
	src := l.src
	for l.pos < len(src) {
		c := src[l.pos]
		if isSpace(c) {
			l.pos++
			continue
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
		case isIdentStart(c) || c == '$':
			return l.word()
		case isDigit(c) || (c == '.' && isDigit(n)):
			return l.number()
		case c == '\'' || c == '"':
			l.pos++
			l.quoted(c, true)
			return token{kind: tString, start: start, end: l.pos}
		case c == '`':
			l.pos++
			l.quoted('`', false)
			return token{kind: tQIdent, start: start, end: l.pos}
		case c == '@':
			return l.mysqlVar()
		case c == '?':
			l.pos++
			return token{kind: tParam, start: start, end: l.pos}
		case c == ':' && n == '=':
			l.pos += 2
			return token{kind: tOp, start: start, end: l.pos}
		}
		return l.punct()
	}
	if l.inExec {
		l.open = true
	}
	return token{kind: tEOF, start: len(src), end: len(src)}
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
func (l *lexer) mysqlVar() token {
	src, start := l.src, l.pos
	i := l.pos + 1
	if i < len(src) && src[i] == '@' {
		i++
	} else if i < len(src) && (src[i] == '\'' || src[i] == '"' || src[i] == '`') {
		l.pos = i + 1
		l.quoted(src[i], src[i] != '`')
		return token{kind: tVar, start: start, end: l.pos}
	}
	j := i
	for j < len(src) && (isIdentCont(src[j]) || src[j] == '.') {
		j++
	}
	if j == i {
		return l.punct()
	}
	l.pos = j
	return token{kind: tVar, start: start, end: j}
}
