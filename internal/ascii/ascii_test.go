package ascii

import "testing"

func TestContainsFold(t *testing.T) {
	for _, c := range []struct {
		s, w string
		want bool
	}{
		{"DEALLOCATE p1", "deallocate", true},
		{"insert into t values ('DeAlLoCaTe')", "deallocate", true},
		{"SELECT CONNECTION_ID()", "connection_id", true},
		{"select 1", "deallocate", false},
		{"dealloc", "deallocate", false},
		{"", "x", false},
		{"@EALLOCATE", "deallocate", false}, // '@'|0x20 is '`', not 'd'
	} {
		if got := ContainsFold(c.s, c.w); got != c.want {
			t.Errorf("ContainsFold(%q, %q) = %v", c.s, c.w, got)
		}
		if got := ContainsFold([]byte(c.s), c.w); got != c.want {
			t.Errorf("ContainsFold([]byte(%q), %q) = %v", c.s, c.w, got)
		}
	}
}

func BenchmarkContainsFold(b *testing.B) {
	q := []byte("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP)")
	b.ReportAllocs()
	for b.Loop() {
		ContainsFold(q, "deallocate")
	}
}
