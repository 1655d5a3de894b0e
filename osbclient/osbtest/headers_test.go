package osbtest

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

func TestAPIVersionHeader(t *testing.T) {
	tests := []struct {
		name    string
		min     string
		version string // "" = header absent
		status  int
		want    string
	}{
		{"2.17 accepted", "", "2.17", http.StatusOK, ""},
		{"2.13 accepted by default", "", "2.13", http.StatusOK, ""},
		{"future minor accepted", "", "2.18", http.StatusOK, ""},
		{"missing", "", "", http.StatusPreconditionFailed, "missing X-Broker-API-Version"},
		{"below minimum", "", "2.12", http.StatusPreconditionFailed, "requires 2.13 or later"},
		{"other major", "", "3.0", http.StatusPreconditionFailed, "not supported"},
		{"malformed", "", "two", http.StatusPreconditionFailed, "malformed"},
		{"malformed minor", "", "2.x", http.StatusPreconditionFailed, "malformed"},
		{"pre-release", "", "2.17-rc1", http.StatusPreconditionFailed, "malformed"},
		{"raised minimum refuses", "2.15", "2.14", http.StatusPreconditionFailed, "requires 2.15"},
		{"raised minimum accepts", "2.15", "2.17", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{MinAPIVersion: tt.min})
			opt := header(HeaderAPIVersion, tt.version)
			if tt.version == "" {
				opt = noHeader(HeaderAPIVersion)
			}
			r := h.do(http.MethodGet, "/v2/catalog", nil, opt)
			expect(t, r, tt.status, tt.want)
		})
	}
}

func TestNewPanicsOnBadMinVersion(t *testing.T) {
	for _, v := range []string{"3.0", "2", "x.y"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(MinAPIVersion %q) did not panic", v)
				}
			}()
			New(Config{MinAPIVersion: v})
		}()
	}
}

func TestAuthentication(t *testing.T) {
	basic := Config{Username: "admin", Password: "s3cret"}
	bearer := Config{BearerToken: "tok"}
	both := Config{Username: "admin", Password: "s3cret", BearerToken: "tok"}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name   string
		cfg    Config
		authz  string // "" = no header
		status int
		want   string
		chall  string
	}{
		{"no auth configured", Config{}, "", http.StatusOK, "", ""},
		{"basic ok", basic, "Basic " + b64("admin:s3cret"), http.StatusOK, "", ""},
		{"basic lower-case scheme ok", basic, "basic " + b64("admin:s3cret"), http.StatusOK, "", ""},
		{"basic missing", basic, "", http.StatusUnauthorized, "missing Authorization", `Basic realm="osbtest"`},
		{"basic wrong password", basic, "Basic " + b64("admin:nope"), http.StatusUnauthorized, "wrong basic auth", "Basic"},
		{"basic wrong user", basic, "Basic " + b64("root:s3cret"), http.StatusUnauthorized, "wrong basic auth", "Basic"},
		{"basic garbage", basic, "Basic !!!", http.StatusUnauthorized, "wrong basic auth", "Basic"},
		{"bearer sent to basic broker", basic, "Bearer tok", http.StatusUnauthorized, `scheme "Bearer" is not accepted`, "Basic"},
		{"bearer ok", bearer, "Bearer tok", http.StatusOK, "", ""},
		{"bearer wrong", bearer, "Bearer other", http.StatusUnauthorized, "wrong bearer token", "Bearer"},
		{"basic sent to bearer broker", bearer, "Basic " + b64("admin:s3cret"), http.StatusUnauthorized, "not accepted", "Bearer"},
		{"both: basic ok", both, "Basic " + b64("admin:s3cret"), http.StatusOK, "", ""},
		{"both: bearer ok", both, "Bearer tok", http.StatusOK, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			opt := header("Authorization", tt.authz)
			if tt.authz == "" {
				opt = noHeader("Authorization")
			}
			r := h.do(http.MethodGet, "/v2/catalog", nil, opt)
			expect(t, r, tt.status, tt.want)
			if tt.chall != "" && !strings.Contains(strings.Join(r.Header.Values("WWW-Authenticate"), ","), tt.chall) {
				t.Fatalf("WWW-Authenticate %q, want %q", r.Header.Values("WWW-Authenticate"), tt.chall)
			}
			if tt.status == http.StatusUnauthorized {
				c, _ := h.b.LastCall(EndpointCatalog)
				if c.Status != 401 || !strings.Contains(c.Description, "unauthorized") {
					t.Fatalf("refusal not logged: %+v", c)
				}
				if got := c.Headers.Get("Authorization"); tt.authz != "" && strings.Contains(got, "s3cret") || strings.Contains(got, b64("admin:s3cret")) {
					t.Fatalf("Authorization not redacted: %q", got)
				}
			}
		})
	}
}

func TestRouting(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/v2/nothing", http.StatusNotFound, ""},
		{http.MethodGet, "/v2/service_instances/", http.StatusNotFound, ""},
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodPost, "/v2/catalog", http.StatusMethodNotAllowed, "GET"},
		{http.MethodPost, "/v2/service_instances/i1", http.StatusMethodNotAllowed, "GET, PUT, PATCH, DELETE"},
		{http.MethodDelete, "/v2/service_instances/i1/last_operation", http.StatusMethodNotAllowed, "GET"},
		{http.MethodPatch, "/v2/service_instances/i1/service_bindings/b1", http.StatusMethodNotAllowed, "GET, PUT, DELETE"},
		{http.MethodPut, "/v2/service_instances/i1/service_bindings/b1/last_operation", http.StatusMethodNotAllowed, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := h.with(t).do(tt.method, tt.path, nil)
			expect(t, r, tt.status, "")
			if r.Str("description") == "" {
				t.Fatalf("no description: %s", r.Body)
			}
			if got := r.Header.Get("Allow"); got != tt.allow {
				t.Fatalf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
	if n := h.b.Count(EndpointUnknown); n != len(tests) {
		t.Fatalf("unknown-endpoint calls %d, want %d", n, len(tests))
	}
}

func TestEscapedIDs(t *testing.T) {
	h := newHarness(t, Config{})
	id := "ns/with space"
	expect(t, h.provision(id, PlanDBSmall, nil), http.StatusCreated, "")
	if _, ok := h.b.Instance(id); !ok {
		t.Fatalf("instance %q not stored: %v", id, h.b.Instances())
	}
	c, _ := h.b.LastCall(EndpointProvision)
	if c.InstanceID != id {
		t.Fatalf("call InstanceID %q", c.InstanceID)
	}
}

func TestOriginatingIdentity(t *testing.T) {
	good := identity("kubernetes", map[string]any{"username": "alice", "uid": "1", "groups": []string{"dev"}})
	tests := []struct {
		name   string
		opt    reqOpt
		ctx    any // context of the provision body ("" keeps the default)
		status int
		want   string
	}{
		{"absent", nil, nil, http.StatusCreated, ""},
		{"kubernetes ok", good, nil, http.StatusCreated, ""},
		{"other platform without context", identity("cloudfoundry", map[string]any{"user_id": "x"}), "none", http.StatusCreated, ""},
		{"no value", header(HeaderOriginatingIdentity, "kubernetes"), nil, http.StatusBadRequest, "malformed"},
		{"empty platform", header(HeaderOriginatingIdentity, " e30="), nil, http.StatusBadRequest, "malformed"},
		{"three parts", header(HeaderOriginatingIdentity, "kubernetes e30= extra"), nil, http.StatusBadRequest, "malformed"},
		{"not base64", header(HeaderOriginatingIdentity, "kubernetes %%%"), nil, http.StatusBadRequest, "not standard base64"},
		{"not JSON", header(HeaderOriginatingIdentity, "kubernetes "+base64.StdEncoding.EncodeToString([]byte("nope"))), nil, http.StatusBadRequest, "JSON object"},
		{"JSON array", header(HeaderOriginatingIdentity, "kubernetes "+base64.StdEncoding.EncodeToString([]byte("[1]"))), nil, http.StatusBadRequest, "JSON object"},
		{"kubernetes without username", identity("kubernetes", map[string]any{"uid": "1"}), nil, http.StatusBadRequest, `requires a non-empty "username"`},
		{"platform differs from context", identity("cloudfoundry", map[string]any{"user_id": "x"}), nil, http.StatusBadRequest, `differs from context.platform "kubernetes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			body := provisionBody(ServiceDB, PlanDBSmall, nil)
			if tt.ctx == "none" {
				delete(body, "context")
			}
			var opts []reqOpt
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			expect(t, h.do(http.MethodPut, instPath("i1"), body, opts...), tt.status, tt.want)
		})
	}
	t.Run("duplicate header", func(t *testing.T) {
		h := newHarness(t, Config{})
		dup := func(r *http.Request) {
			r.Header.Add(HeaderOriginatingIdentity, "kubernetes e30=")
			r.Header.Add(HeaderOriginatingIdentity, "kubernetes e30=")
		}
		expect(t, h.do(http.MethodGet, "/v2/catalog", nil, dup), http.StatusBadRequest, "given 2 times")
	})
}

func TestRequiredIdentityHeaders(t *testing.T) {
	h := newHarness(t, Config{RequireOriginatingIdentity: true, RequireRequestIdentity: true})
	rid := header(HeaderRequestIdentity, "req-1")
	// Catalog fetches need no originating identity, but a request identity.
	expect(t, h.do(http.MethodGet, "/v2/catalog", nil, rid), http.StatusOK, "")
	expect(t, h.do(http.MethodGet, "/v2/catalog", nil), http.StatusBadRequest, "missing X-Broker-API-Request-Identity")
	// Mutating requests need both.
	expect(t, h.do(http.MethodPut, instPath("i1"), provisionBody(ServiceDB, PlanDBSmall, nil), rid),
		http.StatusBadRequest, "missing X-Broker-API-Originating-Identity")
	expect(t, h.do(http.MethodPut, instPath("i1"), provisionBody(ServiceDB, PlanDBSmall, nil), rid,
		identity("kubernetes", map[string]any{"username": "bob"})), http.StatusCreated, "")
}

func TestRequestIdentityEchoedAndLogged(t *testing.T) {
	h := newHarness(t, Config{})
	r := h.do(http.MethodGet, "/v2/catalog", nil, header(HeaderRequestIdentity, "abc-123"))
	if got := r.Header.Get(HeaderRequestIdentity); got != "abc-123" {
		t.Fatalf("echoed %q", got)
	}
	// Refusals echo it too.
	r = h.do(http.MethodGet, "/v2/catalog", nil, header(HeaderRequestIdentity, "def-456"), noHeader(HeaderAPIVersion))
	if got := r.Header.Get(HeaderRequestIdentity); r.Status != 412 || got != "def-456" {
		t.Fatalf("refusal: status %d, echoed %q", r.Status, got)
	}
	calls := h.b.Calls()
	if len(calls) != 2 || calls[0].RequestID != "abc-123" || calls[1].RequestID != "def-456" {
		t.Fatalf("calls %+v", calls)
	}
	r = h.do(http.MethodGet, "/v2/catalog", nil)
	if _, ok := r.Header[HeaderRequestIdentity]; ok {
		t.Fatalf("echoed a request identity that was not sent")
	}
}

func TestBodyValidation(t *testing.T) {
	valid := provisionBody(ServiceDB, PlanDBSmall, nil)
	without := func(k string) map[string]any {
		m := provisionBody(ServiceDB, PlanDBSmall, nil)
		delete(m, k)
		return m
	}
	with := func(k string, v any) map[string]any {
		m := provisionBody(ServiceDB, PlanDBSmall, nil)
		m[k] = v
		return m
	}
	tests := []struct {
		name   string
		body   any
		opts   []reqOpt
		status int
		want   string
	}{
		{"valid", valid, nil, http.StatusCreated, ""},
		{"charset allowed", valid, []reqOpt{contentType("application/json; charset=utf-8")}, http.StatusCreated, ""},
		{"vendor extension fields ignored", with("x-vendor", map[string]any{"a": 1}), nil, http.StatusCreated, ""},
		{"no content type", valid, []reqOpt{noHeader("Content-Type")}, http.StatusBadRequest, "missing Content-Type"},
		{"wrong content type", valid, []reqOpt{contentType("text/plain")}, http.StatusBadRequest, `"text/plain" is not application/json`},
		{"unparsable content type", valid, []reqOpt{contentType("application/json; =")}, http.StatusBadRequest, "not application/json"},
		{"no body", nil, []reqOpt{contentType("application/json")}, http.StatusBadRequest, "empty request body"},
		{"blank body", raw("  "), nil, http.StatusBadRequest, "empty request body"},
		{"invalid JSON", raw(`{"service_id": `), nil, http.StatusBadRequest, "not valid JSON"},
		{"trailing garbage", raw(`{} {}`), nil, http.StatusBadRequest, "not valid JSON"},
		{"array", raw(`[]`), nil, http.StatusBadRequest, "not a JSON object"},
		{"wrong type", with("service_id", 5), nil, http.StatusBadRequest, "does not match the OSB schema"},
		{"parameters not an object", with("parameters", "x"), nil, http.StatusBadRequest, "does not match the OSB schema"},
		{"missing service_id", without("service_id"), nil, http.StatusBadRequest, "missing required field(s) in provision body: service_id"},
		{"missing plan_id", without("plan_id"), nil, http.StatusBadRequest, "plan_id"},
		{"missing organization_guid", without("organization_guid"), nil, http.StatusBadRequest, "organization_guid"},
		{"missing space_guid", without("space_guid"), nil, http.StatusBadRequest, "space_guid"},
		{"several missing", map[string]any{"plan_id": PlanDBSmall}, nil, http.StatusBadRequest, "service_id, organization_guid, space_guid"},
		{"context without platform", with("context", map[string]any{"namespace": "x"}), nil, http.StatusBadRequest, "context.platform is required"},
		{"context not an object", with("context", "kubernetes"), nil, http.StatusBadRequest, "OSB schema"},
		{"unknown service", with("service_id", "nope"), nil, http.StatusBadRequest, `service_id "nope" is not in the catalog`},
		{"unknown plan", with("plan_id", "nope"), nil, http.StatusBadRequest, `plan_id "nope" is not a plan of service`},
		{"plan of another service", with("plan_id", PlanQueueStandard), nil, http.StatusBadRequest, `belongs to service "osbtest-queue"`},
		{"maintenance_info on a plan without", with("maintenance_info", map[string]any{"version": "1.0.0"}), nil, http.StatusUnprocessableEntity, "declares no maintenance_info"},
		{"too large", raw(`{"x":"` + strings.Repeat("a", maxBodyBytes) + `"}`), nil, http.StatusBadRequest, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			r := h.do(http.MethodPut, instPath("i1"), tt.body, tt.opts...)
			expect(t, r, tt.status, tt.want)
			if tt.status >= 400 {
				if len(h.b.Instances()) != 0 {
					t.Fatalf("a refused provision created an instance")
				}
				c, _ := h.b.LastCall(EndpointProvision)
				if c.Description == "" || c.Status != tt.status {
					t.Fatalf("refusal not logged: %+v", c)
				}
			}
		})
	}
}

func TestAcceptsIncompleteParameter(t *testing.T) {
	h := newHarness(t, Config{})
	expect(t, h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "yes"), http.StatusBadRequest, "accepts_incomplete must be true or false")
	expect(t, h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "false"), http.StatusCreated, "")
	// A synchronous plan answers synchronously even when incomplete is accepted.
	expect(t, h.provision("i2", PlanDBSmall, nil, "accepts_incomplete", "true"), http.StatusCreated, "")
	for _, p := range []string{instPath("i1", "accepts_incomplete", "1"), bindPath("i1", "b1", "accepts_incomplete", "TRUE")} {
		expect(t, h.do(http.MethodDelete, p+"&service_id="+ServiceDB+"&plan_id="+PlanDBSmall, nil), http.StatusBadRequest, "accepts_incomplete")
	}
	expect(t, h.do(http.MethodPatch, instPath("i1", "accepts_incomplete", "maybe"), map[string]any{"service_id": ServiceDB}), http.StatusBadRequest, "accepts_incomplete")
	expect(t, h.do(http.MethodPut, bindPath("i1", "b1", "accepts_incomplete", "maybe"), bindBody(ServiceDB, PlanDBSmall, nil)), http.StatusBadRequest, "accepts_incomplete")
}
