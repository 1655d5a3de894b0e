package gitrepo

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Several deployments (one per cluster) may reconcile one repository. Each
// keeps its records apart, keyed by the cluster ID its operator gives it
// (Options.ClusterID):
//
//	.osbgit/                                 no cluster ID: the layout of a
//	                                         repository with one deployment
//	.osbgit/clusters/<id>/                   the records of cluster <id>
//	refs/osbgit/records/<branch>             records ref, no cluster ID
//	refs/osbgit/clusters/<id>/records/<branch>  records ref of cluster <id>
//
// A deployment reads, seals, grafts and compares only its own directory;
// one without a cluster ID treats .osbgit/clusters/ as not its own (it
// never lists, restores or removes it).

// ClustersDir holds the record directories of deployments with a cluster
// ID.
const ClustersDir = StatusDir + "/clusters"

// clustersEntry is ClustersDir's name in StatusDir.
const clustersEntry = "clusters"

// clusterRefsPrefix starts the records refs of deployments with a cluster
// ID.
const clusterRefsPrefix = "refs/osbgit/clusters/"

// CheckClusterID reports why id cannot name a deployment's records: it
// becomes a directory and a ref path segment, so it must be a DNS-1123
// label (lowercase letters, digits and '-', at most 63 characters), which
// can hold no '/', no '..' and nothing git refuses in a ref.
func CheckClusterID(id string) error {
	if errs := validation.IsDNS1123Label(id); len(errs) > 0 {
		return fmt.Errorf("%w: cluster ID %q: %s", ErrInvalidOptions, id, strings.Join(errs, "; "))
	}
	return nil
}

// RecordsDir is the directory holding the records of the deployment with
// cluster ID id: StatusDir for "", else ClustersDir/<id>. id must pass
// CheckClusterID.
func RecordsDir(clusterID string) string {
	if clusterID == "" {
		return StatusDir
	}
	return ClustersDir + "/" + clusterID
}

// ClusterRecordsRef is the records ref of the deployment with cluster ID
// id on status branch branch: RecordsRef(branch) for "", else
// refs/osbgit/clusters/<id>/records/<branch> (apart from every
// refs/osbgit/records/ ref, so git never finds one ref a directory of
// another).
func ClusterRecordsRef(clusterID, branch string) string {
	if clusterID == "" {
		return RecordsRef(branch)
	}
	return clusterRefsPrefix + clusterID + "/records/" + branch
}

// ClusterID is the deployment this Repo reads and writes the records of
// ("" for a repository's only deployment).
func (r *Repo) ClusterID() string { return r.clusterID }

// RecordsDir is the directory of this deployment's records
// (RecordsDir(ClusterID())).
func (r *Repo) RecordsDir() string { return RecordsDir(r.clusterID) }

// RecordsRef is this deployment's records ref.
func (r *Repo) RecordsRef() string { return ClusterRecordsRef(r.clusterID, r.statusBranch) }

// ownsRecordPath reports whether p (a clean slash path) is in this
// deployment's records directory.
func (r *Repo) ownsRecordPath(p string) bool {
	dir := r.RecordsDir()
	if !strings.HasPrefix(p, dir+"/") {
		return false
	}
	return r.clusterID != "" || !strings.HasPrefix(p, ClustersDir+"/")
}

// RecordsTree is the hash of this deployment's records tree in rev (the
// tree sealed records commits name): the tree of RecordsDir, without
// .osbgit/clusters/ for a deployment without cluster ID. NoRecordsTree
// when rev is "" or has no records.
func (r *Repo) RecordsTree(rev string) (string, error) {
	if rev == "" {
		return NoRecordsTree, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return "", err
	}
	c, err := r.commit(rev)
	if err != nil {
		return "", r.newError("read", "", err)
	}
	h, err := r.recordsTreeIn(r.st, c.TreeHash)
	if err != nil {
		return "", r.newError("read", "", err)
	}
	return h.String(), nil
}

// recordsTreeIn is RecordsTree of root tree root read from s (zero for
// none). Caller holds r.mu.
func (r *Repo) recordsTreeIn(s storer.EncodedObjectStorer, root plumbing.Hash) (plumbing.Hash, error) {
	h, err := subtreeIn(s, root, r.RecordsDir())
	if err != nil || h.IsZero() || r.clusterID != "" {
		return h, err
	}
	t, err := object.GetTree(s, h)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	i := slices.IndexFunc(t.Entries, func(e object.TreeEntry) bool { return e.Name == clustersEntry })
	if i < 0 {
		return h, nil
	}
	entries := slices.Delete(slices.Clone(t.Entries), i, i+1)
	if len(entries) == 0 {
		return plumbing.ZeroHash, nil
	}
	o := &plumbing.MemoryObject{}
	if err := (&object.Tree{Entries: entries}).Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return o.Hash(), nil
}

// ChangedRecords lists this deployment's record files that differ between
// two revisions (ChangedFiles of RecordsDir, without another deployment's).
func (r *Repo) ChangedRecords(fromRev, toRev string) ([]Change, error) {
	changes, err := r.ChangedFiles(fromRev, toRev, r.RecordsDir())
	return slices.DeleteFunc(changes, func(c Change) bool { return !r.ownsRecordPath(c.Path) }), err
}

// RecordFiles lists this deployment's record files in rev (Files of
// RecordsDir, without another deployment's); none when there are none.
func (r *Repo) RecordFiles(rev string) ([]File, error) {
	files, err := r.Files(rev, r.RecordsDir())
	if errIsNotExist(err) {
		return nil, nil
	}
	return slices.DeleteFunc(files, func(f File) bool { return !r.ownsRecordPath(f.Path) }), err
}

func errIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
