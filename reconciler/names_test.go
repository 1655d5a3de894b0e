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
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"team-b/prod-db.yaml": teamInstanceYAML("team-b", "prod-db", "")}
	})
	f.sync(f.reconciler(Options{}))
	victim := teamRecordPath("team-b", "prod-db")
	before := f.repo.Show(victim)
	if before == "" {
		t.Fatal("team-b's prod-db has no record after the first pass")
	}
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
