package manifest

import (
	"testing"

	"go.yaml.in/yaml/v3"
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
		fastAgreesWithGeneral(t, doc)
	})
}

// FuzzResolvedTag: resolvedTag's shortcuts give the tag yaml.v3 resolves
// every plain scalar to (the fast encoder quotes by it, the fast parser
// tags by it).
func FuzzResolvedTag(f *testing.F) {
	for _, s := range []string{
		"", "~", "true", "TRUE", "yes", "null", "Null", "nil", "name", "type", ".5", ".inf", "-.inf", "+.Inf", "-.nan",
		"1", "-1", "+1", "1_000", "0x1F", "-0x1f", "0o17", "0b101", "-0b1", "017", "1e3", "1.5E-3", "1.", "12:30",
		"2026-12-05T20:21:40Z", "2026-12-05", "2026-1-5 1:2:3.5", "2026-12-05t20:21:40+01:00", "9f3c2a1e-77b0-4e1a-9d2c-0c1f5e8b7a6d",
		"123e4567-e89b-12d3-a456-426614174000", "1e", "0xg", "-", "+", "-x", "1 2", "0b2", "9223372036854775808", "18446744073709551616",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := (&yaml.Node{Kind: yaml.ScalarNode, Value: s}).ShortTag()
		if got := resolvedTag(s); got != want {
			t.Errorf("resolvedTag(%q) = %s, yaml.v3 resolves it to %s", s, got, want)
		}
	})
}
