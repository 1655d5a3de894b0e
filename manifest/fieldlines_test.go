package manifest

import (
	"fmt"
	"runtime"
	"testing"
	"unique"
	"unsafe"
)

// TestFieldLinesFrozen checks that a frozen table answers as the map it
// was filled in: in its shared form (paths joined), with a key holding
// the separator (kept as a slice), and past the size of linear lookups.
func TestFieldLinesFrozen(t *testing.T) {
	large := map[string]int{}
	for i := range linearLookupMax + 10 {
		large[fmt.Sprintf("spec.parameters.p%04d", i)] = i + 2
	}
	tests := []struct {
		name  string
		lines map[string]int
	}{
		{"empty", map[string]int{}},
		{"document", map[string]int{"": 1, "metadata": 3, "metadata.name": 4, "spec": 5, `spec.parameters["a.b"]`: 7, "spec.list[0]": 9}},
		{"key with NUL", map[string]int{"": 1, "spec": 2, "spec.parameters[\"a\\x00b\"]": 3, "spec.parameters[\"a\x00b\"]": 4}},
		{"large", large},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fieldLines{}
			for p, l := range tt.lines {
				f.set(p, l)
			}
			f.freeze()
			for p, want := range tt.lines {
				if got, ok := f.get(p); !ok || got != want {
					t.Errorf("get(%q) = %d, %v; want %d", p, got, ok, want)
				}
			}
			for _, p := range []string{"missing", "spec.parameters.p", "metadata.nam", "\x00"} {
				if _, ok := tt.lines[p]; ok {
					continue
				}
				if got, ok := f.get(p); ok {
					t.Errorf("get(%q) = %d, want not found", p, got)
				}
			}
		})
	}
}

// TestFieldLinesShareShape checks that two documents of the same shape
// share their frozen paths, which is what keeps a pass's line tables small.
func TestFieldLinesShareShape(t *testing.T) {
	doc := "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata:\n  name: %s\n  namespace: team\nspec:\n  clusterServiceClassExternalName: db\n  clusterServicePlanExternalName: small\n  parameters:\n    size: %d\n"
	var tables []*fieldLines
	for i := range 2 {
		// A collection between the documents must not lose the shared
		// copy: the first table still uses it.
		runtime.GC()
		objs, diags := DecodeFile("db.yaml", fmt.Appendf(nil, doc, fmt.Sprint("db-", i), i))
		if diags.HasErrors() || len(objs) != 1 {
			t.Fatalf("decode: %v", diags)
		}
		tables = append(tables, objs[0].objBase().lines)
	}
	a, b := tables[0], tables[1]
	if a.paths == (unique.Handle[string]{}) || unsafe.StringData(a.paths.Value()) != unsafe.StringData(b.paths.Value()) {
		t.Errorf("same-shape documents do not share their paths")
	}
	if l, _ := a.get("spec.parameters.size"); l != 10 {
		t.Errorf("spec.parameters.size at line %d, want 10", l)
	}
}
