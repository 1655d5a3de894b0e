package secretstore

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

func newTestDir(t *testing.T) (*Dir, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "store")
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}

// tree lists every path under root (relative, sorted) with its permission
// bits and type, hidden files included.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = info.Mode().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fileAt is p's identity (os.SameFile tells a rewrite by rename).
func fileAt(t *testing.T, p string) os.FileInfo {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestDirLayoutAndPermissions(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	data := map[string][]byte{"username": []byte("u"), "password": []byte("p"), ".dotted": []byte("d")}
	if err := d.Put(ctx, "team-a", "db-creds", secrets.BindingSecret(data, "team-a", "db", "id-1")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		".":                                 "drwx------",
		lockDir:                             "drwx------",
		"team-a":                            "drwx------",
		"team-a/db-creds":                   "drwx------",
		"team-a/db-creds/username":          "-rw-------",
		"team-a/db-creds/password":          "-rw-------",
		"team-a/db-creds/.dotted":           "-rw-------",
		"team-a/db-creds/.osbgit-meta.json": "-rw-------",
	}
	want[lockFileName(idOf("team-a", "db-creds").stripe())] = "-rw-------"
	if diff := cmp.Diff(want, tree(t, root)); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
	for k, v := range data {
		got, err := os.ReadFile(filepath.Join(root, "team-a", "db-creds", k))
		if err != nil || string(got) != string(v) {
			t.Errorf("file %s = %q, %v", k, got, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(root, "team-a", "db-creds", metaFile))
	if err != nil {
		t.Fatal(err)
	}
	var m dirMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	wantMeta := dirMeta{
		Labels:      map[string]string{secrets.LabelManagedBy: secrets.ManagedByValue, secrets.LabelBindingName: "db", secrets.LabelBindingNamespace: "team-a"},
		Annotations: map[string]string{secrets.AnnotationBindingName: "db", secrets.AnnotationBindingExternalID: "id-1"},
	}
	if diff := cmp.Diff(wantMeta, m); diff != "" {
		t.Errorf("meta (-want +got):\n%s", diff)
	}
	got, err := d.Get(ctx, "team-a", "db-creds")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(data, got); diff != "" {
		t.Errorf("Get (-want +got), the meta file must not appear:\n%s", diff)
	}
}

func TestDirUpdate(t *testing.T) {
	ctx := context.Background()
	base := map[string][]byte{"username": []byte("u1"), "password": []byte("p1"), "host": []byte("h")}
	tests := []struct {
		name        string
		next        map[string][]byte
		externalID  string
		wantChanged []string // keys whose file was replaced
		wantGone    []string
	}{
		{name: "identical put writes nothing", next: base, externalID: "id1"},
		{name: "changed key replaced, others untouched", next: map[string][]byte{"username": []byte("u1"), "password": []byte("p2"), "host": []byte("h")}, externalID: "id1", wantChanged: []string{"password"}},
		{name: "removed keys deleted, new key added", next: map[string][]byte{"username": []byte("u1"), "uri": []byte("x")}, externalID: "id1", wantChanged: []string{"uri"}, wantGone: []string{"password", "host"}},
		{name: "metadata only", next: base, externalID: "id2", wantChanged: []string{metaFile}},
		{name: "to empty", next: nil, externalID: "id1", wantGone: []string{"username", "password", "host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, root := newTestDir(t)
			dir := filepath.Join(root, "ns", "s")
			if err := d.Put(ctx, "ns", "s", secrets.BindingSecret(base, "ns", "b", "id1")); err != nil {
				t.Fatal(err)
			}
			before := map[string]os.FileInfo{}
			for _, k := range []string{"username", "password", "host", metaFile} {
				before[k] = fileAt(t, filepath.Join(dir, k))
			}
			if err := d.Put(ctx, "ns", "s", secrets.BindingSecret(tt.next, "ns", "b", tt.externalID)); err != nil {
				t.Fatal(err)
			}
			got, err := d.Get(ctx, "ns", "s")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.next, got, cmpEmptyData); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
			for k, ino := range before {
				gone := contains(tt.wantGone, k)
				_, statErr := os.Lstat(filepath.Join(dir, k))
				switch {
				case gone && !errors.Is(statErr, fs.ErrNotExist):
					t.Errorf("%s still present", k)
				case gone:
				case statErr != nil:
					t.Errorf("%s: %v", k, statErr)
				case contains(tt.wantChanged, k) && os.SameFile(fileAt(t, filepath.Join(dir, k)), ino):
					t.Errorf("%s was not rewritten", k)
				case !contains(tt.wantChanged, k) && !os.SameFile(fileAt(t, filepath.Join(dir, k)), ino):
					t.Errorf("%s was rewritten although unchanged", k)
				}
			}
			for _, k := range tt.wantChanged {
				if mode := tree(t, root)[filepath.Join("ns", "s", k)]; mode != "-rw-------" {
					t.Errorf("%s mode = %s", k, mode)
				}
			}
			assertNoTemps(t, root)
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func assertNoTemps(t *testing.T, root string) {
	t.Helper()
	for p := range tree(t, root) {
		base := filepath.Base(p)
		if strings.HasPrefix(base, tmpPrefix) || strings.HasPrefix(base, newDirPrefix) || strings.HasPrefix(base, delDirPrefix) {
			t.Errorf("leftover %s", p)
		}
	}
}

// TestDirAtomicReplace has readers racing a writer that alternates between
// two full values: a reader must only ever see one or the other, never a
// truncated or mixed value.
func TestDirAtomicReplace(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	a := []byte(strings.Repeat("A", 256<<10))
	b := []byte(strings.Repeat("B", 200<<10))
	if err := d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"k": a}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "ns", "s", "k")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad []string
	var mu sync.Mutex
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v, err := os.ReadFile(path)
				if err == nil && string(v) != string(a) && string(v) != string(b) {
					mu.Lock()
					bad = append(bad, "raw read saw a partial value")
					mu.Unlock()
				}
				got, err := d.Get(ctx, "ns", "s")
				if err != nil {
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
					continue
				}
				if v := got["k"]; string(v) != string(a) && string(v) != string(b) {
					mu.Lock()
					bad = append(bad, "Get saw a partial value")
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 40 {
		v := a
		if i%2 == 0 {
			v = b
		}
		if err := d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"k": v}}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d bad reads, first: %s", len(bad), bad[0])
	}
	assertNoTemps(t, root)
}

func TestDirDelete(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	if err := d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"k": []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "ns", "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "ns", "s")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("secret directory still there: %v", err)
	}
	if _, err := d.Get(ctx, "ns", "s"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v", err)
	}
	assertNoTemps(t, root)
	for _, c := range []struct{ ns, name string }{{"ns", "s"}, {"other", "s"}} {
		if err := d.Delete(ctx, c.ns, c.name); err != nil {
			t.Errorf("Delete of missing %s/%s = %v", c.ns, c.name, err)
		}
	}
	// A store whose directory does not exist yet.
	empty, err := NewDir(filepath.Join(t.TempDir(), "nope"))
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Delete(ctx, "ns", "s"); err != nil {
		t.Errorf("Delete in a missing store = %v", err)
	}
	if _, err := empty.Get(ctx, "ns", "s"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get in a missing store = %v", err)
	}
}

func TestDirRefusesUnmanaged(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		meta *string // nil: no meta file
	}{
		{name: "no metadata file (made by hand)"},
		{name: "metadata without managed-by", meta: ptr(`{"labels":{"app":"x"}}`)},
		{name: "managed-by another tool", meta: ptr(`{"labels":{"app.kubernetes.io/managed-by":"helm"}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, root := newTestDir(t)
			dir := filepath.Join(root, "ns", "auth")
			mustWrite(t, filepath.Join(dir, "password"), "hand-made")
			if tt.meta != nil {
				mustWrite(t, filepath.Join(dir, metaFile), *tt.meta)
			}
			for op, err := range map[string]error{
				"put":    d.Put(ctx, "ns", "auth", secrets.Secret{Data: map[string][]byte{"password": []byte("mine")}}),
				"delete": d.Delete(ctx, "ns", "auth"),
			} {
				var nm *NotManagedError
				if !errors.As(err, &nm) || nm.Namespace != "ns" || nm.Name != "auth" || !errors.Is(err, secrets.ErrNotManaged) {
					t.Errorf("%s: err = %v, want NotManagedError matching secrets.ErrNotManaged", op, err)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "password")); string(b) != "hand-made" {
				t.Errorf("unmanaged secret modified")
			}
			// Reading a hand-made secret (broker auth) works.
			if data, err := d.Get(ctx, "ns", "auth"); err != nil || string(data["password"]) != "hand-made" {
				t.Errorf("Get = %q, %v", data, err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDirHostileNames feeds path-traversal attempts as namespace, name and
// key: every one is refused before touching the file system, and nothing
// is created outside (or inside) the store.
func TestDirHostileNames(t *testing.T) {
	ctx := context.Background()
	hostile := []string{
		"..", ".", "../../etc", "a/b", "/etc", "/", "", "a\\b", "a\x00b", "..\\..", "ns/../../x",
		"UPPER", "-lead", "trail-", " space", "%2e%2e", strings.Repeat("a", 300),
	}
	tests := []struct {
		field string
		call  func(d *Dir, v string) []error
	}{
		{"namespace", func(d *Dir, v string) []error {
			_, gerr := d.Get(ctx, v, "s")
			return []error{gerr, d.Put(ctx, v, "s", secrets.Secret{Data: map[string][]byte{"k": []byte("v")}}), d.Delete(ctx, v, "s")}
		}},
		{"name", func(d *Dir, v string) []error {
			_, gerr := d.Get(ctx, "ns", v)
			return []error{gerr, d.Put(ctx, "ns", v, secrets.Secret{Data: map[string][]byte{"k": []byte("v")}}), d.Delete(ctx, "ns", v)}
		}},
		{"key", func(d *Dir, v string) []error {
			return []error{d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{v: []byte("v")}})}
		}},
	}
	for _, tt := range tests {
		for _, v := range hostile {
			if tt.field == "key" && (v == "UPPER" || v == "-lead" || v == "trail-") {
				continue // valid keys
			}
			t.Run(tt.field+"="+v, func(t *testing.T) {
				parent := t.TempDir()
				root := filepath.Join(parent, "store")
				d, err := NewDir(root)
				if err != nil {
					t.Fatal(err)
				}
				for i, err := range tt.call(d, v) {
					if err == nil {
						continue
					}
					if !errors.Is(err, ErrInvalidName) {
						t.Errorf("call %d: err = %v, want ErrInvalidName", i, err)
					}
				}
				if errs := tt.call(d, v); errs[0] == nil {
					t.Errorf("put with %s %q succeeded", tt.field, v)
				}
				entries, _ := os.ReadDir(parent)
				if len(entries) != 0 {
					t.Errorf("files created: %v", entries)
				}
			})
		}
	}
	// Reserved and hidden-internal key names.
	d, _ := newTestDir(t)
	for _, k := range []string{metaFile, ".osbgit-tmp-x", "..data"} {
		if err := d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{k: []byte("v")}}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("key %q: err = %v, want ErrInvalidName", k, err)
		}
	}
}

// TestDirSymlinksRefused plants symlinks where the store expects real
// directories and files, pointing outside the store, and checks that no
// operation follows them: nothing outside is read, written or deleted.
func TestDirSymlinksRefused(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		plant func(t *testing.T, root, outside string)
		ops   []string // operations that must fail with errUnsafePath
	}{
		{
			name: "namespace directory is a symlink",
			plant: func(t *testing.T, root, outside string) {
				mustSymlink(t, outside, filepath.Join(root, "ns"))
			},
			ops: []string{"get", "put", "delete"},
		},
		{
			name: "secret directory is a symlink",
			plant: func(t *testing.T, root, outside string) {
				mustSymlink(t, outside, filepath.Join(root, "ns", "s"))
			},
			ops: []string{"get", "put", "delete"},
		},
		{
			name: "secret directory is a relative symlink inside the store",
			plant: func(t *testing.T, root, outside string) {
				if err := os.MkdirAll(filepath.Join(root, "ns", "real"), 0o700); err != nil {
					t.Fatal(err)
				}
				mustSymlink(t, "real", filepath.Join(root, "ns", "s"))
			},
			ops: []string{"get", "put", "delete"},
		},
		{
			name: "key is a symlink in a managed secret",
			plant: func(t *testing.T, root, outside string) {
				mustWrite(t, filepath.Join(root, "ns", "s", metaFile), `{"labels":{"app.kubernetes.io/managed-by":"osbgit"}}`)
				mustSymlink(t, filepath.Join(outside, "victim"), filepath.Join(root, "ns", "s", "password"))
			},
			ops: []string{"get", "put"},
		},
		{
			name: "metadata file is a symlink",
			plant: func(t *testing.T, root, outside string) {
				mustWrite(t, filepath.Join(outside, "fake-meta"), `{"labels":{"app.kubernetes.io/managed-by":"osbgit"}}`)
				mustWrite(t, filepath.Join(root, "ns", "s", "k"), "v")
				mustSymlink(t, filepath.Join(outside, "fake-meta"), filepath.Join(root, "ns", "s", metaFile))
			},
			ops: []string{"put", "delete"},
		},
		{
			name: "key is a subdirectory",
			plant: func(t *testing.T, root, outside string) {
				mustWrite(t, filepath.Join(root, "ns", "s", metaFile), `{"labels":{"app.kubernetes.io/managed-by":"osbgit"}}`)
				if err := os.MkdirAll(filepath.Join(root, "ns", "s", "sub"), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			ops: []string{"get", "put"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			root := filepath.Join(base, "store")
			outside := filepath.Join(base, "outside")
			if err := os.MkdirAll(filepath.Join(root, "ns"), 0o700); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(outside, "victim"), "do-not-touch")
			if tt.name == "namespace directory is a symlink" {
				os.Remove(filepath.Join(root, "ns"))
			}
			tt.plant(t, root, outside)
			before := tree(t, outside)
			d, err := NewDir(root)
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range tt.ops {
				var err error
				switch op {
				case "get":
					_, err = d.Get(ctx, "ns", "s")
				case "put":
					err = d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"password": []byte("new"), "victim": []byte("new")}})
				case "delete":
					err = d.Delete(ctx, "ns", "s")
				}
				if !errors.Is(err, errUnsafePath) {
					t.Errorf("%s: err = %v, want errUnsafePath", op, err)
				}
			}
			if diff := cmp.Diff(before, tree(t, outside)); diff != "" {
				t.Errorf("outside changed (-before +after):\n%s", diff)
			}
			if b, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(b) != "do-not-touch" {
				t.Errorf("victim = %q, %v", b, err)
			}
		})
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestDirRootMayBeSymlink(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	mustSymlink(t, real, link)
	d, err := NewDir(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"k": []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(real, "ns", "s", "k")); err != nil {
		t.Error(err)
	}
}

func TestDirRemovesStaleTempsAndIgnoresThemOnGet(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	if err := d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"k": []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, "ns", "s", tmpPrefix+"CRASHED")
	mustWrite(t, stale, "half")
	got, err := d.Get(ctx, "ns", "s")
	if err != nil || !cmp.Equal(got, map[string][]byte{"k": []byte("v")}) {
		t.Fatalf("Get = %v, %v", got, err)
	}
	if err := d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"k": []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp file not removed")
	}
}

func TestDirConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns := []string{"a", "b"}[i%2]
			name := "s" + string(rune('a'+i))
			errs <- d.Put(ctx, ns, name, secrets.Secret{Data: map[string][]byte{"k": []byte(name)}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var names []string
	for _, ns := range []string{"a", "b"} {
		entries, err := os.ReadDir(filepath.Join(root, ns))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			names = append(names, ns+"/"+e.Name())
		}
	}
	sort.Strings(names)
	if len(names) != 20 {
		t.Errorf("got %d secrets: %v", len(names), names)
	}
}

func TestDirGetRejectsOversizedValue(t *testing.T) {
	d, root := newTestDir(t)
	mustWrite(t, filepath.Join(root, "ns", "s", "big"), strings.Repeat("x", maxValueSize+1))
	if _, err := d.Get(context.Background(), "ns", "s"); err == nil || !strings.Contains(err.Error(), `"big"`) {
		t.Errorf("err = %v, want an error naming the key", err)
	}
}

// A killed process can leave a half-built or half-deleted Secret directory
// holding credentials; the next process's first write to that namespace
// removes it, and leaves other namespaces' Secrets alone.
func TestDirSweepsLeftoversOfAnEarlierProcess(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	if err := d.Put(ctx, "ns", "keep", secrets.Secret{Data: map[string][]byte{"k": []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	halfBuilt := filepath.Join(root, "ns", newDirPrefix+"CRASHED")
	halfDeleted := filepath.Join(root, "ns", delDirPrefix+"CRASHED")
	mustWrite(t, filepath.Join(halfBuilt, "password"), "planted")
	mustWrite(t, filepath.Join(halfDeleted, "password"), "planted")

	next, err := NewDir(root) // the next process
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Put(ctx, "ns", "other", secrets.Secret{Data: map[string][]byte{"k": []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{halfBuilt, halfDeleted} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left in place (%v)", filepath.Base(p), err)
		}
	}
	for _, name := range []string{"keep", "other"} {
		if got, err := next.Get(ctx, "ns", name); err != nil || string(got["k"]) != "v" {
			t.Errorf("Get %s = %v, %v", name, got, err)
		}
	}
}

// Puts of one Secret from many goroutines end with one whole value of one
// of them, and no leftover temp files or directories.
func TestDirConcurrentPutsOfOneSecret(t *testing.T) {
	ctx := context.Background()
	d, root := newTestDir(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := strings.Repeat(string(rune('a'+i)), 64)
			errs <- d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"user": []byte(v), "pass": []byte(v)}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got, err := d.Get(ctx, "ns", "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(got["user"]) != 64 || len(got["pass"]) != 64 || strings.Count(string(got["user"]), string(got["user"][:1])) != 64 {
		t.Errorf("torn value: %q / %q", got["user"], got["pass"])
	}
	entries, err := os.ReadDir(filepath.Join(root, "ns"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "s" {
		t.Errorf("namespace holds %v, want just s", entries)
	}
}

// The states a killed Put or Delete can leave, and those earlier versions
// could (a Secret's directory holding only temp files, or nothing), built
// by hand: the next process's Put repairs each, and its Delete removes the
// Secret.
func TestDirRepairsWhatACrashLeaves(t *testing.T) {
	ctx := context.Background()
	id := idOf("ns", "s")
	managed := `{"labels":{"app.kubernetes.io/managed-by":"osbgit"},"annotations":{"osbgit.dev/binding-external-id":"old"}}`
	mkdir := func(t *testing.T, p string, mode fs.FileMode) {
		t.Helper()
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		plant func(t *testing.T, root string)
	}{
		{"hidden directory half written", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, "ns", id.newDir(), metaFile), managed)
			mustWrite(t, filepath.Join(root, "ns", id.newDir(), "user"), "half")
		}},
		{"hidden directory made under a umask stripping owner bits", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, "ns", id.newDir()), 0o600)
		}},
		{"deleted Secret half removed", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, "ns", id.delDir(), "pass"), "old-pass")
		}},
		{"update interrupted: keys old and new, a temp file", func(t *testing.T, root string) {
			dir := filepath.Join(root, "ns", "s")
			mustWrite(t, filepath.Join(dir, metaFile), managed)
			mustWrite(t, filepath.Join(dir, "pass"), "new-pass")
			mustWrite(t, filepath.Join(dir, "user"), "old-user")
			mustWrite(t, filepath.Join(dir, "host"), "old-host")
			mustWrite(t, filepath.Join(dir, tmpPrefix+"X"), "new-po")
		}},
		{"Secret directory holding only temp files", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, "ns", "s", tmpPrefix+"X"), "new-user")
			mustWrite(t, filepath.Join(root, "ns", "s", tmpPrefix+"Y"), "new-p")
		}},
		{"Secret directory empty", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, "ns", "s"), 0o700)
		}},
		{"namespace made under a umask stripping owner bits", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, "ns"), 0o600)
		}},
		{"lock directory made under a umask stripping owner bits", func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, lockDir), 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, root := newTestDir(t)
			tt.plant(t, root)
			assertNextPutRepairs(t, root)

			_, root = newTestDir(t)
			tt.plant(t, root)
			next, err := NewDir(root) // the next process
			if err != nil {
				t.Fatal(err)
			}
			if err := next.Delete(ctx, "ns", "s"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := next.Get(ctx, "ns", "s"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Delete = %v", err)
			}
			assertNoTemps(t, root)
		})
	}
}

// A Secret directory without osbgit's metadata is a leftover only if it
// holds nothing but regular temp files: with anything else in it, it is
// refused and left as it is.
func TestDirRefusesWhatIsNotALeftover(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		plant func(t *testing.T, dir string)
	}{
		{"a key and a temp file", func(t *testing.T, dir string) {
			mustWrite(t, filepath.Join(dir, "password"), "hand-made")
			mustWrite(t, filepath.Join(dir, tmpPrefix+"X"), "x")
		}},
		{"a hidden file of the user's", func(t *testing.T, dir string) {
			mustWrite(t, filepath.Join(dir, ".hidden"), "hand-made")
		}},
		{"a directory named like a temp file", func(t *testing.T, dir string) {
			mustWrite(t, filepath.Join(dir, tmpPrefix+"X", "data"), "hand-made")
		}},
		{"a symlink named like a temp file", func(t *testing.T, dir string) {
			victim := filepath.Join(dir, "..", "..", "victim")
			mustWrite(t, victim, "hand-made")
			mustSymlink(t, victim, filepath.Join(dir, tmpPrefix+"X"))
		}},
		{"temp files and another tool's metadata", func(t *testing.T, dir string) {
			mustWrite(t, filepath.Join(dir, metaFile), `{"labels":{"app.kubernetes.io/managed-by":"helm"}}`)
			mustWrite(t, filepath.Join(dir, tmpPrefix+"X"), "x")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, root := newTestDir(t)
			dir := filepath.Join(root, "ns", "s")
			tt.plant(t, dir)
			before := tree(t, dir)
			for op, err := range map[string]error{
				"put":    d.Put(ctx, "ns", "s", crashWant),
				"delete": d.Delete(ctx, "ns", "s"),
			} {
				var nm *NotManagedError
				if !errors.As(err, &nm) {
					t.Errorf("%s: err = %v, want NotManagedError", op, err)
				}
			}
			if diff := cmp.Diff(before, tree(t, dir)); diff != "" {
				t.Errorf("directory changed (-before +after):\n%s", diff)
			}
		})
	}
}
