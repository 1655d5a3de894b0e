package reconciler

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
)

// TestWriteAheadJournal follows the journal through a crash: the pass
// that dies before its first call leaves its reserved IDs in the journal
// and no record file; the next pass creates the resources with those IDs
// (no new ones), and its status commit writes every journaled record to
// its own file — also that of a binding whose bind waits for its async
// instance, which the executor did not touch — and removes the journal.
func TestWriteAheadJournal(t *testing.T) {
	t.Parallel()
	want := desiredState{
		instances: map[string]desiredInstance{"a": {"small", 1}, "b": {"async", 1}},
		bindings:  map[string]string{"a-bind": "a", "b-bind": "b"},
	}
	f := newFixture(t, want.files)
	journalPath := manifest.LegacyRecordRoot.JournalPath()

	crash := &crashTransport{allowed: 1, base: http.DefaultTransport} // the catalog, then the crash
	f.transport = crash
	r := f.reconciler(Options{InlinePoll: 0})
	r.Source = crashingSource{Source: r.Source, crash: crash}
	if _, err := r.Sync(context.Background()); err == nil || !crash.isCrashed() {
		t.Fatalf("pass before the crash: %v", err)
	}
	f.transport = nil
	if files := f.repo.Files(manifest.LegacyRecordRoot.StatusDir()); len(files) != 0 {
		t.Fatalf("record files after the write-ahead push: %v, want none (the journal holds them)", files)
	}
	entries, err := manifest.LegacyRecordRoot.DecodeJournal(journalPath, []byte(f.repo.Show(journalPath)))
	if err != nil {
		t.Fatal(err)
	}
	reserved := map[manifest.Ref]string{}
	for _, rec := range entries {
		if rec.Phase != manifest.PhasePending || rec.ExternalID == "" {
			t.Errorf("journal entry %s: phase %s, ID %q", rec.Ref, rec.Phase, rec.ExternalID)
		}
		reserved[rec.Ref] = rec.ExternalID
	}
	if len(reserved) != 4 {
		t.Fatalf("journal holds %d records, want 4", len(reserved))
	}
	if n := len(f.broker.MutatingCalls()); n != 0 { // the catalog fetch mutates nothing
		t.Fatalf("%d broker calls before the crash point", n)
	}

	f.sync(f.reconciler(Options{InlinePoll: 0}))
	if got := f.repo.Show(journalPath); got != "" {
		t.Fatalf("journal still there after the status commit:\n%s", got)
	}
	for ref, id := range reserved {
		rec := recordIn(t, f, ref)
		if rec == nil || rec.ExternalID != id {
			t.Fatalf("record file of %s: %+v, want ID %s from the journal", ref, rec, id)
		}
	}
	bb := recordOf(t, f, manifest.KindServiceBinding, "b-bind")
	if bb.Phase != manifest.PhasePending {
		t.Errorf("b-bind (waits for async b): phase %s, want Pending as journaled", bb.Phase)
	}

	f.convergeAfterFaults(t, want, 10)
	ins, bns := brokerState(f.broker)
	for ref, id := range reserved {
		held := ins
		if ref.Kind == manifest.KindServiceBinding {
			held = bns
		}
		if _, ok := held[id]; !ok {
			t.Errorf("%s: the broker does not hold the reserved ID %s (it holds %v %v)", ref, id, ins, bns)
		}
	}
	if len(ins) != 2 || len(bns) != 2 {
		t.Errorf("broker holds instances %v and bindings %v, want 2 and 2", ins, bns)
	}
}

// statusPushFails is a Source whose status pushes all fail.
type statusPushFails struct{ Source }

func (s statusPushFails) WriteStatus(context.Context, gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	return gitrepo.WriteResult{}, errors.New("status push refused")
}

// TestScopedPassAfterAnUnfinishedPass: a pass that reserved an ID and made
// its call, but whose status commit did not land, leaves the journal; the
// next process finds the scope index of the pass before, whose record
// files do not show the reservation. It must load everything (the journal
// with them) and finish the binding with its reserved ID, not bind it
// again with a new one.
func TestScopedPassAfterAnUnfinishedPass(t *testing.T) {
	t.Parallel()
	f, opts := newScopeFixture(t, t.TempDir())
	f.converge(opts)
	f.repo.Push("add c-bind", map[string]string{"apps/c-bind.yaml": bindingYAML("c-bind", "c")}, nil)
	r := f.reconciler(opts)
	r.Source = statusPushFails{r.Source}
	if _, err := r.Sync(context.Background()); err == nil {
		t.Fatal("the pass whose status push fails succeeded")
	}
	journalPath := manifest.LegacyRecordRoot.JournalPath()
	entries, err := manifest.LegacyRecordRoot.DecodeJournal(journalPath, []byte(f.repo.Show(journalPath)))
	if err != nil || len(entries) != 1 {
		t.Fatalf("journal: %v, %v; want c-bind's record", entries, err)
	}
	reserved := entries[0].ExternalID
	if _, ok := f.broker.Binding(reserved); !ok {
		t.Fatalf("the broker does not hold %s, bound before the status push", reserved)
	}

	res := f.sync(f.reconciler(opts))
	if n := len(res.Plan.Steps); n != scopeResources+1 {
		t.Errorf("the pass after it planned %d resources, want all %d (a full load)", n, scopeResources+1)
	}
	_, bindings := brokerState(f.broker)
	if len(bindings) != 4 {
		t.Errorf("broker holds bindings %v, want 4 (c-bind bound once)", bindings)
	}
	if rec := recordOf(t, f, manifest.KindServiceBinding, "c-bind"); rec == nil || rec.ExternalID != reserved || rec.Phase != manifest.PhaseReady {
		t.Errorf("c-bind's record: %+v, want Ready with ID %s", rec, reserved)
	}
	if got := f.repo.Show(journalPath); got != "" {
		t.Errorf("journal still there:\n%s", got)
	}
}
