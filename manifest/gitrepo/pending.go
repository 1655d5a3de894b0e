package gitrepo

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
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

// pack encodes the pending objects as a pack (format version 2), whole
// objects in the order they were made (no delta search: records are small
// and the receiving git deltifies on its next repack), each compressed with
// zlib.BestSpeed.
//
// Hand-written under the developers' rule: go-git's packfile.Encoder
// compresses at zlib's default level, fixed, and for a pass's thousands of
// small record objects that compression was about half of each of its two
// commits' CPU (make bench's converge line: 2,000 objects per commit at
// full scale; BenchmarkPack compares the two encoders). The pack stays what
// git index-pack checks (TestPackIsReadByGit) and go-git parses
// (TestPackParsesWithGoGit).
func (p *pendingObjects) pack() ([]byte, error) {
	var buf bytes.Buffer
	if err := writePack(&buf, p.order, p.objects); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writePack writes the objects named by order as a version 2 pack.
func writePack(w io.Writer, order []plumbing.Hash, objects map[plumbing.Hash]plumbing.EncodedObject) error {
	sum := sha1.New()
	out := io.MultiWriter(w, sum)
	var head [12]byte
	copy(head[:], "PACK")
	binary.BigEndian.PutUint32(head[4:], 2)
	binary.BigEndian.PutUint32(head[8:], uint32(len(order)))
	if _, err := out.Write(head[:]); err != nil {
		return err
	}
	zw, _ := zlib.NewWriterLevel(out, zlib.BestSpeed) // a valid level: no error
	for _, h := range order {
		o := objects[h]
		if _, err := out.Write(objectHeader(o.Type(), o.Size())); err != nil {
			return err
		}
		r, err := o.Reader()
		if err != nil {
			return fmt.Errorf("pack object %s: %w", h, err)
		}
		zw.Reset(out)
		_, err = io.Copy(zw, r)
		r.Close()
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return fmt.Errorf("pack object %s: %w", h, err)
		}
	}
	_, err := w.Write(sum.Sum(nil))
	return err
}

// objectHeader is a pack entry's header: the type in bits 4-6 of the first
// byte, the size in its low 4 bits and 7 bits of each following byte, the
// high bit of each byte saying another follows.
func objectHeader(t plumbing.ObjectType, size int64) []byte {
	b := []byte{byte(t)<<4 | byte(size&0x0f)}
	for size >>= 4; size > 0; size >>= 7 {
		b[len(b)-1] |= 0x80
		b = append(b, byte(size&0x7f))
	}
	return b
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
