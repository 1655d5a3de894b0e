package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// scopeManifests: a broker with instance k in its file, instances a, b,
// c and p (p takes parameters from Secret p-params), bindings of a, b and
// k.
func scopeManifests(url string) map[string]string {
	return map[string]string{
		"broker.yaml":      brokerYAML(url) + "---\n" + instanceYAML("k", "small", ""),
		"apps/a.yaml":      instanceYAML("a", "small", "    size: 1\n"),
		"apps/b.yaml":      instanceYAML("b", "small", ""),
		"apps/c.yaml":      instanceYAML("c", "small", ""),
		"apps/p.yaml":      instanceYAML("p", "small", "") + "  parametersFrom:\n  - secretKeyRef: {name: p-params, key: params}\n",
		"apps/a-bind.yaml": bindingYAML("a-bind", "a"),
		"apps/b-bind.yaml": bindingYAML("b-bind", "b"),
		"apps/k-bind.yaml": bindingYAML("k-bind", "k"),
	}
}

// scopeResources is how many resources scopeManifests declares.
const scopeResources = 9

// scopePolicy lets the broker's file declare the broker and apps, apps/
// declare apps, apps use plans small and large of osbtest-db, and a pass
// start 4 creates.
const scopePolicy = `apiVersion: osbgit.dev/v1alpha1
kind: Policy
paths:
- path: broker.yaml
  namespaces: [apps]
  clusterScoped: true
- path: apps/**
  namespaces: [apps]
plans:
- namespaces: [apps]
  allow:
  - class: osbtest-db
    plans: [small, large]
maxCreatesPerPass: 4
`

// newScopeFixture is a fixture of scopeManifests with Secret p-params,
// and the options of a sync that keeps its state and scope index in dir,
// with prune and scopePolicy.
func newScopeFixture(t *testing.T, dir string) (*fixture, Options) {
	f := newFixture(t, scopeManifests)
	f.putSecret("p-params", `{"tier": "gold"}`)
	prune := true
	return f, Options{Prune: &prune, Policy: mustPolicy(t, scopePolicy), SecretSweepInterval: DefaultSecretSweepInterval,
		StatePath: filepath.Join(dir, "state.json"), ScopeIndexPath: filepath.Join(dir, "state.index.json")}
}

func (f *fixture) putSecret(name, params string) {
	f.t.Helper()
	if err := f.store.Put(context.Background(), "apps", name, secrets.Secret{Data: map[string][]byte{"params": []byte(params)}}); err != nil {
		f.t.Fatal(err)
	}
}

// converge syncs until a pass is skipped (nothing due).
func (f *fixture) converge(opts Options) {
	f.t.Helper()
	for range 5 {
		if f.sync(f.reconciler(opts)).Skipped {
			return
		}
	}
	f.t.Fatal("no quiet pass after 5")
}

// planOutcome is what a plan does, refuses and reports: the steps that
// are not none, carry an error or show a resource still failed, and the
// error diagnostics.
func planOutcome(p *plan.Plan) []string {
	var out []string
	for _, s := range p.Steps {
		if s.Action != plan.None || s.Error != "" || s.Record != nil && s.Record.Phase == manifest.PhaseFailed {
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

// passOutcome is what a sync did: its plan's outcome, its counts, the
// broker's instances and bindings (with parameters) and the record files
// on the status branch.
func passOutcome(t *testing.T, f *fixture, res *SyncResult) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "plan:\n  %s\ncounts: %+v\nbroker:\n", strings.Join(planOutcome(res.Plan), "\n  "), res.Exec.Counts)
	insts, binds := f.broker.Instances(), f.broker.Bindings()
	for _, id := range slices.Sorted(maps.Keys(insts)) {
		fmt.Fprintf(&b, "  instance %s %s %s %v\n", id, insts[id].PlanID, insts[id].State, insts[id].Parameters)
	}
	for _, id := range slices.Sorted(maps.Keys(binds)) {
		fmt.Fprintf(&b, "  binding %s of %s %s\n", id, binds[id].InstanceID, binds[id].State)
	}
	for _, p := range f.repo.Files(manifest.RecordDir) {
		fmt.Fprintf(&b, "file %s:\n%s\n", p, f.repo.Show(p))
	}
	return b.String()
}

// copyTree copies directory src to dst, which must not exist, in process
// (a cp process per copy was a tenth of the package's processes). The
// copies hold no symbolic links, and lose no mode bit that git or the
// secret store checks.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// fixtureCopy is a fixture's repository, secret store and more
// directories (pass state), its broker's instances, bindings and
// operations in flight and its ID counter, saved to be restored at the
// same paths.
type fixtureCopy struct {
	from   *fixture
	dirs   map[string]string // live path -> saved copy
	ids    int64
	broker *osbtest.Snapshot
}

// saveFixture copies f's repository, secret store and dirs, and f's
// broker state and ID counter.
func saveFixture(t *testing.T, f *fixture, dirs ...string) *fixtureCopy {
	t.Helper()
	c := &fixtureCopy{from: f, dirs: map[string]string{}, ids: f.ids.Load(), broker: f.broker.Snapshot()}
	for _, d := range append([]string{f.repo.Bare, f.store.Path()}, dirs...) {
		c.dirs[d] = filepath.Join(t.TempDir(), "copy")
		copyTree(t, d, c.dirs[d])
	}
	return c
}

// restore puts the saved directories, broker state and ID counter back
// (the saved copy stays, to be restored again) and returns a fixture of
// them for test t.
func (c *fixtureCopy) restore(t *testing.T) *fixture {
	t.Helper()
	for dir, saved := range c.dirs {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		copyTree(t, saved, dir)
	}
	c.from.broker.Reset()
	c.from.broker.Restore(c.broker)
	f := &fixture{t: t, repo: c.from.repo.For(t), broker: c.from.broker, url: c.from.url, store: c.from.store, transport: c.from.transport}
	f.ids.Store(c.ids)
	return f
}

// TestScopedPassDoesWhatAFullPassDoes: after a change, a sync that reads
// only what changed and what relates to it (the scope index of the pass
// before) plans, calls and writes exactly what a sync of a copy of the
// same repository, secret store, pass state and broker that reads
// everything does, including for changes whose effect reaches unchanged
// files (a binding left without its instance, a duplicate, a taken Secret
// or external ID), failures of earlier passes and the tenancy policy's
// checks and caps; and a change to a broker, osbgit.yaml, the policy or
// a referenced Secret makes it read everything.
func TestScopedPassDoesWhatAFullPassDoes(t *testing.T) {
	t.Parallel()
	// Every case starts from the same converged fixture, converged once
	// and restored at the same paths for each case (records are sealed
	// for their repository's path), so the cases run one after another.
	base, baseOpts := newScopeFixture(t, t.TempDir())
	base.converge(baseOpts)
	stateDir := filepath.Dir(baseOpts.StatePath)
	converged := saveFixture(t, base, stateDir)
	type change struct {
		files  map[string]string
		remove []string
		// do changes the secret store or the broker; policy replaces
		// the policy.
		do     func(f *fixture)
		policy string
	}
	for _, tc := range []struct {
		name string
		// before are changes synced, one after the other, before the one
		// compared.
		before []change
		change func(t *testing.T, f *fixture) change
		// full: the change makes the pass read everything.
		full bool
		// noop: the change plans and writes nothing.
		noop bool
		// short: the case runs under -short too (the others take most of
		// the package's -short time).
		short bool
	}{
		{name: "manifest edit", short: true, change: func(*testing.T, *fixture) change {
			return change{files: map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 2\n")}}
		}},
		{name: "new file", change: func(*testing.T, *fixture) change {
			return change{files: map[string]string{"apps/c-bind.yaml": bindingYAML("c-bind", "c")}}
		}},
		{name: "deleted file", change: func(*testing.T, *fixture) change {
			return change{remove: []string{"apps/b-bind.yaml"}}
		}},
		{name: "renamed file", noop: true, change: func(*testing.T, *fixture) change {
			return change{files: map[string]string{"apps/moved/b.yaml": instanceYAML("b", "small", "")}, remove: []string{"apps/b.yaml"}}
		}},
		{name: "binding whose instance changes", change: func(*testing.T, *fixture) change {
			return change{files: map[string]string{"apps/b-bind.yaml": bindingYAML("b-bind", "c")}}
		}},
		{name: "instance removed, its binding kept", short: true, change: func(*testing.T, *fixture) change {
			return change{remove: []string{"apps/a.yaml"}}
		}},
		{name: "duplicate of an unchanged instance", change: func(*testing.T, *fixture) change {
			return change{files: map[string]string{"apps/z-dup.yaml": instanceYAML("b", "large", "")}}
		}},
		{name: "copy of an unchanged instance where the policy refuses it", change: func(*testing.T, *fixture) change {
			return change{files: map[string]string{"other/b.yaml": instanceYAML("b", "large", "")}}
		}},
		{name: "binding Secret of an unchanged binding", change: func(*testing.T, *fixture) change {
			return change{files: map[string]string{"apps/c-bind.yaml": bindingYAML("c-bind", "c") + "  secretName: b-bind\n"}}
		}},
		{name: "external ID of an unchanged instance's record", short: true, change: func(t *testing.T, f *fixture) change {
			id := recordOf(t, f, manifest.KindServiceInstance, "b").ExternalID
			return change{files: map[string]string{"apps/d.yaml": instanceYAML("d", "small", "") + "  externalID: " + id + "\n"}}
		}},
		{name: "binding of the instance in the broker's file", change: func(*testing.T, *fixture) change {
			return change{files: map[string]string{"apps/k-bind2.yaml": bindingYAML("k-bind2", "k")}}
		}},
		{name: "creates past the policy's cap", change: func(*testing.T, *fixture) change {
			files := map[string]string{}
			for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
				files["apps/"+n+".yaml"] = instanceYAML(n, "small", "")
			}
			return change{files: files}
		}},
		{name: "a failure of the pass before, then another edit",
			before: []change{{files: map[string]string{"apps/e.yaml": instanceYAML("e", "pinned", "")}}}, // a plan the policy refuses
			change: func(*testing.T, *fixture) change {
				return change{files: map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 3\n")}}
			}},
		{name: "a resource still failed from passes before, then another edit",
			before: []change{
				{do: func(f *fixture) {
					f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 400, Times: 1})
				},
					files: map[string]string{"apps/c.yaml": instanceYAML("c", "small", "    size: 9\n")}},
				{files: map[string]string{"apps/b.yaml": instanceYAML("b", "small", "    size: 2\n")}},
			},
			change: func(*testing.T, *fixture) change {
				return change{files: map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 3\n")}}
			}},
		{name: "record edited by hand", change: func(t *testing.T, f *fixture) change {
			p := statusPath(t, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "b"})
			id := recordOf(t, f, manifest.KindServiceInstance, "b").ExternalID
			return change{files: map[string]string{p: strings.Replace(f.repo.Show(p), id, "forged-id", 1)}}
		}},
		{name: "another deployment's records and an edit", change: func(t *testing.T, f *fixture) change {
			p := statusPath(t, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "b"})
			return change{files: map[string]string{
				".osbgit/clusters/other/status/apps/serviceinstance/b.yaml": f.repo.Show(p),
				"apps/a.yaml": instanceYAML("a", "small", "    size: 4\n"),
			}}
		}},
		{name: "broker edit", full: true, noop: true, short: true, change: func(_ *testing.T, f *fixture) change {
			return change{files: map[string]string{"broker.yaml": brokerYAML(f.url) + "  relistDuration: 1h\n---\n" + instanceYAML("k", "small", "")}}
		}},
		{name: "osbgit.yaml", full: true, noop: true, change: func(*testing.T, *fixture) change {
			return change{files: map[string]string{"osbgit.yaml": "apiVersion: osbgit.dev/v1alpha1\nkind: Config\nmaxDeletions: 3\n"}}
		}},
		{name: "policy edit, and an edit", full: true, change: func(*testing.T, *fixture) change {
			// c is not allowed any more.
			return change{policy: strings.Replace(scopePolicy, "- path: apps/**\n", "- path: apps/[abkp]*\n", 1),
				files: map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 5\n")}}
		}},
		{name: "parametersFrom Secret rotated, and an edit", full: true, short: true, change: func(*testing.T, *fixture) change {
			return change{do: func(f *fixture) { f.putSecret("p-params", `{"tier": "platinum"}`) },
				files: map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 5\n")}}
		}},
		{name: "binding Secret deleted, and an edit of its instance", change: func(*testing.T, *fixture) change {
			return change{do: func(f *fixture) {
				if err := f.store.Delete(context.Background(), "apps", "a-bind"); err != nil {
					f.t.Fatal(err)
				}
			}, files: map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 6\n")}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && !tc.short {
				t.Skip("-short: TestScopedSyncConverges covers scoped passes; make test compares every case")
			}
			f, opts := converged.restore(t), baseOpts
			apply := func(c change) {
				if c.files != nil || c.remove != nil {
					f.repo.Push("change", c.files, c.remove)
				}
				if c.do != nil {
					c.do(f)
				}
				if c.policy != "" {
					opts.Policy = mustPolicy(t, c.policy)
				}
			}
			for _, c := range tc.before {
				apply(c)
				f.converge(opts)
			}
			apply(tc.change(t, f))

			// The full pass runs on the same repository, secret store,
			// pass state (without the scope index) and broker, restored
			// as they were before the scoped pass.
			saved := saveFixture(t, f, stateDir)
			now := time.Now().UTC().Truncate(time.Second)
			run := func(f *fixture, opts Options) (*SyncResult, string) {
				r := f.reconciler(opts)
				r.Now = func() time.Time { return now }
				res := f.sync(r)
				if res.Exec == nil {
					t.Fatalf("the pass did not run: %s%s", res.Reason, res.Refused)
				}
				return res, passOutcome(t, f, res)
			}
			got, gotOutcome := run(f, opts)

			f = saved.restore(t)
			opts.ScopeIndexPath = ""
			want, wantOutcome := run(f, opts)

			if gotOutcome != wantOutcome {
				t.Errorf("the scoped pass:\n%s\nthe full pass:\n%s", gotOutcome, wantOutcome)
			}
			read, all := len(got.Plan.Steps), len(want.Plan.Steps)
			if tc.full != (read == all) || all < scopeResources {
				t.Errorf("the pass planned %d resources of %d; want a full pass: %v", read, all, tc.full)
			}
			if tc.noop != (len(planOutcome(want.Plan)) == 0 && want.Commit == "") {
				t.Errorf("the change plans or writes something: %v, want nothing: %v", planOutcome(want.Plan), tc.noop)
			}
		})
	}
}

// TestScopedSyncConverges: a sync whose head moved by one file reads only
// that file's resources, converges them, and leaves the index for the
// next; a corrupt index, or one the state does not name, is a full load.
func TestScopedSyncConverges(t *testing.T) {
	t.Parallel()
	f, opts := newScopeFixture(t, t.TempDir())
	f.converge(opts)
	f.repo.Push("resize a", map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 7\n")}, nil)
	res := f.sync(f.reconciler(opts))
	if c := res.Exec.Counts; c.Updated != 1 || c.Failed != 0 {
		t.Fatalf("counts %+v, want one update", c)
	}
	if n := len(res.Plan.Steps); n != 5 {
		t.Errorf("the scoped pass planned %d resources, want 5 (the broker, k and k-bind in its file, a and a-bind)", n)
	}
	if inst, _ := f.broker.Instance(recordOf(t, f, manifest.KindServiceInstance, "a").ExternalID); fmt.Sprint(inst.Parameters["size"]) != "7" {
		t.Errorf("broker holds size %v, want 7", inst.Parameters["size"])
	}
	st, _ := LoadPassState(opts.StatePath)
	if ix := loadScopeIndex(opts.ScopeIndexPath); ix == nil || ix.ID != st.Index || ix.ManifestRev != res.Plan.Revision {
		t.Fatalf("the state names index %q; the index file holds %+v", st.Index, ix)
	}

	// That pass read neither p's parametersFrom Secret nor b-bind's
	// binding Secret, and kept their checksums: a change to either with
	// no commit still makes the next sync run (for a binding Secret, the
	// next that sweeps them: here one whose sweep interval is 0).
	sweepEveryTime := opts
	sweepEveryTime.SecretSweepInterval = 0
	for name, c := range map[string]struct {
		change func()
		after  Options
	}{
		"rotated parametersFrom Secret": {func() { f.putSecret("p-params", `{"tier": "platinum"}`) }, opts},
		"deleted binding Secret": {func() {
			if err := f.store.Delete(context.Background(), "apps", "b-bind"); err != nil {
				t.Fatal(err)
			}
		}, sweepEveryTime},
	} {
		f.repo.Push("resize a", map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 8\n")}, nil)
		if res := f.sync(f.reconciler(opts)); len(res.Plan.Steps) == scopeResources {
			t.Fatalf("%s: the resize was not a scoped pass", name)
		}
		c.change()
		if res := f.sync(f.reconciler(c.after)); res.Skipped {
			t.Errorf("%s: the sync after it was skipped: %s", name, res.Reason)
		}
		f.repo.Push("undo", map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 7\n")}, nil)
		f.converge(opts)
	}
	if inst, _ := f.broker.Instance(recordOf(t, f, manifest.KindServiceInstance, "p").ExternalID); fmt.Sprint(inst.Parameters["tier"]) != "platinum" {
		t.Errorf("broker holds p's tier %v, want platinum", inst.Parameters["tier"])
	}
	if _, err := f.store.Get(context.Background(), "apps", "b-bind"); err != nil {
		t.Errorf("b-bind's Secret was not restored: %v", err)
	}

	for name, corrupt := range map[string]func(){
		"corrupt index": func() {
			b, _ := os.ReadFile(opts.ScopeIndexPath)
			os.WriteFile(opts.ScopeIndexPath, b[:len(b)/2], 0o600)
		},
		"index of another pass": func() {
			st, _ := LoadPassState(opts.StatePath)
			st.Index = "another"
			st.Save(opts.StatePath)
		},
	} {
		f.converge(opts)
		corrupt()
		f.repo.Push(name, map[string]string{"apps/c-bind.yaml": bindingYAML("c-bind", "c")}, nil)
		res := f.sync(f.reconciler(opts))
		if res.Exec == nil {
			t.Fatalf("%s: pass skipped: %s", name, res.Reason)
		}
		if c := res.Exec.Counts; c.Created != 1 || c.Failed != 0 {
			t.Fatalf("%s: counts %+v, want one create", name, c)
		}
		if n := len(res.Plan.Steps); n != scopeResources+1 {
			t.Errorf("%s: the pass planned %d resources, want all %d (a full load)", name, n, scopeResources+1)
		}
		f.repo.Push("drop c-bind", nil, []string{"apps/c-bind.yaml"})
	}
}

// TestScopeInMemoryMadeByTheNextPass: with no index file, a pass leaves
// its index to be made by the next pass of the same process, which makes
// it first and is scoped by it.
func TestScopeInMemoryMadeByTheNextPass(t *testing.T) {
	t.Parallel()
	f, opts := newScopeFixture(t, t.TempDir())
	opts.StatePath, opts.ScopeIndexPath = "", ""
	r := f.reconciler(opts)
	for range 5 {
		if f.sync(r).Skipped {
			break
		}
	}
	f.repo.Push("resize a", map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 7\n")}, nil)
	res := f.sync(r)
	if c := res.Exec.Counts; c.Updated != 1 || c.Failed != 0 {
		t.Fatalf("counts %+v, want one update", c)
	}
	if n := len(res.Plan.Steps); n != 5 {
		t.Errorf("the scoped pass planned %d resources, want 5", n)
	}
	if r.scope != nil || r.advanceScope == nil {
		t.Fatalf("after a pass that wrote records: index %p, left to the next pass %v", r.scope, r.advanceScope != nil)
	}
	f.repo.Push("resize a", map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 8\n")}, nil)
	if res := f.sync(r); len(res.Plan.Steps) != 5 || res.Exec.Counts.Updated != 1 {
		t.Errorf("the pass after it planned %d resources (want 5), counts %+v", len(res.Plan.Steps), res.Exec.Counts)
	}
	if inst, _ := f.broker.Instance(recordOf(t, f, manifest.KindServiceInstance, "a").ExternalID); fmt.Sprint(inst.Parameters["size"]) != "8" {
		t.Errorf("broker holds size %v, want 8", inst.Parameters["size"])
	}
}

// The scope fingerprint depends on the options' values, not on where they
// are in memory: each sync process builds its own.
func TestScopeFingerprintOfValues(t *testing.T) {
	f := newFixture(t, scopeManifests)
	fingerprint := func(prune bool, max int) string {
		r := f.reconciler(Options{Prune: &prune, MaxDeletions: &max})
		return r.scopeFingerprint([]byte("x"), ".")
	}
	if a, b := fingerprint(true, 3), fingerprint(true, 3); a != b {
		t.Errorf("equal options, fingerprints %s and %s", a, b)
	}
	if fingerprint(true, 3) == fingerprint(false, 3) || fingerprint(true, 3) == fingerprint(true, 4) {
		t.Error("other options, the same fingerprint")
	}
}

// TestIndexEntryKeys checks an index entry's keys, kept joined: they come
// back as given, anyKey sees each, and a name holding the separator (or
// NUL) makes no entry, so no index is kept that would relate the wrong
// files.
func TestIndexEntryKeys(t *testing.T) {
	cfg := manifest.DefaultConfig()
	inst := func(name, externalID string) decoded {
		o := &manifest.ServiceInstance{}
		o.Kind, o.Name, o.Namespace, o.Spec.ExternalID = string(manifest.KindServiceInstance), name, "team", externalID
		return decoded{objs: []manifest.Object{o}}
	}
	e, err := manifestEntry("blob", inst("db", "id-1"), cfg)
	want := []string{"rI:team/db", "i:team/db", "xI:id-1"}
	if err != nil || !slices.Equal(e.Keys(), want) {
		t.Fatalf("keys %q, %v; want %q", e.Keys(), err, want)
	}
	for _, k := range want {
		if !e.anyKey(func(s string) bool { return s == k }) {
			t.Errorf("anyKey misses %q", k)
		}
	}
	if e.anyKey(func(s string) bool { return s == "i:team" }) {
		t.Error("anyKey matched a part of a key")
	}
	for _, name := range []string{"a" + keySep + "b", "a\x00b"} {
		if _, err := manifestEntry("blob", inst(name, ""), cfg); err == nil {
			t.Errorf("name %q: entry made", name)
		}
		rec := manifest.RecordFile{Record: &manifest.StatusRecord{Ref: manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "team", Name: name}}}
		if _, err := recordEntry("blob", rec); err == nil {
			t.Errorf("record of %q: entry made", name)
		}
		path := filepath.Join(t.TempDir(), "index")
		ix := &scopeIndex{ID: "x", ManifestRev: "m", Failing: []string{refKey(manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "team", Name: name})}}
		if err := ix.save(path); !errors.Is(err, errIndexKey) {
			t.Errorf("failing %q: save: %v", name, err)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("failing %q: index written", name)
		}
	}
}

// TestFullPassReusesIndexEntries checks that a full load takes the index
// entries of unchanged files from the index it replaces (held once, not
// made again) and makes new ones for changed files.
func TestFullPassReusesIndexEntries(t *testing.T) {
	t.Parallel()
	f, opts := newScopeFixture(t, t.TempDir())
	f.converge(opts)
	opts.SecretSweepInterval = 0 // every pass sweeps: a full load
	r := f.reconciler(opts)
	f.repo.Push("resize a", map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 7\n")}, nil)
	f.sync(r)
	before := r.scope
	f.repo.Push("resize a", map[string]string{"apps/a.yaml": instanceYAML("a", "small", "    size: 8\n")}, nil)
	if res := f.sync(r); len(res.Plan.Steps) != scopeResources {
		t.Fatalf("the pass planned %d resources, want a full load of %d", len(res.Plan.Steps), scopeResources)
	}
	after := r.scope
	if before == nil || after == nil || before == after {
		t.Fatalf("indexes %p, %p", before, after)
	}
	changed := map[string]bool{"apps/a.yaml": true, ".osbgit/status/apps/serviceinstance/a.yaml": true}
	shared := 0
	for _, part := range []struct{ old, new map[string]indexEntry }{{before.Manifests, after.Manifests}, {before.Records, after.Records}} {
		for p, e := range part.new {
			old, ok := part.old[p]
			switch {
			case changed[p] && e.Blob == old.Blob:
				t.Errorf("%s changed, its entry did not", p)
			case !changed[p] && (!ok || e.keys != old.keys):
				t.Errorf("%s unchanged, entry %+v, was %+v", p, e, old)
			case !changed[p] && e.keys != "" && unsafe.StringData(e.keys) == unsafe.StringData(old.keys):
				shared++
			}
		}
	}
	if want := len(after.Manifests) + len(after.Records) - len(changed); shared < want-2 { // brokers' files may have no keys
		t.Errorf("%d entries taken from the last index, want about %d", shared, want)
	}
}
