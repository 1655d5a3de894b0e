package reconciler

import (
	"context"

	"github.com/osbgit/osbgit/manifest"
)

// blobFetcher reads a blob a shallow local copy may lack (*gitrepo.Repo
// asks the remote for that one object).
type blobFetcher interface {
	FetchBlob(ctx context.Context, hash string) ([]byte, error)
}

// appliedManifests returns, for each instance and binding whose manifest
// file changed since the broker last confirmed it (its blob differs from
// StatusRecord.Applied), the object as it was last applied: the old values
// a diff shows. One blob per such resource, read (or fetched) on demand,
// so the cost follows the change, and no old revision is decoded whole.
// A blob that cannot be read leaves the resource out (its old parameters
// then show as unknown).
func (r *Reconciler) appliedManifests(ctx context.Context, set *manifest.Set, records map[manifest.Ref]*manifest.StatusRecord) map[manifest.Ref]manifest.Object {
	out := map[manifest.Ref]manifest.Object{}
	decoded := map[manifest.Source][]manifest.Object{}
	read := r.Source.ReadBlob
	if f, ok := r.Source.(blobFetcher); ok {
		read = func(hash string) ([]byte, error) { return f.FetchBlob(ctx, hash) }
	}
	defaultNS := ""
	if set.Config != nil {
		defaultNS = set.Config.DefaultNamespace
	}
	find := func(o manifest.Object) {
		ref := o.GetRef()
		rec := records[ref]
		if rec == nil || rec.Applied == nil || rec.Applied.Blob == "" || rec.Applied.Blob == o.GetSource().Blob {
			return
		}
		key := manifest.Source{File: rec.Applied.File, Blob: rec.Applied.Blob}
		objs, ok := decoded[key]
		if !ok {
			data, err := read(key.Blob)
			if err != nil {
				r.Log.WithField("ref", ref.String()).WithError(err).Debug("the manifest last applied cannot be read: old values unknown")
			} else {
				objs, _ = manifest.DecodeFile(key.File, data)
			}
			decoded[key] = objs
		}
		for _, old := range objs {
			oref := old.GetRef()
			if oref.Namespace == "" {
				oref.Namespace = defaultNS
			}
			if oref == ref {
				out[ref] = old
				return
			}
		}
	}
	for _, inst := range set.Instances {
		find(inst)
	}
	for _, b := range set.Bindings {
		find(b)
	}
	return out
}
