package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/storage/memory"
)

// remoteRefs is the result of one ls-remote.
type remoteRefs struct {
	refs map[plumbing.ReferenceName]plumbing.Hash
	head plumbing.ReferenceName // HEAD's target, "" when unknown
}

// branchHead returns a branch's hash on the remote.
func (rr remoteRefs) branchHead(branch string) (plumbing.Hash, bool) {
	h, ok := rr.refs[plumbing.NewBranchReferenceName(branch)]
	return h, ok
}

// ref returns a ref's hash on the remote (zero when missing).
func (rr remoteRefs) ref(name plumbing.ReferenceName) plumbing.Hash { return rr.refs[name] }

// headTarget names the remote's default branch.
func (rr remoteRefs) headTarget() (string, bool) {
	if rr.head.IsBranch() {
		return rr.head.Short(), true
	}
	return "", false
}

// lsRemote lists the remote's refs (no objects are transferred).
func (r *Repo) lsRemote(ctx context.Context) (remoteRefs, error) {
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{r.src.url}})
	list, err := rem.ListContext(ctx, &git.ListOptions{Auth: r.auth.method, CABundle: r.auth.caBundle})
	if err != nil {
		return remoteRefs{}, err
	}
	rr := remoteRefs{refs: make(map[plumbing.ReferenceName]plumbing.Hash, len(list))}
	for _, ref := range list {
		switch {
		case ref.Name() == plumbing.HEAD && ref.Type() == plumbing.SymbolicReference:
			rr.head = ref.Target()
		case ref.Type() == plumbing.HashReference:
			rr.refs[ref.Name()] = ref.Hash()
		}
	}
	return rr, nil
}

// RemoteHead returns the head commit of branch ("" = the manifest branch)
// on the remote, with a single ls-remote and no fetch, so a pass can end
// here when nothing changed. For a local path it reads the ref.
func (r *Repo) RemoteHead(ctx context.Context, branch string) (string, error) {
	if branch == "" {
		branch = r.branch
	}
	if r.src.kind != kindRemote {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := r.checkOpen(); err != nil {
			return "", err
		}
		h, err := r.localHead(branch)
		if err != nil {
			return "", r.newError("ls-remote", branch, err)
		}
		return h.String(), nil
	}
	rr, err := r.lsRemote(ctx)
	if err != nil {
		return "", r.newError("ls-remote", branch, err)
	}
	h, ok := rr.branchHead(branch)
	if !ok {
		return "", r.newError("ls-remote", branch, ErrBranchNotFound)
	}
	return h.String(), nil
}

// localHead reads a branch ref of a local-path repository. Caller holds
// r.mu.
func (r *Repo) localHead(branch string) (plumbing.Hash, error) {
	name := plumbing.NewBranchReferenceName(branch)
	if r.detached && branch == DetachedHead {
		name = plumbing.HEAD
	}
	ref, err := r.st.Reference(name)
	if err == nil {
		return ref.Hash(), nil
	}
	if !errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, err
	}
	if empty, eerr := r.noBranches(); eerr == nil && empty {
		return plumbing.ZeroHash, ErrEmptyRepo
	}
	return plumbing.ZeroHash, ErrBranchNotFound
}

// noBranches reports whether a local repository has no branch at all.
func (r *Repo) noBranches() (bool, error) {
	iter, err := r.st.IterReferences()
	if err != nil {
		return false, err
	}
	defer iter.Close()
	empty := true
	_ = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Name().IsBranch() {
			empty = false
		}
		return nil
	})
	return empty, nil
}

// hasCommit reports whether a commit object is present locally.
func (r *Repo) hasCommit(h plumbing.Hash) bool {
	_, err := r.st.EncodedObject(plumbing.CommitObject, h)
	return err == nil
}

// Fetch brings the manifest branch and the status branch (when it exists
// on the remote) into the local copy. It first lists the remote's refs and
// transfers nothing when the local copy already has both heads; otherwise it
// fetches only those branches, at the configured depth, and only the objects
// the local copy lacks. A local path is re-read instead (nothing to fetch).
//
// If the local copy turns out inconsistent (a head's commit missing after
// the fetch, which shallow histories can cause when a branch is reset to an
// older commit), it is discarded and fetched again once.
func (r *Repo) Fetch(ctx context.Context) (FetchResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return FetchResult{}, err
	}
	res, err := r.fetchLocked(ctx)
	if err != nil {
		return FetchResult{}, r.newError("fetch", r.branch, err)
	}
	return res, nil
}

// fetchLocked implements Fetch. Caller holds r.mu.
//
// The first fetch into an empty local copy is a go-git fetch at the
// configured depth (a shallow clone). Later fetches use one upload-pack
// session of go-git's transport: its ref advertisement is the ls-remote,
// and when a head is missing locally the same session asks for it with our
// heads as "haves" and our shallow boundary declared, without deepening,
// so the server sends only the objects of the new commits.
//
// This negotiation is ours because go-git's fetch cannot do it: at depth 1
// it deepens, and the server re-sends the whole tree of every new head
// (TestFetchIntoCacheAndReuse fails with it: 12 objects instead of 5); at
// depth 0 it does not declare the shallow boundary, so the server leaves
// out objects it believes are behind our heads
// (TestFetchMergeBehindShallowBoundary fails with it).
func (r *Repo) fetchLocked(ctx context.Context) (FetchResult, error) {
	if r.src.kind != kindRemote {
		if err := r.reopenLocal(); err != nil {
			return FetchResult{}, err
		}
		return r.localResult(false)
	}
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	sess, err := r.uploadPackSession()
	if err != nil {
		return FetchResult{}, err
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return FetchResult{}, err
	}
	want := map[plumbing.ReferenceName]plumbing.Hash{}
	var missing []plumbing.Hash
	for _, b := range r.branches() {
		name := plumbing.NewBranchReferenceName(b)
		h, ok := ar.References[name.String()]
		if !ok {
			if b == r.branch {
				return FetchResult{}, ErrBranchNotFound
			}
			// The status or trusted branch does not exist (yet, or any
			// more).
			_ = r.st.RemoveReference(name)
			continue
		}
		want[name] = h
		if !r.hasCommit(h) {
			missing = append(missing, h)
		}
	}
	for _, recName := range r.recordsRefs() {
		if h, ok := ar.References[recName.String()]; ok {
			want[recName] = h
			if !r.hasCommit(h) {
				missing = append(missing, h)
			}
		} else {
			_ = r.st.RemoveReference(recName)
		}
	}
	updated := false
	setRefs := want // refs to set from the advertisement
	if len(missing) > 0 {
		updated = true
		incremental := false
		if r.set.depth > 0 && r.hasLocalHead() {
			if incremental, err = r.fetchIncremental(ctx, sess, ar, missing); err != nil {
				return FetchResult{}, err
			}
		}
		if !incremental {
			_ = sess.Close()
			if err := r.fetchSpecs(ctx, want); err != nil {
				return FetchResult{}, err
			}
			setRefs = nil // go-git set them from its own listing
		}
	}
	for name, h := range setRefs {
		if ref, err := r.st.Reference(name); err == nil && ref.Hash() == h {
			continue
		}
		if err := r.st.SetReference(plumbing.NewHashReference(name, h)); err != nil {
			return FetchResult{}, err
		}
		updated = true
	}
	if !r.headsPresent() {
		// Inconsistent local copy: start over with a fresh clone.
		if err := r.resetStorage(); err != nil {
			return FetchResult{}, err
		}
		if err := r.fetchSpecs(ctx, want); err != nil {
			return FetchResult{}, err
		}
		if !r.headsPresent() {
			return FetchResult{}, fmt.Errorf("%w: fetched heads are incomplete", ErrRevisionNotFound)
		}
		updated = true
	}
	return r.localResult(updated)
}

// uploadPackSession opens a fetch session on the remote.
func (r *Repo) uploadPackSession() (transport.UploadPackSession, error) {
	ep, err := r.endpoint()
	if err != nil {
		return nil, err
	}
	cl, err := client.NewClient(ep)
	if err != nil {
		return nil, err
	}
	return cl.NewUploadPackSession(ep, r.auth.method)
}

// endpoint builds the transport endpoint for the source URL.
func (r *Repo) endpoint() (*transport.Endpoint, error) {
	ep, err := transport.NewEndpoint(r.src.url)
	if err != nil {
		return nil, err
	}
	ep.CaBundle = r.auth.caBundle
	return ep, nil
}

// hasLocalHead reports whether any local branch head's commit is present,
// i.e. there is something to negotiate from.
func (r *Repo) hasLocalHead() bool {
	for _, b := range r.branches() {
		if ref, err := r.st.Reference(plumbing.NewBranchReferenceName(b)); err == nil && r.hasCommit(ref.Hash()) {
			return true
		}
	}
	return false
}

// maxHaveAncestors bounds how far back from each local head "have" commits
// are offered.
const maxHaveAncestors = 32

// localHaves returns the local heads and some of their present ancestors.
func (r *Repo) localHaves() []plumbing.Hash {
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	iter, err := r.st.IterReferences()
	if err != nil {
		return nil
	}
	defer iter.Close()
	_ = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference || !ref.Name().IsBranch() {
			return nil
		}
		h := ref.Hash()
		for i := 0; i < maxHaveAncestors && !seen[h]; i++ {
			c, err := object.GetCommit(r.st, h)
			if err != nil {
				break
			}
			seen[h] = true
			out = append(out, h)
			if len(c.ParentHashes) == 0 {
				break
			}
			h = c.ParentHashes[0]
		}
		return nil
	})
	return out
}

// fetchIncremental asks, on an open session, for the missing commits with
// our heads as haves and our shallow commits declared. It returns false
// (nothing done) when the server cannot take shallow declarations.
func (r *Repo) fetchIncremental(ctx context.Context, sess transport.UploadPackSession, ar *packp.AdvRefs, wants []plumbing.Hash) (bool, error) {
	shallows, err := r.st.Shallow()
	if err != nil {
		return false, err
	}
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	if len(shallows) > 0 {
		if !ar.Capabilities.Supports(capability.Shallow) {
			return false, nil
		}
		if err := req.Capabilities.Set(capability.Shallow); err != nil {
			return false, err
		}
		req.Shallows = shallows
	}
	if ar.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	req.Wants = wants
	req.Haves = r.localHaves()
	if err := r.uploadPack(ctx, sess, req); err != nil {
		if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
			return true, nil
		}
		return false, err
	}
	return true, nil
}

// uploadPack sends req on an open session and stores the pack received.
func (r *Repo) uploadPack(ctx context.Context, sess transport.UploadPackSession, req *packp.UploadPackRequest) error {
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Close()
	var rd io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		rd = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		rd = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	if err := packfile.UpdateObjectStorage(r.st, rd); err != nil {
		return fmt.Errorf("storing fetched objects: %w", err)
	}
	return nil
}

// FetchBlob returns a blob's contents like ReadBlob, asking the remote for
// that one object when the local copy lacks it (a shallow cache never
// fetched the old revision it belongs to): one upload-pack request wanting
// the blob, no history. The server must serve objects by name
// (uploadpack.allowAnySHA1InWant, as GitHub and GitLab do); when it
// refuses, the error wraps ErrRevisionNotFound.
func (r *Repo) FetchBlob(ctx context.Context, hash string) ([]byte, error) {
	data, err := r.ReadBlob(hash)
	if err == nil || r.src.kind != kindRemote || !errors.Is(err, plumbing.ErrObjectNotFound) {
		return data, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fetchObject(ctx, plumbing.NewHash(hash)); err != nil {
		return nil, r.newError("fetch", "", fmt.Errorf("blob %s: %w: %w", hash, ErrRevisionNotFound, err))
	}
	data, err = r.readBlobLocked(plumbing.NewHash(hash))
	if err != nil {
		return nil, r.newError("read", "", err)
	}
	return data, nil
}

// fetchObject asks the remote for one object by name. Caller holds r.mu.
func (r *Repo) fetchObject(ctx context.Context, h plumbing.Hash) error {
	ctx, cancel := r.opCtx(ctx)
	defer cancel()
	sess, err := r.uploadPackSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return err
	}
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	if ar.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	req.Wants = []plumbing.Hash{h}
	return r.uploadPack(ctx, sess, req)
}

// branches returns the manifest branch and, when different, the status
// and trusted branches.
func (r *Repo) branches() []string {
	out := []string{r.branch}
	for _, b := range []string{r.statusBranch, r.trustedBranch} {
		if b != "" && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

// fetchSpecs runs one go-git fetch of the given branches at the
// configured depth; go-git sets their local refs. Caller holds r.mu.
func (r *Repo) fetchSpecs(ctx context.Context, want map[plumbing.ReferenceName]plumbing.Hash) error {
	specs := make([]config.RefSpec, 0, len(want))
	for n := range want {
		specs = append(specs, config.RefSpec(fmt.Sprintf("+%s:%s", n, n)))
	}
	rem, err := r.repo.Remote("origin")
	if err != nil {
		return err
	}
	err = rem.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   specs,
		Depth:      r.set.depth,
		Auth:       r.auth.method,
		CABundle:   r.auth.caBundle,
		Tags:       git.NoTags,
		Force:      true,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

// recordsRef names this deployment's records ref of the status branch.
func (r *Repo) recordsRef() plumbing.ReferenceName {
	return plumbing.ReferenceName(r.RecordsRef())
}

// legacyRecordsRef names the status branch's records ref of the
// deployment without a cluster ID.
func (r *Repo) legacyRecordsRef() plumbing.ReferenceName {
	return plumbing.ReferenceName(RecordsRef(r.statusBranch))
}

// recordsRefs are the records refs a fetch brings: this deployment's and,
// for one with a cluster ID, the legacy one (FetchResult.LegacyRecordsHead).
func (r *Repo) recordsRefs() []plumbing.ReferenceName {
	if r.clusterID == "" {
		return []plumbing.ReferenceName{r.recordsRef()}
	}
	return []plumbing.ReferenceName{r.recordsRef(), r.legacyRecordsRef()}
}

// headsPresent checks every local branch head's commit (and the records
// ref's) is present.
func (r *Repo) headsPresent() bool {
	names := r.recordsRefs()
	for _, b := range r.branches() {
		names = append(names, plumbing.NewBranchReferenceName(b))
	}
	for _, name := range names {
		ref, err := r.st.Reference(name)
		if err != nil {
			continue
		}
		if !r.hasCommit(ref.Hash()) {
			return false
		}
	}
	return true
}

// localResult reports the local heads. Caller holds r.mu.
func (r *Repo) localResult(updated bool) (FetchResult, error) {
	head, err := r.localHead(r.branch)
	if err != nil {
		return FetchResult{}, err
	}
	res := FetchResult{Head: head.String(), TrustedHead: head.String(), Updated: updated}
	r.known = map[string]plumbing.Hash{r.branch: head}
	if r.trustedBranch != r.branch {
		res.TrustedHead = ""
		if th, ok := r.trustedRef(); ok {
			res.TrustedHead = th.String()
		}
	}
	if r.statusBranch == r.trustedBranch && r.trustedBranch != r.branch {
		// A diff of another branch reads the trusted branch's records.
		res.StatusHead = res.TrustedHead
		if res.StatusHead != "" {
			r.known[r.statusBranch] = plumbing.NewHash(res.StatusHead)
		}
	} else if sh, err := r.st.Reference(plumbing.NewBranchReferenceName(r.statusBranch)); err == nil {
		res.StatusHead = sh.Hash().String()
		r.known[r.statusBranch] = sh.Hash()
	}
	if ref, err := r.st.Reference(r.recordsRef()); err == nil && r.hasCommit(ref.Hash()) {
		res.RecordsHead = ref.Hash().String()
	}
	if r.clusterID != "" {
		if ref, err := r.st.Reference(r.legacyRecordsRef()); err == nil && r.hasCommit(ref.Hash()) {
			res.LegacyRecordsHead = ref.Hash().String()
		}
	}
	return res, nil
}

// trustedRef looks up the trusted branch's head when it is not the
// manifest branch. In a working copy the remote-tracking branch
// (origin/<branch>, what the remote holds) wins over a local branch of the
// same name, which may carry unpushed commits. Caller holds r.mu.
func (r *Repo) trustedRef() (plumbing.Hash, bool) {
	names := []plumbing.ReferenceName{plumbing.NewBranchReferenceName(r.trustedBranch)}
	if r.src.kind == kindWorkTree {
		names = append([]plumbing.ReferenceName{plumbing.NewRemoteReferenceName("origin", r.trustedBranch)}, names...)
	}
	for _, n := range names {
		if ref, err := r.st.Reference(n); err == nil && r.hasCommit(ref.Hash()) {
			return ref.Hash(), true
		}
	}
	return plumbing.ZeroHash, false
}
