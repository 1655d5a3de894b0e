package gitrepo

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// BlobReader reads blobs through storage of its own, so that one goroutine
// can read many blobs while others use the Repo: reads through the Repo
// share its lock (go-git's storage is not safe for concurrent use), and a
// pass reads its 20,000 records beside its 20,000 manifests. It is for one
// goroutine; Close releases it.
type BlobReader struct {
	repo  *Repo
	st    storer.EncodedObjectStorer // nil: read through repo
	close func() error
}

// BlobReader returns a reader of this repository's blobs. Where the
// repository is in memory it reads through the Repo (and its lock).
func (r *Repo) BlobReader() (*BlobReader, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	b := &BlobReader{repo: r}
	if fsst, ok := r.st.(*filesystem.Storage); ok {
		// Each blob is read once: a small cache is enough.
		st := filesystem.NewStorageWithOptions(fsst.Filesystem(), cache.NewObjectLRU(cache.MiByte),
			filesystem.Options{KeepDescriptors: true})
		b.st, b.close = st, st.Close
	}
	return b, nil
}

// ReadBlob returns the contents of the blob with the given hash, as
// Repo.ReadBlob does.
func (b *BlobReader) ReadBlob(hash string) ([]byte, error) {
	if b.st == nil || len(hash) != 40 || !plumbing.IsHash(hash) {
		return b.repo.ReadBlob(hash)
	}
	data, err := readBlobFrom(b.st, plumbing.NewHash(hash))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		// Written after this reader opened its packs: the Repo knows.
		return b.repo.ReadBlob(hash)
	}
	if err != nil {
		return nil, b.repo.newError("read", "", err)
	}
	return data, nil
}

// Close releases the reader's storage.
func (b *BlobReader) Close() error {
	if b.close == nil {
		return nil
	}
	return b.close()
}

// readBlobFrom reads a blob's contents from st.
func readBlobFrom(st storer.EncodedObjectStorer, h plumbing.Hash) ([]byte, error) {
	o, err := st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", shortHash(h.String()), err)
	}
	rd, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	buf := bytes.NewBuffer(make([]byte, 0, o.Size()))
	if _, err := io.Copy(buf, rd); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
