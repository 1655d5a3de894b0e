package osbtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// harness drives a broker over real HTTP with hand-built requests, so these
// tests do not depend on the osbclient.Client.
type harness struct {
	t   *testing.T
	b   *Broker
	srv *httptest.Server
	cfg Config
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	b, srv := NewServer(t, cfg)
	return &harness{t: t, b: b, srv: srv, cfg: cfg}
}

// with returns a copy of h that reports failures to t (for subtests).
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

// reqOpt adjusts a request before it is sent.
type reqOpt func(*http.Request)

func header(k, v string) reqOpt   { return func(r *http.Request) { r.Header.Set(k, v) } }
func noHeader(k string) reqOpt    { return func(r *http.Request) { r.Header.Del(k) } }
func contentType(v string) reqOpt { return header("Content-Type", v) }
func identity(platform string, v any) reqOpt {
	raw, _ := json.Marshal(v)
	return header(HeaderOriginatingIdentity, platform+" "+base64.StdEncoding.EncodeToString(raw))
}

// raw marks a body to be sent verbatim.
type raw string

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic object (nil if it is not one).
func (r response) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// Str returns a top-level string field of the JSON body.
func (r response) Str(k string) string {
	s, _ := r.JSON()[k].(string)
	return s
}

func (h *harness) do(method, path string, body any, opts ...reqOpt) response {
	h.t.Helper()
	r, err := h.send(h.srv.Client(), method, path, body, opts...)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// send is do with a chosen client, returning transport errors.
func (h *harness) send(c *http.Client, method, path string, body any, opts ...reqOpt) (response, error) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case raw:
		rd = strings.NewReader(string(b))
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set(HeaderAPIVersion, "2.17")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.cfg.Username != "" {
		req.SetBasicAuth(h.cfg.Username, h.cfg.Password)
	} else if h.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+h.cfg.BearerToken)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: out}, nil
}

func instPath(id string, q ...string) string {
	return "/v2/service_instances/" + url.PathEscape(id) + query(q...)
}

func bindPath(iid, bid string, q ...string) string {
	return "/v2/service_instances/" + url.PathEscape(iid) + "/service_bindings/" + url.PathEscape(bid) + query(q...)
}

// query builds "?k=v&..." from alternating keys and values.
func query(kv ...string) string {
	if len(kv) == 0 {
		return ""
	}
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}

func provisionBody(service, plan string, params map[string]any) map[string]any {
	m := map[string]any{
		"service_id":        service,
		"plan_id":           plan,
		"organization_guid": "org-1",
		"space_guid":        "space-1",
		"context":           map[string]any{"platform": "kubernetes", "namespace": "ns", "clusterid": "c1", "instance_name": "db"},
	}
	if params != nil {
		m["parameters"] = params
	}
	return m
}

func bindBody(service, plan string, params map[string]any) map[string]any {
	m := map[string]any{
		"service_id": service,
		"plan_id":    plan,
		"context":    map[string]any{"platform": "kubernetes", "namespace": "ns"},
	}
	if params != nil {
		m["parameters"] = params
	}
	return m
}

// provision provisions a synchronous DB-small instance and checks the 201.
func (h *harness) provision(id, plan string, params map[string]any, q ...string) response {
	h.t.Helper()
	return h.do(http.MethodPut, instPath(id, q...), provisionBody(serviceOf(plan), plan, params))
}

func (h *harness) mustProvision(id, plan string) {
	h.t.Helper()
	r := h.provision(id, plan, nil)
	if r.Status != http.StatusCreated {
		h.t.Fatalf("provision %s: status %d, body %s", id, r.Status, r.Body)
	}
}

func (h *harness) mustBind(iid, bid, plan string) response {
	h.t.Helper()
	r := h.do(http.MethodPut, bindPath(iid, bid), bindBody(serviceOf(plan), plan, nil))
	if r.Status != http.StatusCreated {
		h.t.Fatalf("bind %s/%s: status %d, body %s", iid, bid, r.Status, r.Body)
	}
	return r
}

func (h *harness) poll(id string, q ...string) response {
	h.t.Helper()
	return h.do(http.MethodGet, "/v2/service_instances/"+id+"/last_operation"+query(q...), nil)
}

func (h *harness) pollBinding(iid, bid string, q ...string) response {
	h.t.Helper()
	return h.do(http.MethodGet, "/v2/service_instances/"+iid+"/service_bindings/"+bid+"/last_operation"+query(q...), nil)
}

func serviceOf(plan string) string {
	switch {
	case strings.HasPrefix(plan, ServiceDB+"-"):
		return ServiceDB
	case strings.HasPrefix(plan, ServiceQueue+"-"):
		return ServiceQueue
	case strings.HasPrefix(plan, ServiceDNS+"-"):
		return ServiceDNS
	}
	return "unknown-service"
}

// expect checks a response's status and that its description (if want is
// non-empty) contains want.
func expect(t *testing.T, r response, status int, want string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if want != "" && !strings.Contains(r.Str("description"), want) {
		t.Fatalf("description %q does not contain %q", r.Str("description"), want)
	}
}

// expectError checks an OSB error answer: status, error code and description.
func expectError(t *testing.T, r response, status int, code, want string) {
	t.Helper()
	expect(t, r, status, want)
	if got := r.Str("error"); got != code {
		t.Fatalf("error code %q, want %q; body %s", got, code, r.Body)
	}
	if r.Str("description") == "" {
		t.Fatalf("error answer without description: %s", r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}
