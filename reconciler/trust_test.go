package reconciler

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// listener is a server that records every request it gets and answers
// 500: a URL a pull request points a broker at.
type listener struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newListener(t *testing.T) *listener {
	l := &listener{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.auth = append(l.auth, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		l.mu.Unlock()
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *listener) requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.auth...)
}

// diffBranch plans branch as `osbgit diff --branch` does: the trusted
// branch is the repository's default branch (main), whatever is diffed.
func (f *fixture) diffBranch(t *testing.T, branch string, o DiffOptions) *DiffResult {
	t.Helper()
	repo, err := gitrepo.Open(context.Background(), gitrepo.Options{URL: f.repo.Bare, Branch: branch, TrustDefaultBranch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	if repo.TrustedBranch() != "main" {
		t.Fatalf("trusted branch = %q, want main (the default branch)", repo.TrustedBranch())
	}
	r := &Reconciler{Source: repo, Secrets: f.store, Clients: &BrokerClients{Secrets: f.store},
		NewID: func() string { return "new-id" }}
	res, err := r.Diff(context.Background(), o)
	if err != nil {
		t.Fatalf("diff %s: %v", branch, err)
	}
	return res
}

func stepOf(t *testing.T, p *plan.Plan, kind manifest.Kind, ns, name string) plan.Step {
	t.Helper()
	for _, s := range p.Steps {
		if s.Ref == (manifest.Ref{Kind: kind, Namespace: ns, Name: name}) {
			return s
		}
	}
	t.Fatalf("no step for %s %s/%s", kind, ns, name)
	return plan.Step{}
}

func renamedBroker(name, url string) string {
	return strings.Replace(brokerYAML(url), "name: test-broker", "name: "+name, 1)
}

// A pull request cannot make `osbgit diff --branch <pr>` send a broker's
// credentials to a URL of its choosing, nor fake its own preview with
// records or a statusBranch of its own.
func TestDiffOfAPullRequestSendsNoCredentialElsewhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"broker.yaml": brokerYAML(url), "db.yaml": instanceYAML("db", "small", ""), "osbgit.yaml": osbgitYAML}
	})
	f.sync(f.reconciler(Options{}))
	dbRecord := statusPath(t, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"})
	if f.repo.Show(dbRecord) == "" {
		t.Fatal("no record after the first sync")
	}
	evil := newListener(t)
	commits := f.repo.CommitCount()

	cases := []struct {
		name   string
		files  map[string]string
		remove []string
		check  func(t *testing.T, p *plan.Plan)
	}{{
		name: "a new broker naming an existing auth Secret",
		files: map[string]string{
			"evil.yaml": renamedBroker("evil-broker", evil.URL),
			"db2.yaml": strings.Replace(instanceYAML("db2", "small", ""), "clusterServiceClassExternalName: osbtest-db",
				"clusterServiceClassExternalName: osbtest-db\n  clusterServiceBrokerName: evil-broker", 1),
		},
		check: func(t *testing.T, p *plan.Plan) {
			s := stepOf(t, p, manifest.KindClusterServiceBroker, "", "evil-broker")
			if !strings.Contains(s.Error, "not contacted: differs from main") {
				t.Errorf("evil-broker error = %q, want not contacted, differs from main", s.Error)
			}
		},
	}, {
		name:  "the existing broker's URL changed",
		files: map[string]string{"broker.yaml": brokerYAML(evil.URL)},
		check: func(t *testing.T, p *plan.Plan) {
			s := stepOf(t, p, manifest.KindClusterServiceBroker, "", "test-broker")
			if s.Error != "" || !containsAny(s.Warnings, "not contacted: differs from main") || !containsAny(s.Warnings, "planned from the cached catalog") {
				t.Errorf("test-broker: error %q, warnings %q; want a warning that it was not contacted and the cached catalog was used", s.Error, s.Warnings)
			}
		},
	}, {
		name: "faked records and statusBranch in the pull request",
		files: map[string]string{
			"osbgit.yaml": osbgitYAML + "statusBranch: pr\n",
			dbRecord:      "not: a record\n",
		},
		check: func(t *testing.T, p *plan.Plan) {
			s := stepOf(t, p, manifest.KindServiceInstance, "apps", "db")
			if s.Action != plan.None || s.Error != "" || s.ExternalID != "id-0001" {
				t.Errorf("db: %s %q error %q id %q; want none with the trusted record's id-0001", s.Action, s.Reason, s.Error, s.ExternalID)
			}
		},
	}, {
		name:   "the pull request deletes a record",
		remove: []string{dbRecord},
		check: func(t *testing.T, p *plan.Plan) {
			if s := stepOf(t, p, manifest.KindServiceInstance, "apps", "db"); s.Action != plan.None {
				t.Errorf("db: %s (%s); the trusted branch's record says it exists", s.Action, s.Reason)
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.broker.Calls())
			f.repo.PushBranch("pr", tc.name, tc.files, tc.remove)
			res := f.diffBranch(t, "pr", DiffOptions{Refresh: true})
			tc.check(t, res.Plan)
			if got := evil.requests(); len(got) > 0 {
				t.Fatalf("the pull request's URL was called: %q", got)
			}
			// The trusted broker, unchanged, is still asked (refresh).
			if tc.name != "the existing broker's URL changed" && len(f.broker.Calls()) == before {
				t.Error("the trusted broker was not asked for its catalog")
			}
		})
	}
	// Nothing was written to main.
	if n := f.repo.CommitCount(); n != commits {
		t.Errorf("main has %d commits, want %d: a diff writes nothing", n, commits)
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// A broker auth Secret outside the namespaces the operator allows is an
// error at file:line, and that broker is never called with it.
func TestBrokerAuthSecretOnlyFromAllowedNamespaces(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		b := strings.Replace(brokerYAML(url), "namespace: osbgit-system", "namespace: apps", 1)
		return map[string]string{"broker.yaml": b, "db.yaml": instanceYAML("db", "small", "")}
	})
	if err := f.store.Put(context.Background(), "apps", "broker-auth", secretOf("username", brokerUser, "password", brokerPass)); err != nil {
		t.Fatal(err)
	}
	res := f.sync(f.reconciler(Options{}))
	if n := len(f.broker.Calls()); n != 0 {
		t.Fatalf("the broker was called %d times with a Secret from a namespace not allowed", n)
	}
	var found bool
	for _, d := range res.Plan.Diagnostics {
		if d.File == "broker.yaml" && d.Line > 1 && d.Field == "spec.authInfo.basic.secretRef.namespace" && d.Severity == manifest.SeverityError &&
			strings.Contains(d.Message, `not "apps"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no error at broker.yaml:line for spec.authInfo.basic.secretRef.namespace; diagnostics: %v", res.Plan.Diagnostics)
	}
	if s := stepOf(t, res.Plan, manifest.KindServiceInstance, "apps", "db"); s.Action != plan.None {
		t.Errorf("db: %s; want nothing done", s.Action)
	}
	// The operator allows it: the same repo converges.
	f.sync(f.reconciler(Options{BrokerAuthNamespaces: []string{"osbgit-system", "apps"}}))
	if inst, _ := brokerState(f.broker); len(inst) != 1 {
		t.Errorf("broker holds %d instances once apps is allowed, want 1", len(inst))
	}
}

// `osbgit diff` never says "in sync" when it could not ask: a broker it
// cannot reach and has no cached catalog of makes its entry an error (diff
// exits 2); with a cached catalog the plan comes from it, with a warning.
func TestDiffIsNotBlindWhenTheBrokerCannotBeAsked(t *testing.T) {
	t.Parallel()
	files := func(url string) map[string]string {
		return map[string]string{"broker.yaml": brokerYAML(url), "db.yaml": instanceYAML("db", "small", "")}
	}
	breakages := []struct {
		name  string
		apply func(t *testing.T, f *fixture) string // returns the broker URL to use
	}{
		{"auth Secret missing", func(t *testing.T, f *fixture) string {
			if err := f.store.Delete(context.Background(), "osbgit-system", "broker-auth"); err != nil {
				t.Fatal(err)
			}
			return f.url
		}},
		{"broker down", func(t *testing.T, f *fixture) string {
			srv := httptest.NewServer(http.NotFoundHandler())
			srv.Close()
			return srv.URL
		}},
		{"TLS not trusted", func(t *testing.T, f *fixture) string {
			srv := httptest.NewUnstartedServer(http.NotFoundHandler())
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			t.Cleanup(srv.Close)
			return srv.URL
		}},
		{"catalog over the size cap", func(t *testing.T, f *fixture) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"services":[{"name":"` + strings.Repeat("x", 17<<20) + `"}]}`))
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}},
	}
	for _, b := range breakages {
		t.Run(b.name+"/no cached catalog", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, files)
			url := b.apply(t, f)
			f.repo.Push("broker", files(url), nil)
			r := f.reconciler(Options{})
			res, err := r.Diff(context.Background(), DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s := stepOf(t, res.Plan, manifest.KindClusterServiceBroker, "", "test-broker")
			if !strings.Contains(s.Error, "the plan of 1 resource(s) cannot be decided") {
				t.Errorf("broker error = %q, want the undecided resource named", s.Error)
			}
		})
		t.Run(b.name+"/cached catalog", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, files)
			f.sync(f.reconciler(Options{}))
			url := b.apply(t, f)
			if url != f.url {
				// The URL changes: on the trusted branch itself, so the
				// broker is asked (and fails).
				f.repo.Push("moved", files(url), nil)
			}
			f.repo.Push("bigger", map[string]string{"db.yaml": instanceYAML("db", "large", "")}, nil)
			r := f.reconciler(Options{})
			res, err := r.Diff(context.Background(), DiffOptions{Refresh: true})
			if err != nil {
				t.Fatal(err)
			}
			s := stepOf(t, res.Plan, manifest.KindClusterServiceBroker, "", "test-broker")
			if s.Error != "" || !containsAny(s.Warnings, "catalog not fetched") || !containsAny(s.Warnings, "planned from the cached catalog") {
				t.Errorf("broker: error %q warnings %q; want a warning naming the cached catalog", s.Error, s.Warnings)
			}
			if db := stepOf(t, res.Plan, manifest.KindServiceInstance, "apps", "db"); db.Action != plan.Update {
				t.Errorf("db: %s, want update (decided by the cached catalog)", db.Action)
			}
		})
	}
}

// diff --offline without the Secrets of parametersFrom still previews the
// rest of the change, with a warning instead of an error.
func TestOfflineDiffWithoutSecretsComparesTheRest(t *testing.T) {
	t.Parallel()
	withFrom := func(plan string) string {
		return instanceYAML("db", plan, "") + "  parametersFrom:\n  - secretKeyRef: {name: db-params, key: parameters}\n"
	}
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"broker.yaml": brokerYAML(url), "db.yaml": withFrom("small")}
	})
	if err := f.store.Put(context.Background(), "apps", "db-params", secretOf("parameters", `{"password":"offline-secret-x"}`)); err != nil {
		t.Fatal(err)
	}
	f.sync(f.reconciler(Options{}))
	f.repo.Push("bigger", map[string]string{"db.yaml": withFrom("large")}, nil)
	r := f.reconciler(Options{})
	r.Secrets = nil // CI without a secret store
	calls := len(f.broker.Calls())
	res, err := r.Diff(context.Background(), DiffOptions{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.broker.Calls()); n != calls {
		t.Errorf("offline diff made %d broker calls", n-calls)
	}
	s := stepOf(t, res.Plan, manifest.KindServiceInstance, "apps", "db")
	if s.Error != "" || s.Action != plan.Update || !containsAny(s.Warnings, "parameters from Secrets, not compared") {
		t.Errorf("db: %s error %q warnings %q; want an update with a not-compared warning", s.Action, s.Error, s.Warnings)
	}
	for _, c := range s.Changes {
		if strings.HasPrefix(c.Path, "parameters") {
			t.Errorf("parameters shown as changed offline: %+v", c)
		}
	}
	// Nothing changed but the Secret: offline, that is in sync.
	f.repo.Push("back", map[string]string{"db.yaml": withFrom("small")}, nil)
	res, err = r.Diff(context.Background(), DiffOptions{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := stepOf(t, res.Plan, manifest.KindServiceInstance, "apps", "db"); s.Action != plan.None || s.Error != "" {
		t.Errorf("db unchanged: %s error %q, want none", s.Action, s.Error)
	}
}

// secretOf builds a Secret from key, value pairs.
func secretOf(kv ...string) secrets.Secret {
	data := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		data[kv[i]] = []byte(kv[i+1])
	}
	return secrets.Secret{Data: data}
}

// After a broker's URL change is merged, an instance the new URL answers
// 404 for is reported, not provisioned again, until an operator confirms
// the move; one the new URL holds is recorded at it without a call.
func TestMovedBrokerIsNotALostBroker(t *testing.T) {
	t.Parallel()
	files := func(url string) map[string]string {
		return map[string]string{"broker.yaml": brokerYAML(url), "db.yaml": instanceYAML("db", "small", "")}
	}
	t.Run("the new URL does not have it", func(t *testing.T) {
		f := newFixture(t, files)
		f.sync(f.reconciler(Options{}))
		rec := recordOf(t, f, manifest.KindServiceInstance, "db")
		if rec.BrokerURL != f.url {
			t.Fatalf("record brokerURL = %q, want %q", rec.BrokerURL, f.url)
		}
		empty, srv := osbtest.NewServer(t, osbtest.Config{Username: brokerUser, Password: brokerPass})
		f.repo.Push("broker moved", files(srv.URL), nil)
		res := f.sync(f.reconciler(Options{}))
		s := stepOf(t, res.Plan, manifest.KindServiceInstance, "apps", "db")
		if s.Action != plan.None || !strings.Contains(s.Error, "answers 404") || !strings.Contains(s.Error, "--confirm-broker-move test-broker") {
			t.Errorf("db: %s error %q; want blocked, naming --confirm-broker-move", s.Action, s.Error)
		}
		if n := len(empty.Instances()); n != 0 {
			t.Fatalf("the new URL got %d instances before the move was confirmed", n)
		}
		if got := recordOf(t, f, manifest.KindServiceInstance, "db"); got.ExternalID != rec.ExternalID || got.BrokerURL != f.url {
			t.Errorf("record changed: id %q url %q", got.ExternalID, got.BrokerURL)
		}
		// Confirmed: provisioned again there, with the same instance_id.
		f.sync(f.reconciler(Options{ConfirmedBrokerMoves: []manifest.Ref{{Kind: manifest.KindClusterServiceBroker, Name: "test-broker"}}}))
		if _, ok := empty.Instances()[rec.ExternalID]; !ok {
			t.Fatalf("instance %s not provisioned at the new URL after the confirmation: %v", rec.ExternalID, empty.Instances())
		}
		if got := recordOf(t, f, manifest.KindServiceInstance, "db"); got.BrokerURL != srv.URL || got.Error != nil {
			t.Errorf("record after the confirmed move: url %q error %v", got.BrokerURL, got.Error)
		}
	})
	t.Run("the new URL has it", func(t *testing.T) {
		f := newFixture(t, files)
		f.sync(f.reconciler(Options{}))
		// The same broker behind another URL (a new load balancer).
		alias := httptest.NewServer(f.broker)
		defer alias.Close()
		f.repo.Push("broker moved", files(alias.URL), nil)
		calls := len(f.broker.Calls())
		f.sync(f.reconciler(Options{}))
		for _, c := range f.broker.Calls()[calls:] {
			if c.Method != http.MethodGet {
				t.Errorf("mutating call after the move: %s %s", c.Method, c.Path)
			}
		}
		if got := recordOf(t, f, manifest.KindServiceInstance, "db"); got.BrokerURL != alias.URL {
			t.Errorf("record brokerURL = %q, want the new URL %q", got.BrokerURL, alias.URL)
		}
	})
}
