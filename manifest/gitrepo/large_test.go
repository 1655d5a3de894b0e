package gitrepo

import (
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// newLargeRepo builds a bare repository with n small manifests (100 per
// directory) in one commit, streamed through `git fast-import` (writing
// 10,000 files to a slow disk first takes far longer than the test).
func newLargeRepo(t testing.TB, n int) *testRepo {
	t.Helper()
	files := make(map[string]string, n)
	for i := 0; i < n; i++ {
		files[fmt.Sprintf("manifests/ns-%03d/instance-%05d.yaml", i/100, i)] = fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata:
  name: instance-%05d
  namespace: ns-%03d
spec:
  clusterServiceClassExternalName: postgres
  clusterServicePlanExternalName: small
  parameters:
    storageGB: %d
`, i, i/100, 10+i%50)
	}
	return newTestRepo(t, files)
}

// runFastImport feeds a git fast-import stream to the bare repository.
func runFastImport(t testing.TB, bare string, stream io.Reader) {
	t.Helper()
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = bare
	cmd.Env = gitEnv()
	cmd.Stdin = stream
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git fast-import: %v: %s", err, out)
	}
}

// readAll lists rev's manifests and reads every blob; it returns the count
// and total bytes.
func readAll(t testing.TB, r *Repo) (int, int) {
	t.Helper()
	files, err := r.Files("", "manifests")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, f := range files {
		b, err := r.ReadBlob(f.Blob)
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
	}
	return len(files), total
}

// TestLargeRepo10k measures the 10,000-manifest case: clone, list and read
// every blob, a second run from the cache, an incremental change, and
// RemoteHead latency, all against git http-backend. Run without -race for
// meaningful figures: go test -run TestLargeRepo10k -v ./manifest/gitrepo/
func TestLargeRepo10k(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("large repository test skipped in -short mode")
	}
	const n = 10000
	start := time.Now()
	tr := newLargeRepo(t, n)
	t.Logf("generated %d files with git fast-import in %v", n, time.Since(start).Round(time.Millisecond))
	gs := newGitServer(t, tr.root, testUser, testPass, false)
	o := Options{URL: gs.URL + "/repo.git", Branch: "main", Auth: Auth{Username: testUser, Password: testPass}}
	cache := t.TempDir()
	ctx := testCtx(t)

	// Run 1: clone into the cache, list, read everything.
	t0 := time.Now()
	r1, err := Open(ctx, o, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	clone := time.Since(t0)
	t1 := time.Now()
	count, size := readAll(t, r1)
	read1 := time.Since(t1)
	if count != n {
		t.Fatalf("listed %d files, want %d", count, n)
	}
	t2 := time.Now()
	fsys, err := r1.TreeFS("")
	if err != nil {
		t.Fatal(err)
	}
	walked := 0
	err = fs.WalkDir(fsys, "manifests", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		_, err = fs.ReadFile(fsys, p)
		walked++
		return err
	})
	if err != nil || walked != n {
		t.Fatalf("WalkDir read %d files: %v", walked, err)
	}
	walk1 := time.Since(t2)
	r1.Close()

	// Run 2: a new process on the same cache; the remote did not change.
	t3 := time.Now()
	r2, err := Open(ctx, o, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	fr, err := r2.Fetch(ctx)
	if err != nil || fr.Updated {
		t.Fatalf("second fetch = %+v, %v", fr, err)
	}
	open2 := time.Since(t3)
	t4 := time.Now()
	readAll(t, r2)
	read2 := time.Since(t4)

	// An incremental change: one manifest edited.
	old := fr.Head
	tr.commit("edit one", map[string]string{"manifests/ns-042/instance-04242.yaml": "changed: true\n"})
	t5 := time.Now()
	fr, err = r2.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := r2.ChangedFiles(old, fr.Head, "manifests")
	if err != nil || len(changes) != 1 {
		t.Fatalf("ChangedFiles = %v, %v", changes, err)
	}
	if _, err := r2.ReadBlob(changes[0].ToBlob); err != nil {
		t.Fatal(err)
	}
	incr := time.Since(t5)

	// RemoteHead latency against http-backend.
	var lat []time.Duration
	for i := 0; i < 30; i++ {
		s := time.Now()
		if _, err := r2.RemoteHead(ctx, ""); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(s))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })

	// The git CLI reading the same blobs, for reference.
	t6 := time.Now()
	runGit(t, tr.bare, "-c", "core.bigFileThreshold=1m", "archive", "--format=tar", "-o", filepath.Join(t.TempDir(), "a.tar"), "main", "manifests")
	cli := time.Since(t6)

	// In-memory (no cache dir): clone + read.
	t7 := time.Now()
	rm, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rm.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	readAll(t, rm)
	mem := time.Since(t7)

	t.Logf("files: %d, %d KiB of manifests", n, size/1024)
	t.Logf("run 1: shallow clone into cache over http-backend %v; list + read all blobs %v; TreeFS WalkDir + ReadFile all %v",
		clone.Round(time.Millisecond), read1.Round(time.Millisecond), walk1.Round(time.Millisecond))
	t.Logf("run 2 (cache reused, remote unchanged): open + fetch %v; list + read all blobs %v",
		open2.Round(time.Millisecond), read2.Round(time.Millisecond))
	t.Logf("one-file change: fetch + ChangedFiles + read changed blob %v", incr.Round(time.Millisecond))
	t.Logf("RemoteHead over http-backend: min %v, median %v, max %v (30 calls)",
		lat[0].Round(time.Microsecond), lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	t.Logf("in memory (no cache dir): clone + list + read all %v", mem.Round(time.Millisecond))
	t.Logf("git CLI reference: git archive of the same tree %v", cli.Round(time.Millisecond))
}

// BenchmarkRemoteHead measures one ls-remote against git http-backend.
func BenchmarkRemoteHead(b *testing.B) {
	tr := newTestRepo(b, baseFiles)
	gs := newGitServer(b, tr.root, testUser, testPass, false)
	r := mustOpen(b, Options{URL: gs.URL + "/repo.git", Branch: "main", Auth: Auth{Username: testUser, Password: testPass}})
	ctx := testCtx(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.RemoteHead(ctx, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadAll10k measures listing and reading 10,000 blobs from a
// cached clone.
func BenchmarkReadAll10k(b *testing.B) {
	tr := newLargeRepo(b, 10000)
	r := mustOpen(b, Options{URL: "file://" + tr.bare, Branch: "main"}, WithCacheDir(b.TempDir()))
	mustFetch(b, r)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		readAll(b, r)
	}
}
