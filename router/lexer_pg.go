package router

import "strings"

// nextPG fills t with the next PostgreSQL token. It knows:
//   - -- line comments and nested /* */ block comments;
//   - '…' strings with doubled-quote escapes, E'…' strings with backslash escapes;
//   - "quoted identifiers" with "" escapes;
//   - $$…$$ and $tag$…$tag$ dollar quotes (the content is never looked at);
//   - $1 parameters and identifiers containing '$'.
//
// B'…', X'…', N'…' and U&'…' lex as a word followed by a standard string,
// which is what they are as far as quoting is concerned.
func (l *lexer) nextPG(t *token) {
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
		if cls&cIdentStart != 0 && !((c == 'e' || c == 'E') && l.pos+1 < len(src) && src[l.pos+1] == '\'') {
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
		case c == '-' && n == '-':
			l.lineComment(l.pos+2, true)
			continue
		case c == '/' && n == '*':
			l.pgBlockComment()
			continue
		}
		start := l.pos
		switch {
		case (c == 'e' || c == 'E') && n == '\'':
			l.pos += 2
			l.quoted('\'', true)
			l.set(t, tString, start)
			return
		case isDigit(c) || (c == '.' && isDigit(n)):
			l.number(t)
			return
		case c == '\'':
			l.pos++
			l.quoted('\'', false)
			l.set(t, tString, start)
			return
		case c == '"':
			l.pos++
			l.quoted('"', false)
			l.set(t, tQIdent, start)
			return
		case c == '$':
			if isDigit(n) {
				i := l.pos + 1
				for i < len(src) && isDigit(src[i]) {
					i++
				}
				l.pos = i
				l.set(t, tParam, start)
				return
			}
			if tag := dollarTag(src[l.pos:]); tag != "" {
				body := l.pos + len(tag)
				if k := strings.Index(src[body:], tag); k >= 0 {
					l.pos = body + k + len(tag)
				} else {
					l.pos = len(src)
					l.open = true
				}
				l.set(t, tString, start)
				return
			}
			l.punct(t)
			return
		case c == ':' && n == '=':
			l.pos += 2
			l.set(t, tOp, start)
			return
		}
		l.punct(t)
		return
	}
	l.set(t, tEOF, len(src))
}

// dollarTag returns the opening delimiter ("$$" or "$tag$") that s starts
// with, or "" if s does not start a dollar quote.
func dollarTag(s string) string {
	if len(s) < 2 {
		return ""
	}
	if s[1] == '$' {
		return s[:2]
	}
	if !(isLetter(s[1]) || s[1] == '_' || s[1] >= 0x80) {
		return ""
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c == '$' {
			return s[:i+1]
		}
		if !(isLetter(c) || isDigit(c) || c == '_' || c >= 0x80) {
			return ""
		}
	}
	return ""
}

// pgBlockComment skips a (possibly nested) /* */ comment starting at l.pos.
func (l *lexer) pgBlockComment() {
	src := l.src
	depth := 0
	i := l.pos
	for i+1 < len(src) {
		switch {
		case src[i] == '/' && src[i+1] == '*':
			depth++
			i += 2
		case src[i] == '*' && src[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				l.scanHint(src[l.pos:i])
				l.pos = i
				return
			}
		default:
			i++
		}
	}
	l.scanHint(src[l.pos:])
	l.pos = len(src)
	l.open = true
}
