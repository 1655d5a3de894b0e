package gitrepo

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/hash"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// pendingObjects holds the objects a write creates, in memory and in front
// of the repository's storage, until the push succeeds. Nothing is written
// to the repository before the push: a rejected push leaves no garbage, and
// the objects are compressed once, into the pack the push sends, instead of
// being written as loose objects and read back to build that pack (which
// cost more than the push itself for a change of thousands of records).
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

// pack encodes the pending objects as a pack file, whole objects in the
// order they were made (no deltas: records are small and differ little from
// their predecessors once compressed), each deflated at level.
//
// Pushes to a local repository use zlib.NoCompression: compressing
// thousands of small records cost more than the rest of the write, the
// receiving git keeps the pack as sent only until its next repack (which
// compresses and deltifies properly), and records barely compress anyway
// (about 1.6x). Pushes over the network use zlib.BestSpeed.
func (p *pendingObjects) pack(level int) ([]byte, error) {
	var buf bytes.Buffer
	// Sized once: a stored (level 0) pack is the objects plus a few bytes
	// each, and growing the buffer object by object copied it many times.
	size := 12 + 20
	for _, o := range p.objects {
		size += int(o.Size()) + 32
	}
	if level == zlib.NoCompression {
		buf.Grow(size + size/64)
	} else {
		buf.Grow(size / 2)
	}
	buf.WriteString("PACK")
	var word [4]byte
	binary.BigEndian.PutUint32(word[:], 2) // version
	buf.Write(word[:])
	binary.BigEndian.PutUint32(word[:], uint32(len(p.order)))
	buf.Write(word[:])
	zw, err := zlib.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, fmt.Errorf("encoding pack: %w", err)
	}
	for _, h := range p.order {
		o := p.objects[h]
		writePackEntryHeader(&buf, o.Type(), o.Size())
		rd, err := o.Reader()
		if err != nil {
			return nil, fmt.Errorf("encoding pack: object %s: %w", h, err)
		}
		zw.Reset(&buf)
		_, err = io.Copy(zw, rd)
		rd.Close()
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("encoding pack: object %s: %w", h, err)
		}
	}
	sum := hash.New(hash.CryptoType)
	sum.Write(buf.Bytes())
	buf.Write(sum.Sum(nil))
	return buf.Bytes(), nil
}

// writePackEntryHeader writes a pack entry's type and inflated size: the
// type in bits 4-6 of the first byte, the size in little-endian groups of
// 4 then 7 bits, each byte's top bit saying another follows.
func writePackEntryHeader(buf *bytes.Buffer, t plumbing.ObjectType, size int64) {
	c := byte(t)<<4 | byte(size&0x0f)
	size >>= 4
	for size > 0 {
		buf.WriteByte(c | 0x80)
		c = byte(size & 0x7f)
		size >>= 7
	}
	buf.WriteByte(c)
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
