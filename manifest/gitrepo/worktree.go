package gitrepo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// WorkTreeFS returns the working tree of a local working copy as an fs.FS,
// so `osbgit diff` shows the effect of uncommitted (and untracked) edits
// before they are committed. `.git` is hidden, and so are paths that
// .gitignore or .git/info/exclude ignore, unless the HEAD commit tracks
// them — the FS shows what `git add -A && git commit` would commit. It reads
// the files as they are on disk at each call; nothing is cached.
//
// For any other source (a URL, a bare repository) it returns an error
// matching ErrNotWorkTree: use TreeFS on the branch head instead.
func (r *Repo) WorkTreeFS() (fs.FS, error) {
	if r.src.kind != kindWorkTree {
		return nil, r.newError("read", "", fmt.Errorf("%w: %s is a %s; WorkTreeFS needs a local working copy", ErrNotWorkTree, r.shownURL, r.src.kind))
	}
	root := r.workRoot
	patterns, err := gitignore.ReadPatterns(osfs.New(root), nil)
	if err != nil {
		return nil, r.newError("read", "", fmt.Errorf("reading .gitignore files: %w", err))
	}
	if data, err := os.ReadFile(filepath.Join(root, ".git", "info", "exclude")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), " \t\r")
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			patterns = append(patterns, gitignore.ParsePattern(line, nil))
		}
	}
	w := &workFS{fsys: os.DirFS(root), matcher: gitignore.NewMatcher(patterns)}
	if head, err := r.TreeFS("HEAD"); err == nil {
		w.head = head
	}
	return w, nil
}

// workFS is the FS returned by WorkTreeFS.
type workFS struct {
	fsys    fs.FS
	matcher gitignore.Matcher
	head    fs.FS // HEAD's tree, nil for an unborn branch
}

var (
	_ fs.ReadDirFS  = (*workFS)(nil)
	_ fs.ReadFileFS = (*workFS)(nil)
	_ fs.StatFS     = (*workFS)(nil)
)

// hidden reports whether name is .git (or inside it), or ignored and not
// tracked.
func (w *workFS) hidden(name string, isDir bool) bool {
	if name == "." {
		return false
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if p == ".git" {
			return true
		}
	}
	if !w.matcher.Match(parts, isDir) {
		return false
	}
	if w.head != nil {
		if _, err := fs.Stat(w.head, name); err == nil {
			return false // tracked files stay visible even if ignored
		}
	}
	return true
}

// Open implements fs.FS.
func (w *workFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr("open", name, fs.ErrInvalid)
	}
	f, err := w.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if w.hidden(name, fi.IsDir()) {
		_ = f.Close()
		return nil, pathErr("open", name, fs.ErrNotExist)
	}
	if rd, ok := f.(fs.ReadDirFile); ok && fi.IsDir() {
		return &workDir{ReadDirFile: rd, w: w, name: name}, nil
	}
	return f, nil
}

// ReadDir implements fs.ReadDirFS.
func (w *workFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr("readdir", name, fs.ErrInvalid)
	}
	if w.hidden(name, true) {
		return nil, pathErr("readdir", name, fs.ErrNotExist)
	}
	entries, err := fs.ReadDir(w.fsys, name)
	if err != nil {
		return nil, err
	}
	return w.filter(name, entries), nil
}

func (w *workFS) filter(dir string, entries []fs.DirEntry) []fs.DirEntry {
	out := entries[:0]
	for _, e := range entries {
		p := e.Name()
		if dir != "." {
			p = dir + "/" + p
		}
		if !w.hidden(p, e.IsDir()) {
			out = append(out, e)
		}
	}
	return out
}

// ReadFile implements fs.ReadFileFS.
func (w *workFS) ReadFile(name string) ([]byte, error) {
	if _, err := w.Stat(name); err != nil {
		return nil, err
	}
	return fs.ReadFile(w.fsys, name)
}

// Stat implements fs.StatFS.
func (w *workFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr("stat", name, fs.ErrInvalid)
	}
	fi, err := fs.Stat(w.fsys, name)
	if err != nil {
		return nil, err
	}
	if w.hidden(name, fi.IsDir()) {
		return nil, pathErr("stat", name, fs.ErrNotExist)
	}
	return fi, nil
}

// workDir filters an open directory's entries.
type workDir struct {
	fs.ReadDirFile
	w    *workFS
	name string
}

// ReadDir implements fs.ReadDirFile, hiding filtered entries.
func (d *workDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if n <= 0 {
		entries, err := d.ReadDirFile.ReadDir(n)
		return d.w.filter(d.name, entries), err
	}
	for {
		entries, err := d.ReadDirFile.ReadDir(n)
		entries = d.w.filter(d.name, entries)
		if len(entries) > 0 || err != nil {
			if len(entries) > 0 && errors.Is(err, io.EOF) {
				err = nil
			}
			return entries, err
		}
	}
}
