package reconciler

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
)

func brokerYAML(url string) string {
	return fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata:
  name: test-broker
spec:
  url: %s
  authInfo:
    basic:
      secretRef:
        namespace: osbgit-system
        name: broker-auth
`, url)
}

func instanceYAML(name, plan, params string) string {
	s := fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata:
  name: %s
  namespace: apps
spec:
  clusterServiceClassExternalName: osbtest-db
  clusterServicePlanExternalName: %s
`, name, plan)
	if params != "" {
		s += "  parameters:\n" + params
	}
	return s
}

func bindingYAML(name, instance string) string {
	return fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata:
  name: %s
  namespace: apps
spec:
  instanceRef:
    name: %s
  secretTransforms:
  - renameKey:
      from: uri
      to: DATABASE_URL
`, name, instance)
}

const osbgitYAML = `apiVersion: osbgit.dev/v1alpha1
kind: Config
clusterID: test-cluster
prune: true
`

// brokerState summarises what the broker holds: instance -> plan and
// binding -> instance, for assertions on outcomes.
func brokerState(b *osbtest.Broker) (instances map[string]string, bindings map[string]string) {
	instances, bindings = map[string]string{}, map[string]string{}
	for id, in := range b.Instances() {
		instances[id] = in.PlanID + "/" + string(in.State)
	}
	for id, bn := range b.Bindings() {
		bindings[id] = bn.InstanceID + "/" + string(bn.State)
	}
	return instances, bindings
}

func recordOf(t *testing.T, f *fixture, kind manifest.Kind, name string) *manifest.StatusRecord {
	t.Helper()
	return recordIn(t, f, manifest.Ref{Kind: kind, Namespace: "apps", Name: name})
}

// statusPath is ref's record path; ref must be valid.
func statusPath(t testing.TB, ref manifest.Ref) string {
	t.Helper()
	p, err := manifest.StatusPath(ref)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// recordIn reads the status record of ref at main (nil if none).
func recordIn(t *testing.T, f *fixture, ref manifest.Ref) *manifest.StatusRecord {
	t.Helper()
	p := statusPath(t, ref)
	data := f.repo.Show(p)
	if data == "" {
		return nil
	}
	rec, err := manifest.UnmarshalStatusRecord(p, []byte(data))
	if err != nil {
		t.Fatalf("record %s: %v", ref, err)
	}
	return rec
}

func TestSyncLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"osbgit.yaml":       osbgitYAML,
			"brokers/b.yaml":    brokerYAML(url),
			"apps/db.yaml":      instanceYAML("db", "small", "    size: 10\n"),
			"apps/db-bind.yaml": bindingYAML("db-bind", "db"),
		}
	})
	ctx := context.Background()

	// 1. Create instance and binding.
	res := f.sync(f.reconciler(Options{}))
	if res.Exec == nil || res.Exec.Failed() {
		t.Fatalf("first sync failed: %+v", res.Exec)
	}
	inst := recordOf(t, f, manifest.KindServiceInstance, "db")
	if inst == nil || inst.Phase != manifest.PhaseReady || inst.PlanExternalID != osbtest.PlanDBSmall {
		t.Fatalf("instance record after create: %+v", inst)
	}
	bi, ok := f.broker.Instance(inst.ExternalID)
	if !ok || bi.PlanID != osbtest.PlanDBSmall || fmt.Sprint(bi.Parameters["size"]) != "10" {
		t.Fatalf("broker instance: %+v (ok=%v)", bi, ok)
	}
	if bi.Context == nil || bi.Context.Platform != "kubernetes" || bi.Context.Namespace != "apps" || bi.Context.ClusterID != "test-cluster" || bi.Context.InstanceName != "db" {
		t.Fatalf("context sent: %+v", bi.Context)
	}
	bind := recordOf(t, f, manifest.KindServiceBinding, "db-bind")
	if bind == nil || bind.Phase != manifest.PhaseReady || bind.SecretRef == nil {
		t.Fatalf("binding record: %+v", bind)
	}
	sec, err := f.store.Get(ctx, "apps", "db-bind")
	if err != nil {
		t.Fatalf("credentials secret: %v", err)
	}
	bb, _ := f.broker.Binding(bind.ExternalID)
	if string(sec["DATABASE_URL"]) != fmt.Sprint(bb.Credentials["uri"]) || sec["uri"] != nil {
		t.Fatalf("secret keys %v: transform not applied", keys(sec))
	}
	prov := f.broker.CallsTo(osbtest.EndpointProvision)
	if len(prov) != 1 || !strings.HasPrefix(prov[0].Headers.Get("X-Broker-API-Originating-Identity"), "kubernetes ") {
		t.Fatalf("provision without a kubernetes originating identity: %v", prov)
	}
	if id := decodeIdentity(t, prov[0].Headers.Get("X-Broker-API-Originating-Identity")); id["username"] != "author@example.com" {
		t.Fatalf("originating identity %v: want the manifest commit's author", id)
	}
	if !strings.Contains(git(t, f.repo.Bare, "log", "-1", "--format=%B", "main"), "[skip ci]") {
		t.Fatal("status commit lacks the [skip ci] trailer")
	}
	// No credential in Git: the whole history.
	assertNoSecretInHistory(t, f, append(credentialValues(bb.Credentials), brokerPass))

	// 2. A no-op pass from a fresh process: zero mutating calls, zero commits.
	f.broker.ResetCalls()
	commits := f.repo.CommitCount()
	res = f.sync(f.reconciler(Options{}))
	if n := len(f.broker.MutatingCalls()); n != 0 {
		t.Fatalf("no-op pass made %d mutating calls: %+v", n, f.broker.MutatingCalls())
	}
	if got := f.repo.CommitCount(); got != commits {
		t.Fatalf("no-op pass made %d commits", got-commits)
	}

	// 3. Plan change: only plan_id is sent, parameters unchanged are not.
	f.repo.Push("db to large", map[string]string{"apps/db.yaml": instanceYAML("db", "large", "    size: 10\n")}, nil)
	f.broker.ResetCalls()
	f.sync(f.reconciler(Options{}))
	bi, _ = f.broker.Instance(inst.ExternalID)
	if bi.PlanID != osbtest.PlanDBLarge {
		t.Fatalf("plan after update: %s", bi.PlanID)
	}
	upd := f.broker.CallsTo(osbtest.EndpointUpdate)
	if len(upd) != 1 || topLevel(t, upd[0].Body)["parameters"] != nil {
		t.Fatalf("update calls %d, body %s: parameters must not be resent", len(upd), bodyOf(upd))
	}

	// 4. Parameter change: parameters sent, plan not.
	f.repo.Push("db bigger", map[string]string{"apps/db.yaml": instanceYAML("db", "large", "    size: 20\n")}, nil)
	f.broker.ResetCalls()
	f.sync(f.reconciler(Options{}))
	bi, _ = f.broker.Instance(inst.ExternalID)
	if fmt.Sprint(bi.Parameters["size"]) != "20" {
		t.Fatalf("parameters after update: %v", bi.Parameters)
	}
	upd = f.broker.CallsTo(osbtest.EndpointUpdate)
	if len(upd) != 1 || topLevel(t, upd[0].Body)["plan_id"] != nil {
		t.Fatalf("update calls %d, body %s: plan_id must not be sent", len(upd), bodyOf(upd))
	}

	// 5. Unbind (manifest removed, prune on): binding gone, Secret deleted.
	f.repo.Push("unbind", nil, []string{"apps/db-bind.yaml"})
	f.sync(f.reconciler(Options{}))
	if _, ok := f.broker.Binding(bind.ExternalID); ok {
		t.Fatal("binding still at the broker after unbind")
	}
	if _, err := f.store.Get(ctx, "apps", "db-bind"); err == nil {
		t.Fatal("credentials secret still there after unbind")
	}
	if recordOf(t, f, manifest.KindServiceBinding, "db-bind") != nil {
		t.Fatal("binding record still there after unbind")
	}

	// 6. Deprovision.
	f.repo.Push("deprovision", nil, []string{"apps/db.yaml"})
	f.sync(f.reconciler(Options{}))
	if ins, bns := brokerState(f.broker); len(ins) != 0 || len(bns) != 0 {
		t.Fatalf("broker not empty after deprovision: %v %v", ins, bns)
	}
	if got := f.repo.Files(".osbgit/status"); len(got) != 0 {
		t.Fatalf("records left: %v", got)
	}
}

func TestSyncSkipsWhenNothingDue(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url), "apps/db.yaml": instanceYAML("db", "small", "")}
	})
	state := filepath.Join(t.TempDir(), "state.json")
	f.sync(f.reconciler(Options{StatePath: state}))
	f.broker.ResetCalls()
	res := f.sync(f.reconciler(Options{StatePath: state}))
	if !res.Skipped {
		t.Fatalf("second pass not skipped: %+v", res)
	}
	if n := len(f.broker.Calls()); n != 0 {
		t.Fatalf("skipped pass made %d broker calls", n)
	}
	// A human commit touching only .osbgit/ is no manifest change: its
	// pass only puts osbgit's records back, with no broker call...
	f.repo.Push("note", map[string]string{".osbgit/README": "records\n"}, nil)
	if res := f.sync(f.reconciler(Options{StatePath: state})); res.Skipped || res.Commit == "" || len(f.broker.MutatingCalls()) != 0 {
		t.Fatalf("pass after an .osbgit-only commit: skipped %v (%s), commit %q, calls %v", res.Skipped, res.Reason, res.Commit, f.broker.MutatingCalls())
	}
	if got := f.repo.Show(".osbgit/README"); got != "" {
		t.Fatalf(".osbgit/README left: %q", got)
	}
	// ...and osbgit's own commit does not count as a change either.
	if res := f.sync(f.reconciler(Options{StatePath: state})); !res.Skipped {
		t.Fatalf("pass after osbgit's restoring commit not skipped: %s", res.Reason)
	}
	// A manifest change is picked up.
	f.repo.Push("large", map[string]string{"apps/db.yaml": instanceYAML("db", "large", "")}, nil)
	if res := f.sync(f.reconciler(Options{StatePath: state})); res.Skipped {
		t.Fatal("manifest change skipped")
	}
	if rec := recordOf(t, f, manifest.KindServiceInstance, "db"); rec.PlanExternalID != osbtest.PlanDBLarge {
		t.Fatalf("record after change: %+v", rec)
	}
}

func TestSyncAsyncConvergesAcrossPasses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": instanceYAML("db", "async", ""), "apps/db-bind.yaml": bindingYAML("db-bind", "db")}
	})
	var passes int
	// Provision, bind: 202 each, then 2 "in progress" polls and a final one.
	for passes = 1; passes <= 12; passes++ {
		f.sync(f.reconciler(Options{})) // InlinePoll 0: record and return
		if rec := recordOf(t, f, manifest.KindServiceBinding, "db-bind"); rec != nil && rec.Phase == manifest.PhaseReady {
			break
		}
	}
	if passes > 12 {
		t.Fatalf("not converged after 12 passes: %+v", recordOf(t, f, manifest.KindServiceInstance, "db"))
	}
	if passes < 3 {
		t.Fatalf("converged in %d passes; the async plan needs polls across passes", passes)
	}
	if n := f.broker.Count(osbtest.EndpointProvision); n != 1 {
		t.Fatalf("%d provision calls, want 1", n)
	}
}

// TestCrashBeforeEveryCall kills the pass before its Nth broker call
// (and stops every later Git write, as a dead process would), then runs fresh
// passes: the broker must end with exactly the desired resources — no
// duplicate, no orphan.
func TestCrashBeforeEveryCall(t *testing.T) {
	t.Parallel()
	skipWhenShort(t)
	want := desiredState{
		instances: map[string]desiredInstance{"a": {"small", 1}, "b": {"async", 1}},
		bindings:  map[string]string{"a-bind": "a", "b-bind": "b"},
	}
	done := false
	for n := 0; !done && n < 40; n++ {
		t.Run(fmt.Sprintf("crash-before-call-%d", n+1), func(t *testing.T) {
			f := newFixture(t, want.files)
			crash := &crashTransport{allowed: n, base: http.DefaultTransport}
			f.transport = crash
			r := f.reconciler(Options{InlinePoll: 0})
			r.Source = crashingSource{Source: r.Source, crash: crash}
			for i := 0; i < 10 && !crash.isCrashed(); i++ {
				r.Sync(context.Background()) // errors expected once crashed
			}
			if !crash.isCrashed() {
				done = true // every call of a full convergence has been a crash point
				return
			}
			f.transport = nil
			// Passes until converged (at most 10), and one more that must
			// change nothing: the passes after it would repeat it.
			f.convergeAfterFaults(t, want, 10)
			ins, bns := brokerState(f.broker)
			if len(ins) != 2 || len(bns) != 2 {
				t.Fatalf("broker holds %d instances %v and %d bindings %v, want 2 and 2", len(ins), ins, len(bns), bns)
			}
			for id, st := range ins {
				if !strings.HasSuffix(st, "/ready") {
					t.Errorf("instance %s: %s", id, st)
				}
			}
			for _, name := range []string{"a", "b"} {
				rec := recordOf(t, f, manifest.KindServiceInstance, name)
				if rec == nil || rec.Phase != manifest.PhaseReady {
					t.Fatalf("record %s: %+v", name, rec)
				}
				if _, ok := f.broker.Instance(rec.ExternalID); !ok {
					t.Fatalf("record %s names %s, unknown to the broker", name, rec.ExternalID)
				}
			}
		})
	}
}

func decodeIdentity(t *testing.T, h string) map[string]any {
	t.Helper()
	_, b64, _ := strings.Cut(h, " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("identity header %q: %v", h, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("identity header %q: %v", h, err)
	}
	return m
}

func topLevel(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("request body: %v", err)
	}
	return m
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func bodyOf(calls []osbtest.Call) string {
	var s []string
	for _, c := range calls {
		s = append(s, string(c.Body))
	}
	return strings.Join(s, " | ")
}

func credentialValues(creds map[string]any) []string {
	var out []string
	for k, v := range creds {
		if s, ok := v.(string); ok && len(s) >= 6 && (strings.Contains(k, "pass") || strings.Contains(k, "uri") || strings.Contains(k, "secret")) {
			out = append(out, s)
		}
	}
	return out
}

// assertNoSecretInHistory greps every blob of every commit for the values.
func assertNoSecretInHistory(t *testing.T, f *fixture, values []string) {
	t.Helper()
	dump := f.repo.History()
	for _, v := range values {
		if v != "" && strings.Contains(dump, v) {
			t.Fatalf("a credential value appears in the Git history")
		}
	}
}

// TestUnreadableInputNeverDeletes: a manifest path that vanished, or a
// broken osbgit.yaml, must not be read as "every manifest was removed".
func TestUnreadableInputNeverDeletes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML + "path: services\n", "services/b.yaml": brokerYAML(url),
			"services/db.yaml": instanceYAML("db", "small", "")}
	})
	f.sync(f.reconciler(Options{}))
	if len(f.broker.Instances()) != 1 {
		t.Fatal("precondition: instance provisioned")
	}
	// The manifest directory is renamed away.
	gittest.Git(t, f.repo.Clone(), "pull", "-q", "origin", "main")
	gittest.Git(t, f.repo.Clone(), "mv", "services", "moved")
	gittest.Git(t, f.repo.Clone(), "commit", "-q", "-m", "move")
	gittest.Git(t, f.repo.Clone(), "push", "-q", "origin", "HEAD:main")
	f.sync(f.reconciler(Options{}))
	if len(f.broker.Instances()) != 1 || f.broker.Count(osbtest.EndpointDeprovision) != 0 {
		t.Fatal("a missing manifest path deprovisioned the instance")
	}
	// A broken osbgit.yaml stops the pass.
	f.repo.Push("broken config", map[string]string{"osbgit.yaml": osbgitYAML + "path: moved\nconcurrency: many\n"}, nil)
	if _, err := f.reconciler(Options{}).Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "osbgit.yaml") {
		t.Fatalf("sync with a broken osbgit.yaml: %v", err)
	}
	if len(f.broker.MutatingCalls()) != 1 {
		t.Fatalf("mutating calls: %d", len(f.broker.MutatingCalls()))
	}
}

// withRole is binding a-bind of instance a with parameter role: changing
// it rotates the binding (the small plan is binding_rotatable).
func withRole(role string) string {
	return bindingYAML("a-bind", "a") + "  parameters:\n    role: " + role + "\n"
}

// rotationManifests are instance a and its binding a-bind (role reader).
func rotationManifests(url string) map[string]string {
	return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
		"apps/a.yaml": instanceYAML("a", "small", ""), "apps/a-bind.yaml": withRole("reader")}
}

// TestRotationCrashBeforeEveryCall: a binding rotation (new binding_id
// with predecessor_binding_id on a binding_rotatable plan) interrupted
// before each of its calls — the process dies, Git writes included — is
// finished by later passes: the broker ends with exactly the new binding,
// the predecessor unbound (never orphaned with live credentials), the
// Secret holding the new binding's credentials and the record clean.
func TestRotationCrashBeforeEveryCall(t *testing.T) {
	t.Parallel()
	skipWhenShort(t)
	done := false
	for n := 0; !done && n < 20; n++ {
		t.Run(fmt.Sprintf("crash-before-call-%d", n+1), func(t *testing.T) {
			f := newFixture(t, rotationManifests)
			f.sync(f.reconciler(Options{}))
			first := recordOf(t, f, manifest.KindServiceBinding, "a-bind")
			if first == nil || first.Phase != manifest.PhaseReady {
				t.Fatalf("binding before the rotation: %+v", first)
			}
			f.repo.Push("rotate a-bind", map[string]string{"apps/a-bind.yaml": withRole("writer")}, nil)

			crash := &crashTransport{allowed: n, base: http.DefaultTransport}
			f.transport = crash
			r := f.reconciler(Options{InlinePoll: 0})
			r.Source = crashingSource{Source: r.Source, crash: crash}
			for i := 0; i < 5 && !crash.isCrashed(); i++ {
				r.Sync(context.Background()) // errors expected once crashed
			}
			if !crash.isCrashed() {
				done = true // every call of the rotation has been a crash point
			}
			f.transport = nil
			for range 4 {
				f.sync(f.reconciler(Options{}))
			}

			rec := recordOf(t, f, manifest.KindServiceBinding, "a-bind")
			if rec == nil || rec.Phase != manifest.PhaseReady || rec.PredecessorExternalID != "" {
				t.Fatalf("record after recovery: %+v", rec)
			}
			if rec.ExternalID == first.ExternalID {
				t.Fatalf("binding not rotated: still %s", rec.ExternalID)
			}
			_, bindings := brokerState(f.broker)
			if len(bindings) != 1 {
				t.Fatalf("broker holds bindings %v, want only the new %s (predecessor %s unbound)", bindings, rec.ExternalID, first.ExternalID)
			}
			bb, ok := f.broker.Binding(rec.ExternalID)
			if !ok || fmt.Sprint(bb.Parameters["role"]) != "writer" || bb.PredecessorBindingID != first.ExternalID {
				t.Fatalf("broker binding %s: %+v (ok=%v), want role writer and predecessor %s", rec.ExternalID, bb, ok, first.ExternalID)
			}
			sec, err := f.store.Get(context.Background(), "apps", "a-bind")
			if err != nil || string(sec["DATABASE_URL"]) != fmt.Sprint(bb.Credentials["uri"]) {
				t.Fatalf("Secret holds %q (err %v), want the new binding's uri %v", sec["DATABASE_URL"], err, bb.Credentials["uri"])
			}
		})
	}
	if !done {
		t.Fatal("the rotation made more calls than the test crashes before")
	}
}

// TestRotationPredecessorBusy: the predecessor's unbind is answered 422
// ConcurrencyError twice (a broker still busy with it). No pass fails, the
// next passes only retry the unbind (no new bind, no second rotation), and
// the rotation ends with exactly the new binding.
func TestRotationPredecessorBusy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, rotationManifests)
	f.sync(f.reconciler(Options{}))
	first := recordOf(t, f, manifest.KindServiceBinding, "a-bind")
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUnbind, BindingID: first.ExternalID, Times: 2, Status: http.StatusUnprocessableEntity,
		Body: []byte(`{"error":"ConcurrencyError","description":"busy"}`)})
	f.repo.Push("rotate a-bind", map[string]string{"apps/a-bind.yaml": withRole("writer")}, nil)
	for pass := 1; pass <= 3; pass++ {
		res := f.sync(f.reconciler(Options{}))
		if res.Failed() {
			t.Fatalf("pass %d failed: %+v", pass, res.Exec.Counts)
		}
	}
	if n := f.broker.Count(osbtest.EndpointBind); n != 2 {
		t.Errorf("%d binds, want 2 (the first binding and its rotation)", n)
	}
	if n := f.broker.Count(osbtest.EndpointUnbind); n != 3 {
		t.Errorf("%d unbinds, want 3 (two answered 422, then the unbind)", n)
	}
	rec := recordOf(t, f, manifest.KindServiceBinding, "a-bind")
	if rec == nil || rec.Phase != manifest.PhaseReady || rec.PredecessorExternalID != "" || rec.ExternalID == first.ExternalID {
		t.Fatalf("record after the rotation: %+v", rec)
	}
	if _, bindings := brokerState(f.broker); len(bindings) != 1 {
		t.Fatalf("broker holds bindings %v, want only %s", bindings, rec.ExternalID)
	}
}

// brokenStateStore fails every load and save, as an unreachable API server
// or a missing RBAC rule would.
type brokenStateStore struct{ loads, saves int }

func (b *brokenStateStore) LoadState(context.Context) (*PassState, error) {
	b.loads++
	return nil, errors.New("configmaps \"osbgit-state\" is forbidden")
}

func (b *brokenStateStore) SaveState(context.Context, *PassState) error {
	b.saves++
	return errors.New("configmaps \"osbgit-state\" is forbidden")
}

// A state store that cannot be read or written costs full passes, never a
// failed one: the pass converges and the next pass (full again) finds
// nothing to change.
func TestSyncWithBrokenStateStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url), "apps/db.yaml": instanceYAML("db", "small", "")}
	})
	store := &brokenStateStore{}
	res := f.sync(f.reconciler(Options{StateStore: store, StatePath: filepath.Join(t.TempDir(), "unused.json")}))
	if res.Skipped || res.Failed() {
		t.Fatalf("first pass: %+v", res)
	}
	if ins, _ := brokerState(f.broker); len(ins) != 1 {
		t.Fatalf("broker has %d instances, want 1", len(ins))
	}
	f.broker.ResetCalls()
	res = f.sync(f.reconciler(Options{StateStore: store}))
	if res.Skipped {
		t.Fatal("a pass without its state was skipped")
	}
	if n := len(f.broker.MutatingCalls()); n != 0 {
		t.Errorf("second pass made %d mutating calls", n)
	}
	if store.loads != 2 || store.saves != 2 {
		t.Errorf("store used %d loads, %d saves; want 2 each (StateStore overrides StatePath)", store.loads, store.saves)
	}
}

// TestMalformedAPIVersionNeverDeletes (issue 19): an instance whose
// manifest gets a misspelt apiVersion is not "removed": with prune on, it
// is not deprovisioned, and the pass says which file and line.
func TestMalformedAPIVersionNeverDeletes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url), "apps/db.yaml": instanceYAML("db", "small", "")}
	})
	f.sync(f.reconciler(Options{}))
	f.repo.Push("typo", map[string]string{"apps/db.yaml": strings.Replace(instanceYAML("db", "small", ""),
		"servicecatalog.k8s.io/v1beta1", "servicecatalog.k8s.io / v1beta1", 1)}, nil)
	res := f.sync(f.reconciler(Options{}))
	if n := f.broker.Count(osbtest.EndpointDeprovision); n != 0 || len(f.broker.Instances()) != 1 {
		t.Fatalf("a misspelt apiVersion deprovisioned the instance (%d DELETEs)", n)
	}
	found := false
	for _, d := range res.Plan.Diagnostics {
		found = found || (d.File == "apps/db.yaml" && d.Line == 1 && d.Field == "apiVersion")
	}
	if !found {
		t.Errorf("no error at apps/db.yaml:1 apiVersion in %v", res.Plan.Diagnostics)
	}
}
