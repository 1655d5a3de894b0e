package reconciler

import (
	"context"
	"fmt"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/reconciler/exec"
	"github.com/osbgit/osbgit/reconciler/forge"
)

// A result on every reconciled commit: after a pass that reconciled a new
// manifest revision, that commit gets a git note under gitrepo.NotesRef
// (the counts, the failed resources, the status commit), pushed with the
// status commit, and, with CommitStatuses, a forge commit status: pending
// while the pass acts, then success or failure.

// CommitStatuses sets a forge's commit status on a reconciled revision
// (forge.Client). A failure is logged and never fails the pass.
type CommitStatuses interface {
	SetStatus(ctx context.Context, commit string, state forge.State, description string) error
}

// RevisionTrailer is the trailer of a status commit message naming the
// manifest revision its pass reconciled.
const RevisionTrailer = "Reconciled-Revision"

// maxNoteFailures bounds the failed resources a note lists one by one.
const maxNoteFailures = 50

// maxNoteLine bounds a failed resource's message in a note.
const maxNoteLine = 200

// newRevision returns head when this pass reconciles a manifest revision
// no earlier pass did (the first pass, or a head that moved by more than
// osbgit's own .osbgit/ commits since the last reconciled one), else "".
// Call it before the pass records its own head.
func (r *Reconciler) newRevision(head string) string {
	if r.movedBeyondRecords(r.State.ObservedHead, head) {
		return head
	}
	return ""
}

// resultStarted sets rev pending on the forge, as the pass starts acting on
// it ("" : not a new revision).
func (r *Reconciler) resultStarted(ctx context.Context, rev string) {
	if rev == "" || r.CommitStatuses == nil {
		return
	}
	r.setCommitStatus(ctx, rev, forge.Pending, "osbgit is reconciling this commit")
}

// resultNote is the note a pass leaves on rev ("": none).
func (r *Reconciler) resultNote(rev, clusterID string, res *SyncResult) *gitrepo.Note {
	if rev == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "osbgit (cluster %s) reconciled %s\n", clusterID, rev)
	fmt.Fprintf(&b, "Result: %s\n", r.resultLine(res))
	failed := r.failures(res)
	for i, f := range failed {
		if i == 0 {
			b.WriteString("Failed:\n")
		}
		if i == maxNoteFailures {
			fmt.Fprintf(&b, "- and %d more\n", len(failed)-maxNoteFailures)
			break
		}
		b.WriteString("- " + f + "\n")
	}
	body := b.String()
	return &gitrepo.Note{Commit: rev, Text: func(status string) string {
		if status == "" {
			status = "none (no record changed)"
		}
		return body + "Status commit: " + status + "\n"
	}}
}

// resultLine is the outcome of a pass in one line: the counts as the sync
// summary gives them, or why the plan was refused.
func (r *Reconciler) resultLine(res *SyncResult) string {
	if res.Refused != "" {
		return "refused: " + oneLine(r.Redact.Scrub(res.Refused), maxNoteLine)
	}
	var c exec.Counts
	if res.Exec != nil {
		c = res.Exec.Counts
	}
	state := "success"
	if res.Failed() {
		state = "failure"
	}
	return state + ": " + c.String()
}

// failures lists the resources that failed in res, one line each, scrubbed.
func (r *Reconciler) failures(res *SyncResult) []string {
	if res.Exec == nil {
		return nil
	}
	var out []string
	for _, o := range res.Exec.Outcomes {
		if o.Status != exec.StatusFailed {
			continue
		}
		msg := o.Summary
		if o.Err != nil {
			msg = o.Err.Error()
		}
		out = append(out, o.Ref.String()+": "+oneLine(r.Redact.Scrub(msg), maxNoteLine))
	}
	return out
}

// resultDone ends a pass that reconciled rev ("": none): it writes the
// note when the status write did not carry it (wr nil: no status write)
// and sets the forge status. Neither can fail the pass.
func (r *Reconciler) resultDone(ctx context.Context, rev string, note *gitrepo.Note, wr *gitrepo.WriteResult, res *SyncResult) {
	if rev == "" {
		return
	}
	log := r.Log.WithField("revision", short(rev))
	var err error
	noteCommit := ""
	if wr != nil {
		noteCommit, err = wr.NoteCommit, wr.NoteErr
	} else {
		noteCommit, err = r.Source.WriteNote(ctx, *note)
	}
	if err != nil {
		log.WithError(err).Warn("could not add the result note on the reconciled commit")
	} else {
		log.WithField("notes", short(noteCommit)).Info("result noted on the reconciled commit (" + gitrepo.NotesRef + ")")
	}
	if r.CommitStatuses == nil {
		return
	}
	state := forge.Success
	if res.Refused != "" || res.Failed() {
		state = forge.Failure
	}
	r.setCommitStatus(ctx, rev, state, r.resultLine(res))
}

// setCommitStatus sets a forge status, logging a failure.
func (r *Reconciler) setCommitStatus(ctx context.Context, rev string, state forge.State, description string) {
	if err := r.CommitStatuses.SetStatus(ctx, rev, state, description); err != nil {
		r.Log.WithFields(logrus.Fields{"revision": short(rev), "state": string(state)}).WithError(err).Warn("could not set the commit status on the forge")
	}
}

// withRevisionTrailer ends a status commit message with the trailer naming
// the reconciled revision, as its last paragraph (after "[skip ci]"), so
// `git log --format='%(trailers)'` finds it.
func withRevisionTrailer(msg, rev string) string {
	return strings.TrimRight(msg, "\n") + "\n\n" + RevisionTrailer + ": " + rev + "\n"
}

// oneLine folds s onto one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
