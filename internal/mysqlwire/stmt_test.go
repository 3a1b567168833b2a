package mysqlwire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// allTypeParams is one parameter of every binary type with its wire value.
func allTypeParams() []StmtParam {
	le := func(b ...byte) []byte { return b }
	return []StmtParam{
		{Type: ParamType{TypeTiny, ParamUnsigned}, Value: le(200)},
		{Type: ParamType{TypeShort, 0}, Value: le(1, 2)},
		{Type: ParamType{TypeLong, 0}, Value: le(1, 2, 3, 4)},
		{Type: ParamType{TypeInt24, 0}, Value: le(1, 2, 3, 0)},
		{Type: ParamType{TypeLongLong, ParamUnsigned}, Value: AppendUint64(nil, 1<<63)},
		{Type: ParamType{TypeFloat, 0}, Value: le(0, 0, 0x80, 0x3f)},
		{Type: ParamType{TypeDouble, 0}, Value: le(0, 0, 0, 0, 0, 0, 0xf0, 0x3f)},
		{Type: ParamType{TypeYear, 0}, Value: le(0xe8, 0x07)},
		{Type: ParamType{TypeDecimal, 0}, Value: AppendLenEncString(nil, "1.5")},
		{Type: ParamType{TypeNewDecimal, 0}, Value: AppendLenEncString(nil, "-12345.678")},
		{Type: ParamType{TypeVarchar, 0}, Value: AppendLenEncString(nil, "v")},
		{Type: ParamType{TypeVarString, 0}, Value: AppendLenEncString(nil, string(bytes.Repeat([]byte("s"), 300)))},
		{Type: ParamType{TypeString, 0}, Value: AppendLenEncString(nil, "")},
		{Type: ParamType{TypeBlob, 0}, Value: AppendLenEncBytes(nil, []byte{0, 1, 2})},
		{Type: ParamType{TypeTinyBlob, 0}, Value: AppendLenEncString(nil, "t")},
		{Type: ParamType{TypeMediumBlob, 0}, Value: AppendLenEncString(nil, "m")},
		{Type: ParamType{TypeLongBlob, 0}, Value: AppendLenEncString(nil, "l")},
		{Type: ParamType{TypeBit, 0}, Value: AppendLenEncBytes(nil, []byte{5})},
		{Type: ParamType{TypeJSON, 0}, Value: AppendLenEncString(nil, `{"a":1}`)},
		{Type: ParamType{TypeGeometry, 0}, Value: AppendLenEncBytes(nil, make([]byte, 25))},
		{Type: ParamType{TypeEnum, 0}, Value: AppendLenEncString(nil, "red")},
		{Type: ParamType{TypeSet, 0}, Value: AppendLenEncString(nil, "a,b")},
		{Type: ParamType{TypeDate, 0}, Value: le(4, 0xe8, 0x07, 2, 29)},
		{Type: ParamType{TypeDate, 0}, Value: le(0)},
		{Type: ParamType{TypeDateTime, 0}, Value: le(7, 0xe8, 0x07, 2, 29, 23, 59, 58)},
		{Type: ParamType{TypeTimestamp, 0}, Value: le(11, 0xe8, 0x07, 2, 29, 23, 59, 58, 1, 2, 3, 0)},
		{Type: ParamType{TypeTime, 0}, Value: le(8, 1, 2, 0, 0, 0, 3, 4, 5)},
		{Type: ParamType{TypeTime, 0}, Value: le(12, 0, 0, 0, 0, 0, 3, 4, 5, 1, 0, 0, 0)},
		{Type: ParamType{TypeTime, 0}, Value: le(0)},
		{Type: ParamType{TypeNull, 0}, Value: le()},
		{Type: ParamType{TypeLong, 0}, Null: true},
		{Type: ParamType{TypeBlob, 0}, LongData: true},
	}
}

func TestStmtExecuteAllTypes(t *testing.T) {
	params := allTypeParams()
	for i := range params {
		if params[i].Type.Type == TypeNull {
			params[i].Value = nil // zero-length value decodes as an empty sub-slice
		}
	}
	x := StmtExecute{StatementID: 17, Flags: CursorTypeNoCursor, IterationCount: 1, NewParamsBound: true, Params: params}
	st := &StmtState{NumParams: len(params)}
	st.MarkLongData(len(params) - 1)
	for _, caps := range []uint64{caps41, caps41 | ClientQueryAttributes} {
		b := x.Append(nil, caps)
		got, err := ParseStmtExecute(b, st, caps)
		if err != nil {
			t.Fatalf("caps %#x: %v", caps, err)
		}
		for i := range got.Params {
			if got.Params[i].Type.Type == TypeNull && len(got.Params[i].Value) == 0 {
				got.Params[i].Value = nil
			}
			if got.Params[i].Name != nil && len(got.Params[i].Name) == 0 {
				got.Params[i].Name = nil
			}
		}
		if !reflect.DeepEqual(*got, x) {
			for i := range got.Params {
				if !reflect.DeepEqual(got.Params[i], x.Params[i]) {
					t.Errorf("param %d: got %+v want %+v", i, got.Params[i], x.Params[i])
				}
			}
			t.Fatalf("caps %#x: round trip differs", caps)
		}
		// Truncations fail cleanly.
		for i := 0; i < len(b); i++ {
			if _, err := ParseStmtExecute(b[:i], st, caps); err == nil {
				t.Fatalf("truncated execute (%d of %d bytes) accepted", i, len(b))
			}
		}
	}
	if d := params[9].Data(); string(d) != "-12345.678" {
		t.Fatalf("Data() = %q", d)
	}
	if d := params[24].Data(); len(d) != 7 {
		t.Fatalf("datetime Data() = % x", d)
	}
	if d := params[0].Data(); !bytes.Equal(d, []byte{200}) {
		t.Fatalf("tiny Data() = % x", d)
	}
}

func TestStmtExecuteReuseBoundTypes(t *testing.T) {
	first := StmtExecute{StatementID: 1, IterationCount: 1, NewParamsBound: true, Params: []StmtParam{
		{Type: ParamType{TypeLongLong, 0}, Value: AppendUint64(nil, 5)},
		{Type: ParamType{TypeVarString, 0}, Value: AppendLenEncString(nil, "abc")},
	}}
	st := &StmtState{NumParams: 2}
	b := first.Append(nil, caps41)
	var x StmtExecute
	if err := x.Decode(b, st, caps41); err != nil {
		t.Fatal(err)
	}
	st.Executed(&x)
	if !reflect.DeepEqual(st.BoundTypes, []ParamType{{TypeLongLong, 0}, {TypeVarString, 0}}) {
		t.Fatalf("bound types %v", st.BoundTypes)
	}
	// Second execution without types.
	second := first
	second.NewParamsBound = false
	second.Params = []StmtParam{first.Params[0], {Type: first.Params[1].Type, Null: true}}
	b2 := second.Append(nil, caps41)
	if len(b2) != 1+4+1+4+1+1+8 {
		t.Fatalf("execute without types is %d bytes", len(b2))
	}
	if err := x.Decode(b2, st, caps41); err != nil {
		t.Fatal(err)
	}
	if x.NewParamsBound || x.Params[1].Type.Type != TypeVarString || !x.Params[1].Null || !bytes.Equal(x.Params[0].Value, first.Params[0].Value) {
		t.Fatalf("%+v", x)
	}
	// The proxy re-sends it with types to a backend that never saw them.
	x.NewParamsBound = true
	fresh := &StmtState{NumParams: 2}
	y, err := ParseStmtExecute(x.Append(nil, caps41), fresh, caps41)
	if err != nil || !y.NewParamsBound || y.Params[0].Type.Type != TypeLongLong || !y.Params[1].Null {
		t.Fatalf("rebound: %+v %v", y, err)
	}
	// Without bound types the packet cannot be decoded.
	if _, err := ParseStmtExecute(b2, fresh, caps41); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unbound types: %v", err)
	}
	// No parameters.
	none := StmtExecute{StatementID: 9, Flags: CursorTypeReadOnly, IterationCount: 1}
	got, err := ParseStmtExecute(none.Append(nil, caps41), &StmtState{}, caps41)
	if err != nil || got.StatementID != 9 || got.Flags != CursorTypeReadOnly || len(got.Params) != 0 {
		t.Fatalf("no params: %+v %v", got, err)
	}
}

func TestStmtExecuteQueryAttributes(t *testing.T) {
	// One statement parameter plus one named query attribute.
	x := StmtExecute{StatementID: 3, Flags: ParameterCountAvailable, IterationCount: 1, NewParamsBound: true, Params: []StmtParam{
		{Type: ParamType{TypeLong, 0}, Name: []byte{}, Value: []byte{1, 0, 0, 0}},
		{Type: ParamType{TypeVarString, 0}, Name: []byte("trace_id"), Value: AppendLenEncString(nil, "abc")},
	}}
	caps := caps41 | ClientQueryAttributes
	got, err := ParseStmtExecute(x.Append(nil, caps), &StmtState{NumParams: 1}, caps)
	if err != nil || !reflect.DeepEqual(*got, x) {
		t.Fatalf("got %+v %v", got, err)
	}
	// Attributes only, on a statement without parameters.
	x.Params = x.Params[1:]
	got, err = ParseStmtExecute(x.Append(nil, caps), &StmtState{}, caps)
	if err != nil || len(got.Params) != 1 || string(got.Params[0].Name) != "trace_id" {
		t.Fatalf("attributes only: %+v %v", got, err)
	}
	// A parameter count below the prepared count is refused.
	if _, err := ParseStmtExecute(x.Append(nil, caps), &StmtState{NumParams: 2}, caps); err == nil {
		t.Fatal("count below NumParams accepted")
	}
}

func TestBinaryValueSizeErrors(t *testing.T) {
	for _, tc := range []struct {
		typ byte
		b   []byte
	}{
		{TypeLong, []byte{1, 2, 3}},
		{TypeDate, []byte{5, 1, 2, 3, 4, 5}},
		{TypeTime, []byte{7, 1, 2, 3, 4, 5, 6, 7}},
		{TypeDateTime, []byte{}},
		{TypeDateTime, []byte{11, 1}},
		{TypeBlob, []byte{5, 'a'}},
		{TypeBlob, []byte{0xfb}},
		{0x20, []byte{0}},
		{0xf4, []byte{1}},
	} {
		if _, err := BinaryValueSize(tc.typ, tc.b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("type %#x % x: %v", tc.typ, tc.b, err)
		}
	}
}

func TestStatementIDRewrite(t *testing.T) {
	for _, cmd := range []byte{ComStmtExecute, ComStmtSendLongData, ComStmtClose, ComStmtReset, ComStmtFetch, ComStmtBulkExecute} {
		p := AppendStmtCommand(nil, cmd, 0x01020304)
		p = append(p, 9, 9, 9, 9)
		if id, ok := StatementID(p); !ok || id != 0x01020304 {
			t.Fatalf("cmd %#x: id %#x %v", cmd, id, ok)
		}
		if err := SetStatementID(p, LastStatementID); err != nil {
			t.Fatal(err)
		}
		if id, _ := StatementID(p); id != LastStatementID || p[0] != cmd || !bytes.Equal(p[5:], []byte{9, 9, 9, 9}) {
			t.Fatalf("cmd %#x: after rewrite % x", cmd, p)
		}
	}
	for _, p := range [][]byte{{ComQuery, 1, 2, 3, 4}, {ComStmtClose, 1, 2, 3}, nil} {
		if _, ok := StatementID(p); ok {
			t.Fatalf("% x has a statement id", p)
		}
		if err := SetStatementID(p, 1); err == nil {
			t.Fatalf("% x rewritten", p)
		}
	}
	ld := append(AppendUint16(AppendStmtCommand(nil, ComStmtSendLongData, 5), 2), "chunk"...)
	id, param, data, err := ParseStmtSendLongData(ld)
	if err != nil || id != 5 || param != 2 || string(data) != "chunk" {
		t.Fatalf("long data %d %d %q %v", id, param, data, err)
	}
	st := &StmtState{NumParams: 3}
	st.MarkLongData(int(param))
	st.MarkLongData(-1)
	st.MarkLongData(1 << 20)
	if !reflect.DeepEqual(st.LongData, []bool{false, false, true}) {
		t.Fatalf("long data marks %v", st.LongData)
	}
	st.Executed(nil)
	if len(st.LongData) != 0 {
		t.Fatal("long data not consumed")
	}
	f := AppendUint32(AppendStmtCommand(nil, ComStmtFetch, 8), 100)
	if id, rows, err := ParseStmtFetch(f); err != nil || id != 8 || rows != 100 {
		t.Fatalf("fetch %d %d %v", id, rows, err)
	}
	if _, _, err := ParseStmtFetch(f[:8]); err == nil {
		t.Fatal("short fetch accepted")
	}
	if _, _, _, err := ParseStmtSendLongData(ld[:6]); err == nil {
		t.Fatal("short long data accepted")
	}
}
