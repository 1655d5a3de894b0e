package reconciler

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/render"
)

// TestDiffShowsOldValuesFromTheManifestLastApplied (issue 20): the record
// keeps which manifest blob the broker confirmed; a diff of a changed
// resource reads that one blob for the old parameters, instead of showing
// every value as "(unknown) -> new". Values from Secrets stay redacted.
func TestDiffShowsOldValuesFromTheManifestLastApplied(t *testing.T) {
	t.Parallel()
	const password = "pw-5ecret-old"
	withParams := func(params string) string {
		return instanceYAML("db", "large", params) + "  parametersFrom:\n  - secretKeyRef: {name: db-params, key: params}\n"
	}
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": withParams("    size: 10\n    tier: gold\n")}
	})
	putParams := func(pw string) {
		if err := f.store.Put(context.Background(), "apps", "db-params", secretOf("params", `{"password":"`+pw+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	putParams(password)
	f.sync(f.reconciler(Options{}))
	db := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"}
	if rec, blob := recordIn(t, f, db), git(t, f.repo.Bare, "rev-parse", "main:apps/db.yaml"); rec.Applied == nil || rec.Applied.Blob != blob || rec.Applied.File != "apps/db.yaml" {
		t.Fatalf("record's applied manifest = %+v, want apps/db.yaml blob %s", rec.Applied, blob)
	}

	changes := func() ([]plan.Change, string) {
		t.Helper()
		r := f.reconciler(Options{})
		res, err := r.Diff(context.Background(), DiffOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := render.Text(&out, res.Plan, render.TextOptions{Redact: r.Redact}); err != nil {
			t.Fatal(err)
		}
		if err := render.JSON(&out, res.Plan, render.JSONOptions{Redact: r.Redact}); err != nil {
			t.Fatal(err)
		}
		for _, s := range res.Plan.Steps {
			if s.Ref == db {
				return s.Changes, out.String()
			}
		}
		t.Fatal("no step for db")
		return nil, ""
	}

	f.repo.Push("db bigger, no tier", map[string]string{"apps/db.yaml": withParams("    size: 20\n")}, nil)
	got, shown := changes()
	want := []plan.Change{
		{Path: "parameters.size", Op: plan.ChangeModify, Old: "10", New: "20"},
		{Path: "parameters.tier", Op: plan.ChangeRemove, Old: `"gold"`},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
	if !strings.Contains(shown, "parameters.size: 10 -> 20") || strings.Contains(shown, "(unknown)") {
		t.Errorf("text plan does not show the old value:\n%s", shown)
	}

	// Only the Secret's value changed: said, and redacted.
	f.sync(f.reconciler(Options{}))
	putParams("pw-5ecret-new")
	got, shown = changes()
	want = []plan.Change{{Path: "parameters (from Secrets)", Op: plan.ChangeModify, Old: plan.SensitiveValue, New: plan.SensitiveValue, Sensitive: true}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("changes after a Secret edit (-want +got):\n%s", d)
	}
	if strings.Contains(shown, "pw-5ecret") {
		t.Errorf("a parametersFrom value is shown:\n%s", shown)
	}
}
