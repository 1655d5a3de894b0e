package reconciler

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/reconciler/exec"
	"github.com/osbgit/osbgit/reconciler/internal/parallel"
)

// A scoped pass reads and plans only what changed since the last pass.
//
// The last pass that planned left the pass state quiet (nothing in flight,
// no relist or drift check due, no referenced Secret changed since): every
// resource's plan was none, or its failure waits for a change. When the
// head moves, a resource whose manifest file and record are both unchanged
// since then, and that is related to no changed one, still plans none: so
// the pass loads and plans only the changed files and everything related
// to them, transitively, with the same checks a full pass makes (the
// tenancy policy, the per-pass caps, lost records, Secrets). A resource
// whose step failed in the last pass, or whose record says failed, is
// loaded by every pass, as a full pass would plan, count and list its
// failure again.
// Two resources are related when validation or the planner compare them:
// the same kind/namespace/name (a duplicate, or a manifest and its record),
// an instance and its bindings (by manifest or by record), the same
// external ID within instances or bindings (manifest or record), the same
// binding Secret. Brokers, files that did not decode cleanly, catalog
// records and broker records are always loaded, with what relates to
// them; a change to any of them, to osbgit.yaml, to the pass's options or
// to the tenancy policy is a full pass. Only this deployment's records
// (its RecordRoot) are indexed: another deployment's changes are none of
// this one's.
//
// What must be known of the unchanged files to find the related ones is
// kept in a scopeIndex: per manifest file and per record file, its blob
// and the relation keys of what it declares. The index describes the trees
// of two revisions (content-addressed, it cannot go stale), and the pass
// state names the index the last planning pass left (PassState.Index): an
// index that is missing, corrupt, of another version or not the last
// pass's means a full load, which writes a new one. `run` keeps it in
// memory; a `sync` with a state file keeps it beside it (ScopeIndexPath).

// maxScopedShare bounds a scoped pass: past this share of the files
// changed (and more than minScopedLimit), a full load costs about the
// same and is simpler.
const (
	maxScopedShare = 4 // one file in four
	minScopedLimit = 64
)

// scopeIndex describes, for a manifest revision and a records revision,
// each file's blob and relation keys.
type scopeIndex struct {
	// ID names this index in the pass state.
	ID string
	// Fingerprint covers osbgit.yaml and the options that change every
	// resource's plan (scopeFingerprint).
	Fingerprint string
	// ManifestRev and RecordsRev are the revisions described.
	ManifestRev, RecordsRev string
	// Manifests and Records map a file's path to its entry.
	Manifests, Records map[string]indexEntry
	// Failing are the relation keys of the resources whose step failed
	// in the pass that left the index: the next pass loads them.
	Failing []string
}

// indexEntry is one file: its blob, the relation keys of what it holds,
// and whether every pass must load it.
type indexEntry struct {
	Blob string
	// keys are the relation keys joined by keySep, as the index file
	// keeps them: one string, where a slice of strings per file was a
	// tenth of a long-running process's heap at 200,000 resources.
	keys   string
	Always bool
}

// Keys returns the entry's relation keys.
func (e indexEntry) Keys() []string { return splitKeys(e.keys) }

// anyKey reports whether one of the entry's keys satisfies f.
func (e indexEntry) anyKey(f func(string) bool) bool {
	for rest := e.keys; rest != ""; {
		k, after, _ := strings.Cut(rest, keySep)
		if f(k) {
			return true
		}
		rest = after
	}
	return false
}

// errIndexKey marks a relation key the index cannot hold: a name with a
// separator in it (control characters, which validation refuses anyway).
var errIndexKey = errors.New("a resource name holds a control character")

// joinKeys joins an entry's keys; ok is false when one holds a separator.
func joinKeys(ks []string) (joined string, ok bool) {
	for _, k := range ks {
		if strings.Contains(k, keySep) || strings.IndexByte(k, 0) >= 0 {
			return "", false
		}
	}
	return strings.Join(ks, keySep), true
}

// Relation keys (see the comment at the top of the file). Kinds are
// abbreviated: keys are most of the index's bytes.
func refKey(ref manifest.Ref) string {
	return "r" + kindCode(ref.Kind) + ":" + ref.Namespace + "/" + ref.Name
}
func instanceKey(ns, name string) string              { return "i:" + ns + "/" + name }
func secretKey(ns, name string) string                { return "s:" + ns + "/" + name }
func externalIDKey(k manifest.Kind, id string) string { return "x" + kindCode(k) + ":" + id }

func kindCode(k manifest.Kind) string {
	switch k {
	case manifest.KindServiceInstance:
		return "I"
	case manifest.KindServiceBinding:
		return "S"
	}
	return string(k)
}

// manifestEntry is the index entry of a manifest file that decoded to d;
// errIndexKey when a key cannot be kept.
func manifestEntry(blob string, d decoded, cfg *manifest.Config) (indexEntry, error) {
	e := indexEntry{Blob: blob, Always: d.diags.HasErrors()}
	var keys []string
	for _, o := range d.objs {
		ref := o.GetRef()
		ref.Namespace = manifest.AssembledNamespace(o, cfg)
		keys = append(keys, refKey(ref))
		switch v := o.(type) {
		case *manifest.ServiceInstance:
			keys = append(keys, instanceKey(ref.Namespace, ref.Name))
			if v.Spec.ExternalID != "" {
				keys = append(keys, externalIDKey(ref.Kind, v.Spec.ExternalID))
			}
		case *manifest.ServiceBinding:
			keys = append(keys, instanceKey(ref.Namespace, v.Spec.InstanceRef.Name),
				secretKey(ref.Namespace, v.CredentialsSecretName()))
			if v.Spec.ExternalID != "" {
				keys = append(keys, externalIDKey(ref.Kind, v.Spec.ExternalID))
			}
		default:
			e.Always = true // brokers
		}
	}
	var ok bool
	if e.keys, ok = joinKeys(keys); !ok {
		return e, errIndexKey
	}
	return e, nil
}

// recordEntry is the index entry of a record file that decoded to f;
// errIndexKey when a key cannot be kept. A failed resource's record is
// always loaded: every pass lists it as still failed.
func recordEntry(blob string, f manifest.RecordFile) (indexEntry, error) {
	e := indexEntry{Blob: blob}
	rec, ok := f.Record.(*manifest.StatusRecord)
	if f.Err != nil || !ok {
		e.Always = true // catalogs; errors must show on every pass
		return e, nil
	}
	e.Always = rec.Phase == manifest.PhaseFailed
	ref := rec.Ref
	keys := []string{refKey(ref)}
	switch ref.Kind {
	case manifest.KindServiceInstance:
		keys = append(keys, instanceKey(ref.Namespace, ref.Name))
	case manifest.KindServiceBinding:
		if rec.InstanceName != "" {
			keys = append(keys, instanceKey(ref.Namespace, rec.InstanceName))
		}
		if rec.SecretRef != nil {
			n := recordSecretName(rec)
			keys = append(keys, secretKey(n.Namespace, n.Name))
		}
	default:
		e.Always = true // brokers
	}
	for _, id := range []string{rec.ExternalID, rec.PredecessorExternalID} {
		if id != "" {
			keys = append(keys, externalIDKey(ref.Kind, id))
		}
	}
	if e.keys, ok = joinKeys(keys); !ok {
		return e, errIndexKey
	}
	return e, nil
}

// indexing is what a full load needs to make the scope index: the index
// it replaces (nil: none), whose entries of unchanged files it takes, and
// the fingerprint of the revision's osbgit.yaml and options.
type indexing struct {
	last        *scopeIndex
	fingerprint func(config []byte, dir string) string
	// current is the loaded revision's fingerprint.
	current string
}

// newScopeIndex describes a full load: nil when it cannot serve a scoped
// pass (a manifest directory that could not be read, unreadable files).
// Entries of unchanged record files are taken from the last index.
func newScopeIndex(l *revisionLoad, recordsRev string, recFiles []gitrepo.File, recs []manifest.RecordFile, ixg *indexing) *scopeIndex {
	fingerprint, last := ixg.current, ixg.last
	if len(l.snap.Set.UnreadableFiles) > 0 || len(recFiles) != len(recs) || len(l.entries) != len(l.files) {
		return nil
	}
	ix := &scopeIndex{ID: rand.Text(), Fingerprint: fingerprint, ManifestRev: l.snap.Revision, RecordsRev: recordsRev,
		Manifests: make(map[string]indexEntry, len(l.files)), Records: make(map[string]indexEntry, len(recFiles))}
	for i, f := range l.files {
		ix.Manifests[f.Path] = l.entries[i]
	}
	var lastRecords map[string]indexEntry
	if last != nil {
		lastRecords = last.Records
	}
	for i, f := range recFiles {
		e, err := reuse(lastRecords, f.Path, f.Blob, func() (indexEntry, error) { return recordEntry(f.Blob, recs[i]) })
		if err != nil {
			return nil
		}
		ix.Records[f.Path] = e
	}
	return ix
}

// scopeFingerprint covers what changes every resource's plan besides the
// files: osbgit.yaml's content, the manifest directory, the options, the
// records root and the tenancy policy (its caps included).
func (r *Reconciler) scopeFingerprint(config []byte, dir string) string {
	o, e := r.Options, r.effective(nil)
	prune, maxDeletions := "", ""
	if o.Prune != nil {
		prune = strconv.FormatBool(*o.Prune)
	}
	if o.MaxDeletions != nil {
		maxDeletions = strconv.Itoa(*o.MaxDeletions)
	}
	h := sha256.New()
	for _, part := range []string{string(config), dir, r.Source.RecordsDir(), e.clusterID, prune, maxDeletions,
		strings.Join(o.BrokerAuthNamespaces, ","), r.maxPolling().String(), o.Policy.Digest()} {
		fmt.Fprintf(h, "%d:%s\x00", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// errFullLoad says a scoped pass is not possible: the pass loads
// everything (the reason is logged at debug level).
var errFullLoad = errors.New("full load")

func fullLoad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errFullLoad, fmt.Sprintf(format, args...))
}

// scopedLoad is what a scoped pass read: the manifests and records in its
// scope, and the index of the revisions it read.
type scopedLoad struct {
	snap    *Snapshot
	records *manifest.Records
	next    *scopeIndex
	// files and records count what was read, for the log.
	files, recordFiles int
}

// loadScoped loads the scope of a pass at head whose records are read
// from recordsRev, from the index ix of the last planning pass. An error
// matching errFullLoad means the pass must load everything; any other
// error is a Git read error.
func (r *Reconciler) loadScoped(ix *scopeIndex, head, recordsRev string) (*scopedLoad, error) {
	tr, root := r.Source, r.recordRoot()
	rc, err := readConfig(tr, head, r.Options.Path)
	if err != nil {
		return nil, err
	}
	cfg, dir := rc.cfg, rc.dir
	if r.scopeFingerprint(rc.raw, dir) != ix.Fingerprint {
		return nil, fullLoad("osbgit.yaml or the options changed")
	}
	changed, err := tr.ChangedFiles(ix.ManifestRev, head, dir)
	if err != nil {
		return nil, fullLoad("compare manifests with %s: %v", short(ix.ManifestRev), err)
	}
	var mch []gitrepo.Change
	for _, c := range changed {
		if isManifestPath(c.Path, dir) { // not .osbgit/ when dir is the root
			mch = append(mch, c)
		}
	}
	var rch []gitrepo.Change
	switch {
	case ix.RecordsRev == recordsRev:
	case ix.RecordsRev == "" || recordsRev == "":
		return nil, fullLoad("records appeared or went")
	default:
		if rch, err = tr.ChangedRecords(ix.RecordsRev, recordsRev); err != nil {
			return nil, fullLoad("compare records with %s: %v", short(ix.RecordsRev), err)
		}
	}
	if n := len(mch) + len(rch); n > minScopedLimit && n*maxScopedShare > len(ix.Manifests)+len(ix.Records) {
		return nil, fullLoad("%d files changed", n)
	}
	next := ix // consumed: lastScope hands an index to one pass
	next.ID, next.ManifestRev, next.RecordsRev = rand.Text(), head, recordsRev
	var seeds []string
	fresh := map[string]decoded{}
	for _, c := range mch {
		old, had := next.Manifests[c.Path]
		if old.Always {
			return nil, fullLoad("%s changed", c.Path)
		}
		seeds = append(seeds, old.Keys()...)
		delete(next.Manifests, c.Path)
		if c.Action == gitrepo.Deleted {
			continue
		}
		data, err := tr.ReadBlob(c.ToBlob)
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: %w", c.Path, short(head), err)
		}
		d := decodeManifest(gitrepo.File{Path: c.Path, Blob: c.ToBlob}, data)
		e, err := manifestEntry(c.ToBlob, d, cfg)
		if err != nil || e.Always || !had && c.Action != gitrepo.Added {
			return nil, fullLoad("%s changed", c.Path)
		}
		seeds = append(seeds, e.Keys()...)
		next.Manifests[c.Path] = e
		fresh[c.Path] = d
	}
	for _, c := range rch {
		if c.Path == root.JournalPath() {
			// A journal's records lie over the files the index holds.
			return nil, fullLoad("%s changed", c.Path)
		}
		old := next.Records[c.Path]
		if old.Always {
			return nil, fullLoad("%s changed", c.Path)
		}
		seeds = append(seeds, old.Keys()...)
		delete(next.Records, c.Path)
		if c.Action == gitrepo.Deleted {
			continue
		}
		if paths, _ := root.RecordPaths([]string{c.Path}); len(paths) != 1 {
			return nil, fullLoad("%s is not a record", c.Path)
		}
		data, err := tr.ReadBlob(c.ToBlob)
		if err != nil {
			return nil, fmt.Errorf("read record %s at %s: %w", c.Path, short(recordsRev), err)
		}
		e, err := recordEntry(c.ToBlob, root.DecodeRecordFile(c.Path, data))
		if err != nil || e.Always {
			return nil, fullLoad("%s changed", c.Path)
		}
		seeds = append(seeds, e.Keys()...)
		next.Records[c.Path] = e
	}
	mpaths, rpaths := next.closure(seeds)

	docs := make([]decoded, len(mpaths))
	var missing []gitrepo.File
	var at []int
	for i, p := range mpaths {
		if d, ok := fresh[p]; ok {
			docs[i] = d
			continue
		}
		missing = append(missing, gitrepo.File{Path: p, Blob: next.Manifests[p].Blob})
		at = append(at, i)
	}
	var nocache *blobCache[decoded] // a scope is not the revision: keep the cache as it is
	got, failed, err := nocache.decode(missing, tr.ReadBlob, decodeManifest)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", missing[failed].Path, short(head), err)
	}
	for j, i := range at {
		docs[i] = got[j]
	}
	snap := assemble(head, cfg, rc.diags, docs, r.assembly()...)

	recFiles := make([]gitrepo.File, len(rpaths))
	for i, p := range rpaths {
		recFiles[i] = gitrepo.File{Path: p, Blob: next.Records[p].Blob}
	}
	var norecs *blobCache[manifest.RecordFile]
	decodedRecs, failed, err := norecs.decode(recFiles, tr.ReadBlob, decodeRecord(root))
	if err != nil {
		return nil, fmt.Errorf("read record %s at %s: %w", recFiles[failed].Path, short(recordsRev), err)
	}
	recs, err := manifest.CollectRecords(decodedRecs, nil)
	if err != nil {
		return nil, fullLoad("records: %v", err)
	}
	for ref := range recs.Catalogs {
		if snap.Set.Broker(ref) == nil {
			// Whether a removed broker's catalog is still in use is a
			// question about every record.
			return nil, fullLoad("catalog of %s without its broker", ref)
		}
	}
	return &scopedLoad{snap: snap, records: recs, next: next, files: len(mpaths), recordFiles: len(rpaths)}, nil
}

// closure returns the manifest files and record files a scoped pass
// loads: those always loaded, and those holding one of keys, a failing
// resource's or an always loaded file's, or a key of such a file,
// transitively; both sorted. It scans the index until no file adds a key
// (a few rounds: relations are short chains).
func (ix *scopeIndex) closure(keys []string) (manifests, records []string) {
	want := map[string]bool{}
	for _, k := range slices.Concat(keys, ix.Failing) {
		want[k] = true
	}
	wanted := func(k string) bool { return want[k] }
	parts := []struct {
		entries map[string]indexEntry
		in      map[string]bool
		out     *[]string
	}{{ix.Manifests, map[string]bool{}, &manifests}, {ix.Records, map[string]bool{}, &records}}
	for grew := true; grew; {
		grew = false
		for _, part := range parts {
			for p, e := range part.entries {
				if part.in[p] || !e.Always && !e.anyKey(wanted) {
					continue
				}
				part.in[p] = true
				*part.out = append(*part.out, p)
				e.anyKey(func(k string) bool {
					if !want[k] {
						want[k], grew = true, true
					}
					return false
				})
			}
		}
	}
	slices.Sort(manifests)
	slices.Sort(records)
	return manifests, records
}

// ScopeIndexPath is where a StateFile keeps the scope index: beside it.
func ScopeIndexPath(statePath string) string {
	return strings.TrimSuffix(statePath, ".json") + ".index.json"
}

// The index file is a sequence of NUL-terminated fields (Git paths hold
// no NUL, and it is as fast to read as the files it saves reading are):
// scopeIndexHeader, the ID, fingerprint, manifest and records revisions,
// failing keys and number of manifest files, then per file its kind ("m" manifest or "r" record,
// "a" added when always loaded), path, blob and keys. Lists of keys are
// joined by keySep; an index whose keys hold either separator (names
// osbgit refuses anyway) is not written. The header changes whenever the
// format or what the keys mean does: an index of another is not used.
const (
	scopeIndexHeader = "osbgit scope index 4"
	keySep           = "\x01"
	indexHeadFields  = 7
)

// loadScopeIndex reads the index at path: nil when missing, unreadable,
// corrupt or of another version (a full load).
func loadScopeIndex(path string) *scopeIndex {
	if path == "" {
		return nil
	}
	file, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer file.Close()
	var b strings.Builder // its String is what was read, not a copy
	if st, err := file.Stat(); err == nil {
		b.Grow(int(st.Size()))
	}
	if _, err := io.Copy(&b, file); err != nil {
		return nil
	}
	rest := b.String()
	var f [indexHeadFields]string
	// fields reads the next len(f) fields into f.
	fields := func(f []string) bool {
		for i := range f {
			var ok bool
			if f[i], rest, ok = strings.Cut(rest, "\x00"); !ok {
				return false
			}
		}
		return true
	}
	if !fields(f[:]) || f[0] != scopeIndexHeader || f[1] == "" || f[3] == "" {
		return nil
	}
	n := strings.Count(rest, "\x00") / 4
	nm, err := strconv.Atoi(f[6])
	if err != nil || nm < 0 || nm > n {
		return nil
	}
	ix := &scopeIndex{ID: f[1], Fingerprint: f[2], ManifestRev: f[3], RecordsRev: f[4], Failing: splitKeys(f[5]),
		Manifests: make(map[string]indexEntry, nm), Records: make(map[string]indexEntry, n-nm)}
	for rest != "" {
		var e [4]string // kind, path, blob, keys
		if !fields(e[:]) {
			return nil
		}
		entry := indexEntry{Blob: e[2], keys: e[3], Always: strings.HasSuffix(e[0], "a")}
		switch strings.TrimSuffix(e[0], "a") {
		case "m":
			ix.Manifests[e[1]] = entry
		case "r":
			ix.Records[e[1]] = entry
		default:
			return nil
		}
	}
	return ix
}

func splitKeys(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, keySep)
}

// save writes the index to path atomically; a nil index removes the file.
func (ix *scopeIndex) save(path string) error {
	if path == "" {
		return nil
	}
	if ix == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	// Entries cannot hold a separator (joinKeys made them, or the file
	// split them); the failing keys are joined here.
	failing, ok := joinKeys(ix.Failing)
	if !ok {
		return errIndexKey
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	fields := func(fs ...string) {
		for _, s := range fs {
			w.WriteString(s)
			w.WriteByte(0)
		}
	}
	fields(scopeIndexHeader, ix.ID, ix.Fingerprint, ix.ManifestRev, ix.RecordsRev, failing, strconv.Itoa(len(ix.Manifests)))
	for kind, entries := range map[string]map[string]indexEntry{"m": ix.Manifests, "r": ix.Records} {
		for p, e := range entries {
			if e.Always {
				fields(kind+"a", p, e.Blob, e.keys)
			} else {
				fields(kind, p, e.Blob, e.keys)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// lastScope is the scope index a pass at now may load from: the one the
// last planning pass left (in memory, else at Options.ScopeIndexPath),
// when that pass left nothing due and no parametersFrom or broker auth
// Secret changed since (secretsChanged: the caller's check, which reads
// them); nil for a full load. Binding Secrets are not read here: a pass
// that sweeps them loads everything, and a scoped pass keeps the checksums
// of those outside its scope for the next sweep (keepOutOfScope).
func (r *Reconciler) lastScope(now time.Time, secretsChanged bool) *scopeIndex {
	r.settleScope()
	id := r.State.Index
	if id == "" || secretsChanged || !r.nothingDue(now) {
		return nil
	}
	if r.scope == nil || r.scope.ID != id {
		r.scope = loadScopeIndex(r.Options.ScopeIndexPath)
	}
	return r.takeScope()
}

// takeScope hands the index in memory to this pass, when it is the one
// the state names (else nil): the pass changes it, and keeps the index it
// leaves. A full load takes it only to reuse its entries, so it never
// reads the index file for that.
func (r *Reconciler) takeScope() *scopeIndex {
	r.settleScope()
	ix := r.scope
	r.scope = nil
	if ix == nil || r.State.Index == "" || ix.ID != r.State.Index {
		return nil
	}
	return ix
}

// reuse returns the entry of the file at path with blob: the last
// index's (last, nil: none) when it has it, else build's. A full pass over
// unchanged files then makes no new entries, and holds one index, not two
// (at 200,000 resources each is ~160 MB).
func reuse(last map[string]indexEntry, path, blob string, build func() (indexEntry, error)) (indexEntry, error) {
	if e, ok := last[path]; ok && e.Blob == blob {
		return e, nil
	}
	return build()
}

// failed notes in ix the resources whose step failed in res: the next
// pass loads them (every pass plans their failure again). Nil-safe.
func (ix *scopeIndex) failed(res *exec.Result) *scopeIndex {
	if ix == nil || res == nil {
		return ix
	}
	ix.Failing = nil
	for _, o := range res.Outcomes {
		if o.Status == exec.StatusFailed {
			ix.Failing = append(ix.Failing, refKey(o.Ref))
		}
	}
	return ix
}

// keepOutOfScope adds to ss, the Secret checksums after a scoped pass,
// those prior (the state's before it) kept of the Secrets the pass did not
// read: those of the resources outside its scope, whose checksums a full
// pass would have kept (a Secret no longer referenced at all is kept too,
// until the next full pass). loaded are the records the pass read.
func (ss *SecretSums) keepOutOfScope(prior *SecretSums, loaded map[manifest.Ref]*manifest.StatusRecord) {
	if prior == nil || prior.KeyID != ss.KeyID {
		return
	}
	read := map[string]bool{}
	for _, rec := range loaded {
		read[bindingSecret(rec)] = true
	}
	for n, sum := range prior.Referenced {
		if _, ok := ss.Referenced[n]; !ok {
			ss.Referenced[n] = sum
		}
	}
	for n, sum := range prior.Bindings {
		if _, ok := ss.Bindings[n]; !ok && !read[n] {
			ss.Bindings[n] = sum
		}
	}
}

// settleScope makes the index the last pass left, when that pass left it
// to be made. An index kept in memory only serves a later pass of this
// process, so the pass that wrote thousands of records (a cold converge)
// ends with its status commit instead of ~15 ms later, and a process that
// makes one pass never builds it.
func (r *Reconciler) settleScope() {
	if f := r.advanceScope; f != nil {
		r.advanceScope = nil
		f()
	}
}

// keepScope keeps ix (nil: none) for the next pass, in memory and at
// Options.ScopeIndexPath, and names it in the pass state, which is saved
// after it: a state never names an index that was not written.
func (r *Reconciler) keepScope(ix *scopeIndex) {
	r.scope, r.State.Index = ix, ""
	if err := ix.save(r.Options.ScopeIndexPath); err != nil {
		r.Log.WithError(err).Warn("could not save the scope index; the next pass whose head moved loads everything")
		return
	}
	if ix != nil {
		r.State.Index = ix.ID
	}
}

// recordWrites are the record files a pass wrote (path → content, nil for
// a deletion) and the records they hold.
type recordWrites struct {
	files   map[string][]byte
	records map[string]manifest.Record
}

// add notes one write: its files and the records they were rendered from.
func (w *recordWrites) add(root manifest.RecordRoot, files map[string][]byte, status map[manifest.Ref]*manifest.StatusRecord, catalogs map[manifest.Ref]*manifest.CatalogRecord) {
	if w.files == nil {
		w.files, w.records = map[string][]byte{}, map[string]manifest.Record{}
	}
	maps.Copy(w.files, files)
	for ref, rec := range status {
		if p, err := root.StatusPath(ref); err == nil && rec != nil {
			w.records[p] = rec
		}
	}
	for ref, rec := range catalogs {
		if p, err := root.CatalogPath(ref); err == nil && rec != nil {
			w.records[p] = rec
		}
	}
}

// advanceRecords moves ix from its records revision to rev, the records
// after this pass's writes, so the next pass does not read them again: a
// changed file whose blob is one this pass wrote takes its entry from the
// record written; any other (another writer's) is read and decoded. It
// returns nil, no index, when that fails.
func (r *Reconciler) advanceRecords(ix *scopeIndex, rev string, w recordWrites) *scopeIndex {
	if ix == nil || rev == "" || rev == ix.RecordsRev {
		return ix
	}
	root := r.recordRoot()
	var changes []gitrepo.Change
	if ix.RecordsRev != "" {
		var err error
		if changes, err = r.Source.ChangedRecords(ix.RecordsRev, rev); err != nil {
			return nil
		}
	} else {
		files, err := r.Source.RecordFiles(rev)
		if err != nil {
			return nil
		}
		for _, f := range files {
			changes = append(changes, gitrepo.Change{Path: f.Path, Action: gitrepo.Added, ToBlob: f.Blob})
		}
	}
	// The entries are built on all cores: after a cold converge the pass
	// wrote thousands of records, and what runs this (the next pass, or
	// this one when the index is saved to a file) waits for them.
	entries := make([]*indexEntry, len(changes))
	var failed atomic.Bool
	parallel.For(len(changes), func(i int) {
		c := changes[i]
		if c.Action == gitrepo.Deleted || failed.Load() {
			return
		}
		if c.Path == root.JournalPath() {
			failed.Store(true) // another writer's unfinished pass: load everything
			return
		}
		if paths, _ := root.RecordPaths([]string{c.Path}); len(paths) != 1 {
			return // not a record: LoadRecords ignores it too
		}
		f := manifest.RecordFile{Record: w.records[c.Path]}
		if data, ok := w.files[c.Path]; !ok || data == nil || f.Record == nil || gitrepo.BlobHash(data) != c.ToBlob {
			data, err := r.Source.ReadBlob(c.ToBlob)
			if err != nil {
				failed.Store(true)
				return
			}
			f = root.DecodeRecordFile(c.Path, data)
		}
		e, err := recordEntry(c.ToBlob, f)
		if err != nil {
			failed.Store(true)
			return
		}
		entries[i] = &e
	})
	if failed.Load() {
		return nil
	}
	for i, c := range changes {
		delete(ix.Records, c.Path)
		if entries[i] != nil {
			ix.Records[c.Path] = *entries[i]
		}
	}
	ix.RecordsRev = rev
	return ix
}
