package reconciler

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/policy"
)

// tenancyPolicy lets teams/a declare team-a and teams/b team-b; team-a may
// use only plan small of osbtest-db.
const tenancyPolicy = `apiVersion: osbgit.dev/v1alpha1
kind: Policy
paths:
- path: platform/**
  namespaces: ["*"]
  clusterScoped: true
- path: teams/a/**
  namespaces: [team-a]
- path: teams/b/**
  namespaces: [team-b]
plans:
- namespaces: [team-a]
  allow:
  - class: osbtest-db
    plans: [small]
- namespaces: ["*"]
  allow:
  - class: "*"
    plans: ["*"]
`

func mustPolicy(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, diags := policy.Decode("policy.yaml", []byte(src))
	if p == nil {
		t.Fatalf("policy: %v", diags)
	}
	return p
}

// teamInstance is instanceYAML in namespace ns.
func teamInstance(ns, name, plan string) string {
	return strings.Replace(instanceYAML(name, plan, ""), "namespace: apps", "namespace: "+ns, 1)
}

// provisioned lists "namespace/name" of every provision call the broker got
// (from the OSB context), sorted.
func provisioned(t *testing.T, b *osbtest.Broker, e osbtest.Endpoint) []string {
	t.Helper()
	var out []string
	for _, c := range b.CallsTo(e) {
		var body struct {
			Context struct {
				Namespace    string `json:"namespace"`
				InstanceName string `json:"instance_name"`
			} `json:"context"`
		}
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatalf("provision body: %v", err)
		}
		out = append(out, body.Context.Namespace+"/"+body.Context.InstanceName)
	}
	sort.Strings(out)
	return out
}

// diagAt finds the error diagnostic at file and field.
func diagAt(p *plan.Plan, file, field string) *manifest.Diagnostic {
	for _, d := range p.Diagnostics {
		if d.File == file && d.Field == field && d.Severity == manifest.SeverityError {
			return &d
		}
	}
	return nil
}

// A team directory declaring another team's namespace, or a plan outside
// its allow-list, gets an error at file:line and field, no broker call,
// and the error on its record; the other resources proceed.
func TestTenancyPolicyBlocksOnlyTheViolations(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"osbgit.yaml":          osbgitYAML,
			"platform/broker.yaml": brokerYAML(url),
			"teams/a/db.yaml":      teamInstance("team-a", "db", "small"),
			"teams/a/big.yaml":     teamInstance("team-a", "big", "large"),
			"teams/a/steal.yaml":   teamInstance("team-b", "sneaky", "small"),
			"teams/a/creds.yaml":   teamBindingYAML("team-b", "creds", "db"),
			"teams/b/db.yaml":      teamInstance("team-b", "db", "large"),
		}
	})
	opts := Options{Policy: mustPolicy(t, tenancyPolicy)}

	// diff shows the errors and makes no mutating call.
	d, err := f.reconciler(opts).Diff(t.Context(), DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range f.broker.Calls() {
		if c.Endpoint.Mutating() {
			t.Fatalf("diff made a mutating call: %s %s", c.Method, c.Path)
		}
	}
	res := f.sync(f.reconciler(opts))
	for _, p := range []*plan.Plan{d.Plan, res.Plan} {
		for _, want := range []struct{ file, field, msg string }{
			{"teams/a/steal.yaml", "metadata.namespace", `namespace "team-b" may not be declared in teams/a/steal.yaml`},
			{"teams/a/creds.yaml", "metadata.namespace", `namespace "team-b" may not be declared in teams/a/creds.yaml`},
			{"teams/a/big.yaml", "spec.clusterServicePlanExternalName", `plan "large" of class "osbtest-db" is not allowed in namespace "team-a"`},
		} {
			dg := diagAt(p, want.file, want.field)
			if dg == nil || dg.Line < 2 || !strings.Contains(dg.Message, want.msg) {
				t.Errorf("%s: %s: got %v, want an error at a line containing %q", want.file, want.field, dg, want.msg)
			}
		}
	}
	if got, want := strings.Join(provisioned(t, f.broker, osbtest.EndpointProvision), " "), "team-a/db team-b/db"; got != want {
		t.Errorf("provisioned %q, want %q", got, want)
	}
	if n := len(f.broker.CallsTo(osbtest.EndpointBind)); n != 0 {
		t.Errorf("%d bind calls, want none", n)
	}
	// status shows it: the blocked resources' records hold the error.
	for _, ref := range []manifest.Ref{
		{Kind: manifest.KindServiceInstance, Namespace: "team-b", Name: "sneaky"},
		{Kind: manifest.KindServiceInstance, Namespace: "team-a", Name: "big"},
		{Kind: manifest.KindServiceBinding, Namespace: "team-b", Name: "creds"},
	} {
		rec := recordIn(t, f, ref)
		if rec == nil || rec.Error == nil || !strings.Contains(rec.Error.Message, "tenancy policy") || rec.ExternalID != "" {
			t.Errorf("%s: record %+v, want only the policy error", ref, rec)
		}
	}
	if rec := recordIn(t, f, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "team-b", Name: "db"}); rec == nil || rec.Phase != manifest.PhaseReady {
		t.Errorf("team-b/db: record %+v, want Ready", rec)
	}
}

// A cluster-scoped broker declared where the policy does not allow it is
// never called, not even for its catalog.
func TestTenancyPolicyBrokerNeverCalled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"teams/a/broker.yaml": brokerYAML(url),
			"teams/a/db.yaml":     teamInstance("team-a", "db", "small"),
		}
	})
	res := f.sync(f.reconciler(Options{Policy: mustPolicy(t, tenancyPolicy)}))
	if n := len(f.broker.Calls()); n != 0 {
		t.Fatalf("the broker got %d calls", n)
	}
	if dg := diagAt(res.Plan, "teams/a/broker.yaml", "kind"); dg == nil || !strings.Contains(dg.Message, "cluster-scoped") {
		t.Errorf("no error at teams/a/broker.yaml kind: %v", res.Plan.Diagnostics)
	}
}

// What one commit can do against the policy: move another team's manifest
// into its own directory, or declare a resource of the same name there.
// Either way the existing resource is blocked with the error and left
// alone at the broker — never deleted, updated or re-created because of
// the policy — and it converges again once the commit is reverted.
func TestTenancyPolicyNeverDeletes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		files  map[string]string
		remove []string
		// file and field of the error expected.
		file, field string
	}{
		{"moved into another team's directory", map[string]string{"teams/a/db.yaml": teamInstance("team-b", "db", "small")}, []string{"teams/b/db.yaml"},
			"teams/a/db.yaml", "metadata.namespace"},
		{"same resource declared from another team's directory", map[string]string{"teams/a/db.yaml": teamInstance("team-b", "db", "small")}, nil,
			"teams/a/db.yaml", "metadata.namespace"},
		{"a plan the policy no longer allows", map[string]string{"teams/a/mine.yaml": teamInstance("team-a", "mine", "large")}, nil,
			"teams/a/mine.yaml", "spec.clusterServicePlanExternalName"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(url string) map[string]string {
				return map[string]string{
					"osbgit.yaml":          osbgitYAML, // prune on
					"platform/broker.yaml": brokerYAML(url),
					"teams/b/db.yaml":      teamInstance("team-b", "db", "large"),
					"teams/a/mine.yaml":    teamInstance("team-a", "mine", "large"),
				}
			})
			// Before the policy: both provisioned.
			f.sync(f.reconciler(Options{}))
			before, _ := brokerState(f.broker)
			if len(before) != 2 {
				t.Fatalf("broker holds %v", before)
			}
			f.broker.ResetCalls()
			opts := Options{Policy: mustPolicy(t, tenancyPolicy)}
			f.repo.Push("hostile", tt.files, tt.remove)
			res := f.sync(f.reconciler(opts))
			if dg := diagAt(res.Plan, tt.file, tt.field); dg == nil {
				t.Errorf("no error at %s %s: %v", tt.file, tt.field, res.Plan.Diagnostics)
			}
			for _, c := range f.broker.Calls() {
				if c.Endpoint.Mutating() {
					t.Errorf("mutating call %s %s", c.Method, c.Path)
				}
			}
			if after, _ := brokerState(f.broker); len(after) != 2 {
				t.Errorf("broker holds %v after the hostile commit, want %v", after, before)
			}
			for _, s := range res.Plan.Steps {
				if s.Action != plan.None {
					t.Errorf("%s: %s (%s)", s.Ref, s.Action, s.Reason)
				}
			}
		})
	}
}

// A copy of another team's resource in a directory that may not declare
// it, careless or hostile, does not block the owner's: it is ignored with
// an error at its file, and the owner's copy converges. Left alone, the
// copy blocks the resource and never makes it look removed.
func TestTenancyPolicyIgnoresACopyInAnotherTeamsDirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"osbgit.yaml":          osbgitYAML, // prune on
			"platform/broker.yaml": brokerYAML(url),
			// Sorts before the owner's copy: the copy kept must not
			// depend on file order.
			"teams/a/db.yaml": teamInstance("team-b", "db", "small"),
			"teams/b/db.yaml": teamInstance("team-b", "db", "large"),
		}
	})
	opts := Options{Policy: mustPolicy(t, tenancyPolicy)}
	res := f.sync(f.reconciler(opts))
	ref := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "team-b", Name: "db"}
	if dg := diagAt(res.Plan, "teams/a/db.yaml", "metadata.namespace"); dg == nil || dg.Ref != (manifest.Ref{}) ||
		!strings.Contains(dg.Message, "may not be declared in teams/a/db.yaml") || !strings.Contains(dg.Message, "declared at teams/b/db.yaml:1, which may: this copy is ignored") {
		t.Errorf("error at teams/a/db.yaml: %v\n%v", dg, res.Plan.Diagnostics)
	}
	if got := strings.Join(provisioned(t, f.broker, osbtest.EndpointProvision), " "); got != "team-b/db" {
		t.Fatalf("provisioned %q, want team-b/db", got)
	}
	rec := recordIn(t, f, ref)
	if rec == nil || rec.Phase != manifest.PhaseReady || rec.Error != nil || rec.PlanExternalName != "large" {
		t.Fatalf("team-b/db: record %+v, want Ready on plan large (the owner's copy)", rec)
	}

	// The owner removes its manifest; the copy alone is refused, and the
	// instance is neither deleted nor changed to the copy's plan.
	f.broker.ResetCalls()
	f.repo.Push("team b drops db", nil, []string{"teams/b/db.yaml"})
	res = f.sync(f.reconciler(opts))
	for _, c := range f.broker.Calls() {
		if c.Endpoint.Mutating() {
			t.Errorf("mutating call %s %s", c.Method, c.Path)
		}
	}
	if s := stepOf(t, res.Plan, ref.Kind, ref.Namespace, ref.Name); s.Action != plan.None || !strings.Contains(s.Error, "tenancy policy") {
		t.Errorf("team-b/db with only the refused copy: %s, error %q", s.Action, s.Error)
	}
	if inst, _ := brokerState(f.broker); len(inst) != 1 || inst[rec.ExternalID] == "" || !strings.HasPrefix(inst[rec.ExternalID], osbtest.PlanDBLarge+"/") {
		t.Errorf("broker holds %v, want %s on the large plan", inst, rec.ExternalID)
	}
}

// The caps hold in plan order, and later passes start the rest.
func TestTenancyPolicyCaps(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"osbgit.yaml":          osbgitYAML, // prune on, maxDeletions 10
			"platform/broker.yaml": brokerYAML(url),
			"teams/a/a1.yaml":      teamInstance("team-a", "a1", "small"),
			"teams/a/a2.yaml":      teamInstance("team-a", "a2", "small"),
			"teams/a/a3.yaml":      teamInstance("team-a", "a3", "small"),
		}
	})
	opts := Options{Policy: mustPolicy(t, tenancyPolicy+"maxCreatesPerPass: 2\nmaxDeletesPerPass: 1\n")}
	res := f.sync(f.reconciler(opts))
	if got := strings.Join(provisioned(t, f.broker, osbtest.EndpointProvision), " "); got != "team-a/a1 team-a/a2" {
		t.Errorf("first pass provisioned %q, want the first two in plan order", got)
	}
	s := stepOf(t, res.Plan, manifest.KindServiceInstance, "team-a", "a3")
	if s.Action != plan.None || !strings.Contains(s.Error, "maxCreatesPerPass (policy.yaml:20) lets one pass start 2 create(s)") {
		t.Errorf("a3: %s, error %q", s.Action, s.Error)
	}
	if rec := recordIn(t, f, s.Ref); rec == nil || rec.Error == nil || !strings.Contains(rec.Error.Message, "held back") {
		t.Errorf("a3's record %+v, want the held-back error", rec)
	}
	f.sync(f.reconciler(opts))
	if inst, _ := brokerState(f.broker); len(inst) != 3 {
		t.Fatalf("after the second pass the broker holds %v, want 3 instances", inst)
	}
	if rec := recordIn(t, f, s.Ref); rec == nil || rec.Phase != manifest.PhaseReady || rec.Error != nil {
		t.Errorf("a3's record %+v, want Ready without error", rec)
	}

	// Deletes: one per pass.
	f.repo.Push("remove all", nil, []string{"teams/a/a1.yaml", "teams/a/a2.yaml", "teams/a/a3.yaml"})
	for pass, want := range []int{2, 1, 0} {
		f.sync(f.reconciler(opts))
		if inst, _ := brokerState(f.broker); len(inst) != want {
			t.Errorf("after delete pass %d the broker holds %d instances, want %d", pass+1, len(inst), want)
		}
	}
}

// A pass whose caps held steps back leaves the next pass due, though the
// head does not move: with a pass state (run, a CronJob with a cache
// dir), the quiet-head short-cut must not skip the rest for good.
func TestTenancyPolicyCapsWithPassState(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"broker.yaml": brokerYAML(url),
			"apps/a.yaml": instanceYAML("a", "small", ""),
			"apps/b.yaml": instanceYAML("b", "small", ""),
			"apps/c.yaml": instanceYAML("c", "small", ""),
		}
	})
	opts := Options{Policy: mustPolicy(t, "apiVersion: osbgit.dev/v1alpha1\nkind: Policy\nmaxCreatesPerPass: 1\n"),
		StatePath: filepath.Join(t.TempDir(), "state.json")}
	for pass, want := range []int{1, 2, 3} {
		if res := f.sync(f.reconciler(opts)); res.Skipped {
			t.Fatalf("pass %d skipped (%s) with creates held back", pass+1, res.Reason)
		}
		if inst, _ := brokerState(f.broker); len(inst) != want {
			t.Fatalf("after pass %d the broker holds %d instances, want %d", pass+1, len(inst), want)
		}
	}
	if res := f.sync(f.reconciler(opts)); !res.Skipped {
		t.Errorf("the pass after the last create was not skipped: %v", res.Plan.Steps)
	}
}
