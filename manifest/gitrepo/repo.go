package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// StatusDir is the directory osbgit owns in the repository. Writes are
// confined to it, and commits that touch only it are not manifest changes.
const StatusDir = ".osbgit"

// Reader reads a repository without changing it. All revisions are commit
// hashes (40 hex digits) or branch names; "" means the manifest branch as of
// the last Fetch.
type Reader interface {
	// RemoteHead asks the remote for a branch's head commit without
	// fetching anything (one ls-remote round trip; a ref read for local
	// paths). branch "" means the manifest branch.
	RemoteHead(ctx context.Context, branch string) (string, error)
	// Fetch brings the manifest and status branches up to date locally.
	Fetch(ctx context.Context) (FetchResult, error)
	// Resolve returns the full commit hash of rev.
	Resolve(rev string) (string, error)
	// TreeFS returns a read-only file system over rev's tree.
	TreeFS(rev string) (fs.FS, error)
	// TreeHash returns the hash of the tree at dir ("" or "." for the root)
	// in rev: equal hashes mean identical contents.
	TreeHash(rev, dir string) (string, error)
	// Files lists the files under dir in rev with their blob hashes.
	Files(rev, dir string) ([]File, error)
	// ReadBlob returns a blob's contents by hash.
	ReadBlob(hash string) ([]byte, error)
	// ChangedFiles lists files under dir that differ between two revisions.
	ChangedFiles(fromRev, toRev, dir string) ([]Change, error)
	// ChangedOutside reports whether anything outside prefix differs
	// between two revisions.
	ChangedOutside(fromRev, toRev, prefix string) (bool, error)
	// TouchesOnlyStatus reports whether all differences lie under
	// .osbgit/ (ChangedOutside with StatusDir, negated).
	TouchesOnlyStatus(fromRev, toRev string) (bool, error)
	// WorkTreeFS returns the working tree of a local working copy,
	// uncommitted edits included.
	WorkTreeFS() (fs.FS, error)
}

// Writer commits and pushes changes under .osbgit/.
type Writer interface {
	// CheckWritable reports, without network access, whether writes can
	// succeed for this source and branch configuration (see
	// ErrCheckedOutBranch). Call it before doing work whose result must be
	// recorded.
	CheckWritable() error
	// WriteIntent commits and pushes a write-ahead record. A rejected push
	// is not retried: it returns a *ConflictError (ErrConflict) and the
	// caller must Fetch and re-plan before calling any broker.
	WriteIntent(ctx context.Context, cs ChangeSet) (WriteResult, error)
	// WriteStatus commits and pushes status records, re-applying them on
	// top of the new head when the branch moved, with bounded, jittered
	// backoff.
	WriteStatus(ctx context.Context, cs ChangeSet) (WriteResult, error)
}

// Client is a Reader and a Writer over one repository.
type Client interface {
	Reader
	Writer
	// Branch is the manifest branch.
	Branch() string
	// StatusBranch is the branch that receives .osbgit/ records.
	StatusBranch() string
	// TrustedBranch is the branch the operator trusts (Options.TrustedBranch).
	TrustedBranch() string
	// URL is the redacted repository URL, safe to show.
	URL() string
	// Close releases the cache lock.
	Close() error
}

// FetchResult describes the state after Fetch.
type FetchResult struct {
	// Head is the manifest branch's head commit.
	Head string
	// StatusHead is the status branch's head commit; "" when the status
	// branch does not exist yet. Equal to Head when they are one branch.
	StatusHead string
	// TrustedHead is the trusted branch's head commit; "" when that branch
	// does not exist. Equal to Head when they are one branch.
	TrustedHead string
	// RecordsHead is the head of this deployment's records ref
	// (Repo.RecordsRef); "" when it does not exist.
	RecordsHead string
	// LegacyRecordsHead, for a deployment with a cluster ID only, is the
	// head of the records ref of the status branch's deployment without
	// one (RecordsRef): records `osbgit records move` can take over; ""
	// when it does not exist.
	LegacyRecordsHead string
	// Updated is true when objects or refs were transferred; false when
	// the local copy was already current (or the source is a local path).
	Updated bool
}

// Repo is a Git repository opened by Open. It implements Client. A Repo is
// safe for concurrent use; operations on its storage are serialised.
type Repo struct {
	mu   sync.Mutex
	src  source
	auth transportAuth
	set  settings

	shownURL      string
	secrets       []string
	branch        string
	statusBranch  string
	trustedBranch string
	// clusterID is Options.ClusterID.
	clusterID string

	repo *git.Repository
	st   storage.Storer
	// known holds the branch heads as of the last Fetch (or our last
	// push): the base of the next write, and the meaning of revision "".
	known     map[string]plumbing.Hash
	cachePath string // bare clone directory when WithCacheDir is used
	workRoot  string // working tree root for a local working copy
	// detached: a working copy whose HEAD is no branch (a CI checkout of
	// a pull request), read as checked out against the trusted branch;
	// branch is then DetachedHead.
	detached bool
	unlock   func()
	// closeStorage releases the cache storage's open pack files.
	closeStorage func() error
	closed       bool
}

var _ Client = (*Repo)(nil)

// Open prepares a repository for reading and writing.
//
// A local path (a working copy's root or a bare repository) is used in
// place: nothing is cloned and reads see its refs directly. Any URL
// (file://, http(s)://, ssh://, scp-like) is fetched by Fetch into a bare
// clone under the WithCacheDir directory, reused across runs, or into memory.
//
// Open does no network I/O, except that an empty Options.Branch is resolved
// from the remote's HEAD (one ls-remote). Credentials are checked for the
// plain-http rule and SSH keys and known_hosts are loaded here, so
// configuration errors surface before any pass starts.
func Open(ctx context.Context, o Options, opts ...Option) (*Repo, error) {
	s := defaultSettings()
	for _, opt := range opts {
		opt(&s)
	}
	shown := RedactURL(strings.TrimSpace(o.URL))
	fail := func(err error) (*Repo, error) {
		secrets := []string{o.Auth.Password, o.Auth.Token, o.Auth.SSHKeyPassphrase}
		if errors.As(err, new(*Error)) {
			return nil, err
		}
		return nil, &Error{Op: "open", URL: shown, Branch: o.Branch, Kind: classify(err), Err: err, secrets: secrets}
	}
	src, err := parseSource(o.URL)
	if err != nil {
		return fail(err)
	}
	ta, err := buildAuth(src, o.Auth, s)
	if err != nil {
		return fail(err)
	}
	r := &Repo{src: src, auth: ta, set: s, shownURL: src.shown, secrets: ta.secrets,
		branch: o.Branch, statusBranch: o.StatusBranch, trustedBranch: o.TrustedBranch, clusterID: o.ClusterID, known: map[string]plumbing.Hash{}}
	if o.ClusterID != "" {
		if err := CheckClusterID(o.ClusterID); err != nil {
			return fail(err)
		}
	}
	for _, b := range []string{o.Branch, o.StatusBranch, o.TrustedBranch} {
		if b != "" {
			if err := plumbing.NewBranchReferenceName(b).Validate(); err != nil || strings.HasPrefix(b, "refs/") {
				return fail(fmt.Errorf("%w: invalid branch name %q", ErrInvalidOptions, b))
			}
		}
	}

	if src.kind == kindRemote {
		err = r.openRemoteStorage(ctx)
	} else {
		err = r.openLocal()
	}
	if err != nil {
		r.Close()
		return nil, r.newError("open", o.Branch, err)
	}

	if r.branch == "" {
		b, err := r.defaultBranch(ctx)
		switch {
		case errors.Is(err, errDetached) && r.src.kind == kindWorkTree && (o.TrustedBranch != "" || o.TrustDefaultBranch):
			// A CI checkout of a pull request: what is checked out is
			// read as it is, against the trusted branch's records.
			b, r.detached = DetachedHead, true
		case err != nil:
			r.Close()
			return nil, r.newError("open", "", err)
		}
		r.branch = b
	}
	if r.trustedBranch == "" {
		r.trustedBranch = r.branch
		if o.TrustDefaultBranch {
			b, err := r.trustedDefault(ctx)
			if err != nil {
				r.Close()
				return nil, r.newError("open", "", fmt.Errorf("%w (give the trusted branch)", err))
			}
			r.trustedBranch = b
		}
	}
	if r.statusBranch == "" {
		r.statusBranch = r.trustedBranch
	}
	return r, nil
}

// openLocal opens a local path in place and tells a working copy from a
// bare repository.
func (r *Repo) openLocal() error {
	fi, err := os.Stat(r.src.url)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRepositoryNotFound, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrRepositoryNotFound, r.src.url)
	}
	repo, err := git.PlainOpenWithOptions(r.src.url, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		if errors.Is(err, git.ErrRepositoryNotExists) {
			return fmt.Errorf("%w: %s is not a git repository (give the working copy's root or a bare repository)", ErrRepositoryNotFound, r.src.url)
		}
		return err
	}
	wt, err := repo.Worktree()
	switch {
	case errors.Is(err, git.ErrIsBareRepository):
		r.src.kind = kindBare
	case err != nil:
		return err
	default:
		r.src.kind = kindWorkTree
		r.workRoot = wt.Filesystem.Root()
	}
	return r.useLocalStorage(repo)
}

// reopenLocal re-reads a local repository so objects packed by git since
// the last read are found (go-git caches the list of packs).
func (r *Repo) reopenLocal() error {
	repo, err := git.PlainOpenWithOptions(r.src.url, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return err
	}
	return r.useLocalStorage(repo)
}

// localCacheSize bounds go-git's object cache for a local repository (and
// the clone cache of a remote one). A
// pass reads each blob once, so a large cache only holds garbage (go-git's
// default of 96 MiB kept ~30 MB of blobs alive over 20,000 records); trees
// along a path are what gets reread.
const localCacheSize = 8 * cache.MiByte

// useLocalStorage makes repo's object storage keep pack files open between
// reads (reading 20,000 blobs otherwise opens the pack 20,000 times) with a
// small object cache, and releases the storage it replaces. Other
// processes (git itself) may write the repository meanwhile: new packs are
// found by reopenLocal, and an open pack stays readable after git removes
// it.
func (r *Repo) useLocalStorage(repo *git.Repository) error {
	fsst, ok := repo.Storer.(*filesystem.Storage)
	if !ok {
		r.repo, r.st = repo, repo.Storer
		return nil
	}
	st := filesystem.NewStorageWithOptions(fsst.Filesystem(), cache.NewObjectLRU(localCacheSize),
		filesystem.Options{KeepDescriptors: true})
	var wt billy.Filesystem
	if r.src.kind == kindWorkTree {
		w, err := repo.Worktree()
		if err != nil {
			return err
		}
		wt = w.Filesystem
	}
	opened, err := git.Open(st, wt)
	if err != nil {
		_ = st.Close()
		return err
	}
	if r.closeStorage != nil {
		_ = r.closeStorage()
	}
	r.repo, r.st, r.closeStorage = opened, st, st.Close
	return nil
}

// openRemoteStorage prepares the cache directory (or memory) that Fetch
// fills.
func (r *Repo) openRemoteStorage(ctx context.Context) error {
	if r.set.cacheDir == "" {
		return r.initMemory()
	}
	if err := os.MkdirAll(r.set.cacheDir, 0o755); err != nil {
		return fmt.Errorf("creating cache dir: %w", err)
	}
	r.cachePath = filepath.Join(r.set.cacheDir, cacheKey(r.src.shown))
	unlock, err := lockFile(ctx, r.cachePath+".lock")
	if err != nil {
		return fmt.Errorf("locking cache %s: %w", r.cachePath, err)
	}
	r.unlock = unlock
	if _, err := os.Stat(r.cachePath); err == nil {
		st := newCacheStorage(r.cachePath)
		if repo, err := git.Open(st, nil); err == nil && r.cacheUsable(repo) {
			r.repo, r.st, r.closeStorage = repo, st, st.Close
			return nil
		}
		_ = st.Close()
	}
	return r.initCache()
}

// newCacheStorage opens a bare clone directory. The cache is locked for
// this process, so go-git may assume exclusive access, and pack files stay
// open between reads (reading 10,000 blobs otherwise reopens the pack
// 10,000 times).
func newCacheStorage(dir string) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRU(localCacheSize),
		filesystem.Options{ExclusiveAccess: true, KeepDescriptors: true})
}

// cacheUsable checks that an existing cache is a bare clone of this URL and
// has not grown past the compaction thresholds.
func (r *Repo) cacheUsable(repo *git.Repository) bool {
	cfg, err := repo.Config()
	if err != nil || !cfg.Core.IsBare {
		return false
	}
	rem, ok := cfg.Remotes["origin"]
	if !ok || len(rem.URLs) != 1 || rem.URLs[0] != r.src.url {
		return false
	}
	return !needsCompaction(r.cachePath)
}

// initCache (re)creates the bare clone directory.
func (r *Repo) initCache() error {
	if r.closeStorage != nil {
		_ = r.closeStorage()
		r.closeStorage = nil
	}
	if err := os.RemoveAll(r.cachePath); err != nil {
		return fmt.Errorf("clearing cache: %w", err)
	}
	if err := os.MkdirAll(r.cachePath, 0o755); err != nil {
		return fmt.Errorf("initialising cache: %w", err)
	}
	st := newCacheStorage(r.cachePath)
	repo, err := git.Init(st, nil)
	if err != nil {
		_ = st.Close()
		return fmt.Errorf("initialising cache: %w", err)
	}
	r.closeStorage = st.Close
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{r.src.url}}); err != nil {
		return fmt.Errorf("initialising cache: %w", err)
	}
	r.repo, r.st = repo, repo.Storer
	return nil
}

func (r *Repo) initMemory() error {
	repo, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		return err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{r.src.url}}); err != nil {
		return err
	}
	r.repo, r.st = repo, repo.Storer
	return nil
}

// resetStorage throws the local copy away (a corrupt or inconsistent cache).
func (r *Repo) resetStorage() error {
	if r.cachePath != "" {
		return r.initCache()
	}
	return r.initMemory()
}

// defaultBranch resolves the branch HEAD points to.
func (r *Repo) defaultBranch(ctx context.Context) (string, error) {
	if r.src.kind != kindRemote {
		ref, err := r.st.Reference(plumbing.HEAD)
		if err != nil {
			return "", err
		}
		if ref.Type() == plumbing.SymbolicReference && ref.Target().IsBranch() {
			return ref.Target().Short(), nil
		}
		return "", fmt.Errorf("%w: %w; give a branch", ErrBranchNotFound, errDetached)
	}
	refs, err := r.lsRemote(ctx)
	if err != nil {
		return "", err
	}
	if t, ok := refs.headTarget(); ok {
		return t, nil
	}
	return "", fmt.Errorf("%w: cannot tell the remote's default branch; give a branch", ErrBranchNotFound)
}

// trustedDefault is the default trusted branch: the remote's default
// branch; for a working copy, the branch origin/HEAD names (a CI checkout
// of a pull request has the pull request checked out), else the
// checked-out branch.
func (r *Repo) trustedDefault(ctx context.Context) (string, error) {
	if r.src.kind == kindWorkTree {
		ref, err := r.st.Reference(plumbing.NewRemoteHEADReferenceName("origin"))
		if err == nil && ref.Type() == plumbing.SymbolicReference {
			if t := ref.Target(); t.IsRemote() {
				if _, b, ok := strings.Cut(t.Short(), "/"); ok && b != "" {
					return b, nil
				}
			}
		}
	}
	return r.defaultBranch(ctx)
}

// DetachedHead is Branch() of a working copy whose HEAD is detached.
const DetachedHead = "HEAD"

// errDetached: a working copy's HEAD names no branch.
var errDetached = errors.New("HEAD is detached")

// Branch returns the manifest branch.
func (r *Repo) Branch() string { return r.branch }

// TrustedBranch returns the branch the operator trusts.
func (r *Repo) TrustedBranch() string { return r.trustedBranch }

// StatusBranch returns the branch that receives .osbgit/ records.
func (r *Repo) StatusBranch() string { return r.statusBranch }

// URL returns the redacted URL or path, safe to log.
func (r *Repo) URL() string { return r.shownURL }

// IsLocal reports whether the source is a local path used in place.
func (r *Repo) IsLocal() bool { return r.src.kind != kindRemote }

// IsWorkTree reports whether the source is a local working copy.
func (r *Repo) IsWorkTree() bool { return r.src.kind == kindWorkTree }

// Close releases the cache directory lock. The Repo must not be used after.
func (r *Repo) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.closeStorage != nil {
		_ = r.closeStorage()
		r.closeStorage = nil
	}
	if r.unlock != nil {
		r.unlock()
		r.unlock = nil
	}
	return nil
}

func (r *Repo) checkOpen() error {
	if r.closed {
		return errors.New("repository is closed")
	}
	return nil
}

// opCtx bounds a network operation by the configured timeout.
func (r *Repo) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.set.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, r.set.timeout)
}

// resolveHash resolves rev to a commit hash present locally. Caller holds
// r.mu.
func (r *Repo) resolveHash(rev string) (plumbing.Hash, error) {
	if rev == "" {
		if h, ok := r.known[r.branch]; ok {
			return h, nil
		}
		rev = r.branch
	}
	var h plumbing.Hash
	if len(rev) == 40 && plumbing.IsHash(rev) {
		h = plumbing.NewHash(rev)
	} else {
		ref, err := r.st.Reference(plumbing.NewBranchReferenceName(rev))
		if err == nil {
			h = ref.Hash()
		} else {
			hp, err := r.repo.ResolveRevision(plumbing.Revision(rev))
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("%w: %q", ErrRevisionNotFound, rev)
			}
			h = *hp
		}
	}
	if _, err := r.st.EncodedObject(plumbing.CommitObject, h); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: commit %s is not in the local copy", ErrRevisionNotFound, shortHash(h.String()))
	}
	return h, nil
}

// commit returns rev's commit. Caller holds r.mu.
func (r *Repo) commit(rev string) (*object.Commit, error) {
	h, err := r.resolveHash(rev)
	if err != nil {
		return nil, err
	}
	c, err := object.GetCommit(r.st, h)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRevisionNotFound, err)
	}
	return c, nil
}

// Resolve returns the full commit hash of rev ("" means the manifest
// branch's local head).
func (r *Repo) Resolve(rev string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return "", err
	}
	h, err := r.resolveHash(rev)
	if err != nil {
		return "", r.newError("read", "", err)
	}
	return h.String(), nil
}
