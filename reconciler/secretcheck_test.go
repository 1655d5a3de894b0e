package reconciler

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// Issue 21, item 3: Secrets that change without a commit. Every test runs
// its passes as a CronJob does: a fresh reconciler per sync, the pass state
// in a file.

// cronSync runs one sync in a fresh reconciler with the state file.
func (f *fixture) cronSync(state string) *SyncResult {
	f.t.Helper()
	return f.sync(f.reconciler(Options{StatePath: state}))
}

// wantQuiet checks that a sync with nothing changed still ends early,
// with no broker call.
func wantQuiet(t *testing.T, f *fixture, state string) {
	t.Helper()
	f.broker.ResetCalls()
	if res := f.cronSync(state); !res.Skipped {
		t.Fatalf("sync with nothing changed not skipped: %+v", res)
	}
	if calls := f.broker.Calls(); len(calls) != 0 {
		t.Fatalf("skipped sync made %d broker calls", len(calls))
	}
}

// getSecret reads a Secret of the fixture's store (nil when missing).
func getSecret(t *testing.T, f *fixture, ns, name string) map[string][]byte {
	t.Helper()
	data, err := f.store.Get(context.Background(), ns, name)
	if err != nil {
		return nil
	}
	return data
}

// stepFor returns ref's step of the plan.
func stepFor(t *testing.T, p *plan.Plan, ref manifest.Ref) plan.Step {
	t.Helper()
	for _, s := range p.Steps {
		if s.Ref == ref {
			return s
		}
	}
	t.Fatalf("no step for %s", ref)
	return plan.Step{}
}

// assertNoValueIn fails when a value occurs in the state file.
func assertNoValueIn(t *testing.T, state string, values ...string) {
	t.Helper()
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if strings.Contains(string(b), v) {
			t.Errorf("pass state holds a Secret value (%d bytes)", len(v))
		}
	}
}

// A rotated parametersFrom Secret: the next sync, with the head unchanged,
// updates the instance with the new value.
func TestRotatedParametersFromSecretUpdatesInstance(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": instanceYAML("db", "small", "") + "  parametersFrom:\n  - secretKeyRef: {name: db-params, key: parameters}\n"}
	})
	ctx := context.Background()
	if err := f.store.Put(ctx, "apps", "db-params", secretOf("parameters", `{"size": 1}`)); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	f.cronSync(state)
	wantQuiet(t, f, state)

	if err := f.store.Put(ctx, "apps", "db-params", secretOf("parameters", `{"size": 7}`)); err != nil {
		t.Fatal(err)
	}
	res := f.cronSync(state)
	if res.Skipped {
		t.Fatalf("sync after the rotation skipped: %s", res.Reason)
	}
	if n := len(f.broker.CallsTo(osbtest.EndpointUpdate)); n != 1 {
		t.Fatalf("%d updates, want 1", n)
	}
	for _, in := range f.broker.Instances() {
		if got := in.Parameters["size"]; got != float64(7) {
			t.Fatalf("instance parameters after the rotation: size %v, want 7", got)
		}
	}
	wantQuiet(t, f, state)
	assertNoValueIn(t, state, `{"size": 7}`, brokerPass)
}

// authBroker is an osbtest broker behind basic auth whose password can
// change, as a broker's does when its credentials are rotated.
type authBroker struct {
	next     http.Handler
	mu       sync.Mutex
	pass     string
	rejected int
}

func (a *authBroker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	a.mu.Lock()
	good := ok && u == brokerUser && p == a.pass
	if !good {
		a.rejected++
	}
	a.mu.Unlock()
	if !good {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a.next.ServeHTTP(w, r)
}

func (a *authBroker) rotate(pass string) (rejected int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pass, rejected, a.rejected = pass, a.rejected, 0
	return rejected
}

// A rotated broker auth Secret: the next sync, head unchanged, relists the
// broker with the new credentials (never once with the old ones).
func TestRotatedBrokerAuthSecretRelists(t *testing.T) {
	t.Parallel()
	b := osbtest.New(osbtest.Config{RequireRequestIdentity: true})
	auth := &authBroker{next: b, pass: brokerPass}
	srv := httptest.NewServer(auth)
	t.Cleanup(srv.Close)
	store, err := secretstore.NewDir(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	putAuth := func(pass string) {
		if err := store.Put(ctx, "osbgit-system", "broker-auth", secretOf("username", brokerUser, "password", pass)); err != nil {
			t.Fatal(err)
		}
	}
	putAuth(brokerPass)
	f := &fixture{t: t, broker: b, url: srv.URL, store: store,
		repo: gittest.New(t, map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(srv.URL),
			"apps/db.yaml": instanceYAML("db", "small", "")})}
	state := filepath.Join(t.TempDir(), "state.json")
	f.cronSync(state)
	wantQuiet(t, f, state)

	const newPass = "rotated-broker-pass-9f3c"
	putAuth(newPass)
	if n := auth.rotate(newPass); n != 0 {
		t.Fatalf("%d requests rejected before the rotation", n)
	}
	f.broker.ResetCalls()
	res := f.cronSync(state)
	if res.Skipped {
		t.Fatalf("sync after the auth rotation skipped: %s", res.Reason)
	}
	if n := len(f.broker.CallsTo(osbtest.EndpointCatalog)); n != 1 {
		t.Fatalf("%d catalog fetches after the auth rotation, want 1 (relist)", n)
	}
	if n := auth.rotate(newPass); n != 0 {
		t.Fatalf("%d requests sent with the old credentials", n)
	}
	if len(res.CatalogErrors) != 0 {
		t.Fatalf("catalog errors: %v", res.CatalogErrors)
	}
	wantQuiet(t, f, state)
	assertNoValueIn(t, state, newPass, brokerPass)
}

// A binding Secret deleted or edited by someone is restored from the
// broker: fetched where the service's bindings are retrievable, else by
// binding again (a rotation on a rotatable plan, unbind and bind on
// another). The pass state may also be lost (a new cache volume): a deleted
// Secret is still restored.
func TestBindingSecretRestored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		plan string
		// notRetrievable: the service's bindings_retrievable is false.
		notRetrievable bool
		// edit edits the Secret; nil deletes it.
		edit map[string]string
		// loseState drops the pass state before the sync.
		loseState bool
		// wantReason is the restore step's reason (prefix).
		wantReason string
		// wantMutating are the mutating calls the restore makes.
		wantMutating []osbtest.Endpoint
		// newBinding: the restored credentials are a new binding's.
		newBinding bool
	}{
		{name: "deleted, retrievable: fetched", plan: "small",
			wantReason: "Secret apps/a-bind was deleted: restored from the broker (fetch binding)"},
		{name: "edited value, retrievable: fetched", plan: "small", edit: map[string]string{"DATABASE_URL": "postgres://evil"},
			wantReason: "Secret apps/a-bind no longer holds what osbgit wrote: restored from the broker (fetch binding)"},
		{name: "key added, retrievable: fetched", plan: "small", edit: map[string]string{"EXTRA": "x"},
			wantReason: "Secret apps/a-bind no longer holds what osbgit wrote: restored from the broker (fetch binding)"},
		{name: "deleted, pass state lost: fetched", plan: "small", loseState: true,
			wantReason: "Secret apps/a-bind was deleted: restored from the broker (fetch binding)"},
		{name: "deleted, not retrievable, rotatable plan: rotation", plan: "small", notRetrievable: true,
			wantReason:   "Secret apps/a-bind was deleted: restored from the broker by binding again",
			wantMutating: []osbtest.Endpoint{osbtest.EndpointBind, osbtest.EndpointUnbind}, newBinding: true},
		{name: "edited, not retrievable, plan not rotatable: unbind and bind", plan: "large", notRetrievable: true,
			edit:         map[string]string{"DATABASE_URL": "postgres://evil"},
			wantReason:   "Secret apps/a-bind no longer holds what osbgit wrote: restored from the broker by binding again",
			wantMutating: []osbtest.Endpoint{osbtest.EndpointUnbind, osbtest.EndpointBind}},
	}
	bindRef := manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "a-bind"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(url string) map[string]string {
				return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
					"apps/a.yaml": instanceYAML("a", tt.plan, ""), "apps/a-bind.yaml": bindingYAML("a-bind", "a")}
			})
			if tt.notRetrievable {
				cat := osbtest.DefaultCatalog()
				for i := range cat.Services {
					cat.Services[i].BindingsRetrievable = false
				}
				f.broker.SetCatalog(cat)
			}
			ctx := context.Background()
			state := filepath.Join(t.TempDir(), "state.json")
			f.cronSync(state)
			wrote := getSecret(t, f, "apps", "a-bind")
			if len(wrote) == 0 {
				t.Fatal("no binding Secret after the first sync")
			}
			wantQuiet(t, f, state)

			if tt.edit == nil {
				if err := f.store.Delete(ctx, "apps", "a-bind"); err != nil {
					t.Fatal(err)
				}
			} else {
				data := maps.Clone(wrote)
				for k, v := range tt.edit {
					data[k] = []byte(v)
				}
				sec := secretOf()
				sec.Data = data
				if err := f.store.Put(ctx, "apps", "a-bind", sec); err != nil {
					t.Fatal(err)
				}
			}
			if tt.loseState {
				if err := os.Remove(state); err != nil {
					t.Fatal(err)
				}
			}
			f.broker.ResetCalls()
			// diff shows the restore, and makes no mutating call.
			d, err := f.reconciler(Options{StatePath: state}).Diff(ctx, DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if s := stepFor(t, d.Plan, bindRef); !strings.HasPrefix(s.Reason, tt.wantReason) {
				t.Errorf("diff: reason %q, want %q", s.Reason, tt.wantReason)
			}
			if n := len(f.broker.MutatingCalls()); n != 0 {
				t.Fatalf("diff made %d mutating calls", n)
			}
			res := f.cronSync(state)
			if res.Skipped {
				t.Fatalf("sync after the Secret changed skipped: %s", res.Reason)
			}
			s := stepFor(t, res.Plan, bindRef)
			if !strings.HasPrefix(s.Reason, tt.wantReason) {
				t.Errorf("reason %q, want %q", s.Reason, tt.wantReason)
			}
			var mutating []osbtest.Endpoint
			for _, c := range f.broker.MutatingCalls() {
				mutating = append(mutating, c.Endpoint)
			}
			if !slices.Equal(mutating, tt.wantMutating) {
				t.Errorf("mutating calls %v, want %v", mutating, tt.wantMutating)
			}
			if res.Failed() {
				t.Fatalf("restore failed: %+v", res.Exec.Outcomes)
			}
			_, bindings := brokerState(f.broker)
			if len(bindings) != 1 {
				t.Fatalf("broker holds %d bindings, want 1: %v", len(bindings), bindings)
			}
			var creds map[string]any
			for _, bn := range f.broker.Bindings() {
				creds = bn.Credentials
			}
			got := getSecret(t, f, "apps", "a-bind")
			if want := creds["uri"]; string(got["DATABASE_URL"]) != want || len(got) != len(wrote) {
				t.Errorf("restored Secret keys %v, DATABASE_URL is the broker's: %v", keys(got), string(got["DATABASE_URL"]) == want)
			}
			if same := maps.EqualFunc(got, wrote, func(a, b []byte) bool { return string(a) == string(b) }); same == tt.newBinding {
				t.Errorf("restored Secret equal to the first one: %v, want %v", same, !tt.newBinding)
			}
			wantQuiet(t, f, state)
			assertNoValueIn(t, state, credentialValues(creds)...)
		})
	}
}

// BenchmarkSecretsChanged is the check a sync with an unchanged head makes,
// over 1,000 referenced Secrets of two keys each in the dir store (go test
// -bench SecretsChanged -run '^$' ./reconciler/).
func BenchmarkSecretsChanged(b *testing.B) {
	store, err := secretstore.NewDir(filepath.Join(b.TempDir(), "secrets"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	r := &Reconciler{Secrets: store, State: &PassState{}}
	h := r.secretHasher(ctx)
	ss := &SecretSums{KeyID: h.id, Referenced: map[string]string{}}
	for i := range 1000 {
		name := SecretName{Namespace: "apps", Name: "s-" + strconv.Itoa(i)}
		data := map[string][]byte{"username": []byte("user"), "password": []byte("pass-" + strconv.Itoa(i))}
		sec := secretOf()
		sec.Data = data
		if err := store.Put(ctx, name.Namespace, name.Name, sec); err != nil {
			b.Fatal(err)
		}
		ss.Referenced[name.String()] = h.sum(data)
	}
	r.State.Secrets = ss
	b.ResetTimer()
	for b.Loop() {
		if changed := r.secretsChanged(ctx, true); len(changed) != 0 {
			b.Fatalf("changed: %v", changed)
		}
	}
}

// TestGatedBrokerAuthSecretIsNotRead: a broker manifest naming an auth
// Secret in a namespace the operator does not allow (any committer can
// write one) is not contacted, and its Secret is not read, checked or
// watched either: it never enters the pass state, and editing it does not
// wake a pass.
func TestGatedBrokerAuthSecretIsNotRead(t *testing.T) {
	t.Parallel()
	evil := strings.NewReplacer("name: test-broker", "name: evil-broker", "namespace: osbgit-system", "namespace: kube-system",
		"name: broker-auth", "name: victim").Replace(brokerYAML("https://evil.example.invalid"))
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url), "brokers/evil.yaml": evil,
			"apps/db.yaml": instanceYAML("db", "small", "")}
	})
	putVictim := func(pass string) {
		if err := f.store.Put(context.Background(), "kube-system", "victim", secretOf("username", "root", "password", pass)); err != nil {
			t.Fatal(err)
		}
	}
	putVictim("victim-pass-1")
	state := filepath.Join(t.TempDir(), "state.json")
	f.cronSync(state)
	if st, err := LoadPassState(state); err != nil || st.Secrets == nil || len(st.Secrets.Referenced) == 0 {
		t.Fatalf("state %+v, %v: want the allowed broker's auth Secret checked", st, err)
	} else if _, ok := st.Secrets.Referenced["kube-system/victim"]; ok {
		t.Fatalf("the not-contacted broker's auth Secret is in the pass state: %v", st.Secrets.Referenced)
	}
	putVictim("victim-pass-2")
	wantQuiet(t, f, state)
}

// Binding Secrets are read back on the sweep schedule
// (Options.SecretSweepInterval), not in every sync: between sweeps a
// quiet-head sync reads only the parametersFrom and broker auth Secrets,
// so a deleted binding Secret stays deleted until the sweep is due (or a
// Secret trigger asks for one), and then is restored.
func TestBindingSecretsSweptOnSchedule(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// sync runs the sync after the deletion, at an offset from the
		// first sync.
		after time.Duration
		// afterSecretChange: SyncAfterSecretChange (run's Secret trigger).
		afterSecretChange bool
		wantRestored      bool
	}{
		{name: "sweep not due: not read", after: 5 * time.Minute},
		{name: "sweep due: restored", after: 10 * time.Minute, wantRestored: true},
		{name: "Secret trigger: restored", after: time.Minute, afterSecretChange: true, wantRestored: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(url string) map[string]string {
				return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
					"apps/a.yaml": instanceYAML("a", "small", ""), "apps/a-bind.yaml": bindingYAML("a-bind", "a")}
			})
			ctx := context.Background()
			state := filepath.Join(t.TempDir(), "state.json")
			start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
			syncAt := func(at time.Time, afterSecretChange bool) *SyncResult {
				t.Helper()
				r := f.reconciler(Options{StatePath: state, SecretSweepInterval: 10 * time.Minute})
				r.Now = func() time.Time { return at }
				sync := r.Sync
				if afterSecretChange {
					sync = r.SyncAfterSecretChange
				}
				res, err := sync(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			syncAt(start, false)
			if len(getSecret(t, f, "apps", "a-bind")) == 0 {
				t.Fatal("no binding Secret after the first sync")
			}
			if err := f.store.Delete(ctx, "apps", "a-bind"); err != nil {
				t.Fatal(err)
			}
			f.broker.ResetCalls()
			res := syncAt(start.Add(tt.after), tt.afterSecretChange)
			restored := len(getSecret(t, f, "apps", "a-bind")) > 0
			if restored != tt.wantRestored {
				t.Fatalf("binding Secret restored: %v, want %v (sync skipped %v: %s)", restored, tt.wantRestored, res.Skipped, res.Reason)
			}
			if !tt.wantRestored && (!res.Skipped || len(f.broker.Calls()) != 0) {
				t.Fatalf("sync before the sweep is due: skipped %v, %d broker calls", res.Skipped, len(f.broker.Calls()))
			}
			if tt.wantRestored {
				// The sweep is recorded: the next sync within the
				// interval is quiet and reads no binding Secret.
				if res := syncAt(start.Add(tt.after+time.Minute), false); !res.Skipped {
					t.Fatalf("sync after the restore not skipped: %s", res.Reason)
				}
			}
		})
	}
}

// With the Kubernetes store, a sweep reads the binding Secrets with one
// LIST per namespace instead of a GET each, and says of each what a GET
// would: a deleted one is missing, one whose managed-by label someone
// removed is read by itself (so its edit is seen), and the referenced
// Secrets are read by name.
func TestSweepListsBindingSecretsPerNamespace(t *testing.T) {
	ctx := context.Background()
	cs := kubefake.NewClientset()
	store := secretstore.NewKube(cs)
	put := func(ns, name, value string) {
		t.Helper()
		if err := store.Put(ctx, ns, name, secretOf("password", value)); err != nil {
			t.Fatal(err)
		}
	}
	put("apps", "a-bind", "a")
	put("apps", "b-bind", "b")
	put("apps", "unlabelled", "edited")
	put("apps", "db-params", "p")
	put("other", "c-bind", "c")
	sec, err := cs.CoreV1().Secrets("apps").Get(ctx, "unlabelled", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Labels = nil
	if _, err := cs.CoreV1().Secrets("apps").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()

	h := newSecretHasher([]byte("records key"))
	got := readSecrets(ctx, store, h, []string{"apps/db-params"},
		[]string{"apps/a-bind", "apps/b-bind", "apps/gone", "apps/unlabelled", "other/c-bind"})

	sum := func(v string) string { return h.sum(map[string][]byte{"password": []byte(v)}) }
	want := map[string]secretRead{
		"apps/db-params":  {sum: sum("p"), keys: []string{"password"}},
		"apps/a-bind":     {sum: sum("a"), keys: []string{"password"}},
		"apps/b-bind":     {sum: sum("b"), keys: []string{"password"}},
		"apps/gone":       {sum: sumAbsent, missing: true},
		"apps/unlabelled": {sum: sum("edited"), keys: []string{"password"}},
		"other/c-bind":    {sum: sum("c"), keys: []string{"password"}},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(secretRead{})); d != "" {
		t.Fatalf("reads (-want +got):\n%s", d)
	}
	var calls []string
	for _, a := range cs.Actions() {
		call := a.GetVerb() + " " + a.GetNamespace()
		if g, ok := a.(k8stesting.GetAction); ok {
			call += "/" + g.GetName()
		}
		calls = append(calls, call)
	}
	slices.Sort(calls)
	wantCalls := []string{"get apps/db-params", "get apps/gone", "get apps/unlabelled", "list apps", "list other"}
	if !slices.Equal(calls, wantCalls) {
		t.Fatalf("calls %v, want %v", calls, wantCalls)
	}
}
