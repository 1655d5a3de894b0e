package gitrepo

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
)

// packFixture is a blob of each size class of the entry header (one, two
// and three size bytes), a tree and a commit, in pendingObjects.
func packFixture(t testing.TB) *pendingObjects {
	t.Helper()
	p := newPendingObjects(memory.NewStorage())
	blob := func(content string) plumbing.Hash {
		o := &plumbing.MemoryObject{}
		o.SetType(plumbing.BlobObject)
		o.Write([]byte(content))
		h, _ := p.SetEncodedObject(o)
		return h
	}
	small, mid, large := blob("tiny\n"), blob(strings.Repeat("record: x\n", 30)), blob(strings.Repeat("0123456789abcdef", 2000))
	tree := &object.Tree{Entries: []object.TreeEntry{
		{Name: "a.yaml", Mode: 0o100644, Hash: small},
		{Name: "b.yaml", Mode: 0o100644, Hash: mid},
		{Name: "c.yaml", Mode: 0o100644, Hash: large},
	}}
	to := &plumbing.MemoryObject{}
	if err := tree.Encode(to); err != nil {
		t.Fatal(err)
	}
	th, _ := p.SetEncodedObject(to)
	sig := object.Signature{Name: "osbgit", Email: "osbgit@example.com"}
	commit := &object.Commit{Author: sig, Committer: sig, Message: "records\n", TreeHash: th}
	co := &plumbing.MemoryObject{}
	if err := commit.Encode(co); err != nil {
		t.Fatal(err)
	}
	p.SetEncodedObject(co)
	return p
}

// TestPackIsReadByGit: git index-pack accepts the pack, and every object
// reads back from it with its type and content.
func TestPackIsReadByGit(t *testing.T) {
	p := packFixture(t)
	pack, err := p.pack()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo.git")
	gittest.Git(t, filepath.Dir(dir), "init", "-q", "--bare", dir)
	cmd := exec.Command("git", "index-pack", "--stdin", "--strict")
	cmd.Dir, cmd.Env, cmd.Stdin = dir, gittest.Env(), bytes.NewReader(pack)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git index-pack: %v\n%s", err, out)
	}
	for _, h := range p.order {
		o := p.objects[h]
		want := objectBytes(t, o)
		if got := gittest.Git(t, dir, "cat-file", "-t", h.String()); got != o.Type().String() {
			t.Errorf("object %s: git says type %s, want %s", h, got, o.Type())
		}
		cmd := exec.Command("git", "cat-file", o.Type().String(), h.String())
		cmd.Dir, cmd.Env = dir, gittest.Env()
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("git cat-file %s: %v", h, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("object %s: git reads %d bytes, want %d", h, len(got), len(want))
		}
	}
}

// TestPackParsesWithGoGit: go-git's pack parser, which stores a pushed
// pack in a cache directory (keepPack), reads the same objects.
func TestPackParsesWithGoGit(t *testing.T) {
	p := packFixture(t)
	pack, err := p.pack()
	if err != nil {
		t.Fatal(err)
	}
	st := memory.NewStorage()
	if err := packfile.UpdateObjectStorage(st, bytes.NewReader(pack)); err != nil {
		t.Fatalf("parse the pack: %v", err)
	}
	for _, h := range p.order {
		o, err := st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			t.Fatalf("object %s: %v", h, err)
		}
		if o.Type() != p.objects[h].Type() || !bytes.Equal(objectBytes(t, o), objectBytes(t, p.objects[h])) {
			t.Errorf("object %s differs after the round trip", h)
		}
	}
}

func objectBytes(t testing.TB, o plumbing.EncodedObject) []byte {
	t.Helper()
	r, err := o.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkPack compares pack() with go-git's packfile.Encoder (zlib's
// default level) on what a converge pass commits: 2,000 status records of
// about 1.4 KB (make bench's converge line at full scale).
func BenchmarkPack(b *testing.B) {
	p := newPendingObjects(memory.NewStorage())
	for i := range 2000 {
		o := &plumbing.MemoryObject{}
		o.SetType(plumbing.BlobObject)
		fmt.Fprintf(o, "apiVersion: osbgit.dev/v1alpha1\nkind: StatusRecord\nref:\n  name: db-%d\n%s", i, strings.Repeat("  field: value of a record\n", 50))
		p.SetEncodedObject(o)
	}
	b.Run("gitrepo", func(b *testing.B) {
		for b.Loop() {
			if _, err := p.pack(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-git", func(b *testing.B) {
		for b.Loop() {
			var buf bytes.Buffer
			if _, err := packfile.NewEncoder(&buf, p, false).Encode(p.order, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
