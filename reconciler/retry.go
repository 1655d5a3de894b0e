package reconciler

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
)

// ErrNoRecord is returned by Retry for a resource osbgit has no record of.
var ErrNoRecord = errors.New("no record")

// Retry makes the next pass repeat the failed call on ref, which a
// verdict from the broker (a 400, a 409, state failed) otherwise leaves
// until the manifest changes: the way to retry a failed deprovision or
// unbind, whose manifest is gone. It marks the record (Retry, due now) in
// a records commit and clears the pass state's observed head (so give it
// the state flags of the deployment); it calls no broker.
func (r *Reconciler) Retry(ctx context.Context, ref manifest.Ref) error {
	if err := r.init(ctx); err != nil {
		return err
	}
	fr, err := r.Source.Fetch(ctx)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	view, err := r.viewRecords(ctx, fr, true)
	if err != nil {
		return err
	}
	if view.refused != "" {
		return fmt.Errorf("records refused: %s", view.refused)
	}
	records, err := r.loadRecords(view.rev)
	if err != nil {
		return err
	}
	rec := records.Status[ref]
	if rec == nil {
		return fmt.Errorf("%s: %w", ref, ErrNoRecord)
	}
	if rec.Phase != manifest.PhaseFailed {
		return fmt.Errorf("%s is %s, not Failed: nothing to retry", ref, rec.Phase)
	}
	now := metav1.NewTime(r.Now())
	next := *rec
	next.Retry = &manifest.Retry{Since: now, At: now}
	files, err := recordChanges(r.Log, r.recordRoot(), records, map[manifest.Ref]*manifest.StatusRecord{ref: &next}, nil, true, nil)
	if err != nil {
		return err
	}
	msg := gitrepo.EnsureSkipCI(fmt.Sprintf("osbgit retry: %s is retried by the next pass", ref))
	wr, err := r.Source.WriteStatus(ctx, gitrepo.ChangeSet{Files: files, Message: r.withRestoreNote(msg, view.diverged), Sealed: r.sealed(ctx, &view)})
	if err != nil {
		return fmt.Errorf("write the record: %w", err)
	}
	r.wrote(ctx, &view, wr, true)
	// The commit touches only .osbgit/, which a pass with state skips as
	// nothing to do: the next pass must be a full one.
	r.State.ObservedHead = ""
	r.saveState(ctx)
	return nil
}
