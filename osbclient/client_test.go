package osbclient_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

func TestNewConfigErrors(t *testing.T) {
	const pw = "hunter2-very-secret"
	tests := []struct {
		name string
		cfg  osbclient.Config
		want string
	}{
		{"empty URL", osbclient.Config{}, "URL is empty"},
		{"unparsable URL with password", osbclient.Config{URL: "http://u:" + pw + "@host:%zz/"}, "does not parse"},
		{"bad scheme", osbclient.Config{URL: "ftp://host/"}, `scheme "ftp"`},
		{"no host", osbclient.Config{URL: "http:///v2"}, "no host"},
		{"query", osbclient.Config{URL: "http://host/?a=b"}, "query or fragment"},
		{"fragment", osbclient.Config{URL: "http://host/#x"}, "query or fragment"},
		{"userinfo and username", osbclient.Config{URL: "http://u:" + pw + "@host/", Username: "v"}, "both in the URL"},
		{"password without user", osbclient.Config{URL: "http://host/", Password: pw}, "without a username"},
		{"basic and bearer", osbclient.Config{URL: "http://host/", Username: "u", Password: pw, BearerToken: "tok"}, "exclusive"},
		{"userinfo and bearer", osbclient.Config{URL: "http://u:" + pw + "@host/", BearerToken: "tok"}, "exclusive"},
		{"old API version", osbclient.Config{URL: "http://host/", APIVersion: "2.12"}, `"2.12" not supported`},
		{"future API version", osbclient.Config{URL: "http://host/", APIVersion: "2.18"}, "not supported"},
		{"negative timeout", osbclient.Config{URL: "http://host/", Timeout: -time.Second}, "negative timeout"},
		{"negative max body", osbclient.Config{URL: "http://host/", MaxResponseBytes: -1}, "negative MaxResponseBytes"},
		{"CA and insecure", osbclient.Config{URL: "https://host/", CABundle: []byte("x"), InsecureSkipTLSVerify: true}, "exclusive"},
		{"garbage CA", osbclient.Config{URL: "https://host/", CABundle: []byte("not pem")}, "no PEM certificate"},
		{"HTTPClient and CA", osbclient.Config{URL: "https://host/", CABundle: []byte("x"), HTTPClient: http.DefaultClient}, "HTTPClient"},
		{"HTTPClient and insecure", osbclient.Config{URL: "https://host/", InsecureSkipTLSVerify: true, HTTPClient: http.DefaultClient}, "HTTPClient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.BrokerName = "b1"
			c, err := osbclient.New(tt.cfg)
			if err == nil {
				t.Fatalf("New succeeded: %v", c)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			if !strings.Contains(msg, `"b1"`) {
				t.Errorf("error %q does not name the broker", msg)
			}
			if strings.Contains(msg, pw) {
				t.Errorf("error %q shows the password", msg)
			}
		})
	}
}

func TestNewDefaultsAndAccessors(t *testing.T) {
	for _, v := range []string{"2.13", "2.14", "2.15", "2.16", "2.17"} {
		c, err := osbclient.New(osbclient.Config{URL: "https://host/", APIVersion: v})
		if err != nil {
			t.Fatalf("version %s: %v", v, err)
		}
		if c.APIVersion() != v {
			t.Errorf("APIVersion() = %q, want %q", c.APIVersion(), v)
		}
	}
	c, err := osbclient.New(osbclient.Config{URL: "HTTPS://user:pw-secret@Host:8443/prefix/", BrokerName: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if c.APIVersion() != "2.17" {
		t.Errorf("default API version %q", c.APIVersion())
	}
	if got := c.URL(); got != "https://Host:8443/prefix" {
		t.Errorf("URL() = %q", got)
	}
	if c.BrokerName() != "b" {
		t.Errorf("BrokerName() = %q", c.BrokerName())
	}
}

func TestHappyPaths(t *testing.T) {
	ctx := context.Background()
	t.Run("catalog", func(t *testing.T) {
		b := newBroker(t, reply(200, `{"services":[{"name":"db","id":"svc-1","description":"d","bindable":true,
			"x-vendor":{"a":1},"plans":[{"id":"plan-1","name":"small","description":"s","free":false,
			"maximum_polling_duration":600,"maintenance_info":{"version":"1.2.3"}}]}]}`))
		cat, err := newClient(t, b.URL).GetCatalog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(cat.Services) != 1 || cat.Services[0].Plans[0].MaxPollingDuration() != 10*time.Minute ||
			cat.Services[0].Plans[0].IsFree() || cat.Services[0].Plans[0].MaintenanceInfo.Version != "1.2.3" {
			t.Errorf("catalog = %+v", cat)
		}
	})
	t.Run("empty catalog", func(t *testing.T) {
		b := newBroker(t, reply(200, `{"services":[]}`))
		cat, err := newClient(t, b.URL).GetCatalog(ctx)
		if err != nil || len(cat.Services) != 0 {
			t.Fatalf("catalog %+v, err %v", cat, err)
		}
	})
	t.Run("provision", func(t *testing.T) {
		for _, tc := range []struct {
			status int
			async  bool
		}{{200, false}, {201, false}, {202, true}} {
			b := newBroker(t, reply(tc.status, `{"dashboard_url":"https://dash/x","operation":"task 10","metadata":{"labels":{"a":"b"}}}`))
			res, err := calls()[1].do(ctx, newClient(t, b.URL))
			if err != nil {
				t.Fatal(err)
			}
			want := &osbclient.ProvisionResult{StatusCode: tc.status, Async: tc.async, Response: osbwire.ProvisionResponse{
				DashboardURL: "https://dash/x", Operation: "task 10",
				Metadata: &osbwire.ResourceMetadata{Labels: map[string]any{"a": "b"}},
			}}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("status %d (-want +got):\n%s", tc.status, diff)
			}
			reqs := b.requests()
			var body map[string]any
			if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			wantBody := map[string]any{
				"service_id": "svc-1", "plan_id": "plan-1", "organization_guid": "cluster-1", "space_guid": "ns1",
				"context":    map[string]any{"platform": "kubernetes", "namespace": "ns1", "clusterid": "cluster-1", "instance_name": "db"},
				"parameters": map[string]any{"size": "small"},
			}
			if diff := cmp.Diff(wantBody, body); diff != "" {
				t.Errorf("request body (-want +got):\n%s", diff)
			}
		}
	})
	t.Run("provision null operation and empty body", func(t *testing.T) {
		b := newBroker(t, reply(201, `{"dashboard_url":null,"operation":null}`))
		res, err := calls()[1].do(ctx, newClient(t, b.URL))
		if err != nil || res.(*osbclient.ProvisionResult).Response != (osbwire.ProvisionResponse{}) {
			t.Fatalf("res %+v err %v", res, err)
		}
		b = newBroker(t, reply(201, ""))
		if _, err := calls()[1].do(ctx, newClient(t, b.URL)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("update", func(t *testing.T) {
		b := newBroker(t, reply(202, `{"operation":"upd-1"}`))
		res, err := newClient(t, b.URL).UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{InstanceID: "i", ServiceID: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Async || res.StatusCode != 202 || res.Response.Operation != "upd-1" {
			t.Errorf("res = %+v", res)
		}
		// Unchanged plan and parameters are not sent; accepts_incomplete=false is not sent.
		r := b.requests()[0]
		if string(r.Body) != `{"service_id":"s"}` || r.RawQuery != "" {
			t.Errorf("body %s query %q", r.Body, r.RawQuery)
		}
		b = newBroker(t, reply(200, `{}`))
		res, err = newClient(t, b.URL).UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{InstanceID: "i", ServiceID: "s"})
		if err != nil || res.Async || res.StatusCode != 200 {
			t.Fatalf("res %+v err %v", res, err)
		}
	})
	t.Run("deprovision", func(t *testing.T) {
		for _, tc := range []struct {
			status      int
			body        string
			async, gone bool
		}{{200, `{}`, false, false}, {200, ``, false, false}, {202, `{"operation":"del"}`, true, false}, {410, `{}`, false, true}, {410, `not json`, false, true}} {
			b := newBroker(t, reply(tc.status, tc.body))
			res, err := calls()[3].do(ctx, newClient(t, b.URL))
			if err != nil {
				t.Fatalf("%d %q: %v", tc.status, tc.body, err)
			}
			r := res.(*osbclient.DeprovisionResult)
			if r.StatusCode != tc.status || r.Async != tc.async || r.Gone != tc.gone {
				t.Errorf("%d: %+v", tc.status, r)
			}
			if tc.async && r.Response.Operation != "del" {
				t.Errorf("operation %q", r.Response.Operation)
			}
			if len(b.requests()[0].Body) != 0 {
				t.Errorf("DELETE sent a body")
			}
		}
	})
	t.Run("get instance", func(t *testing.T) {
		b := newBroker(t, reply(200, `{"service_id":"svc-1","plan_id":"plan-1","dashboard_url":"d","parameters":{"a":1},"maintenance_info":{"version":"1"}}`))
		res, err := calls()[4].do(ctx, newClient(t, b.URL))
		if err != nil {
			t.Fatal(err)
		}
		want := &osbwire.GetInstanceResponse{ServiceID: "svc-1", PlanID: "plan-1", DashboardURL: "d",
			Parameters: map[string]any{"a": float64(1)}, MaintenanceInfo: &osbwire.MaintenanceInfo{Version: "1"}}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("last operation", func(t *testing.T) {
		for _, tc := range []struct {
			body  string
			state osbwire.LastOperationState
		}{
			{`{"state":"in progress","description":"10%"}`, osbwire.StateInProgress},
			{`{"state":"succeeded"}`, osbwire.StateSucceeded},
			{`{"state":"Failed","instance_usable":true,"update_repeatable":false}`, osbwire.StateFailed},
		} {
			b := newBroker(t, reply(200, tc.body, "Retry-After", "7"))
			res, err := calls()[5].do(ctx, newClient(t, b.URL))
			if err != nil {
				t.Fatal(err)
			}
			r := res.(*osbwire.LastOperationResponse)
			if r.State != tc.state || r.RetryAfter != 7*time.Second || r.Gone {
				t.Errorf("%s: %+v", tc.body, r)
			}
			if tc.state == osbwire.StateFailed && (r.InstanceUsable == nil || !*r.InstanceUsable || r.UpdateRepeatable == nil || *r.UpdateRepeatable) {
				t.Errorf("flags: %+v", r)
			}
		}
	})
	t.Run("last operation gone", func(t *testing.T) {
		for i := range []int{5, 9} {
			cc := calls()[[]int{5, 9}[i]]
			b := newBroker(t, reply(410, `{}`, "Retry-After", "3"))
			res, err := cc.do(ctx, newClient(t, b.URL))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&osbwire.LastOperationResponse{Gone: true, RetryAfter: 3 * time.Second}, res); diff != "" {
				t.Errorf("%s (-want +got):\n%s", cc.op, diff)
			}
		}
	})
	t.Run("bind", func(t *testing.T) {
		b := newBroker(t, reply(201, `{"credentials":{"uri":"mysql://u:p@h/db","port":3306},
			"endpoints":[{"host":"h","ports":["3306"]}],"metadata":{"expires_at":"2030-01-01T00:00:00Z"}}`))
		res, err := calls()[6].do(ctx, newClient(t, b.URL))
		if err != nil {
			t.Fatal(err)
		}
		want := &osbclient.BindResult{StatusCode: 201, Response: osbwire.BindResponse{
			Credentials: map[string]any{"uri": "mysql://u:p@h/db", "port": float64(3306)},
			Endpoints:   []osbwire.Endpoint{{Host: "h", Ports: []string{"3306"}}},
			Metadata:    &osbwire.BindingMetadata{ExpiresAt: "2030-01-01T00:00:00Z"},
		}}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		var body map[string]any
		_ = json.Unmarshal(b.requests()[0].Body, &body)
		if body["service_id"] != "svc-1" || body["plan_id"] != "plan-1" || body["bind_resource"].(map[string]any)["app_guid"] != "ns1" {
			t.Errorf("bind body %v", body)
		}
		b = newBroker(t, reply(202, `{"operation":"b-op"}`))
		res, err = calls()[6].do(ctx, newClient(t, b.URL))
		if err != nil || !res.(*osbclient.BindResult).Async || res.(*osbclient.BindResult).Response.Operation != "b-op" {
			t.Fatalf("res %+v err %v", res, err)
		}
	})
	t.Run("unbind", func(t *testing.T) {
		for _, tc := range []struct {
			status      int
			async, gone bool
		}{{200, false, false}, {202, true, false}, {410, false, true}} {
			b := newBroker(t, reply(tc.status, `{}`))
			res, err := calls()[7].do(ctx, newClient(t, b.URL))
			if err != nil {
				t.Fatal(err)
			}
			r := res.(*osbclient.UnbindResult)
			if r.StatusCode != tc.status || r.Async != tc.async || r.Gone != tc.gone {
				t.Errorf("%d: %+v", tc.status, r)
			}
		}
	})
	t.Run("get binding", func(t *testing.T) {
		b := newBroker(t, reply(200, `{"credentials":{"password":"x"},"parameters":{"p":"v"},"syslog_drain_url":"s"}`))
		res, err := calls()[8].do(ctx, newClient(t, b.URL))
		if err != nil {
			t.Fatal(err)
		}
		want := &osbwire.GetBindingResponse{Credentials: map[string]any{"password": "x"}, Parameters: map[string]any{"p": "v"}, SyslogDrainURL: "s"}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

// TestWire checks method, path, query and the OSB headers of every call.
func TestWire(t *testing.T) {
	for _, cc := range calls() {
		t.Run(string(cc.op), func(t *testing.T) {
			b := newBroker(t, reply(200, okBody))
			c := newClient(t, b.URL, func(c *osbclient.Config) { c.UserAgent = "osbgit-test/1" })
			if _, err := cc.do(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			r := b.requests()[0]
			if r.Method != cc.method || r.Path != cc.path {
				t.Errorf("got %s %s, want %s %s", r.Method, r.Path, cc.method, cc.path)
			}
			if diff := cmp.Diff(cc.query, r.Query); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
			h := r.Header
			for name, want := range map[string]string{
				"X-Broker-Api-Version": "2.17", "User-Agent": "osbgit-test/1", "Accept": "application/json",
			} {
				if got := h.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if _, err := uuid.Parse(h.Get("X-Broker-API-Request-Identity")); err != nil {
				t.Errorf("request identity %q: %v", h.Get("X-Broker-API-Request-Identity"), err)
			}
			if ct := h.Get("Content-Type"); cc.hasBody != (ct == "application/json") {
				t.Errorf("Content-Type %q with body=%v", ct, cc.hasBody)
			}
			if cc.hasBody != (len(r.Body) > 0) {
				t.Errorf("body %q, want body=%v", r.Body, cc.hasBody)
			}
			if h.Get("Authorization") != "" {
				t.Errorf("Authorization sent without credentials")
			}
			oi := h.Get("X-Broker-API-Originating-Identity")
			if cc.mutating {
				platform, enc, _ := strings.Cut(oi, " ")
				if platform != "kubernetes" {
					t.Fatalf("originating identity %q", oi)
				}
				raw, err := base64.StdEncoding.DecodeString(enc)
				if err != nil {
					t.Fatal(err)
				}
				var got osbwire.OriginatingIdentity
				if err := json.Unmarshal(raw, &got); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(*ident, got); diff != "" {
					t.Errorf("identity (-want +got):\n%s", diff)
				}
			} else if oi != "" {
				t.Errorf("originating identity %q on %s", oi, cc.op)
			}
		})
	}
}

func TestOriginatingIdentityExactEncoding(t *testing.T) {
	b := newBroker(t, reply(201, `{}`))
	id := &osbwire.OriginatingIdentity{Username: "bob", UID: "42", Extra: map[string][]string{"k": {"v"}}}
	_, err := newClient(t, b.URL).Provision(context.Background(), &osbwire.ProvisionRequest{
		InstanceID: "i", ServiceID: "s", PlanID: "p", OrganizationGUID: "o", SpaceGUID: "sp", Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	want := "kubernetes " + base64.StdEncoding.EncodeToString([]byte(`{"username":"bob","uid":"42","extra":{"k":["v"]}}`))
	if got := b.requests()[0].Header.Get("X-Broker-API-Originating-Identity"); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestOriginatingIdentityFollowsEachCall: the client reuses the header it
// encoded last only for an identity that encodes the same, even when the
// caller changes the identity it passed before.
func TestOriginatingIdentityFollowsEachCall(t *testing.T) {
	b := newBroker(t, reply(201, `{}`))
	c := newClient(t, b.URL)
	shared := &osbwire.OriginatingIdentity{Username: "bob", UID: "42", Groups: []string{"dev"}}
	ids := []*osbwire.OriginatingIdentity{
		shared,
		shared,
		shared, // changed in place after it was sent (below)
		{Username: "bob", UID: "42", Groups: []string{"dev"}},
		{Username: "bob", UID: "42", Groups: []string{"ops"}},
		{Username: "bob", UID: "42", Extra: map[string][]string{"k": nil}},
		{Username: "bob", UID: "42", Extra: map[string][]string{"k": {}}},
		{Username: "bob", UID: "42", Extra: map[string][]string{"k": {}}},
		{Username: "carol", UID: "42", Extra: map[string][]string{"k": {}}},
	}
	var want []string
	for i, id := range ids {
		if i == 2 {
			shared.Groups[0] = "admins"
		}
		j, err := json.Marshal(id)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, "kubernetes "+base64.StdEncoding.EncodeToString(j))
		if _, err := c.Provision(context.Background(), &osbwire.ProvisionRequest{
			InstanceID: "i", ServiceID: "s", PlanID: "p", OrganizationGUID: "o", SpaceGUID: "sp", Identity: id}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range b.requests() {
		if got := r.Header.Get("X-Broker-API-Originating-Identity"); got != want[i] {
			t.Errorf("call %d: identity %q, want %q", i, got, want[i])
		}
	}
}

func TestAPIVersionHeaderConfigurable(t *testing.T) {
	b := newBroker(t, reply(200, okBody))
	c := newClient(t, b.URL, func(c *osbclient.Config) { c.APIVersion = "2.15" })
	if _, err := c.GetCatalog(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := b.requests()[0].Header.Get("X-Broker-API-Version"); got != "2.15" {
		t.Errorf("version header %q", got)
	}
}

func TestAuthHeaders(t *testing.T) {
	ctx := context.Background()
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	tests := []struct {
		name string
		url  func(base string) string
		mod  func(*osbclient.Config)
		want string
	}{
		{"basic", nil, func(c *osbclient.Config) { c.Username, c.Password = "admin", "pa:ss w0rd" }, basic("admin", "pa:ss w0rd")},
		{"basic empty password", nil, func(c *osbclient.Config) { c.Username = "admin" }, basic("admin", "")},
		{"userinfo", func(base string) string { return strings.Replace(base, "://", "://ui-user:ui%40pass@", 1) }, nil, basic("ui-user", "ui@pass")},
		{"bearer", nil, func(c *osbclient.Config) { c.BearerToken = "tok-123" }, "Bearer tok-123"},
		{"none", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, reply(200, okBody))
			u := b.URL
			if tt.url != nil {
				u = tt.url(u)
			}
			var mods []func(*osbclient.Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			c := newClient(t, u, mods...)
			if strings.Contains(c.URL(), "@") {
				t.Errorf("URL() shows userinfo: %q", c.URL())
			}
			for _, cc := range calls() {
				if _, err := cc.do(ctx, c); err != nil {
					t.Fatalf("%s: %v", cc.op, err)
				}
			}
			for _, r := range b.requests() {
				if got := r.Header.Get("Authorization"); got != tt.want {
					t.Errorf("%s %s: Authorization %q, want %q", r.Method, r.Path, got, tt.want)
				}
			}
		})
	}
}

func TestRequestIdentityUnique(t *testing.T) {
	b := newBroker(t, reply(200, okBody))
	var mu sync.Mutex
	var hookIDs []string
	c := newClient(t, b.URL, func(c *osbclient.Config) {
		c.OnRequest = func(ri osbclient.RequestInfo) {
			mu.Lock()
			hookIDs = append(hookIDs, ri.RequestID)
			mu.Unlock()
		}
	})
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if _, err := c.GetCatalog(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	ids := map[string]bool{}
	for _, r := range b.requests() {
		id := r.Header.Get("X-Broker-API-Request-Identity")
		if _, err := uuid.Parse(id); err != nil || ids[id] {
			t.Errorf("request identity %q invalid or repeated", id)
		}
		ids[id] = true
	}
	if len(ids) != 40 || len(hookIDs) != 40 {
		t.Fatalf("%d ids, %d hook ids", len(ids), len(hookIDs))
	}
	for _, id := range hookIDs {
		if !ids[id] {
			t.Errorf("hook saw request id %q the broker did not", id)
		}
	}
}

func TestPathEscapingAndBasePath(t *testing.T) {
	b := newBroker(t, reply(200, okBody))
	c := newClient(t, b.URL+"/broker/prefix/")
	ctx := context.Background()
	if _, err := c.GetCatalog(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.BindingLastOperation(ctx, &osbwire.BindingLastOperationRequest{
		InstanceID: "a/b c?d%e#f", BindingID: "ü+&=", Operation: "x/y?z"}); err != nil {
		t.Fatal(err)
	}
	reqs := b.requests()
	if reqs[0].Path != "/broker/prefix/v2/catalog" {
		t.Errorf("catalog path %q", reqs[0].Path)
	}
	if want := "/broker/prefix/v2/service_instances/a%2Fb%20c%3Fd%25e%23f/service_bindings/%C3%BC+&=/last_operation"; reqs[1].Path != want {
		t.Errorf("path\n got %q\nwant %q", reqs[1].Path, want)
	}
	if got := reqs[1].Query.Get("operation"); got != "x/y?z" {
		t.Errorf("operation %q", got)
	}
}

func TestValidation(t *testing.T) {
	b := newBroker(t, reply(200, okBody))
	var infos []osbclient.RequestInfo
	c := newClient(t, b.URL, func(c *osbclient.Config) {
		c.OnRequest = func(ri osbclient.RequestInfo) { infos = append(infos, ri) }
	})
	old := newClient(t, b.URL, func(c *osbclient.Config) { c.APIVersion = "2.13" })
	ctx := context.Background()
	prov := func(mod func(*osbwire.ProvisionRequest)) func() error {
		return func() error {
			r := &osbwire.ProvisionRequest{InstanceID: "i", ServiceID: "s", PlanID: "p", OrganizationGUID: "o", SpaceGUID: "sp"}
			mod(r)
			_, err := c.Provision(ctx, r)
			return err
		}
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"provision no instance", prov(func(r *osbwire.ProvisionRequest) { r.InstanceID = "" }), "missing instance_id"},
		{"provision no service/plan", prov(func(r *osbwire.ProvisionRequest) { r.ServiceID, r.PlanID = "", "" }), "missing service_id, plan_id"},
		{"provision no org/space", prov(func(r *osbwire.ProvisionRequest) { r.OrganizationGUID, r.SpaceGUID = "", "" }), "missing organization_guid, space_guid"},
		{"provision dot-dot id", prov(func(r *osbwire.ProvisionRequest) { r.InstanceID = ".." }), `"." and ".." are not valid as instance_id`},
		{"provision platform mismatch", prov(func(r *osbwire.ProvisionRequest) {
			r.Identity = ident
			r.Context = &osbwire.Context{Platform: "cloudfoundry"}
		}), `context.platform is "cloudfoundry"`},
		{"provision unencodable parameters", prov(func(r *osbwire.ProvisionRequest) { r.Parameters = map[string]any{"f": func() {}} }), "encoding request body"},
		{"provision nil", func() error { _, err := c.Provision(ctx, nil); return err }, "nil request"},
		{"update no service", func() error {
			_, err := c.UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{InstanceID: "i"})
			return err
		}, "missing service_id"},
		{"update platform mismatch", func() error {
			_, err := c.UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{InstanceID: "i", ServiceID: "s", Identity: ident, Context: &osbwire.Context{Platform: "cf"}})
			return err
		}, "context.platform"},
		{"update nil", func() error { _, err := c.UpdateInstance(ctx, nil); return err }, "nil request"},
		{"deprovision no plan", func() error {
			_, err := c.Deprovision(ctx, &osbwire.DeprovisionRequest{InstanceID: "i", ServiceID: "s"})
			return err
		}, "missing plan_id"},
		{"deprovision nil", func() error { _, err := c.Deprovision(ctx, nil); return err }, "nil request"},
		{"get instance no id", func() error { _, err := c.GetInstance(ctx, &osbwire.GetInstanceRequest{}); return err }, "missing instance_id"},
		{"get instance nil", func() error { _, err := c.GetInstance(ctx, nil); return err }, "nil request"},
		{"get instance on 2.13", func() error {
			_, err := old.GetInstance(ctx, &osbwire.GetInstanceRequest{InstanceID: "i"})
			return err
		}, "needs OSB API 2.14"},
		{"last op no id", func() error { _, err := c.LastOperation(ctx, &osbwire.LastOperationRequest{}); return err }, "missing instance_id"},
		{"last op nil", func() error { _, err := c.LastOperation(ctx, nil); return err }, "nil request"},
		{"bind no binding id", func() error {
			_, err := c.Bind(ctx, &osbwire.BindRequest{InstanceID: "i", ServiceID: "s", PlanID: "p"})
			return err
		}, "missing binding_id"},
		{"bind dot binding id", func() error {
			_, err := c.Bind(ctx, &osbwire.BindRequest{InstanceID: "i", BindingID: ".", ServiceID: "s", PlanID: "p"})
			return err
		}, "binding_id"},
		{"bind platform mismatch", func() error {
			_, err := c.Bind(ctx, &osbwire.BindRequest{InstanceID: "i", BindingID: "b", ServiceID: "s", PlanID: "p", Identity: ident, Context: &osbwire.Context{Platform: "cf"}})
			return err
		}, "context.platform"},
		{"bind nil", func() error { _, err := c.Bind(ctx, nil); return err }, "nil request"},
		{"unbind no ids", func() error { _, err := c.Unbind(ctx, &osbwire.UnbindRequest{}); return err }, "missing instance_id, binding_id, service_id, plan_id"},
		{"unbind nil", func() error { _, err := c.Unbind(ctx, nil); return err }, "nil request"},
		{"get binding no binding", func() error {
			_, err := c.GetBinding(ctx, &osbwire.GetBindingRequest{InstanceID: "i"})
			return err
		}, "missing binding_id"},
		{"get binding nil", func() error { _, err := c.GetBinding(ctx, nil); return err }, "nil request"},
		{"get binding on 2.13", func() error {
			_, err := old.GetBinding(ctx, &osbwire.GetBindingRequest{InstanceID: "i", BindingID: "b"})
			return err
		}, "needs OSB API 2.14"},
		{"binding last op no ids", func() error {
			_, err := c.BindingLastOperation(ctx, &osbwire.BindingLastOperationRequest{})
			return err
		}, "missing instance_id, binding_id"},
		{"binding last op nil", func() error { _, err := c.BindingLastOperation(ctx, nil); return err }, "nil request"},
		{"binding last op on 2.13", func() error {
			_, err := old.BindingLastOperation(ctx, &osbwire.BindingLastOperationRequest{InstanceID: "i", BindingID: "b"})
			return err
		}, "needs OSB API 2.14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			infos = nil
			err := tt.call()
			e := asOSB(t, err)
			if e.Kind != osbclient.KindRequest || e.StatusCode != 0 || e.RequestID != "" || e.RequestSent {
				t.Errorf("error %+v", e)
			}
			if e.OrphanMitigationRequired() {
				t.Errorf("orphan mitigation on a request that was not sent")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "invalid request") {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if len(infos) > 1 || (len(infos) == 1 && infos[0].Err != err) {
				t.Errorf("hook calls: %+v", infos)
			}
		})
	}
	if n := len(b.requests()); n != 0 {
		t.Errorf("%d invalid requests reached the broker", n)
	}
	// An identity with no platform in the context, or no context, is fine.
	if err := prov(func(r *osbwire.ProvisionRequest) { r.Identity, r.Context = ident, &osbwire.Context{} })(); err != nil {
		t.Errorf("identity with empty context platform: %v", err)
	}
}

func TestOnRequestHook(t *testing.T) {
	b := newBroker(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "catalog") {
			reply(200, okBody)(w, r)
			return
		}
		reply(500, `{"description":"boom"}`)(w, r)
	})
	var got []osbclient.RequestInfo
	c := newClient(t, strings.Replace(b.URL, "://", "://u:hookpass@", 1), func(c *osbclient.Config) {
		c.OnRequest = func(ri osbclient.RequestInfo) { got = append(got, ri) }
	})
	ctx := context.Background()
	if _, err := c.GetCatalog(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.Deprovision(ctx, &osbwire.DeprovisionRequest{InstanceID: "i-1", ServiceID: "s", PlanID: "p"})
	if err == nil {
		t.Fatal("want error")
	}
	if len(got) != 2 {
		t.Fatalf("hook called %d times", len(got))
	}
	if g := got[0]; g.Op != osbclient.OpGetCatalog || g.Method != "GET" || g.Path != "/v2/catalog" || g.StatusCode != 200 ||
		g.Err != nil || g.RequestID == "" || g.Duration <= 0 {
		t.Errorf("catalog info %+v", g)
	}
	if g := got[1]; g.Op != osbclient.OpDeprovision || g.Method != "DELETE" || g.Path != "/v2/service_instances/i-1" ||
		g.StatusCode != 500 || g.Err != err {
		t.Errorf("deprovision info %+v", g)
	}
}
