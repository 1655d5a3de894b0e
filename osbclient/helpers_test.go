package osbclient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// seen is one request as the test broker received it.
type seen struct {
	Method   string
	Path     string // escaped
	Query    url.Values
	RawQuery string
	Header   http.Header
	Body     []byte
}

// broker is an httptest server that records requests and answers with h.
type broker struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func (b *broker) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.reqs...)
}

func (b *broker) record(r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.reqs = append(b.reqs, seen{
		Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body,
	})
	b.mu.Unlock()
}

// newBroker starts a plain-HTTP test broker.
func newBroker(t *testing.T, h http.HandlerFunc) *broker {
	t.Helper()
	b := &broker{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.record(r)
		h(w, r)
	}))
	t.Cleanup(b.Close)
	return b
}

// reply answers status with body; Content-Type application/json when the
// body is non-empty, unless headers (name, value pairs) set another.
func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(headers); i += 2 {
			if headers[i+1] == "" {
				w.Header()[headers[i]] = nil // suppress
				continue
			}
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// newClient builds a client for b; mods adjust the config.
func newClient(t *testing.T, rawURL string, mods ...func(*osbclient.Config)) *osbclient.Client {
	t.Helper()
	cfg := osbclient.Config{URL: rawURL, BrokerName: "test-broker", Timeout: 5 * time.Second}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := osbclient.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// asOSB extracts the *osbclient.Error or fails the test.
func asOSB(t *testing.T, err error) *osbclient.Error {
	t.Helper()
	var e *osbclient.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not *osbclient.Error", err, err)
	}
	return e
}

// callCase is one client call with a valid request and what goes on the wire.
type callCase struct {
	op       osbclient.Operation
	method   string
	path     string
	query    url.Values
	hasBody  bool
	mutating bool // provision, update, deprovision, bind, unbind
	deletes  bool // deprovision, unbind: 410 is Gone
	lastOp   bool // last_operation calls: 410 is Gone
	do       func(context.Context, *osbclient.Client) (any, error)
}

var ident = &osbwire.OriginatingIdentity{Username: "alice@example.com", UID: "u-1", Groups: []string{"dev"}}

var kctx = &osbwire.Context{Platform: osbwire.PlatformKubernetes, Namespace: "ns1", ClusterID: "cluster-1", InstanceName: "db"}

// calls returns every client call, with valid requests.
func calls() []callCase {
	return []callCase{
		{op: osbclient.OpGetCatalog, method: "GET", path: "/v2/catalog", query: url.Values{},
			do: func(ctx context.Context, c *osbclient.Client) (any, error) { return c.GetCatalog(ctx) }},
		{op: osbclient.OpProvision, method: "PUT", path: "/v2/service_instances/inst-1",
			query: url.Values{"accepts_incomplete": {"true"}}, hasBody: true, mutating: true,
			do: func(ctx context.Context, c *osbclient.Client) (any, error) {
				return c.Provision(ctx, &osbwire.ProvisionRequest{
					InstanceID: "inst-1", AcceptsIncomplete: true, ServiceID: "svc-1", PlanID: "plan-1",
					OrganizationGUID: "cluster-1", SpaceGUID: "ns1", Context: kctx,
					Parameters: map[string]any{"size": "small"}, Identity: ident,
				})
			}},
		{op: osbclient.OpUpdateInstance, method: "PATCH", path: "/v2/service_instances/inst-1",
			query: url.Values{"accepts_incomplete": {"true"}}, hasBody: true, mutating: true,
			do: func(ctx context.Context, c *osbclient.Client) (any, error) {
				return c.UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{
					InstanceID: "inst-1", AcceptsIncomplete: true, ServiceID: "svc-1", PlanID: "plan-2",
					PreviousValues: &osbwire.PreviousValues{PlanID: "plan-1"}, Identity: ident,
				})
			}},
		{op: osbclient.OpDeprovision, method: "DELETE", path: "/v2/service_instances/inst-1",
			query:    url.Values{"accepts_incomplete": {"true"}, "service_id": {"svc-1"}, "plan_id": {"plan-1"}},
			mutating: true, deletes: true,
			do: func(ctx context.Context, c *osbclient.Client) (any, error) {
				return c.Deprovision(ctx, &osbwire.DeprovisionRequest{
					InstanceID: "inst-1", AcceptsIncomplete: true, ServiceID: "svc-1", PlanID: "plan-1", Identity: ident,
				})
			}},
		{op: osbclient.OpGetInstance, method: "GET", path: "/v2/service_instances/inst-1",
			query: url.Values{"service_id": {"svc-1"}, "plan_id": {"plan-1"}},
			do: func(ctx context.Context, c *osbclient.Client) (any, error) {
				return c.GetInstance(ctx, &osbwire.GetInstanceRequest{InstanceID: "inst-1", ServiceID: "svc-1", PlanID: "plan-1"})
			}},
		{op: osbclient.OpLastOperation, method: "GET", path: "/v2/service_instances/inst-1/last_operation",
			query:  url.Values{"service_id": {"svc-1"}, "plan_id": {"plan-1"}, "operation": {"op 1&x=y"}},
			lastOp: true,
			do: func(ctx context.Context, c *osbclient.Client) (any, error) {
				return c.LastOperation(ctx, &osbwire.LastOperationRequest{
					InstanceID: "inst-1", ServiceID: "svc-1", PlanID: "plan-1", Operation: "op 1&x=y",
				})
			}},
		{op: osbclient.OpBind, method: "PUT", path: "/v2/service_instances/inst-1/service_bindings/bind-1",
			query: url.Values{"accepts_incomplete": {"true"}}, hasBody: true, mutating: true,
			do: func(ctx context.Context, c *osbclient.Client) (any, error) {
				return c.Bind(ctx, &osbwire.BindRequest{
					InstanceID: "inst-1", BindingID: "bind-1", AcceptsIncomplete: true, ServiceID: "svc-1", PlanID: "plan-1",
					Context: kctx, BindResource: &osbwire.BindResource{AppGUID: "ns1"}, Identity: ident,
				})
			}},
		{op: osbclient.OpUnbind, method: "DELETE", path: "/v2/service_instances/inst-1/service_bindings/bind-1",
			query:    url.Values{"accepts_incomplete": {"true"}, "service_id": {"svc-1"}, "plan_id": {"plan-1"}},
			mutating: true, deletes: true,
			do: func(ctx context.Context, c *osbclient.Client) (any, error) {
				return c.Unbind(ctx, &osbwire.UnbindRequest{
					InstanceID: "inst-1", BindingID: "bind-1", AcceptsIncomplete: true, ServiceID: "svc-1", PlanID: "plan-1", Identity: ident,
				})
			}},
		{op: osbclient.OpGetBinding, method: "GET", path: "/v2/service_instances/inst-1/service_bindings/bind-1",
			query: url.Values{"service_id": {"svc-1"}, "plan_id": {"plan-1"}},
			do: func(ctx context.Context, c *osbclient.Client) (any, error) {
				return c.GetBinding(ctx, &osbwire.GetBindingRequest{InstanceID: "inst-1", BindingID: "bind-1", ServiceID: "svc-1", PlanID: "plan-1"})
			}},
		{op: osbclient.OpBindingLastOperation, method: "GET",
			path:   "/v2/service_instances/inst-1/service_bindings/bind-1/last_operation",
			query:  url.Values{"service_id": {"svc-1"}, "plan_id": {"plan-1"}, "operation": {"bop"}},
			lastOp: true,
			do: func(ctx context.Context, c *osbclient.Client) (any, error) {
				return c.BindingLastOperation(ctx, &osbwire.BindingLastOperationRequest{
					InstanceID: "inst-1", BindingID: "bind-1", ServiceID: "svc-1", PlanID: "plan-1", Operation: "bop",
				})
			}},
	}
}

// okBody is a success body every call accepts.
const okBody = `{"services":[],"state":"in progress","operation":"op-1"}`

// createOp reports whether op can leave an orphan that needs mitigation on
// a malformed 201/202 or a timeout.
func createOp(op osbclient.Operation) bool {
	return op == osbclient.OpProvision || op == osbclient.OpBind
}

// omOp reports whether orphan mitigation can apply to op at all.
func omOp(op osbclient.Operation) bool {
	switch op {
	case osbclient.OpProvision, osbclient.OpDeprovision, osbclient.OpBind, osbclient.OpUnbind:
		return true
	}
	return false
}
