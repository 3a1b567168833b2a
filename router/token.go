package router

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tEOF    tokKind = iota // end of input (or of the statement, from scan.next)
	tWord                  // unquoted identifier or keyword
	tQIdent                // quoted identifier: "x" (PostgreSQL), `x` (MySQL)
	tString                // string literal of any form, dollar quotes included
	tNumber                // numeric literal
	tParam                 // $1 (PostgreSQL) or ? (MySQL)
	tVar                   // MySQL @user_var or @@system_var
	tPunct                 // any other single byte: ( ) , ; . = …
	tOp                    // ":=" (MySQL assignment, PostgreSQL named argument)
)

// token is a span of the source; it never copies text.
type token struct {
	start, end int
	kind       tokKind
	c          byte // tPunct: the byte
	kw         kw   // tWord: the keyword, kwNone for other words
}

// Character classes, looked up in charClass.
const (
	cSpace      = 1 << iota // ' ' \t \n \r \f \v
	cDigit                  // 0-9
	cIdentStart             // letters, '_' and bytes of multi-byte UTF-8 sequences
	cIdentCont              // cIdentStart, digits and '$'
)

var charClass [256]uint8

func init() {
	for c := 0; c < 256; c++ {
		var k uint8
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			k = cSpace
		case '0' <= c && c <= '9':
			k = cDigit | cIdentCont
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_', c >= 0x80:
			k = cIdentStart | cIdentCont
		case c == '$':
			k = cIdentCont
		}
		charClass[c] = k
	}
}

func isDigit(c byte) bool { return charClass[c]&cDigit != 0 }

func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// isIdentCont reports whether c may continue an unquoted identifier
// ('$' is allowed by both dialects after the first character).
func isIdentCont(c byte) bool { return charClass[c]&cIdentCont != 0 }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// eqFold reports whether s equals low, ignoring ASCII case; low must be
// lower case.
func eqFold(s, low string) bool {
	if len(s) != len(low) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != low[i] {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether s starts with low, ignoring ASCII case; low
// must be lower case.
func hasPrefixFold(s, low string) bool {
	return len(s) >= len(low) && eqFold(s[:len(low)], low)
}

// scanHint looks for "sluice:writer" / "sluice:reader" in the text of a
// comment and records it. Writer wins over reader.
func (l *lexer) scanHint(text string) {
	for i := 0; i+len("sluice:") <= len(text); i++ {
		if lower(text[i]) != 's' || !hasPrefixFold(text[i:], "sluice:") {
			continue
		}
		j := i + len("sluice:")
		for j < len(text) && (text[j] == ' ' || text[j] == '\t') {
			j++
		}
		rest := text[j:]
		switch {
		case hasPrefixFold(rest, "writer") && wordEnds(rest, len("writer")):
			l.hint = HintWriter
			return
		case hasPrefixFold(rest, "reader") && wordEnds(rest, len("reader")):
			if l.hint == HintNone {
				l.hint = HintReader
			}
		}
	}
}

// wordEnds reports whether s[n:] does not continue a word.
func wordEnds(s string, n int) bool {
	return n >= len(s) || !(isLetter(s[n]) || isDigit(s[n]) || s[n] == '_')
}

// lexer produces the tokens of one query string. Comments are skipped (and
// searched for hints). It never allocates.
type lexer struct {
	src    string
	pos    int
	mysql  bool
	inExec bool // MySQL: inside an executable comment /*! … */
	open   bool // the input ended inside a quote, a dollar quote or a block comment
	hint   Hint
}

// next returns the next token, or a tEOF token at the end of the input.
func (l *lexer) next() token {
	var t token
	if l.mysql {
		l.nextMySQL(&t)
	} else {
		l.nextPG(&t)
	}
	return t
}

// set fills t with a token of kind k from start to the current position.
// Tokens are filled in place rather than returned: returning the struct
// from the lexer made the compiler build it on the stack and copy it, which
// cost more than the lexing itself.
func (l *lexer) set(t *token, k tokKind, start int) {
	t.kind, t.start, t.end, t.c, t.kw = k, start, l.pos, 0, kwNone
}

// quoted scans the body of a quoted token whose opening quote q was just
// consumed: a doubled quote stands for itself and, when backslash is set, a
// backslash escapes the next byte.
func (l *lexer) quoted(q byte, backslash bool) {
	src := l.src
	for i := l.pos; i < len(src); i++ {
		c := src[i]
		if backslash && c == '\\' {
			i++
			continue
		}
		if c == q {
			if i+1 < len(src) && src[i+1] == q {
				i++
				continue
			}
			l.pos = i + 1
			return
		}
	}
	l.pos = len(src)
	l.open = true
}

// number scans a numeric literal starting at l.pos: digits, '_' separators,
// a decimal point and an exponent. Letters that follow are left for the next
// token (conservative: MySQL would read "1abc" as one identifier).
func (l *lexer) number(t *token) {
	src, start := l.src, l.pos
	i := l.pos
	for i < len(src) && (isDigit(src[i]) || src[i] == '_' || src[i] == '.') {
		i++
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		j := i + 1
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j < len(src) && isDigit(src[j]) {
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			i = j
		}
	}
	l.pos = i
	l.set(t, tNumber, start)
}

// lineComment skips a comment running from l.pos to the end of the line.
func (l *lexer) lineComment(from int, alsoCR bool) {
	src := l.src
	i := from
	for i < len(src) && src[i] != '\n' && !(alsoCR && src[i] == '\r') {
		i++
	}
	l.scanHint(src[from:i])
	l.pos = i
}

func (l *lexer) punct(t *token) {
	l.pos++
	l.set(t, tPunct, l.pos-1)
	t.c = l.src[l.pos-1]
}
