package main

import (
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
)

// TestClusterIDCLI: a repository's only deployment gets a cluster ID with
// `osbgit records move`; afterwards status, diff, trust and sync with
// --cluster-id read the cluster's records (verified, nothing to do, no
// provision), while status without it reports its records ref gone. An
// ID that could leave .osbgit/clusters/ is refused.
func TestClusterIDCLI(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	if code, out, errs := f.run(t, "sync"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	const db = "apps/serviceinstance/db.yaml"
	code, out, errs := f.run(t, "records", "move", "--cluster-id", "cli", "--dry-run")
	if code != exitOK || !strings.Contains(out, "moved .osbgit/status/"+db) || !strings.Contains(out, "dry run") {
		t.Fatalf("records move --dry-run: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := f.run(t, "records", "move", "--cluster-id", "cli"); code != exitOK || !strings.Contains(out, "--cluster-id cli") {
		t.Fatalf("records move: exit %d\n%s\n%s", code, out, errs)
	}
	if f.repo.Show(".osbgit/clusters/cli/status/"+db) == "" || f.repo.Show(".osbgit/status/"+db) != "" {
		t.Fatalf("after the move .osbgit/ holds %v", f.repo.Files(".osbgit"))
	}
	code, out, errs = f.run(t, "status", "--cluster-id", "cli")
	if code != exitOK || !strings.Contains(out, gitrepo.ClusterRecordsRef("cli", "main")) || !strings.Contains(out, "apps/db") {
		t.Fatalf("status --cluster-id cli: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := f.run(t, "status"); code != exitChanges || !strings.Contains(out, gitrepo.RecordsRef("main")) {
		t.Fatalf("status without the cluster ID: exit %d, want %d naming the deleted records ref\n%s\n%s", code, exitChanges, out, errs)
	}
	f.broker.ResetCalls()
	if code, out, errs := f.run(t, "diff", "--cluster-id", "cli"); code != exitOK {
		t.Fatalf("diff --cluster-id cli: exit %d, want in sync\n%s\n%s", code, out, errs)
	}
	if code, out, errs := f.run(t, "trust", "--cluster-id", "cli", "--dry-run"); code != exitOK || !strings.Contains(out, "Would adopt 0 file(s)") {
		t.Fatalf("trust --cluster-id cli --dry-run: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := f.run(t, "sync", "--cluster-id", "cli"); code != exitOK {
		t.Fatalf("sync --cluster-id cli: exit %d\n%s\n%s", code, out, errs)
	}
	if n := f.broker.Count(osbtest.EndpointProvision); n != 0 || len(f.broker.Instances()) != 1 {
		t.Fatalf("after the move: %d provisions, %d instances; want none and the one", n, len(f.broker.Instances()))
	}
	for _, id := range []string{"../status", "CLI", "a/b"} {
		if code, _, errs := f.run(t, "status", "--cluster-id", id); code != exitError || !strings.Contains(errs, "cluster ID") {
			t.Errorf("status --cluster-id %q: exit %d, want %d\n%s", id, code, exitError, errs)
		}
	}
	if got := gittest.Git(t, f.repo.Bare, "for-each-ref", "--format=%(refname)", "refs/osbgit/"); got != gitrepo.ClusterRecordsRef("cli", "main") {
		t.Fatalf("records refs after the move: %q", got)
	}
}
