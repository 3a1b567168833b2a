package router

import (
	"strings"
	"testing"
)

func TestWriterFunctions(t *testing.T) {
	long := strings.Repeat("x", 70)
	for _, d := range []Dialect{Postgres, MySQL} {
		c := NewClassifier(Options{Dialect: d, WriterFunctions: []string{"audit_log", "App.Touch", " MyFunc ", "", `"quoted_fn"`, long}})
		writes := []string{
			"SELECT audit_log(1)",
			"SELECT AUDIT_LOG(1)",
			"SELECT app.audit_log(1)",
			"SELECT touch()",
			"SELECT x FROM t WHERE myfunc(x) > 0",
			"SELECT quoted_fn()",
			"SELECT " + strings.ToUpper(long) + "()",
		}
		for _, q := range writes {
			if cl := c.Classify(q); !cl.Write || cl.Pin != "" {
				t.Errorf("%v %q: %+v, want a write without pin", d, q, cl)
			}
		}
		reads := []string{"SELECT other(1)", "SELECT audit_log FROM t", "SELECT 'audit_log(1)'", "SELECT " + long + "y()"}
		for _, q := range reads {
			if cl := c.Classify(q); cl.Write {
				t.Errorf("%v %q: %+v, want a read", d, q, cl)
			}
		}
	}
	if c := NewClassifier(Options{}); c.Dialect() != Postgres || c.Classify("SELECT audit_log(1)").Write {
		t.Error("default classifier")
	}
}

// TestPinImpliesWrite checks the documented invariant over every table case.
func TestPinImpliesWrite(t *testing.T) {
	for _, set := range []struct {
		d     Dialect
		cases []tc
	}{{Postgres, pgCases}, {MySQL, mysqlCases}} {
		c := NewClassifier(Options{Dialect: set.d})
		for _, k := range set.cases {
			if cl := c.Classify(k.sql); cl.Pin != "" && !cl.Write {
				t.Errorf("%v %q: pin without write", set.d, k.sql)
			}
		}
	}
}

// TestClassifyNoAlloc checks that classification does not allocate.
func TestClassifyNoAlloc(t *testing.T) {
	for _, set := range []struct {
		d     Dialect
		cases []tc
	}{{Postgres, pgCases}, {MySQL, mysqlCases}} {
		c := NewClassifier(Options{Dialect: set.d, WriterFunctions: []string{"audit_log"}})
		for _, k := range set.cases {
			q := k.sql
			if n := testing.AllocsPerRun(20, func() { c.Classify(q) }); n != 0 {
				t.Errorf("%v Classify(%q): %v allocations", set.d, q, n)
			}
		}
	}
}
