package manifest

import "testing"

// TestRecordRootOwnsOnlyItsPaths: each root builds and takes back only
// paths under itself, so no deployment reads another's records as its own.
func TestRecordRootOwnsOnlyItsPaths(t *testing.T) {
	db := Ref{Kind: KindServiceInstance, Namespace: "apps", Name: "db"}
	broker := Ref{Kind: KindClusterServiceBroker, Name: "b"}
	eu := RecordRoot(".osbgit/clusters/eu")
	cases := []struct {
		root RecordRoot
		path string
		want Ref // zero: not this root's record
	}{
		{LegacyRecordRoot, ".osbgit/status/apps/serviceinstance/db.yaml", db},
		{LegacyRecordRoot, ".osbgit/catalog/b.yaml", broker},
		{LegacyRecordRoot, ".osbgit/clusters/eu/status/apps/serviceinstance/db.yaml", Ref{}},
		{LegacyRecordRoot, ".osbgit/clusters/eu/catalog/b.yaml", Ref{}},
		{eu, ".osbgit/clusters/eu/status/apps/serviceinstance/db.yaml", db},
		{eu, ".osbgit/clusters/eu/catalog/b.yaml", broker},
		{eu, ".osbgit/status/apps/serviceinstance/db.yaml", Ref{}},
		{eu, ".osbgit/clusters/us/status/apps/serviceinstance/db.yaml", Ref{}},
		{eu, ".osbgit/clusters/eu/../us/status/apps/serviceinstance/db.yaml", Ref{}},
		{eu, ".osbgit/clusters/eu/status/apps/serviceinstance/../db.yaml", Ref{}},
	}
	for _, tc := range cases {
		ref, _, ok := tc.root.RecordRefOf(tc.path)
		if ok != (tc.want != Ref{}) || ref != tc.want {
			t.Errorf("%s.RecordRefOf(%s) = %v, %v; want %v", tc.root, tc.path, ref, ok, tc.want)
		}
		if !ok {
			continue
		}
		var back string
		if tc.want.Kind == KindServiceInstance {
			back, _ = tc.root.StatusPath(ref)
		} else {
			back, _ = tc.root.CatalogPath(ref)
		}
		if back != tc.path {
			t.Errorf("%s: path of %v is %s, want %s", tc.root, ref, back, tc.path)
		}
	}
	files, warnings := eu.RecordPaths([]string{
		".osbgit/status/apps/serviceinstance/db.yaml",
		".osbgit/clusters/us/status/apps/serviceinstance/db.yaml",
		".osbgit/clusters/eu/status/apps/serviceinstance/db.yaml",
	})
	if len(files) != 1 || files[0] != ".osbgit/clusters/eu/status/apps/serviceinstance/db.yaml" || len(warnings) != 0 {
		t.Fatalf("eu's record paths: %v, warnings %v", files, warnings)
	}
}
