package manifest

import (
	"errors"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/osbgit/osbgit/manifest/goldentest"
)

// journalRecords are two write-ahead records: a binding's and an
// instance's, given out of order.
func journalRecords() []*StatusRecord {
	b := NewStatusRecord(Ref{Kind: KindServiceBinding, Namespace: "default", Name: "db-bind"})
	b.Phase = PhasePending
	b.ExternalID = "a0e7f2f4-5a61-4d0e-8a42-6a0f1f6f7a11"
	b.InstanceName, b.InstanceExternalID = "db", "3f1c9a2e-0a8b-4b47-9d52-1d2c1b7c2a10"
	b.Provisioned = true
	b.LastOperation = &LastOperation{Type: OperationBind, ServiceID: "svc", PlanID: "plan"}
	b.Conditions = SetCondition(nil, Condition{Type: ConditionReady, Status: ConditionFalse, Reason: "Pending", Message: "ID reserved"}, t0)
	return []*StatusRecord{b, sampleStatus()}
}

// TestJournalGolden pins the journal file: a header line, then one line
// per record sorted by ref, each the record's RecordJSON, which
// MarshalJournal also returns by ref.
func TestJournalGolden(t *testing.T) {
	recs := journalRecords()
	got, entries, err := MarshalJournal(recs)
	if err != nil {
		t.Fatal(err)
	}
	goldentest.Compare(t, "testdata/records/journal/writeahead.json", got)
	if n := strings.Count(string(got), "\n"); n != 4 {
		t.Errorf("%d lines, want a header, two records and the end", n)
	}
	if len(entries) != len(recs) {
		t.Errorf("%d entries for %d records", len(entries), len(recs))
	}
	for _, rec := range recs {
		want, err := RecordJSON(rec)
		if err != nil {
			t.Fatal(err)
		}
		if e := entries[rec.Ref]; string(e) != string(want) || !strings.Contains(string(got), "\n  "+string(e)) {
			t.Errorf("entry of %s:\n%s\nwant its RecordJSON, a line of the file:\n%s", rec.Ref, e, want)
		}
	}
}

func TestJournalRoundTrip(t *testing.T) {
	recs := journalRecords()
	data, _, err := MarshalJournal(recs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LegacyRecordRoot.DecodeJournal("j", data)
	if err != nil {
		t.Fatal(err)
	}
	want := []*StatusRecord{recs[1], recs[0]} // sorted by ref
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decoded journal differs (-want +got):\n%s", d)
	}
	empty, _, err := MarshalJournal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := LegacyRecordRoot.DecodeJournal("j", empty); err != nil || len(got) != 0 {
		t.Errorf("empty journal: %v, %v", got, err)
	}
}

// TestDecodeJournalErrors: a journal osbgit did not write as it is gets an
// error naming the file, the line and what is wrong, never a guess.
func TestDecodeJournalErrors(t *testing.T) {
	good, _, err := MarshalJournal(journalRecords())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(good), "\n")
	header, instance, binding := lines[0], lines[1], lines[2]
	journal := func(entries ...string) []byte {
		return []byte(header + "\n" + strings.Join(entries, "\n") + "\n]}\n")
	}
	dup := strings.TrimSuffix(instance, ",")
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not JSON", []byte("records: []\n"), "j:1: invalid character"},
		{"unknown header field", []byte(`{"apiVersion": "osbgit.dev/v1alpha1", "kind": "WriteAheadJournal", "formatVersion": 1, "records": [], "extra": 1}`), `j:1: json: unknown field "extra"`},
		{"wrong kind", []byte(`{"apiVersion": "osbgit.dev/v1alpha1", "kind": "StatusRecord", "formatVersion": 1, "records": []}`), "j:1: kind: want WriteAheadJournal"},
		{"wrong apiVersion", []byte(`{"apiVersion": "v1", "kind": "WriteAheadJournal", "formatVersion": 1, "records": []}`), "j:1: apiVersion"},
		{"newer format", []byte(`{"apiVersion": "osbgit.dev/v1alpha1", "kind": "WriteAheadJournal", "formatVersion": 2, "records": []}`), "j:1: formatVersion: want 1"},
		{"two documents", append(append([]byte{}, good...), good...), "j:5: want one JSON document"},
		{"unknown record field", journal(instance, strings.Replace(binding, `"phase"`, `"phaze"`, 1)), "j:3: records[1]"},
		{"catalog record", journal(strings.Replace(dup, `"kind":"StatusRecord"`, `"kind":"CatalogRecord"`, 1)), "j:2: records[0]"},
		{"ref without a record path", journal(strings.Replace(dup, `"name":"db"`, `"name":"../db"`, 1)), "j:2: records[0]: " + ErrNoRecordPath.Error()},
		{"same resource twice", journal(instance, dup), "j:3: records[1]: ServiceInstance default/db is also records[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LegacyRecordRoot.DecodeJournal("j", tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := LegacyRecordRoot.DecodeJournal("j", journal(strings.Replace(dup, `"name":"db"`, `"name":"../db"`, 1))); !errors.Is(err, ErrNoRecordPath) {
		t.Errorf("bad ref: %v, want ErrNoRecordPath", err)
	}
}

// TestLoadRecordFilesFoldsJournal: the journal's records replace their
// resources' record files and are listed in Journaled; the others stay.
func TestLoadRecordFilesFoldsJournal(t *testing.T) {
	recs := journalRecords()
	old := sampleStatus()
	old.Phase, old.ExternalID = PhaseReady, "old-id"
	other := NewStatusRecord(Ref{Kind: KindServiceInstance, Namespace: "default", Name: "cache"})
	files := map[string][]byte{}
	for _, r := range []*StatusRecord{old, other} {
		p, _ := StatusPath(r.Ref)
		b, err := MarshalRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	journal, _, err := MarshalJournal(recs)
	if err != nil {
		t.Fatal(err)
	}
	files[LegacyRecordRoot.JournalPath()] = journal
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	got, err := LoadRecordFiles(paths, func(p string) ([]byte, error) { return files[p], nil })
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Status[old.Ref]; r.ExternalID != recs[1].ExternalID || r.Phase != recs[1].Phase {
		t.Errorf("record of %s: %s %s, want the journal's", old.Ref, r.Phase, r.ExternalID)
	}
	if got.Status[recs[0].Ref] == nil || got.Status[other.Ref] == nil {
		t.Errorf("records: %v", got.Status)
	}
	want := map[Ref]bool{recs[0].Ref: true, recs[1].Ref: true}
	if d := cmp.Diff(want, got.Journaled); d != "" {
		t.Errorf("Journaled (-want +got):\n%s", d)
	}
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "2 record(s) from the write-ahead journal") {
		t.Errorf("warnings: %q", got.Warnings)
	}

	delete(files, LegacyRecordRoot.JournalPath())
	got, err = LoadRecordFiles(paths[:0], func(p string) ([]byte, error) { return files[p], nil })
	if err != nil || got.Journaled != nil {
		t.Errorf("without a journal: Journaled %v, err %v", got.Journaled, err)
	}
}

// FuzzDecodeJournal: a journal is input from Git. Decoding never panics,
// and what it accepts writes back to a journal that decodes to the same
// records.
func FuzzDecodeJournal(f *testing.F) {
	good, _, err := MarshalJournal(journalRecords())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"apiVersion": "osbgit.dev/v1alpha1", "kind": "WriteAheadJournal", "formatVersion": 1, "records": []}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := LegacyRecordRoot.DecodeJournal("j", data)
		if err != nil {
			return
		}
		again, _, err := MarshalJournal(recs)
		if err != nil {
			t.Fatalf("accepted journal does not write back: %v", err)
		}
		recs2, err := LegacyRecordRoot.DecodeJournal("j", again)
		if err != nil {
			t.Fatalf("journal written back does not decode: %v\n%s", err, again)
		}
		sort.Slice(recs, func(i, j int) bool { return recs[i].Ref.Less(recs[j].Ref) })
		if d := cmp.Diff(recs, recs2); d != "" {
			t.Fatalf("records differ (-first +again):\n%s", d)
		}
	})
}

// TestLoadRecordsReadsJournal: the file-system loader (validate's) finds
// the journal beside status/ and catalog/ and lays it over the records.
func TestLoadRecordsReadsJournal(t *testing.T) {
	recs := journalRecords()
	journal, _, err := MarshalJournal(recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range []RecordRoot{LegacyRecordRoot, RecordRoot(".osbgit/clusters/eu")} {
		fsys := fstest.MapFS{root.JournalPath(): {Data: journal}}
		got, err := root.LoadRecords(fsys)
		if err != nil {
			t.Fatalf("%s: %v", root, err)
		}
		if len(got.Journaled) != 2 || got.Status[recs[0].Ref] == nil {
			t.Errorf("%s: Journaled %v, records %v", root, got.Journaled, got.Status)
		}
	}
	bad := fstest.MapFS{LegacyRecordRoot.JournalPath(): {Data: []byte("{}")}}
	if _, err := LoadRecords(bad); err == nil || !strings.Contains(err.Error(), "writeahead.json:1: apiVersion") {
		t.Errorf("a broken journal: %v", err)
	}
}
