package reconciler

import (
	"context"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
)

// Issue 16, attacks 1 and 5: a committer with push rights to one team's
// directory must not reach another team's records or instances through a
// name or an externalID.

// teamInstanceYAML is an instance of the small db plan in namespace ns;
// name is quoted, so it may hold anything.
func teamInstanceYAML(ns, name, extra string) string {
	return fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata:
  name: %q
  namespace: %s
spec:
  clusterServiceClassExternalName: osbtest-db
  clusterServicePlanExternalName: small
%s`, name, ns, extra)
}

// teamRecordPath is where the record of instance ns/name lives, spelled
// out rather than computed so the tests do not trust the code under test.
func teamRecordPath(ns, name string) string {
	return ".osbgit/status/" + ns + "/serviceinstance/" + name + ".yaml"
}

// newTeamBFixture is a repo whose first pass provisioned team-b's
// prod-db; it returns prod-db's record.
func newTeamBFixture(t *testing.T) (*fixture, *manifest.StatusRecord) {
	t.Helper()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"team-b/prod-db.yaml": teamInstanceYAML("team-b", "prod-db", "")}
	})
	f.sync(f.reconciler(Options{}))
	rec := teamRecord(t, f, "team-b", "prod-db")
	if rec == nil || rec.ExternalID == "" {
		t.Fatalf("team-b's prod-db record after the first pass: %+v", rec)
	}
	return f, rec
}

// teamRecord reads the record of instance ns/name at main (nil if none).
func teamRecord(t *testing.T, f *fixture, ns, name string) *manifest.StatusRecord {
	t.Helper()
	return recordIn(t, f, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: ns, Name: name})
}

// outcomeOf returns the outcome of ref in res, failing the test without one.
func outcomeOf(t *testing.T, res *SyncResult, ref manifest.Ref) string {
	t.Helper()
	if res.Exec == nil {
		t.Fatalf("no execution result for %s", ref)
	}
	for _, o := range res.Exec.Outcomes {
		if o.Ref == ref {
			msg := o.Summary
			if o.Err != nil {
				msg += " | " + o.Err.Error()
			}
			return string(o.Status) + ": " + msg
		}
	}
	t.Fatalf("no outcome for %s in %+v", ref, res.Exec.Outcomes)
	return ""
}

// assertRecordFilesFit: every file osbgit committed under .osbgit/ sits in
// its own <namespace>/<kind>/ (or catalog) directory and has a file name
// that fits in 255 bytes, so the repository stays clonable.
func assertRecordFilesFit(t *testing.T, f *fixture) {
	t.Helper()
	for _, p := range f.repo.Files(manifest.RecordDir) {
		if len(path.Base(p)) > 255 {
			t.Errorf("record file name of %d bytes: %.80s…", len(path.Base(p)), p)
		}
		parts := strings.Split(p, "/")
		switch {
		case len(parts) == 5 && parts[1] == "status":
		case (len(parts) == 3 || len(parts) == 4) && parts[1] == "catalog":
		default:
			t.Errorf("unexpected record file %s", p)
		}
	}
}

// TestClimbingNameDoesNotTouchAnotherTeamsRecord: an instance in team-a
// named "../../team-b/serviceinstance/prod-db" fails validation and gets
// no record; team-b's record is left byte for byte, and team-b's prod-db
// is not provisioned again over the following passes.
func TestClimbingNameDoesNotTouchAnotherTeamsRecord(t *testing.T) {
	t.Parallel()
	f, _ := newTeamBFixture(t)
	victim := teamRecordPath("team-b", "prod-db")
	before := f.repo.Show(victim)
	climber := "../../team-b/serviceinstance/prod-db"
	f.repo.Push("team-a adds an instance", map[string]string{"team-a/evil.yaml": teamInstanceYAML("team-a", climber, "")}, nil)

	climberRef := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "team-a", Name: climber}
	for pass := 2; pass <= 3; pass++ {
		res := f.sync(f.reconciler(Options{}))
		if got := outcomeOf(t, res, climberRef); !strings.Contains(got, "team-a/evil.yaml:4: metadata.name") {
			t.Errorf("pass %d: climbing instance's outcome %q does not name team-a/evil.yaml:4: metadata.name", pass, got)
		}
		if after := f.repo.Show(victim); after != before {
			t.Fatalf("pass %d rewrote team-b's record:\n%s\nwas:\n%s", pass, after, before)
		}
		if ins, _ := brokerState(f.broker); len(ins) != 1 {
			t.Fatalf("pass %d: broker holds %d instances, want team-b's prod-db only: %v", pass, len(ins), ins)
		}
		if n := f.broker.Count(osbtest.EndpointProvision); n != 1 {
			t.Fatalf("pass %d: %d provision calls in all, want the one of the first pass", pass, n)
		}
	}
	for _, p := range f.repo.Files(".osbgit/status/team-a") {
		t.Errorf("record written for the invalid team-a instance: %s", p)
	}
	assertRecordFilesFit(t, f)
}

// TestBadNamesDoNotBlockTheStatusCommit: invalid names that once built
// paths outside .osbgit/ (which made the whole status push fail) or file
// names over 255 bytes (which made the repository unclonable) are refused
// at validation; the valid instance beside them is provisioned and its
// record committed in the same pass.
func TestBadNamesDoNotBlockTheStatusCommit(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"escapes .osbgit":   "../../../../escaped",
		"escapes the repo":  "../../../../../../etc/passwd",
		"absolute":          "/abs",
		"300 characters":    strings.Repeat("a", 300),
		"253 characters":    strings.Repeat("b", 253),
		"dots and slashes":  "x/../../y",
		"uppercase":         "Prod-DB",
		"empty after clean": "..",
	}
	files := map[string]string{}
	i := 0
	for _, name := range bad {
		i++
		files[fmt.Sprintf("team-a/bad-%d.yaml", i)] = teamInstanceYAML("team-a", name, "")
	}
	f := newFixture(t, func(url string) map[string]string {
		files["osbgit.yaml"] = osbgitYAML
		files["brokers/b.yaml"] = brokerYAML(url)
		files["team-b/db.yaml"] = teamInstanceYAML("team-b", "db", "")
		return files
	})
	r := f.reconciler(Options{})
	res, err := r.Sync(context.Background())
	if err != nil {
		t.Fatalf("one bad name failed the whole pass: %v", err)
	}
	if res.Commit == "" {
		t.Fatal("no status commit")
	}
	if f.repo.Show(teamRecordPath("team-b", "db")) == "" {
		t.Fatalf("team-b's db has no record; records: %v", f.repo.Files(manifest.RecordDir))
	}
	if ins, _ := brokerState(f.broker); len(ins) != 1 {
		t.Fatalf("broker holds %v, want team-b's db only", ins)
	}
	for what, name := range bad {
		ref := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "team-a", Name: name}
		if got := outcomeOf(t, res, ref); !strings.Contains(got, "metadata.name") {
			t.Errorf("%s: outcome %q does not name metadata.name", what, got)
		}
	}
	if got := f.repo.Files(".osbgit/status/team-a"); len(got) != 0 {
		t.Errorf("records written for invalid names: %v", got)
	}
	assertRecordFilesFit(t, f)
	// The repository stays clonable.
	git(t, t.TempDir(), "clone", "-q", f.repo.Bare, "c")
}

// TestRecordPathDecidesWhoseRecordItIs: a record file whose ref was edited
// in Git to name another resource is still the record of the resource its
// path names: no new instance for either, nothing written at the other
// resource's path, and the pass goes on (before: the whole pass failed).
func TestRecordPathDecidesWhoseRecordItIs(t *testing.T) {
	t.Parallel()
	f, victim := newTeamBFixture(t)
	p := teamRecordPath("team-b", "prod-db")
	edited := strings.Replace(f.repo.Show(p), `"namespace": "team-b",
    "name": "prod-db"`, `"namespace": "team-c",
    "name": "other"`, 1)
	if edited == f.repo.Show(p) {
		t.Fatalf("ref not found in the record:\n%s", edited)
	}
	f.repo.Push("edit a record's ref", map[string]string{p: edited}, nil)
	f.broker.ResetCalls()
	res := f.sync(f.reconciler(Options{}))
	owner := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "team-b", Name: "prod-db"}
	if got := outcomeOf(t, res, owner); !strings.HasPrefix(got, "unchanged") {
		t.Errorf("team-b's prod-db: %s", got)
	}
	if n := len(f.broker.MutatingCalls()); n != 0 {
		t.Fatalf("%d mutating calls: %+v", n, f.broker.MutatingCalls())
	}
	if ins, _ := brokerState(f.broker); len(ins) != 1 {
		t.Fatalf("broker holds %v, want %s only", ins, victim.ExternalID)
	}
	if got := f.repo.Files(".osbgit/status/team-c"); len(got) != 0 {
		t.Fatalf("records written at the edited ref's path: %v", got)
	}
}
