package osbtest

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

func TestBind(t *testing.T) {
	h := newHarness(t, Config{CredentialSeed: "seed-1"})
	h.mustProvision("i1", PlanDBSmall)
	h.mustProvision("i2", PlanDBSmall)
	h.mustProvision("q1", PlanQueueStandard)
	h.mustProvision("nb", PlanQueueNoBind)
	h.mustProvision("dns", PlanDNSZone)

	r := h.do(http.MethodPut, bindPath("i1", "b1"), bindBody(ServiceDB, PlanDBSmall, map[string]any{"role": "ro"}))
	expect(t, r, http.StatusCreated, "")
	creds, _ := r.JSON()["credentials"].(map[string]any)
	if !reflect.DeepEqual(creds, DefaultCredentials("seed-1", "i1", "b1")) {
		t.Fatalf("credentials %v", creds)
	}
	if eps, _ := r.JSON()["endpoints"].([]any); len(eps) != 1 {
		t.Fatalf("endpoints: %s", r.Body)
	}
	bn, ok := h.b.Binding("b1")
	if !ok || bn.InstanceID != "i1" || bn.Parameters["role"] != "ro" || bn.State != StateReady || bn.Context.Platform != "kubernetes" {
		t.Fatalf("binding %+v", bn)
	}

	t.Run("identical is 200 with the same credentials", func(t *testing.T) {
		r := h.with(t).do(http.MethodPut, bindPath("i1", "b1"), bindBody(ServiceDB, PlanDBSmall, map[string]any{"role": "ro"}))
		expect(t, r, http.StatusOK, "")
		if got, _ := r.JSON()["credentials"].(map[string]any); !reflect.DeepEqual(got, creds) {
			t.Fatalf("credentials changed: %v", got)
		}
	})
	tests := []struct {
		name   string
		iid    string
		bid    string
		body   map[string]any
		status int
		code   string
		want   string
	}{
		{"different parameters", "i1", "b1", bindBody(ServiceDB, PlanDBSmall, map[string]any{"role": "rw"}), http.StatusConflict, "", "different attributes: parameters"},
		{"same ID on another instance", "i2", "b1", bindBody(ServiceDB, PlanDBSmall, nil), http.StatusConflict, "", "already exists for instance i1"},
		{"unknown instance", "nope", "b9", bindBody(ServiceDB, PlanDBSmall, nil), http.StatusNotFound, "", "instance nope does not exist"},
		{"missing fields", "i1", "b9", map[string]any{"context": map[string]any{"platform": "kubernetes"}}, http.StatusBadRequest, "", "missing required field(s) in bind body: service_id, plan_id"},
		{"plan mismatch", "i1", "b9", bindBody(ServiceDB, PlanDBLarge, nil), http.StatusBadRequest, "", "do not match instance i1"},
		{"context without platform", "i1", "b9", map[string]any{"service_id": ServiceDB, "plan_id": PlanDBSmall, "context": map[string]any{"namespace": "x"}}, http.StatusBadRequest, "", "context.platform"},
		{"plan not bindable", "nb", "b9", bindBody(ServiceQueue, PlanQueueNoBind, nil), http.StatusBadRequest, "", "plan osbtest-queue-nobind of service osbtest-queue is not bindable"},
		{"service not bindable", "dns", "b9", bindBody(ServiceDNS, PlanDNSZone, nil), http.StatusBadRequest, "", "not bindable"},
		{"predecessor on non-rotatable plan", "q1", "b9", func() map[string]any {
			m := bindBody(ServiceQueue, PlanQueueStandard, nil)
			m["predecessor_binding_id"] = "b1"
			return m
		}(), http.StatusBadRequest, "", "not binding_rotatable"},
		{"unknown predecessor", "i1", "b9", func() map[string]any {
			m := bindBody(ServiceDB, PlanDBSmall, nil)
			m["predecessor_binding_id"] = "nope"
			return m
		}(), http.StatusBadRequest, "", `predecessor_binding_id "nope" is not an existing binding of instance i1`},
		{"predecessor of another instance", "i2", "b9", func() map[string]any {
			m := bindBody(ServiceDB, PlanDBSmall, nil)
			m["predecessor_binding_id"] = "b1"
			return m
		}(), http.StatusBadRequest, "", "not an existing binding of instance i2"},
		{"bad JSON", "i1", "b9", nil, http.StatusBadRequest, "", "empty request body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any = tt.body
			var opts []reqOpt
			if tt.body == nil {
				body = nil
				opts = append(opts, contentType("application/json"))
			}
			expectError(t, h.with(t).do(http.MethodPut, bindPath(tt.iid, tt.bid), body, opts...), tt.status, tt.code, tt.want)
			if _, ok := h.b.Binding("b9"); ok {
				t.Fatal("refused bind created a binding")
			}
		})
	}
	t.Run("rotation", func(t *testing.T) {
		h := h.with(t)
		m := bindBody(ServiceDB, PlanDBSmall, nil)
		m["predecessor_binding_id"] = "b1"
		r := h.do(http.MethodPut, bindPath("i1", "b1-next"), m)
		expect(t, r, http.StatusCreated, "")
		got, _ := r.JSON()["credentials"].(map[string]any)
		if got["password"] == creds["password"] {
			t.Fatal("rotated binding has the predecessor's password")
		}
		if bn, _ := h.b.Binding("b1-next"); bn.PredecessorBindingID != "b1" {
			t.Fatalf("binding %+v", bn)
		}
		if _, ok := h.b.Binding("b1"); !ok {
			t.Fatal("predecessor removed by rotation")
		}
	})
}

func TestBindBehaviors(t *testing.T) {
	t.Run("custom credentials with placeholders", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.mustProvision("i1", PlanDBSmall)
		h.b.SetBehavior(PlanDBSmall, Behavior{Credentials: map[string]any{
			"uri": "amqp://{binding_id}@host/{instance_id}", "port": 5672, "tls": map[string]any{"on": true}, "hosts": []any{"{instance_id}-a"},
		}}, OpBind)
		r := h.mustBind("i1", "b1", PlanDBSmall)
		want := map[string]any{"uri": "amqp://b1@host/i1", "port": 5672.0, "tls": map[string]any{"on": true}, "hosts": []any{"i1-a"}}
		if got, _ := r.JSON()["credentials"].(map[string]any); !reflect.DeepEqual(got, want) {
			t.Fatalf("credentials %v", got)
		}
		if _, has := r.JSON()["endpoints"]; has {
			t.Fatalf("custom credentials come without default endpoints: %s", r.Body)
		}
		if bn, _ := h.b.Binding("b1"); !reflect.DeepEqual(bn.Credentials, want) {
			t.Fatalf("stored credentials %v", bn.Credentials)
		}
	})
	t.Run("requires app", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.mustProvision("i1", PlanDBSmall)
		h.b.SetBehavior(PlanDBSmall, Behavior{RequiresApp: true}, OpBind)
		expectError(t, h.do(http.MethodPut, bindPath("i1", "b1"), bindBody(ServiceDB, PlanDBSmall, nil)), http.StatusUnprocessableEntity, osbwire.ErrorCodeRequiresApp, "app GUID")
		m := bindBody(ServiceDB, PlanDBSmall, nil)
		m["bind_resource"] = map[string]any{"app_guid": "app-1"}
		expect(t, h.do(http.MethodPut, bindPath("i1", "b1"), m), http.StatusCreated, "")
		m = bindBody(ServiceDB, PlanDBSmall, nil)
		m["app_guid"] = "app-2"
		expect(t, h.do(http.MethodPut, bindPath("i1", "b2"), m), http.StatusCreated, "")
		if bn, _ := h.b.Binding("b1"); bn.BindResource == nil || bn.BindResource.AppGUID != "app-1" {
			t.Fatalf("binding %+v", bn)
		}
	})
	t.Run("sync failure", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.mustProvision("i1", PlanDBSmall)
		h.b.SetBehavior(PlanDBSmall, Behavior{Fail: true, FailDescription: "no users left"}, OpBind, OpUnbind)
		expect(t, h.do(http.MethodPut, bindPath("i1", "b1"), bindBody(ServiceDB, PlanDBSmall, nil)), http.StatusInternalServerError, "no users left")
		h.b.PutBinding(Binding{ID: "b2", InstanceID: "i1", ServiceID: ServiceDB, PlanID: PlanDBSmall})
		expect(t, h.do(http.MethodDelete, bindPath("i1", "b2", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusInternalServerError, "no users left")
		if _, ok := h.b.Binding("b2"); !ok {
			t.Fatal("failed unbind removed the binding")
		}
	})
}

func TestAsyncBind(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Polls: 1, RetryAfter: 2e9}, OpBind)
	body := bindBody(ServiceDB, PlanDBSmall, nil)
	expectError(t, h.do(http.MethodPut, bindPath("i1", "b1"), body), http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "")
	r := h.do(http.MethodPut, bindPath("i1", "b1", "accepts_incomplete", "true"), body)
	expect(t, r, http.StatusAccepted, "")
	op := r.Str("operation")
	if _, has := r.JSON()["credentials"]; has || op == "" {
		t.Fatalf("202 must carry an operation and no credentials: %s", r.Body)
	}
	// Re-sent: same op; different: 409; without accepts_incomplete: 422.
	if r := h.do(http.MethodPut, bindPath("i1", "b1", "accepts_incomplete", "true"), body); r.Status != 202 || r.Str("operation") != op {
		t.Fatalf("re-sent bind: %d %s", r.Status, r.Body)
	}
	expect(t, h.do(http.MethodPut, bindPath("i1", "b1", "accepts_incomplete", "true"), bindBody(ServiceDB, PlanDBSmall, map[string]any{"a": 1})), http.StatusConflict, "")
	expectError(t, h.do(http.MethodPut, bindPath("i1", "b1"), body), http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "")
	// The instance is busy while its binding is being created.
	expectError(t, h.do(http.MethodPatch, instPath("i1"), map[string]any{"service_id": ServiceDB}), http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "binding b1")
	expect(t, h.do(http.MethodGet, bindPath("i1", "b1"), nil), http.StatusNotFound, "still being created")

	p := h.pollBinding("i1", "b1", "operation", op, "service_id", ServiceDB, "plan_id", PlanDBSmall)
	if p.Str("state") != "in progress" || p.Header.Get("Retry-After") != "2" {
		t.Fatalf("poll 1: %s %v", p.Body, p.Header)
	}
	if p := h.pollBinding("i1", "b1", "operation", op); p.Str("state") != "succeeded" {
		t.Fatalf("poll 2: %s", p.Body)
	}
	r = h.do(http.MethodGet, bindPath("i1", "b1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil)
	expect(t, r, http.StatusOK, "")
	if got, _ := r.JSON()["credentials"].(map[string]any); !reflect.DeepEqual(got, DefaultCredentials("", "i1", "b1")) {
		t.Fatalf("fetched credentials %v", got)
	}
	// Identical re-bind after completion: 200 with credentials.
	if r := h.do(http.MethodPut, bindPath("i1", "b1", "accepts_incomplete", "true"), body); r.Status != 200 || r.JSON()["credentials"] == nil {
		t.Fatalf("identical re-bind: %d %s", r.Status, r.Body)
	}
}

func TestAsyncBindFailure(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Fail: true}, OpBind)
	op := h.do(http.MethodPut, bindPath("i1", "b1", "accepts_incomplete", "true"), bindBody(ServiceDB, PlanDBSmall, nil)).Str("operation")
	if p := h.pollBinding("i1", "b1", "operation", op); p.Str("state") != "failed" {
		t.Fatalf("poll: %s", p.Body)
	}
	if bn, ok := h.b.Binding("b1"); !ok || bn.State != StateFailed {
		t.Fatalf("failed bind should leave an orphan binding: %+v", bn)
	}
	expect(t, h.do(http.MethodGet, bindPath("i1", "b1"), nil), http.StatusNotFound, "failed to be created")
	expect(t, h.do(http.MethodPut, bindPath("i1", "b1", "accepts_incomplete", "true"), bindBody(ServiceDB, PlanDBSmall, nil)), http.StatusConflict, "unbind it first")
	// The orphan blocks deprovisioning until it is unbound.
	expect(t, h.do(http.MethodDelete, instPath("i1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusUnprocessableEntity, "b1")
	expect(t, h.do(http.MethodDelete, bindPath("i1", "b1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusOK, "")
	expect(t, h.do(http.MethodDelete, instPath("i1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusOK, "")
}

func TestUnbind(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.mustBind("i1", "b1", PlanDBSmall)
	tests := []struct {
		name   string
		iid    string
		q      []string
		status int
		want   string
	}{
		{"missing query", "i1", nil, http.StatusBadRequest, "missing required query parameter(s) on unbind: service_id, plan_id"},
		{"wrong plan", "i1", []string{"service_id", ServiceDB, "plan_id", PlanDBLarge}, http.StatusBadRequest, "do not match binding b1"},
		{"wrong service", "i1", []string{"service_id", ServiceQueue, "plan_id", PlanDBSmall}, http.StatusBadRequest, "do not match"},
		{"wrong instance is gone", "i2", []string{"service_id", ServiceDB, "plan_id", PlanDBSmall}, http.StatusGone, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, h.with(t).do(http.MethodDelete, bindPath(tt.iid, "b1", tt.q...), nil), tt.status, tt.want)
		})
	}
	// After a plan change, the instance's new plan is accepted as well.
	expect(t, h.do(http.MethodPatch, instPath("i1"), map[string]any{"service_id": ServiceDB, "plan_id": PlanDBLarge}), http.StatusOK, "")
	expect(t, h.do(http.MethodGet, bindPath("i1", "b1", "plan_id", PlanDBLarge), nil), http.StatusOK, "")
	r := h.do(http.MethodDelete, bindPath("i1", "b1", "service_id", ServiceDB, "plan_id", PlanDBLarge), nil)
	expect(t, r, http.StatusOK, "")
	if string(r.Body) != "{}" {
		t.Fatalf("unbind body %s", r.Body)
	}
	expect(t, h.do(http.MethodDelete, bindPath("i1", "b1", "service_id", ServiceDB, "plan_id", PlanDBLarge), nil), http.StatusGone, "")
}

func TestAsyncUnbind(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.mustBind("i1", "b1", PlanDBSmall)
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Polls: 1}, OpUnbind)
	q := []string{"service_id", ServiceDB, "plan_id", PlanDBSmall}
	expectError(t, h.do(http.MethodDelete, bindPath("i1", "b1", q...), nil), http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "")
	r := h.do(http.MethodDelete, bindPath("i1", "b1", append(q, "accepts_incomplete", "true")...), nil)
	expect(t, r, http.StatusAccepted, "")
	op := r.Str("operation")
	if r := h.do(http.MethodDelete, bindPath("i1", "b1", append(q, "accepts_incomplete", "true")...), nil); r.Status != 202 || r.Str("operation") != op {
		t.Fatalf("re-sent unbind: %d %s", r.Status, r.Body)
	}
	expectError(t, h.do(http.MethodDelete, bindPath("i1", "b1", q...), nil), http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "")
	// A bind with the same ID while it is being deleted: ConcurrencyError.
	expectError(t, h.do(http.MethodPut, bindPath("i1", "b1"), bindBody(ServiceDB, PlanDBSmall, nil)), http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "")
	if bn, _ := h.b.Binding("b1"); bn.State != StateDeleting {
		t.Fatalf("state %s", bn.State)
	}
	// A binding being deleted is still fetchable.
	expect(t, h.do(http.MethodGet, bindPath("i1", "b1"), nil), http.StatusOK, "")
	if p := h.pollBinding("i1", "b1", "operation", op); p.Str("state") != "in progress" {
		t.Fatalf("poll 1 %s", p.Body)
	}
	if p := h.pollBinding("i1", "b1", "operation", op); p.Str("state") != "succeeded" {
		t.Fatalf("poll 2 %s", p.Body)
	}
	expect(t, h.pollBinding("i1", "b1", "operation", op), http.StatusGone, "")
	if _, ok := h.b.Binding("b1"); ok {
		t.Fatal("binding still there")
	}
}

func TestAsyncUnbindFailure(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.mustBind("i1", "b1", PlanDBSmall)
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Fail: true}, OpUnbind)
	op := h.do(http.MethodDelete, bindPath("i1", "b1", "accepts_incomplete", "true", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil).Str("operation")
	if p := h.pollBinding("i1", "b1", "operation", op); p.Str("state") != "failed" {
		t.Fatalf("poll %s", p.Body)
	}
	if bn, _ := h.b.Binding("b1"); bn.State != StateFailed {
		t.Fatalf("state %s", bn.State)
	}
	// A binding whose unbind failed can still be fetched (it exists).
	expect(t, h.do(http.MethodGet, bindPath("i1", "b1"), nil), http.StatusOK, "")
}

func TestUnbindAbortsBind(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Polls: -1}, OpBind)
	op := h.do(http.MethodPut, bindPath("i1", "b1", "accepts_incomplete", "true"), bindBody(ServiceDB, PlanDBSmall, nil)).Str("operation")
	expect(t, h.do(http.MethodDelete, bindPath("i1", "b1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusOK, "")
	if p := h.pollBinding("i1", "b1", "operation", op); p.Status != 200 || p.Str("state") != "failed" {
		t.Fatalf("poll of the aborted bind: %d %s", p.Status, p.Body)
	}
	expect(t, h.pollBinding("i1", "b1"), http.StatusGone, "")
}

func TestGetBindingAndBindingPollChecks(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.mustBind("i1", "b1", PlanDBSmall)
	h.mustProvision("q1", PlanQueueStandard)
	h.mustBind("q1", "qb", PlanQueueStandard)
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Polls: -1}, OpBind)
	op := h.do(http.MethodPut, bindPath("i1", "b2", "accepts_incomplete", "true"), bindBody(ServiceDB, PlanDBSmall, nil)).Str("operation")

	gets := []struct {
		name   string
		path   string
		status int
		want   string
	}{
		{"ok", bindPath("i1", "b1"), http.StatusOK, ""},
		{"not retrievable", bindPath("q1", "qb"), http.StatusBadRequest, "bindings_retrievable"},
		{"not retrievable, unknown instance", bindPath("nope", "qb", "service_id", ServiceQueue), http.StatusBadRequest, "bindings_retrievable"},
		{"unknown binding", bindPath("i1", "nope"), http.StatusNotFound, "does not exist"},
		{"binding of another instance", bindPath("q1", "b1"), http.StatusBadRequest, "bindings_retrievable"},
		{"wrong instance", bindPath("i9", "b1"), http.StatusNotFound, "does not exist"},
		{"wrong plan_id", bindPath("i1", "b1", "plan_id", PlanDBLarge), http.StatusBadRequest, "plan_id"},
		{"wrong service_id", bindPath("i1", "b1", "service_id", ServiceDNS), http.StatusBadRequest, "service_id"},
	}
	for _, tt := range gets {
		t.Run("get "+tt.name, func(t *testing.T) {
			expect(t, h.with(t).do(http.MethodGet, tt.path, nil), tt.status, tt.want)
		})
	}
	polls := []struct {
		name   string
		iid    string
		bid    string
		q      []string
		status int
		want   string
	}{
		{"no async op", "i1", "b1", nil, http.StatusBadRequest, "no asynchronous operation was started for binding b1"},
		{"unknown", "i1", "nope", nil, http.StatusGone, ""},
		{"missing operation", "i1", "b2", nil, http.StatusBadRequest, "missing operation"},
		{"wrong operation", "i1", "b2", []string{"operation", "x"}, http.StatusBadRequest, "does not match"},
		{"wrong plan", "i1", "b2", []string{"operation", op, "plan_id", PlanDBLarge}, http.StatusBadRequest, "plan_id"},
		{"ok", "i1", "b2", []string{"operation", op, "service_id", ServiceDB, "plan_id", PlanDBSmall}, http.StatusOK, ""},
	}
	for _, tt := range polls {
		t.Run("poll "+tt.name, func(t *testing.T) {
			expect(t, h.with(t).pollBinding(tt.iid, tt.bid, tt.q...), tt.status, tt.want)
		})
	}
	if !h.b.FinishOperation("i1", "b2", false) {
		t.Fatal("FinishOperation on binding found nothing")
	}
	if h.b.FinishOperation("q1", "b2", false) {
		t.Fatal("FinishOperation matched a binding of another instance")
	}
}
