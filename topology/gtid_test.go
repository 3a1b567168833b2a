package topology

import "testing"

func TestGTIDSequence(t *testing.T) {
	for _, c := range []struct {
		pos    string
		domain uint32
		want   uint64
	}{
		{"0-1-42", 0, 42},
		{"1-2-7,0-1-42", 0, 42},
		{"1-2-7, 0-3-9", 0, 9},
		{"1-2-7", 0, 0},
		{"", 0, 0},
		{"0-1-x", 0, 0},
		{"garbage", 0, 0},
		{"0-1-5,1-2-7", 1, 7},
	} {
		if got := GTIDSequence(c.pos, c.domain); got != c.want {
			t.Errorf("GTIDSequence(%q, %d) = %d, want %d", c.pos, c.domain, got, c.want)
		}
	}
}
