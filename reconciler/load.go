package reconciler

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
)

// TreeReader is what loading needs from a Git revision: the files under a
// directory with their blob hashes, and blob contents. *gitrepo.Repo
// satisfies it.
type TreeReader interface {
	Files(rev, dir string) ([]gitrepo.File, error)
	ReadBlob(hash string) ([]byte, error)
	TreeFS(rev string) (fs.FS, error)
}

// decoded is the cached result of decoding one blob at one path.
type decoded struct {
	objs  []manifest.Object
	diags manifest.Diagnostics
}

// DecodeCache keeps decoded manifest documents keyed by blob hash and path, so
// a pass over a changed head decodes only the files that changed. Objects
// from DecodeFile are immutable (Assemble copies before defaulting), so they
// are shared safely between passes. It is safe for concurrent use.
type DecodeCache struct {
	mu      sync.Mutex
	entries map[string]decoded
	// Hits and Misses count lookups, for tests and logs.
	Hits, Misses int
}

// NewDecodeCache returns an empty cache.
func NewDecodeCache() *DecodeCache { return &DecodeCache{entries: map[string]decoded{}} }

func cacheKey(blob, file string) string { return blob + "\x00" + file }

// decode returns the decoded documents of file with blob hash blob, reading
// the blob only on a cache miss.
func (c *DecodeCache) decode(file, blob string, read func() ([]byte, error)) ([]manifest.Object, manifest.Diagnostics, error) {
	key := cacheKey(blob, file)
	c.mu.Lock()
	if d, ok := c.entries[key]; ok {
		c.Hits++
		c.mu.Unlock()
		return d.objs, d.diags, nil
	}
	c.Misses++
	c.mu.Unlock()
	data, err := read()
	if err != nil {
		return nil, nil, err
	}
	objs, diags := manifest.DecodeFile(file, data)
	c.mu.Lock()
	c.entries[key] = decoded{objs: objs, diags: diags}
	c.mu.Unlock()
	return objs, diags, nil
}

// retain drops every entry whose key is not in keep, so the cache holds only
// the current revision's files.
func (c *DecodeCache) retain(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if !keep[k] {
			delete(c.entries, k)
		}
	}
}

// Snapshot is the desired state read from one revision (or a working tree).
type Snapshot struct {
	// Revision is the commit the manifests were read from ("" for a work
	// tree).
	Revision string
	// Set holds the assembled manifests; Diagnostics their problems.
	Set         *manifest.Set
	Diagnostics manifest.Diagnostics
}

// LoadRevision reads the manifests of rev through the decode cache: only
// blobs not seen before are read and decoded. dirOverride replaces the
// config's path when non-empty.
func LoadRevision(tr TreeReader, rev, dirOverride string, cache *DecodeCache) (*Snapshot, error) {
	if cache == nil {
		cache = NewDecodeCache()
	}
	fsys, err := tr.TreeFS(rev)
	if err != nil {
		return nil, fmt.Errorf("read revision %s: %w", short(rev), err)
	}
	cfg, diags := manifest.LoadConfig(fsys)
	dir := dirOverride
	if dir == "" {
		dir = cfg.Path
	}
	dir = cleanDir(dir)
	files, err := tr.Files(rev, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			diags = append(diags, manifest.Diagnostic{File: dir, Severity: manifest.SeverityError,
				Message: fmt.Sprintf("manifest path %q does not exist at revision %s", dir, short(rev))})
			set, more := manifest.Assemble(nil, cfg)
			// Nothing was read: the planner must not take the empty Set
			// for "every manifest was removed".
			set.UnreadableFiles = []string{dir}
			return &Snapshot{Revision: rev, Set: set, Diagnostics: append(diags, more...)}, nil
		}
		return nil, fmt.Errorf("list manifests of %s: %w", short(rev), err)
	}
	var objs []manifest.Object
	keep := make(map[string]bool, len(files))
	for _, f := range files {
		if !isManifestPath(f.Path, dir) {
			continue
		}
		keep[cacheKey(f.Blob, f.Path)] = true
		o, d, err := cache.decode(f.Path, f.Blob, func() ([]byte, error) { return tr.ReadBlob(f.Blob) })
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: %w", f.Path, short(rev), err)
		}
		objs = append(objs, o...)
		diags = append(diags, d...)
	}
	cache.retain(keep)
	set, more := manifest.Assemble(objs, cfg)
	set.UnreadableFiles = manifest.FileErrors(diags)
	diags = append(diags, more...)
	diags.Sort()
	return &Snapshot{Revision: rev, Set: set, Diagnostics: diags}, nil
}

// LoadTree reads the manifests of a plain file tree (a working copy with
// uncommitted edits) without caching.
func LoadTree(fsys fs.FS, dirOverride string) *Snapshot {
	set, diags := manifest.Load(fsys, dirOverride)
	return &Snapshot{Set: set, Diagnostics: diags}
}

func cleanDir(dir string) string {
	dir = path.Clean(strings.TrimPrefix(dir, "./"))
	if dir == "" {
		return "."
	}
	return dir
}

// isManifestPath mirrors manifest.Load's walk: *.yaml / *.yml below dir, no
// hidden path component (.osbgit/, .git/, .github/ …), not osbgit.yaml at
// the root (the Config).
func isManifestPath(p, dir string) bool {
	if p == manifest.ConfigFileName {
		return false
	}
	if !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
		return false
	}
	rel := p
	if dir != "." {
		if !strings.HasPrefix(p, dir+"/") {
			return false
		}
		rel = strings.TrimPrefix(p, dir+"/")
	}
	for _, part := range strings.Split(rel, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	return true
}

// LoadRecords reads the .osbgit/ records of the status branch head (rev ""
// or a missing status branch gives empty records).
func LoadRecords(tr TreeReader, rev string) (*manifest.Records, error) {
	if rev == "" {
		return &manifest.Records{Status: map[manifest.Ref]*manifest.StatusRecord{}, Catalogs: map[manifest.Ref]*manifest.CatalogRecord{}}, nil
	}
	fsys, err := tr.TreeFS(rev)
	if err != nil {
		return nil, fmt.Errorf("read records at %s: %w", short(rev), err)
	}
	recs, err := manifest.LoadRecords(fsys)
	if err != nil {
		return nil, fmt.Errorf("records at %s: %w", short(rev), err)
	}
	return recs, nil
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	if rev == "" {
		return "(work tree)"
	}
	return rev
}
