package gitrepo

import (
	"bytes"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// pendingObjects holds the objects a write creates, in memory and in front
// of the repository's storage, until the push succeeds. Nothing is written
// to the repository before the push: a rejected push leaves no garbage, and
// no object is written loose and read back to build the pack.
type pendingObjects struct {
	storer.EncodedObjectStorer // the repository's storage: what already exists
	objects                    map[plumbing.Hash]plumbing.EncodedObject
	order                      []plumbing.Hash
}

func newPendingObjects(base storer.EncodedObjectStorer) *pendingObjects {
	return &pendingObjects{EncodedObjectStorer: base, objects: map[plumbing.Hash]plumbing.EncodedObject{}}
}

// SetEncodedObject keeps o in memory.
func (p *pendingObjects) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	h := o.Hash()
	if _, ok := p.objects[h]; !ok {
		p.objects[h] = o
		p.order = append(p.order, h)
	}
	return h, nil
}

// EncodedObject looks in memory first, then in the repository.
func (p *pendingObjects) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if o, ok := p.objects[h]; ok {
		if t != plumbing.AnyObject && o.Type() != t {
			return nil, plumbing.ErrObjectNotFound
		}
		return o, nil
	}
	return p.EncodedObjectStorer.EncodedObject(t, h)
}

// HasEncodedObject looks in memory first, then in the repository.
func (p *pendingObjects) HasEncodedObject(h plumbing.Hash) error {
	if _, ok := p.objects[h]; ok {
		return nil
	}
	return p.EncodedObjectStorer.HasEncodedObject(h)
}

// EncodedObjectSize looks in memory first, then in the repository.
func (p *pendingObjects) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	if o, ok := p.objects[h]; ok {
		return o.Size(), nil
	}
	return p.EncodedObjectStorer.EncodedObjectSize(h)
}

// pack encodes the pending objects as a pack with go-git's encoder, whole
// objects in the order they were made (no delta search: records are small
// and the receiving git deltifies on its next repack).
func (p *pendingObjects) pack() ([]byte, error) {
	var buf bytes.Buffer
	if _, err := packfile.NewEncoder(&buf, p, false).Encode(p.order, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// keepPack stores a pushed pack in st, the local copy of a remote: through
// its pack writer when it has one (a cache directory gets the pack and its
// index as they are), else object by object (memory).
func (p *pendingObjects) keepPack(st storer.EncodedObjectStorer, pack []byte) error {
	if pw, ok := st.(storer.PackfileWriter); ok {
		w, err := pw.PackfileWriter()
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, bytes.NewReader(pack)); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	}
	for _, h := range p.order {
		if _, err := st.SetEncodedObject(p.objects[h]); err != nil {
			return err
		}
	}
	return nil
}
