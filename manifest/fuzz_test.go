package manifest

import (
	"strings"
	"testing"
)

// FuzzDecodeFile feeds arbitrary bytes to the per-file decoder, the
// assembler/validator, the config decoder and the record decoder: none may
// panic (DecodeFile turns a panic into an "internal error" diagnostic, which
// fails the fuzz test too), and every diagnostic must be located in the file.
// Seed corpus: testdata/fuzz/FuzzDecodeFile (the fixtures of
// testdata/manifest plus odd inputs).
func FuzzDecodeFile(f *testing.F) {
	f.Add([]byte("apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata: {name: a}\nspec: {clusterServiceClassExternalName: c, clusterServicePlanExternalName: p, parameters: {x: [1, {y: z}]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, diags := DecodeFile("f.yaml", data)
		for _, d := range diags {
			if d.File != "f.yaml" {
				t.Errorf("diagnostic without the file: %v", d)
			}
			if strings.Contains(d.Message, "internal error") {
				t.Fatalf("decoder failure: %v", d)
			}
		}
		for _, o := range objs {
			if o.GetSource().File != "f.yaml" || o.GetSource().Line < 1 {
				t.Errorf("object %v has source %v", o.GetRef(), o.GetSource())
			}
			_ = o.FieldLine("spec.parameters.x[0]")
			if _, err := SpecHash(o); err != nil {
				t.Errorf("spec hash of %v: %v", o.GetRef(), err)
			}
		}
		set, ds := Assemble(objs, nil)
		for _, d := range ds {
			if strings.Contains(d.Message, "internal error") {
				t.Fatalf("assemble failure: %v", d)
			}
		}
		_ = ValidateWithCatalogs(set, Catalogs{})
		_, cds := DecodeConfig("osbgit.yaml", data)
		for _, d := range cds {
			if strings.Contains(d.Message, "internal error") {
				t.Fatalf("config decoder failure: %v", d)
			}
		}
		if rec, err := UnmarshalRecord("r.yaml", data); err == nil {
			b, merr := MarshalRecord(rec)
			if merr != nil {
				t.Fatalf("record decoded but does not encode: %v", merr)
			}
			rec2, uerr := UnmarshalRecord("r.yaml", b)
			if uerr != nil {
				t.Fatalf("marshalled record does not decode: %v\n%s", uerr, b)
			}
			b2, _ := MarshalRecord(rec2)
			if string(b) != string(b2) {
				t.Fatalf("record not stable:\n%s\n---\n%s", b, b2)
			}
		}
	})
}
