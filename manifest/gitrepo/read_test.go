package gitrepo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/google/go-cmp/cmp"
)

var baseFiles = map[string]string{
	"osbgit.yaml":                  "apiVersion: osbgit.dev/v1alpha1\nkind: Config\n",
	"manifests/brokers/b1.yaml":    "kind: ClusterServiceBroker\nname: b1\n",
	"manifests/instances/db.yaml":  "kind: ServiceInstance\nname: db\n",
	"manifests/instances/mq.yaml":  "kind: ServiceInstance\nname: mq\n",
	"manifests/bindings/db-b.yaml": "kind: ServiceBinding\nname: db-b\n",
	"README.md":                    "hello\n",
}

// packObjectCounts returns the object count of every pack in a bare clone.
func packObjectCounts(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	idxs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.idx"))
	out := map[string]int64{}
	for _, p := range idxs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		idx := idxfile.NewMemoryIndex()
		if err := idxfile.NewDecoder(f).Decode(idx); err != nil {
			t.Fatal(err)
		}
		f.Close()
		n, _ := idx.Count()
		out[filepath.Base(p)] = n
	}
	return out
}

func TestFetchIntoCacheAndReuse(t *testing.T) {
	t.Parallel()
	tr, gs, opts := httpRepo(t, baseFiles)
	cache := t.TempDir()

	// First run: clone into the cache.
	r1 := mustOpen(t, opts, WithCacheDir(cache))
	res := mustFetch(t, r1)
	if !res.Updated || res.Head != tr.head("main") {
		t.Fatalf("first fetch = %+v, want updated head %s", res, tr.head("main"))
	}
	r1.Close()
	if n := countReq(gs.requests(), "POST /repo.git/git-upload-pack"); n != 1 {
		t.Fatalf("first run made %d upload-pack POSTs, want 1", n)
	}
	entries, _ := os.ReadDir(cache)
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) != 1 {
		t.Fatalf("cache holds %v, want one clone", dirs)
	}
	clone := filepath.Join(cache, dirs[0])
	packsBefore := packObjectCounts(t, clone)

	// Second run, nothing changed: one ref listing, no pack negotiation.
	r2 := mustOpen(t, opts, WithCacheDir(cache))
	res = mustFetch(t, r2)
	if res.Updated || res.Head != tr.head("main") {
		t.Fatalf("second fetch = %+v, want not updated", res)
	}
	reqs := gs.requests()
	if n := countReq(reqs, "git-upload-pack"); n != 1 || countReq(reqs, "POST") != 0 {
		t.Fatalf("second run requests %v, want a single ref listing", reqs)
	}
	files, err := r2.Files("", "manifests")
	if err != nil || len(files) != 4 {
		t.Fatalf("Files from reused cache = %v, %v", files, err)
	}

	// A human changes one file: the fetch brings only the new objects.
	tr.commit("edit db", map[string]string{"manifests/instances/db.yaml": "kind: ServiceInstance\nname: db\nplan: large\n"})
	res = mustFetch(t, r2)
	if !res.Updated || res.Head != tr.head("main") {
		t.Fatalf("third fetch = %+v", res)
	}
	packsAfter := packObjectCounts(t, clone)
	var newObjects int64
	for name, n := range packsAfter {
		if _, ok := packsBefore[name]; !ok {
			newObjects += n
		}
	}
	// commit + root tree + manifests/ + instances/ + blob = 5
	if newObjects == 0 || newObjects > 5 {
		t.Fatalf("incremental fetch brought %d objects (packs %v → %v), want ≤5", newObjects, packsBefore, packsAfter)
	}
	t.Logf("initial clone: %v objects; incremental fetch: %d objects", packsBefore, newObjects)
	data, err := fs.ReadFile(mustTreeFS(t, r2, ""), "manifests/instances/db.yaml")
	if err != nil || !strings.Contains(string(data), "plan: large") {
		t.Fatalf("read after incremental fetch = %q, %v", data, err)
	}
}

func mustTreeFS(t *testing.T, r *Repo, rev string) fs.FS {
	t.Helper()
	fsys, err := r.TreeFS(rev)
	if err != nil {
		t.Fatalf("TreeFS(%q): %v", rev, err)
	}
	return fsys
}

// sources returns the same content reachable as each kind of source.
func sources(t *testing.T, files map[string]string) map[string]Options {
	t.Helper()
	tr, _, httpOpts := httpRepo(t, files)
	return map[string]Options{
		"http":       httpOpts,
		"file URL":   {URL: "file://" + tr.bare, Branch: "main"},
		"bare path":  {URL: tr.bare, Branch: "main"},
		"work copy":  {URL: tr.work()},
		"http-cache": httpOpts, // opened with a cache dir below
	}
}

func TestTreeFS(t *testing.T) {
	t.Parallel()
	for name, o := range sources(t, baseFiles) {
		t.Run(name, func(t *testing.T) {
			var opts []Option
			if name == "http-cache" {
				opts = append(opts, WithCacheDir(t.TempDir()))
			}
			r := mustOpen(t, o, opts...)
			mustFetch(t, r)
			fsys := mustTreeFS(t, r, "main")

			var want []string
			for p := range baseFiles {
				want = append(want, p)
			}
			if err := fstest.TestFS(fsys, want...); err != nil {
				t.Fatal(err)
			}

			got := map[string]string{}
			err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := fs.ReadFile(fsys, p)
				got[p] = string(b)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(baseFiles, got); diff != "" {
				t.Fatalf("WalkDir contents (-want +got):\n%s", diff)
			}

			sub, err := fs.Sub(fsys, "manifests/instances")
			if err != nil {
				t.Fatal(err)
			}
			if err := fstest.TestFS(sub, "db.yaml", "mq.yaml"); err != nil {
				t.Fatal(err)
			}
			fi, err := fs.Stat(fsys, "manifests/instances/db.yaml")
			if err != nil || fi.Size() != int64(len(baseFiles["manifests/instances/db.yaml"])) || fi.IsDir() {
				t.Fatalf("Stat = %v, %v", fi, err)
			}
			if _, err := fs.Stat(fsys, "manifests/nope.yaml"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Stat missing = %v", err)
			}
			if _, err := fs.ReadFile(fsys, "README.md/x"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("ReadFile under a file = %v", err)
			}
		})
	}
}

func TestFilesAndBlobs(t *testing.T) {
	t.Parallel()
	tr, _, o := httpRepo(t, baseFiles)
	r := mustOpen(t, o)
	mustFetch(t, r)
	tests := []struct {
		dir  string
		want []string
	}{
		{"", []string{"README.md", "manifests/bindings/db-b.yaml", "manifests/brokers/b1.yaml", "manifests/instances/db.yaml", "manifests/instances/mq.yaml", "osbgit.yaml"}},
		{"manifests/instances", []string{"manifests/instances/db.yaml", "manifests/instances/mq.yaml"}},
		{"/manifests/instances/", []string{"manifests/instances/db.yaml", "manifests/instances/mq.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			files, err := r.Files("main", tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, f := range files {
				paths = append(paths, f.Path)
				if want := runGit(t, tr.bare, "rev-parse", "main:"+f.Path); f.Blob != want {
					t.Errorf("%s blob = %s, git says %s", f.Path, f.Blob, want)
				}
				data, err := r.ReadBlob(f.Blob)
				if err != nil || string(data) != baseFiles[f.Path] {
					t.Errorf("ReadBlob(%s) = %q, %v", f.Path, data, err)
				}
			}
			if diff := cmp.Diff(tc.want, paths); diff != "" {
				t.Fatalf("paths (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := r.Files("main", "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Files(missing dir) = %v, want ErrNotExist", err)
	}
	th, err := r.TreeHash("main", "manifests")
	if want := runGit(t, tr.bare, "rev-parse", "main:manifests"); err != nil || th != want {
		t.Fatalf("TreeHash = %s, %v; want %s", th, err, want)
	}
	if _, err := r.ReadBlob(strings.Repeat("ab", 20)); err == nil {
		t.Fatal("ReadBlob(unknown) succeeded")
	}
	if _, err := r.TreeFS(strings.Repeat("ab", 20)); !errors.Is(err, ErrRevisionNotFound) {
		t.Fatalf("TreeFS(unknown) = %v, want ErrRevisionNotFound", err)
	}
}

func TestChangedFilesAndOutside(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	// Full history: the test compares commits older than the head.
	r := mustOpen(t, Options{URL: "file://" + tr.bare, Branch: "main"}, WithDepth(0))
	c0 := tr.head("main")
	c1 := tr.commit("status only", map[string]string{".osbgit/status/default/ServiceInstance/db.yaml": "externalID: x\n"})
	c2 := tr.commit("edit + add + delete", map[string]string{
		"manifests/instances/db.yaml":  "kind: ServiceInstance\nname: db\nplan: large\n",
		"manifests/instances/new.yaml": "kind: ServiceInstance\nname: new\n",
		"manifests/bindings/db-b.yaml": "",
	})
	c3 := tr.commit("status again", map[string]string{".osbgit/catalog/b1.yaml": "services: []\n"})
	c4 := tr.commit("readme", map[string]string{"README.md": "changed\n"})
	// A manifest change and its revert across two commits: trees equal.
	tr.commit("tmp", map[string]string{"manifests/instances/mq.yaml": "tmp\n"})
	c6 := tr.commit("revert tmp + status", map[string]string{
		"manifests/instances/mq.yaml": baseFiles["manifests/instances/mq.yaml"],
		".osbgit/status/x.yaml":       "y\n",
	})
	// A merge of a status-only side branch.
	work := tr.work()
	runGit(t, work, "checkout", "-q", "-b", "side", c4)
	runGit(t, work, "rm", "-q", ".osbgit/catalog/b1.yaml")
	runGit(t, work, "commit", "-q", "-m", "side status")
	runGit(t, work, "checkout", "-q", "main")
	runGit(t, work, "merge", "-q", "--no-ff", "-m", "merge side", "side")
	runGit(t, work, "push", "-q", "origin", "main")
	c7 := tr.head("main")
	// A deeper prefix.
	mustFetch(t, r)

	blob := func(rev, p string) string { return runGit(t, tr.bare, "rev-parse", rev+":"+p) }
	changes, err := r.ChangedFiles(c1, c2, "manifests")
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Path: "manifests/bindings/db-b.yaml", Action: Deleted, FromBlob: blob(c1, "manifests/bindings/db-b.yaml")},
		{Path: "manifests/instances/db.yaml", Action: Modified, FromBlob: blob(c1, "manifests/instances/db.yaml"), ToBlob: blob(c2, "manifests/instances/db.yaml")},
		{Path: "manifests/instances/new.yaml", Action: Added, ToBlob: blob(c2, "manifests/instances/new.yaml")},
	}
	if diff := cmp.Diff(want, changes); diff != "" {
		t.Fatalf("ChangedFiles (-want +got):\n%s", diff)
	}
	if ch, err := r.ChangedFiles(c0, c1, "manifests"); err != nil || len(ch) != 0 {
		t.Fatalf("ChangedFiles over a status-only commit = %v, %v", ch, err)
	}
	if ch, err := r.ChangedFiles(c0, c1, ""); err != nil || len(ch) != 1 || ch[0].Path != ".osbgit/status/default/ServiceInstance/db.yaml" || ch[0].Action != Added {
		t.Fatalf("ChangedFiles root = %v, %v", ch, err)
	}

	tests := []struct {
		name     string
		from, to string
		prefix   string
		want     bool
	}{
		{"same commit", c0, c0, ".osbgit/", false},
		{"status-only commit", c0, c1, ".osbgit/", false},
		{"manifest edits", c1, c2, ".osbgit/", true},
		{"several commits incl. manifests", c0, c3, ".osbgit/", true},
		{"status-only after manifests", c2, c3, ".osbgit/", false},
		{"readme counts", c3, c4, ".osbgit/", true},
		{"change reverted, status added", c4, c6, ".osbgit/", false},
		{"merge of status-only branch", c6, c7, ".osbgit/", false},
		{"deeper prefix ignores only it", c0, c1, ".osbgit/status", false},
		{"deeper prefix sees the rest", c2, c3, ".osbgit/status/", true},
		{"no trailing slash", c0, c1, ".osbgit", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.ChangedOutside(tc.from, tc.to, tc.prefix)
			if err != nil || got != tc.want {
				t.Fatalf("ChangedOutside = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	only, err := r.TouchesOnlyStatus(c0, c1)
	if err != nil || !only {
		t.Fatalf("TouchesOnlyStatus = %v, %v", only, err)
	}
}

func TestWorkTreeFS(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, map[string]string{
		"manifests/a.yaml": "a: 1\n",
		"manifests/b.yaml": "b: 1\n",
		".gitignore":       "*.tmp\nbuild/\n",
		"tracked.tmp":      "tracked even though ignored\n",
	})
	// tracked.tmp is committed although .gitignore ignores it (the
	// commit is made without git add).
	work := tr.work()
	write := func(p, c string) {
		full := filepath.Join(work, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("manifests/a.yaml", "a: 2 # uncommitted\n")
	write("manifests/new.yaml", "new: untracked\n")
	write("scratch.tmp", "ignored\n")
	write("build/out.yaml", "ignored dir\n")
	os.Remove(filepath.Join(work, "manifests/b.yaml"))

	r := mustOpen(t, Options{URL: work})
	fsys, err := r.WorkTreeFS()
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "manifests/a.yaml", "manifests/new.yaml", ".gitignore", "tracked.tmp"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			seen = append(seen, p)
		}
		return err
	})
	sort.Strings(seen)
	if diff := cmp.Diff([]string{".gitignore", "manifests/a.yaml", "manifests/new.yaml", "tracked.tmp"}, seen); diff != "" {
		t.Fatalf("WalkDir (-want +got):\n%s", diff)
	}
	if b, _ := fs.ReadFile(fsys, "manifests/a.yaml"); string(b) != "a: 2 # uncommitted\n" {
		t.Fatalf("uncommitted edit not seen: %q", b)
	}
	for _, hidden := range []string{".git/config", "scratch.tmp", "build/out.yaml", "manifests/b.yaml"} {
		if _, err := fs.Stat(fsys, hidden); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want not exist", hidden, err)
		}
	}
	// The committed head is unaffected.
	head := mustTreeFS(t, r, "")
	if b, _ := fs.ReadFile(head, "manifests/a.yaml"); string(b) != "a: 1\n" {
		t.Fatalf("TreeFS(head) sees the uncommitted edit: %q", b)
	}

	for name, o := range map[string]Options{
		"bare": {URL: tr.bare, Branch: "main"},
		"url":  {URL: "file://" + tr.bare, Branch: "main"},
	} {
		r := mustOpen(t, o)
		if _, err := r.WorkTreeFS(); !errors.Is(err, ErrNotWorkTree) {
			t.Errorf("%s: WorkTreeFS = %v, want ErrNotWorkTree", name, err)
		}
	}
}

func TestDefaultBranchAndRemoteHead(t *testing.T) {
	t.Parallel()
	tr, _, o := httpRepo(t, baseFiles)
	runGit(t, tr.bare, "branch", "other", "main")
	o.Branch = ""
	r := mustOpen(t, o)
	if r.Branch() != "main" || r.StatusBranch() != "main" {
		t.Fatalf("default branch = %q/%q", r.Branch(), r.StatusBranch())
	}
	h, err := r.RemoteHead(testCtx(t), "")
	if err != nil || h != tr.head("main") {
		t.Fatalf("RemoteHead = %s, %v", h, err)
	}
	if _, err := r.RemoteHead(testCtx(t), "nope"); !errors.Is(err, ErrBranchNotFound) {
		t.Fatalf("RemoteHead(nope) = %v", err)
	}
	w := mustOpen(t, Options{URL: tr.work()})
	if w.Branch() != "main" || !w.IsWorkTree() {
		t.Fatalf("work copy branch = %q", w.Branch())
	}
	h, err = w.RemoteHead(testCtx(t), "")
	if err != nil || h != runGit(t, tr.work(), "rev-parse", "HEAD") {
		t.Fatalf("local RemoteHead = %s, %v", h, err)
	}
}

func TestManifestAuthor(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	human := tr.head("main")
	r := mustOpen(t, Options{URL: "file://" + tr.bare, Branch: "main"}, WithAuthor("osbgit", "bot@example.com"))
	mustFetch(t, r)
	res, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "status", Files: map[string][]byte{statusPath: []byte("x\n")}})
	if err != nil {
		t.Fatal(err)
	}
	res2, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "status 2", Files: map[string][]byte{statusPath: []byte("y\n")}})
	if err != nil {
		t.Fatal(err)
	}
	want := Person{Name: "Test Author", Email: "author@example.com"} // gittest's commits
	for _, rev := range []string{human, res.Commit, res2.Commit, ""} {
		p, err := r.ManifestAuthor(rev)
		if err != nil || p != want {
			t.Errorf("ManifestAuthor(%q) = %+v, %v; want %+v", rev, p, err, want)
		}
	}
}

// TestFetchMergeBehindShallowBoundary: a new head whose tree holds objects
// that exist only behind the shallow clone's boundary (here a merge of an
// old commit that takes its contents) must arrive whole with the
// incremental fetch. A fetch that sends our heads as haves without
// declaring the boundary (go-git's fetch at depth 0 into a shallow clone)
// lets the server assume we have the old commit's objects: reading the new
// head then fails with "object not found".
func TestFetchMergeBehindShallowBoundary(t *testing.T) {
	t.Parallel()
	const path = "manifests/instances/db.yaml"
	tr, _, o := httpRepo(t, baseFiles)
	old := tr.head("main")
	edited := tr.commit("edit db", map[string]string{path: "kind: ServiceInstance\nname: db\nplan: large\n"})
	r := mustOpen(t, o, WithCacheDir(t.TempDir()))
	mustFetch(t, r)
	if sh, _ := r.st.Shallow(); len(sh) == 0 {
		t.Fatal("cache is not shallow; the test needs a depth-1 clone")
	}
	merge := runGit(t, tr.bare, "commit-tree", "-p", edited, "-p", old, "-m", "merge the old commit, taking its tree", old+"^{tree}")
	runGit(t, tr.bare, "update-ref", "refs/heads/main", merge)
	if res := mustFetch(t, r); res.Head != merge {
		t.Fatalf("fetch = %+v, want head %s", res, merge)
	}
	data, err := fs.ReadFile(mustTreeFS(t, r, ""), path)
	if err != nil || string(data) != baseFiles[path] {
		t.Fatalf("file = %q, %v; want %q", data, err, baseFiles[path])
	}
}
