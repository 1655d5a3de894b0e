package gitrepo_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"

	"github.com/osbgit/osbgit/manifest/gitrepo"
)

// A pass: one ref lookup when nothing changed; otherwise fetch, read the
// manifests, push a write-ahead record (re-plan on conflict), then status.
func Example() {
	ctx := context.Background()
	lastObserved := "…" // from the previous pass
	repo, err := gitrepo.Open(ctx, gitrepo.Options{
		URL: "https://git.example.com/platform/services.git", Branch: "main",
		Auth: gitrepo.Auth{Username: "x-access-token", Token: "…"},
	}, gitrepo.WithCacheDir("/var/cache/osbgit"), gitrepo.WithAuthor("osbgit", "osbgit@example.com"))
	if err != nil {
		log.Fatal(err)
	}
	defer repo.Close()
	if head, err := repo.RemoteHead(ctx, ""); err == nil && head == lastObserved {
		return // nothing changed: the pass ends after one ls-remote
	}
	fr, err := repo.Fetch(ctx)
	if err != nil {
		log.Fatal(err)
	}
	manifests, _ := repo.TreeFS(fr.Head) // hand to the manifest loader
	_ = fs.WalkDir(manifests, ".", func(string, fs.DirEntry, error) error { return nil })
	intent, err := repo.WriteIntent(ctx, gitrepo.ChangeSet{ExpectedHead: fr.StatusHead,
		Message: gitrepo.EnsureSkipCI("osbgit: intent, 1 create"),
		Files:   map[string][]byte{".osbgit/status/default/ServiceInstance/db.yaml": []byte("externalID: 9f1c…\n")}})
	if errors.Is(err, gitrepo.ErrConflict) {
		return // someone else moved the branch: fetch and re-plan; no broker was called
	}
	// … broker calls …
	status, err := repo.WriteStatus(ctx, gitrepo.ChangeSet{Message: gitrepo.EnsureSkipCI("osbgit: 1 created"),
		Files: map[string][]byte{".osbgit/status/default/ServiceInstance/db.yaml": []byte("externalID: 9f1c…\nready: true\n")}})
	fmt.Println(intent.Commit, status.Commit, err) // record status.Commit as observed
}
