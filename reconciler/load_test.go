package reconciler

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
)

// recordFiles renders status records of instances apps/<name> in phase,
// as files of a repository.
func recordFiles(t *testing.T, phase manifest.Phase, names ...string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, name := range names {
		rec := manifest.NewStatusRecord(manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: name})
		rec.Phase, rec.ExternalID = phase, "id-"+name
		data, err := manifest.MarshalRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		files[statusPath(t, rec.Ref)] = string(data)
	}
	return files
}

// TestLoadRecordsCachesByBlob: with a cache, a pass decodes only the
// records whose blob changed since the last one (issue 17: records are
// cached by blob hash like manifests), returns what a pass without cache
// returns, and keeps only the current revision's records.
func TestLoadRecordsCachesByBlob(t *testing.T) {
	t.Parallel()
	names := make([]string, 10)
	for i := range names {
		names[i] = fmt.Sprintf("db-%d", i)
	}
	repo := gittest.New(t, recordFiles(t, manifest.PhaseReady, names...))
	src, err := gitrepo.Open(context.Background(), gitrepo.Options{URL: repo.Bare, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cache := NewDecodeCache()
	load := func(wantHits, wantMisses int) *manifest.Records {
		t.Helper()
		fr, err := src.Fetch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		hits, misses := cache.records.hits, cache.records.misses
		got, err := LoadRecords(src, manifest.LegacyRecordRoot, fr.StatusHead, cache)
		if err != nil {
			t.Fatal(err)
		}
		if h, m := cache.records.hits-hits, cache.records.misses-misses; h != wantHits || m != wantMisses {
			t.Errorf("%d records taken from the cache and %d decoded, want %d and %d", h, m, wantHits, wantMisses)
		}
		uncached, err := LoadRecords(src, manifest.LegacyRecordRoot, fr.StatusHead, nil)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := recordsJSON(t, got), recordsJSON(t, uncached); g != w {
			t.Errorf("records through the cache:\n%s\nwithout:\n%s", g, w)
		}
		if len(cache.records.entries) != len(got.Status) {
			t.Errorf("cache holds %d records, the revision %d", len(cache.records.entries), len(got.Status))
		}
		return got
	}
	load(0, 10)
	load(10, 0)
	// One record changes, one is added, one removed: two are decoded.
	changed := recordFiles(t, manifest.PhaseFailed, "db-1")
	for p, c := range recordFiles(t, manifest.PhasePending, "db-new") {
		changed[p] = c
	}
	removed := statusPath(t, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db-2"})
	repo.Push("records", changed, []string{removed})
	got := load(8, 2)
	ref := func(name string) manifest.Ref {
		return manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: name}
	}
	if r := got.Status[ref("db-1")]; r == nil || r.Phase != manifest.PhaseFailed {
		t.Errorf("changed record: %+v", r)
	}
	if r := got.Status[ref("db-new")]; r == nil || r.Phase != manifest.PhasePending {
		t.Errorf("added record: %+v", r)
	}
	if _, ok := got.Status[ref("db-2")]; ok {
		t.Error("removed record still loaded")
	}
}

// recordsJSON renders records for comparison, sorted by path.
func recordsJSON(t *testing.T, recs *manifest.Records) string {
	t.Helper()
	var lines []string
	for ref, r := range recs.Status {
		b, err := manifest.RecordJSON(r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, statusPath(t, ref)+" "+string(b))
	}
	for _, r := range recs.Catalogs {
		b, err := manifest.RecordJSON(r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	lines = append(lines, recs.Warnings...)
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestRecordsWithoutFormatVersionAreNotRewritten: records written before
// records carried a format version (the same files without formatVersion)
// by an osbgit that did not sign them either: the upgraded osbgit refuses
// them until `osbgit trust` (the one upgrade step), then loads them, and a
// pass over them that changes nothing commits nothing and calls no
// broker: upgrading osbgit does not rewrite every record.
const formatVersionLine = "\n  \"formatVersion\": 1,\n"

func TestRecordsWithoutFormatVersionAreNotRewritten(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"osbgit.yaml":       osbgitYAML,
			"brokers/b.yaml":    brokerYAML(url),
			"apps/db.yaml":      instanceYAML("db", "small", "    size: 10\n"),
			"apps/db-bind.yaml": bindingYAML("db-bind", "db"),
		}
	})
	before := f.reconciler(Options{})
	before.Keys = nil // an osbgit from before records were signed
	if res := f.sync(before); res.Exec == nil || res.Exec.Failed() {
		t.Fatalf("first sync: %+v", res.Exec)
	}
	old := map[string]string{}
	for _, p := range f.repo.Files(manifest.RecordDir) {
		data := f.repo.Show(p)
		if !strings.Contains(data, formatVersionLine) {
			t.Fatalf("%s has no format version:\n%s", p, data)
		}
		old[p] = strings.Replace(data, formatVersionLine, "\n", 1)
	}
	if len(old) < 3 {
		t.Fatalf("want the records of the broker's catalog, the instance and the binding, got %v", old)
	}
	f.repo.Push("records as osbgit wrote them before format versions", old, nil)
	f.broker.ResetCalls()
	if res := f.sync(f.reconciler(Options{})); !strings.Contains(res.Refused, "osbgit trust") {
		t.Fatalf("unsigned records: refused %q, want a refusal naming osbgit trust", res.Refused)
	}
	tr, err := f.reconciler(Options{}).Trust(context.Background(), nil, false)
	if err != nil || len(tr.Adopted) != len(old) {
		t.Fatalf("trust adopted %+v (%v), want the %d records", tr, err, len(old))
	}
	commits := f.repo.CommitCount()

	res := f.sync(f.reconciler(Options{}))
	if res.Skipped || res.Plan == nil {
		t.Fatalf("pass skipped (%s): want a full pass over the old records", res.Reason)
	}
	if res.Commit != "" || f.repo.CommitCount() != commits {
		t.Errorf("pass committed %q over unchanged old records", res.Commit)
	}
	if calls := f.broker.MutatingCalls(); len(calls) != 0 {
		t.Errorf("mutating broker calls: %v", calls)
	}
	for p, want := range old {
		if got := f.repo.Show(p); got != want {
			t.Errorf("%s rewritten:\n%s", p, got)
		}
	}
	if rec := recordOf(t, f, manifest.KindServiceInstance, "db"); rec.Phase != manifest.PhaseReady || rec.FormatVersion != manifest.RecordFormatVersion {
		t.Errorf("old instance record loads as %+v", rec)
	}
}
