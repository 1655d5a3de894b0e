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

// decodeFiles returns the decoded documents of files, in order. Cache hits
// are returned as they are; misses are read one at a time on the calling
// goroutine (reads share the repository's lock) and decoded by up to
// GOMAXPROCS goroutines, then cached. A read error is returned with the
// index of the first file that failed, in file order.
func (c *DecodeCache) decodeFiles(files []gitrepo.File, read func(blob string) ([]byte, error)) ([]decoded, int, error) {
	out := make([]decoded, len(files))
	var miss []int
	c.mu.Lock()
	for i, f := range files {
		if d, ok := c.entries[cacheKey(f.Blob, f.Path)]; ok {
			c.Hits++
			out[i] = d
			continue
		}
		c.Misses++
		miss = append(miss, i)
	}
	c.mu.Unlock()
	errs := make([]error, len(files))
	manifest.DecodeRange(len(miss), func(j int) ([]byte, error) { return read(files[miss[j]].Blob) }, func(j int, data []byte, err error) {
		i := miss[j]
		if err != nil {
			errs[i] = err
			return
		}
		objs, diags := manifest.DecodeFile(files[i].Path, data)
		out[i] = decoded{objs: objs, diags: diags}
	})
	for i, err := range errs {
		if err != nil {
			return nil, i, err
		}
	}
	c.mu.Lock()
	for _, i := range miss {
		c.entries[cacheKey(files[i].Blob, files[i].Path)] = out[i]
	}
	c.mu.Unlock()
	return out, 0, nil
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
// blobs not seen before are read and decoded (with a nil cache, all of
// them, and nothing is kept). dirOverride replaces the config's path when
// non-empty.
func LoadRevision(tr TreeReader, rev, dirOverride string, cache *DecodeCache) (*Snapshot, error) {
	keepCache := cache != nil
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
	manifests := make([]gitrepo.File, 0, len(files))
	keep := make(map[string]bool, len(files))
	for _, f := range files {
		if !isManifestPath(f.Path, dir) {
			continue
		}
		keep[cacheKey(f.Blob, f.Path)] = true
		manifests = append(manifests, f)
	}
	docs, failed, err := cache.decodeFiles(manifests, tr.ReadBlob)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", manifests[failed].Path, short(rev), err)
	}
	var objs []manifest.Object
	for _, d := range docs {
		objs = append(objs, d.objs...)
		diags = append(diags, d.diags...)
	}
	if keepCache {
		cache.retain(keep)
	}
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

// blobReaderSource is a TreeReader that can read blobs beside its other
// readers (*gitrepo.Repo).
type blobReaderSource interface {
	BlobReader() (*gitrepo.BlobReader, error)
}

// LoadRecords reads the .osbgit/ records of the status branch head (rev ""
// or a missing status branch gives empty records). Files are listed with
// their blob hashes and read by hash (no path lookup per file), and decoded
// in parallel (manifest.LoadRecordFiles).
func LoadRecords(tr TreeReader, rev string) (*manifest.Records, error) {
	empty := &manifest.Records{Status: map[manifest.Ref]*manifest.StatusRecord{}, Catalogs: map[manifest.Ref]*manifest.CatalogRecord{}}
	if rev == "" {
		return empty, nil
	}
	files, err := tr.Files(rev, manifest.RecordDir)
	if errors.Is(err, fs.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read records at %s: %w", short(rev), err)
	}
	paths := make([]string, 0, len(files))
	blobs := make(map[string]string, len(files))
	for _, f := range files {
		paths = append(paths, f.Path)
		blobs[f.Path] = f.Blob
	}
	read := tr.ReadBlob
	if br, ok := tr.(blobReaderSource); ok {
		// A reader of its own: the manifests are read meanwhile.
		if r, err := br.BlobReader(); err == nil {
			defer r.Close()
			read = r.ReadBlob
		}
	}
	recs, err := manifest.LoadRecordFiles(paths, func(p string) ([]byte, error) { return read(blobs[p]) })
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
