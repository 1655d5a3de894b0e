package gitrepo

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// File is one file of a commit's tree.
type File struct {
	// Path is the slash-separated path from the repository root.
	Path string
	// Blob is the hash of the file's contents: equal hashes mean equal
	// contents, so callers can cache decoded documents by it.
	Blob string
	// Mode is the file's mode: 0o444 regular, 0o555 executable, or
	// fs.ModeSymlink (the contents are the link target).
	Mode fs.FileMode
}

// ChangeAction says how a file changed between two revisions.
type ChangeAction int

// Change actions. A rename shows as a Deleted and an Added change.
const (
	Added ChangeAction = iota + 1
	Modified
	Deleted
)

// String returns "added", "modified" or "deleted".
func (a ChangeAction) String() string {
	switch a {
	case Added:
		return "added"
	case Modified:
		return "modified"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("ChangeAction(%d)", int(a))
}

// Change is one file that differs between two revisions.
type Change struct {
	// Path is the slash-separated path from the repository root.
	Path string
	// Action is how the file changed.
	Action ChangeAction
	// FromBlob is the old blob hash ("" when Added).
	FromBlob string
	// ToBlob is the new blob hash ("" when Deleted).
	ToBlob string
}

// Files lists every file under dir ("" or "." for the whole tree) in rev,
// with its blob hash, sorted by path. Submodules are skipped. A missing dir
// is an error matching fs.ErrNotExist. Only trees are read, not blobs, so
// listing is cheap; read contents with ReadBlob.
func (r *Repo) Files(rev, dir string) ([]File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	out, err := r.filesLocked(rev, dir)
	if err != nil {
		return nil, r.newError("read", "", err)
	}
	return out, nil
}

func (r *Repo) filesLocked(rev, dir string) ([]File, error) {
	dir, err := cleanDir(dir)
	if err != nil {
		return nil, err
	}
	c, err := r.commit(rev)
	if err != nil {
		return nil, err
	}
	th, err := r.subtree(c.TreeHash, dir)
	if err != nil {
		return nil, err
	}
	if th.IsZero() {
		return nil, fmt.Errorf("%s in %s: %w", dir, shortHash(c.Hash.String()), fs.ErrNotExist)
	}
	prefix := ""
	if dir != "." {
		prefix = dir + "/"
	}
	var out []File
	if err := r.walkFiles(th, prefix, &out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// walkFiles appends every file under tree h. Caller holds r.mu.
func (r *Repo) walkFiles(h plumbing.Hash, prefix string, out *[]File) error {
	t, err := object.GetTree(r.st, h)
	if err != nil {
		return fmt.Errorf("tree %s: %w", prefix, err)
	}
	for _, e := range t.Entries {
		p := prefix + e.Name
		switch e.Mode {
		case filemode.Dir:
			if err := r.walkFiles(e.Hash, p+"/", out); err != nil {
				return err
			}
		case filemode.Submodule:
		default:
			*out = append(*out, File{Path: p, Blob: e.Hash.String(), Mode: (&treeInfo{mode: e.Mode}).Mode()})
		}
	}
	return nil
}

// subtree returns the hash of the tree at dir under root, or the zero hash
// when there is no directory there. Caller holds r.mu.
func (r *Repo) subtree(root plumbing.Hash, dir string) (plumbing.Hash, error) {
	return subtreeIn(r.st, root, dir)
}

// subtreeIn is subtree reading trees from s.
func subtreeIn(s storer.EncodedObjectStorer, root plumbing.Hash, dir string) (plumbing.Hash, error) {
	if dir == "." || dir == "" {
		return root, nil
	}
	h := root
	for _, part := range strings.Split(dir, "/") {
		if h.IsZero() {
			return h, nil
		}
		t, err := object.GetTree(s, h)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		var next *object.TreeEntry
		for i := range t.Entries {
			if t.Entries[i].Name == part {
				next = &t.Entries[i]
				break
			}
		}
		if next == nil || next.Mode != filemode.Dir {
			return plumbing.ZeroHash, nil
		}
		h = next.Hash
	}
	return h, nil
}

// TreeHash returns the hash of the tree at dir in rev. Two revisions with
// the same TreeHash for the manifests path have identical manifests, which
// is cheaper to check than a diff. A missing dir matches fs.ErrNotExist.
func (r *Repo) TreeHash(rev, dir string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return "", err
	}
	h, err := func() (plumbing.Hash, error) {
		d, err := cleanDir(dir)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		c, err := r.commit(rev)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		h, err := r.subtree(c.TreeHash, d)
		if err == nil && h.IsZero() {
			err = fmt.Errorf("%s: %w", d, fs.ErrNotExist)
		}
		return h, err
	}()
	if err != nil {
		return "", r.newError("read", "", err)
	}
	return h.String(), nil
}

// ReadBlob returns the contents of the blob with the given hash (from
// File.Blob or Change.ToBlob).
func (r *Repo) ReadBlob(hash string) ([]byte, error) {
	if len(hash) != 40 || !plumbing.IsHash(hash) {
		return nil, r.newError("read", "", fmt.Errorf("invalid blob hash %q", hash))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	data, err := r.readBlobLocked(plumbing.NewHash(hash))
	if err != nil {
		return nil, r.newError("read", "", err)
	}
	return data, nil
}

// ChangedFiles lists the files under dir that differ between fromRev and
// toRev, sorted by path. Subtrees with equal hashes are skipped without
// being read, so the cost follows the size of the change, not of the
// repository. Both revisions must be present locally; an old revision a
// fresh cache never fetched yields ErrRevisionNotFound and the caller should
// reload everything from Files.
func (r *Repo) ChangedFiles(fromRev, toRev, dir string) ([]Change, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	out, err := func() ([]Change, error) {
		d, err := cleanDir(dir)
		if err != nil {
			return nil, err
		}
		a, b, err := r.commitPair(fromRev, toRev)
		if err != nil {
			return nil, err
		}
		ta, err := r.subtree(a.TreeHash, d)
		if err != nil {
			return nil, err
		}
		tb, err := r.subtree(b.TreeHash, d)
		if err != nil {
			return nil, err
		}
		prefix := ""
		if d != "." {
			prefix = d + "/"
		}
		var out []Change
		if err := r.diffTrees(ta, tb, prefix, &out); err != nil {
			return nil, err
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
		return out, nil
	}()
	if err != nil {
		return nil, r.newError("read", "", err)
	}
	return out, nil
}

func (r *Repo) commitPair(fromRev, toRev string) (*object.Commit, *object.Commit, error) {
	a, err := r.commit(fromRev)
	if err != nil {
		return nil, nil, err
	}
	b, err := r.commit(toRev)
	if err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

// treeEntries returns a tree's entries by name; the zero hash is an empty
// tree. Caller holds r.mu.
func (r *Repo) treeEntries(h plumbing.Hash) (map[string]object.TreeEntry, error) {
	if h.IsZero() {
		return nil, nil
	}
	t, err := object.GetTree(r.st, h)
	if err != nil {
		return nil, err
	}
	m := make(map[string]object.TreeEntry, len(t.Entries))
	for _, e := range t.Entries {
		m[e.Name] = e
	}
	return m, nil
}

// diffTrees appends the file changes between trees a and b (zero = empty).
// Caller holds r.mu.
func (r *Repo) diffTrees(a, b plumbing.Hash, prefix string, out *[]Change) error {
	if a == b {
		return nil
	}
	ea, err := r.treeEntries(a)
	if err != nil {
		return err
	}
	eb, err := r.treeEntries(b)
	if err != nil {
		return err
	}
	names := make(map[string]struct{}, len(ea)+len(eb))
	for n := range ea {
		names[n] = struct{}{}
	}
	for n := range eb {
		names[n] = struct{}{}
	}
	for n := range names {
		x, inA := ea[n]
		y, inB := eb[n]
		if inA && inB && x.Hash == y.Hash && x.Mode == y.Mode {
			continue
		}
		p := prefix + n
		var subA, subB plumbing.Hash
		var fileA, fileB *object.TreeEntry
		if inA {
			switch x.Mode {
			case filemode.Dir:
				subA = x.Hash
			case filemode.Submodule:
			default:
				fileA = &x
			}
		}
		if inB {
			switch y.Mode {
			case filemode.Dir:
				subB = y.Hash
			case filemode.Submodule:
			default:
				fileB = &y
			}
		}
		if !subA.IsZero() || !subB.IsZero() {
			if err := r.diffTrees(subA, subB, p+"/", out); err != nil {
				return err
			}
		}
		switch {
		case fileA != nil && fileB != nil:
			*out = append(*out, Change{Path: p, Action: Modified, FromBlob: fileA.Hash.String(), ToBlob: fileB.Hash.String()})
		case fileA != nil:
			*out = append(*out, Change{Path: p, Action: Deleted, FromBlob: fileA.Hash.String()})
		case fileB != nil:
			*out = append(*out, Change{Path: p, Action: Added, ToBlob: fileB.Hash.String()})
		}
	}
	return nil
}

// ChangedOutside reports whether fromRev and toRev differ anywhere outside
// prefix (a directory such as ".osbgit/"). It compares the two trees, not
// the commits between them, so any number of commits and merges is handled:
// osbgit's own status commits, which touch only .osbgit/, do not count as
// changes. Equal subtrees are skipped by hash.
func (r *Repo) ChangedOutside(fromRev, toRev, prefix string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return false, err
	}
	changed, err := func() (bool, error) {
		d, err := cleanDir(prefix)
		if err != nil {
			return false, err
		}
		a, b, err := r.commitPair(fromRev, toRev)
		if err != nil {
			return false, err
		}
		var parts []string
		if d != "." {
			parts = strings.Split(d, "/")
		} else {
			return false, nil // everything is inside the prefix
		}
		return r.changedOutside(a.TreeHash, b.TreeHash, parts)
	}()
	if err != nil {
		return false, r.newError("read", "", err)
	}
	return changed, nil
}

// TouchesOnlyStatus reports whether every difference between fromRev and
// toRev lies under .osbgit/ (true also when there is no difference).
func (r *Repo) TouchesOnlyStatus(fromRev, toRev string) (bool, error) {
	changed, err := r.ChangedOutside(fromRev, toRev, StatusDir+"/")
	return !changed, err
}

// changedOutside compares trees a and b ignoring the path parts. Caller
// holds r.mu.
func (r *Repo) changedOutside(a, b plumbing.Hash, parts []string) (bool, error) {
	if a == b {
		return false, nil
	}
	ea, err := r.treeEntries(a)
	if err != nil {
		return false, err
	}
	eb, err := r.treeEntries(b)
	if err != nil {
		return false, err
	}
	names := make(map[string]struct{}, len(ea)+len(eb))
	for n := range ea {
		names[n] = struct{}{}
	}
	for n := range eb {
		names[n] = struct{}{}
	}
	for n := range names {
		x, inA := ea[n]
		y, inB := eb[n]
		if n == parts[0] {
			if len(parts) == 1 {
				continue
			}
			var sa, sb plumbing.Hash
			if inA && x.Mode == filemode.Dir {
				sa = x.Hash
			}
			if inB && y.Mode == filemode.Dir {
				sb = y.Hash
			}
			// A non-directory at a prefix component is outside it.
			if (inA && x.Mode != filemode.Dir) || (inB && y.Mode != filemode.Dir) {
				if inA != inB || x.Hash != y.Hash || x.Mode != y.Mode {
					return true, nil
				}
				continue
			}
			ch, err := r.changedOutside(sa, sb, parts[1:])
			if err != nil || ch {
				return ch, err
			}
			continue
		}
		if inA != inB || x.Hash != y.Hash || x.Mode != y.Mode {
			return true, nil
		}
	}
	return false, nil
}

// BlobHash is the hash Git gives a blob holding data: what Files and
// ChangedFiles report for a file with that content.
func BlobHash(data []byte) string {
	return plumbing.ComputeHash(plumbing.BlobObject, data).String()
}
