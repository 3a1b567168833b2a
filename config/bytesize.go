package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// ByteSize is a number of bytes. In the file and in environment variables it
// is a plain integer (67108864) or an integer with a unit: B, KiB, MiB, GiB,
// TiB, or K/KB, M/MB, G/GB, T/TB which — as in PostgreSQL and MySQL
// configuration — are also powers of 1024 ("64MB" = "64MiB"). Units are case
// insensitive and may be separated by spaces. There is no default of its own;
// see Server.MaxMessageSize.
type ByteSize int64

// Byte size units.
const (
	Byte ByteSize = 1
	KiB           = 1024 * Byte
	MiB           = 1024 * KiB
	GiB           = 1024 * MiB
	TiB           = 1024 * GiB
)

var byteUnits = map[string]ByteSize{
	"": Byte, "b": Byte,
	"k": KiB, "kb": KiB, "kib": KiB,
	"m": MiB, "mb": MiB, "mib": MiB,
	"g": GiB, "gb": GiB, "gib": GiB,
	"t": TiB, "tb": TiB, "tib": TiB,
}

// ParseByteSize parses "67108864", "64MiB", "64MB", "512 KiB" and the like.
// Negative and fractional sizes are rejected.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid byte size %q: want a whole number of bytes, optionally with a unit such as KiB, MiB, GiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid byte size %q: number out of range", s)
	}
	unit, ok := byteUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("invalid byte size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB; KB/MB/GB/TB are powers of 1024 too)", s, strings.TrimSpace(t[i:]))
	}
	if n > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("invalid byte size %q: out of range", s)
	}
	return ByteSize(n) * unit, nil
}

// String renders the size with the largest binary unit that divides it
// exactly, e.g. "64MiB", "1000B"; ParseByteSize accepts the result.
func (b ByteSize) String() string {
	for _, u := range []struct {
		size ByteSize
		name string
	}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseByteSize.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

var byteSizeType = reflect.TypeFor[ByteSize]()

// byteSizeHook is a mapstructure decode hook turning strings (ParseByteSize)
// and non-negative whole numbers into ByteSize.
func byteSizeHook() mapstructure.DecodeHookFuncType {
	return func(from, to reflect.Type, data any) (any, error) {
		if to != byteSizeType {
			return data, nil
		}
		switch v := data.(type) {
		case string:
			return ParseByteSize(v)
		case ByteSize:
			return v, nil
		}
		rv := reflect.ValueOf(data)
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if rv.Int() < 0 {
				return nil, fmt.Errorf("invalid byte size %d: negative", rv.Int())
			}
			return ByteSize(rv.Int()), nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if rv.Uint() > math.MaxInt64 {
				return nil, fmt.Errorf("invalid byte size %d: out of range", rv.Uint())
			}
			return ByteSize(rv.Uint()), nil
		}
		return nil, fmt.Errorf("invalid byte size %v: want a number of bytes or a string such as \"64MiB\"", data)
	}
}
