package router

import (
	"reflect"
	"testing"
)

func TestSessionOps(t *testing.T) {
	pg := NewClassifier(Options{Dialect: Postgres})
	my := NewClassifier(Options{Dialect: MySQL})
	set := func(name, text string) SessionOp { return SessionOp{Kind: SessionSet, Name: name, Text: text} }
	cases := []struct {
		c    *Classifier
		sql  string
		want []SessionOp
	}{
		{pg, "SELECT 1", nil},
		{pg, "SET search_path TO a, b", []SessionOp{set("search_path", "SET search_path TO a, b")}},
		{pg, "  SET   Statement_Timeout = 0 ;  ", []SessionOp{set("statement_timeout", "SET   Statement_Timeout = 0")}},
		{pg, "/* sluice:writer */ SET x = 1 -- trailing", []SessionOp{set("x", "SET x = 1")}},
		{pg, "SET SESSION TIME ZONE 'UTC'", []SessionOp{set("timezone", "SET SESSION TIME ZONE 'UTC'")}},
		{pg, "SET LOCAL x = 1", nil},
		{pg, "SET TRANSACTION READ ONLY", nil},
		{pg, "SET myapp.User_ID = 5", []SessionOp{set("myapp.user_id", "SET myapp.User_ID = 5")}},
		{pg, `SET "MyApp"."X""y" = 5`, []SessionOp{set(`MyApp.X"y`, `SET "MyApp"."X""y" = 5`)}},
		{pg, "SET NAMES 'UTF8'", []SessionOp{set("client_encoding", "SET NAMES 'UTF8'")}},
		{pg, "SET SCHEMA 'x'", []SessionOp{set("search_path", "SET SCHEMA 'x'")}},
		{pg, "SET ROLE admin", []SessionOp{set("role", "SET ROLE admin")}},
		{pg, "SET SESSION AUTHORIZATION bob", []SessionOp{set("session_authorization", "SET SESSION AUTHORIZATION bob")}},
		{pg, "SET XML OPTION CONTENT", []SessionOp{set("xmloption", "SET XML OPTION CONTENT")}},
		{pg, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
			[]SessionOp{set("transaction_characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")}},
		{pg, "RESET search_path", []SessionOp{{Kind: SessionReset, Name: "search_path", Text: "RESET search_path"}}},
		{pg, "RESET TIME ZONE", []SessionOp{{Kind: SessionReset, Name: "timezone", Text: "RESET TIME ZONE"}}},
		{pg, "RESET SESSION AUTHORIZATION", []SessionOp{{Kind: SessionReset, Name: "session_authorization", Text: "RESET SESSION AUTHORIZATION"}}},
		{pg, "RESET ALL", []SessionOp{{Kind: SessionResetAll, Text: "RESET ALL"}}},
		{pg, "discard all;", []SessionOp{{Kind: SessionResetAll, Text: "discard all"}}},
		{pg, "SET a = 1; SELECT 1; RESET b; SET LOCAL c = 2; SET d TO DEFAULT", []SessionOp{
			set("a", "SET a = 1"),
			{Kind: SessionReset, Name: "b", Text: "RESET b"},
			set("d", "SET d TO DEFAULT"),
		}},

		{my, "SELECT 1", nil},
		{my, "SET NAMES utf8mb4", []SessionOp{set("names", "SET NAMES utf8mb4")}},
		{my, "SET CHARACTER SET utf8", []SessionOp{set("character_set", "SET CHARACTER SET utf8")}},
		{my, "SET autocommit=0", []SessionOp{set("autocommit", "SET autocommit=0")}},
		{my, "SET @@SESSION.Sql_Mode = ''", []SessionOp{set("sql_mode", "SET @@SESSION.Sql_Mode = ''")}},
		{my, "SET validate_password.length = 8", []SessionOp{set("validate_password.length", "SET validate_password.length = 8")}},
		{my, "SET `wait_timeout` = 8", []SessionOp{set("wait_timeout", "SET `wait_timeout` = 8")}},
		{my, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
			[]SessionOp{set("transaction_characteristics", "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")}},
		{my, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", nil},
		{my, "SET @x = 1", nil},
		{my, "SET GLOBAL x = 1", nil},
		{my, "SET SESSION sql_mode = 'ANSI', @a = 1, GLOBAL x = 1, y = 2, SESSION z = 3", []SessionOp{
			set("sql_mode", "SET SESSION sql_mode = 'ANSI'"),
			set("z", "SET SESSION z = 3"),
		}},
		{my, "SET @@wait_timeout = 10, @@global.x = 1", []SessionOp{set("wait_timeout", "SET @@wait_timeout = 10")}},
		{my, "SET sql_mode = CONCAT(@@sql_mode, ',X'), time_zone = '+00:00'", []SessionOp{
			set("sql_mode", "SET sql_mode = CONCAT(@@sql_mode, ',X')"),
			set("time_zone", "SET time_zone = '+00:00'"),
		}},
		{my, "USE `My``Db`", []SessionOp{{Kind: SessionUse, Name: "My`Db", Text: "USE `My``Db`"}}},
		{my, "USE Shop; SET NAMES utf8", []SessionOp{
			{Kind: SessionUse, Name: "Shop", Text: "USE Shop"},
			set("names", "SET NAMES utf8"),
		}},
		{my, "/*!40101 SET NAMES utf8 */;", []SessionOp{set("names", "SET NAMES utf8")}},
	}
	for _, k := range cases {
		got := k.c.SessionOps(k.sql)
		if !reflect.DeepEqual(got, k.want) {
			t.Errorf("%v SessionOps(%q)\n got %+v\nwant %+v", k.c.Dialect(), k.sql, got, k.want)
		}
		if cl := k.c.Classify(k.sql); cl.SessionSet != (len(got) > 0) {
			t.Errorf("%v Classify(%q).SessionSet = %v with %d ops", k.c.Dialect(), k.sql, cl.SessionSet, len(got))
		}
	}
}

func TestSessionOpKindString(t *testing.T) {
	for k, want := range map[SessionOpKind]string{SessionSet: "set", SessionReset: "reset", SessionResetAll: "reset_all", SessionUse: "use", 9: "session_op(9)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", k, got, want)
		}
	}
}
