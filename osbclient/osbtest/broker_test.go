package osbtest

import (
	"net/http"
	"testing"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

func TestLifecycleSync(t *testing.T) {
	h := newHarness(t, Config{Username: "u", Password: "p"})
	r := h.provision("i1", PlanDBSmall, map[string]any{"size": 1})
	expect(t, r, http.StatusCreated, "")
	if got := r.Str("dashboard_url"); got != "https://dashboard.osbtest.invalid/instances/i1" {
		t.Fatalf("dashboard_url %q", got)
	}
	r = h.mustBind("i1", "b1", PlanDBSmall)
	creds, _ := r.JSON()["credentials"].(map[string]any)
	if creds["port"] != float64(5432) || creds["password"] == "" {
		t.Fatalf("credentials %v", creds)
	}
	want := DefaultCredentials(DefaultCredentialSeed, "i1", "b1")
	if creds["password"] != want["password"] {
		t.Fatalf("password not deterministic")
	}
	expect(t, h.do(http.MethodDelete, bindPath("b-none", "b1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusGone, "")
	expect(t, h.do(http.MethodDelete, bindPath("i1", "b1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusOK, "")
	expect(t, h.do(http.MethodDelete, instPath("i1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusOK, "")
	expect(t, h.do(http.MethodDelete, instPath("i1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusGone, "")
	if n := h.b.Count(EndpointProvision); n != 1 {
		t.Fatalf("provision count %d", n)
	}
	if len(h.b.Instances()) != 0 || len(h.b.Bindings()) != 0 {
		t.Fatalf("state left: %v %v", h.b.Instances(), h.b.Bindings())
	}
}

func TestLifecycleAsync(t *testing.T) {
	h := newHarness(t, Config{})
	expectError(t, h.provision("i1", PlanDBAsync, nil), http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired, "accepts_incomplete")
	r := h.provision("i1", PlanDBAsync, nil, "accepts_incomplete", "true")
	expect(t, r, http.StatusAccepted, "")
	op := r.Str("operation")
	if op == "" {
		t.Fatal("no operation")
	}
	for i := 0; i < 2; i++ {
		p := h.poll("i1", "operation", op, "service_id", ServiceDB, "plan_id", PlanDBAsync)
		expect(t, p, http.StatusOK, "")
		if p.Str("state") != string(osbwire.StateInProgress) {
			t.Fatalf("poll %d: %s", i, p.Body)
		}
	}
	p := h.poll("i1", "operation", op)
	if p.Str("state") != string(osbwire.StateSucceeded) {
		t.Fatalf("final poll: %s", p.Body)
	}
	if in, _ := h.b.Instance("i1"); in.State != StateReady {
		t.Fatalf("state %s", in.State)
	}
}
