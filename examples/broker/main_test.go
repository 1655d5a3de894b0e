package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

const (
	testUser     = "demo"
	testPassword = "s3cret-broker-password"
	sampleRepo   = "../repo"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// startBroker serves the demo broker on httptest; its log goes to the
// returned buffer.
func startBroker(t *testing.T) (*demoBroker, *httptest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logf := func(format string, args ...any) {
		fmt.Fprintf(logs, strings.TrimPrefix(format, "osbtest: ")+"\n", args...)
	}
	b := newDemoBroker(testUser, testPassword, []byte("test-seed"), logf)
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv, logs
}

func newClient(t *testing.T, url, user, pass string) *osbclient.Client {
	t.Helper()
	c, err := osbclient.New(osbclient.Config{URL: url, BrokerName: "demo-broker", Username: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loadSampleRepo(t *testing.T) *manifest.Set {
	t.Helper()
	set, diags := manifest.Load(os.DirFS(sampleRepo), "")
	for _, d := range diags {
		t.Errorf("examples/repo: %s", d)
	}
	if set == nil || len(set.ClusterServiceBrokers) != 1 {
		t.Fatal("examples/repo: want exactly one ClusterServiceBroker")
	}
	return set
}

// TestCatalogServesSampleRepo: every instance and binding of examples/repo
// resolves against the catalog the broker serves, and their parameters
// match the plans' schemas (manifest.ValidateWithCatalogs reports nothing).
func TestCatalogServesSampleRepo(t *testing.T) {
	_, srv, _ := startBroker(t)
	cat, err := newClient(t, srv.URL, testUser, testPassword).GetCatalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set := loadSampleRepo(t)
	catalogs := manifest.Catalogs{manifest.CatalogKey(set.ClusterServiceBrokers[0].GetRef()): cat}

	want := map[string][2]string{ // instance -> class, plan
		"orders-db":      {"postgres", "small"},
		"analytics-db":   {"postgres", "large"},
		"sessions-cache": {"redis", "standard"},
		"jobs-queue":     {"queue", "basic"},
	}
	if len(set.Instances) != len(want) {
		t.Errorf("examples/repo has %d instances, the test knows %d", len(set.Instances), len(want))
	}
	for _, inst := range set.Instances {
		res, err := manifest.Resolve(inst, set.Brokers(), catalogs)
		if err != nil {
			t.Errorf("instance %s: %v", inst.Name, err)
			continue
		}
		if got := [2]string{res.Service.Name, res.Plan.Name}; got != want[inst.Name] {
			t.Errorf("instance %s resolves to %v, want %v", inst.Name, got, want[inst.Name])
		}
	}
	for _, b := range set.Bindings {
		if _, _, err := manifest.ResolveBinding(b, set, catalogs); err != nil {
			t.Errorf("binding %s: %v", b.Name, err)
		}
	}
	for _, d := range manifest.ValidateWithCatalogs(set, catalogs) {
		t.Errorf("validate with the demo catalog: %s", d)
	}

	// analytics-db's parameters with what the demo puts in its
	// parametersFrom Secret.
	for _, inst := range set.Instances {
		if inst.Name != "analytics-db" {
			continue
		}
		secrets := manifest.SecretValues{
			{Namespace: "apps", Name: "analytics-db-params", Key: "parameters"}: {Value: []byte(`{"adminPassword":"a-long-random-password"}`)},
		}
		params, _, err := manifest.ResolveParameters(inst.Namespace, inst.Spec.Parameters, inst.Spec.ParametersFrom, secrets)
		if err != nil {
			t.Fatal(err)
		}
		res, err := manifest.Resolve(inst, set.Brokers(), catalogs)
		if err != nil {
			t.Fatal(err)
		}
		perrs, err := manifest.ValidateParameters(manifest.PlanSchema(res.Plan, manifest.SchemaInstanceCreate), params)
		if err != nil || len(perrs) > 0 {
			t.Errorf("analytics-db parameters with parametersFrom: %v %v", perrs, err)
		}
	}
}

// TestCatalogShape pins what examples/README.md and the sample repo's
// comments promise about the catalog.
func TestCatalogShape(t *testing.T) {
	cat := demoCatalog()
	svc := map[string]osbwire.Service{}
	for _, s := range cat.Services {
		svc[s.Name] = s
	}
	plan := func(s, p string) osbwire.Plan {
		t.Helper()
		for _, pl := range svc[s].Plans {
			if pl.Name == p {
				return pl
			}
		}
		t.Fatalf("no plan %s/%s", s, p)
		return osbwire.Plan{}
	}
	if len(svc) != 3 {
		t.Errorf("%d services, want postgres, redis, queue", len(svc))
	}
	pg := svc["postgres"]
	if len(pg.Plans) != 2 || !pg.IsBindable(plan("postgres", "small")) || !pg.IsPlanUpdateable(plan("postgres", "small")) || !pg.IsPlanUpdateable(plan("postgres", "large")) {
		t.Errorf("postgres: want plans small and large, bindable and plan_updateable")
	}
	for _, p := range []string{"small", "large"} {
		for _, k := range []manifest.SchemaKind{manifest.SchemaInstanceCreate, manifest.SchemaInstanceUpdate} {
			var s struct {
				Properties map[string]struct {
					Type string `json:"type"`
				} `json:"properties"`
			}
			if err := json.Unmarshal(manifest.PlanSchema(plan("postgres", p), k), &s); err != nil {
				t.Fatalf("postgres/%s schema %d: %v", p, k, err)
			}
			for prop, typ := range map[string]string{"size": "integer", "version": "string", "adminPassword": "string"} {
				if s.Properties[prop].Type != typ {
					t.Errorf("postgres/%s schema %d: %s is %q, want %s", p, k, prop, s.Properties[prop].Type, typ)
				}
			}
		}
	}
	if r := svc["redis"]; len(r.Plans) != 1 || !r.IsBindable(plan("redis", "standard")) {
		t.Errorf("redis: want one bindable plan standard")
	}
	q := svc["queue"]
	if len(q.Plans) != 1 || q.IsBindable(plan("queue", "basic")) {
		t.Errorf("queue: want one plan basic, not bindable")
	}
	if !strings.Contains(string(manifest.PlanSchema(plan("queue", "basic"), manifest.SchemaInstanceCreate)), `"retentionHours":{"type":"integer"`) {
		t.Errorf("queue/basic: want an integer retentionHours parameter")
	}
	// The IDs are fixed: status records must survive a broker restart.
	if a, b := demoCatalog(), demoCatalog(); a.Services[0].Plans[0].ID != b.Services[0].Plans[0].ID || a.Services[0].ID != ServicePostgres {
		t.Error("catalog IDs are not stable")
	}
}

// TestDemoChangeIsValid: the change make demo makes (orders-db: small ->
// large, size 10 -> 20) is allowed by the catalog for an existing instance.
func TestDemoChangeIsValid(t *testing.T) {
	set := loadSampleRepo(t)
	cat := demoCatalog()
	catalogs := manifest.Catalogs{manifest.CatalogKey(set.ClusterServiceBrokers[0].GetRef()): &cat}
	inst := set.Instance("apps", "orders-db")
	if inst == nil {
		t.Fatal("no apps/orders-db")
	}
	inst.Spec.ClusterServicePlanExternalName = "large"
	inst.Spec.Parameters = map[string]any{"size": json.Number("20"), "version": "16"}
	rec := manifest.NewStatusRecord(inst.GetRef())
	rec.Provisioned = true
	rec.ClassExternalID, rec.ClassExternalName = ServicePostgres, "postgres"
	rec.PlanExternalID, rec.PlanExternalName = PlanPostgresSm, "small"
	recs := &manifest.Records{Status: map[manifest.Ref]*manifest.StatusRecord{inst.GetRef(): rec}}
	for _, d := range manifest.ValidateWithCatalogs(set, catalogs, manifest.WithRecords(recs)) {
		t.Errorf("after the demo's change: %s", d)
	}
}

// TestAuth: every endpoint needs the configured basic auth.
func TestAuth(t *testing.T) {
	_, srv, logs := startBroker(t)
	for _, tc := range []struct {
		name       string
		user, pass string
		want       int
	}{
		{"none", "", "", http.StatusUnauthorized},
		{"wrong password", testUser, "nope", http.StatusUnauthorized},
		{"wrong user", "admin", testPassword, http.StatusUnauthorized},
		{"right", testUser, testPassword, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v2/catalog", "/v2/service_instances/x/last_operation"} {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
				req.Header.Set("X-Broker-API-Version", "2.17")
				if tc.user != "" {
					req.SetBasicAuth(tc.user, tc.pass)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if path == "/v2/catalog" && resp.StatusCode != tc.want {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, tc.want)
				}
				if tc.want == http.StatusUnauthorized && resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("GET %s: %d, want 401", path, resp.StatusCode)
				}
			}
		})
	}
	if strings.Contains(logs.String(), testPassword) || strings.Contains(logs.String(), "nope") {
		t.Errorf("the log shows a password:\n%s", logs)
	}
}

func ctxFor(ns, name string) *osbwire.Context {
	return &osbwire.Context{Platform: osbwire.PlatformKubernetes, Namespace: ns, ClusterID: "demo", InstanceName: name}
}

// TestLifecycle drives the broker the way osbgit does for the sample repo:
// postgres sync with credentials and a plan update, redis asynchronous with
// Retry-After, queue not bindable.
func TestLifecycle(t *testing.T) {
	_, srv, logs := startBroker(t)
	c := newClient(t, srv.URL, testUser, testPassword)
	ctx := context.Background()

	// postgres/small: synchronous provision, then bind.
	pr, err := c.Provision(ctx, &osbwire.ProvisionRequest{
		InstanceID: "pg-1", AcceptsIncomplete: true, ServiceID: ServicePostgres, PlanID: PlanPostgresSm,
		OrganizationGUID: "demo", SpaceGUID: "apps", Context: ctxFor("apps", "orders-db"),
		Parameters: map[string]any{"size": 10, "version": "16"},
	})
	if err != nil || pr.Async || pr.StatusCode != http.StatusCreated {
		t.Fatalf("provision postgres: %+v %v", pr, err)
	}
	if pr.Response.DashboardURL == "" {
		t.Error("provision postgres: no dashboard_url")
	}
	bind := func(iid, bid, svc, plan string) (*osbclient.BindResult, error) {
		return c.Bind(ctx, &osbwire.BindRequest{InstanceID: iid, BindingID: bid, ServiceID: svc, PlanID: plan, AcceptsIncomplete: true, Context: ctxFor("apps", "x")})
	}
	br, err := bind("pg-1", "pg-1-b1", ServicePostgres, PlanPostgresSm)
	if err != nil || br.StatusCode != http.StatusCreated {
		t.Fatalf("bind postgres: %+v %v", br, err)
	}
	creds := br.Response.Credentials
	for _, k := range []string{"uri", "username", "password", "host", "port"} {
		if _, ok := creds[k]; !ok {
			t.Errorf("postgres credentials lack %q (have %v)", k, keys(creds))
		}
	}
	if _, ok := creds["port"].(float64); !ok {
		t.Errorf("postgres port is %T, want a JSON number", creds["port"])
	}
	uri, _ := creds["uri"].(string)
	if !strings.HasPrefix(uri, "postgres://") || !strings.Contains(uri, creds["password"].(string)) {
		t.Errorf("postgres uri %q does not carry the password", uri)
	}
	// An identical rebind answers 200 with the same credentials; another
	// binding gets other ones.
	again, err := bind("pg-1", "pg-1-b1", ServicePostgres, PlanPostgresSm)
	if err != nil || again.StatusCode != http.StatusOK || again.Response.Credentials["password"] != creds["password"] {
		t.Errorf("rebind: %+v %v", again, err)
	}
	other, err := bind("pg-1", "pg-1-b2", ServicePostgres, PlanPostgresSm)
	if err != nil || other.Response.Credentials["password"] == creds["password"] {
		t.Errorf("a second binding: %+v %v (same password as the first)", other, err)
	}

	// The demo's change: small -> large, size 10 -> 20.
	ur, err := c.UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{
		InstanceID: "pg-1", AcceptsIncomplete: true, ServiceID: ServicePostgres, PlanID: PlanPostgresLg,
		Parameters:     map[string]any{"size": 20},
		PreviousValues: &osbwire.PreviousValues{PlanID: PlanPostgresSm}, Context: ctxFor("apps", "orders-db"),
	})
	if err != nil || ur.Async {
		t.Fatalf("update postgres to large: %+v %v", ur, err)
	}
	// A schema violation is refused, naming the parameter.
	_, err = c.UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{
		InstanceID: "pg-1", ServiceID: ServicePostgres, Parameters: map[string]any{"size": "big"},
	})
	var oe *osbclient.Error
	if !errors.As(err, &oe) || oe.StatusCode != http.StatusBadRequest || !strings.Contains(oe.Description, "size") {
		t.Errorf("update with size \"big\": %v, want 400 naming size", err)
	}

	// redis: 202, in progress redisPolls times with Retry-After, then ready.
	rr, err := c.Provision(ctx, &osbwire.ProvisionRequest{
		InstanceID: "redis-1", AcceptsIncomplete: true, ServiceID: ServiceRedis, PlanID: PlanRedisStandard,
		OrganizationGUID: "demo", SpaceGUID: "apps", Context: ctxFor("apps", "sessions-cache"),
	})
	if err != nil || !rr.Async || rr.StatusCode != http.StatusAccepted || rr.Response.Operation == "" {
		t.Fatalf("provision redis: %+v %v", rr, err)
	}
	if _, err := bind("redis-1", "redis-1-b", ServiceRedis, PlanRedisStandard); err == nil {
		t.Error("bind to a redis instance still provisioning succeeded")
	}
	for i := 0; ; i++ {
		lo, err := c.LastOperation(ctx, &osbwire.LastOperationRequest{InstanceID: "redis-1", ServiceID: ServiceRedis, PlanID: PlanRedisStandard, Operation: rr.Response.Operation})
		if err != nil {
			t.Fatal(err)
		}
		if i < redisPolls {
			if lo.State != osbwire.StateInProgress || lo.RetryAfter != time.Second {
				t.Fatalf("poll %d: %+v, want in progress with Retry-After 1s", i, lo)
			}
			continue
		}
		if lo.State != osbwire.StateSucceeded {
			t.Fatalf("poll %d: %+v, want succeeded", i, lo)
		}
		break
	}
	rb, err := bind("redis-1", "redis-1-b", ServiceRedis, PlanRedisStandard)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"uri", "host", "port", "password"} {
		if _, ok := rb.Response.Credentials[k]; !ok {
			t.Errorf("redis credentials lack %q", k)
		}
	}
	if u, _ := rb.Response.Credentials["uri"].(string); !strings.HasPrefix(u, "redis://") {
		t.Errorf("redis uri %q", u)
	}

	// queue: provisioned synchronously, not bindable.
	if _, err := c.Provision(ctx, &osbwire.ProvisionRequest{
		InstanceID: "q-1", ServiceID: ServiceQueue, PlanID: PlanQueueBasic, OrganizationGUID: "demo", SpaceGUID: "apps",
		Parameters: map[string]any{"retentionHours": 24}, Context: ctxFor("apps", "jobs-queue"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := bind("q-1", "q-1-b", ServiceQueue, PlanQueueBasic); !errors.As(err, &oe) || oe.StatusCode != http.StatusBadRequest {
		t.Errorf("bind to queue/basic: %v, want 400 (not bindable)", err)
	}

	// The log names each request, and no credential.
	out := logs.String()
	for _, want := range []string{"PUT /v2/service_instances/pg-1 -> 201", "PATCH /v2/service_instances/pg-1 -> 200", "GET /v2/service_instances/redis-1/last_operation -> 200", "PUT /v2/service_instances/pg-1/service_bindings/pg-1-b1 -> 201"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{testPassword, creds["password"].(string), rb.Response.Credentials["password"].(string), "Authorization", "Basic "} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows %q:\n%s", secret, out)
		}
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("flags", func(t *testing.T) {
		o, err := parseFlags([]string{"--addr", "127.0.0.1:0", "--username", "u", "--password", "p"}, io.Discard)
		if err != nil || o.addr != "127.0.0.1:0" || o.username != "u" || o.password != "p" {
			t.Fatalf("%+v %v", o, err)
		}
	})
	t.Run("env and password file", func(t *testing.T) {
		t.Setenv("DEMO_BROKER_USERNAME", "env-user")
		t.Setenv("DEMO_BROKER_PASSWORD_FILE", pwFile)
		t.Setenv("DEMO_BROKER_ADDR", "127.0.0.1:9999")
		o, err := parseFlags([]string{"--addr", "127.0.0.1:1234"}, io.Discard)
		if err != nil || o.addr != "127.0.0.1:1234" || o.username != "env-user" || o.password != "from-file" {
			t.Fatalf("%+v %v (flags win over the environment)", o, err)
		}
	})
	for name, args := range map[string][]string{
		"no credentials":    {},
		"no password":       {"--username", "u"},
		"both passwords":    {"--username", "u", "--password", "p", "--password-file", pwFile},
		"no-auth with user": {"--no-auth", "--username", "u"},
		"stray argument":    {"--no-auth", "extra"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseFlags(args, io.Discard); err == nil {
				t.Errorf("parseFlags(%q) accepted", args)
			}
		})
	}
	if o, err := parseFlags([]string{"--no-auth"}, io.Discard); err != nil || !o.noAuth {
		t.Errorf("--no-auth: %+v %v", o, err)
	}
}

// TestRunServesAndStops: run listens (port 0: any free port, named in the
// log), serves the catalog with auth, and stops cleanly when its context
// ends (what SIGINT/SIGTERM do).
func TestRunServesAndStops(t *testing.T) {
	o, err := parseFlags([]string{"--addr", "127.0.0.1:0", "--username", testUser, "--password", testPassword}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, logs) }()

	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			url = m[1]
			break
		}
	}
	if url == "" {
		t.Fatalf("no 'listening on' line:\n%s", logs)
	}
	cat, err := newClient(t, url, testUser, testPassword).GetCatalog(ctx)
	if err != nil || len(cat.Services) != 3 {
		t.Fatalf("catalog: %v %v", cat, err)
	}
	if _, err := newClient(t, url, testUser, "wrong").GetCatalog(ctx); err == nil {
		t.Error("wrong password accepted")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
	out := logs.String()
	for _, want := range []string{"GET /v2/catalog -> 200", "GET /v2/catalog -> 401", "stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, testPassword) {
		t.Errorf("log shows the password:\n%s", out)
	}
}
