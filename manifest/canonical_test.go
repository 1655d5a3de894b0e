package manifest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// canonicalSeeds cover sorting, whitespace, escapes, numbers and invalid
// documents.
var canonicalSeeds = []string{
	`{}`, `[]`, `null`, `true`, `0`, `-1.5e+10`, `"x"`,
	`{"b":1,"a":{"d":[1,2,{"z":null,"y":false}],"c":"s"}}`,
	` { "a" : [ 1 , 2 ] , "b" : "\u003cb\u003e & \u0026" } `,
	`{"s":"tab\tnl\nquote\"back\\slash\/ \u2028 \u00e9 é \ud83d\ude00 \ud800"}`,
	`{"a":1,"a":2}`, `{"a":1}x`, `{"a":01}`, `[1,]`, `{"a"}`, "\"\xff\"", `{"é":1,"e":2,"E":3,"":4}`,
	`{"n":1.0,"m":1E2,"k":-0}`,
}

// FuzzCanonicalJSON: CanonicalJSON accepts exactly the JSON values
// encoding/json accepts, and its output holds the same value (numbers as
// written), is canonical itself (a fixed point), and has its object keys
// sorted.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := CanonicalJSON(data)
		if (err == nil) != json.Valid(data) {
			t.Fatalf("CanonicalJSON(%q) error %v, but json.Valid says %v", data, err, json.Valid(data))
		}
		if err != nil {
			return
		}
		if again, err := CanonicalJSON(out); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %q -> %q -> %q (%v)", data, out, again, err)
		}
		if in, got := decodeNumbers(t, data), decodeNumbers(t, out); !reflect.DeepEqual(in, got) {
			t.Fatalf("value changed: %q -> %q", data, out)
		}
	})
}

func decodeNumbers(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	return v
}

// TestCanonicalJSON pins the canonical form: sorted keys, no space,
// numbers as written, HTML characters unescaped.
func TestCanonicalJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{` { "b" : [ 1.50 , 1e3 ] , "a" : "<b> & \u003c" } `, `{"a":"<b> & <","b":[1.50,1e3]}`},
		{`{"z":{"y":null,"x":true},"":12345678901234567890}`, `{"":12345678901234567890,"z":{"x":true,"y":null}}`},
		{`"\ud83d\ude00 \u2028"`, `"😀 \u2028"`},
	}
	for _, tt := range tests {
		got, err := CanonicalJSON([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("CanonicalJSON(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`{"a":1}x`, `{"a":01}`, `[1,]`, ``} {
		if got, err := CanonicalJSON([]byte(bad)); err == nil {
			t.Errorf("CanonicalJSON(%q) = %s, want an error", bad, got)
		}
	}
}

// FuzzCanonicalValue: a decoded JSON value (numbers as float64 or as
// json.Number) encodes to the bytes the long way gives: json.Marshal, then
// CanonicalJSON.
func FuzzCanonicalValue(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var plain any
		if err := json.Unmarshal(data, &plain); err != nil {
			return // a number too large for a float64
		}
		for _, v := range []any{plain, decodeNumbers(t, data)} {
			checkCanonicalValue(t, v)
		}
	})
}

func checkCanonicalValue(t *testing.T, v any) {
	t.Helper()
	got, err := CanonicalValue(v)
	b, merr := json.Marshal(v)
	if merr != nil {
		if err == nil {
			t.Fatalf("CanonicalValue(%#v) = %s, but json.Marshal fails: %v", v, got, merr)
		}
		return
	}
	want, werr := CanonicalJSON(b)
	if err != nil || werr != nil || !bytes.Equal(got, want) {
		t.Fatalf("CanonicalValue(%#v) = %s, %v; the long way %s, %v", v, got, err, want, werr)
	}
}

// TestCanonicalValue covers what fuzzing from JSON cannot: values that are
// not decoded JSON (structs, other maps, ints) and invalid UTF-8.
func TestCanonicalValue(t *testing.T) {
	for _, v := range []any{
		struct {
			B int    `json:"b"`
			A string `json:"a"`
		}{1, "<&>"},
		map[string]string{"z": "1", "a": "<"},
		map[string]any{"n": 7, "s": []string{"x"}, "m": map[string]any{"k": json.Number("1.50")}},
		"\xff<\u2028>",
		map[string]any{"\xff": "a"},
		map[string]any{"b": []any{"\xfe"}},
		[]any{1e21, 0.1, -0.0, "é", nil, true},
		json.Number("-1.5e+10"),
	} {
		checkCanonicalValue(t, v)
	}
}
