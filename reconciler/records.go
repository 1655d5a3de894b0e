package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/reconciler/integrity"
)

// RecordKeys signs osbgit's records commits and remembers the highest
// sequence it signed (integrity.Keeper, in the secret store).
type RecordKeys interface {
	Key(ctx context.Context) ([]byte, error)
	Highest(ctx context.Context, branch string) (uint64, error)
	Raise(ctx context.Context, branch string, seq uint64) error
}

// recordsView says where a pass reads its records from and how it writes
// them. With a key, records are read from the records ref (osbgit's own
// signed commits), never from the status branch, whose .osbgit/ is only
// a copy for people: an edit, a deletion, a revert or a force-push there
// changes nothing osbgit does, and the next write puts osbgit's version
// back (diverged lists what it undoes).
type recordsView struct {
	// rev is the revision records are loaded from.
	rev string
	// sealed: writes go through the records ref, signed with key.
	sealed bool
	key    []byte
	// base and seq are the records commit writes build on and its seal's
	// sequence ("" and 0 before the first).
	base string
	seq  uint64
	// signed is the sequence of the last records commit signed.
	signed uint64
	// diverged are the status branch's .osbgit/ files that differ from
	// the records: the next write restores them.
	diverged []divergence
	// refused is set when the records cannot be trusted: the pass must
	// not call any broker.
	refused string
	// unverified says why the records could not be checked (no key):
	// diff and status read the branch's records and say so.
	unverified string
	// sealErr is set, with unverified, when a read found the records
	// ref's seal wrong for the key it has: diff cannot tell a laptop's
	// own key from a forgery and reads on; status reports it.
	sealErr error
}

// divergence is one file of the status branch's .osbgit/ that is not
// osbgit's: edited, added or deleted by someone else.
type divergence struct {
	path   string
	action gitrepo.ChangeAction
	commit string
	author gitrepo.Person
}

// change is what was done to the file: added, edited or deleted.
func (d divergence) change() string {
	return map[gitrepo.ChangeAction]string{gitrepo.Added: "added", gitrepo.Deleted: "deleted", gitrepo.Modified: "edited"}[d.action]
}

func (d divergence) String() string {
	s := fmt.Sprintf("%s %s outside osbgit", d.path, d.change())
	if d.commit != "" {
		s += fmt.Sprintf(" (commit %s by %s <%s>)", short(d.commit), d.author.Name, d.author.Email)
	}
	return s
}

// maxBlamed bounds the divergences a pass looks up the commit and author
// of, and lists one by one in its commit message: a commit that drops
// 10,000 files into .osbgit/ must not cost a history walk each, nor a
// 10,000-line message.
const maxBlamed = 50

// errRecordsKey wraps a failure to read or create the records key.
var errRecordsKey = errors.New("records key")

// viewRecords decides where this pass's records come from. write is set
// for sync (a missing key is then an error, not "unverified").
func (r *Reconciler) viewRecords(ctx context.Context, fr gitrepo.FetchResult, write bool) (recordsView, error) {
	v := recordsView{rev: fr.StatusHead}
	if r.Keys == nil {
		v.unverified = "no access to osbgit's records key"
		return v, nil
	}
	key, err := r.Keys.Key(ctx)
	if err != nil {
		if write {
			return v, fmt.Errorf("%w: %w", errRecordsKey, err)
		}
		v.unverified = "the records key could not be read: " + err.Error()
		return v, nil
	}
	branch := r.Source.StatusBranch()
	scope := r.recordsScope()
	highest, err := r.Keys.Highest(ctx, scope)
	if err != nil {
		if write {
			return v, fmt.Errorf("%w: %w", errRecordsKey, err)
		}
		v.unverified = "the records sequence could not be read: " + err.Error()
		return v, nil
	}
	v.key, v.sealed = key, true
	ref, dir := r.Source.RecordsRef(), r.Source.RecordsDir()
	branchTree, err := r.recordsTree(fr.StatusHead)
	if err != nil {
		return v, err
	}
	if wt, ok := r.Source.(interface{ IsWorkTree() bool }); ok && wt.IsWorkTree() && !write && fr.RecordsHead == "" {
		// A working copy's clone fetched only branches.
		v.sealed = false
		v.unverified = "this working copy has no " + ref + " (git fetch origin '+refs/osbgit/*:refs/osbgit/*' brings it)"
		return v, nil
	}
	if fr.RecordsHead == "" {
		if branchTree == gitrepo.NoRecordsTree && highest == 0 {
			// A new deployment: nothing to trust yet; the first write
			// starts the records ref.
			return v, nil
		}
		v.refused = fmt.Sprintf("the status branch %s has records in %s/ but osbgit's records ref %s is missing", branch, dir, ref)
		if highest > 0 {
			v.refused += fmt.Sprintf(" (osbgit had signed %d records commits: the ref was deleted)", highest)
		} else {
			v.refused += " (an osbgit from before records were signed wrote them)"
		}
		v.refused += "; review " + dir + "/ and run `osbgit trust` to adopt them"
		return v, nil
	}
	seal, err := r.sealOf(fr.RecordsHead, key, scope)
	if err != nil && !write {
		// diff with a key of its own (a laptop's store) cannot tell
		// another osbgit's signature from a forgery: sync can.
		v.sealed, v.sealErr = false, err
		v.unverified = "osbgit's records ref " + ref + " does not verify with this key (" + err.Error() + ")"
		return v, nil
	}
	if err != nil {
		commit, who, _ := r.Source.LastChange(fr.RecordsHead, dir)
		v.refused = fmt.Sprintf("osbgit's records ref %s points at %s, which osbgit did not sign (%v; last commit by %s <%s>): someone else pushed it; review %s/ and run `osbgit trust`",
			ref, short(commit), err, who.Name, who.Email, dir)
		return v, nil
	}
	if seal.Sequence < highest {
		v.refused = fmt.Sprintf("osbgit's records ref %s was moved back to records commit %d of %d (%s): someone pushed an older records commit; review %s/ and run `osbgit trust`",
			ref, seal.Sequence, highest, short(fr.RecordsHead), dir)
		return v, nil
	}
	if seal.Sequence > highest {
		// The last write's push went through but its sequence was not
		// recorded (a crash, or a lost race with another replica).
		if err := r.Keys.Raise(ctx, scope, seal.Sequence); err != nil {
			r.Log.WithError(err).Warn("could not record the records sequence")
		}
	}
	v.rev, v.base, v.seq = fr.RecordsHead, fr.RecordsHead, seal.Sequence
	if fr.StatusHead != "" && branchTree != seal.Tree {
		changes, err := r.Source.ChangedRecords(fr.RecordsHead, fr.StatusHead)
		if err != nil {
			return v, fmt.Errorf("compare the status branch's records with osbgit's: %w", err)
		}
		for i, c := range changes {
			d := divergence{path: c.Path, action: c.Action}
			if i < maxBlamed {
				d.commit, d.author, _ = r.Source.LastChange(fr.StatusHead, c.Path)
			}
			v.diverged = append(v.diverged, d)
		}
	}
	return v, nil
}

// recordsScope names whose records a seal covers: this repository's
// status branch (gitrepo.Identity: the same over https and ssh, with or
// without credentials) and, for a deployment with a cluster ID, that ID.
// A records commit copied from another repository, branch or cluster
// (signed with the same key) does not verify here; a repository moved to
// another host or path needs `osbgit trust` once.
func (r *Reconciler) recordsScope() string {
	return legacyScope(r.Source) + clusterScope(r.Source.ClusterID())
}

// legacyScope is the records scope of the status branch's deployment
// without a cluster ID.
func legacyScope(s Source) string { return gitrepo.Identity(s.URL()) + "#" + s.StatusBranch() }

// clusterScope is what a cluster ID adds to a records scope ("" for none,
// so the scope of a repository's only deployment is what it always was).
func clusterScope(id string) string {
	if id == "" {
		return ""
	}
	return "#cluster=" + id
}

// checkSeal checks a records commit's seal: signed with key, for this
// repository's status branch (scope), over the tree the commit holds.
func checkSeal(s integrity.Seal, key []byte, scope, tree string) error {
	switch {
	case !s.Valid(key):
		return errors.New("its signature does not verify")
	case s.Branch != scope:
		return fmt.Errorf("it was signed for %q", s.Branch)
	case s.Tree != tree:
		return errors.New("its tree is not the one signed")
	}
	return nil
}

// sealed returns the Sealed of a write in view v: the next records
// commit, signed with the next sequence, on v.base or on the commit
// another osbgit pushed meanwhile (checked first). After the push, note
// updates v.
func (r *Reconciler) sealed(ctx context.Context, v *recordsView) *gitrepo.Sealed {
	if !v.sealed {
		return nil
	}
	scope := r.recordsScope()
	return &gitrepo.Sealed{Base: v.base, Sign: func(base gitrepo.RecordsBase, tree string) (string, error) {
		seq := v.seq
		if base.Commit != v.base {
			s, err := integrity.ParseMessage(base.Message)
			if err == nil {
				err = checkSeal(s, v.key, scope, base.Tree)
			}
			if err != nil {
				return "", fmt.Errorf("the records ref moved to %s, which osbgit did not sign: %w", short(base.Commit), err)
			}
			seq = s.Sequence
		}
		s := integrity.Sign(v.key, scope, seq+1, tree)
		v.signed = seq + 1
		return fmt.Sprintf("osbgit: records %d\n\nosbgit's own copy of %s/ (see osbgit trust).\n\n%s", seq+1, r.Source.RecordsDir(), s.Trailer()), nil
	}}
}

// wrote records a sealed write's result in v (the next write builds on
// it). raise also stores its sequence as the highest: the status write
// does, the write-ahead one leaves it to the status write (or, after a
// crash between them, to the next pass, which raises what it finds), one
// secret-store write per pass instead of two.
func (r *Reconciler) wrote(ctx context.Context, v *recordsView, wr gitrepo.WriteResult, raise bool) {
	v.diverged = nil
	if !v.sealed || wr.RecordsCommit == "" || wr.RecordsCommit == v.base {
		return
	}
	v.base = wr.RecordsCommit
	v.seq = v.signed
	if !raise {
		return
	}
	if err := r.Keys.Raise(ctx, r.recordsScope(), v.seq); err != nil {
		r.Log.WithError(err).Warn("could not record the records sequence; a rollback of the records ref to this commit's predecessor would not be noticed")
	}
}

// withRestoreNote adds to a commit message the paragraph naming what the
// write undoes (the first maxBlamed files, then a count), before its
// [skip ci] trailer, and warns about each file in the log.
func (r *Reconciler) withRestoreNote(msg string, ds []divergence) string {
	if len(ds) == 0 {
		return msg
	}
	msg = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(msg, "\n"), gitrepo.SkipCITrailer), "\n")
	var b strings.Builder
	b.WriteString(msg + "\n\n")
	fmt.Fprintf(&b, "Restored %d file(s) of %s/ changed outside osbgit:\n", len(ds), r.Source.RecordsDir())
	for i, d := range ds {
		if i == maxBlamed {
			fmt.Fprintf(&b, "- and %d more\n", len(ds)-maxBlamed)
			break
		}
		b.WriteString("- " + d.String() + "\n")
	}
	for _, d := range ds {
		r.Log.WithFields(logrus.Fields{"file": d.path, "commit": short(d.commit), "author": d.author.Email}).
			Warn("record changed outside osbgit: osbgit's own version is used and restored")
	}
	return gitrepo.EnsureSkipCI(b.String())
}

// divergenceDiagnostics shows divergences in a plan (diff).
func divergenceDiagnostics(ds []divergence) manifest.Diagnostics {
	var out manifest.Diagnostics
	for _, d := range ds {
		out = append(out, manifest.Diagnostic{File: d.path, Severity: manifest.SeverityWarning,
			Message: strings.TrimPrefix(d.String(), d.path+" ") + ": osbgit uses its own version and restores it on the next sync"})
	}
	return out
}

// recordsDiverge reports whether the status branch's .osbgit/ is not
// osbgit's records (or cannot be checked cheaply): a commit that changed
// only .osbgit/ then still gets a pass, which restores them.
func (r *Reconciler) recordsDiverge(fr gitrepo.FetchResult) bool {
	if r.Keys == nil {
		return false
	}
	a, errA := r.recordsTree(fr.RecordsHead)
	b, errB := r.recordsTree(fr.StatusHead)
	return a != b || errA != nil || errB != nil
}

// recordsTree is the hash of this deployment's records tree in rev
// (gitrepo.Repo.RecordsTree): gitrepo.NoRecordsTree when it has none, or
// when rev is "" (no such branch).
func (r *Reconciler) recordsTree(rev string) (string, error) {
	return r.Source.RecordsTree(rev)
}

// TrustResult is what `osbgit trust` adopted.
type TrustResult struct {
	// Adopted are the .osbgit/ files whose status-branch content osbgit
	// now holds as its own (added, edited or deleted relative to its
	// records before).
	Adopted []gitrepo.Change
	// Commit is the new records commit ("" when nothing changed or
	// DryRun).
	Commit string
}

// Trust makes osbgit adopt the status branch's .osbgit/ files as its own
// records, after a person reviewed them: every file, or those under the
// given paths. It is the upgrade step for records written before they
// were signed, and the way back after a refusal (a records ref pushed by
// someone else, moved back or deleted). It calls no broker.
func (r *Reconciler) Trust(ctx context.Context, paths []string, dryRun bool) (*TrustResult, error) {
	if err := r.init(ctx); err != nil {
		return nil, err
	}
	if r.Keys == nil {
		return nil, errors.New("trust needs the secret store holding osbgit's records key")
	}
	key, err := r.Keys.Key(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRecordsKey, err)
	}
	branch, scope := r.Source.StatusBranch(), r.recordsScope()
	highest, err := r.Keys.Highest(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRecordsKey, err)
	}
	fr, err := r.Source.Fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	if fr.StatusHead == "" {
		return nil, fmt.Errorf("the status branch %s does not exist", branch)
	}
	v := recordsView{sealed: true, key: key, base: fr.RecordsHead, seq: highest}
	verified := fr.RecordsHead != "" && r.verifiable(key, scope, fr.RecordsHead, highest)
	if !verified && len(paths) > 0 {
		// Adopting some files would sign the rest of a records tree no
		// one reviewed.
		return nil, fmt.Errorf("osbgit's records ref %s is missing or does not verify: trust adopts all of %s/ then (run it without paths)", r.Source.RecordsRef(), r.Source.RecordsDir())
	}
	var changes []gitrepo.Change
	if fr.RecordsHead == "" {
		files, err := r.Source.RecordFiles(fr.StatusHead)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			changes = append(changes, gitrepo.Change{Path: f.Path, Action: gitrepo.Added, ToBlob: f.Blob})
		}
	} else {
		if s, err := r.sealOf(fr.RecordsHead, key, scope); err == nil && s.Sequence > v.seq {
			v.seq = s.Sequence
		}
		if changes, err = r.Source.ChangedRecords(fr.RecordsHead, fr.StatusHead); err != nil {
			return nil, err
		}
	}
	res := &TrustResult{}
	files := map[string][]byte{}
	for _, c := range changes {
		if !underAny(c.Path, paths) {
			continue
		}
		res.Adopted = append(res.Adopted, c)
		if c.Action == gitrepo.Deleted {
			files[c.Path] = nil
			continue
		}
		data, err := r.Source.ReadBlob(c.ToBlob)
		if err != nil {
			return nil, err
		}
		files[c.Path] = data
	}
	// With nothing to adopt, a records ref osbgit cannot verify (or none)
	// is still re-signed: that is what trust is for.
	if dryRun || (len(files) == 0 && verified) {
		return res, nil
	}
	msg := gitrepo.EnsureSkipCI(fmt.Sprintf("osbgit trust: adopt %d file(s) of %s/ after review", len(res.Adopted), r.Source.RecordsDir()))
	sealed := r.sealed(ctx, &v)
	sealed.Resign = true
	wr, err := r.Source.WriteStatus(ctx, gitrepo.ChangeSet{Files: files, Message: msg, Sealed: sealed})
	if err != nil {
		return nil, fmt.Errorf("write records: %w", err)
	}
	r.wrote(ctx, &v, wr, true)
	res.Commit = wr.RecordsCommit
	return res, nil
}

// verifiable reports whether records commit rev carries a valid seal not
// older than highest.
func (r *Reconciler) verifiable(key []byte, scope, rev string, highest uint64) bool {
	seal, err := r.sealOf(rev, key, scope)
	return err == nil && seal.Sequence >= highest
}

// sealOf reads and checks the seal of records commit rev: signed with key,
// for scope, over the tree rev holds. The error says why it is not.
func (r *Reconciler) sealOf(rev string, key []byte, scope string) (integrity.Seal, error) {
	tree, err := r.recordsTree(rev)
	if err != nil {
		return integrity.Seal{}, err
	}
	return r.sealOfTree(rev, key, scope, tree)
}

// sealOfTree is sealOf for a records commit holding records tree tree.
func (r *Reconciler) sealOfTree(rev string, key []byte, scope, tree string) (integrity.Seal, error) {
	msg, err := r.Source.CommitMessage(rev)
	if err != nil {
		return integrity.Seal{}, err
	}
	seal, err := integrity.ParseMessage(msg)
	if err == nil {
		err = checkSeal(seal, key, scope, tree)
	}
	return seal, err
}

// underAny reports whether p is one of paths or under one (all when
// paths is empty).
func underAny(p string, paths []string) bool {
	if len(paths) == 0 {
		return true
	}
	for _, q := range paths {
		q = strings.TrimSuffix(q, "/")
		if p == q || strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}
