package secretstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Names and modes of the Dir backend's layout.
const (
	// metaFile holds a Secret's labels and annotations, next to its keys.
	// It is hidden and reserved: Get never returns it as a key.
	metaFile = ".osbgit-meta.json"
	// internalPrefix starts every file or directory name the Dir backend
	// uses for itself (metadata, temp files, directories being created or
	// deleted); keys with this prefix are refused.
	internalPrefix = ".osbgit-"
	tmpPrefix      = ".osbgit-tmp-"
	newDirPrefix   = ".osbgit-new-"
	delDirPrefix   = ".osbgit-del-"

	dirPerm  fs.FileMode = 0o700
	filePerm fs.FileMode = 0o600

	// maxValueSize bounds one value read back: a Kubernetes Secret holds
	// at most 1 MiB, and a planted huge file must not exhaust memory.
	maxValueSize = 1 << 20
)

// errUnsafePath is wrapped by errors about symlinks or unexpected file types
// found inside the store.
var errUnsafePath = errors.New("unsafe path in secret store")

// Dir stores each Secret as a directory PATH/<namespace>/<name>/ holding one
// file per key, the layout of a mounted Secret volume, so a process can read
// credentials the same way in and out of a cluster. Directories it creates
// are 0700 and files 0600. Every value is written to a temp file and renamed
// into place, so a reader never sees half a value; a new Secret is built in
// a hidden directory and renamed into place whole, and a deleted one is
// renamed away before removal. (A rotation that changes several keys of an
// existing Secret replaces them one by one: each value is whole, but a
// reader racing the update may see some keys old and some new.)
//
// Namespace, name and key are validated before they become path
// components, all access goes through os.Root (nothing resolves outside
// PATH), and a symlink found where a namespace, Secret or key should be is
// refused rather than followed. PATH itself may be a symlink.
//
// Labels and annotations are kept in a hidden .osbgit-meta.json per Secret;
// a directory without it (created by hand, e.g. broker auth) can be read but
// Put and Delete refuse it, like the Kube backend refuses unmanaged Secrets.
type Dir struct {
	path string
	// locks serialize Put and Delete of one Secret within the process;
	// different Secrets are written in parallel (a converge writes
	// thousands, each with several synced files).
	locks [64]sync.Mutex
	// sweptMu guards swept: the namespaces whose leftovers from earlier
	// processes were removed (once per namespace and process: listing a
	// namespace of thousands of Secrets on every Put made a converge
	// quadratic).
	sweptMu sync.Mutex
	swept   map[string]bool
}

// lock takes the lock of Secret namespace/name and returns its release.
func (d *Dir) lock(namespace, name string) func() {
	h := fnv.New32a()
	h.Write([]byte(namespace))
	h.Write([]byte{0})
	h.Write([]byte(name))
	m := &d.locks[h.Sum32()%uint32(len(d.locks))]
	m.Lock()
	return m.Unlock
}

// sweep removes, the first time this process touches a namespace, the
// Secret directories an earlier, killed process left half-built or
// half-deleted there (see removeStaleDirs). Everyone waits for the sweep
// before writing, so it never removes a directory this process is building.
func (d *Dir) sweep(namespace string, ns *os.Root) {
	d.sweptMu.Lock()
	defer d.sweptMu.Unlock()
	if d.swept[namespace] {
		return
	}
	removeStaleDirs(ns)
	if d.swept == nil {
		d.swept = map[string]bool{}
	}
	d.swept[namespace] = true
}

// dirMeta is the content of metaFile.
type dirMeta struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// NewDir returns a Dir store rooted at path (made absolute). The directory
// need not exist yet: Put creates it with mode 0700.
func NewDir(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("secret store directory: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("secret store directory %s: %w", path, err)
	}
	return &Dir{path: abs}, nil
}

// Path returns the store's root directory.
func (d *Dir) Path() string { return d.path }

// validateDirKey is validateKey plus the Dir backend's reserved prefix.
func validateDirKey(key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if strings.HasPrefix(key, internalPrefix) {
		return fmt.Errorf("%w: key %q: the prefix %q is reserved by the directory secret store", ErrInvalidName, key, internalPrefix)
	}
	return nil
}

// openStore opens the store root; with create, it is made if missing.
func (d *Dir) openStore(create bool) (*os.Root, error) {
	r, err := os.OpenRoot(d.path)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := os.MkdirAll(d.path, dirPerm); err != nil {
			return nil, err
		}
		r, err = os.OpenRoot(d.path)
	}
	return r, err
}

// lstatDir checks that name inside parent is a real directory (not a
// symlink). A missing entry is returned as an fs.ErrNotExist error.
func lstatDir(parent *os.Root, name, what string) error {
	info, err := parent.Lstat(name)
	if err != nil {
		return err
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%w: %s %q is a symbolic link; refusing to follow it", errUnsafePath, what, name)
	}
	if !info.IsDir() {
		return fmt.Errorf("%w: %s %q is not a directory", errUnsafePath, what, name)
	}
	return nil
}

// openNamespace opens PATH/<namespace>. With create, missing directories
// (the root and the namespace) are made with mode 0700.
func (d *Dir) openNamespace(namespace string, create bool) (*os.Root, error) {
	store, err := d.openStore(create)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	err = lstatDir(store, namespace, "namespace directory")
	if errors.Is(err, fs.ErrNotExist) && create {
		if err = store.Mkdir(namespace, dirPerm); err == nil {
			err = store.Chmod(namespace, dirPerm)
		}
		if errors.Is(err, fs.ErrExist) {
			err = nil // made concurrently; checked below
		}
		if err == nil {
			err = lstatDir(store, namespace, "namespace directory")
		}
	}
	if err != nil {
		return nil, err
	}
	return store.OpenRoot(namespace)
}

// openSecret opens PATH/<namespace>/<name>, which must exist.
func (d *Dir) openSecret(namespace, name string) (*os.Root, error) {
	ns, err := d.openNamespace(namespace, false)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	if err := lstatDir(ns, name, "secret directory"); err != nil {
		return nil, err
	}
	return ns.OpenRoot(name)
}

// Get returns the data of Secret namespace/name: every file in its
// directory except the hidden files the store keeps for itself.
func (d *Dir) Get(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	data, err := d.get(ctx, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("get secret %s/%s: %w", namespace, name, err)
	}
	return data, nil
}

func (d *Dir) get(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	if err := validateRef(namespace, name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sec, err := d.openSecret(namespace, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer sec.Close()
	keys, err := listKeys(sec)
	if err != nil {
		return nil, err
	}
	data := make(map[string][]byte, len(keys))
	for _, k := range keys {
		v, err := readRegular(sec, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by a concurrent update
		}
		if err != nil {
			return nil, err
		}
		data[k] = v
	}
	return data, nil
}

// listKeys returns the key files of a Secret directory. Entries with the
// internal prefix are skipped; a symlink, a subdirectory or a name that is
// not a valid key is refused.
func listKeys(sec *os.Root) ([]string, error) {
	f, err := sec.Open(".")
	if err != nil {
		return nil, err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, internalPrefix) {
			continue
		}
		if err := validateKey(n); err != nil {
			return nil, fmt.Errorf("%w: unexpected entry %q in secret directory", errUnsafePath, n)
		}
		if e.Type()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: key %q is a symbolic link; refusing to follow it", errUnsafePath, n)
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("%w: key %q is not a regular file", errUnsafePath, n)
		}
		keys = append(keys, n)
	}
	return keys, nil
}

// readRegular reads name from r, refusing anything but a regular file, up
// to maxValueSize. The file opened is checked to be the one examined, so a
// symlink swapped in between is not followed; a regular file renamed over
// name meanwhile (a concurrent writeAtomic) is read again.
func readRegular(r *os.Root, name string) ([]byte, error) {
	const attempts = 5
	for range attempts {
		v, err := readRegularOnce(r, name)
		if !errors.Is(err, errReplaced) {
			return v, err
		}
	}
	return nil, fmt.Errorf("%w: %q changed while being opened", errUnsafePath, name)
}

// errReplaced is readRegularOnce's answer when the file opened is not the
// one examined.
var errReplaced = errors.New("replaced while being opened")

func readRegularOnce(r *os.Root, name string) ([]byte, error) {
	li, err := r.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !li.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %q is not a regular file", errUnsafePath, name)
	}
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !os.SameFile(li, fi) {
		return nil, errReplaced
	}
	v, err := io.ReadAll(io.LimitReader(f, maxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", name, err)
	}
	if len(v) > maxValueSize {
		return nil, fmt.Errorf("%q is larger than %d bytes", name, maxValueSize)
	}
	return v, nil
}

// readMeta reads a Secret directory's metadata file; a missing file is
// returned as fs.ErrNotExist.
func readMeta(sec *os.Root) (dirMeta, error) {
	var m dirMeta
	raw, err := readRegular(sec, metaFile)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("%s: invalid metadata: %w", metaFile, err)
	}
	return m, nil
}

// managedMeta reads the metadata of a Secret directory and checks that it
// is osbgit's.
func managedMeta(sec *os.Root, namespace, name string) (dirMeta, error) {
	m, err := readMeta(sec)
	if errors.Is(err, fs.ErrNotExist) {
		return m, &NotManagedError{Namespace: namespace, Name: name}
	}
	if err != nil {
		return m, err
	}
	if !isManaged(m.Labels) {
		return m, &NotManagedError{Namespace: namespace, Name: name}
	}
	return m, nil
}

// writeAtomic writes data to name inside r: a new temp file with mode 0600
// is written, synced and renamed over name, so name always holds either the
// old or the new value.
func writeAtomic(r *os.Root, name string, data []byte) error {
	tmp := tmpPrefix + rand.Text()
	if err := writeNew(r, tmp, data); err != nil {
		return err
	}
	if err := r.Rename(tmp, name); err != nil {
		r.Remove(tmp)
		return err
	}
	return nil
}

// writeNew creates name inside r with mode 0600 and writes and syncs data;
// on failure nothing is left. It is enough on its own inside a directory
// no reader can see yet (createSecretDir's hidden directory, renamed into
// place whole), where a temp file and rename per key would only cost.
func writeNew(r *os.Root, name string, data []byte) (err error) {
	f, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			r.Remove(name)
		}
	}()
	if err = f.Chmod(filePerm); err != nil { // exact, whatever the umask
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// syncDir flushes a directory's entries (renames, removals) to disk.
func syncDir(r *os.Root) error {
	f, err := r.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Put creates or updates Secret namespace/name (see Store.Put).
func (d *Dir) Put(ctx context.Context, namespace, name string, s Secret) error {
	if err := d.put(ctx, namespace, name, s); err != nil {
		return fmt.Errorf("put secret %s/%s: %w", namespace, name, err)
	}
	return nil
}

func (d *Dir) put(ctx context.Context, namespace, name string, s Secret) error {
	if err := validateRef(namespace, name); err != nil {
		return err
	}
	if err := validateKeys(s.Data, validateDirKey); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	meta := dirMeta{Labels: desiredLabels(s), Annotations: copyStrings(s.Annotations)}
	metaRaw, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	defer d.lock(namespace, name)()
	ns, err := d.openNamespace(namespace, true)
	if err != nil {
		return err
	}
	defer ns.Close()
	d.sweep(namespace, ns)
	err = lstatDir(ns, name, "secret directory")
	if errors.Is(err, fs.ErrNotExist) {
		return createSecretDir(ns, name, s.Data, metaRaw)
	}
	if err != nil {
		return err
	}
	sec, err := ns.OpenRoot(name)
	if err != nil {
		return err
	}
	defer sec.Close()
	return updateSecretDir(sec, namespace, name, s.Data, meta, metaRaw)
}

// namedData is a file to write: its name, content, and how errors name it.
type namedData struct {
	name, what string
	data       []byte
}

func (f namedData) wrap(err error) error { return fmt.Errorf("write %s: %w", f.what, err) }

// createSecretDir builds a new Secret directory under a hidden name and
// renames it into place, so it appears with all its keys at once.
func createSecretDir(ns *os.Root, name string, data map[string][]byte, metaRaw []byte) (err error) {
	tmp := newDirPrefix + rand.Text()
	if err := ns.Mkdir(tmp, dirPerm); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			ns.RemoveAll(tmp)
		}
	}()
	if err := ns.Chmod(tmp, dirPerm); err != nil {
		return err
	}
	files := make([]namedData, 0, len(data)+1)
	for _, k := range sortedKeys(data) {
		files = append(files, namedData{name: k, data: data[k], what: fmt.Sprintf("key %q", k)})
	}
	files = append(files, namedData{name: metaFile, data: metaRaw, what: metaFile})
	if err := writeNewFiles(ns, tmp, files); err != nil {
		return err
	}
	if err := ns.Rename(tmp, name); err != nil {
		return err
	}
	return syncDir(ns)
}

// updateSecretDir rewrites the changed keys of an existing, managed Secret
// directory, removes keys no longer present and rewrites the metadata if it
// changed. Nothing is written when nothing differs.
func updateSecretDir(sec *os.Root, namespace, name string, data map[string][]byte, meta dirMeta, metaRaw []byte) error {
	cur, err := managedMeta(sec, namespace, name)
	if err != nil {
		return err
	}
	if err := removeStaleTemps(sec); err != nil {
		return err
	}
	keys, err := listKeys(sec)
	if err != nil {
		return err
	}
	existing := make(map[string]bool, len(keys))
	for _, k := range keys {
		existing[k] = true
	}
	changed := false
	for _, k := range sortedKeys(data) {
		if existing[k] {
			old, err := readRegular(sec, k)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if err == nil && bytes.Equal(old, data[k]) {
				continue
			}
		}
		if err := writeAtomic(sec, k, data[k]); err != nil {
			return fmt.Errorf("write key %q: %w", k, err)
		}
		changed = true
	}
	for _, k := range keys {
		if _, keep := data[k]; keep {
			continue
		}
		if err := sec.Remove(k); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove key %q: %w", k, err)
		}
		changed = true
	}
	if !maps.Equal(cur.Labels, meta.Labels) || !maps.Equal(cur.Annotations, meta.Annotations) {
		if err := writeAtomic(sec, metaFile, metaRaw); err != nil {
			return fmt.Errorf("write %s: %w", metaFile, err)
		}
		changed = true
	}
	if !changed {
		return nil
	}
	return syncDir(sec)
}

// removeStaleDirs removes, best effort, the Secret directories a killed
// process left half-built (.osbgit-new-*) or half-deleted (.osbgit-del-*)
// in a namespace directory: they may hold credential values. Dir.sweep
// calls it once per namespace. (Two processes writing the same store at
// once are not supported: one could remove the other's directory being
// built, which then fails its Put.)
func removeStaleDirs(ns *os.Root) {
	f, err := ns.Open(".")
	if err != nil {
		return
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return
	}
	for _, n := range names {
		if strings.HasPrefix(n, newDirPrefix) || strings.HasPrefix(n, delDirPrefix) {
			ns.RemoveAll(n)
		}
	}
}

// removeStaleTemps deletes temp files left by an interrupted write.
func removeStaleTemps(sec *os.Root) error {
	f, err := sec.Open(".")
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, tmpPrefix) {
			if err := sec.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// Delete removes Secret namespace/name if it exists and is osbgit's: the
// directory is first renamed to a hidden name (so it disappears at once)
// and then removed.
func (d *Dir) Delete(ctx context.Context, namespace, name string) error {
	if err := d.delete(ctx, namespace, name); err != nil {
		return fmt.Errorf("delete secret %s/%s: %w", namespace, name, err)
	}
	return nil
}

func (d *Dir) delete(ctx context.Context, namespace, name string) error {
	if err := validateRef(namespace, name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	defer d.lock(namespace, name)()
	ns, err := d.openNamespace(namespace, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer ns.Close()
	d.sweep(namespace, ns)
	err = lstatDir(ns, name, "secret directory")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sec, err := ns.OpenRoot(name)
	if err != nil {
		return err
	}
	_, err = managedMeta(sec, namespace, name)
	sec.Close()
	if err != nil {
		return err
	}
	tomb := delDirPrefix + rand.Text()
	if err := ns.Rename(name, tomb); err != nil {
		return err
	}
	if err := ns.RemoveAll(tomb); err != nil {
		return fmt.Errorf("secret removed, but cleaning up %s failed: %w", tomb, err)
	}
	return syncDir(ns)
}
