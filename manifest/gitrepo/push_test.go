package gitrepo

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage"
)

// countingStorer counts the objects read through a storage.
type countingStorer struct {
	storage.Storer
	reads atomic.Int64
}

func (c *countingStorer) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	c.reads.Add(1)
	return c.Storer.EncodedObject(t, h)
}

// importHistory adds n small commits to main in one git fast-import run.
func importHistory(t testing.TB, bare string, n int) {
	t.Helper()
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("history %d", i)
		fmt.Fprintf(&b, "commit refs/heads/main\ncommitter Test Human <human@example.com> %d +0000\ndata %d\n%s\n", 1700000000+i, len(msg), msg)
		if i == 0 {
			b.WriteString("from refs/heads/main^0\n")
		}
		content := fmt.Sprintf("n: %d\n", i)
		fmt.Fprintf(&b, "M 100644 inline manifests/history/h%03d.yaml\ndata %d\n%s\n", i%50, len(content), content)
	}
	runFastImport(t, bare, &b)
}

// TestPushReadsOnlyWhatItWrites: a write reads the base commit and the trees
// along its paths, and pushes the objects it made, whatever the length of
// the history behind the base. go-git's Remote.PushContext fails this: it
// lists every object reachable from the remote's refs (revlist over the
// whole history and every tree of the head) to decide what to send, so each
// push costs more as osbgit's own commits pile up (go-git issues #1102 and
// #935; measured on a local bare repository with 3,000 commits, a 20-record
// write took 860 ms instead of 160 ms). A local copy with full history
// (WithDepth(0)) shows it; a depth-1 cache grows history the same way
// through incremental fetches and our own pushes.
func TestPushReadsOnlyWhatItWrites(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	const commits = 300
	importHistory(t, tr.bare, commits)
	r := mustOpen(t, Options{URL: "file://" + tr.bare, Branch: "main"}, WithDepth(0))
	mustFetch(t, r)
	counter := &countingStorer{Storer: r.st}
	r.st = counter
	res, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "osbgit: status", Files: map[string][]byte{statusPath: []byte("id: 1\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != tr.head("main") {
		t.Fatalf("pushed %s, remote head %s", res.Commit, tr.head("main"))
	}
	// The base commit, its root tree and the trees along the path.
	t.Logf("a one-record write read %d objects", counter.reads.Load())
	if n := counter.reads.Load(); n > 10 {
		t.Fatalf("a one-record write read %d objects from a repository with %d commits of history, want ≤10", n, commits)
	}
	runGit(t, tr.bare, "fsck", "--strict", "--no-progress")
}
