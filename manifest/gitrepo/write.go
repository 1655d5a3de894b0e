package gitrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// ChangeSet is one commit's worth of changes under .osbgit/.
type ChangeSet struct {
	// Files maps a slash path under .osbgit/ (e.g.
	// ".osbgit/status/ns/ServiceInstance/db.yaml") to its new contents.
	// A nil value deletes the file, or the whole directory at that path;
	// an empty non-nil value writes an empty file. Paths must be clean and
	// relative; anything outside .osbgit/ is refused with
	// ErrOutsideStatusDir.
	Files map[string][]byte
	// Message is the commit message, built by the caller (counts, trailer;
	// see EnsureSkipCI). Required.
	Message string
	// ExpectedHead, for WriteIntent only, is the head of the status branch
	// the caller planned from. The commit is built on it and the push
	// succeeds only if the remote branch is still there. "" means the head
	// as of the last Fetch.
	ExpectedHead string
	// Sealed, when set, makes the records ref (RecordsRef of the status
	// branch) the records' home: the change set applies to the .osbgit/
	// tree of Sealed.Base, a commit of that tree signed by Sealed.Sign
	// moves the records ref, and the status branch gets a commit whose
	// .osbgit/ is that same tree — whatever the branch held there before
	// (an edit by someone else) is replaced. Both refs move in one push.
	Sealed *Sealed
	// RetireLegacy, for a sealed WriteIntent of a deployment with a
	// cluster ID only, takes over the records of the status branch's
	// deployment without one: it is the head of their records ref
	// (FetchResult.LegacyRecordsHead), which the same push deletes by
	// compare-and-swap (so of two writes retiring it one fails), and the
	// status branch's .osbgit/ outside .osbgit/clusters/ is removed.
	RetireLegacy string
	// Note, for WriteStatus only, is a git note added under NotesRef,
	// pushed in the same push as the status commit when the notes ref
	// allows, else by itself right after it (see WriteNote); when the
	// change set makes no commit, it is written by itself. A note never
	// fails the write: WriteResult.NoteErr says why it is missing.
	Note *Note
}

// RecordsRefPrefix starts the ref holding osbgit's records commits for a
// status branch (RecordsRef).
const RecordsRefPrefix = "refs/osbgit/records/"

// RecordsRef is the ref of the records commits of status branch branch:
// commits whose tree holds only .osbgit/, each signed by osbgit, written
// only by osbgit. It is not a branch, so no one checks it out or opens a
// pull request from it by accident.
func RecordsRef(branch string) string { return RecordsRefPrefix + branch }

// Sealed is the records side of a sealed write (ChangeSet.Sealed).
type Sealed struct {
	// Base is the records commit the change set applies to; "" when the
	// records ref does not exist yet.
	Base string
	// Sign returns the message of the new records commit holding the
	// .osbgit tree tree (its hex hash), built on base: Base, or the
	// records ref's new head when another writer moved it meanwhile
	// (WriteStatus then retries on it, and Sign is given its message to
	// check). An error stops the write.
	Sign func(base RecordsBase, tree string) (string, error)
	// Resign makes a records commit even when the change set leaves the
	// tree as it is (osbgit trust re-signs records it could not verify).
	Resign bool
}

// RecordsBase is the records commit a sealed write builds on.
type RecordsBase struct {
	// Commit is its hash; "" for none.
	Commit string
	// Message is its commit message.
	Message string
	// Tree is the hash of the .osbgit/ tree it holds (NoRecordsTree for
	// none).
	Tree string
}

// NoRecordsTree stands for the .osbgit/ tree of a commit that has none (all
// records deleted): the tree Sealed.Sign is given and RecordsBase names
// then, so a seal over no records verifies like any other.
var NoRecordsTree = plumbing.ZeroHash.String()

// WriteResult describes a write.
type WriteResult struct {
	// Commit is the head of the status branch after the write: the pushed
	// commit, or the unchanged head when the change set was a no-op ("" if
	// the status branch does not exist and nothing was written). Record it
	// as observed so osbgit's own commit does not trigger work.
	Commit string
	// Branch is the branch written to.
	Branch string
	// Changed is true when a commit was made and pushed.
	Changed bool
	// Attempts is the number of pushes tried.
	Attempts int
	// RecordsCommit is the records ref's head after a sealed write
	// ("" when it does not exist).
	RecordsCommit string
	// NoteCommit is the notes commit that added ChangeSet.Note (or the
	// notes ref's head when the note already held its text); "" when
	// none was written.
	NoteCommit string
	// NoteErr is why ChangeSet.Note could not be written (the status
	// write itself succeeded).
	NoteErr error
}

// SkipCITrailer is the marker that tells CI systems to skip a commit.
const SkipCITrailer = "[skip ci]"

// EnsureSkipCI returns message with a "[skip ci]" trailer appended as its
// last paragraph, unless the message already contains it.
func EnsureSkipCI(message string) string {
	if strings.Contains(message, SkipCITrailer) {
		return message
	}
	m := strings.TrimRight(message, "\n")
	if m == "" {
		return SkipCITrailer + "\n"
	}
	return m + "\n\n" + SkipCITrailer + "\n"
}

// CheckWritable reports whether writes can work, without network access:
// for a local working copy the status branch must not be the checked-out
// branch (ErrCheckedOutBranch). Moving that branch's ref would leave the
// user's index and files behind HEAD, so the next `git commit` would undo
// the status records — git refuses pushes to a checked-out branch for the
// same reason. Use a separate statusBranch, or a URL, to write.
func (r *Repo) CheckWritable() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return err
	}
	if err := r.checkWritableLocked(); err != nil {
		return r.newError("write", r.statusBranch, err)
	}
	return nil
}

func (r *Repo) checkWritableLocked() error {
	if r.branch != r.trustedBranch {
		return fmt.Errorf("%w: branch %q is not the trusted branch %q; osbgit writes records only while reconciling the trusted branch",
			ErrUntrustedBranch, r.branch, r.trustedBranch)
	}
	if r.src.kind != kindWorkTree {
		return nil
	}
	head, err := r.st.Reference(plumbing.HEAD)
	if err != nil {
		return err
	}
	if head.Type() == plumbing.SymbolicReference && head.Target() == plumbing.NewBranchReferenceName(r.statusBranch) {
		return fmt.Errorf("%w %q in %s; set a separate status branch (it is created on first write) or give the repository as a URL",
			ErrCheckedOutBranch, r.statusBranch, r.workRoot)
	}
	return nil
}

// WriteIntent commits cs on the status branch (created from the manifest
// branch's head if missing) and pushes it once. If the branch moved on the
// remote, nothing is retried: the result is a *ConflictError matching
// ErrConflict, and the caller must Fetch and re-plan from the new head
// before calling any broker. This makes the rejected push the fence between
// two osbgit processes. A no-op change set makes no commit and no push.
func (r *Repo) WriteIntent(ctx context.Context, cs ChangeSet) (WriteResult, error) {
	return r.write(ctx, cs, true)
}

// WriteStatus commits cs on the status branch (created from the manifest
// branch's head if missing) and pushes it. If the branch moved on the
// remote, it fetches the new head, re-applies the same changes on top of it
// as a fresh commit and pushes again, waiting a jittered, exponentially
// growing delay between attempts, up to the WithMaxPushAttempts bound; then
// it returns a *ConflictError. It never force-pushes, so no commit pushed
// by anyone else is lost. A no-op change set (contents identical to the
// tree) makes no commit and no push.
func (r *Repo) WriteStatus(ctx context.Context, cs ChangeSet) (WriteResult, error) {
	return r.write(ctx, cs, false)
}

func (r *Repo) write(ctx context.Context, cs ChangeSet, intent bool) (WriteResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return WriteResult{}, err
	}
	nw := &noteWrite{}
	if !intent {
		nw.note = cs.Note
	}
	res, err := r.writeLocked(ctx, cs, intent, nw)
	if err != nil {
		return res, r.newError("write", r.statusBranch, err)
	}
	nw.finish(ctx, r, &res)
	return res, nil
}

func (r *Repo) writeLocked(ctx context.Context, cs ChangeSet, intent bool, nw *noteWrite) (WriteResult, error) {
	target := r.statusBranch
	res := WriteResult{Branch: target}
	if strings.TrimSpace(cs.Message) == "" {
		return res, fmt.Errorf("%w: a commit message is required", ErrInvalidOptions)
	}
	edits, err := buildEdits(cs.Files)
	if err != nil {
		return res, err
	}
	for p := range cs.Files {
		if !r.ownsRecordPath(p) {
			return res, fmt.Errorf("%w: %q is not in this deployment's records directory %s/", ErrOutsideStatusDir, p, r.RecordsDir())
		}
	}
	if cs.RetireLegacy != "" && (cs.Sealed == nil || r.clusterID == "" || !intent) {
		return res, fmt.Errorf("%w: RetireLegacy needs a sealed WriteIntent of a deployment with a cluster ID", ErrInvalidOptions)
	}
	if err := r.checkWritableLocked(); err != nil {
		return res, err
	}
	if _, ok := r.known[r.branch]; !ok {
		// Nothing fetched yet.
		if _, err := r.fetchLocked(ctx); err != nil {
			return res, err
		}
	}
	if cs.Sealed != nil {
		return r.writeSealedLocked(ctx, cs, edits, intent, nw)
	}
	reopened := false
	for {
		res.Attempts++
		base, old, err := r.writeBaseFor(target, cs, intent)
		if err != nil {
			return res, err
		}
		commit, objs, changed, err := r.buildCommit(base, edits, cs.Message)
		if retry, rerr := r.reopenAfterGC(err, &reopened); rerr != nil || retry {
			if rerr != nil {
				return res, rerr
			}
			res.Attempts--
			continue
		}
		if err != nil {
			return res, err
		}
		if !changed {
			res.Attempts--
			if !old.IsZero() {
				res.Commit = old.String()
			}
			return res, nil
		}
		update := refUpdate{name: plumbing.NewBranchReferenceName(target), old: old, new: commit}
		updates := nw.add(ctx, r, &treeWriter{r: r, pending: objs}, commit, []refUpdate{update})
		err = r.pushRefs(ctx, updates, objs)
		if err == nil {
			if err := r.recordPushed(updates...); err != nil {
				return res, err
			}
			nw.succeeded()
			r.known[target] = commit
			res.Commit, res.Changed = commit.String(), true
			return res, nil
		}
		if nw.rejected(err) {
			res.Attempts--
			continue
		}
		if _, err := r.retryAfter(ctx, err, &res, intent); err != nil {
			return res, err
		}
	}
}

// retryAfter decides what a write does after its push failed with err:
// give up (the error to return: anything but a conflict, a conflict of a
// write-ahead push, the last attempt's) or wait, fetch and try again (the
// conflict, nil error). Caller holds r.mu.
func (r *Repo) retryAfter(ctx context.Context, err error, res *WriteResult, intent bool) (*ConflictError, error) {
	var ce *ConflictError
	if !errors.As(err, &ce) {
		return nil, err
	}
	ce.Attempts = res.Attempts
	if intent || res.Attempts >= r.set.maxAttempts {
		return nil, ce
	}
	if err := sleepCtx(ctx, r.backoff(res.Attempts)); err != nil {
		return nil, err
	}
	if _, err := r.fetchLocked(ctx); err != nil {
		return nil, fmt.Errorf("fetching after rejected push: %w", err)
	}
	return ce, nil
}

// writeBase returns the commit to build on and the value the remote ref is
// expected to have (zero when the status branch is to be created). Caller
// holds r.mu.
func (r *Repo) writeBase(target string) (base, old plumbing.Hash, err error) {
	if h, ok := r.known[target]; ok {
		return h, h, nil
	}
	h, ok := r.known[r.branch]
	if !ok {
		return plumbing.ZeroHash, plumbing.ZeroHash, fmt.Errorf("%w: %s", ErrBranchNotFound, r.branch)
	}
	// The status branch does not exist: create it from the manifest head.
	return h, plumbing.ZeroHash, nil
}

// writeBaseFor is writeBase for change set cs: a write-ahead commit with
// ExpectedHead builds on that head and expects it on the remote. Caller
// holds r.mu.
func (r *Repo) writeBaseFor(target string, cs ChangeSet, intent bool) (base, old plumbing.Hash, err error) {
	if !intent || cs.ExpectedHead == "" {
		return r.writeBase(target)
	}
	h, err := r.resolveHash(cs.ExpectedHead)
	if err != nil {
		return plumbing.ZeroHash, plumbing.ZeroHash, err
	}
	return h, h, nil
}

// reopenAfterGC reports whether a write that failed building its commit
// with err should be built again: once per write, for a local repository
// in which git's background "gc --auto" (run after a receive-pack into it)
// packed and pruned loose objects that go-git's cached pack list does not
// know. It re-reads the repository first. Caller holds r.mu.
func (r *Repo) reopenAfterGC(err error, reopened *bool) (bool, error) {
	if err == nil || r.src.kind == kindRemote || *reopened || !errors.Is(err, plumbing.ErrObjectNotFound) {
		return false, nil
	}
	*reopened = true
	return true, r.reopenLocal()
}

// recordPushed sets pushed refs in the local copy of a remote (a local
// repository received them itself). Caller holds r.mu.
func (r *Repo) recordPushed(updates ...refUpdate) error {
	if r.src.kind != kindRemote {
		return nil
	}
	for _, u := range updates {
		if u.new.IsZero() {
			if err := r.st.RemoveReference(u.name); err != nil {
				return fmt.Errorf("recording deleted ref %s: %w", u.name, err)
			}
			continue
		}
		if err := r.st.SetReference(plumbing.NewHashReference(u.name, u.new)); err != nil {
			return fmt.Errorf("recording pushed ref %s: %w", u.name, err)
		}
	}
	return nil
}

// backoff returns the jittered delay before attempt+1.
func (r *Repo) backoff(attempt int) time.Duration {
	d := r.set.backoffInitial
	for i := 1; i < attempt && d < r.set.backoffMax; i++ {
		d *= 2
	}
	if d > r.set.backoffMax {
		d = r.set.backoffMax
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// editNode is a change set arranged as a tree.
type editNode struct {
	children map[string]*editNode // directory node
	leaf     bool
	content  []byte // leaf: nil deletes
	// graft, on a leaf, makes the entry the directory tree (zero
	// removes it) instead of a file.
	graft bool
	tree  plumbing.Hash
}

// validateStatusPath checks p is a clean relative path under .osbgit/.
func validateStatusPath(p string) error {
	if p != path.Clean(p) || !fs.ValidPath(p) || strings.Contains(p, `\`) {
		return fmt.Errorf("%w: %q is not a clean relative slash path", ErrOutsideStatusDir, p)
	}
	if !strings.HasPrefix(p, StatusDir+"/") {
		return fmt.Errorf("%w: %q is not under %s/", ErrOutsideStatusDir, p, StatusDir)
	}
	for _, part := range strings.Split(p, "/") {
		if strings.EqualFold(part, ".git") {
			return fmt.Errorf("%w: %q has a .git component", ErrOutsideStatusDir, p)
		}
	}
	return nil
}

// buildEdits validates a change set and arranges it as a tree.
func buildEdits(files map[string][]byte) (*editNode, error) {
	root := &editNode{children: map[string]*editNode{}}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := validateStatusPath(p); err != nil {
			return nil, err
		}
		parts := strings.Split(p, "/")
		n := root
		for _, part := range parts[:len(parts)-1] {
			c, ok := n.children[part]
			if !ok {
				c = &editNode{children: map[string]*editNode{}}
				n.children[part] = c
			}
			if c.leaf {
				return nil, fmt.Errorf("%w: %q is used both as a file and as a directory", ErrInvalidOptions, p)
			}
			n = c
		}
		last := parts[len(parts)-1]
		if _, ok := n.children[last]; ok {
			return nil, fmt.Errorf("%w: %q is used both as a file and as a directory", ErrInvalidOptions, p)
		}
		n.children[last] = &editNode{leaf: true, content: files[p]}
	}
	return root, nil
}

// treeWriter applies edits to trees, reading existing trees from the
// repository and keeping the new objects pending for the push.
type treeWriter struct {
	r       *Repo
	pending *pendingObjects
}

func (w *treeWriter) store(o plumbing.EncodedObject) (plumbing.Hash, error) {
	return w.pending.SetEncodedObject(o)
}

// apply returns the hash of tree h with edits n applied (zero when the
// result is empty) and whether it differs from h.
func (w *treeWriter) apply(h plumbing.Hash, n *editNode) (plumbing.Hash, bool, error) {
	var entries []object.TreeEntry
	if !h.IsZero() {
		t, err := object.GetTree(w.pending, h) // pending: edits may apply to a tree this write made
		if err != nil {
			return h, false, err
		}
		entries = append(entries, t.Entries...)
	}
	idx := make(map[string]int, len(entries))
	for i, e := range entries {
		idx[e.Name] = i
	}
	removed := map[string]bool{}
	modified := false
	set := func(e object.TreeEntry) {
		if i, ok := idx[e.Name]; ok {
			entries[i] = e
		} else {
			idx[e.Name] = len(entries)
			entries = append(entries, e)
		}
		delete(removed, e.Name)
		modified = true
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		child := n.children[name]
		i, exists := idx[name]
		if child.graft {
			switch {
			case child.tree.IsZero() && exists:
				removed[name] = true
				modified = true
			case child.tree.IsZero():
			case exists && entries[i].Mode == filemode.Dir && entries[i].Hash == child.tree:
			default:
				set(object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: child.tree})
			}
			continue
		}
		if child.leaf {
			if child.content == nil {
				if exists {
					removed[name] = true
					modified = true
				}
				continue
			}
			bh := plumbing.ComputeHash(plumbing.BlobObject, child.content)
			mode := filemode.Regular
			if exists && (entries[i].Mode == filemode.Regular || entries[i].Mode == filemode.Executable) {
				if entries[i].Hash == bh {
					continue
				}
				mode = entries[i].Mode
			}
			o := w.r.st.NewEncodedObject()
			o.SetType(plumbing.BlobObject)
			o.SetSize(int64(len(child.content)))
			wr, err := o.Writer()
			if err != nil {
				return h, false, err
			}
			if _, err := wr.Write(child.content); err != nil {
				return h, false, err
			}
			if err := wr.Close(); err != nil {
				return h, false, err
			}
			if _, err := w.store(o); err != nil {
				return h, false, err
			}
			set(object.TreeEntry{Name: name, Mode: mode, Hash: bh})
			continue
		}
		var sub plumbing.Hash
		if exists && entries[i].Mode == filemode.Dir {
			sub = entries[i].Hash
		}
		nh, changed, err := w.apply(sub, child)
		if err != nil {
			return h, false, err
		}
		if !changed {
			continue
		}
		switch {
		case nh.IsZero() && exists:
			removed[name] = true
			modified = true
		case nh.IsZero():
			modified = true
		default:
			set(object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: nh})
		}
	}
	if !modified {
		return h, false, nil
	}
	kept := entries[:0]
	for _, e := range entries {
		if !removed[e.Name] {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		return plumbing.ZeroHash, !h.IsZero(), nil
	}
	nh, err := w.writeTree(kept)
	if err != nil {
		return h, false, err
	}
	return nh, nh != h, nil
}

// writeTree stores a tree with entries in git's order (directories sort as
// if their name ended in "/").
func (w *treeWriter) writeTree(entries []object.TreeEntry) (plumbing.Hash, error) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	t := &object.Tree{Entries: entries}
	o := w.r.st.NewEncodedObject()
	if err := t.Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return w.store(o)
}

// buildCommit builds a commit of base's tree with edits applied, returning
// it and the objects it adds, pending in memory. It returns changed=false
// when the edits change nothing. Caller holds r.mu.
func (r *Repo) buildCommit(base plumbing.Hash, edits *editNode, message string) (plumbing.Hash, *pendingObjects, bool, error) {
	parent, err := object.GetCommit(r.st, base)
	if err != nil {
		return plumbing.ZeroHash, nil, false, fmt.Errorf("%w: base commit %s: %w", ErrRevisionNotFound, shortHash(base.String()), err)
	}
	w := &treeWriter{r: r, pending: newPendingObjects(r.st)}
	tree, changed, err := w.apply(parent.TreeHash, edits)
	if err != nil {
		return plumbing.ZeroHash, nil, false, fmt.Errorf("building tree: %w", err)
	}
	if !changed {
		return plumbing.ZeroHash, nil, false, nil
	}
	if tree.IsZero() {
		// Everything was deleted: commit the empty tree.
		if tree, err = w.writeTree(nil); err != nil {
			return plumbing.ZeroHash, nil, false, err
		}
	}
	h, err := r.storeCommit(w, tree, []plumbing.Hash{base}, message)
	if err != nil {
		return plumbing.ZeroHash, nil, false, err
	}
	return h, w.pending, true, nil
}

// refUpdate is one compare-and-swap ref update of a push.
type refUpdate struct {
	name     plumbing.ReferenceName
	old, new plumbing.Hash
}

// pushRefs moves refs on the remote in one receive-pack session of
// go-git's transport, sending exactly the objects the write made (packed
// by go-git's encoder), each ref by compare-and-swap: the advertised ref
// must still be its old value, and receive-pack applies the update only if
// the ref still equals it under its lock. Several refs move atomically
// when the server supports it (git, GitHub, GitLab and Gitea do): all or
// none. It never force-pushes. A ref that moved yields a *ConflictError
// naming it.
//
// Remote.PushContext would do the same with RequireRemoteRefs, but it first
// lists every object reachable from the remote's refs to decide what to
// send, so a push's cost grows with the history (go-git #1102):
// TestPushReadsOnlyWhatItWrites fails with it. Because the base's history is
// never walked here, a push from a shallow clone works too.
func (r *Repo) pushRefs(ctx context.Context, updates []refUpdate, objs *pendingObjects) (err error) {
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	pack, err := objs.pack()
	if err != nil {
		return err
	}
	ep, err := r.endpoint()
	if err != nil {
		return err
	}
	cl, err := client.NewClient(ep)
	if err != nil {
		return err
	}
	sess, err := cl.NewReceivePackSession(ep, r.auth.method)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := sess.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return err
	}
	refs, err := ar.AllReferences()
	if err != nil {
		return err
	}
	conflict := func(name plumbing.ReferenceName, old, actual plumbing.Hash) *ConflictError {
		a := ""
		if !actual.IsZero() {
			a = actual.String()
		}
		branch := name.String()
		if name.IsBranch() {
			branch = name.Short()
		}
		return &ConflictError{URL: r.shownURL, Branch: branch, Expected: old.String(), Actual: a, Records: strings.HasPrefix(name.String(), RecordsRefPrefix) || strings.HasPrefix(name.String(), clusterRefsPrefix)}
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(ar.Capabilities)
	if len(updates) > 1 && ar.Capabilities.Supports(capability.Atomic) {
		req.Capabilities.Set(capability.Atomic)
	}
	for _, u := range updates {
		cur := plumbing.ZeroHash
		if ref, err := refs.Reference(u.name); err == nil {
			cur = ref.Hash()
		}
		if cur != u.old {
			return conflict(u.name, u.old, cur)
		}
		req.Commands = append(req.Commands, &packp.Command{Name: u.name, Old: u.old, New: u.new})
	}
	req.Packfile = io.NopCloser(bytes.NewReader(pack))
	rs, err := sess.ReceivePack(ctx, req)
	if err == nil {
		return r.keepPushed(objs, pack)
	}
	if rs == nil {
		return err
	}
	// The server refused an update. If a ref moved under us (between its
	// advertisement and our update) that is a conflict; otherwise (a
	// hook, a protected branch) it is a plain rejection.
	for _, u := range updates {
		if now, lerr := r.currentRemoteRef(ctx, u.name); lerr == nil && now != u.old {
			return conflict(u.name, u.old, now)
		}
	}
	rej := &RejectedError{Err: err}
	for _, cs := range rs.CommandStatuses {
		// In an atomic push every ref fails with the one refused:
		// those say so and are not counted.
		if cs.Status != "ok" && !strings.Contains(cs.Status, "atomic") {
			rej.Refs = append(rej.Refs, cs.ReferenceName.String())
		}
	}
	return rej
}

// RejectedError is a push the server refused for a reason of its own (a
// hook, a protected ref), not because a ref moved (ConflictError).
type RejectedError struct {
	// Refs are the refs the server refused, leaving out those that failed
	// only because an atomic push failed as a whole.
	Refs []string
	Err  error
}

func (e *RejectedError) Error() string { return "push rejected: " + e.Err.Error() }
func (e *RejectedError) Unwrap() error { return e.Err }

// currentRemoteRef reads ref name on the remote (zero when missing).
// Caller holds r.mu.
func (r *Repo) currentRemoteRef(ctx context.Context, name plumbing.ReferenceName) (plumbing.Hash, error) {
	if r.src.kind != kindRemote {
		if err := r.reopenLocal(); err != nil {
			return plumbing.ZeroHash, err
		}
		ref, err := r.st.Reference(name)
		if err != nil {
			return plumbing.ZeroHash, nil
		}
		return ref.Hash(), nil
	}
	rr, err := r.lsRemote(ctx)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return rr.ref(name), nil
}

// keepPushed makes a pushed commit's objects readable locally: a local
// repository received them itself (re-read it to find the new pack); the
// local copy of a remote stores the pack that was sent. Caller holds r.mu.
func (r *Repo) keepPushed(objs *pendingObjects, pack []byte) error {
	if r.src.kind != kindRemote {
		if err := r.reopenLocal(); err != nil {
			return fmt.Errorf("re-reading the repository after the push: %w", err)
		}
		return nil
	}
	if err := objs.keepPack(r.st, pack); err != nil {
		return fmt.Errorf("storing the pushed objects locally: %w", err)
	}
	return nil
}
