// Package ascii holds allocation-free ASCII helpers for the statement
// pre-checks both front ends make on every query.
package ascii

// ContainsFold reports whether b contains word, ignoring ASCII case. word
// must be lower-case ASCII letters, digits or punctuation; it does not
// allocate.
func ContainsFold[T ~string | ~[]byte](b T, word string) bool {
	if len(word) == 0 {
		return true
	}
	first := word[0]
	for i, last := 0, len(b)-len(word); i <= last; i++ {
		if lower(b[i]) != first {
			continue
		}
		j := 1
		for j < len(word) && lower(b[i+j]) == word[j] {
			j++
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
