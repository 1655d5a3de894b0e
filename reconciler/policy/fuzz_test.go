package policy

import (
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
)

// FuzzDecode feeds arbitrary bytes to the policy decoder: it must not
// panic (a recovered panic is an "internal error" diagnostic, which fails
// the test), every diagnostic names the file, a policy comes back exactly
// when there is no error, and a policy that decodes can be used by Check
// and its glob matching on any path. Seed corpus: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(examplePolicy))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, diags := Decode("policy.yaml", data)
		for _, d := range diags {
			if d.File != "policy.yaml" {
				t.Errorf("diagnostic without the file: %v", d)
			}
			if strings.Contains(d.Message, "internal error") {
				t.Fatalf("decoder failure: %v", d)
			}
		}
		if (p == nil) != diags.HasErrors() {
			t.Fatalf("policy %v with diagnostics %v", p != nil, diags)
		}
		if p == nil {
			return
		}
		for _, r := range p.Paths {
			_ = matchPath(r.Path, "teams/a/b/c.yaml")
			_ = matchPath(r.Path, r.Path)
		}
		set, _ := manifest.Assemble(nil, nil)
		_ = Check(set, p, nil)
	})
}
