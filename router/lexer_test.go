package router

import (
	"strings"
	"testing"
)

var kindNames = map[tokKind]string{
	tWord: "w", tQIdent: "q", tString: "s", tNumber: "n", tParam: "p", tVar: "v", tPunct: "c", tOp: "o",
}

// lexAll renders the tokens of src as "kind:text" separated by spaces.
func lexAll(src string, mysql bool) (string, bool) {
	l := lexer{src: src, mysql: mysql}
	var out []string
	for {
		t := l.next()
		if t.kind == tEOF {
			return strings.Join(out, " "), l.open
		}
		out = append(out, kindNames[t.kind]+":"+src[t.start:t.end])
	}
}

func TestLexPostgres(t *testing.T) {
	cases := []struct {
		src, want string
		open      bool
	}{
		{"SELECT a, b FROM t", "w:SELECT w:a c:, w:b w:FROM w:t", false},
		{"select 'it''s' , E'a\\'b' , e'x'", `w:select s:'it''s' c:, s:E'a\'b' c:, s:e'x'`, false},
		{`"Quoted ""id""".x`, `q:"Quoted ""id""" c:. w:x`, false},
		{"$1 $$a;b$$ $f$ $$ $f$ a$b$ $", "p:$1 s:$$a;b$$ s:$f$ $$ $f$ w:a$b$ c:$", false},
		{"1 1.5 .5 1e10 1e+5 1_000 2x", "n:1 n:1.5 n:.5 n:1e10 n:1e+5 n:1_000 n:2 w:x", false},
		{"a -- c\nb /* x /* y */ z */ c", "w:a w:b w:c", false},
		{"a := b::int; @x", "w:a o::= w:b c:: c:: w:int c:; c:@ w:x", false},
		{"B'01' X'ff' U&'x'", "w:B s:'01' w:X s:'ff' w:U c:& s:'x'", false},
		{"x 'open", "w:x s:'open", true},
		{"x $a$ open", "w:x s:$a$ open", true},
		{"x /* /* */", "w:x", true},
		{`x "open`, `w:x q:"open`, true},
		{"ünïcode_ñame", "w:ünïcode_ñame", false},
	}
	for _, k := range cases {
		got, open := lexAll(k.src, false)
		if got != k.want || open != k.open {
			t.Errorf("lex %q\n got %s (open %v)\nwant %s (open %v)", k.src, got, open, k.want, k.open)
		}
	}
}

func TestLexMySQL(t *testing.T) {
	cases := []struct {
		src, want string
		open      bool
	}{
		{"SELECT a FROM `t``x`", "w:SELECT w:a w:FROM q:`t``x`", false},
		{`'a\'b' "c\"d" 'e''f'`, `s:'a\'b' s:"c\"d" s:'e''f'`, false},
		{"a # c\nb -- c\nc --1 d/* x */e", "w:a w:b w:c c:- c:- n:1 w:d w:e", false},
		{"a --\tb", "w:a", false},
		{"a --", "w:a", false},
		{"/*!40101 SET x=1 */ /*M!100100 y */ /*! z */", "w:SET w:x c:= n:1 w:y w:z", false},
		{"@a @`b c` @'d' @@session.x @@y @ ? :=", "v:@a v:@`b c` v:@'d' v:@@session.x v:@@y c:@ p:? o::=", false},
		{"$x x$ _utf8'a'", "w:$x w:x$ w:_utf8 s:'a'", false},
		{"a */ b", "w:a c:* c:/ w:b", false},
		{"x 'open", "w:x s:'open", true},
		{`x 'a\'`, `w:x s:'a\'`, true},
		{"x /* open", "w:x", true},
		{"x /*! y", "w:x w:y", true},
		{"x `open", "w:x q:`open", true},
	}
	for _, k := range cases {
		got, open := lexAll(k.src, true)
		if got != k.want || open != k.open {
			t.Errorf("lex %q\n got %s (open %v)\nwant %s (open %v)", k.src, got, open, k.want, k.open)
		}
	}
}

func TestLookupKW(t *testing.T) {
	for w, want := range map[string]kw{"select": kwSelect, "SeLeCt": kwSelect, "persist_only": kwPersistOnly, "selects": kwNone, "x": kwNone, "": kwNone, "characteristicsx": kwNone} {
		if got := lookupKW(w); got != want {
			t.Errorf("lookupKW(%q) = %d, want %d", w, got, want)
		}
	}
}

func TestKeywordHash(t *testing.T) {
	if kwHashMul != kwMul || kwHashShift != 64-9 {
		t.Errorf("kwMul is no longer collision-free for the keyword list; use %#x (shift %d)", kwHashMul, kwHashShift)
	}
	for k := kwNone + 1; k < numKW; k++ {
		w := kwSpelling[k]
		if got := lookupKW(w); got != k {
			t.Errorf("lookupKW(%q) = %d, want %d", w, got, k)
		}
		if got := lookupKW(strings.ToUpper(w)); got != k {
			t.Errorf("lookupKW(%q) = %d, want %d", strings.ToUpper(w), got, k)
		}
		if got := lookupKW(w[:len(w)-1] + "q"); got != kwNone && kwSpelling[got] != w[:len(w)-1]+"q" {
			t.Errorf("lookupKW(%q) = %d", w[:len(w)-1]+"q", got)
		}
	}
	if kwBuild(1, 64-9) != nil {
		t.Error("multiplier 1 should collide")
	}
	if mul, shift, table := kwSearch(1); mul == 1 || kwBuild(mul, shift) == nil || len(table) != 1<<(64-shift) {
		t.Errorf("kwSearch(1) = %#x, %d", mul, shift)
	}
}
