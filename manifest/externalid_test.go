package manifest

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestExternalIDClaims: a spec.externalID that another resource's record
// holds is refused on both sides, each message naming the manifest's
// file:line and the other's record; an ID no record holds, or the
// resource's own, is fine (issue 16, attack 5).
func TestExternalIDClaims(t *testing.T) {
	instance := func(ns, name, extra string) string {
		return "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
			"\nspec:\n  clusterServiceClassExternalName: c\n  clusterServicePlanExternalName: p\n" + extra
	}
	binding := func(ns, name, extra string) string {
		return "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceBinding\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
			"\nspec:\n  instanceRef:\n    name: db\n" + extra
	}
	rec := func(kind Kind, ns, name, id, predecessor string) *StatusRecord {
		r := NewStatusRecord(Ref{Kind: kind, Namespace: ns, Name: name})
		r.ExternalID, r.PredecessorExternalID = id, predecessor
		return r
	}
	const (
		prodDBRecord = ".osbgit/status/team-b/serviceinstance/prod-db.yaml"
		claim        = "team-a/thief.yaml:9"
	)
	tests := []struct {
		name    string
		files   map[string]string
		records []*StatusRecord
		want    []string // Diagnostic.String() prefixes and fragments, in order
	}{
		{
			name: "instance held by another instance's record",
			files: map[string]string{
				"team-a/thief.yaml":   instance("team-a", "thief", "  externalID: id-1\n"),
				"team-b/prod-db.yaml": instance("team-b", "prod-db", ""),
			},
			records: []*StatusRecord{rec(KindServiceInstance, "team-b", "prod-db", "id-1", "")},
			want: []string{
				claim + ": spec.externalID: external ID \"id-1\" is held by the record of ServiceInstance team-b/prod-db (" + prodDBRecord + ")",
				"team-b/prod-db.yaml:4: metadata.name: its external ID \"id-1\" (record " + prodDBRecord + ") is claimed by ServiceInstance team-a/thief (" + claim + ")",
			},
		},
		{
			name:    "holder's manifest removed",
			files:   map[string]string{"team-a/thief.yaml": instance("team-a", "thief", "  externalID: id-1\n")},
			records: []*StatusRecord{rec(KindServiceInstance, "team-b", "prod-db", "id-1", "")},
			want: []string{
				prodDBRecord + ": externalID: external ID \"id-1\" of this record (manifest removed) is claimed by ServiceInstance team-a/thief (" + claim + ")",
				claim + ": spec.externalID: external ID \"id-1\" is held by the record of ServiceInstance team-b/prod-db",
			},
		},
		{
			name:    "its own record",
			files:   map[string]string{"team-a/db.yaml": instance("team-a", "db", "  externalID: id-1\n")},
			records: []*StatusRecord{rec(KindServiceInstance, "team-a", "db", "id-1", "")},
		},
		{
			name:    "an ID no record holds (adoption)",
			files:   map[string]string{"team-a/db.yaml": instance("team-a", "db", "  externalID: made-by-hand\n")},
			records: []*StatusRecord{rec(KindServiceInstance, "team-b", "prod-db", "id-1", "")},
		},
		{
			name:    "instances and bindings are separate ID spaces",
			files:   map[string]string{"team-a/b.yaml": binding("team-a", "b", "  externalID: id-1\n")},
			records: []*StatusRecord{rec(KindServiceInstance, "team-b", "prod-db", "id-1", "")},
		},
		{
			name:    "a binding's predecessor is held too",
			files:   map[string]string{"team-a/b.yaml": binding("team-a", "b", "  externalID: old-1\n")},
			records: []*StatusRecord{rec(KindServiceBinding, "team-b", "creds", "new-1", "old-1")},
			want: []string{
				".osbgit/status/team-b/servicebinding/creds.yaml: externalID: external ID \"old-1\" of this record (manifest removed) is claimed by ServiceBinding team-a/b (team-a/b.yaml:9)",
				"team-a/b.yaml:9: spec.externalID: external ID \"old-1\" is held by the record of ServiceBinding team-b/creds",
			},
		},
		{
			name:  "two records hold one ID",
			files: map[string]string{"team-b/prod-db.yaml": instance("team-b", "prod-db", "")},
			records: []*StatusRecord{
				rec(KindServiceInstance, "team-b", "prod-db", "id-1", ""),
				rec(KindServiceInstance, "team-a", "copy", "id-1", ""),
			},
			want: []string{
				"team-b/prod-db.yaml:4: metadata.name: its record (" + prodDBRecord + ") holds external ID \"id-1\", which the record of ServiceInstance team-a/copy (.osbgit/status/team-a/serviceinstance/copy.yaml) holds too",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for p, c := range tt.files {
				fsys[p] = &fstest.MapFile{Data: []byte(c)}
			}
			set, _ := Load(fsys, "")
			recs := &Records{Status: map[Ref]*StatusRecord{}}
			for _, r := range tt.records {
				recs.Status[r.Ref] = r
			}
			var got []string
			for _, d := range ValidateWithCatalogs(set, Catalogs{}, WithRecords(recs)) {
				if d.Severity == SeverityError && strings.Contains(d.Message, "external ID") {
					got = append(got, d.String())
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("diagnostic %d:\n got %s\nwant %s…", i, got[i], w)
				}
			}
			// Without records nothing is claimed.
			for _, d := range ValidateWithCatalogs(set, Catalogs{}) {
				if strings.Contains(d.Message, "is held by the record") {
					t.Errorf("claim reported without records: %v", d)
				}
			}
		})
	}
}
