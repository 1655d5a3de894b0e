package gitrepo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// writeSealedLocked is writeLocked for a sealed change set: the edits apply
// to the records commit's .osbgit/ tree, a new records commit (signed by
// cs.Sealed.Sign) holds the result, and the status branch gets a commit
// whose .osbgit/ is that tree. One push moves both refs, each by
// compare-and-swap. Caller holds r.mu.
func (r *Repo) writeSealedLocked(ctx context.Context, cs ChangeSet, edits *editNode, intent bool, nw *noteWrite) (WriteResult, error) {
	target := r.statusBranch
	recName := r.recordsRef()
	res := WriteResult{Branch: target}
	recBase := plumbing.ZeroHash
	if cs.Sealed.Base != "" {
		h, err := r.resolveHash(cs.Sealed.Base)
		if err != nil {
			return res, fmt.Errorf("records base: %w", err)
		}
		recBase = h
	}
	reopened := false
	for {
		res.Attempts++
		base, old, err := r.writeBaseFor(target, cs, intent)
		if err != nil {
			return res, err
		}
		w := &treeWriter{r: r, pending: newPendingObjects(r.st)}
		var updates []refUpdate
		recHead, tree, recUpdate, err := r.buildRecordsCommit(w, recBase, edits, cs.Sealed)
		var branchHead plumbing.Hash
		var branchUpdate bool
		if err == nil {
			branchHead, branchUpdate, err = r.graftRecords(w, base, tree, cs.RetireLegacy != "", cs.Message)
		}
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
		if recUpdate {
			updates = append(updates, refUpdate{name: recName, old: recBase, new: recHead})
		}
		if cs.RetireLegacy != "" {
			h, err := r.resolveHash(cs.RetireLegacy)
			if err != nil {
				return res, fmt.Errorf("legacy records: %w", err)
			}
			updates = append(updates, refUpdate{name: r.legacyRecordsRef(), old: h, new: plumbing.ZeroHash})
		}
		if branchUpdate {
			updates = append(updates, refUpdate{name: plumbing.NewBranchReferenceName(target), old: old, new: branchHead})
		}
		if len(updates) == 0 {
			res.Attempts--
			if !old.IsZero() {
				res.Commit = old.String()
			}
			if !recBase.IsZero() {
				res.RecordsCommit = recBase.String()
			}
			return res, nil
		}
		statusCommit := branchHead
		if !branchUpdate {
			statusCommit = old
		}
		updates = nw.add(ctx, r, w, statusCommit, updates)
		err = r.pushRefs(ctx, updates, w.pending)
		if err == nil {
			if err := r.recordPushed(updates...); err != nil {
				return res, err
			}
			nw.succeeded()
			branchHead = statusCommit
			r.known[target] = branchHead
			res.Commit, res.Changed = branchHead.String(), true
			res.RecordsCommit = recHead.String()
			return res, nil
		}
		if nw.rejected(err) {
			res.Attempts--
			continue
		}
		ce, err := r.retryAfter(ctx, err, &res, intent)
		if err != nil {
			return res, err
		}
		if ce.Records {
			// Another writer moved the records: apply the same edits to
			// theirs (Sign checks their commit).
			recBase = plumbing.ZeroHash
			if ref, err := r.st.Reference(recName); err == nil {
				recBase = ref.Hash()
			}
		}
	}
}

// buildRecordsCommit applies edits to the .osbgit/ tree of records commit
// base (zero: none) and, when that changes it, builds the records commit
// signed by sign. It returns the new head (base when unchanged), the
// .osbgit/ tree and whether the records ref must move.
func (r *Repo) buildRecordsCommit(w *treeWriter, base plumbing.Hash, edits *editNode, sealed *Sealed) (head, tree plumbing.Hash, changed bool, err error) {
	var root plumbing.Hash
	rb := RecordsBase{}
	if !base.IsZero() {
		c, err := object.GetCommit(r.st, base)
		if err != nil {
			return base, tree, false, fmt.Errorf("%w: records commit %s: %w", ErrRevisionNotFound, shortHash(base.String()), err)
		}
		root = c.TreeHash
		t, err := r.recordsTreeIn(r.st, root)
		if err != nil {
			return base, tree, false, err
		}
		rb = RecordsBase{Commit: base.String(), Message: c.Message, Tree: t.String()}
	}
	newRoot, changed, err := w.apply(root, edits)
	if err != nil {
		return base, tree, false, fmt.Errorf("building records tree: %w", err)
	}
	if tree, err = r.recordsTreeIn(w.pending, newRoot); err != nil {
		return base, tree, false, err
	}
	if !changed && !base.IsZero() && !sealed.Resign {
		return base, tree, false, nil
	}
	msg, err := sealed.Sign(rb, tree.String())
	if err != nil {
		return base, tree, false, err
	}
	if newRoot.IsZero() {
		if newRoot, err = w.writeTree(nil); err != nil {
			return base, tree, false, err
		}
	}
	var parents []plumbing.Hash
	if !base.IsZero() {
		parents = append(parents, base)
	}
	head, err = r.storeCommit(w, newRoot, parents, msg)
	return head, tree, err == nil, err
}

// graftRecords builds a commit on base whose records directory
// (RecordsDir) is tree (zero: none), or reports that base already holds
// it. Only this deployment's directory changes: one without a cluster ID
// keeps base's .osbgit/clusters/; with retireLegacy, .osbgit/ outside
// .osbgit/clusters/ is removed too.
func (r *Repo) graftRecords(w *treeWriter, base, tree plumbing.Hash, retireLegacy bool, message string) (plumbing.Hash, bool, error) {
	parent, err := object.GetCommit(r.st, base)
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("%w: base commit %s: %w", ErrRevisionNotFound, shortHash(base.String()), err)
	}
	var grafts []*editNode
	if r.clusterID == "" || retireLegacy {
		legacy := tree
		if r.clusterID != "" {
			legacy = plumbing.ZeroHash
		}
		grafts = append(grafts, graftAt(StatusDir, legacy))
		clusters, err := r.subtree(parent.TreeHash, ClustersDir)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		// Unconditional: a legacy records tree holding clusters/ (pushed
		// by someone else) never reaches the branch.
		grafts = append(grafts, graftAt(ClustersDir, clusters))
	}
	if r.clusterID != "" {
		grafts = append(grafts, graftAt(r.RecordsDir(), tree))
	}
	root := parent.TreeHash
	for _, g := range grafts {
		if root, _, err = w.apply(root, g); err != nil {
			return plumbing.ZeroHash, false, err
		}
	}
	if root.IsZero() {
		if root, err = w.writeTree(nil); err != nil {
			return plumbing.ZeroHash, false, err
		}
	}
	if root == parent.TreeHash {
		return plumbing.ZeroHash, false, nil
	}
	h, err := r.storeCommit(w, root, []plumbing.Hash{base}, message)
	return h, err == nil, err
}

// storeCommit stores a commit by osbgit of tree with parents.
func (r *Repo) storeCommit(w *treeWriter, tree plumbing.Hash, parents []plumbing.Hash, message string) (plumbing.Hash, error) {
	sig := object.Signature{Name: r.set.authorName, Email: r.set.authorEmail, When: time.Now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: message, TreeHash: tree, ParentHashes: parents}
	o := r.st.NewEncodedObject()
	if err := c.Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return w.store(o)
}

// CommitMessage returns the message of commit rev.
func (r *Repo) CommitMessage(rev string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return "", err
	}
	c, err := r.commit(rev)
	if err != nil {
		return "", r.newError("read", "", err)
	}
	return c.Message, nil
}

// LastChange finds the commit at or before rev (first parents, at most
// maxAuthorWalk back) that last changed file p: the commit that made the
// content rev holds there, or removed it. With shallow history it returns
// the oldest commit reached, which may be later than the real one.
func (r *Repo) LastChange(rev, p string) (string, Person, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return "", Person{}, err
	}
	c, err := r.commit(rev)
	if err != nil {
		return "", Person{}, r.newError("read", "", err)
	}
	blobAt := func(c *object.Commit) plumbing.Hash {
		t, err := c.Tree()
		if err != nil {
			return plumbing.ZeroHash
		}
		e, err := t.FindEntry(p)
		if err != nil {
			return plumbing.ZeroHash
		}
		return e.Hash
	}
	want := blobAt(c)
	for i := 0; i < maxAuthorWalk && c.NumParents() > 0; i++ {
		parent, err := c.Parent(0)
		if err != nil || blobAt(parent) != want {
			break
		}
		c = parent
	}
	return c.Hash.String(), author(c), nil
}

// graftAt is an edit making the directory at dir tree (zero removes it).
func graftAt(dir string, tree plumbing.Hash) *editNode {
	parts := strings.Split(dir, "/")
	n := &editNode{leaf: true, graft: true, tree: tree}
	for i := len(parts) - 1; i >= 0; i-- {
		n = &editNode{children: map[string]*editNode{parts[i]: n}}
	}
	return n
}
