package gitrepo

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
)

// TestPackIsReadByGit checks our pack encoder against the git CLI: every
// object, of sizes across the header's length groups (0, 15, 16, 2047,
// 2048, 300,000 bytes), comes back from `git index-pack` byte for byte, at
// the levels the writer uses.
func TestPackIsReadByGit(t *testing.T) {
	sizes := []int{0, 1, 15, 16, 127, 2047, 2048, 65536, 300000}
	for _, level := range []int{zlib.NoCompression, zlib.BestSpeed, zlib.DefaultCompression} {
		t.Run(fmt.Sprintf("level%d", level), func(t *testing.T) {
			objs := newPendingObjects(memory.NewStorage())
			want := map[plumbing.Hash][]byte{}
			for i, n := range sizes {
				content := bytes.Repeat([]byte(fmt.Sprintf("record %d line\n", i)), n/14+1)[:n]
				o := objs.NewEncodedObject()
				o.SetType(plumbing.BlobObject)
				o.SetSize(int64(n))
				w, err := o.Writer()
				if err != nil {
					t.Fatal(err)
				}
				w.Write(content)
				w.Close()
				h, _ := objs.SetEncodedObject(o)
				want[h] = content
			}
			pack, err := objs.pack(level)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			runGit(t, dir, "init", "--quiet", "--bare", ".")
			packPath := filepath.Join(dir, "objects", "pack", "pack-test.pack")
			if err := os.WriteFile(packPath, pack, 0o600); err != nil {
				t.Fatal(err)
			}
			runGit(t, dir, "index-pack", "--strict", packPath)
			listed := runGit(t, dir, "verify-pack", "-v", packPath)
			for h, content := range want {
				if !strings.Contains(listed, h.String()) {
					t.Fatalf("git verify-pack does not list %s:\n%s", h, listed)
				}
				if got := runGit(t, dir, "--git-dir", dir, "cat-file", "-p", h.String()); got != strings.TrimSpace(string(content)) {
					t.Fatalf("object %s: git reads %d bytes, want %d", h, len(got), len(content))
				}
			}
		})
	}
}
