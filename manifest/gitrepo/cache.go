package gitrepo

import (
	"os"
	"path/filepath"
)

// Compaction thresholds. go-git adds a pack per fetch and a loose object per
// written object and never garbage-collects; past these counts the cache is
// discarded and fetched afresh (shallow, so cheaply) on the next Open. The
// only cost is that ChangedFiles from a revision older than the new clone
// reports ErrRevisionNotFound once, and the caller reloads everything.
var (
	maxCachePacks        = 64
	maxCacheLooseObjects = 20000
)

// needsCompaction reports whether the bare clone at dir has grown past the
// thresholds.
func needsCompaction(dir string) bool {
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	if len(packs) > maxCachePacks {
		return true
	}
	loose := 0
	fanout, _ := os.ReadDir(filepath.Join(dir, "objects"))
	for _, d := range fanout {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		entries, _ := os.ReadDir(filepath.Join(dir, "objects", d.Name()))
		loose += len(entries)
		if loose > maxCacheLooseObjects {
			return true
		}
	}
	return false
}
