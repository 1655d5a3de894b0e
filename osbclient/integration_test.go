package osbclient_test

import (
	"context"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// These tests run the client against osbtest, the strict in-memory broker:
// if the client sends something the spec does not allow (a missing header,
// a wrong query parameter, a poll with the wrong plan_id), the broker
// refuses it and says why.

func strictBroker(t *testing.T) (*osbtest.Broker, *osbclient.Client) {
	t.Helper()
	b, srv := osbtest.NewTLSServer(t, osbtest.Config{
		Username: "broker-user", Password: "broker-pass",
		RequireOriginatingIdentity: true, RequireRequestIdentity: true,
	})
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c := newClient(t, srv.URL, func(c *osbclient.Config) {
		c.Username, c.Password, c.CABundle = "broker-user", "broker-pass", ca
	})
	return b, c
}

func TestIntegrationSyncLifecycle(t *testing.T) {
	b, c := strictBroker(t)
	ctx := context.Background()

	cat, err := c.GetCatalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Services) == 0 {
		t.Fatal("empty catalog")
	}

	prov := &osbwire.ProvisionRequest{
		InstanceID: "inst-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall,
		OrganizationGUID: "cluster-1", SpaceGUID: "ns1", Context: kctx,
		Parameters: map[string]any{"size": 1}, Identity: ident,
	}
	pr, err := c.Provision(ctx, prov)
	if err != nil {
		t.Fatal(err)
	}
	if pr.StatusCode != 201 || pr.Async || !strings.Contains(pr.Response.DashboardURL, "inst-1") {
		t.Errorf("provision: %+v", pr)
	}
	// Identical repeat: 200. Different attributes: 409.
	if pr, err = c.Provision(ctx, prov); err != nil || pr.StatusCode != 200 {
		t.Errorf("repeat provision: %+v %v", pr, err)
	}
	other := *prov
	other.Parameters = map[string]any{"size": 2}
	_, err = c.Provision(ctx, &other)
	if !osbclient.IsConflict(err) || asOSB(t, err).OrphanMitigationRequired() {
		t.Errorf("conflicting provision: %v", err)
	}

	gi, err := c.GetInstance(ctx, &osbwire.GetInstanceRequest{InstanceID: "inst-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall})
	if err != nil || gi.PlanID != osbtest.PlanDBSmall {
		t.Fatalf("get instance: %+v %v", gi, err)
	}
	up, err := c.UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{
		InstanceID: "inst-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBLarge,
		Parameters: map[string]any{"size": 3}, Context: kctx, Identity: ident,
		PreviousValues: &osbwire.PreviousValues{PlanID: osbtest.PlanDBSmall},
	})
	if err != nil || up.Async {
		t.Fatalf("update: %+v %v", up, err)
	}
	if in, _ := b.Instance("inst-1"); in.PlanID != osbtest.PlanDBLarge {
		t.Errorf("instance after update: %+v", in)
	}

	br, err := c.Bind(ctx, &osbwire.BindRequest{
		InstanceID: "inst-1", BindingID: "bind-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBLarge,
		Context: kctx, BindResource: &osbwire.BindResource{AppGUID: "ns1"}, Identity: ident,
	})
	if err != nil || br.StatusCode != 201 || len(br.Response.Credentials) == 0 {
		t.Fatalf("bind: %+v %v", br, err)
	}
	gb, err := c.GetBinding(ctx, &osbwire.GetBindingRequest{InstanceID: "inst-1", BindingID: "bind-1"})
	if err != nil || len(gb.Credentials) == 0 {
		t.Fatalf("get binding: %v", err)
	}
	_, err = c.GetBinding(ctx, &osbwire.GetBindingRequest{InstanceID: "inst-1", BindingID: "nope"})
	if !osbclient.IsNotFound(err) {
		t.Errorf("get missing binding: %v", err)
	}

	unbind := &osbwire.UnbindRequest{InstanceID: "inst-1", BindingID: "bind-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBLarge, Identity: ident}
	if ur, err := c.Unbind(ctx, unbind); err != nil || ur.StatusCode != 200 || ur.Gone {
		t.Fatalf("unbind: %+v %v", ur, err)
	}
	if ur, err := c.Unbind(ctx, unbind); err != nil || !ur.Gone {
		t.Fatalf("second unbind: %+v %v", ur, err)
	}
	deprov := &osbwire.DeprovisionRequest{InstanceID: "inst-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBLarge, Identity: ident}
	if dr, err := c.Deprovision(ctx, deprov); err != nil || dr.StatusCode != 200 {
		t.Fatalf("deprovision: %+v %v", dr, err)
	}
	if dr, err := c.Deprovision(ctx, deprov); err != nil || !dr.Gone {
		t.Fatalf("second deprovision: %+v %v", dr, err)
	}

	// Every call carried a distinct request identity.
	ids := map[string]bool{}
	for _, call := range b.Calls() {
		if call.RequestID == "" || ids[call.RequestID] {
			t.Errorf("%s: request id %q", call.Endpoint, call.RequestID)
		}
		ids[call.RequestID] = true
	}
}

func TestIntegrationAsyncLifecycle(t *testing.T) {
	b, c := strictBroker(t)
	ctx := context.Background()
	b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: 2, RetryAfter: 2 * time.Second})

	prov := &osbwire.ProvisionRequest{
		InstanceID: "inst-a", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBAsync,
		OrganizationGUID: "cluster-1", SpaceGUID: "ns1", Context: kctx, Identity: ident,
	}
	_, err := c.Provision(ctx, prov)
	if !osbclient.IsAsyncRequired(err) {
		t.Fatalf("want AsyncRequired, got %v", err)
	}
	prov.AcceptsIncomplete = true
	pr, err := c.Provision(ctx, prov)
	if err != nil || !pr.Async || pr.Response.Operation == "" {
		t.Fatalf("provision: %+v %v", pr, err)
	}
	poll := func(op, plan string, retryAfter time.Duration) *osbwire.LastOperationResponse {
		t.Helper()
		for range 10 {
			lo, err := c.LastOperation(ctx, &osbwire.LastOperationRequest{
				InstanceID: "inst-a", ServiceID: osbtest.ServiceDB, PlanID: plan, Operation: op})
			if err != nil {
				t.Fatalf("poll: %v", err)
			}
			if lo.Gone || lo.State != osbwire.StateInProgress {
				return lo
			}
			if lo.RetryAfter != retryAfter {
				t.Errorf("RetryAfter %s", lo.RetryAfter)
			}
		}
		t.Fatal("operation never finished")
		return nil
	}
	if lo := poll(pr.Response.Operation, osbtest.PlanDBAsync, 2*time.Second); lo.State != osbwire.StateSucceeded {
		t.Fatalf("provision ended %+v", lo)
	}

	// An update changing plans is polled with the plan from before it.
	b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Async: true, Polls: 1}, osbtest.OpUpdate)
	up, err := c.UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{
		InstanceID: "inst-a", AcceptsIncomplete: true, ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall, Identity: ident,
	})
	if err != nil || !up.Async {
		t.Fatalf("update: %+v %v", up, err)
	}
	// While it runs, another update is a concurrency error.
	_, err = c.UpdateInstance(ctx, &osbwire.UpdateInstanceRequest{InstanceID: "inst-a", ServiceID: osbtest.ServiceDB, Parameters: map[string]any{"size": 2}, Identity: ident})
	if !osbclient.IsConcurrencyError(err) || asOSB(t, err).OrphanMitigationRequired() {
		t.Errorf("concurrent update: %v", err)
	}
	if lo := poll(up.Response.Operation, osbtest.PlanDBAsync, 0); lo.State != osbwire.StateSucceeded {
		t.Fatalf("update ended %+v", lo)
	}

	// Async bind and unbind, polled on the binding endpoint.
	b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Async: true, Polls: 1}, osbtest.OpBind, osbtest.OpUnbind)
	br, err := c.Bind(ctx, &osbwire.BindRequest{
		InstanceID: "inst-a", BindingID: "bind-a", AcceptsIncomplete: true, ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall, Identity: ident,
	})
	if err != nil || !br.Async {
		t.Fatalf("bind: %+v %v", br, err)
	}
	bpoll := func(op string) *osbwire.LastOperationResponse {
		t.Helper()
		for range 10 {
			lo, err := c.BindingLastOperation(ctx, &osbwire.BindingLastOperationRequest{
				InstanceID: "inst-a", BindingID: "bind-a", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall, Operation: op})
			if err != nil {
				t.Fatalf("binding poll: %v", err)
			}
			if lo.Gone || lo.State != osbwire.StateInProgress {
				return lo
			}
		}
		t.Fatal("binding operation never finished")
		return nil
	}
	if lo := bpoll(br.Response.Operation); lo.State != osbwire.StateSucceeded {
		t.Fatalf("bind ended %+v", lo)
	}
	if gb, err := c.GetBinding(ctx, &osbwire.GetBindingRequest{InstanceID: "inst-a", BindingID: "bind-a"}); err != nil || len(gb.Credentials) == 0 {
		t.Fatalf("get binding after async bind: %v", err)
	}
	ur, err := c.Unbind(ctx, &osbwire.UnbindRequest{InstanceID: "inst-a", BindingID: "bind-a", AcceptsIncomplete: true, ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall, Identity: ident})
	if err != nil || !ur.Async {
		t.Fatalf("unbind: %+v %v", ur, err)
	}
	if lo := bpoll(ur.Response.Operation); !lo.Gone && lo.State != osbwire.StateSucceeded {
		t.Fatalf("unbind ended %+v", lo)
	}

	b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Async: true, Polls: 0}, osbtest.OpDeprovision)
	dr, err := c.Deprovision(ctx, &osbwire.DeprovisionRequest{InstanceID: "inst-a", AcceptsIncomplete: true, ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall, Identity: ident})
	if err != nil || !dr.Async {
		t.Fatalf("deprovision: %+v %v", dr, err)
	}
	if lo := poll(dr.Response.Operation, osbtest.PlanDBSmall, 0); !lo.Gone && lo.State != osbwire.StateSucceeded {
		t.Fatalf("deprovision ended %+v", lo)
	}
	// Once gone, last_operation answers 410, reported as Gone.
	lo, err := c.LastOperation(ctx, &osbwire.LastOperationRequest{InstanceID: "inst-a"})
	if err != nil || !lo.Gone {
		t.Fatalf("poll after deprovision: %+v %v", lo, err)
	}
}

func TestIntegrationFaults(t *testing.T) {
	ctx := context.Background()
	provReq := func(id string) *osbwire.ProvisionRequest {
		return &osbwire.ProvisionRequest{
			InstanceID: id, ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall,
			OrganizationGUID: "cluster-1", SpaceGUID: "ns1", Identity: ident,
		}
	}
	tests := []struct {
		name     string
		fault    osbtest.Fault
		timeout  time.Duration
		kind     osbclient.ErrorKind
		status   int
		om       bool
		instance bool // the broker kept the instance
	}{
		{"500 before effect", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 500, Times: 1}, 0, osbclient.KindStatus, 500, true, false},
		{"500 after effect", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 500, Times: 1, AfterEffect: true}, 0, osbclient.KindStatus, 500, true, true},
		{"503 retry-after", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 503, RetryAfter: 30 * time.Second, Times: 1}, 0, osbclient.KindStatus, 503, true, false},
		{"400", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 400, Times: 1}, 0, osbclient.KindStatus, 400, false, false},
		{"408", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 408, Times: 1}, 0, osbclient.KindStatus, 408, false, false},
		{"malformed 201 after effect", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Malformed: true, Times: 1, AfterEffect: true}, 0, osbclient.KindMalformedBody, 201, true, true},
		{"malformed 200", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 200, Malformed: true, Times: 1}, 0, osbclient.KindMalformedBody, 200, false, false},
		{"204", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 204, Times: 1}, 0, osbclient.KindUnexpectedStatus, 204, true, false},
		{"dropped after effect", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Drop: true, Times: 1, AfterEffect: true}, 0, osbclient.KindConnection, 0, true, true},
		{"slow after effect", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Delay: 5 * time.Second, Times: 1, AfterEffect: true}, 200 * time.Millisecond, osbclient.KindTimeout, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, srv := osbtest.NewServer(t, osbtest.Config{BearerToken: "tok-abc"})
			c := newClient(t, srv.URL, func(c *osbclient.Config) {
				c.BearerToken = "tok-abc"
				if tt.timeout > 0 {
					c.Timeout = tt.timeout
				}
			})
			b.AddFault(tt.fault)
			_, err := c.Provision(ctx, provReq("inst-f"))
			e := asOSB(t, err)
			if e.Kind != tt.kind || e.StatusCode != tt.status {
				t.Fatalf("got %s %d (%v), want %s %d", e.Kind, e.StatusCode, err, tt.kind, tt.status)
			}
			if e.OrphanMitigationRequired() != tt.om {
				t.Errorf("OrphanMitigationRequired = %v, want %v", !tt.om, tt.om)
			}
			if tt.fault.RetryAfter > 0 && e.RetryAfter != tt.fault.RetryAfter {
				t.Errorf("RetryAfter %s", e.RetryAfter)
			}
			// The fault has fired; the broker state tells whether orphan
			// mitigation had something to clean up.
			waitFor(t, func() bool { _, ok := b.Instance("inst-f"); return ok == tt.instance })
			// Orphan mitigation: delete until success (200 or 410).
			if tt.om {
				dr, err := c.Deprovision(ctx, &osbwire.DeprovisionRequest{InstanceID: "inst-f", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall})
				if err != nil || dr.Gone == tt.instance {
					t.Errorf("mitigation: %+v %v", dr, err)
				}
			}
		})
	}
}

// waitFor polls cond briefly: after-effect faults may finish a moment after
// the client gave up.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(6 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIntegrationRefusals(t *testing.T) {
	ctx := context.Background()
	_, srv := osbtest.NewServer(t, osbtest.Config{Username: "u", Password: "right-pass", MinAPIVersion: "2.14"})
	_, err := newClient(t, srv.URL, func(c *osbclient.Config) { c.Username, c.Password = "u", "wrong-pass" }).GetCatalog(ctx)
	if e := asOSB(t, err); e.Kind != osbclient.KindStatus || e.StatusCode != 401 || strings.Contains(err.Error(), "wrong-pass") {
		t.Errorf("bad credentials: %v", err)
	}
	_, err = newClient(t, srv.URL, func(c *osbclient.Config) {
		c.Username, c.Password, c.APIVersion = "u", "right-pass", "2.13"
	}).GetCatalog(ctx)
	if e := asOSB(t, err); e.StatusCode != 412 {
		t.Errorf("old API version: %v", err)
	}
	if _, err := newClient(t, strings.Replace(srv.URL, "://", "://u:right-pass@", 1)).GetCatalog(ctx); err != nil {
		t.Errorf("userinfo credentials: %v", err)
	}
}
