package gitrepo_test

import (
	"context"
	"testing"

	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
)

// TestWriteAfterGitPackedObjects: git may pack and prune a local
// repository's loose objects behind osbgit's back (the background
// "gc --auto" a receive-pack triggers, or a user's git gc); the next write
// must still find its base commit.
func TestWriteAfterGitPackedObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := gittest.New(t, map[string]string{"a.yaml": "a: 1\n"})
	r, err := gitrepo.Open(ctx, gitrepo.Options{URL: repo.Bare, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	for i, content := range []string{"one\n", "two\n", "three\n"} {
		if _, err := r.WriteStatus(ctx, gitrepo.ChangeSet{Message: "status [skip ci]",
			Files: map[string][]byte{".osbgit/status/x.yaml": []byte(content)}}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		// Pack everything and drop the loose objects, as gc does.
		gittest.Git(t, repo.Bare, "repack", "-a", "-d", "-q")
		gittest.Git(t, repo.Bare, "prune-packed")
	}
	if got := repo.Show(".osbgit/status/x.yaml"); got != "three\n" {
		t.Fatalf("status file %q", got)
	}
}
