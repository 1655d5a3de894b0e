package gitrepo

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestDetachedWorkingCopy: a CI checkout of a pull request has HEAD
// detached. Given the trusted branch (or told to trust the default one),
// it is read as checked out, against the trusted branch's head; with
// neither, the error says to give a branch.
func TestDetachedWorkingCopy(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	work := filepath.Join(t.TempDir(), "pr")
	runGit(t, tr.root, "clone", "-q", tr.bare, work)
	runGit(t, work, "checkout", "-q", "--detach")
	runGit(t, work, "-c", "user.name=dev", "-c", "user.email=dev@example.com", "commit", "-q", "--allow-empty", "-m", "pr change")
	prHead := runGit(t, work, "rev-parse", "HEAD")

	for _, o := range []Options{{URL: work, TrustedBranch: "main"}, {URL: work, TrustDefaultBranch: true}} {
		r, err := Open(context.Background(), o)
		if err != nil {
			t.Fatalf("Open %+v: %v", o, err)
		}
		res, err := r.Fetch(context.Background())
		r.Close()
		if err != nil || res.Head != prHead || res.TrustedHead != tr.head("main") || r.Branch() != DetachedHead {
			t.Fatalf("Fetch %+v = %+v, %v; want head %s (the checkout), trusted head %s", o, res, err, prHead, tr.head("main"))
		}
	}
	if _, err := Open(context.Background(), Options{URL: work}); !errors.Is(err, ErrBranchNotFound) {
		t.Fatalf("Open without a trusted branch: %v, want ErrBranchNotFound", err)
	}
}
