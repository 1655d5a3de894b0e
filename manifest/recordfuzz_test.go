package manifest

import (
	"encoding/json"
	"testing"
)

// FuzzUnmarshalRecord: for any input, decoding a record with the fast paths
// (fast parser, direct decoder, JSON rendering) gives the same record or
// the same error as the general path, and nothing panics. Seeds are the
// record shapes a pass writes; testdata/fuzz/FuzzUnmarshalRecord holds
// edited ones.
func FuzzUnmarshalRecord(f *testing.F) {
	for _, rec := range []Record{sampleStatus(), sampleRecordPlain(), NewStatusRecord(Ref{Kind: KindServiceBinding, Namespace: "ns", Name: "b"})} {
		b, err := MarshalRecord(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		const file = ".osbgit/status/default/serviceinstance/db.yaml"
		want, werr := unmarshalRecord(file, doc, false)
		got, gerr := unmarshalRecord(file, doc, true)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("errors differ: general %v, fast %v\n%s", werr, gerr, doc)
		}
		if werr != nil {
			return
		}
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if string(wb) != string(gb) {
			t.Fatalf("records differ:\n%s\n%s\n%s", wb, gb, doc)
		}
	})
}
