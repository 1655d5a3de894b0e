package manifest

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"
)

// pathOf is r's record path; the test fails when r cannot have one.
func pathOf(t testing.TB, r Record) string {
	t.Helper()
	p, err := r.RecordPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRecordPathsRefuseInvalidRefs: a ref validation would refuse has no
// record path at all, so no caller can write outside the ref's own
// <namespace>/<kind>/ directory (issue 16: a name that climbs into another
// team's records, escapes .osbgit/, or makes a file name over 255 bytes).
func TestRecordPathsRefuseInvalidRefs(t *testing.T) {
	inst := func(ns, name string) Ref { return Ref{Kind: KindServiceInstance, Namespace: ns, Name: name} }
	tests := []struct {
		name string
		ref  Ref
	}{
		{"climbs into another namespace", inst("team-a", "../../team-b/serviceinstance/prod-db")},
		{"escapes .osbgit", inst("team-a", "../../../../x")},
		{"escapes the repository", inst("team-a", "../../../../../../etc/passwd")},
		{"absolute", inst("team-a", "/abs")},
		{"slash", inst("team-a", "a/b")},
		{"dot dot", inst("team-a", "..")},
		{"empty name", inst("team-a", "")},
		{"251 characters", inst("team-a", strings.Repeat("a", 251))},
		{"253 characters (Kubernetes' limit)", inst("team-a", strings.Repeat("a", 253))},
		{"300 characters", inst("team-a", strings.Repeat("a", 300))},
		{"uppercase", inst("team-a", "DB")},
		{"NUL", inst("team-a", "db\x00")},
		{"namespace climbs", inst("../x", "db")},
		{"namespace with a dot", inst("a.b", "db")},
		{"cluster scope directory as namespace", inst(ClusterScopeDir, "db")},
		{"namespaced kind without namespace", inst("", "db")},
		{"cluster-scoped kind with a namespace", Ref{Kind: KindClusterServiceBroker, Namespace: "team-a", Name: "b"}},
		{"kind without records", Ref{Kind: KindConfig, Name: "osbgit"}},
		{"unknown kind", Ref{Kind: "../x", Namespace: "team-a", Name: "db"}},
		{"lowercase kind", Ref{Kind: "serviceinstance", Namespace: "team-a", Name: "db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := StatusPath(tt.ref); err == nil || !errors.Is(err, ErrNoRecordPath) {
				t.Errorf("StatusPath = %q, %v; want ErrNoRecordPath", p, err)
			}
			broker := tt.ref
			if broker.Kind == KindServiceInstance {
				broker.Kind = KindServiceBroker
			}
			if p, err := CatalogPath(broker); err == nil {
				t.Errorf("CatalogPath(%v) = %q", broker, p)
			}
		})
	}
	if p, err := CatalogPath(inst("team-a", "db")); err == nil {
		t.Errorf("CatalogPath of an instance = %q", p)
	}
	// The longest name that works is MaxNameLength, and its file fits.
	long := inst("team-a", strings.Repeat("a", MaxNameLength))
	if p, err := StatusPath(long); err != nil || len(path.Base(p)) != 255 {
		t.Errorf("StatusPath of a %d-character name = %q, %v", MaxNameLength, p, err)
	}
}

// TestRecordRefOf: RecordRefOf inverts StatusPath and CatalogPath and
// refuses every path they never build.
func TestRecordRefOf(t *testing.T) {
	for _, ref := range []Ref{
		{Kind: KindServiceInstance, Namespace: "team-a", Name: "db"},
		{Kind: KindServiceBinding, Namespace: "team-a", Name: "db.bind-1"},
		{Kind: KindServiceBroker, Namespace: "team-a", Name: "b"},
		{Kind: KindClusterServiceBroker, Name: "b"},
	} {
		p, err := StatusPath(ref)
		if err != nil {
			t.Fatal(err)
		}
		if got, status, ok := RecordRefOf(p); !ok || !status || got != ref {
			t.Errorf("RecordRefOf(%q) = %v, %v, %v; want %v", p, got, status, ok, ref)
		}
		if ref.Kind == KindServiceBroker || ref.Kind == KindClusterServiceBroker {
			p, _ := CatalogPath(ref)
			if got, status, ok := RecordRefOf(p); !ok || status || got != ref {
				t.Errorf("RecordRefOf(%q) = %v, %v, %v; want %v", p, got, status, ok, ref)
			}
		}
	}
	for _, p := range []string{
		".osbgit/status/team-a/serviceinstance/db.yml",
		".osbgit/status/team-a/serviceinstance/DB.yaml",
		".osbgit/status/team-a/serviceinstance/.yaml",
		".osbgit/status/team-a/config/db.yaml",
		".osbgit/status/_cluster/serviceinstance/db.yaml",
		".osbgit/status/team-a/clusterservicebroker/b.yaml",
		".osbgit/status/team-a/serviceinstance/x/db.yaml",
		".osbgit/status/team-a/db.yaml",
		".osbgit/status/team-a/serviceinstance/../db.yaml",
		".osbgit/status//serviceinstance/db.yaml",
		".osbgit/catalog/team-a/b/c.yaml",
		".osbgit/catalog/_cluster/b.yaml",
		".osbgit/catalog/" + strings.Repeat("b", 251) + ".yaml",
		"status/team-a/serviceinstance/db.yaml",
		".osbgit/other/team-a/serviceinstance/db.yaml",
	} {
		if ref, _, ok := RecordRefOf(p); ok {
			t.Errorf("RecordRefOf(%q) = %v, want not ok", p, ref)
		}
	}
}

// TestNameLengthRefusedAtValidation: Kubernetes accepts names up to 253
// characters, but <name>.yaml must fit in 255 bytes: 251 to 253 are refused
// with file:line and field, 250 works.
func TestNameLengthRefusedAtValidation(t *testing.T) {
	for n := 249; n <= 254; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			name := strings.Repeat("a", n-1) + "z"
			doc := strings.Replace(instHead, "name: db", "name: "+name+"\n  namespace: apps", 1)
			_, diags := Load(fstest.MapFS{"apps/db.yaml": {Data: []byte(doc)}}, "")
			var got []string
			for _, d := range diags.Errors() {
				if d.Field == "metadata.name" {
					got = append(got, d.String())
				}
			}
			switch {
			case n <= MaxNameLength && len(got) > 0:
				t.Errorf("a %d-character name is refused: %q", n, got)
			case n > MaxNameLength && (len(got) != 1 || !strings.HasPrefix(got[0], "apps/db.yaml:4: metadata.name: invalid name") ||
				!strings.Contains(got[0], "no more than 250 characters") || strings.Contains(got[0], "253")):
				t.Errorf("a %d-character name: got %q", n, got)
			}
		})
	}
}

// TestLoadRecordsPathWins: a record file's path decides whose record it
// is. The record an older osbgit wrote through a climbing name onto team-b's
// path is team-b's (never the climbing ref's, which would make osbgit see
// team-b's instance as unrecorded and provision it again); files at paths
// osbgit never writes are ignored; a record of the wrong kind for its
// directory is an error.
func TestLoadRecordsPathWins(t *testing.T) {
	climber := NewStatusRecord(Ref{Kind: KindServiceInstance, Namespace: "team-a", Name: "../../team-b/serviceinstance/prod-db"})
	climber.Error = &RecordError{Message: "invalid name"}
	climberBytes, err := MarshalRecord(climber)
	if err != nil {
		t.Fatal(err)
	}
	good := NewStatusRecord(Ref{Kind: KindServiceInstance, Namespace: "team-b", Name: "db"})
	good.ExternalID = "id-1"
	goodBytes, _ := MarshalRecord(good)
	cat, _ := NewCatalogRecord(Ref{Kind: KindClusterServiceBroker, Name: "b"}, sampleCatalog(), t0, "", 0)
	catBytes, _ := MarshalRecord(cat)
	fsys := fstest.MapFS{
		".osbgit/status/team-b/serviceinstance/prod-db.yaml":                          {Data: climberBytes},
		".osbgit/status/team-b/serviceinstance/db.yaml":                               {Data: goodBytes},
		".osbgit/status/team-a/serviceinstance/Bad.yaml":                              {Data: goodBytes},
		".osbgit/status/team-a/serviceinstance/db.yml":                                {Data: goodBytes},
		".osbgit/status/team-a/serviceinstance/" + strings.Repeat("a", 251) + ".yaml": {Data: goodBytes},
		".osbgit/catalog/b.yaml":                                                      {Data: catBytes},
		".osbgit/catalog/other.yaml":                                                  {Data: catBytes},
		".osbgit/README":                                                              {Data: []byte("not a record")},
	}
	recs, err := LoadRecords(fsys)
	if err != nil {
		t.Fatal(err)
	}
	prodDB := Ref{Kind: KindServiceInstance, Namespace: "team-b", Name: "prod-db"}
	if r := recs.Status[prodDB]; r == nil || r.Ref != prodDB {
		t.Errorf("team-b's prod-db record: %+v", r)
	}
	if r := recs.Status[climber.Ref]; r != nil {
		t.Errorf("the climbing ref has a record: %+v", r)
	}
	if len(recs.Status) != 2 || recs.Status[good.Ref].ExternalID != "id-1" {
		t.Errorf("status records %v", recs.Status)
	}
	other := Ref{Kind: KindClusterServiceBroker, Name: "other"}
	if len(recs.Catalogs) != 2 || recs.Catalogs[other] == nil || recs.Catalogs[other].Broker != other {
		t.Errorf("catalogs %v", recs.Catalogs)
	}
	joined := strings.Join(recs.Warnings, "\n")
	for _, want := range []string{"prod-db.yaml: the record names", "Bad.yaml: ignored", "db.yml: ignored", "aaa.yaml: ignored", "catalog/other.yaml: the record names"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no warning %q in:\n%s", want, joined)
		}
	}
	if len(recs.Warnings) != 5 {
		t.Errorf("%d warnings, want 5:\n%s", len(recs.Warnings), joined)
	}

	// Kinds in the wrong directory are errors, as undecodable records are.
	_, err = LoadRecords(fstest.MapFS{
		".osbgit/status/_cluster/clusterservicebroker/b.yaml": {Data: catBytes},
		".osbgit/catalog/db.yaml":                             {Data: goodBytes},
	})
	if err == nil || !strings.Contains(err.Error(), "b.yaml: kind: want StatusRecord") || !strings.Contains(err.Error(), "db.yaml: kind: want CatalogRecord") {
		t.Errorf("kind in the wrong directory: %v", err)
	}
}

// FuzzStatusPath: for any ref, StatusPath and CatalogPath either refuse it
// or return a clean path that is a file directly in the ref's own
// <namespace>/<kind>/ (or catalog) directory, fits in 255 bytes, and maps
// back to the same ref; and they accept exactly the names validation
// accepts. Seed corpus: testdata/fuzz/FuzzStatusPath.
func FuzzStatusPath(f *testing.F) {
	f.Add("ServiceInstance", "team-a", "db")
	f.Add("ServiceInstance", "team-a", "../../team-b/serviceinstance/prod-db")
	f.Add("ClusterServiceBroker", "", "b")
	f.Fuzz(func(t *testing.T, kind, ns, name string) {
		ref := Ref{Kind: Kind(kind), Namespace: ns, Name: name}
		for _, c := range []struct {
			what  string
			build func(Ref) (string, error)
			dir   string
		}{
			{"status", StatusPath, StatusDir + "/" + nsDir(ns) + "/" + strings.ToLower(kind)},
			{"catalog", CatalogPath, path.Join(CatalogDir, ns)},
		} {
			p, err := c.build(ref)
			if err != nil {
				if !errors.Is(err, ErrNoRecordPath) {
					t.Fatalf("%s path error %v is not ErrNoRecordPath", c.what, err)
				}
				if utf8.ValidString(name) && NameProblem(name) == "" && namespaceOK(ref) && (c.what == "status" && slices.Contains(statusRecordKinds, ref.Kind) || slices.Contains(catalogRecordKinds, ref.Kind)) {
					t.Fatalf("%s path of %v refused although validation accepts it: %v", c.what, ref, err)
				}
				continue
			}
			if NameProblem(name) != "" {
				t.Fatalf("%s path %q built from a name validation refuses", c.what, p)
			}
			if path.Clean(p) != p || path.Dir(p) != c.dir || path.Base(p) != name+".yaml" || len(path.Base(p)) > 255 {
				t.Fatalf("%s path of %v = %q: not a file of %s/", c.what, ref, p, c.dir)
			}
			for _, part := range strings.Split(p, "/") {
				if part == "" || part == "." || part == ".." {
					t.Fatalf("%s path %q has a %q component", c.what, p, part)
				}
			}
			back, status, ok := RecordRefOf(p)
			if !ok || back != ref || status != (c.what == "status") {
				t.Fatalf("RecordRefOf(%q) = %v, %v, %v; want %v", p, back, status, ok, ref)
			}
		}
	})
}

func nsDir(ns string) string {
	if ns == "" {
		return ClusterScopeDir
	}
	return ns
}

// namespaceOK: the namespace is what validation accepts for ref's kind.
func namespaceOK(ref Ref) bool {
	if ref.Kind.ClusterScoped() {
		return ref.Namespace == ""
	}
	return namespaceProblem(ref.Namespace) == ""
}
