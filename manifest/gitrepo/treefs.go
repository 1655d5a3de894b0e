package gitrepo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// TreeFS returns a read-only fs.FS over rev's tree, read straight from the
// object store (no checkout). It implements fs.ReadDirFS, fs.ReadFileFS,
// fs.StatFS and fs.SubFS, so fs.WalkDir and fs.Glob work efficiently.
// Directories list in name order; every entry's ModTime is the commit's
// committer time and FileInfo.Sys() returns the object hash as a string
// (a blob hash for files), so callers can cache decoded files by content.
// Symbolic links are reported with fs.ModeSymlink and read as their target
// text; submodules as fs.ModeIrregular entries that cannot be opened.
//
// The FS stays valid after later Fetch and write calls (objects are not
// removed while the Repo is open, except when Fetch has to rebuild a corrupt
// cache) and is safe for concurrent use.
func (r *Repo) TreeFS(rev string) (fs.FS, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	c, err := r.commit(rev)
	if err != nil {
		return nil, r.newError("read", "", err)
	}
	return &treeFS{r: r, root: c.TreeHash, mtime: c.Committer.When, trees: map[string]*dirNode{}}, nil
}

// treeFS implements the FS returned by TreeFS.
type treeFS struct {
	r     *Repo
	root  plumbing.Hash
	mtime time.Time
	// trees caches decoded directories by slash path ("." is the root).
	// Guarded by r.mu.
	trees map[string]*dirNode
}

// dirNode is a decoded tree with an index of its entries by name.
type dirNode struct {
	tree *object.Tree
	idx  map[string]int
}

func (d *dirNode) find(name string) *object.TreeEntry {
	if i, ok := d.idx[name]; ok {
		return &d.tree.Entries[i]
	}
	return nil
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
	_ fs.SubFS      = (*treeFS)(nil)
)

// tree returns the directory at dir. Caller holds r.mu.
func (t *treeFS) tree(dir string) (*dirNode, error) {
	if d, ok := t.trees[dir]; ok {
		return d, nil
	}
	var tr *object.Tree
	var err error
	if dir == "." {
		tr, err = object.GetTree(t.r.st, t.root)
	} else {
		var parent *dirNode
		parent, err = t.tree(path.Dir(dir))
		if err != nil {
			return nil, err
		}
		e := parent.find(path.Base(dir))
		if e == nil {
			return nil, fs.ErrNotExist
		}
		if e.Mode != filemode.Dir {
			return nil, errNotDir
		}
		tr, err = object.GetTree(t.r.st, e.Hash)
	}
	if err != nil {
		return nil, err
	}
	d := &dirNode{tree: tr, idx: make(map[string]int, len(tr.Entries))}
	for i, e := range tr.Entries {
		d.idx[e.Name] = i
	}
	t.trees[dir] = d
	return d, nil
}

var errNotDir = errors.New("not a directory")

// lookup returns the entry for name; the root is a synthetic directory
// entry. Caller holds r.mu.
func (t *treeFS) lookup(name string) (object.TreeEntry, error) {
	if name == "." {
		return object.TreeEntry{Name: ".", Mode: filemode.Dir, Hash: t.root}, nil
	}
	parent, err := t.tree(path.Dir(name))
	if err != nil {
		if errors.Is(err, errNotDir) {
			return object.TreeEntry{}, fs.ErrNotExist
		}
		return object.TreeEntry{}, err
	}
	e := parent.find(path.Base(name))
	if e == nil {
		return object.TreeEntry{}, fs.ErrNotExist
	}
	return *e, nil
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// Open implements fs.FS.
func (t *treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr("open", name, fs.ErrInvalid)
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	e, err := t.lookup(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	info := t.info(e)
	switch {
	case e.Mode == filemode.Dir:
		entries, err := t.readDirLocked(name)
		if err != nil {
			return nil, pathErr("open", name, err)
		}
		return &treeDir{info: info, entries: entries}, nil
	case e.Mode == filemode.Submodule:
		return nil, pathErr("open", name, fmt.Errorf("submodule %s is not part of this repository", name))
	}
	data, err := t.r.readBlobLocked(e.Hash)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	info.size = int64(len(data))
	info.sizeKnown = true
	return &treeFile{info: info, Reader: bytes.NewReader(data)}, nil
}

// ReadFile implements fs.ReadFileFS.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr("readfile", name, fs.ErrInvalid)
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	e, err := t.lookup(name)
	if err != nil {
		return nil, pathErr("readfile", name, err)
	}
	if e.Mode == filemode.Dir {
		return nil, pathErr("readfile", name, errors.New("is a directory"))
	}
	if e.Mode == filemode.Submodule {
		return nil, pathErr("readfile", name, fs.ErrInvalid)
	}
	data, err := t.r.readBlobLocked(e.Hash)
	if err != nil {
		return nil, pathErr("readfile", name, err)
	}
	return data, nil
}

// ReadDir implements fs.ReadDirFS.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr("readdir", name, fs.ErrInvalid)
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	entries, err := t.readDirLocked(name)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	return entries, nil
}

func (t *treeFS) readDirLocked(name string) ([]fs.DirEntry, error) {
	d, err := t.tree(name)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(d.tree.Entries))
	for _, e := range d.tree.Entries {
		out = append(out, fs.FileInfoToDirEntry(t.info(e)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// Stat implements fs.StatFS. The size of a file is read from the object
// header.
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr("stat", name, fs.ErrInvalid)
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	e, err := t.lookup(name)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	info := t.info(e)
	if e.Mode != filemode.Dir && e.Mode != filemode.Submodule {
		if o, err := t.r.st.EncodedObject(plumbing.AnyObject, e.Hash); err == nil {
			info.size, info.sizeKnown = o.Size(), true
		}
	}
	return info, nil
}

// Sub implements fs.SubFS: the result is rooted at dir's tree.
func (t *treeFS) Sub(dir string) (fs.FS, error) {
	if !fs.ValidPath(dir) {
		return nil, pathErr("sub", dir, fs.ErrInvalid)
	}
	if dir == "." {
		return t, nil
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	e, err := t.lookup(dir)
	if err != nil {
		return nil, pathErr("sub", dir, err)
	}
	if e.Mode != filemode.Dir {
		return nil, pathErr("sub", dir, errNotDir)
	}
	return &treeFS{r: t.r, root: e.Hash, mtime: t.mtime, trees: map[string]*dirNode{}}, nil
}

// info builds a FileInfo for a tree entry. Caller holds r.mu.
func (t *treeFS) info(e object.TreeEntry) *treeInfo {
	return &treeInfo{r: t.r, name: e.Name, mode: e.Mode, hash: e.Hash, mtime: t.mtime}
}

// treeInfo implements fs.FileInfo for a tree entry. A file's size is looked
// up lazily (listing a directory should not read every blob).
type treeInfo struct {
	r         *Repo
	name      string
	mode      filemode.FileMode
	hash      plumbing.Hash
	mtime     time.Time
	size      int64
	sizeKnown bool
}

// Name implements fs.FileInfo.
func (i *treeInfo) Name() string { return i.name }

// Size implements fs.FileInfo; a blob's size is read lazily.
func (i *treeInfo) Size() int64 {
	if i.sizeKnown || i.mode == filemode.Dir || i.mode == filemode.Submodule {
		return i.size
	}
	i.r.mu.Lock()
	defer i.r.mu.Unlock()
	if o, err := i.r.st.EncodedObject(plumbing.AnyObject, i.hash); err == nil {
		i.size, i.sizeKnown = o.Size(), true
	}
	return i.size
}

// Mode implements fs.FileInfo, mapping git modes to read-only file modes.
func (i *treeInfo) Mode() fs.FileMode {
	switch i.mode {
	case filemode.Dir:
		return fs.ModeDir | 0o555
	case filemode.Executable:
		return 0o555
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Submodule:
		return fs.ModeIrregular
	}
	return 0o444
}

// ModTime implements fs.FileInfo: the commit's committer time.
func (i *treeInfo) ModTime() time.Time { return i.mtime }

// IsDir implements fs.FileInfo.
func (i *treeInfo) IsDir() bool { return i.mode == filemode.Dir }

// Sys returns the object hash as a hex string.
func (i *treeInfo) Sys() any { return i.hash.String() }

// treeFile is an open blob.
type treeFile struct {
	info *treeInfo
	*bytes.Reader
}

// Stat implements fs.File.
func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }

// Close implements fs.File.
func (f *treeFile) Close() error { return nil }

// treeDir is an open directory.
type treeDir struct {
	info    *treeInfo
	entries []fs.DirEntry
	off     int
}

// Stat implements fs.File.
func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }

// Close implements fs.File.
func (d *treeDir) Close() error { return nil }

// Read implements fs.File; directories cannot be read.
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return rest[:n], nil
}

// readBlobLocked reads a blob's contents. Caller holds r.mu.
func (r *Repo) readBlobLocked(h plumbing.Hash) ([]byte, error) {
	return readBlobFrom(r.st, h)
}

// cleanDir normalises a directory argument: "", "." and "/" mean the root;
// surrounding slashes are dropped.
func cleanDir(dir string) (string, error) {
	dir = strings.Trim(dir, "/")
	if dir == "" {
		return ".", nil
	}
	dir = path.Clean(dir)
	if !fs.ValidPath(dir) {
		return "", fmt.Errorf("invalid directory %q", dir)
	}
	return dir, nil
}
