package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
)

// scopeManifests: a broker, instances a, b, c, bindings of a and b.
func scopeManifests(url string) map[string]string {
	return map[string]string{
		"broker.yaml":      brokerYAML(url),
		"apps/a.yaml":      instanceYAML("a", "small", "    size: 1\n"),
		"apps/b.yaml":      instanceYAML("b", "small", ""),
		"apps/c.yaml":      instanceYAML("c", "small", ""),
		"apps/a-bind.yaml": bindingYAML("a-bind", "a"),
		"apps/b-bind.yaml": bindingYAML("b-bind", "b"),
	}
}

// planOutcome is what a plan does and refuses: the steps that are not
// none or carry an error, and the error diagnostics.
func planOutcome(p *plan.Plan) []string {
	var out []string
	for _, s := range p.Steps {
		if s.Action != plan.None || s.Error != "" {
			out = append(out, fmt.Sprintf("step %s: %s %s", s.Ref, s.Action, s.Error))
		}
	}
	for _, d := range p.Diagnostics {
		if d.Severity == manifest.SeverityError {
			out = append(out, "diagnostic "+d.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestScopedPassPlansAsAFullPass: after one change, the pass that reads
// only what changed and what relates to it plans exactly what a pass that
// reads everything plans, for changes whose effect reaches unchanged
// files (a binding left without its instance, a duplicate, a taken Secret
// or external ID); and a change to a broker or osbgit.yaml loads all.
func TestScopedPassPlansAsAFullPass(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *fixture) (files map[string]string, remove []string)
		// full: the change must make the pass load everything.
		full bool
	}{
		{name: "parameters of an instance", change: func(*fixture) (map[string]string, []string) {
			return map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 2\n")}, nil
		}},
		{name: "instance removed, its binding kept", change: func(*fixture) (map[string]string, []string) {
			return nil, []string{"apps/a.yaml"}
		}},
		{name: "binding removed", change: func(*fixture) (map[string]string, []string) {
			return nil, []string{"apps/b-bind.yaml"}
		}},
		{name: "binding added to an unchanged instance", change: func(*fixture) (map[string]string, []string) {
			return map[string]string{"apps/c-bind.yaml": bindingYAML("c-bind", "c")}, nil
		}},
		{name: "duplicate of an unchanged instance", change: func(*fixture) (map[string]string, []string) {
			return map[string]string{"apps/z-dup.yaml": instanceYAML("b", "large", "")}, nil
		}},
		{name: "binding Secret of an unchanged binding", change: func(*fixture) (map[string]string, []string) {
			return map[string]string{"apps/c-bind.yaml": bindingYAML("c-bind", "c") + "  secretName: b-bind\n"}, nil
		}},
		{name: "external ID of an unchanged instance's record", change: func(f *fixture) (map[string]string, []string) {
			id := recordOf(t, f, manifest.KindServiceInstance, "b").ExternalID
			return map[string]string{"apps/d.yaml": instanceYAML("d", "small", "") + "  externalID: " + id + "\n"}, nil
		}},
		{name: "broker", full: true, change: func(f *fixture) (map[string]string, []string) {
			return map[string]string{"broker.yaml": brokerYAML(f.url) + "  relistDuration: 1h\n"}, nil
		}},
		{name: "osbgit.yaml", full: true, change: func(*fixture) (map[string]string, []string) {
			return map[string]string{"osbgit.yaml": "apiVersion: osbgit.dev/v1alpha1\nkind: Config\nmaxDeletions: 3\n"}, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, scopeManifests)
			prune := true
			dir := t.TempDir()
			opts := Options{Prune: &prune, StatePath: filepath.Join(dir, "state.json"), ScopeIndexPath: filepath.Join(dir, "state.index.json")}
			f.sync(f.reconciler(opts))
			if res := f.sync(f.reconciler(opts)); !res.Skipped {
				t.Fatalf("second pass not skipped: %s", planOutcome(res.Plan))
			}
			files, remove := tc.change(f)
			f.repo.Push("change", files, remove)

			ctx := context.Background()
			scoped, full := f.reconciler(opts), f.reconciler(Options{Prune: &prune})
			for _, r := range []*Reconciler{scoped, full} {
				if err := r.init(ctx); err != nil {
					t.Fatal(err)
				}
			}
			ix := scoped.lastScope(scoped.Now())
			if ix == nil {
				t.Fatal("the scope index of the last pass is not at hand")
			}
			fr, err := scoped.Source.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = scoped.loadScoped(ix, fr.Head, fr.RecordsHead)
			if tc.full != errors.Is(err, errFullLoad) {
				t.Fatalf("scoped load: %v, want a full load: %v", err, tc.full)
			}
			ps, err := scoped.prepare(ctx, fr, prepareOptions{write: true, scope: ix})
			if err != nil {
				t.Fatal(err)
			}
			pf, err := full.prepare(ctx, fr, prepareOptions{write: true})
			if err != nil {
				t.Fatal(err)
			}
			got, want := planOutcome(ps.plan), planOutcome(pf.plan)
			if !slices.Equal(got, want) {
				t.Errorf("scoped plan:\n  %q\nfull plan:\n  %q", got, want)
			}
			if len(want) == 0 && !tc.full {
				t.Error("the change plans nothing: the case tests nothing")
			}
			read, all := len(ps.snap.Set.Objects()), len(pf.snap.Set.Objects())
			if !tc.full && read >= all {
				t.Errorf("scoped pass read %d objects of %d", read, all)
			}
			if ps.index == nil || ps.index.ManifestRev != fr.Head {
				t.Fatalf("the pass describes no index of %s", fr.Head)
			}
		})
	}
}

// TestScopedSyncConverges: a sync whose head moved by one file reads only
// that file's resources, converges them, and leaves the index for the
// next; a corrupt index, or one the state does not name, is a full load.
func TestScopedSyncConverges(t *testing.T) {
	f := newFixture(t, scopeManifests)
	dir := t.TempDir()
	prune := true
	opts := Options{Prune: &prune, StatePath: filepath.Join(dir, "state.json"), ScopeIndexPath: filepath.Join(dir, "state.index.json")}
	f.sync(f.reconciler(opts))
	f.sync(f.reconciler(opts)) // the records written by the first pass
	f.repo.Push("resize a", map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 7\n")}, nil)
	r := f.reconciler(opts)
	res := f.sync(r)
	if c := res.Exec.Counts; c.Updated != 1 || c.Failed != 0 {
		t.Fatalf("counts %+v, want one update", c)
	}
	if n := len(res.Plan.Steps); n != 3 {
		t.Errorf("the scoped pass planned %d resources, want 3 (the broker, a and a-bind)", n)
	}
	if inst, _ := f.broker.Instance(recordOf(t, f, manifest.KindServiceInstance, "a").ExternalID); fmt.Sprint(inst.Parameters["size"]) != "7" {
		t.Errorf("broker holds size %v, want 7", inst.Parameters["size"])
	}
	st, _ := LoadPassState(opts.StatePath)
	if ix := loadScopeIndex(opts.ScopeIndexPath); ix == nil || ix.ID != st.Index || ix.ManifestRev != res.Plan.Revision {
		t.Fatalf("the state names index %q; the index file holds %+v", st.Index, ix)
	}

	for name, corrupt := range map[string]func(){
		"corrupt index": func() { os.WriteFile(opts.ScopeIndexPath, []byte("{\"version\": 1, \"id\": "), 0o600) },
		"index of another pass": func() {
			st, _ := LoadPassState(opts.StatePath)
			st.Index = "another"
			st.Save(opts.StatePath)
		},
	} {
		f.sync(f.reconciler(opts))
		corrupt()
		f.repo.Push(name, map[string]string{"apps/c-bind.yaml": bindingYAML("c-bind", "c")}, nil)
		res := f.sync(f.reconciler(opts))
		if res.Exec == nil {
			t.Fatalf("%s: pass skipped: %s", name, res.Reason)
		}
		if c := res.Exec.Counts; c.Created != 1 || c.Failed != 0 {
			t.Fatalf("%s: counts %+v, want one create", name, c)
		}
		if n := len(res.Plan.Steps); n != 7 {
			t.Errorf("%s: the pass planned %d resources, want all 7 (a full load)", name, n)
		}
		f.repo.Push("drop c-bind", nil, []string{"apps/c-bind.yaml"})
	}
}
