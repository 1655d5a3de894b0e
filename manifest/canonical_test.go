package manifest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// canonicalSeeds cover what the fast path copies, sorts and re-encodes.
var canonicalSeeds = []string{
	`{}`, `[]`, `null`, `true`, `0`, `-1.5e+10`, `"x"`,
	`{"b":1,"a":{"d":[1,2,{"z":null,"y":false}],"c":"s"}}`,
	` { "a" : [ 1 , 2 ] , "b" : "\u003cb\u003e & \u0026" } `,
	`{"s":"tab\tnl\nquote\"back\\slash\/ \u2028 \u00e9 é \ud83d\ude00 \ud800"}`,
	`{"a":1,"a":2}`, `{"a":1}x`, `{"a":01}`, `[1,]`, `{"a"}`, "\"\xff\"", `{"é":1,"e":2,"E":3,"":4}`,
	`{"n":1.0,"m":1E2,"k":-0}`,
}

// FuzzCanonicalJSON: whenever the fast path answers, it answers exactly
// what the reference (decode with UseNumber, encode without HTML escaping)
// gives; and it answers for the documents json.Marshal produces.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := canonicalFast(data)
		if !ok {
			return
		}
		ref, err := canonicalJSONReference(data)
		if err != nil {
			t.Fatalf("fast path accepted %q, reference: %v", data, err)
		}
		if !bytes.Equal(fast, ref) {
			t.Fatalf("input %q:\nfast      %s\nreference %s", data, fast, ref)
		}
	})
}

// TestCanonicalFastTakesMarshalOutput: the documents hashes are made of
// (json.Marshal of specs and parameters) take the fast path.
func TestCanonicalFastTakesMarshalOutput(t *testing.T) {
	v := map[string]any{"size": json.Number("10"), "tags": []any{"<a>", "b&c", "é"}, "nested": map[string]any{"z": true, "a": nil}}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	fast, ok := canonicalFast(b)
	if !ok {
		t.Fatalf("fast path refused %s", b)
	}
	ref, _ := canonicalJSONReference(b)
	if !bytes.Equal(fast, ref) {
		t.Fatalf("fast %s, reference %s", fast, ref)
	}
}
