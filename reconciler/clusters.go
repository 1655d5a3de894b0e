package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
)

// recordRoot is the directory of this deployment's records: .osbgit for
// a repository's only deployment, .osbgit/clusters/<id> for one with a
// cluster ID (gitrepo.RecordsDir).
func (r *Reconciler) recordRoot() manifest.RecordRoot {
	return manifest.RecordRoot(r.Source.RecordsDir())
}

// loadRecords is LoadRecords of this deployment's records at rev.
func (r *Reconciler) loadRecords(rev string) (*manifest.Records, error) {
	return LoadRecords(r.Source, r.recordRoot(), rev, r.Cache)
}

// MoveResult is what MoveRecords moved.
type MoveResult struct {
	// From is the records commit of the deployment without a cluster ID
	// that was moved; Files its files, as they were named there.
	From  string
	Files []string
	// Commit is the deployment's first records commit ("" with dryRun).
	Commit string
}

// MoveRecords is the upgrade of a repository's only deployment to one
// with a cluster ID, so that other deployments can share the repository:
// the records of the deployment without a cluster ID (.osbgit/, records
// ref refs/osbgit/records/<branch>) become this deployment's
// (.osbgit/clusters/<id>/, its own records ref), unchanged, and nothing
// is provisioned again.
//
// It calls no broker. It moves only records whose seal verifies with this
// deployment's key (the records ref, never the status branch's copy), and
// only into a cluster root that has no records yet. One push creates the
// new records ref (signed for the cluster), moves the status branch's
// copy, and deletes the old records ref by compare-and-swap: of two
// deployments moving the same records, one fails; a deployment still
// running without a cluster ID then refuses (its records ref was
// deleted) rather than provision again.
func (r *Reconciler) MoveRecords(ctx context.Context, dryRun bool) (*MoveResult, error) {
	if err := r.init(ctx); err != nil {
		return nil, err
	}
	id := r.Source.ClusterID()
	if id == "" {
		return nil, errors.New("moving records needs the cluster ID to move them to (--cluster-id)")
	}
	if r.Keys == nil {
		return nil, errors.New("moving records needs the secret store holding osbgit's records key")
	}
	key, err := r.Keys.Key(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRecordsKey, err)
	}
	scope, oldScope := r.recordsScope(), legacyScope(r.Source)
	highest, err := r.Keys.Highest(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRecordsKey, err)
	}
	oldHighest, err := r.Keys.Highest(ctx, oldScope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRecordsKey, err)
	}
	fr, err := r.Source.Fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	branch, dir := r.Source.StatusBranch(), r.Source.RecordsDir()
	if fr.StatusHead == "" {
		return nil, fmt.Errorf("the status branch %s does not exist", branch)
	}
	own, err := r.recordsTree(fr.StatusHead)
	if err != nil {
		return nil, err
	}
	if fr.RecordsHead != "" || own != gitrepo.NoRecordsTree || highest > 0 {
		return nil, fmt.Errorf("cluster %s already has records (%s/ on %s, or records ref %s): records are moved only into a cluster that has none", id, dir, branch, r.Source.RecordsRef())
	}
	oldRef := gitrepo.RecordsRef(branch)
	if fr.LegacyRecordsHead == "" {
		return nil, fmt.Errorf("there is no records ref %s of a deployment without a cluster ID to move (moved already, or never signed: run `osbgit trust` without --cluster-id first)", oldRef)
	}
	oldTree, err := r.Source.TreeHash(fr.LegacyRecordsHead, manifest.RecordDir)
	if err != nil {
		return nil, fmt.Errorf("records ref %s: %w", oldRef, err)
	}
	seal, err := r.sealOfTree(fr.LegacyRecordsHead, key, oldScope, oldTree)
	if err == nil && seal.Sequence < oldHighest {
		err = fmt.Errorf("it was moved back to records commit %d of %d", seal.Sequence, oldHighest)
	}
	if err != nil {
		return nil, fmt.Errorf("the records ref %s does not verify with this deployment's key (%w): move records with the secret store of the deployment that wrote them", oldRef, err)
	}
	files, err := r.Source.Files(fr.LegacyRecordsHead, manifest.RecordDir)
	if err != nil {
		return nil, err
	}
	res := &MoveResult{From: fr.LegacyRecordsHead}
	moved := map[string][]byte{}
	for _, f := range files {
		rest, ok := strings.CutPrefix(f.Path, manifest.RecordDir+"/")
		if !ok || strings.HasPrefix(f.Path, gitrepo.ClustersDir+"/") {
			continue
		}
		data, err := r.Source.ReadBlob(f.Blob)
		if err != nil {
			return nil, err
		}
		moved[dir+"/"+rest] = data
		res.Files = append(res.Files, f.Path)
	}
	sort.Strings(res.Files)
	if dryRun {
		return res, nil
	}
	v := recordsView{sealed: true, key: key}
	msg := gitrepo.EnsureSkipCI(fmt.Sprintf("osbgit records move: %d file(s) of %s/ to %s/ (cluster ID %s)\n\nFrom records commit %s of %s, which this push deletes.",
		len(res.Files), manifest.RecordDir, dir, id, fr.LegacyRecordsHead, oldRef))
	sealed := r.sealed(ctx, &v)
	sealed.Resign = true
	// A write-ahead write: a conflict (another move, another writer) is
	// not retried on the new head but fails, and is run again by hand.
	wr, err := r.Source.WriteIntent(ctx, gitrepo.ChangeSet{Files: moved, Message: msg, Sealed: sealed, RetireLegacy: fr.LegacyRecordsHead})
	if err != nil {
		return nil, fmt.Errorf("write records: %w", err)
	}
	r.wrote(ctx, &v, wr, true)
	res.Commit = wr.RecordsCommit
	return res, nil
}
