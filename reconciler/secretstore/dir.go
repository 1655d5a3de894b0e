package secretstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/osbgit/osbgit/reconciler/secrets"
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

	// lockDir, at the store's root, holds the lockStripes empty files
	// whose flocks serialize writers across processes (see Dir). It is
	// never removed. Its name does not start with internalPrefix, which
	// marks leftovers, and cannot clash with a namespace (no namespace
	// starts with a dot).
	lockDir = ".osbgit.locks"
	// lockStripes is how many locks the Secrets share, in a process
	// (Dir.locks) and across processes (the files in lockDir).
	lockStripes = 64

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
// renamed away before removal.
//
// Several processes may share one store (`osbgit run` and a manual `osbgit
// sync`). Put, CreateOnce and Delete of a Secret hold its lock
// exclusively and Get holds it shared, so Get returns a Secret as one Put
// left it, never keys from two (a rotation that changes several keys of an
// existing Secret replaces them one by one: a process reading the files
// directly, not through Get, may see some keys old and some new). A lock
// is one of lockStripes: an in-process RWMutex and an flock on
// PATH/.osbgit.locks/<stripe>, picked by a hash of namespace and name (see
// secretID). Stripes rather than a store-wide lock, because a converge
// writes thousands of Secrets in parallel, and a process holding the whole
// store for a converge would stall the other one; rather
// than a lock file per Secret, because that file would have to be deleted
// with the Secret, racing the processes waiting on it. The kernel drops an
// flock when its holder dies, so a killed process never blocks the next
// one, and the lock files hold nothing that could go stale. Where flock is
// missing (not Unix), only the in-process locks remain and sharing a store
// between processes is unsupported.
//
// A process killed mid-Put or mid-Delete leaves a state the next Put of the
// same Secret repairs; the steps and what a crash after each leaves are
// listed at put and delete. Its leftovers are hidden entries named after the
// Secret (secretID), removed under the Secret's lock by its next Put, or
// by the first Put or Delete a later process makes in the namespace (sweep),
// so they are never taken for a user's directory.
//
// Namespace, name and key are validated before they become path
// components, all access goes through os.Root (nothing resolves outside
// PATH), and a symlink found where a namespace, Secret or key should be is
// refused rather than followed. PATH itself may be a symlink.
//
// Labels and annotations are kept in a hidden .osbgit-meta.json per Secret;
// a directory without it (created by hand, e.g. broker auth) can be read but
// Put and Delete refuse it, like the Kube backend refuses unmanaged Secrets,
// unless it holds nothing but temp files a killed write left (see
// ownership).
type Dir struct {
	path string
	// locks are the in-process half of the stripe locks (see Dir):
	// different Secrets are mostly written in parallel.
	locks [lockStripes]sync.RWMutex
	// sweptMu guards swept: the namespaces whose leftovers from earlier
	// processes were removed (once per namespace and process: listing a
	// namespace of thousands of Secrets on every Put made a converge
	// quadratic).
	sweptMu sync.Mutex
	swept   map[string]bool
}

// secretID identifies a Secret inside the store: a hash of its namespace
// and name, which picks its lock stripe and names its hidden leftovers. The
// names are short whatever the Secret's name, and a leftover's name says
// which lock guards it, so a sweep can wait for a live writer to finish
// instead of deleting the directory it is building.
type secretID [16]byte

func idOf(namespace, name string) secretID {
	sum := sha256.Sum256([]byte(namespace + "\x00" + name))
	return secretID(sum[:16])
}

func (id secretID) stripe() int { return int(id[0]) % lockStripes }

// newDir is the hidden directory a new Secret is built in.
func (id secretID) newDir() string { return newDirPrefix + hex.EncodeToString(id[:]) }

// delDir is the hidden name a Secret being deleted is renamed to.
func (id secretID) delDir() string { return delDirPrefix + hex.EncodeToString(id[:]) }

// leftoverStripe returns the lock stripe of a newDir or delDir name; ok is
// false for other names (the random ones earlier versions used).
func leftoverStripe(name string) (stripe int, ok bool) {
	rest, ok := strings.CutPrefix(name, newDirPrefix)
	if !ok {
		rest, ok = strings.CutPrefix(name, delDirPrefix)
	}
	var id secretID
	if !ok || hex.DecodedLen(len(rest)) != len(id) {
		return 0, false
	}
	if _, err := hex.Decode(id[:], []byte(rest)); err != nil {
		return 0, false
	}
	return id.stripe(), true
}

// lock takes lock stripe (see Dir), exclusive for a writer, shared for a
// reader, and returns its release. A reader finding no lock file yet takes
// only the in-process lock: no writer of this version has used the store.
func (d *Dir) lock(ctx context.Context, store *os.Root, stripe int, exclusive bool) (func(), error) {
	mu := &d.locks[stripe]
	release := mu.RUnlock
	if exclusive {
		mu.Lock()
		release = mu.Unlock
	} else {
		mu.RLock()
	}
	f, err := openLockFile(store, stripe, exclusive)
	if err == nil && f != nil {
		var unlockFile func()
		if unlockFile, err = lockFile(ctx, f, exclusive); err == nil {
			inProcess := release
			release = func() { unlockFile(); inProcess() }
		}
	}
	if err != nil {
		release()
		return nil, fmt.Errorf("lock the secret store: %w", err)
	}
	return release, nil
}

// lockFileName is the path of lock file stripe in the store.
func lockFileName(stripe int) string { return filepath.Join(lockDir, fmt.Sprintf("%02x", stripe)) }

// openLockFile opens lock file stripe read-only (flock needs no more).
// With create, it and lockDir are made if missing; without, a missing file
// is returned as nil.
func openLockFile(store *os.Root, stripe int, create bool) (*os.File, error) {
	name := lockFileName(stripe)
	f, err := store.OpenFile(name, os.O_RDONLY, 0)
	if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if !create {
		return nil, nil
	}
	if err := ensureDir(store, lockDir, "lock directory"); err != nil {
		return nil, err
	}
	// O_EXCL: never created through a symlink planted in its place.
	f, err = store.OpenFile(name, os.O_RDONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if errors.Is(err, fs.ErrExist) {
		return store.OpenFile(name, os.O_RDONLY, 0) // made concurrently
	}
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(filePerm); err != nil { // exact, whatever the umask
		f.Close()
		return nil, err
	}
	return f, nil
}

// sweep removes, the first time this process touches a namespace, the
// Secret directories a killed process left half-built or half-deleted
// there (see removeStaleDirs). It must be called holding no stripe lock:
// it takes the lock of each leftover it removes.
func (d *Dir) sweep(ctx context.Context, store, ns *os.Root, namespace string) {
	d.sweptMu.Lock()
	defer d.sweptMu.Unlock()
	if d.swept[namespace] {
		return
	}
	d.removeStaleDirs(ctx, store, ns)
	if d.swept == nil {
		d.swept = map[string]bool{}
	}
	d.swept[namespace] = true
}

// lockForWrite sweeps the namespace (see sweep) and takes the lock of
// Secret namespace/name exclusively, in that order: sweep must be called
// holding no lock.
func (d *Dir) lockForWrite(ctx context.Context, store, ns *os.Root, namespace, name string) (secretID, func(), error) {
	d.sweep(ctx, store, ns, namespace)
	id := idOf(namespace, name)
	unlock, err := d.lock(ctx, store, id.stripe(), true)
	return id, unlock, err
}

// crashHook, set only by tests (in a child process they then kill), is
// called at each of the steps below.
var crashHook func(step string)

// The steps of Put and Delete after which a killed process leaves a state
// on disk no other step leaves (see put and delete).
const (
	stepCreateDirMade     = "create: hidden directory made"
	stepCreateWritten     = "create: hidden directory written"
	stepCreateRenamed     = "create: renamed into place"
	stepUpdateTempWritten = "update: temp file written"
	stepUpdateKeyReplaced = "update: first key replaced"
	stepLeftoverEmptied   = "adopt: leftover emptied"
	stepDeleteRenamed     = "delete: renamed away"
)

func crashPoint(step string) {
	if crashHook != nil {
		crashHook(step)
	}
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
// symlink) and returns its info. A missing entry is returned as an
// fs.ErrNotExist error.
func lstatDir(parent *os.Root, name, what string) (fs.FileInfo, error) {
	info, err := parent.Lstat(name)
	if err != nil {
		return nil, err
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%w: %s %q is a symbolic link; refusing to follow it", errUnsafePath, what, name)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%w: %s %q is not a directory", errUnsafePath, what, name)
	}
	return info, nil
}

// ensureDir makes directory name in parent with mode 0700 unless it exists,
// and checks that it is a real directory. A process killed between Mkdir
// and Chmod leaves the mode Mkdir gave (0700 less the umask); if the umask
// stripped owner bits, which would lock every later run out, they are
// added back.
func ensureDir(parent *os.Root, name, what string) error {
	info, err := lstatDir(parent, name, what)
	if errors.Is(err, fs.ErrNotExist) {
		if err = parent.Mkdir(name, dirPerm); err == nil {
			return parent.Chmod(name, dirPerm) // exact, whatever the umask
		}
		if errors.Is(err, fs.ErrExist) {
			info, err = lstatDir(parent, name, what) // made concurrently
		}
	}
	if err != nil {
		return err
	}
	if perm := info.Mode().Perm(); perm&dirPerm != dirPerm {
		return parent.Chmod(name, perm|dirPerm)
	}
	return nil
}

// openNamespace opens <namespace> in the store. With create, a missing one
// is made with mode 0700.
func openNamespace(store *os.Root, namespace string, create bool) (*os.Root, error) {
	var err error
	if create {
		err = ensureDir(store, namespace, "namespace directory")
	} else {
		_, err = lstatDir(store, namespace, "namespace directory")
	}
	if err != nil {
		return nil, err
	}
	return store.OpenRoot(namespace)
}

// openSecret opens <namespace>/<name> in the store, which must exist.
func openSecret(store *os.Root, namespace, name string) (*os.Root, error) {
	ns, err := openNamespace(store, namespace, false)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	if _, err := lstatDir(ns, name, "secret directory"); err != nil {
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
	store, err := d.openStore(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer store.Close()
	unlock, err := d.lock(ctx, store, idOf(namespace, name).stripe(), false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	sec, err := openSecret(store, namespace, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer sec.Close()
	return readData(sec)
}

// readData reads the keys of the Secret directory sec (see listKeys).
func readData(sec *os.Root) (map[string][]byte, error) {
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
	entries, err := readDir(sec)
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
	if fi.Size() > maxValueSize {
		return nil, fmt.Errorf("%q is larger than %d bytes", name, maxValueSize)
	}
	// The size the file has: one read of exactly that, instead of
	// io.ReadAll's growing buffer and second read for EOF (a sweep reads
	// every binding Secret's every key: this halves the garbage of the
	// no-op pass's Secret reads, whose peak RSS make bench limits). A
	// file cut short meanwhile was not written by the store (it writes
	// by rename) and is read again.
	v := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, v); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errReplaced
		}
		return nil, fmt.Errorf("read %q: %w", name, err)
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

// ownership says whose Secret directory sec is. With osbgit's metadata it
// is osbgit's, and the metadata is returned. Without metadata, holding
// nothing but temp files (or nothing at all), it is a leftover: no user's
// data is in it, and an interrupted write (of an earlier version, or of
// removeLeftover itself) may have left it, so Put and Delete remove it
// rather than refuse the Secret forever. Anything else is someone else's:
// NotManagedError.
func ownership(sec *os.Root, namespace, name string) (m dirMeta, leftover bool, err error) {
	m, err = readMeta(sec)
	if err == nil && isManaged(m.Labels) {
		return m, false, nil
	}
	notManaged := &NotManagedError{Namespace: namespace, Name: name}
	if err == nil {
		return m, false, notManaged
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return m, false, err
	}
	entries, err := readDir(sec)
	if err != nil {
		return m, false, err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			return m, false, notManaged
		}
	}
	return m, true, nil
}

// readDir lists the directory r.
func readDir(r *os.Root) ([]fs.DirEntry, error) {
	f, err := r.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// removeLeftover removes Secret directory name, which ownership found to
// be a leftover: its temp files one by one, then the directory itself, so
// a file someone added meanwhile makes the removal fail instead of being
// deleted. A crash in between leaves a smaller leftover.
func removeLeftover(ns, sec *os.Root, name string) error {
	if err := removeStaleTemps(sec); err != nil {
		return fmt.Errorf("remove leftover secret directory: %w", err)
	}
	crashPoint(stepLeftoverEmptied)
	if err := ns.Remove(name); err != nil {
		return fmt.Errorf("remove leftover secret directory: %w", err)
	}
	return nil
}

// writeAtomic writes data to name inside r: a new temp file with mode 0600
// is written, synced and renamed over name, so name always holds either the
// old or the new value.
func writeAtomic(r *os.Root, name string, data []byte) error {
	tmp := tmpPrefix + rand.Text()
	if err := writeNew(r, tmp, data); err != nil {
		return err
	}
	crashPoint(stepUpdateTempWritten)
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

// Put creates or updates Secret namespace/name (see secrets.Store.Put).
func (d *Dir) Put(ctx context.Context, namespace, name string, s secrets.Secret) error {
	if err := d.put(ctx, namespace, name, s); err != nil {
		return fmt.Errorf("put secret %s/%s: %w", namespace, name, err)
	}
	return nil
}

// put's steps, and what a process killed after each leaves:
//
//  1. The store root is made if missing (MkdirAll, in one step per
//     level). The namespace and the lock directory are made if missing by
//     Mkdir then Chmod: killed in between, a directory with the umask's
//     mode, fixed by the next ensureDir. A lock file is created empty and
//     never written: whatever a crash leaves in it, it works.
//  2. sweep, then the Secret's lock. The kernel drops a dead holder's lock.
//  3. A new Secret (createSecretDir): a hidden directory named after the
//     Secret is made (stepCreateDirMade) and its metadata and keys are
//     written and synced (stepCreateWritten); killed so far, that hidden
//     directory is left, and the next Put of the Secret removes it before
//     making its own (or the next process's sweep does). Then it is
//     renamed into place whole (stepCreateRenamed): the Secret is complete;
//     a power loss before the namespace is synced may undo the rename, and
//     the next Put creates it again.
//  4. An existing Secret of osbgit's (updateSecretDir): the temp files of
//     an earlier, killed write are removed; each changed key is written to
//     a temp file (stepUpdateTempWritten), synced and renamed over the key
//     (stepUpdateKeyReplaced); dropped keys are removed; the metadata is
//     rewritten the same way. Killed in between, the Secret holds some keys
//     old and some new, each whole, and maybe a temp file; the metadata is
//     always there, so the next Put sees the Secret as osbgit's, removes
//     the temp files and rewrites what still differs.
//  5. A leftover under the Secret's name (see ownership): its temp files
//     are removed (stepLeftoverEmptied), then the empty directory; killed
//     in between, it is a leftover still. Then as 3.
func (d *Dir) put(ctx context.Context, namespace, name string, s secrets.Secret) error {
	_, err := d.write(ctx, namespace, name, s, func(sec *os.Root, cur, meta dirMeta, metaRaw []byte) error {
		return updateSecretDir(sec, cur, s.Data, meta, metaRaw)
	})
	return err
}

// write is what put and createOnce share: it validates, takes the
// Secret's lock and, holding it, creates the Secret from s when it is
// missing (or its directory is a leftover, see ownership) and reports
// created; when the Secret is osbgit's, it calls existing with its
// directory, its metadata (cur) and s's (meta, and metaRaw encoded).
// Anyone else's Secret is left alone: NotManagedError. Its steps, and what
// a crash after each leaves, are put's 1 to 3 and 5.
func (d *Dir) write(ctx context.Context, namespace, name string, s secrets.Secret, existing func(sec *os.Root, cur, meta dirMeta, metaRaw []byte) error) (created bool, err error) {
	if err := validateRef(namespace, name); err != nil {
		return false, err
	}
	if err := validateKeys(s.Data, validateDirKey); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	meta := dirMeta{Labels: desiredLabels(s), Annotations: copyStrings(s.Annotations)}
	metaRaw, err := json.Marshal(meta)
	if err != nil {
		return false, err
	}
	store, err := d.openStore(true)
	if err != nil {
		return false, err
	}
	defer store.Close()
	ns, err := openNamespace(store, namespace, true)
	if err != nil {
		return false, err
	}
	defer ns.Close()
	id, unlock, err := d.lockForWrite(ctx, store, ns, namespace, name)
	if err != nil {
		return false, err
	}
	defer unlock()
	_, err = lstatDir(ns, name, "secret directory")
	if errors.Is(err, fs.ErrNotExist) {
		return true, createSecretDir(ns, id, name, s.Data, metaRaw)
	}
	if err != nil {
		return false, err
	}
	sec, err := ns.OpenRoot(name)
	if err != nil {
		return false, err
	}
	defer sec.Close()
	cur, leftover, err := ownership(sec, namespace, name)
	if err != nil {
		return false, err
	}
	if leftover {
		if err := removeLeftover(ns, sec, name); err != nil {
			return false, err
		}
		return true, createSecretDir(ns, id, name, s.Data, metaRaw)
	}
	return false, existing(sec, cur, meta, metaRaw)
}

// CreateOnce creates Secret namespace/name holding s when it does not
// exist, and returns the data of the Secret there afterwards: a copy of
// s.Data when this call created it, the existing Secret's data otherwise.
// Creating and reading happen under the Secret's lock (see Dir), so of
// several callers at once, in this process or in others sharing the
// store, one creates the Secret and all get its data. The Secret is
// created as Put creates one (built hidden, renamed into place whole, so
// a crash leaves it complete or absent); a leftover of a killed write is
// replaced, and a Secret osbgit does not manage is left untouched, with an
// error matching secrets.ErrNotManaged.
func (d *Dir) CreateOnce(ctx context.Context, namespace, name string, s secrets.Secret) (map[string][]byte, error) {
	var data map[string][]byte
	created, err := d.write(ctx, namespace, name, s, func(sec *os.Root, _, _ dirMeta, _ []byte) error {
		var err error
		data, err = readData(sec)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create secret %s/%s once: %w", namespace, name, err)
	}
	if created {
		data = copyData(s.Data)
	}
	return data, nil
}

// namedData is a file to write: its name, content, and how errors name it.
type namedData struct {
	name, what string
	data       []byte
}

func (f namedData) wrap(err error) error { return fmt.Errorf("write %s: %w", f.what, err) }

// createSecretDir builds Secret name in its hidden directory (id.newDir)
// and renames it into place, so it appears with all its keys at once. The
// caller holds the Secret's lock, so a hidden directory of this Secret
// already there is a killed process's leftover, and is removed first (as
// is one a killed Delete left).
func createSecretDir(ns *os.Root, id secretID, name string, data map[string][]byte, metaRaw []byte) (err error) {
	tmp := id.newDir()
	for _, stale := range []string{tmp, id.delDir()} {
		if err := ns.RemoveAll(stale); err != nil {
			return fmt.Errorf("remove the leftover of an interrupted write: %w", err)
		}
	}
	if err := ns.Mkdir(tmp, dirPerm); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			ns.RemoveAll(tmp)
		}
	}()
	crashPoint(stepCreateDirMade)
	if err := ns.Chmod(tmp, dirPerm); err != nil {
		return err
	}
	files := make([]namedData, 0, len(data)+1)
	files = append(files, namedData{name: metaFile, data: metaRaw, what: metaFile})
	for _, k := range sortedKeys(data) {
		files = append(files, namedData{name: k, data: data[k], what: fmt.Sprintf("key %q", k)})
	}
	if err := writeNewFiles(ns, tmp, files); err != nil {
		return err
	}
	crashPoint(stepCreateWritten)
	if err := ns.Rename(tmp, name); err != nil {
		return err
	}
	crashPoint(stepCreateRenamed)
	return syncDir(ns)
}

// updateSecretDir rewrites the changed keys of an existing Secret directory
// of osbgit's (whose metadata is cur), removes keys no longer present and
// rewrites the metadata if it changed. Nothing is written when nothing
// differs.
func updateSecretDir(sec *os.Root, cur dirMeta, data map[string][]byte, meta dirMeta, metaRaw []byte) error {
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
		if !changed {
			crashPoint(stepUpdateKeyReplaced)
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
// in a namespace directory: they may hold credential values. Each is
// removed holding the lock of the Secret it belongs to, so a directory
// another process is building or deleting right now is left alone (the
// lock is free once that process is done, or dead). The random names
// earlier versions used name no lock; they are removed as they are.
func (d *Dir) removeStaleDirs(ctx context.Context, store, ns *os.Root) {
	entries, err := readDir(ns)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, newDirPrefix) && !strings.HasPrefix(n, delDirPrefix) {
			continue
		}
		stripe, ok := leftoverStripe(n)
		if !ok {
			ns.RemoveAll(n)
			continue
		}
		unlock, err := d.lock(ctx, store, stripe, true)
		if err != nil {
			return
		}
		ns.RemoveAll(n)
		unlock()
	}
}

// removeStaleTemps deletes temp files left by an interrupted write.
func removeStaleTemps(sec *os.Root) error {
	entries, err := readDir(sec)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := sec.Remove(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
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

// delete's steps, and what a process killed after each leaves: sweep and
// the Secret's lock as in put; a killed Delete's hidden directory of this
// Secret (id.delDir) is removed, then the Secret is renamed to it
// (stepDeleteRenamed): from there on the Secret is gone for readers, and
// what a crash leaves of that directory is removed by the next Put of the
// Secret or the next process's sweep. A leftover under the Secret's name
// (see ownership) is removed as in put.
func (d *Dir) delete(ctx context.Context, namespace, name string) error {
	if err := validateRef(namespace, name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	store, err := d.openStore(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer store.Close()
	ns, err := openNamespace(store, namespace, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer ns.Close()
	id, unlock, err := d.lockForWrite(ctx, store, ns, namespace, name)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = lstatDir(ns, name, "secret directory")
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
	_, leftover, err := ownership(sec, namespace, name)
	if err == nil && leftover {
		err = removeLeftover(ns, sec, name)
	}
	sec.Close()
	if err != nil || leftover {
		return err
	}
	tomb := id.delDir()
	if err := ns.RemoveAll(tomb); err != nil {
		return fmt.Errorf("remove the leftover of an interrupted delete: %w", err)
	}
	if err := ns.Rename(name, tomb); err != nil {
		return err
	}
	crashPoint(stepDeleteRenamed)
	if err := ns.RemoveAll(tomb); err != nil {
		return fmt.Errorf("secret removed, but cleaning up %s failed: %w", tomb, err)
	}
	return syncDir(ns)
}
