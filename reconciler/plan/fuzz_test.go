package plan_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/render"
)

// fuzzSecret is the value of every Secret key the fuzzed manifests can
// reference through parametersFrom: it must never be rendered.
const fuzzSecret = "fuzz-s3cret-VALUE-91"

// fuzzSecrets answers parametersFrom for Secret "creds" in any namespace:
// key "params" is a JSON object holding fuzzSecret, key "bad" is not JSON.
func fuzzSecrets(namespace, name, key string) ([]byte, error) {
	if name != "creds" {
		return nil, os.ErrNotExist
	}
	switch key {
	case "params":
		return []byte(`{"password":"` + fuzzSecret + `","nested":{"token":"` + fuzzSecret + `"}}`), nil
	case "bad":
		return []byte("not json " + fuzzSecret), nil
	}
	return nil, os.ErrNotExist
}

// recordSets are the status records of every golden scenario: the fuzzer
// picks one set per input, so manifests meet records in every phase.
func recordSets(tb testing.TB) []map[manifest.Ref]*manifest.StatusRecord {
	tb.Helper()
	ents, err := os.ReadDir(goldenDir)
	if err != nil {
		tb.Fatal(err)
	}
	sets := []map[manifest.Ref]*manifest.StatusRecord{{}}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		recs, err := manifest.LoadRecords(os.DirFS(filepath.Join(goldenDir, e.Name(), "repo")))
		if err != nil {
			tb.Fatalf("%s: %v", e.Name(), err)
		}
		if len(recs.Status) > 0 {
			sets = append(sets, recs.Status)
		}
	}
	return sets
}

// goldenManifests returns each golden scenario's manifests under apps/ as
// one multi-document file, to seed the fuzzer.
func goldenManifests(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	dirs, _ := filepath.Glob(filepath.Join(goldenDir, "*", "repo", "apps"))
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.yaml"))
		var docs []string
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			docs = append(docs, string(b))
		}
		out = append(out, []byte(strings.Join(docs, "\n---\n")))
	}
	return out
}

// fuzzInput builds the planner's input from fuzzer data: data is a
// manifest file (any YAML) planned next to the golden broker, record, when
// it decodes, is one more status record, sel picks a golden record set.
func fuzzInput(data, record []byte, sel uint16, prune bool, maxDel int8, cats manifest.Catalogs, sets []map[manifest.Ref]*manifest.StatusRecord) plan.Input {
	objs, diags := manifest.DecodeFile("brokers.yaml", []byte(brokerYAML))
	more, ds := manifest.DecodeFile("apps/fuzz.yaml", data)
	objs, diags = append(objs, more...), append(diags, ds...)
	set, ds := manifest.Assemble(objs, nil)
	diags = append(diags, ds...)
	recs := map[manifest.Ref]*manifest.StatusRecord{}
	for k, v := range sets[int(sel)%len(sets)] {
		c := *v
		recs[k] = &c
	}
	if r, err := manifest.UnmarshalRecord(".osbgit/status/fuzz.yaml", record); err == nil {
		if sr, ok := r.(*manifest.StatusRecord); ok {
			recs[sr.Ref] = sr
		}
	}
	all := &manifest.Records{Status: recs}
	diags = append(diags, manifest.ValidateWithCatalogs(set, cats, manifest.WithRecords(all))...)
	diags.Sort()
	return plan.Input{
		Set:         set,
		Diagnostics: diags,
		Records:     recs,
		Catalogs:    cats,
		Secrets:     readSecrets(set, fuzzSecrets),
		NewID:       seqIDs(),
		Options: plan.Options{
			Prune: prune, MaxDeletions: int(maxDel), ClusterID: "fuzz", Revision: "2222222222222222222222222222222222222222",
			Now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), DefaultMaxPollingDuration: time.Hour,
		},
	}
}

// FuzzBuild plans fuzzer-made manifests (YAML decoded and assembled as a
// pass does, next to the golden broker and catalog) against golden record
// sets plus one fuzzer-made record: Build must never panic, must be
// deterministic, and its plan must keep the invariants of every plan (one
// step per resource, dependencies before dependents, unbinds before
// deprovisions, errors only on None steps); both views must render without
// a parametersFrom Secret value. Seed corpus: testdata/fuzz/FuzzBuild.
func FuzzBuild(f *testing.F) {
	cats := catalogsFrom(f)
	sets := recordSets(f)
	rec := []byte(`apiVersion: osbgit.dev/v1alpha1
kind: StatusRecord
ref: {kind: ServiceInstance, namespace: apps, name: db}
phase: Ready
externalID: ext-db
broker: {kind: ClusterServiceBroker, name: demo}
classExternalName: postgres
classExternalID: svc-postgres
planExternalName: small
planExternalID: plan-pg-small
provisioned: true
`)
	for i, m := range goldenManifests(f) {
		f.Add(m, rec, uint16(i), i%2 == 0, int8(10))
	}
	f.Add([]byte(dbYAML+"\n---\n"+dbBindYAML), []byte{}, uint16(0), true, int8(-1))
	f.Add([]byte(instYAML("db", "postgres", "small", "  parametersFrom:\n  - secretKeyRef: {name: creds, key: params}\n")), rec, uint16(3), false, int8(0))
	f.Fuzz(func(t *testing.T, data, record []byte, sel uint16, prune bool, maxDel int8) {
		in := fuzzInput(data, record, sel, prune, maxDel, cats, sets)
		p := plan.Build(in)
		checkInvariants(t, in, p)
		again := plan.Build(fuzzInput(data, record, sel, prune, maxDel, cats, sets))
		if !samePlan(p, again) {
			t.Fatal("Build is not deterministic")
		}
		for _, s := range p.Steps {
			if s.Action == plan.Create && s.WriteAhead == false && s.Record == nil {
				t.Errorf("%s: create of a new resource without write-ahead", s.Ref)
			}
		}
		var text, js bytes.Buffer
		if err := render.Text(&text, p, render.TextOptions{}); err != nil {
			t.Fatalf("text view: %v", err)
		}
		if err := render.JSON(&js, p); err != nil {
			t.Fatalf("JSON view: %v", err)
		}
		if !json.Valid(js.Bytes()) {
			t.Fatalf("JSON view is not JSON:\n%s", js.String())
		}
		if !bytes.Contains(data, []byte(fuzzSecret)) && !bytes.Contains(record, []byte(fuzzSecret)) {
			if strings.Contains(text.String(), fuzzSecret) || strings.Contains(js.String(), fuzzSecret) {
				t.Fatalf("a parametersFrom Secret value was rendered")
			}
		}
	})
}

// catalogsFrom reads the golden catalogs.
func catalogsFrom(tb testing.TB) manifest.Catalogs {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "catalogs.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var c manifest.Catalogs
	if err := json.Unmarshal(b, &c); err != nil {
		tb.Fatal(err)
	}
	return c
}
