package gitrepo

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestNeedsCompaction is not parallel: it lowers the package's thresholds.
func TestNeedsCompaction(t *testing.T) {
	defer func(p, l int) { maxCachePacks, maxCacheLooseObjects = p, l }(maxCachePacks, maxCacheLooseObjects)
	maxCachePacks, maxCacheLooseObjects = 4, 300 // small, so the test writes few files
	tests := []struct {
		name         string
		packs, loose int
		want         bool
	}{
		{"fresh", 1, 10, false},
		{"many packs", maxCachePacks + 1, 0, true},
		{"many loose objects", 1, maxCacheLooseObjects + 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pack := filepath.Join(dir, "objects", "pack")
			os.MkdirAll(pack, 0o755)
			for i := 0; i < tc.packs; i++ {
				os.WriteFile(filepath.Join(pack, fmt.Sprintf("pack-%d.pack", i)), nil, 0o644)
			}
			for i := 0; i < tc.loose; i++ {
				d := filepath.Join(dir, "objects", fmt.Sprintf("%02x", i%256))
				os.MkdirAll(d, 0o755)
				os.WriteFile(filepath.Join(d, fmt.Sprintf("%038d", i)), nil, 0o644)
			}
			if got := needsCompaction(dir); got != tc.want {
				t.Fatalf("needsCompaction = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCorruptCacheIsRebuilt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		corrupt func(t *testing.T, clone string)
	}{
		{"objects lost", func(t *testing.T, clone string) {
			packs, _ := filepath.Glob(filepath.Join(clone, "objects", "pack", "*"))
			for _, p := range packs {
				os.Remove(p)
			}
		}},
		{"config garbage", func(t *testing.T, clone string) {
			os.WriteFile(filepath.Join(clone, "config"), []byte("[[[not git config"), 0o644)
		}},
		{"other URL", func(t *testing.T, clone string) {
			runGit(t, clone, "config", "remote.origin.url", "https://elsewhere.example.com/r.git")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, _, o := httpRepo(t, baseFiles)
			cache := t.TempDir()
			r := mustOpen(t, o, WithCacheDir(cache))
			mustFetch(t, r)
			r.Close()
			clone := filepath.Join(cache, cacheKey(RedactURL(o.URL)))
			tc.corrupt(t, clone)
			r2 := mustOpen(t, o, WithCacheDir(cache))
			if fr := mustFetch(t, r2); fr.Head != tr.head("main") {
				t.Fatalf("fetch after corruption = %+v", fr)
			}
			if _, err := r2.Files("", "manifests"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConcurrentUse reads through TreeFS and Files while the same Repo
// fetches and writes (run with -race).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	tr, _, o := httpRepo(t, baseFiles)
	r := mustOpen(t, o, WithCacheDir(t.TempDir()))
	head := mustFetch(t, r).Head
	fsys := mustTreeFS(t, r, head)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					if _, err := d.Info(); err != nil {
						return err
					}
					_, err = fs.ReadFile(fsys, p)
					return err
				}); err != nil {
					errs <- err
					return
				}
				if _, err := r.Files(head, ""); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < 3; i++ {
		tr.commit(fmt.Sprintf("human %d", i), map[string]string{"manifests/c.yaml": fmt.Sprint(i)})
		if _, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "m", Files: map[string][]byte{statusPath: []byte(fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
