package router

import "testing"

// Typical queries of about 100 bytes.
const (
	benchPG    = "SELECT u.id, u.name, u.email FROM users u WHERE u.tenant_id = $1 AND u.active ORDER BY u.id LIMIT 50"
	benchMySQL = "SELECT u.id, u.name, u.email FROM `users` u WHERE u.tenant_id = ? AND u.active = 1 ORDER BY u.id LIMIT 50"
)

func BenchmarkClassifyPostgres(b *testing.B) {
	c := NewClassifier(Options{Dialect: Postgres})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPG)))
	for b.Loop() {
		c.Classify(benchPG)
	}
}

func BenchmarkClassifyMySQL(b *testing.B) {
	c := NewClassifier(Options{Dialect: MySQL})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMySQL)))
	for b.Loop() {
		c.Classify(benchMySQL)
	}
}

// BenchmarkClassifyPostgresMix runs over every PostgreSQL test case.
func BenchmarkClassifyPostgresMix(b *testing.B) {
	c := NewClassifier(Options{Dialect: Postgres})
	b.ReportAllocs()
	for b.Loop() {
		for _, k := range pgCases {
			c.Classify(k.sql)
		}
	}
}

func BenchmarkSessionOpsMySQL(b *testing.B) {
	c := NewClassifier(Options{Dialect: MySQL})
	b.ReportAllocs()
	for b.Loop() {
		c.SessionOps("SET SESSION sql_mode = 'ANSI', time_zone = '+00:00'")
	}
}

// BenchmarkLexPostgres measures the lexer alone, for comparison.
func BenchmarkLexPostgres(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPG)))
	for b.Loop() {
		l := lexer{src: benchPG}
		var t token
		for {
			l.nextPG(&t)
			if t.kind == tEOF {
				break
			}
		}
	}
}
