package main

import (
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
)

// TestTrustCLI: with osbgit's records ref deleted (or never written, as
// after an upgrade), sync refuses and names `osbgit trust`; trust
// --dry-run lists the files and writes nothing; trust adopts them and the
// next sync goes on with nothing to do at the broker.
func TestTrustCLI(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	if code, out, errs := f.run(t, "sync"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	gittest.Git(t, f.repo.Bare, "update-ref", "-d", gitrepo.RecordsRef("main"))
	f.repo.Push("a change", map[string]string{"apps/db.yaml": dbManifest("large")}, nil)
	if code, _, errs := f.run(t, "sync"); code != exitError || !strings.Contains(errs, "osbgit trust") {
		t.Fatalf("sync over a deleted records ref: exit %d, want %d naming osbgit trust\n%s", code, exitError, errs)
	}
	code, out, errs := f.run(t, "trust", "--dry-run")
	if code != exitOK || !strings.Contains(out, "added    .osbgit/status/apps/serviceinstance/db.yaml") || !strings.Contains(out, "dry run") {
		t.Fatalf("trust --dry-run: exit %d\n%s\n%s", code, out, errs)
	}
	if got := gittest.Git(t, f.repo.Bare, "for-each-ref", "refs/osbgit/"); got != "" {
		t.Fatalf("dry run wrote %s", got)
	}
	if code, out, errs := f.run(t, "trust"); code != exitOK || !strings.Contains(out, "Adopted") {
		t.Fatalf("trust: exit %d\n%s\n%s", code, out, errs)
	}
	f.broker.ResetCalls()
	if code, out, errs := f.run(t, "sync"); code != exitOK {
		t.Fatalf("sync after trust: exit %d\n%s\n%s", code, out, errs)
	}
	if ins := f.broker.Instances(); len(ins) != 1 {
		t.Errorf("broker holds %d instances after trust, want the one", len(ins))
	}
}
