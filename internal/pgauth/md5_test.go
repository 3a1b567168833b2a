package pgauth_test

import (
	"crypto/md5"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicedb/sluice/internal/pgauth"
)

// md5Response computes the client's answer from the formula in the
// PostgreSQL protocol documentation.
func md5Response(user, password string, salt [4]byte) string {
	inner := fmt.Sprintf("%x", md5.Sum([]byte(password+user)))
	return fmt.Sprintf("md5%x", md5.Sum(append([]byte(inner), salt[:]...)))
}

func TestCheckMD5(t *testing.T) {
	salt := [4]byte{0x01, 0x02, 0xfe, 0xff}
	good := md5Response("alice", "secret", salt)
	if len(good) != 35 {
		t.Fatalf("response %q has length %d", good, len(good))
	}
	tests := []struct {
		name, user, password string
		salt                 [4]byte
		response             string
		want                 bool
	}{
		{"match", "alice", "secret", salt, good, true},
		{"NUL terminated", "alice", "secret", salt, good + "\x00", true},
		{"two NULs", "alice", "secret", salt, good + "\x00\x00", false},
		{"wrong password", "alice", "Secret", salt, good, false},
		{"wrong user", "bob", "secret", salt, good, false},
		{"wrong salt", "alice", "secret", [4]byte{1, 2, 3, 4}, good, false},
		{"upper case hex", "alice", "secret", salt, "md5" + strings.ToUpper(good[3:]), false},
		{"no prefix", "alice", "secret", salt, good[3:], false},
		{"truncated", "alice", "secret", salt, good[:34], false},
		{"trailing byte", "alice", "secret", salt, good + "0", false},
		{"empty", "alice", "secret", salt, "", false},
		{"NUL only", "alice", "secret", salt, "\x00", false},
		// user and password are concatenated, so only the pair matters.
		{"shifted boundary", "ealice", "secr", salt, md5Response("ealice", "secr", salt), true},
		{"non-ASCII", "ünïcode", "пароль", salt, md5Response("ünïcode", "пароль", salt), true},
	}
	for _, tt := range tests {
		if got := pgauth.CheckMD5(tt.user, tt.password, tt.salt, []byte(tt.response)); got != tt.want {
			t.Errorf("%s: CheckMD5 = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A literal value, worked out with md5sum(1) in a shell:
//
//	inner=$(printf 'secretalice' | md5sum | cut -d' ' -f1)   # 4a0a68b43b6cd5cf266fa02f196e2371
//	printf "%s\x01\x02\x03\x04" $inner | md5sum              # 98a0412b9c31436fc53776e863350083
func TestCheckMD5KnownValue(t *testing.T) {
	const want = "md598a0412b9c31436fc53776e863350083"
	salt := [4]byte{1, 2, 3, 4}
	if got := md5Response("alice", "secret", salt); got != want {
		t.Fatalf("formula gives %s, want %s", got, want)
	}
	if !pgauth.CheckMD5("alice", "secret", salt, []byte(want+"\x00")) {
		t.Fatalf("CheckMD5 rejected %s", want)
	}
}

func TestMD5Salt(t *testing.T) {
	salt, err := pgauth.MD5Salt(strings.NewReader("\x01\x02\x03\x04\x05"))
	if err != nil {
		t.Fatal(err)
	}
	if salt != [4]byte{1, 2, 3, 4} {
		t.Fatalf("salt %x", salt)
	}
	if _, err := pgauth.MD5Salt(strings.NewReader("abc")); err == nil {
		t.Fatal("MD5Salt with a short reader succeeded")
	}
	if _, err := pgauth.MD5Salt(errReader{}); err == nil {
		t.Fatal("MD5Salt with a failing reader succeeded")
	}
	a, err := pgauth.MD5Salt(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pgauth.MD5Salt(nil)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two random salts are equal: %x", a) // 1 in 2^32
	}
}
