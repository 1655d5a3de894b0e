package manifest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/osbgit/osbgit/manifest/goldentest"
)

const goldenRoot = "../testdata/manifest"

// checkGolden compares got with the golden file (-update rewrites it).
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	goldentest.Compare(t, golden, got)
}

// caseFS returns the tree of a fixture: a directory as os.DirFS, or a single
// file as a one-file tree.
func caseFS(t *testing.T, p string) fs.FS {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.IsDir() {
		return os.DirFS(p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// .bin fixtures hold bytes an editor would mangle; they load as .yaml.
	name := strings.TrimSuffix(filepath.Base(p), ".bin")
	if !strings.HasSuffix(name, ".yaml") {
		name += ".yaml"
	}
	return fstest.MapFS{name: &fstest.MapFile{Data: data}}
}

// fixtures lists the cases of a fixture directory: sub-directories and
// *.yaml files, by name without extension.
func fixtures(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		n := e.Name()
		switch {
		case e.IsDir():
			out[n] = filepath.Join(dir, n)
		case strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".bin"):
			out[strings.TrimSuffix(strings.TrimSuffix(n, ".yaml"), ".bin")] = filepath.Join(dir, n)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no fixtures in %s", dir)
	}
	return out
}

func renderDiags(b *strings.Builder, ds Diagnostics) {
	for _, d := range ds {
		b.WriteString(d.String())
		if d.Ref.Kind != "" {
			fmt.Fprintf(b, "  [%s]", d.Ref)
		}
		b.WriteString("\n")
	}
}

// renderSet is the golden summary of a loaded repo: config, each object with
// its source and defaulted spec in canonical JSON, then the diagnostics.
func renderSet(t *testing.T, set *Set, ds Diagnostics) []byte {
	t.Helper()
	var b strings.Builder
	cj := func(v any) string {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		c, err := CanonicalJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		return string(c)
	}
	c := *set.Config
	c.TypeMeta = DefaultConfig().TypeMeta
	fmt.Fprintf(&b, "config: %s\n", cj(c))
	for _, o := range set.Objects() {
		fmt.Fprintf(&b, "%s @ %s\n", o.GetRef(), o.GetSource())
		var spec any
		switch v := o.(type) {
		case *ClusterServiceBroker:
			spec = v.Spec
		case *ServiceBroker:
			spec = v.Spec
		case *ServiceInstance:
			spec = v.Spec
		case *ServiceBinding:
			spec = v.Spec
		}
		fmt.Fprintf(&b, "  spec: %s\n", cj(spec))
		if p := DeletionPolicy(o); p != DeletionPolicyDelete {
			fmt.Fprintf(&b, "  deletionPolicy: %s\n", p)
		}
	}
	b.WriteString("diagnostics:\n")
	renderDiags(&b, ds)
	return []byte(b.String())
}

// TestGoldenGood loads the good repos (upstream walkthrough style manifests,
// objects exported from a cluster with status, mixed repos) and checks that
// they load without error and decode as recorded.
func TestGoldenGood(t *testing.T) {
	dir := filepath.Join(goldenRoot, "good")
	for name, p := range fixtures(t, dir) {
		t.Run(name, func(t *testing.T) {
			set, ds := Load(caseFS(t, p), "")
			if ds.HasErrors() {
				t.Errorf("good repo has errors:\n%v", ds.Err())
			}
			checkGolden(t, filepath.Join(dir, name+".golden"), renderSet(t, set, ds))
		})
	}
}

// TestGoldenErrors loads one fixture per error kind and compares every
// diagnostic (file:line: field: message) with the golden file.
func TestGoldenErrors(t *testing.T) {
	dir := filepath.Join(goldenRoot, "errors")
	for name, p := range fixtures(t, dir) {
		t.Run(name, func(t *testing.T) {
			_, ds := Load(caseFS(t, p), "")
			if !ds.HasErrors() {
				t.Errorf("fixture %s produced no error", name)
			}
			var b strings.Builder
			renderDiags(&b, ds)
			checkGolden(t, filepath.Join(dir, name+".golden"), []byte(b.String()))
		})
	}
}

// TestGoldenCatalog validates repos against the catalogs cached in their
// .osbgit/catalog (and existing instances from .osbgit/status).
func TestGoldenCatalog(t *testing.T) {
	dir := filepath.Join(goldenRoot, "catalog")
	for name, p := range fixtures(t, dir) {
		t.Run(name, func(t *testing.T) {
			fsys := caseFS(t, p)
			set, ds := Load(fsys, "")
			recs, err := LoadRecords(fsys)
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, ValidateWithCatalogs(set, recs.CatalogsByKey(), WithRecords(recs))...)
			ds.Sort()
			var b strings.Builder
			renderDiags(&b, ds)
			checkGolden(t, filepath.Join(dir, name+".golden"), []byte(b.String()))
		})
	}
}

// TestGoldenFilesHaveFixtures catches golden files left behind by a removed
// fixture.
func TestGoldenFilesHaveFixtures(t *testing.T) {
	for _, sub := range []string{"good", "errors", "catalog"} {
		dir := filepath.Join(goldenRoot, sub)
		fx := fixtures(t, dir)
		goldens, _ := filepath.Glob(filepath.Join(dir, "*.golden"))
		var orphans []string
		for _, g := range goldens {
			if _, ok := fx[strings.TrimSuffix(filepath.Base(g), ".golden")]; !ok {
				orphans = append(orphans, g)
			}
		}
		sort.Strings(orphans)
		if len(orphans) > 0 {
			t.Errorf("golden files without fixture: %v", orphans)
		}
	}
}
