package gitrepo

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const statusPath = ".osbgit/status/default/ServiceInstance/db.yaml"

func TestEnsureSkipCI(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"osbgit: 1 created", "osbgit: 1 created\n\n[skip ci]\n"},
		{"osbgit: 1 created\n\nbody\n", "osbgit: 1 created\n\nbody\n\n[skip ci]\n"},
		{"osbgit: sync [skip ci]", "osbgit: sync [skip ci]"},
		{"", "[skip ci]\n"},
	}
	for _, tc := range tests {
		if got := EnsureSkipCI(tc.in); got != tc.want {
			t.Errorf("EnsureSkipCI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWriteStatusOnBranch(t *testing.T) {
	t.Parallel()
	tr, gs, o := httpRepo(t, baseFiles)
	r := mustOpen(t, o, WithCacheDir(t.TempDir()), WithAuthor("osbgit-bot", "bot@example.com"))
	base := mustFetch(t, r).Head
	ctx := testCtx(t)

	msg := EnsureSkipCI("osbgit: 1 created, 0 updated")
	res, err := r.WriteStatus(ctx, ChangeSet{Message: msg, Files: map[string][]byte{
		statusPath:                 []byte("externalID: 1234\n"),
		".osbgit/catalog/b1.yaml":  []byte("services: []\n"),
		".osbgit/status/empty.txt": {},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Commit != tr.head("main") || res.Branch != "main" || res.Attempts != 1 {
		t.Fatalf("result = %+v, remote head %s", res, tr.head("main"))
	}
	if got := tr.show("main", statusPath); got != "externalID: 1234" {
		t.Fatalf("remote file = %q", got)
	}
	if got := runGit(t, tr.bare, "cat-file", "-s", "main:.osbgit/status/empty.txt"); got != "0" {
		t.Fatalf("empty file size = %s", got)
	}
	if got := runGit(t, tr.bare, "log", "-1", "--format=%an <%ae>|%cn|%P|%B", "main"); got != "osbgit-bot <bot@example.com>|osbgit-bot|"+base+"|"+strings.TrimSpace(msg) {
		t.Fatalf("commit = %q", got)
	}
	// git fsck agrees the objects we wrote are well formed.
	runGit(t, tr.bare, "fsck", "--strict", "--no-progress")
	if only, err := r.TouchesOnlyStatus(base, res.Commit); err != nil || !only {
		t.Fatalf("own commit counted as a change: %v, %v", only, err)
	}

	// The same contents again: no commit, no push.
	gs.requests()
	again, err := r.WriteStatus(ctx, ChangeSet{Message: msg, Files: map[string][]byte{
		statusPath:                 []byte("externalID: 1234\n"),
		".osbgit/status/gone.yaml": nil, // deleting a missing file is a no-op
	}})
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed || again.Commit != res.Commit || again.Attempts != 0 {
		t.Fatalf("no-op write = %+v", again)
	}
	if reqs := gs.requests(); len(reqs) != 0 {
		t.Fatalf("no-op write made requests: %v", reqs)
	}
	if tr.head("main") != res.Commit {
		t.Fatal("no-op write moved the branch")
	}

	// Update one, delete a whole directory.
	res2, err := r.WriteStatus(ctx, ChangeSet{Message: "osbgit: update", Files: map[string][]byte{
		statusPath:        []byte("externalID: 1234\nready: true\n"),
		".osbgit/catalog": nil,
	}})
	if err != nil || !res2.Changed {
		t.Fatalf("second write = %+v, %v", res2, err)
	}
	if out := runGit(t, tr.bare, "ls-tree", "-r", "--name-only", "main", ".osbgit"); out != ".osbgit/status/default/ServiceInstance/db.yaml\n.osbgit/status/empty.txt" {
		t.Fatalf(".osbgit after delete:\n%s", out)
	}
	if parent := runGit(t, tr.bare, "rev-parse", "main^"); parent != res.Commit {
		t.Fatalf("parent = %s, want %s", parent, res.Commit)
	}
	runGit(t, tr.bare, "fsck", "--strict", "--no-progress")
}

func TestWriteStatusBranchCreated(t *testing.T) {
	t.Parallel()
	tr, _, o := httpRepo(t, baseFiles)
	o.StatusBranch = "osbgit-status"
	r := mustOpen(t, o)
	fr := mustFetch(t, r)
	if fr.StatusHead != "" {
		t.Fatalf("status head before creation = %q", fr.StatusHead)
	}
	mainHead := tr.head("main")
	ctx := testCtx(t)
	res, err := r.WriteIntent(ctx, ChangeSet{Message: "osbgit: intent", Files: map[string][]byte{statusPath: []byte("externalID: new\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Branch != "osbgit-status" || res.Commit != tr.head("osbgit-status") {
		t.Fatalf("result = %+v", res)
	}
	if p := runGit(t, tr.bare, "rev-parse", "osbgit-status^"); p != mainHead {
		t.Fatalf("status branch parent = %s, want main head %s", p, mainHead)
	}
	if tr.head("main") != mainHead {
		t.Fatal("main moved")
	}
	// A human moves main: the status branch is independent, no conflict.
	tr.commit("human", map[string]string{"manifests/instances/x.yaml": "x\n"})
	fr = mustFetch(t, r)
	if fr.StatusHead != res.Commit || fr.Head != tr.head("main") {
		t.Fatalf("fetch = %+v", fr)
	}
	res2, err := r.WriteStatus(ctx, ChangeSet{Message: "osbgit: status", Files: map[string][]byte{statusPath: []byte("externalID: new\nready: true\n")}})
	if err != nil || res2.Attempts != 1 {
		t.Fatalf("second write = %+v, %v", res2, err)
	}
	if p := runGit(t, tr.bare, "rev-parse", "osbgit-status^"); p != res.Commit {
		t.Fatalf("second status commit parent = %s, want %s", p, res.Commit)
	}
	// A new Repo sees the existing status branch.
	r2 := mustOpen(t, o)
	if fr := mustFetch(t, r2); fr.StatusHead != res2.Commit {
		t.Fatalf("fresh fetch status head = %s, want %s", fr.StatusHead, res2.Commit)
	}
}

func TestWriteRejectsPathsOutsideStatus(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	before := tr.head("main")
	r := mustOpen(t, Options{URL: "file://" + tr.bare, Branch: "main"})
	mustFetch(t, r)
	bad := []string{
		"manifests/x.yaml",
		".osbgit",
		".osbgit/",
		"/.osbgit/x",
		".osbgit/../x.yaml",
		"./.osbgit/x",
		".osbgit//x",
		".osbgitx/y",
		".osbgit/.git/config",
		`.osbgit\x`,
	}
	for _, p := range bad {
		t.Run(p, func(t *testing.T) {
			_, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "m", Files: map[string][]byte{p: []byte("x")}})
			if !errors.Is(err, ErrOutsideStatusDir) {
				t.Fatalf("err = %v, want ErrOutsideStatusDir", err)
			}
		})
	}
	_, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "m", Files: map[string][]byte{".osbgit/a": []byte("x"), ".osbgit/a/b": []byte("y")}})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("file/dir clash err = %v", err)
	}
	if _, err := r.WriteStatus(testCtx(t), ChangeSet{Files: map[string][]byte{".osbgit/a": []byte("x")}}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("empty message err = %v", err)
	}
	if tr.head("main") != before {
		t.Fatal("a rejected change set moved the branch")
	}
}

func TestWriteIntentConflict(t *testing.T) {
	t.Parallel()
	tr, _, o := httpRepo(t, baseFiles)
	r := mustOpen(t, o, WithCacheDir(t.TempDir()))
	planned := mustFetch(t, r).Head
	ctx := testCtx(t)
	human := tr.commit("human edit", map[string]string{"manifests/instances/db.yaml": "changed\n"})

	_, err := r.WriteIntent(ctx, ChangeSet{Message: "osbgit: intent", Files: map[string][]byte{statusPath: []byte("id: 1\n")}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("WriteIntent on a moved head = %v, want ErrConflict", err)
	}
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Expected != planned || ce.Actual != human || ce.Attempts != 1 || ce.Branch != "main" {
		t.Fatalf("ConflictError = %+v", ce)
	}
	if tr.head("main") != human {
		t.Fatal("remote changed by a rejected intent")
	}
	// Re-plan from the new head, then the intent lands.
	if fr := mustFetch(t, r); fr.Head != human {
		t.Fatalf("fetch = %+v", fr)
	}
	res, err := r.WriteIntent(ctx, ChangeSet{Message: "osbgit: intent", Files: map[string][]byte{statusPath: []byte("id: 1\n")}, ExpectedHead: human})
	if err != nil || !res.Changed {
		t.Fatalf("WriteIntent after re-plan = %+v, %v", res, err)
	}
	// A stale ExpectedHead conflicts even though the local copy is current.
	_, err = r.WriteIntent(ctx, ChangeSet{Message: "osbgit: intent", Files: map[string][]byte{statusPath: []byte("id: 2\n")}, ExpectedHead: human})
	if !errors.As(err, &ce) || ce.Actual != res.Commit {
		t.Fatalf("stale ExpectedHead = %v", err)
	}
}

// TestWriteStatusReappliesOnMovedRemote is the shallow-clone pitfall: the
// cache holds only the head; the remote gains several commits; the status
// write must fetch, rebuild on the new head and push, keeping every human
// commit.
func TestWriteStatusReappliesOnMovedRemote(t *testing.T) {
	t.Parallel()
	tr, _, o := httpRepo(t, baseFiles)
	for i := 0; i < 3; i++ {
		tr.commit(fmt.Sprintf("history %d", i), map[string]string{"manifests/h.yaml": fmt.Sprint(i)})
	}
	cache := t.TempDir()
	r := mustOpen(t, o, WithCacheDir(cache), WithBackoff(time.Millisecond, 5*time.Millisecond))
	mustFetch(t, r)
	if sh, _ := r.st.Shallow(); len(sh) == 0 {
		t.Fatal("cache is not shallow; the test needs a depth-1 clone")
	}
	var humans []string
	for i := 0; i < 3; i++ {
		humans = append(humans, tr.commit(fmt.Sprintf("human %d", i), map[string]string{
			fmt.Sprintf("manifests/instances/h%d.yaml", i): "x\n",
			".osbgit/status/other.yaml":                    fmt.Sprint(i), // someone else's status
		}))
	}
	res, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "osbgit: status", Files: map[string][]byte{statusPath: []byte("ok\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 || res.Commit != tr.head("main") {
		t.Fatalf("result = %+v, head %s", res, tr.head("main"))
	}
	if p := runGit(t, tr.bare, "rev-parse", "main^"); p != humans[2] {
		t.Fatalf("re-applied commit parent = %s, want %s", p, humans[2])
	}
	for _, h := range humans {
		runGit(t, tr.bare, "merge-base", "--is-ancestor", h, "main")
	}
	if got := tr.show("main", ".osbgit/status/other.yaml"); got != "2" {
		t.Fatalf("other status file = %q", got)
	}
	if got := tr.show("main", statusPath); got != "ok" {
		t.Fatalf("our status file = %q", got)
	}
	runGit(t, tr.bare, "fsck", "--strict", "--no-progress")
}

// TestConcurrentStatusWrites has another writer push commits with the git
// CLI in a loop while status is written several times: every commit of both
// must land, and the server refuses non-fast-forward pushes, so nothing was
// force-pushed.
func TestConcurrentStatusWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("a race of seconds, run by make test; -short has TestWriteStatusReappliesOnMovedRemote (a write after the remote moved)")
	}
	t.Parallel()
	tr, _, o := httpRepo(t, baseFiles)
	r := mustOpen(t, o, WithCacheDir(t.TempDir()), WithMaxPushAttempts(200), WithBackoff(5*time.Millisecond, 100*time.Millisecond))
	mustFetch(t, r)

	other := filepath.Join(t.TempDir(), "other")
	runGit(t, tr.root, "clone", "-q", tr.bare, other)
	stop := make(chan struct{})
	type result struct {
		pushed []string
		err    error
	}
	done := make(chan result, 1)
	var humanPushes atomic.Int32
	go func() {
		var res result
		defer func() { done <- res }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f := filepath.Join(other, "manifests", "human", fmt.Sprintf("%03d.yaml", i))
			os.MkdirAll(filepath.Dir(f), 0o755)
			if err := os.WriteFile(f, []byte(fmt.Sprintf("n: %d\n", i)), 0o644); err != nil {
				res.err = err
				return
			}
			for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", fmt.Sprintf("human %d", i)}} {
				if _, err := gitErr(other, args...); err != nil {
					res.err = err
					return
				}
			}
			for try := 0; ; try++ {
				if _, err := gitErr(other, "push", "-q", "origin", "HEAD:main"); err == nil {
					break
				}
				if try > 200 {
					res.err = fmt.Errorf("human push %d kept failing", i)
					return
				}
				if _, err := gitErr(other, "pull", "-q", "--rebase", "origin", "main"); err != nil {
					res.err = err
					return
				}
			}
			h, err := gitErr(other, "rev-parse", "HEAD")
			if err != nil {
				res.err = err
				return
			}
			res.pushed = append(res.pushed, h)
			humanPushes.Add(1)
			// A short human pause; an adversary that never pauses can
			// starve any optimistic writer, which is not the property
			// under test.
			time.Sleep(time.Duration(50+rand.IntN(150)) * time.Millisecond)
		}
	}()

	// Write at least 8 times (and until the other writer landed 3 commits
	// in between, bounded), pausing like passes do so the other writer gets its
	// turns too (a writer that never pauses would starve the CLI's
	// pull-rebase-push loop, which is not what is tested here).
	writes := 0
	var ours []string
	retries := 0
	for i := 0; i < 8 || (humanPushes.Load() < 3 && i < 30); i++ {
		writes++
		res, err := r.WriteStatus(testCtx(t), ChangeSet{
			Message: EnsureSkipCI(fmt.Sprintf("osbgit: status %d", i)),
			Files:   map[string][]byte{fmt.Sprintf(".osbgit/status/s%d.yaml", i): []byte(fmt.Sprintf("write: %d\n", i))},
		})
		if err != nil {
			close(stop)
			<-done
			t.Fatalf("write %d: %v", i, err)
		}
		ours = append(ours, res.Commit)
		retries += res.Attempts - 1
		time.Sleep(time.Duration(50+rand.IntN(150)) * time.Millisecond)
	}
	close(stop)
	hres := <-done
	if hres.err != nil {
		t.Fatalf("other writer: %v", hres.err)
	}
	if len(hres.pushed) == 0 {
		t.Fatal("the other writer pushed nothing")
	}
	head := tr.head("main")
	for _, h := range append(append([]string{}, hres.pushed...), ours...) {
		if _, err := gitErr(tr.bare, "merge-base", "--is-ancestor", h, head); err != nil {
			t.Errorf("commit %s is not in the final history", h)
		}
	}
	files := runGit(t, tr.bare, "ls-tree", "-r", "--name-only", "main")
	for i := range hres.pushed {
		if !strings.Contains(files, fmt.Sprintf("manifests/human/%03d.yaml", i)) {
			t.Errorf("human file %d missing", i)
		}
	}
	for i := 0; i < writes; i++ {
		if got := tr.show("main", fmt.Sprintf(".osbgit/status/s%d.yaml", i)); got != fmt.Sprintf("write: %d", i) {
			t.Errorf("status %d = %q", i, got)
		}
	}
	runGit(t, tr.bare, "fsck", "--strict", "--no-progress")
	t.Logf("other writer pushed %d commits; %d status writes needed %d retries", len(hres.pushed), writes, retries)
}

// userState captures everything of a working copy a write must not touch.
func userState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"status", "--porcelain=v1", "--untracked-files=all"},
		{"diff"},
		{"diff", "--cached"},
		{"ls-files", "-s"},
		{"symbolic-ref", "HEAD"},
		{"rev-parse", "HEAD"},
	} {
		fmt.Fprintf(&b, "$ git %s\n%s\n", strings.Join(args, " "), runGit(t, dir, args...))
	}
	for _, f := range []string{"manifests/instances/db.yaml", "manifests/staged.yaml", "untracked.yaml"} {
		data, _ := os.ReadFile(filepath.Join(dir, f))
		fmt.Fprintf(&b, "%s: %q\n", f, data)
	}
	return b.String()
}

func TestLocalWorkingCopyWrites(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	w := tr.work()
	// The user's uncommitted work: a modification, a staged new file and an
	// untracked file.
	os.WriteFile(filepath.Join(w, "manifests/instances/db.yaml"), []byte("edited, not committed\n"), 0o644)
	os.WriteFile(filepath.Join(w, "manifests/staged.yaml"), []byte("staged\n"), 0o644)
	runGit(t, w, "add", "manifests/staged.yaml")
	os.WriteFile(filepath.Join(w, "untracked.yaml"), []byte("untracked\n"), 0o644)
	before := userState(t, w)
	mainHead := runGit(t, w, "rev-parse", "main")
	ctx := testCtx(t)
	cs := ChangeSet{Message: "osbgit: status", Files: map[string][]byte{statusPath: []byte("id: 1\n")}}

	t.Run("checked-out branch is refused", func(t *testing.T) {
		r := mustOpen(t, Options{URL: w})
		if err := r.CheckWritable(); !errors.Is(err, ErrCheckedOutBranch) {
			t.Fatalf("CheckWritable = %v", err)
		}
		if _, err := r.WriteStatus(ctx, cs); !errors.Is(err, ErrCheckedOutBranch) {
			t.Fatalf("WriteStatus = %v", err)
		}
		if after := userState(t, w); after != before {
			t.Fatalf("user state changed:\n%s\n---\n%s", before, after)
		}
	})

	t.Run("status branch is written in place", func(t *testing.T) {
		r := mustOpen(t, Options{URL: w, StatusBranch: "osbgit-status"})
		if err := r.CheckWritable(); err != nil {
			t.Fatal(err)
		}
		mustFetch(t, r)
		res, err := r.WriteStatus(ctx, cs)
		if err != nil {
			t.Fatal(err)
		}
		if got := runGit(t, w, "rev-parse", "osbgit-status"); got != res.Commit {
			t.Fatalf("status branch = %s, result %s", got, res.Commit)
		}
		if got := runGit(t, w, "rev-parse", "osbgit-status^"); got != mainHead {
			t.Fatalf("status branch parent = %s", got)
		}
		if got := runGit(t, w, "show", "osbgit-status:"+statusPath); got != "id: 1" {
			t.Fatalf("status file = %q", got)
		}
		if after := userState(t, w); after != before {
			t.Fatalf("user state changed:\n%s\n---\n%s", before, after)
		}
		// A human commit on the status branch (from another clone) is kept
		// when the next write finds the branch moved.
		runGit(t, w, "update-ref", "refs/heads/osbgit-status", runGit(t, w, "commit-tree", "-p", res.Commit, "-m", "human on status", res.Commit+"^{tree}"))
		moved := runGit(t, w, "rev-parse", "osbgit-status")
		res2, err := r.WriteStatus(ctx, ChangeSet{Message: "osbgit: status 2", Files: map[string][]byte{statusPath: []byte("id: 2\n")}})
		if err != nil || res2.Attempts != 2 {
			t.Fatalf("second write = %+v, %v", res2, err)
		}
		if p := runGit(t, w, "rev-parse", "osbgit-status^"); p != moved {
			t.Fatalf("parent = %s, want the human commit %s", p, moved)
		}
		if after := userState(t, w); after != before {
			t.Fatalf("user state changed:\n%s\n---\n%s", before, after)
		}
		runGit(t, w, "fsck", "--no-progress")
	})

	t.Run("branch not checked out", func(t *testing.T) {
		runGit(t, w, "branch", "-q", "release", "main")
		r := mustOpen(t, Options{URL: w, Branch: "release"})
		mustFetch(t, r)
		res, err := r.WriteStatus(ctx, cs)
		if err != nil {
			t.Fatal(err)
		}
		if got := runGit(t, w, "rev-parse", "release"); got != res.Commit {
			t.Fatalf("release = %s, want %s", got, res.Commit)
		}
		if after := userState(t, w); after != before {
			t.Fatalf("user state changed:\n%s\n---\n%s", before, after)
		}
	})
}

func TestLocalBareAndFileURLWrites(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"bare path", "file URL"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			tr := newTestRepo(t, baseFiles)
			o := Options{URL: tr.bare, Branch: "main"}
			if kind == "file URL" {
				o.URL = "file://" + tr.bare
			}
			r := mustOpen(t, o, WithBackoff(time.Millisecond, 5*time.Millisecond))
			mustFetch(t, r)
			human := tr.commit("human", map[string]string{"manifests/instances/z.yaml": "z\n"})
			res, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "osbgit: status", Files: map[string][]byte{statusPath: []byte("id: 1\n")}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Commit != tr.head("main") || res.Attempts != 2 {
				t.Fatalf("result = %+v, head %s", res, tr.head("main"))
			}
			if p := runGit(t, tr.bare, "rev-parse", "main^"); p != human {
				t.Fatalf("parent = %s, want %s", p, human)
			}
			runGit(t, tr.bare, "fsck", "--strict", "--no-progress")
		})
	}
}
