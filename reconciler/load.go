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

// decoded is the cached result of decoding one manifest blob at one path.
type decoded struct {
	objs  []manifest.Object
	diags manifest.Diagnostics
}

// DecodeCache keeps what passes decoded from Git blobs, manifest documents
// and .osbgit/ records, keyed by blob hash and path, so a pass over a
// changed head decodes only the files that changed (and a pass whose
// records did not change decodes none). Decoded objects and records are
// shared between passes and never modified: Assemble copies objects before
// defaulting, and the executor copies a record before changing it. It is
// safe for concurrent use. Long-running processes (`run`) keep one; a nil
// cache decodes everything and keeps nothing.
type DecodeCache struct {
	manifests blobCache[decoded]
	records   blobCache[manifest.RecordFile]
}

// NewDecodeCache returns an empty cache.
func NewDecodeCache() *DecodeCache { return &DecodeCache{} }

func (c *DecodeCache) manifestCache() *blobCache[decoded] {
	if c == nil {
		return nil
	}
	return &c.manifests
}

func (c *DecodeCache) recordCache() *blobCache[manifest.RecordFile] {
	if c == nil {
		return nil
	}
	return &c.records
}

// blobCache holds what was decoded from blobs, keyed by blob hash and
// path.
type blobCache[T any] struct {
	mu      sync.Mutex
	entries map[blobKey]T
	// hits and misses count lookups, for tests.
	hits, misses int
}

// blobKey is a file's blob hash and path: the two strings the file list
// holds, where a key string of its own for every lookup and entry made
// 400,000 strings per pass at 200,000 resources.
type blobKey struct{ blob, path string }

func cacheKey(f gitrepo.File) blobKey { return blobKey{f.Blob, f.Path} }

// decode returns decode(path, content) of each file, in order. Cache hits
// are returned as they are; misses are read one at a time on the calling
// goroutine (reads share the repository's lock) and decoded by up to
// GOMAXPROCS goroutines (manifest.DecodeRange). The cache then holds
// exactly files, those of the revision being read; a nil cache holds
// nothing. A read error is returned with the index of the first file that
// failed, in file order, and changes nothing.
func (c *blobCache[T]) decode(files []gitrepo.File, read func(blob string) ([]byte, error), decode func(f gitrepo.File, data []byte) T) ([]T, int, error) {
	out := make([]T, len(files))
	miss := make([]int, 0, len(files))
	if c != nil {
		c.mu.Lock()
		for i, f := range files {
			if v, ok := c.entries[cacheKey(f)]; ok {
				c.hits++
				out[i] = v
				continue
			}
			c.misses++
			miss = append(miss, i)
		}
		c.mu.Unlock()
	} else {
		for i := range files {
			miss = append(miss, i)
		}
	}
	errs := make([]error, len(files))
	manifest.DecodeRange(len(miss), func(j int) ([]byte, error) { return read(files[miss[j]].Blob) }, func(j int, data []byte, err error) {
		i := miss[j]
		if err != nil {
			errs[i] = err
			return
		}
		out[i] = decode(files[i], data)
	})
	for i, err := range errs {
		if err != nil {
			return nil, i, err
		}
	}
	if c != nil {
		entries := make(map[blobKey]T, len(files))
		for i, f := range files {
			entries[cacheKey(f)] = out[i]
		}
		c.mu.Lock()
		c.entries = entries
		c.mu.Unlock()
	}
	return out, 0, nil
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
// non-empty; opts are manifest.Assemble's.
func LoadRevision(tr TreeReader, rev, dirOverride string, cache *DecodeCache, opts ...manifest.AssembleOption) (*Snapshot, error) {
	l, err := loadRevision(tr, rev, dirOverride, cache, nil, opts...)
	if err != nil {
		return nil, err
	}
	return l.snap, nil
}

// revisionLoad is a loaded revision with, when asked for, the scope index
// entry of each of its manifest files (scope.go).
type revisionLoad struct {
	snap *Snapshot
	revisionConfig
	// files are the manifest files; entries their index entries.
	files   []gitrepo.File
	entries []indexEntry
}

// revisionConfig is a revision's osbgit.yaml: the Config, its diagnostics
// and bytes (nil when there is none), and the manifest directory read.
type revisionConfig struct {
	cfg   *manifest.Config
	diags manifest.Diagnostics
	raw   []byte
	dir   string
}

// readConfig reads the osbgit.yaml of rev; dirOverride replaces its path
// when non-empty.
func readConfig(tr TreeReader, rev, dirOverride string) (revisionConfig, error) {
	fsys, err := tr.TreeFS(rev)
	if err != nil {
		return revisionConfig{}, fmt.Errorf("read revision %s: %w", short(rev), err)
	}
	c := revisionConfig{dir: dirOverride}
	c.cfg, c.diags = manifest.LoadConfig(fsys)
	c.raw, _ = fs.ReadFile(fsys, manifest.ConfigFileName)
	if c.dir == "" {
		c.dir = c.cfg.Path
	}
	c.dir = cleanDir(c.dir)
	return c, nil
}

// loadRevision loads rev, with the index entries of its manifest files
// when ix is not nil. The entries are taken before the objects are
// assembled, so that without a cache the objects as decoded are garbage
// once copied (keeping them for the index raised the no-op pass's peak).
func loadRevision(tr TreeReader, rev, dirOverride string, cache *DecodeCache, ix *indexing, opts ...manifest.AssembleOption) (*revisionLoad, error) {
	rc, err := readConfig(tr, rev, dirOverride)
	if err != nil {
		return nil, err
	}
	if ix != nil {
		ix.current = ix.fingerprint(rc.raw, rc.dir)
		if ix.last != nil && ix.last.Fingerprint != ix.current {
			ix.last = nil // made under another osbgit.yaml or options
		}
	}
	cfg, diags, dir := rc.cfg, rc.diags, rc.dir
	files, err := tr.Files(rev, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			diags = append(diags, manifest.Diagnostic{File: dir, Severity: manifest.SeverityError,
				Message: fmt.Sprintf("manifest path %q does not exist at revision %s", dir, short(rev))})
			set, more := manifest.Assemble(nil, cfg, opts...)
			// Nothing was read: the planner must not take the empty Set
			// for "every manifest was removed".
			set.UnreadableFiles = []string{dir}
			return &revisionLoad{snap: &Snapshot{Revision: rev, Set: set, Diagnostics: append(diags, more...)}, revisionConfig: rc}, nil
		}
		return nil, fmt.Errorf("list manifests of %s: %w", short(rev), err)
	}
	manifests := make([]gitrepo.File, 0, len(files))
	for _, f := range files {
		if isManifestPath(f.Path, dir) {
			manifests = append(manifests, f)
		}
	}
	read, done := blobReader(tr)
	defer done()
	docs, failed, err := cache.manifestCache().decode(manifests, read, decodeManifest)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", manifests[failed].Path, short(rev), err)
	}
	l := &revisionLoad{revisionConfig: rc, files: manifests}
	if ix != nil {
		var last map[string]indexEntry
		if ix.last != nil {
			last = ix.last.Manifests
		}
		l.entries = make([]indexEntry, len(docs))
		for i, f := range manifests {
			if l.entries[i], err = reuse(last, f.Path, f.Blob, func() (indexEntry, error) { return manifestEntry(f.Blob, docs[i], cfg) }); err != nil {
				l.entries = nil // no index: the next pass loads everything
				break
			}
		}
	}
	l.snap = assemble(rev, cfg, diags, docs, opts...)
	return l, nil
}

// assemble builds the snapshot of rev from what its manifest files decoded
// to, after the Config's diagnostics.
func assemble(rev string, cfg *manifest.Config, diags manifest.Diagnostics, docs []decoded, opts ...manifest.AssembleOption) *Snapshot {
	var objs []manifest.Object
	for _, d := range docs {
		objs = append(objs, d.objs...)
		diags = append(diags, d.diags...)
	}
	set, more := manifest.Assemble(objs, cfg, opts...)
	set.UnreadableFiles = manifest.FileErrors(diags)
	diags = append(diags, more...)
	diags.Sort()
	return &Snapshot{Revision: rev, Set: set, Diagnostics: diags}
}

// decodeManifest decodes the manifest file f (blob data), its objects
// marked with the blob they came from.
func decodeManifest(f gitrepo.File, data []byte) decoded {
	objs, diags := manifest.DecodeFile(f.Path, data)
	manifest.SetBlob(objs, f.Blob)
	return decoded{objs: objs, diags: diags}
}

// LoadTree reads the manifests of a plain file tree (a working copy with
// uncommitted edits) without caching; opts are manifest.Assemble's.
func LoadTree(fsys fs.FS, dirOverride string, opts ...manifest.AssembleOption) *Snapshot {
	set, diags := manifest.Load(fsys, dirOverride, opts...)
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

// blobReader returns how to read the blobs of a load and what to call
// after it: a reader of its own where tr has one, whose small object cache
// does not keep blobs read once (a pass reads every manifest and record
// once; tr's cache holding the last 8 MB of them raised the no-op pass's
// peak RSS), and which does not wait for tr's lock while another load
// reads.
func blobReader(tr TreeReader) (read func(blob string) ([]byte, error), done func()) {
	if br, ok := tr.(blobReaderSource); ok {
		if r, err := br.BlobReader(); err == nil {
			return r.ReadBlob, func() { r.Close() }
		}
	}
	return tr.ReadBlob, func() {}
}

// LoadRecords reads the records under root (a deployment's records
// directory) of the status branch head (rev "" or a missing status branch
// gives empty records) through the decode cache: only record blobs not
// seen before are read and decoded. Files are listed with their blob
// hashes and read by hash (no path lookup per file), and decoded in
// parallel; root.RecordPaths says which files are records and how they
// are taken (another deployment's are not). A write-ahead journal is laid
// over them (manifest.RecordRoot.FoldJournal).
func LoadRecords(tr TreeReader, root manifest.RecordRoot, rev string, cache *DecodeCache) (*manifest.Records, error) {
	recs, _, _, err := loadRecords(tr, root, rev, cache)
	return recs, err
}

// loadRecords is LoadRecords, with the record files read and what each
// decoded to (for the pass's scope index, scope.go).
func loadRecords(tr TreeReader, root manifest.RecordRoot, rev string, cache *DecodeCache) (*manifest.Records, []gitrepo.File, []manifest.RecordFile, error) {
	if rev == "" {
		recs, err := manifest.CollectRecords(nil, nil)
		return recs, nil, nil, err
	}
	files, err := tr.Files(rev, string(root))
	if errors.Is(err, fs.ErrNotExist) {
		recs, err := manifest.CollectRecords(nil, nil)
		return recs, nil, nil, err
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read records at %s: %w", short(rev), err)
	}
	paths := make([]string, 0, len(files))
	byPath := make(map[string]gitrepo.File, len(files))
	for _, f := range files {
		paths = append(paths, f.Path)
		byPath[f.Path] = f
	}
	journal, hasJournal := byPath[root.JournalPath()]
	recordPaths, warnings := root.RecordPaths(paths)
	recordFiles := make([]gitrepo.File, 0, len(recordPaths))
	for _, p := range recordPaths {
		recordFiles = append(recordFiles, byPath[p])
	}
	read, done := blobReader(tr)
	defer done()
	decoded, failed, err := cache.recordCache().decode(recordFiles, read, decodeRecord(root))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read record %s at %s: %w", recordFiles[failed].Path, short(rev), err)
	}
	recs, err := manifest.CollectRecords(decoded, warnings)
	if hasJournal {
		data, rerr := read(journal.Blob)
		if rerr == nil {
			rerr = root.FoldJournal(recs, data)
		}
		err = errors.Join(err, rerr)
	}
	if err != nil {
		// The records that did decode come with the error: status shows
		// them beside it (a pass refuses all).
		return recs, recordFiles, decoded, fmt.Errorf("records at %s: %w", short(rev), err)
	}
	return recs, recordFiles, decoded, nil
}

// decodeRecord decodes the record files of root.
func decodeRecord(root manifest.RecordRoot) func(f gitrepo.File, data []byte) manifest.RecordFile {
	return func(f gitrepo.File, data []byte) manifest.RecordFile { return root.DecodeRecordFile(f.Path, data) }
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
