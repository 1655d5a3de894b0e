package reconciler

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

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

// appsInstance is the ref of ServiceInstance apps/name.
func appsInstance(name string) manifest.Ref {
	return manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: name}
}

// appsInstanceRecord is a Pending record of apps/name with ExternalID id.
func appsInstanceRecord(name, id string) *manifest.StatusRecord {
	r := manifest.NewStatusRecord(appsInstance(name))
	r.Phase, r.ExternalID = manifest.PhasePending, id
	return r
}

// TestJournalChangeKeepsUnfinishedEntries: a write-ahead push in a pass
// that found a journal keeps the entries it does not replace (the journal
// is their only copy until a status commit) and takes its own for the
// resources it reserves again.
func TestJournalChangeKeepsUnfinishedEntries(t *testing.T) {
	ref, rec := appsInstance, appsInstanceRecord
	base := &manifest.Records{
		Status:    map[manifest.Ref]*manifest.StatusRecord{ref("a"): rec("a", "old-a"), ref("c"): rec("c", "old-c"), ref("d"): rec("d", "file-d")},
		Journaled: map[manifest.Ref]bool{ref("a"): true, ref("c"): true},
	}
	writeAhead := map[manifest.Ref]*manifest.StatusRecord{ref("a"): rec("a", "new-a"), ref("b"): rec("b", "new-b")}
	root := manifest.LegacyRecordRoot
	files, lines, err := journalChange(root, base, writeAhead)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("files %v, want only the journal", files)
	}
	for ref, line := range lines {
		if !strings.Contains(string(files[root.JournalPath()]), string(line)) {
			t.Errorf("entry of %s is not a line of the journal: %s", ref, line)
		}
	}
	entries, err := root.DecodeJournal(root.JournalPath(), files[root.JournalPath()])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Ref.Name] = e.ExternalID
	}
	want := map[string]string{"a": "new-a", "b": "new-b", "c": "old-c"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("journal (-want +got):\n%s", d)
	}
}

// TestStatusCommitEndsTheJournal: the status commit writes each journaled
// record (changed or not), deletes the file of one deleted in the pass,
// and removes the journal; a pass without a journal leaves it alone.
func TestStatusCommitEndsTheJournal(t *testing.T) {
	ref, rec := appsInstance, appsInstanceRecord
	root := manifest.LegacyRecordRoot
	path := func(name string) string {
		p, err := root.StatusPath(ref(name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := &manifest.Records{
		Status:    map[manifest.Ref]*manifest.StatusRecord{ref("a"): rec("a", "id-a"), ref("b"): rec("b", "id-b"), ref("c"): rec("c", "id-c")},
		Journaled: map[manifest.Ref]bool{ref("a"): true, ref("b"): true, ref("c"): true},
	}
	changed := map[manifest.Ref]*manifest.StatusRecord{ref("a"): rec("a", "id-a"), ref("c"): nil}
	changed[ref("a")].Phase = manifest.PhaseReady
	files, err := recordChanges(logrus.New(), root, base, changed, nil, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for p, data := range files {
		if data == nil {
			p = "delete " + p
		}
		got = append(got, p)
	}
	sort.Strings(got)
	want := []string{path("a"), path("b"), "delete " + root.JournalPath(), "delete " + path("c")}
	sort.Strings(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("status commit files (-want +got):\n%s", d)
	}
	if b, err := manifest.UnmarshalStatusRecord(path("b"), files[path("b")]); err != nil || b.ExternalID != "id-b" {
		t.Errorf("b's file: %+v, %v; want the journaled record", b, err)
	}

	base.Journaled = nil
	files, err = recordChanges(logrus.New(), root, base, changed, nil, true, nil)
	if _, ok := files[root.JournalPath()]; ok || err != nil {
		t.Errorf("without a journal the status commit touches it: %v, %v", files, err)
	}
}

// TestClusterJournal: a deployment with a cluster ID keeps its journal in
// its own records root. Another deployment's passes neither read nor
// remove it, and the owner's next pass finishes with the reserved IDs.
func TestClusterJournal(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dbPerDeployment("eu", "us"))
	eu := manifest.RecordRoot(gitrepo.RecordsDir("eu"))
	crash := &crashTransport{allowed: 1, base: http.DefaultTransport} // the catalog, then the crash
	f.transport = crash
	r := f.reconcilerAs("eu", Options{Path: "eu"})
	r.Source = crashingSource{Source: r.Source, crash: crash}
	if _, err := r.Sync(context.Background()); err == nil || !crash.isCrashed() {
		t.Fatalf("eu's pass before the crash: %v", err)
	}
	f.transport = nil
	journal := f.repo.Show(eu.JournalPath())
	entries, err := eu.DecodeJournal(eu.JournalPath(), []byte(journal))
	if err != nil || len(entries) != 1 {
		t.Fatalf("eu's journal at %s: %v, %v", eu.JournalPath(), entries, err)
	}
	if got := f.repo.Show(manifest.LegacyRecordRoot.JournalPath()); got != "" {
		t.Fatalf("a journal at the legacy root too:\n%s", got)
	}

	f.sync(f.reconcilerAs("us", Options{Path: "us"}))
	if got := f.repo.Show(eu.JournalPath()); got != journal {
		t.Fatalf("us's pass changed eu's journal:\n%s", got)
	}

	f.sync(f.reconcilerAs("eu", Options{Path: "eu"}))
	if got := f.repo.Show(eu.JournalPath()); got != "" {
		t.Fatalf("eu's journal still there after its status commit:\n%s", got)
	}
	rec := instanceRecordIn(t, f, eu, "db")
	if rec == nil || rec.ExternalID != entries[0].ExternalID || rec.Phase != manifest.PhaseReady {
		t.Fatalf("eu's db: %+v, want Ready with the reserved ID %s", rec, entries[0].ExternalID)
	}
	if ins, _ := brokerState(f.broker); len(ins) != 2 {
		t.Errorf("broker holds instances %v, want eu's and us's db", ins)
	}
}
