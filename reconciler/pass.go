package reconciler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/osbgit/osbgit/reconciler/internal/drain"
	"io/fs"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/osbclient/osbwire"
	"github.com/osbgit/osbgit/reconciler/exec"
	"github.com/osbgit/osbgit/reconciler/internal/parallel"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/policy"
	"github.com/osbgit/osbgit/reconciler/redact"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// Source is the Git repository a pass reads manifests from and writes
// records to. *gitrepo.Repo satisfies it.
type Source interface {
	TreeReader
	RemoteHead(ctx context.Context, branch string) (string, error)
	Fetch(ctx context.Context) (gitrepo.FetchResult, error)
	ChangedOutside(fromRev, toRev, prefix string) (bool, error)
	WriteIntent(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error)
	WriteStatus(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error)
	WriteNote(ctx context.Context, n gitrepo.Note) (string, error)
	Branch() string
	StatusBranch() string
	// URL is the repository as shown (credentials redacted).
	URL() string
	// Reading osbgit's records ref (records.go).
	CommitMessage(rev string) (string, error)
	TreeHash(rev, dir string) (string, error)
	ChangedFiles(fromRev, toRev, dir string) ([]gitrepo.Change, error)
	LastChange(rev, path string) (string, gitrepo.Person, error)
	// This deployment's records (gitrepo/clusters.go): its cluster ID
	// ("" for a repository's only deployment), records directory and
	// records ref, and reads confined to that directory.
	ClusterID() string
	RecordsDir() string
	RecordsRef() string
	RecordsTree(rev string) (string, error)
	ChangedRecords(fromRev, toRev string) ([]gitrepo.Change, error)
	RecordFiles(rev string) ([]gitrepo.File, error)
}

// Options are the command-line settings of a pass; a nil pointer or zero
// value means "use osbgit.yaml, else the default".
type Options struct {
	// Path overrides the config's manifest directory.
	Path string
	// Prune and MaxDeletions override the config's.
	Prune        *bool
	MaxDeletions *int
	// Concurrency overrides the config's per-broker call limit.
	Concurrency int
	// ClusterID overrides the config's clusterID (sent as
	// context.clusterid). A Source with a cluster ID of its own (the
	// deployment's, which also keys its records) is the default when it
	// is empty.
	ClusterID string
	// InlinePoll is how long a pass keeps polling async operations before
	// recording them for a later pass.
	InlinePoll time.Duration
	// MaxPollingDuration bounds polling for plans without
	// maximum_polling_duration (default 24h).
	MaxPollingDuration time.Duration
	// StatePath is the pass state file (a CronJob's cache volume); empty
	// keeps state in memory only. StateStore, when set, is used instead.
	StatePath string
	// StateStore keeps the pass state between processes (a ConfigMap for a
	// CronJob without a persistent volume); it overrides StatePath.
	StateStore StateStore
	// ScopeIndexPath is where the scope index is kept between processes
	// (scope.go; on the cache volume); empty keeps it in memory only.
	ScopeIndexPath string
	// MaxReplans bounds how often a pass re-plans after its write-ahead
	// push was rejected (default 3).
	MaxReplans int
	// BrokerAuthNamespaces are the namespaces broker auth Secrets may come
	// from (set by the operator, never by the repo); nil means
	// manifest.DefaultBrokerAuthNamespace. A broker naming a Secret
	// elsewhere is an error and is never called.
	BrokerAuthNamespaces []string
	// ConfirmedBrokerMoves are brokers whose URL change an operator
	// confirmed (plan.Options.ConfirmedBrokerMoves).
	ConfirmedBrokerMoves []manifest.Ref
	// Policy is the operator's tenancy policy (--policy); nil allows
	// every path, namespace, class and plan, uncapped. A resource it does
	// not allow is blocked with an error at its file:line, and a broker it
	// does not allow is never called (reconciler/policy).
	Policy *policy.Policy
	// SecretSweepInterval is how often a pass, or a sync whose head has
	// not moved, reads back every binding Secret osbgit wrote, to restore
	// those deleted or edited since (secretcheck.go); between sweeps only
	// the parametersFrom and broker auth Secrets are read. Zero sweeps
	// every time. SyncAfterSecretChange sweeps whatever the interval.
	SecretSweepInterval time.Duration
	// MinRetryDelay and MaxRetryDelay bound the backoff before a call the
	// broker gave no verdict on is repeated (exec.MinRetryDelay and
	// exec.MaxRetryDelay when zero).
	MinRetryDelay, MaxRetryDelay time.Duration
}

// DefaultSecretSweepInterval is the Options.SecretSweepInterval of the
// command line (--secret-sweep-interval). Reading back every binding
// Secret costs about what decoding every record does (0.1-0.2 ms a Secret
// in the dir store, a GET each in Kubernetes), so a CronJob syncing every
// few minutes sweeps at most every ten, and a deleted binding Secret is
// back within that.
const DefaultSecretSweepInterval = 10 * time.Minute

// DefaultClusterID is sent as context.clusterid when neither osbgit.yaml nor
// a flag sets one.
const DefaultClusterID = "osbgit"

// Reconciler runs passes over one repository. Its zero value is not usable:
// set Source (and Secrets for sync); the rest has defaults.
type Reconciler struct {
	Source Source
	// Secrets is where binding credentials go and where broker auth and
	// parametersFrom Secrets are read (reconciler/secretstore).
	Secrets secrets.Store
	// Keys signs and checks osbgit's records (integrity.Keeper on the
	// secret store). With it, records are read from osbgit's own signed
	// records ref and the status branch's .osbgit/ is kept equal to them;
	// without it (a diff with no secret store), records are read from the
	// status branch and reported unverified.
	Keys RecordKeys
	// Clients builds broker clients; defaults to one reading auth from
	// Secrets.
	Clients *BrokerClients
	Log     logrus.FieldLogger
	// Now and NewID are injectable for tests.
	Now     func() time.Time
	NewID   func() string
	Options Options
	// State carries what a pass remembers for the next; loaded from
	// the Options' state store on first use.
	State *PassState
	// Cache keeps decoded manifests and records across passes, so a pass
	// decodes only the files that changed. Long-running processes (`run`)
	// set it; nil decodes everything (a one-pass process would only hold
	// every manifest twice, decoded and assembled, at its peak).
	Cache *DecodeCache
	// Identity, when set, is the originating identity of broker calls;
	// by default the author of the manifest commit is used.
	Identity func(rev string) *osbwire.OriginatingIdentity
	// Progress, when set, is called as each step of a sync ends (from
	// several goroutines).
	Progress func(exec.Progress)
	// Redact is the set of secret values this reconciler knows: broker
	// auth, parametersFrom values and binding credentials are added as
	// they are read or received, and the records a pass writes are
	// scrubbed of them. Share it with the logger (redact.Formatter) and
	// whatever shows results (render, errors). Nil: init creates one,
	// kept across passes.
	Redact *redact.Set
	// CommitStatuses, when set, gets a forge commit status on each new
	// manifest revision a pass reconciles (result.go).
	CommitStatuses CommitStatuses

	// hasher makes the checksums of Secret contents (secretcheck.go).
	hasherOnce sync.Once
	hasher     *secretHasher
	// scope is the scope index the last pass left (scope.go);
	// advanceScope, when set, makes it: the last pass left that to the
	// next (settleScope).
	scope        *scopeIndex
	advanceScope func()
}

func (r *Reconciler) init(ctx context.Context) error {
	if r.Source == nil {
		return errors.New("reconciler: no source")
	}
	if r.Log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		r.Log = l
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.NewID == nil {
		r.NewID = func() string { return uuid.NewString() }
	}
	if r.Redact == nil {
		r.Redact = redact.New()
	}
	if r.Clients == nil {
		r.Clients = &BrokerClients{Secrets: r.Secrets}
	}
	if r.Clients.Redact == nil {
		r.Clients.Redact = r.Redact
	}
	if r.State == nil {
		r.State = &PassState{}
		if store := r.stateStore(); store != nil {
			st, err := store.LoadState(ctx)
			switch {
			case err != nil:
				r.Log.WithError(err).Warn("could not load pass state; this pass is a full one")
			case st != nil:
				r.State = st
			}
		}
	}
	return nil
}

// stateStore is where the pass state is kept between processes (nil: in
// memory only).
func (r *Reconciler) stateStore() StateStore {
	if r.Options.StateStore != nil {
		return r.Options.StateStore
	}
	if r.Options.StatePath != "" {
		return StateFile(r.Options.StatePath)
	}
	return nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// prepared is everything a plan is made of.
type prepared struct {
	fetch    gitrepo.FetchResult
	snap     *Snapshot
	records  *manifest.Records
	catalogs []catalogOutcome
	plan     *plan.Plan
	cfg      effectiveConfig
	// gate lists the brokers this pass must not call.
	gate notContacted
	// records says where the records came from and how to write them.
	view recordsView
	// secrets is what the pass found of the Secrets it depends on (nil
	// without a secret store, or offline).
	secrets *secretObservation
	// loaded says what was loaded, for the next pass (scope.go).
	loaded loaded
	// heldBack counts the steps the tenancy policy's caps held back: a
	// later pass is due for them.
	heldBack int
}

type effectiveConfig struct {
	prune        bool
	maxDeletions int
	concurrency  int
	clusterID    string
	template     string
}

// assembly is how this deployment assembles manifests: duplicates are
// settled by the tenancy policy's path rules (manifest.WithAdmission).
func (r *Reconciler) assembly() []manifest.AssembleOption {
	return []manifest.AssembleOption{manifest.WithAdmission(r.Options.Policy.Admission())}
}

func (r *Reconciler) effective(cfg *manifest.Config) effectiveConfig {
	if cfg == nil {
		cfg = manifest.DefaultConfig()
	}
	e := effectiveConfig{prune: cfg.Prune, maxDeletions: cfg.MaxDeletions, concurrency: cfg.Concurrency,
		clusterID: cfg.ClusterID, template: cfg.CommitMessageTemplate}
	if r.Options.Prune != nil {
		e.prune = *r.Options.Prune
	}
	if r.Options.MaxDeletions != nil {
		e.maxDeletions = *r.Options.MaxDeletions
	}
	if r.Options.Concurrency > 0 {
		e.concurrency = r.Options.Concurrency
	}
	if e.concurrency <= 0 {
		e.concurrency = manifest.DefaultConcurrency
	}
	if id := r.Source.ClusterID(); id != "" {
		e.clusterID = id
	}
	if r.Options.ClusterID != "" {
		e.clusterID = r.Options.ClusterID
	}
	if e.clusterID == "" {
		e.clusterID = DefaultClusterID
	}
	if e.template == "" {
		e.template = manifest.DefaultCommitMessageTemplate
	}
	return e
}

// prepareOptions select how manifests and catalogs are read.
type prepareOptions struct {
	// workTree, when set, is read instead of the branch head (diff on a
	// local working copy).
	workTree fs.FS
	// offline: no broker call at all (cached catalogs only).
	offline bool
	// refresh: fetch every catalog.
	refresh bool
	// drift: compare live state (GET instance/binding) with the records.
	drift bool
	// write: the pass will write records (sync), so they must be
	// verifiable; it also describes what it loaded in a scope index.
	write bool
	// sweepSecrets: read back every binding Secret (the caller decides
	// whether a sweep is due).
	sweepSecrets bool
	// scope, when set, is the last pass's scope index: only what changed
	// since is loaded, when it can be (scope.go).
	scope *scopeIndex
}

func (r *Reconciler) prepare(ctx context.Context, fr gitrepo.FetchResult, po prepareOptions) (*prepared, error) {
	now := r.Now()
	// The records are decoded before the manifests, not beside them: each
	// load spreads its decoding over the cores (manifest.DecodeRange), and
	// decoding both at once kept more garbage alive while the heap was at
	// its largest, which put the no-op pass of make bench over its 300 MB
	// peak RSS limit (issue 17: 280-303 MB against 265-286 MB this way).
	view, err := r.viewRecords(ctx, fr, po.write)
	if err != nil {
		return nil, err
	}
	l, recordsErr, err := r.load(fr, view.rev, po)
	if err != nil {
		return nil, err
	}
	records, snap := l.records, l.snap
	if cd := configErrors(snap.Diagnostics); len(cd) > 0 {
		return nil, fmt.Errorf("%s is invalid; fix it before osbgit acts on this revision:\n  %s", manifest.ConfigFileName, strings.Join(cd, "\n  "))
	}
	if recordsErr != nil {
		return nil, recordsErr
	}
	for _, w := range records.Warnings {
		r.Log.Warn(w)
	}
	gate, authDiags, err := r.brokerGate(fr, snap.Set, po.workTree != nil)
	if err != nil {
		return nil, err
	}
	var observed *secretObservation
	var relist map[manifest.Ref]string
	if !po.offline {
		// Before anything else reads them (secretcheck.go).
		if observed = r.observeSecrets(ctx, snap.Set, records.Status, gate, po.sweepSecrets, now); observed != nil {
			relist = observed.relist
		}
	}
	brokers := snap.Set.Brokers()
	outs := refreshCatalogs(ctx, brokers, records.Catalogs, r.State.relistTimes(), relist, now, po.refresh, po.offline, gate,
		func(ctx context.Context, b manifest.Broker) (catalogGetter, error) { return r.Clients.Client(ctx, b) })
	catalogs := records.CatalogsByKey()
	access := make(map[manifest.Ref]plan.BrokerAccess, len(outs))
	for _, o := range outs {
		if o.err != nil {
			r.Log.WithFields(logrus.Fields{"broker": o.broker.String(), "reason": o.reason}).WithError(o.err).Warn("catalog fetch failed; using the cached catalog")
		} else if o.fetched {
			r.Log.WithFields(logrus.Fields{"broker": o.broker.String(), "reason": o.reason, "changed": o.changed}).Info("relisted catalog")
		}
		if o.record != nil {
			c := o.record.Catalog
			catalogs[manifest.CatalogKey(o.broker)] = &c
		}
		a := plan.BrokerAccess{NotContacted: o.notContacted, Offline: po.offline}
		if o.err != nil {
			a.CatalogError = o.err.Error()
		}
		if o.record != nil {
			a.CatalogFetchedAt = o.record.FetchedAt.Time
		}
		access[o.broker] = a
	}
	cfg := r.effective(snap.Set.Config)
	diags := append(manifest.Diagnostics(nil), snap.Diagnostics...)
	diags = append(diags, authDiags...)
	diags = append(diags, manifest.ValidateWithCatalogs(snap.Set, catalogs, manifest.WithRecords(records))...)
	diags = append(diags, policy.Check(snap.Set, r.Options.Policy, catalogs)...)
	diags.Sort()
	var observations map[manifest.Ref]plan.Observation
	var blind manifest.Diagnostics
	if !po.offline {
		observations, blind = r.observe(ctx, snap.Set, records.Status, catalogs, po.drift, gate, cfg.concurrency)
	}
	in := plan.Input{
		Applied:      r.appliedManifests(ctx, snap.Set, records.Status),
		Observations: observations,
		Set:          snap.Set,
		Diagnostics:  diags,
		Records:      records.Status,
		Catalogs:     catalogs,
		Brokers:      access,
		Secrets:      readParameterSecrets(ctx, snap.Set, r.Secrets, r.Redact),
		SecretDrift:  observed.driftOrNil(),
		NewID:        r.NewID,
		Options: plan.Options{
			Prune:                     cfg.prune,
			MaxDeletions:              cfg.maxDeletions,
			ClusterID:                 cfg.clusterID,
			Revision:                  snap.Revision,
			Now:                       now,
			DefaultMaxPollingDuration: r.maxPolling(),
			SecretsNotCompared:        po.offline,
			ConfirmedBrokerMoves:      r.Options.ConfirmedBrokerMoves,
		},
	}
	p := plan.Build(in)
	heldBack := policy.Limit(p, r.Options.Policy)
	p.Diagnostics = append(p.Diagnostics, divergenceDiagnostics(view.diverged)...)
	p.Diagnostics = append(p.Diagnostics, blind...)
	if view.unverified != "" && fr.StatusHead != "" {
		p.Diagnostics = append(p.Diagnostics, manifest.Diagnostic{File: r.Source.RecordsDir() + "/", Severity: manifest.SeverityWarning,
			Message: "records unverified (" + view.unverified + "): read as the status branch holds them"})
	}
	if view.refused != "" && p.Refused == "" {
		p.Refused = view.refused
	}
	return &prepared{fetch: fr, snap: snap, records: records, catalogs: outs, plan: p, cfg: cfg, gate: gate, view: view, secrets: observed, loaded: l, heldBack: heldBack}, nil
}

// loaded is what a pass read: the records and the manifests; the scope
// index describing them for the next pass (nil when none can serve it),
// and whether only the last pass's scope was read.
type loaded struct {
	records *manifest.Records
	snap    *Snapshot
	index   *scopeIndex
	scoped  bool
}

// load reads the records at recordsRev and the manifests (the work tree,
// else the head): only the last pass's scope when po.scope allows it
// (scope.go), else everything, with the scope index of what it read when
// the pass writes.
func (r *Reconciler) load(fr gitrepo.FetchResult, recordsRev string, po prepareOptions) (l loaded, recordsErr, err error) {
	if po.scope != nil && po.workTree == nil {
		sl, err := r.loadScoped(po.scope, fr.Head, recordsRev)
		switch {
		case err == nil:
			r.Log.WithFields(logrus.Fields{"files": sl.files, "records": sl.recordFiles}).Debug("scoped load: only what changed and what relates to it")
			return loaded{records: sl.records, snap: sl.snap, index: sl.next, scoped: true}, nil, nil
		case !errors.Is(err, errFullLoad):
			return l, nil, err
		}
		r.Log.WithError(err).Debug("loading everything")
	}
	records, recFiles, recDocs, recordsErr := loadRecords(r.Source, r.recordRoot(), recordsRev, r.Cache)
	if po.workTree != nil {
		snap := LoadTree(po.workTree, r.Options.Path, r.assembly()...)
		snap.Revision = ""
		return loaded{records: records, snap: snap}, recordsErr, nil
	}
	var ix *indexing
	if po.write && recordsErr == nil {
		// The index this pass's replaces lends it the entries of unchanged
		// files.
		ix = &indexing{last: r.takeScope(), fingerprint: r.scopeFingerprint}
	}
	rl, err := loadRevision(r.Source, fr.Head, r.Options.Path, r.Cache, ix, r.assembly()...)
	if err != nil {
		return l, nil, err
	}
	l = loaded{records: records, snap: rl.snap}
	if ix != nil && records.Journaled == nil {
		// An index describes record files alone: with a journal over them
		// the next pass loads everything again (after this pass's status
		// commit has removed the journal).
		l.index = newScopeIndex(rl, recordsRev, recFiles, recDocs, ix)
	}
	return l, recordsErr, nil
}

// configErrors returns the error diagnostics of osbgit.yaml: a pass must not
// run with a configuration it could not read (prune, maxDeletions and
// concurrency would silently take other values).
func configErrors(ds manifest.Diagnostics) []string {
	var out []string
	for _, d := range ds {
		if d.Severity == manifest.SeverityError && d.File == manifest.ConfigFileName {
			out = append(out, d.String())
		}
	}
	return out
}

func (r *Reconciler) maxPolling() time.Duration {
	if r.Options.MaxPollingDuration > 0 {
		return r.Options.MaxPollingDuration
	}
	return 24 * time.Hour
}

// relistTimes returns the per-broker relist times keyed by Ref.
func (s *PassState) relistTimes() map[manifest.Ref]time.Time {
	out := map[manifest.Ref]time.Time{}
	if s == nil {
		return out
	}
	for k, t := range s.LastRelist {
		out[refFromString(k)] = t
	}
	return out
}

// refFromString parses Ref.String() output ("Kind ns/name" or "Kind name").
func refFromString(s string) manifest.Ref {
	kind, rest, _ := strings.Cut(s, " ")
	ns, name, ok := strings.Cut(rest, "/")
	if !ok {
		return manifest.Ref{Kind: manifest.Kind(kind), Name: rest}
	}
	return manifest.Ref{Kind: manifest.Kind(kind), Namespace: ns, Name: name}
}

// DiffOptions select what a diff reads.
type DiffOptions struct {
	// WorkTree, when set, is read instead of the branch head.
	WorkTree fs.FS
	// Offline makes no broker call; Refresh fetches every catalog.
	Offline, Refresh bool
	// Drift compares live state with the records (GET instance/binding
	// where the broker allows it).
	Drift bool
}

// DiffResult is what `osbgit diff` shows.
type DiffResult struct {
	Plan *plan.Plan
	// CatalogErrors are brokers whose catalog could not be fetched (the
	// cached one was used, if any).
	CatalogErrors []error
}

// Diff plans a pass without changing anything: no mutating broker call (only
// GET /v2/catalog for due relists, none with Offline), no write to Git, no
// Secret written.
func (r *Reconciler) Diff(ctx context.Context, o DiffOptions) (*DiffResult, error) {
	if err := r.init(ctx); err != nil {
		return nil, err
	}
	fr, err := r.Source.Fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	// A diff reads back every binding Secret: it shows each restore a
	// sync would make once its sweep is due.
	p, err := r.prepare(ctx, fr, prepareOptions{workTree: o.WorkTree, offline: o.Offline, refresh: o.Refresh, drift: o.Drift, sweepSecrets: true})
	if err != nil {
		return nil, err
	}
	res := &DiffResult{Plan: p.plan}
	for _, c := range p.catalogs {
		if c.err != nil {
			res.CatalogErrors = append(res.CatalogErrors, c.err)
		}
	}
	return res, nil
}

// SyncResult is the outcome of one pass.
type SyncResult struct {
	// Skipped is set when nothing was due; Reason says why.
	Skipped bool
	Reason  string
	// Plan is what was planned (nil when skipped).
	Plan *plan.Plan
	// Exec is what the executor did (nil when nothing ran).
	Exec *exec.Result
	// Commit is the status commit pushed ("" when nothing changed).
	Commit string
	// CatalogErrors are brokers whose catalog could not be fetched.
	CatalogErrors []error
	// Refused is set when the plan refused to run (e.g. maxDeletions).
	Refused string
	// Replans counts write-ahead pushes rejected by a moved head.
	Replans int
}

// Failed reports whether any resource failed in this pass.
func (s *SyncResult) Failed() bool {
	return s != nil && s.Exec != nil && s.Exec.Failed()
}

// Sync runs one pass: converge the brokers to the manifests at the branch
// head and commit the records. A pass with nothing due ends after one ref
// lookup and a read of the Secrets the last pass depended on.
func (r *Reconciler) Sync(ctx context.Context) (*SyncResult, error) {
	return r.sync(ctx, false)
}

// SyncAfterSecretChange is Sync when a Secret may have changed (a watch
// event, the directory store's re-read schedule): it reads back every
// binding Secret, as if the sweep were due.
func (r *Reconciler) SyncAfterSecretChange(ctx context.Context) (*SyncResult, error) {
	return r.sync(ctx, true)
}

func (r *Reconciler) sync(ctx context.Context, sweepSecrets bool) (*SyncResult, error) {
	if err := r.init(ctx); err != nil {
		return nil, err
	}
	now := r.Now()
	head, err := r.Source.RemoteHead(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("look up branch head: %w", err)
	}
	sweepSecrets = sweepSecrets || r.State.secretSweepDue(now, r.Options.SecretSweepInterval)
	// A quiet head still reads the Secrets the last pass depended on
	// (once per sync; the binding Secrets when a sweep is due): one that
	// changed makes the pass due.
	var changedSecrets []string
	secretsChecked := false
	secretsChanged := func() bool {
		if !secretsChecked {
			secretsChecked = true
			if changedSecrets = r.secretsChanged(ctx, sweepSecrets); len(changedSecrets) > 0 {
				r.Log.WithField("secrets", strings.Join(changedSecrets, ", ")).Info("referenced Secrets changed since the last pass")
			}
		}
		return len(changedSecrets) > 0
	}
	if r.State.quiet(head, now) && len(r.Options.ConfirmedBrokerMoves) == 0 && !secretsChanged() {
		return &SyncResult{Skipped: true, Reason: "head " + short(head) + " already reconciled; nothing due"}, nil
	}
	maxReplans := r.Options.MaxReplans
	if maxReplans <= 0 {
		maxReplans = 3
	}
	res := &SyncResult{}
	var p *prepared
	var writeAhead map[manifest.Ref]*manifest.StatusRecord
	var journalEntries map[manifest.Ref][]byte // writeAhead's RecordJSON
	var writes recordWrites                    // for the scope index
	for attempt := 0; ; attempt++ {
		fr, err := r.Source.Fetch(ctx)
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		if skip, why := r.onlyStatusChanged(fr, now); skip && !secretsChanged() {
			r.State.ObservedHead = fr.Head
			r.saveState(ctx)
			return &SyncResult{Skipped: true, Reason: why}, nil
		}
		// A sweep reads every binding Secret, so it needs every record:
		// only a pass without one may load just what changed.
		var scope *scopeIndex
		if !sweepSecrets {
			scope = r.lastScope(now, secretsChanged())
		}
		p, err = r.prepare(ctx, fr, prepareOptions{drift: r.driftDue(now), write: true, sweepSecrets: sweepSecrets, scope: scope})
		if err != nil {
			return nil, err
		}
		res.Plan = p.plan
		if p.plan.Refused != "" {
			res.Refused = p.plan.Refused
			break
		}
		writeAhead, journalEntries = exec.WriteAheadRecords(p.plan, now), nil
		if len(writeAhead) == 0 {
			break
		}
		if drain.Requested(ctx) {
			// Shutting down before any new ID was reserved: start
			// nothing (the next process plans again).
			return &SyncResult{Skipped: true, Reason: "shutting down: nothing started"}, nil
		}
		var files map[string][]byte
		files, journalEntries, err = journalChange(r.recordRoot(), p.records, writeAhead)
		if err != nil {
			return nil, err
		}
		msg := gitrepo.EnsureSkipCI(fmt.Sprintf("osbgit: reserve IDs for %d new resource(s) (write-ahead)", len(writeAhead)))
		msg = r.withRestoreNote(msg, p.view.diverged)
		wr, err := r.Source.WriteIntent(ctx, gitrepo.ChangeSet{Files: files, Message: msg, ExpectedHead: fr.StatusHead, Sealed: r.sealed(ctx, &p.view)})
		if errors.Is(err, gitrepo.ErrConflict) && attempt < maxReplans {
			res.Replans++
			r.Log.WithField("attempt", attempt+1).Info("write-ahead push rejected: the branch moved; re-planning from the new head")
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("write-ahead records: %w", err)
		}
		r.wrote(ctx, &p.view, wr, false)
		r.Log.WithFields(logrus.Fields{"commit": short(wr.Commit), "records": len(writeAhead)}).Info("write-ahead records pushed")
		// The records now in Git are the write-ahead ones, in the journal.
		if p.records.Journaled == nil {
			p.records.Journaled = make(map[manifest.Ref]bool, len(writeAhead))
		}
		for ref, rec := range writeAhead {
			p.records.Status[ref] = rec
			p.records.Journaled[ref] = true
		}
		break
	}
	for _, c := range p.catalogs {
		if c.err != nil {
			res.CatalogErrors = append(res.CatalogErrors, c.err)
		} else if c.fetched {
			r.State.setLastRelist(c.broker, now)
		}
	}
	rev := r.newRevision(p.fetch.Head)
	if res.Refused != "" {
		r.Log.WithField("reason", res.Refused).Error("plan refused; no broker call made")
		r.resultDone(ctx, rev, r.resultNote(rev, p.cfg.clusterID, res), nil, res)
		return res, nil
	}
	r.resultStarted(ctx, rev)

	ex := &exec.Executor{
		Brokers:        r.brokerLookup(ctx, p.snap.Set, p.gate),
		Secrets:        r.Secrets,
		Concurrency:    p.cfg.concurrency,
		Now:            r.Now,
		Log:            r.Log,
		InlinePoll:     r.Options.InlinePoll,
		OnProgress:     r.Progress,
		Redact:         r.Redact,
		WriteAheadJSON: journalEntries,
		RetryMin:       r.Options.MinRetryDelay,
		RetryMax:       r.Options.MaxRetryDelay,
	}
	ex.Identity = r.identity(p.fetch.Head)
	if p.secrets != nil {
		ex.SecretWritten = p.secrets.wrote
	}
	res.Exec = ex.Run(ctx, p.plan, writeAhead)

	catalogRecs := map[manifest.Ref]*manifest.CatalogRecord{}
	for _, c := range p.catalogs {
		if c.changed {
			catalogRecs[c.broker] = c.record
		}
	}
	for ref := range p.records.Catalogs {
		if p.snap.Set.Broker(ref) == nil && !brokerInUse(ref, p.records.Status, res.Exec.Records) {
			catalogRecs[ref] = nil
		}
	}
	files, err := recordChanges(r.Log, r.recordRoot(), p.records, res.Exec.Records, catalogRecs, true, res.Exec.RecordJSON)
	if err != nil {
		return nil, err
	}
	final := mergedStatus(p.records.Status, res.Exec.Records)
	if p.secrets != nil {
		sums := p.secrets.sums(final)
		if p.loaded.scoped {
			sums.keepOutOfScope(r.State.Secrets, p.records.Status)
		}
		r.State.Secrets = sums
	}
	r.State.InFlight = countInFlight(final) + dependentsDue(p.plan) + p.heldBack
	r.State.NextPoll = res.Exec.NextPoll()
	r.State.NextRelist = nextRelist(p.snap.Set, p.records.Catalogs, catalogRecs, r.State)
	if iv := p.snap.Set.Config.DriftCheckInterval.Duration; iv > 0 {
		if r.State.NextDriftCheck.IsZero() || r.driftDue(now) {
			r.State.NextDriftCheck = now.Add(iv)
		}
	} else {
		r.State.NextDriftCheck = time.Time{}
	}
	note := r.resultNote(rev, p.cfg.clusterID, res)
	var statusWrite *gitrepo.WriteResult
	if len(files) > 0 || len(p.view.diverged) > 0 {
		msg, err := commitMessage(p.cfg.template, res.Exec)
		if err != nil {
			return nil, err
		}
		msg = withRevisionTrailer(r.withRestoreNote(msg, p.view.diverged), p.fetch.Head)
		wr, err := r.Source.WriteStatus(ctx, gitrepo.ChangeSet{Files: files, Message: msg, Sealed: r.sealed(ctx, &p.view), Note: note})
		statusWrite = &wr
		if err != nil {
			return res, fmt.Errorf("push status records: %w", err)
		}
		res.Commit = wr.Commit
		r.wrote(ctx, &p.view, wr, true)
		writes.add(r.recordRoot(), files, res.Exec.Records, catalogRecs)
		if wr.Branch == r.Source.Branch() && wr.Attempts <= 1 {
			// Our commit sits directly on the head we planned from.
			r.State.ObservedHead = wr.Commit
		} else {
			r.State.ObservedHead = p.fetch.Head
		}
		r.Log.WithFields(logrus.Fields{"commit": short(wr.Commit), "files": len(files), "attempts": wr.Attempts}).Info("status records pushed")
	} else {
		r.State.ObservedHead = p.fetch.Head
	}
	r.resultDone(ctx, rev, note, statusWrite, res)
	recordsRev := p.view.base
	if !p.view.sealed && statusWrite != nil {
		recordsRev = statusWrite.Commit
	}
	ix := p.loaded.index.failed(res.Exec)
	r.advanceScope = func() { r.keepScope(r.advanceRecords(ix, recordsRev, writes)) }
	if r.Options.ScopeIndexPath != "" {
		r.settleScope() // the next process reads it from the file
	}
	r.saveState(ctx)
	return res, nil
}

// driftDue reports whether this pass compares live state with the records:
// driftCheckInterval is set (the state knows it from the last pass) and the
// next check is due. The first pass of a process with no state does not
// check; it schedules the first check.
func (r *Reconciler) driftDue(now time.Time) bool {
	return !r.State.NextDriftCheck.IsZero() && !now.Before(r.State.NextDriftCheck)
}

// authorSource is implemented by sources that know commit authors
// (*gitrepo.Repo).
type authorSource interface {
	ManifestAuthor(rev string) (gitrepo.Person, error)
}

// identity is the originating identity of the pass's broker calls: the
// author of the last manifest commit (kubernetes profile: username = the
// author's email, or name), unless Reconciler.Identity overrides it.
func (r *Reconciler) identity(rev string) *osbwire.OriginatingIdentity {
	if r.Identity != nil {
		return r.Identity(rev)
	}
	as, ok := r.Source.(authorSource)
	if !ok || rev == "" {
		return nil
	}
	p, err := as.ManifestAuthor(rev)
	if err != nil {
		r.Log.WithError(err).Debug("no commit author for the originating identity")
		return nil
	}
	user := p.Email
	if user == "" {
		user = p.Name
	}
	if user == "" {
		return nil
	}
	return &osbwire.OriginatingIdentity{Username: user, Extra: map[string][]string{
		"osbgit.dev/git-author":   {strings.TrimSpace(p.Name + " <" + p.Email + ">")},
		"osbgit.dev/git-revision": {rev},
	}}
}

func (r *Reconciler) saveState(ctx context.Context) {
	store := r.stateStore()
	if store == nil {
		return
	}
	if err := store.SaveState(ctx, r.State); err != nil {
		r.Log.WithError(err).Warn("could not save pass state; the next pass will be a full one")
	}
}

// onlyStatusChanged reports whether the head moved only by commits touching
// .osbgit/ since the last reconciled revision, with nothing else due.
func (r *Reconciler) onlyStatusChanged(fr gitrepo.FetchResult, now time.Time) (bool, string) {
	st := r.State
	if !r.nothingDue(now) {
		return false, ""
	}
	if fr.Head == st.ObservedHead {
		return true, "head " + short(fr.Head) + " already reconciled; nothing due"
	}
	if r.movedBeyondRecords(st.ObservedHead, fr.Head) || r.recordsDiverge(fr) {
		return false, ""
	}
	return true, "only .osbgit/ changed since " + short(st.ObservedHead)
}

// nothingDue reports whether the last pass left nothing to do at now but
// what a moved head brings: no operation in flight, no relist, drift check
// or confirmed broker move due.
func (r *Reconciler) nothingDue(now time.Time) bool {
	return r.State.quiet(r.State.ObservedHead, now) && len(r.Options.ConfirmedBrokerMoves) == 0
}

// movedBeyondRecords reports whether head differs from last by more than
// commits touching only .osbgit/ (osbgit's own); a comparison that cannot
// be made counts as moved.
func (r *Reconciler) movedBeyondRecords(last, head string) bool {
	if last == head {
		return false
	}
	if last == "" {
		return true
	}
	changed, err := r.Source.ChangedOutside(last, head, manifest.RecordDir+"/")
	return err != nil || changed
}

// brokerLookup adapts the broker manifests to the executor's lookup. A
// broker's client is looked up once per pass: BrokerClients.Client reads
// the broker's auth Secret, which every step would otherwise read again
// (2,000 Secret reads for 2,000 steps). Failures are not remembered, so a
// later step tries again.
func (r *Reconciler) brokerLookup(ctx context.Context, set *manifest.Set, gate notContacted) exec.BrokerLookup {
	var mu sync.Mutex
	clients := map[manifest.Ref]exec.BrokerClient{}
	return func(ref manifest.Ref) (exec.BrokerClient, error) {
		b := set.Broker(ref)
		if b == nil {
			return nil, fmt.Errorf("%s: %w: its manifest is gone", ref, errNoClient)
		}
		if why := gate[ref]; why != "" {
			return nil, fmt.Errorf("%s: %w: %s", ref, errNoClient, why)
		}
		mu.Lock()
		defer mu.Unlock()
		if c, ok := clients[ref]; ok {
			return c, nil
		}
		c, err := r.Clients.Client(ctx, b)
		if err != nil {
			return nil, err
		}
		clients[ref] = c
		return c, nil
	}
}

func brokerInUse(broker manifest.Ref, recs map[manifest.Ref]*manifest.StatusRecord, changed map[manifest.Ref]*manifest.StatusRecord) bool {
	for _, rec := range mergedStatus(recs, changed) {
		if rec.Broker == broker {
			return true
		}
	}
	return false
}

func mergedStatus(base, changed map[manifest.Ref]*manifest.StatusRecord) map[manifest.Ref]*manifest.StatusRecord {
	out := make(map[manifest.Ref]*manifest.StatusRecord, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range changed {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// countInFlight counts records that need a later pass (exec.NeedsLaterPass).
func countInFlight(recs map[manifest.Ref]*manifest.StatusRecord) int {
	n := 0
	for _, rec := range recs {
		if exec.NeedsLaterPass(rec) {
			n++
		}
	}
	return n
}

// dependentsDue counts the steps that waited for a resource acted on in this
// pass (a deprovision waiting for an async unbind, a bind for an async
// provision): once that operation ends they are due, so the next pass must
// not be skipped as "nothing due".
func dependentsDue(p *plan.Plan) int {
	acted := map[manifest.Ref]bool{}
	for _, s := range p.Steps {
		if s.Action != plan.None {
			acted[s.Ref] = true
		}
	}
	n := 0
	for _, s := range p.Steps {
		for _, w := range s.WaitsFor {
			if acted[w] {
				n++
				break
			}
		}
	}
	return n
}

func nextRelist(set *manifest.Set, cached, changed map[manifest.Ref]*manifest.CatalogRecord, st *PassState) time.Time {
	var next time.Time
	for _, b := range set.Brokers() {
		ref := b.GetRef()
		rec := cached[ref]
		if c, ok := changed[ref]; ok && c != nil {
			rec = c
		}
		t := NextRelist(b, rec, st.lastRelist(ref))
		if t.IsZero() {
			continue
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next
}

// journalChange is the write-ahead commit's one file: the journal holding
// writeAhead's records and those of base's journal that writeAhead does
// not replace (a journal a pass finds is still the only copy of them). It
// also returns the journal's entries (manifest.MarshalJournal).
func journalChange(root manifest.RecordRoot, base *manifest.Records, writeAhead map[manifest.Ref]*manifest.StatusRecord) (map[string][]byte, map[manifest.Ref][]byte, error) {
	recs := make([]*manifest.StatusRecord, 0, len(writeAhead)+len(base.Journaled))
	for _, rec := range writeAhead {
		recs = append(recs, rec)
	}
	for ref := range base.Journaled {
		if _, replaced := writeAhead[ref]; !replaced {
			recs = append(recs, base.Status[ref])
		}
	}
	data, entries, err := manifest.MarshalJournal(recs)
	if err != nil {
		return nil, nil, err
	}
	return map[string][]byte{root.JournalPath(): data}, entries, nil
}

// recordChanges turns changed records into a ChangeSet's files: only records
// whose bytes differ from what is in Git are included, so an unchanged pass
// writes nothing. statusChanged says the status records are known to differ
// from base's (the executor's Result.Records): they are not compared again,
// and this is a status commit, which also writes every record of base's
// write-ahead journal (base.Journaled) to its file and removes the journal.
// rendered holds the RecordJSON of status records the caller has already
// encoded (the executor's Result.RecordJSON): those are not encoded again.
// Records are compared and rendered on all cores (a cold converge renders
// thousands). A record whose ref has no record path (a name validation
// refuses) is left out with a warning, so it can neither land outside its
// own directory nor fail the commit of the others. Paths are under root,
// this deployment's records directory.
func recordChanges(log logrus.FieldLogger, root manifest.RecordRoot, base *manifest.Records, status map[manifest.Ref]*manifest.StatusRecord, catalogs map[manifest.Ref]*manifest.CatalogRecord, statusChanged bool, rendered map[manifest.Ref][]byte) (map[string][]byte, error) {
	type change struct {
		path           string
		oldRec, newRec manifest.Record
		// json is newRec's RecordJSON when the caller has it (nil: encode).
		json []byte
		// compare: oldRec is to be compared with newRec.
		compare bool
		// data is the file's new content; nil with remove set deletes it.
		data   []byte
		remove bool
		err    error
	}
	changes := make([]change, 0, len(status)+len(catalogs))
	// add keeps a nil record as a nil interface (a record to delete, or
	// none in Git yet).
	add := func(path string, oldRec manifest.Record, hadOld bool, newRec manifest.Record, hasNew, compare bool, json []byte) {
		c := change{path: path, compare: compare, json: json}
		if hadOld {
			c.oldRec = oldRec
		}
		if hasNew {
			c.newRec = newRec
		}
		changes = append(changes, c)
	}
	for ref, rec := range status {
		p, err := root.StatusPath(ref)
		if err != nil {
			log.WithError(err).Warn("status record not written")
			continue
		}
		old, ok := base.Status[ref]
		add(p, old, ok, rec, rec != nil, !statusChanged, rendered[ref])
	}
	if statusChanged {
		for ref := range base.Journaled {
			if _, ok := status[ref]; ok {
				continue
			}
			if p, err := root.StatusPath(ref); err == nil {
				add(p, nil, false, base.Status[ref], true, false, nil)
			}
		}
	}
	for ref, rec := range catalogs {
		p, err := root.CatalogPath(ref)
		if err != nil {
			log.WithError(err).Warn("catalog record not written")
			continue
		}
		old, ok := base.Catalogs[ref]
		add(p, old, ok, rec, rec != nil, true, nil)
	}
	parallel.For(len(changes), func(i int) {
		c := &changes[i]
		if c.newRec == nil {
			c.remove = c.oldRec != nil
			return
		}
		nj := c.json
		if nj == nil {
			var err error
			if nj, err = manifest.RecordJSON(c.newRec); err != nil {
				c.err = err
				return
			}
		}
		if c.oldRec != nil && c.compare {
			// Equal JSON renders to equal files; comparing it skips the
			// YAML rendering of the records that did not change.
			if oj, err := manifest.RecordJSON(c.oldRec); err == nil && bytes.Equal(oj, nj) {
				return
			}
		}
		c.data, c.err = manifest.RenderRecord(nj)
	})
	files := map[string][]byte{}
	for _, c := range changes {
		switch {
		case c.err != nil:
			return nil, fmt.Errorf("record %s: %w", c.path, c.err)
		case c.remove:
			files[c.path] = nil
		case c.data != nil:
			files[c.path] = c.data
		}
	}
	if statusChanged && base.Journaled != nil {
		files[root.JournalPath()] = nil
	}
	return files, nil
}

// commitMessage renders the status commit message from the configured
// template; the message always ends with the [skip ci] trailer.
func commitMessage(tmpl string, res *exec.Result) (string, error) {
	t, err := template.New("commit").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("commitMessageTemplate: %w", err)
	}
	var buf bytes.Buffer
	data := struct {
		Summary string
		Counts  exec.Counts
	}{Summary: summary(res), Counts: res.Counts}
	if err := t.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("commitMessageTemplate: %w", err)
	}
	return gitrepo.EnsureSkipCI(buf.String()), nil
}

func summary(res *exec.Result) string {
	if res == nil {
		return "records updated"
	}
	c := res.Counts
	parts := []string{}
	for _, p := range []struct {
		n    int
		word string
	}{{c.Created, "created"}, {c.Updated, "updated"}, {c.Deleted, "deleted"}, {c.InProgress, "in progress"}, {c.Failed, "failed"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.word))
		}
	}
	if len(parts) == 0 {
		return "records updated"
	}
	return strings.Join(parts, ", ")
}

// BrokerCatalog is one broker's catalog as `osbgit catalog` shows it.
type BrokerCatalog struct {
	Broker manifest.Ref
	// Record is the catalog (fresh or cached); nil when none is known.
	Record *manifest.CatalogRecord
	// Fetched is true when it was fetched live in this call.
	Fetched bool
	// Err is the fetch error, if any (the cached record is still given).
	Err error
}

// Catalogs returns each broker's catalog at the branch head: the cached
// record, fetched live when due or when refresh is set. Nothing is written.
func (r *Reconciler) Catalogs(ctx context.Context, refresh bool) ([]BrokerCatalog, error) {
	if err := r.init(ctx); err != nil {
		return nil, err
	}
	fr, err := r.Source.Fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	snap, err := LoadRevision(r.Source, fr.Head, r.Options.Path, r.Cache, r.assembly()...)
	if err != nil {
		return nil, err
	}
	records, err := r.loadRecords(fr.StatusHead)
	if err != nil {
		return nil, err
	}
	gate, _, err := r.brokerGate(fr, snap.Set, false)
	if err != nil {
		return nil, err
	}
	outs := refreshCatalogs(ctx, snap.Set.Brokers(), records.Catalogs, r.State.relistTimes(), nil, r.Now(), refresh, false, gate,
		func(ctx context.Context, b manifest.Broker) (catalogGetter, error) { return r.Clients.Client(ctx, b) })
	res := make([]BrokerCatalog, 0, len(outs))
	for _, o := range outs {
		err := o.err
		if err == nil && o.notContacted != "" && o.reason != "" {
			err = errors.New(o.notContacted)
		}
		res = append(res, BrokerCatalog{Broker: o.broker, Record: o.record, Fetched: o.fetched, Err: err})
	}
	return res, nil
}
