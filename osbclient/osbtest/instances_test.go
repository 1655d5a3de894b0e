package osbtest

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

func TestCatalog(t *testing.T) {
	h := newHarness(t, Config{})
	r := h.do(http.MethodGet, "/v2/catalog", nil)
	expect(t, r, http.StatusOK, "")
	svcs, _ := r.JSON()["services"].([]any)
	if len(svcs) != 3 {
		t.Fatalf("services: %s", r.Body)
	}
	h.b.SetCatalog(osbwire.Catalog{})
	r = h.do(http.MethodGet, "/v2/catalog", nil)
	if string(r.Body) != `{"services":[]}` {
		t.Fatalf("empty catalog body %s", r.Body)
	}
	if got := h.b.Catalog(); len(got.Services) != 0 {
		t.Fatalf("Catalog() %v", got)
	}
	// With the catalog gone, provisioning its plans is refused.
	expect(t, h.provision("i1", PlanDBSmall, nil), http.StatusBadRequest, "not in the catalog")
}

func TestCustomCatalogHasNoDefaultBehaviors(t *testing.T) {
	c := DefaultCatalog()
	h := newHarness(t, Config{Catalog: &c})
	r := h.provision("i1", PlanDBAsync, nil)
	expect(t, r, http.StatusCreated, "")
	if r.Str("dashboard_url") != "" {
		t.Fatalf("dashboard with a custom catalog: %s", r.Body)
	}
	// Mutating the caller's catalog after New changes nothing.
	c.Services = nil
	if len(h.b.Catalog().Services) != 3 {
		t.Fatal("catalog aliased")
	}
}

func TestReprovision(t *testing.T) {
	h := newHarness(t, Config{})
	params := map[string]any{"size": 2, "region": "eu"}
	expect(t, h.provision("i1", PlanDBSmall, params), http.StatusCreated, "")

	t.Run("identical is 200", func(t *testing.T) {
		r := h.with(t).provision("i1", PlanDBSmall, map[string]any{"region": "eu", "size": 2.0})
		expect(t, r, http.StatusOK, "")
		if r.Str("dashboard_url") == "" {
			t.Fatalf("200 without dashboard_url: %s", r.Body)
		}
	})
	conflicts := []struct {
		name string
		body map[string]any
		want string
	}{
		{"other plan", provisionBody(ServiceDB, PlanDBLarge, params), "plan_id (have osbtest-db-small, got osbtest-db-large)"},
		{"other parameters", provisionBody(ServiceDB, PlanDBSmall, map[string]any{"size": 3, "region": "eu"}), "parameters (keys differ: size)"},
		{"no parameters", provisionBody(ServiceDB, PlanDBSmall, nil), "parameters (keys differ: region, size)"},
		{"other space", func() map[string]any {
			m := provisionBody(ServiceDB, PlanDBSmall, params)
			m["space_guid"] = "space-2"
			return m
		}(), "space_guid"},
		{"other context", func() map[string]any {
			m := provisionBody(ServiceDB, PlanDBSmall, params)
			m["context"] = map[string]any{"platform": "kubernetes", "namespace": "other"}
			return m
		}(), "context (keys differ: clusterid, instance_name, namespace)"},
	}
	for _, c := range conflicts {
		t.Run(c.name+" is 409", func(t *testing.T) {
			expect(t, h.with(t).do(http.MethodPut, instPath("i1"), c.body), http.StatusConflict, c.want)
		})
	}
	if in, _ := h.b.Instance("i1"); in.PlanID != PlanDBSmall || in.Parameters["size"] != 2.0 {
		t.Fatalf("conflicting provision changed the instance: %+v", in)
	}
	t.Run("descriptions name keys, not values", func(t *testing.T) {
		r := h.with(t).provision("i1", PlanDBSmall, map[string]any{"size": 2, "region": "eu", "password": "hunter2-secret"})
		expect(t, r, http.StatusConflict, "parameters (keys differ: password)")
		if strings.Contains(string(r.Body), "hunter2") || strings.Contains(string(r.Body), `"eu"`) {
			t.Fatalf("parameter values in the description: %s", r.Body)
		}
	})
}

func TestProvisionAsyncResend(t *testing.T) {
	h := newHarness(t, Config{})
	r := h.provision("i1", PlanDBAsync, nil, "accepts_incomplete", "true")
	expect(t, r, http.StatusAccepted, "")
	op := r.Str("operation")
	if r.Str("dashboard_url") != "https://dashboard.osbtest.invalid/instances/i1" {
		t.Fatalf("async provision must return dashboard_url with the 202: %s", r.Body)
	}
	// A re-sent identical PUT while in progress: 202 with the same operation.
	r = h.provision("i1", PlanDBAsync, nil, "accepts_incomplete", "true")
	expect(t, r, http.StatusAccepted, "")
	if r.Str("operation") != op {
		t.Fatalf("re-sent PUT got operation %q, want %q", r.Str("operation"), op)
	}
	expectError(t, h.provision("i1", PlanDBAsync, nil), http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "")
	expect(t, h.provision("i1", PlanDBAsync, map[string]any{"x": 1}, "accepts_incomplete", "true"), http.StatusConflict, "parameters")
	if in, _ := h.b.Instance("i1"); in.State != StateCreating || in.Operation != op || in.LastOperation != OpProvision {
		t.Fatalf("instance %+v", in)
	}
	// Fetching is 404 while provisioning.
	expect(t, h.do(http.MethodGet, instPath("i1"), nil), http.StatusNotFound, "still being provisioned")
	// Binding waits for the instance.
	expectError(t, h.do(http.MethodPut, bindPath("i1", "b1"), bindBody(ServiceDB, PlanDBAsync, nil)), http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "in progress")
	// Updating waits too.
	expectError(t, h.do(http.MethodPatch, instPath("i1", "accepts_incomplete", "true"), map[string]any{"service_id": ServiceDB}),
		http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, op)
}

func TestProvisionSyncFailure(t *testing.T) {
	h := newHarness(t, Config{})
	h.b.SetBehavior(PlanDBSmall, Behavior{Fail: true, FailDescription: "out of disks"}, OpProvision)
	expect(t, h.provision("i1", PlanDBSmall, nil), http.StatusInternalServerError, "out of disks")
	if len(h.b.Instances()) != 0 {
		t.Fatal("a failed synchronous provision left an instance")
	}
	h.b.SetBehavior(PlanDBSmall, Behavior{Fail: true}, OpProvision)
	expect(t, h.provision("i1", PlanDBSmall, nil), http.StatusInternalServerError, "provision failed")
}

func TestAsyncProvisionFailureLeavesOrphan(t *testing.T) {
	h := newHarness(t, Config{})
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Polls: 1, Fail: true, FailDescription: "quota exceeded"}, OpProvision)
	r := h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "true")
	op := r.Str("operation")
	if p := h.poll("i1", "operation", op); p.Str("state") != "in progress" {
		t.Fatalf("poll 1: %s", p.Body)
	}
	p := h.poll("i1", "operation", op)
	if p.Str("state") != "failed" || p.Str("description") != "quota exceeded" {
		t.Fatalf("poll 2: %s", p.Body)
	}
	// Terminal state is sticky.
	if p := h.poll("i1", "operation", op); p.Str("state") != "failed" {
		t.Fatalf("poll 3: %s", p.Body)
	}
	in, ok := h.b.Instance("i1")
	if !ok || in.State != StateFailed {
		t.Fatalf("failed provision should leave an orphan: %+v %v", in, ok)
	}
	expect(t, h.do(http.MethodGet, instPath("i1"), nil), http.StatusNotFound, "failed to provision")
	expect(t, h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "true"), http.StatusConflict, "deprovision it first")
	expect(t, h.do(http.MethodPatch, instPath("i1"), map[string]any{"service_id": ServiceDB}), http.StatusUnprocessableEntity, "last provision failed")
	expect(t, h.do(http.MethodPut, bindPath("i1", "b1"), bindBody(ServiceDB, PlanDBSmall, nil)), http.StatusUnprocessableEntity, "state failed")
	// Orphan mitigation: the DELETE succeeds.
	expect(t, h.do(http.MethodDelete, instPath("i1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusOK, "")
	if len(h.b.Instances()) != 0 {
		t.Fatal("orphan not removed")
	}
}

func TestUpdate(t *testing.T) {
	patch := func(h *harness, id string, body map[string]any, q ...string) response {
		h.t.Helper()
		return h.do(http.MethodPatch, instPath(id, q...), body)
	}
	t.Run("parameters merged", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.provision("i1", PlanDBSmall, map[string]any{"size": 1, "region": "eu", "tier": "a"})
		r := patch(h, "i1", map[string]any{"service_id": ServiceDB, "parameters": map[string]any{"size": 2, "tier": nil, "new": true}})
		expect(t, r, http.StatusOK, "")
		if string(r.Body) != "{}" {
			t.Fatalf("sync update body %s, want {}", r.Body)
		}
		in, _ := h.b.Instance("i1")
		want := map[string]any{"size": 2.0, "region": "eu", "new": true}
		if !reflect.DeepEqual(in.Parameters, want) {
			t.Fatalf("parameters %v, want %v", in.Parameters, want)
		}
		// An update without parameters leaves them alone.
		expect(t, patch(h, "i1", map[string]any{"service_id": ServiceDB}), http.StatusOK, "")
		if in2, _ := h.b.Instance("i1"); !reflect.DeepEqual(in2.Parameters, want) {
			t.Fatalf("parameters changed by an update without parameters: %v", in2.Parameters)
		}
	})
	t.Run("plan change", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.provision("i1", PlanDBSmall, nil)
		r := patch(h, "i1", map[string]any{"service_id": ServiceDB, "plan_id": PlanDBLarge,
			"previous_values": map[string]any{"plan_id": PlanDBSmall, "service_id": ServiceDB},
			"context":         map[string]any{"platform": "kubernetes", "namespace": "moved"}})
		expect(t, r, http.StatusOK, "")
		in, _ := h.b.Instance("i1")
		if in.PlanID != PlanDBLarge || in.Context.Namespace != "moved" {
			t.Fatalf("instance %+v", in)
		}
		// The same plan again is not a plan change, even for a pinned plan.
		h.provision("p1", PlanDBPinned, nil)
		expect(t, patch(h, "p1", map[string]any{"service_id": ServiceDB, "plan_id": PlanDBPinned}), http.StatusOK, "")
	})
	h := newHarness(t, Config{})
	h.provision("i1", PlanDBSmall, nil)
	h.provision("p1", PlanDBPinned, nil)
	h.provision("q1", PlanQueueStandard, nil)
	refusals := []struct {
		name   string
		id     string
		body   map[string]any
		status int
		code   string
		want   string
	}{
		{"unknown instance", "nope", map[string]any{"service_id": ServiceDB}, http.StatusNotFound, "", "instance nope does not exist"},
		{"missing service_id", "i1", map[string]any{"plan_id": PlanDBLarge}, http.StatusBadRequest, "", "missing required field(s) in update body: service_id"},
		{"other service_id", "i1", map[string]any{"service_id": ServiceQueue}, http.StatusBadRequest, "", "does not match instance i1's service"},
		{"plan of another service", "i1", map[string]any{"service_id": ServiceDB, "plan_id": PlanQueueStandard}, http.StatusBadRequest, "", "belongs to service"},
		{"unknown plan", "i1", map[string]any{"service_id": ServiceDB, "plan_id": "nope"}, http.StatusBadRequest, "", "not a plan of service"},
		{"pinned plan", "p1", map[string]any{"service_id": ServiceDB, "plan_id": PlanDBSmall}, http.StatusBadRequest, "", "not plan_updateable"},
		{"service not plan_updateable", "q1", map[string]any{"service_id": ServiceQueue, "plan_id": PlanQueueNoBind}, http.StatusBadRequest, "", "not plan_updateable"},
		{"wrong previous plan", "i1", map[string]any{"service_id": ServiceDB, "previous_values": map[string]any{"plan_id": PlanDBLarge}}, http.StatusBadRequest, "", "previous_values.plan_id"},
		{"wrong previous service", "i1", map[string]any{"service_id": ServiceDB, "previous_values": map[string]any{"service_id": ServiceQueue}}, http.StatusBadRequest, "", "previous_values.service_id"},
		{"context without platform", "i1", map[string]any{"service_id": ServiceDB, "context": map[string]any{}}, http.StatusBadRequest, "", "context.platform"},
		{"maintenance on plan without", "i1", map[string]any{"service_id": ServiceDB, "maintenance_info": map[string]any{"version": "1.0.0"}}, http.StatusUnprocessableEntity, osbwire.ErrorCodeMaintenanceInfoConflict, "declares no maintenance_info"},
		{"maintenance mismatch", "i1", map[string]any{"service_id": ServiceDB, "plan_id": PlanDBLarge, "maintenance_info": map[string]any{"version": "0.9.0"}}, http.StatusUnprocessableEntity, osbwire.ErrorCodeMaintenanceInfoConflict, `does not match plan osbtest-db-large's version "1.0.0"`},
		{"async required", "i1", map[string]any{"service_id": ServiceDB, "plan_id": PlanDBAsync}, http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "accepts_incomplete=true"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := h.b.Instance(tt.id)
			expectError(t, patch(h.with(t), tt.id, tt.body), tt.status, tt.code, tt.want)
			if after, _ := h.b.Instance(tt.id); !reflect.DeepEqual(before, after) {
				t.Fatalf("refused update changed the instance: %+v -> %+v", before, after)
			}
		})
	}
	t.Run("maintenance match", func(t *testing.T) {
		h := h.with(t)
		expect(t, patch(h, "i1", map[string]any{"service_id": ServiceDB, "plan_id": PlanDBLarge, "maintenance_info": map[string]any{"version": "1.0.0"}}), http.StatusOK, "")
		if in, _ := h.b.Instance("i1"); in.MaintenanceInfo == nil || in.MaintenanceInfo.Version != "1.0.0" {
			t.Fatalf("maintenance not recorded: %+v", in)
		}
	})
	t.Run("sync failure", func(t *testing.T) {
		h := h.with(t)
		h.b.SetBehavior(PlanDBPinned, Behavior{Fail: true}, OpUpdate)
		expect(t, patch(h, "p1", map[string]any{"service_id": ServiceDB, "parameters": map[string]any{"a": 1}}), http.StatusInternalServerError, "update failed")
		if in, _ := h.b.Instance("p1"); in.Parameters != nil {
			t.Fatalf("failed update changed parameters: %v", in.Parameters)
		}
	})
}

func TestAsyncUpdatePolledWithPreUpdatePlan(t *testing.T) {
	h := newHarness(t, Config{})
	h.provision("i1", PlanDBSmall, map[string]any{"size": 1})
	h.b.SetBehavior(PlanDBLarge, Behavior{Async: true, Polls: 1, DashboardURL: "https://new/{instance_id}"}, OpUpdate)
	body := map[string]any{"service_id": ServiceDB, "plan_id": PlanDBLarge, "parameters": map[string]any{"size": 5}}
	r := h.do(http.MethodPatch, instPath("i1", "accepts_incomplete", "true"), body)
	expect(t, r, http.StatusAccepted, "")
	op := r.Str("operation")
	if r.Str("dashboard_url") != "https://new/i1" {
		t.Fatalf("dashboard_url %s", r.Body)
	}
	// Nothing applied yet.
	if in, _ := h.b.Instance("i1"); in.PlanID != PlanDBSmall || in.State != StateUpdating || in.Parameters["size"] != 1.0 {
		t.Fatalf("instance during update: %+v", in)
	}
	expectError(t, h.do(http.MethodGet, instPath("i1"), nil), http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "being updated")
	// Re-sent identical PATCH: 202 same op; without accepts_incomplete: 422.
	r = h.do(http.MethodPatch, instPath("i1", "accepts_incomplete", "true"), body)
	if r.Status != http.StatusAccepted || r.Str("operation") != op {
		t.Fatalf("re-sent PATCH: %d %s", r.Status, r.Body)
	}
	expectError(t, h.do(http.MethodPatch, instPath("i1"), body), http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "")
	// A different PATCH: ConcurrencyError.
	expectError(t, h.do(http.MethodPatch, instPath("i1", "accepts_incomplete", "true"), map[string]any{"service_id": ServiceDB}),
		http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "in progress")
	// Deprovision during the update: ConcurrencyError.
	expectError(t, h.do(http.MethodDelete, instPath("i1", "accepts_incomplete", "true", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil),
		http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "")
	// Re-provision during the update: ConcurrencyError.
	expectError(t, h.provision("i1", PlanDBSmall, map[string]any{"size": 1}, "accepts_incomplete", "true"),
		http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "")

	// Polling with the post-update plan is the Service Catalog bug: 400.
	expect(t, h.poll("i1", "operation", op, "service_id", ServiceDB, "plan_id", PlanDBLarge), http.StatusBadRequest,
		`must be the plan before the update, "osbtest-db-small"`)
	p := h.poll("i1", "operation", op, "service_id", ServiceDB, "plan_id", PlanDBSmall)
	if p.Str("state") != "in progress" {
		t.Fatalf("poll 1: %s", p.Body)
	}
	p = h.poll("i1", "operation", op, "service_id", ServiceDB, "plan_id", PlanDBSmall)
	if p.Str("state") != "succeeded" {
		t.Fatalf("poll 2: %s", p.Body)
	}
	in, _ := h.b.Instance("i1")
	if in.PlanID != PlanDBLarge || in.Parameters["size"] != 5.0 || in.State != StateReady || in.DashboardURL != "https://new/i1" {
		t.Fatalf("after update: %+v", in)
	}
	// Even after completion, the update's polls take the pre-update plan.
	expect(t, h.poll("i1", "operation", op, "plan_id", PlanDBLarge), http.StatusBadRequest, "plan before the update")
	expect(t, h.poll("i1", "operation", op, "plan_id", PlanDBSmall), http.StatusOK, "")
}

func TestAsyncUpdateFailureKeepsInstance(t *testing.T) {
	h := newHarness(t, Config{})
	h.provision("i1", PlanDBSmall, map[string]any{"size": 1})
	h.b.SetBehavior(AnyPlan, Behavior{Async: true, Fail: true, FailDescription: "cannot shrink"}, OpUpdate)
	r := h.do(http.MethodPatch, instPath("i1", "accepts_incomplete", "true"), map[string]any{"service_id": ServiceDB, "parameters": map[string]any{"size": 0}})
	expect(t, r, http.StatusAccepted, "")
	p := h.poll("i1", "operation", r.Str("operation"))
	if p.Str("state") != "failed" || p.Str("description") != "cannot shrink" {
		t.Fatalf("poll: %s", p.Body)
	}
	in, _ := h.b.Instance("i1")
	if in.State != StateReady || in.Parameters["size"] != 1.0 {
		t.Fatalf("failed update changed the instance: %+v", in)
	}
	// The instance stays usable: a new update is accepted.
	h.b.ClearBehaviors()
	expect(t, h.do(http.MethodPatch, instPath("i1"), map[string]any{"service_id": ServiceDB}), http.StatusOK, "")
}

func TestDeprovision(t *testing.T) {
	del := func(h *harness, id string, q ...string) response {
		h.t.Helper()
		return h.do(http.MethodDelete, instPath(id, q...), nil)
	}
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.mustBind("i1", "b1", PlanDBSmall)
	h.mustBind("i1", "b2", PlanDBSmall)
	refusals := []struct {
		name   string
		id     string
		q      []string
		status int
		want   string
	}{
		{"unknown is 410", "nope", []string{"service_id", ServiceDB, "plan_id", PlanDBSmall}, http.StatusGone, ""},
		{"missing both", "i1", nil, http.StatusBadRequest, "missing required query parameter(s) on deprovision: service_id, plan_id"},
		{"missing plan_id", "i1", []string{"service_id", ServiceDB}, http.StatusBadRequest, "plan_id"},
		{"missing before gone", "nope", []string{"plan_id", PlanDBSmall}, http.StatusBadRequest, "service_id"},
		{"wrong plan", "i1", []string{"service_id", ServiceDB, "plan_id", PlanDBLarge}, http.StatusBadRequest, "do not match instance i1"},
		{"wrong service", "i1", []string{"service_id", ServiceQueue, "plan_id", PlanDBSmall}, http.StatusBadRequest, "do not match"},
		{"bindings exist", "i1", []string{"service_id", ServiceDB, "plan_id", PlanDBSmall}, http.StatusUnprocessableEntity, "still has 2 binding(s) (b1, b2)"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			r := del(h.with(t), tt.id, tt.q...)
			expect(t, r, tt.status, tt.want)
			if tt.status == http.StatusGone && string(r.Body) != "{}" {
				t.Fatalf("410 body %s", r.Body)
			}
		})
	}
	if _, ok := h.b.Instance("i1"); !ok {
		t.Fatal("refused deprovision deleted the instance")
	}
	t.Run("sync failure", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.mustProvision("i1", PlanDBSmall)
		h.b.SetBehavior(PlanDBSmall, Behavior{Fail: true}, OpDeprovision)
		expect(t, del(h, "i1", "service_id", ServiceDB, "plan_id", PlanDBSmall), http.StatusInternalServerError, "deprovision failed")
		if _, ok := h.b.Instance("i1"); !ok {
			t.Fatal("failed deprovision deleted the instance")
		}
	})
}

func TestAsyncDeprovision(t *testing.T) {
	h := newHarness(t, Config{})
	r := h.provision("i1", PlanDBAsync, nil, "accepts_incomplete", "true")
	h.b.FinishOperation("i1", "", false)
	q := []string{"service_id", ServiceDB, "plan_id", PlanDBAsync}
	expectError(t, h.do(http.MethodDelete, instPath("i1", q...), nil), http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "")
	r = h.do(http.MethodDelete, instPath("i1", append(q, "accepts_incomplete", "true")...), nil)
	expect(t, r, http.StatusAccepted, "")
	op := r.Str("operation")
	if in, _ := h.b.Instance("i1"); in.State != StateDeleting {
		t.Fatalf("state %s", in.State)
	}
	// Re-sent DELETE: 202 with the same operation; without accepts_incomplete: 422.
	r = h.do(http.MethodDelete, instPath("i1", append(q, "accepts_incomplete", "true")...), nil)
	if r.Status != http.StatusAccepted || r.Str("operation") != op {
		t.Fatalf("re-sent DELETE: %d %s", r.Status, r.Body)
	}
	expectError(t, h.do(http.MethodDelete, instPath("i1", q...), nil), http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "")
	states := []string{}
	for i := 0; i < 3; i++ {
		states = append(states, h.poll("i1", append(q, "operation", op)...).Str("state"))
	}
	if !reflect.DeepEqual(states, []string{"in progress", "in progress", "succeeded"}) {
		t.Fatalf("states %v", states)
	}
	if _, ok := h.b.Instance("i1"); ok {
		t.Fatal("instance still there after a successful deprovision")
	}
	expect(t, h.poll("i1", append(q, "operation", op)...), http.StatusGone, "")
	c, _ := h.b.LastCall(EndpointLastOperation)
	if c.Status != http.StatusGone || c.Description == "" {
		t.Fatalf("410 poll logged as %+v", c)
	}
}

func TestAsyncDeprovisionFailure(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Fail: true}, OpDeprovision)
	r := h.do(http.MethodDelete, instPath("i1", "accepts_incomplete", "true", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil)
	p := h.poll("i1", "operation", r.Str("operation"))
	if p.Str("state") != "failed" || p.Str("description") != "deprovision failed (osbtest Behavior.Fail)" {
		t.Fatalf("poll %s", p.Body)
	}
	in, ok := h.b.Instance("i1")
	if !ok || in.State != StateFailed {
		t.Fatalf("instance %+v %v", in, ok)
	}
	// A failed deprovision leaves a fetchable instance (it was provisioned).
	expect(t, h.do(http.MethodGet, instPath("i1"), nil), http.StatusOK, "")
	// Retrying the delete is allowed.
	h.b.ClearBehaviors()
	expect(t, h.do(http.MethodDelete, instPath("i1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusOK, "")
}

func TestDeprovisionAbortsProvision(t *testing.T) {
	for _, async := range []bool{false, true} {
		name := map[bool]string{false: "sync delete", true: "async delete"}[async]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Polls: -1}, OpProvision)
			h.b.SetBehavior(PlanDBSmall, Behavior{Async: async}, OpDeprovision)
			r := h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "true")
			provOp := r.Str("operation")
			r = h.do(http.MethodDelete, instPath("i1", "accepts_incomplete", "true", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil)
			if !async {
				expect(t, r, http.StatusOK, "")
				// The aborted provision reports failed; other polls say gone.
				p := h.poll("i1", "operation", provOp)
				if p.Str("state") != "failed" {
					t.Fatalf("poll of the aborted provision: %d %s", p.Status, p.Body)
				}
				expect(t, h.poll("i1", "operation", "other"), http.StatusGone, "")
				// Provisioning the ID again forgets the abort.
				h.b.ClearBehaviors()
				h.mustProvision("i1", PlanDBSmall)
				expect(t, h.poll("i1", "operation", provOp), http.StatusBadRequest, "no asynchronous operation")
				return
			}
			expect(t, r, http.StatusAccepted, "")
			delOp := r.Str("operation")
			expect(t, h.poll("i1", "operation", provOp), http.StatusBadRequest, "does not match the last operation")
			if p := h.poll("i1", "operation", delOp); p.Str("state") != "succeeded" {
				t.Fatalf("deprovision poll %s", p.Body)
			}
		})
	}
}

func TestGetInstance(t *testing.T) {
	h := newHarness(t, Config{})
	h.provision("i1", PlanDBSmall, map[string]any{"size": 1})
	h.mustProvision("q1", PlanQueueStandard)
	r := h.do(http.MethodGet, instPath("i1"), nil)
	expect(t, r, http.StatusOK, "")
	m := r.JSON()
	if m["service_id"] != ServiceDB || m["plan_id"] != PlanDBSmall || m["dashboard_url"] == nil {
		t.Fatalf("body %s", r.Body)
	}
	if p, _ := m["parameters"].(map[string]any); p["size"] != 1.0 {
		t.Fatalf("parameters %s", r.Body)
	}
	tests := []struct {
		name   string
		path   string
		status int
		want   string
	}{
		{"matching query", instPath("i1", "service_id", ServiceDB, "plan_id", PlanDBSmall), http.StatusOK, ""},
		{"unknown", instPath("nope"), http.StatusNotFound, "does not exist"},
		{"unknown of a non-retrievable service", instPath("nope", "service_id", ServiceQueue), http.StatusBadRequest, "instances_retrievable"},
		{"not retrievable", instPath("q1"), http.StatusBadRequest, "does not declare instances_retrievable"},
		{"wrong service_id", instPath("i1", "service_id", ServiceQueue), http.StatusBadRequest, "service_id"},
		{"wrong plan_id", instPath("i1", "plan_id", PlanDBLarge), http.StatusBadRequest, "plan_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, h.with(t).do(http.MethodGet, tt.path, nil), tt.status, tt.want)
		})
	}
}

func TestLastOperationChecks(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("sync", PlanDBSmall)
	r := h.provision("i1", PlanDBAsync, nil, "accepts_incomplete", "true")
	op := r.Str("operation")
	tests := []struct {
		name   string
		id     string
		q      []string
		status int
		want   string
	}{
		{"unknown instance is gone", "nope", nil, http.StatusGone, ""},
		{"no async operation", "sync", nil, http.StatusBadRequest, "no asynchronous operation was started for instance sync"},
		{"missing operation", "i1", nil, http.StatusBadRequest, "missing operation query parameter"},
		{"empty operation", "i1", []string{"operation", ""}, http.StatusBadRequest, "non-empty"},
		{"wrong operation", "i1", []string{"operation", "task-9"}, http.StatusBadRequest, `operation "task-9" does not match the last operation`},
		{"wrong service_id", "i1", []string{"operation", op, "service_id", ServiceQueue}, http.StatusBadRequest, "service_id"},
		{"wrong plan_id", "i1", []string{"operation", op, "plan_id", PlanDBSmall}, http.StatusBadRequest, "plan_id"},
		{"ok", "i1", []string{"operation", op, "service_id", ServiceDB, "plan_id", PlanDBAsync}, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, h.with(t).poll(tt.id, tt.q...), tt.status, tt.want)
		})
	}
	// Refused polls do not advance the operation: one good poll so far.
	if p := h.poll("i1", "operation", op); p.Str("state") != "in progress" {
		t.Fatalf("second good poll: %s", p.Body)
	}
	if p := h.poll("i1", "operation", op); p.Str("state") != "succeeded" {
		t.Fatalf("third good poll: %s", p.Body)
	}
}

func TestOmitOperation(t *testing.T) {
	h := newHarness(t, Config{})
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, OmitOperation: true}, OpProvision)
	r := h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "true")
	expect(t, r, http.StatusAccepted, "")
	if _, has := r.JSON()["operation"]; has {
		t.Fatalf("operation present: %s", r.Body)
	}
	expect(t, h.poll("i1", "operation", "made-up"), http.StatusBadRequest, "was never issued")
	if p := h.poll("i1"); p.Str("state") != "succeeded" {
		t.Fatalf("poll %s", p.Body)
	}
	if in, _ := h.b.Instance("i1"); in.Operation != "" || in.LastOperation != OpProvision {
		t.Fatalf("instance %+v", in)
	}
}

func TestPollsAndRetryAfter(t *testing.T) {
	tests := []struct {
		polls      int
		retryAfter time.Duration
		header     string
	}{
		{0, 0, ""},
		{1, 1500 * time.Millisecond, "2"},
		{3, 10 * time.Millisecond, "1"},
		{2, 5 * time.Second, "5"},
	}
	for _, tt := range tests {
		t.Run(itoa(tt.polls)+" polls", func(t *testing.T) {
			h := newHarness(t, Config{})
			h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Polls: tt.polls, RetryAfter: tt.retryAfter}, OpProvision)
			op := h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "true").Str("operation")
			for i := 0; i < tt.polls; i++ {
				p := h.poll("i1", "operation", op)
				if p.Str("state") != "in progress" || p.Header.Get("Retry-After") != tt.header {
					t.Fatalf("poll %d: %s Retry-After %q", i, p.Body, p.Header.Get("Retry-After"))
				}
			}
			p := h.poll("i1", "operation", op)
			if p.Str("state") != "succeeded" || p.Header.Get("Retry-After") != "" {
				t.Fatalf("final poll: %s Retry-After %q", p.Body, p.Header.Get("Retry-After"))
			}
		})
	}
}

func TestNeverEndingOperationAndFinish(t *testing.T) {
	h := newHarness(t, Config{})
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Polls: -5}, OpProvision)
	op := h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "true").Str("operation")
	for i := 0; i < 10; i++ {
		if p := h.poll("i1", "operation", op); p.Str("state") != "in progress" {
			t.Fatalf("poll %d: %s", i, p.Body)
		}
	}
	if h.b.FinishOperation("nope", "", false) {
		t.Fatal("finished an operation of an unknown instance")
	}
	if !h.b.FinishOperation("i1", "", true) {
		t.Fatal("FinishOperation found nothing in progress")
	}
	if h.b.FinishOperation("i1", "", false) {
		t.Fatal("finished twice")
	}
	if p := h.poll("i1", "operation", op); p.Str("state") != "failed" {
		t.Fatalf("poll after finish: %s", p.Body)
	}
}
