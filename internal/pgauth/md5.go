package pgauth

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
)

// MD5Salt returns a random 4-byte salt for an AuthenticationMD5Password
// message, read from rand (nil means crypto/rand.Reader).
func MD5Salt(rand io.Reader) ([4]byte, error) {
	var salt [4]byte
	if rand == nil {
		rand = cryptoRand
	}
	if _, err := io.ReadFull(rand, salt[:]); err != nil {
		return salt, fmt.Errorf("pgauth: generating MD5 salt: %w", err)
	}
	return salt, nil
}

// cryptoRand is crypto/rand.Reader, under a name that MD5Salt's parameter
// does not shadow.
var cryptoRand = rand.Reader

// CheckMD5 reports whether response, the payload of the client's
// PasswordMessage, answers an AuthenticationMD5Password challenge with salt
// for the given user and plain-text password. The expected response is
//
//	"md5" + hex(md5(hex(md5(password + user)) + salt))
//
// in lower-case hex; one trailing NUL (the message's string terminator) is
// allowed. The comparison takes constant time.
func CheckMD5(user, password string, salt [4]byte, response []byte) bool {
	if n := len(response); n > 0 && response[n-1] == 0 {
		response = response[:n-1]
	}
	inner := md5.Sum([]byte(password + user))
	var buf [2 * md5.Size]byte
	hex.Encode(buf[:], inner[:])
	outer := md5.Sum(append(buf[:], salt[:]...))

	want := make([]byte, 3+2*md5.Size)
	copy(want, "md5")
	hex.Encode(want[3:], outer[:])
	return subtle.ConstantTimeCompare(want, response) == 1
}
