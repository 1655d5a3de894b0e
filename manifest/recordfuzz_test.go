package manifest

import "testing"

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
		fastAgreesWithGeneral(t, doc)
	})
}
