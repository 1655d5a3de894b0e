package osbtest

import (
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

func TestCallLog(t *testing.T) {
	h := newHarness(t, Config{Username: "u", Password: "secret-pw"})
	if _, ok := h.b.LastCall(EndpointAny); ok {
		t.Fatal("LastCall on an empty log")
	}
	h.do(http.MethodGet, "/v2/catalog", nil, header(HeaderRequestIdentity, "r1"))
	h.provision("i1", PlanDBSmall, map[string]any{"size": 1}, "accepts_incomplete", "true")
	h.provision("i1", PlanDBLarge, nil) // 409
	h.do(http.MethodGet, instPath("i1"), nil)
	h.mustBind("i1", "b1", PlanDBSmall)
	h.do(http.MethodDelete, bindPath("i1", "b1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil)
	h.do(http.MethodPatch, instPath("i1"), map[string]any{"service_id": ServiceDB})
	h.do(http.MethodDelete, instPath("i1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil)

	counts := map[Endpoint]int{
		EndpointCatalog: 1, EndpointProvision: 2, EndpointGetInstance: 1, EndpointBind: 1,
		EndpointUnbind: 1, EndpointUpdate: 1, EndpointDeprovision: 1, EndpointLastOperation: 0, EndpointAny: 8,
	}
	for e, n := range counts {
		if got := h.b.Count(e); got != n {
			t.Errorf("Count(%v) = %d, want %d", e, got, n)
		}
		if got := len(h.b.CallsTo(e)); got != n {
			t.Errorf("CallsTo(%v) has %d calls, want %d", e, got, n)
		}
	}
	var methods []string
	for _, c := range h.b.MutatingCalls() {
		methods = append(methods, c.Method+" "+c.Endpoint.String())
	}
	want := []string{"PUT Provision", "PUT Provision", "PUT Bind", "DELETE Unbind", "PATCH Update", "DELETE Deprovision"}
	if !reflect.DeepEqual(methods, want) {
		t.Fatalf("mutating calls %v, want %v", methods, want)
	}

	calls := h.b.Calls()
	c0 := calls[0]
	if c0.RequestID != "r1" || c0.Status != 200 || c0.Method != "GET" || c0.Path != "/v2/catalog" || c0.Time.IsZero() {
		t.Fatalf("catalog call %+v", c0)
	}
	if got := c0.Headers.Get("Authorization"); got != "Basic <redacted>" {
		t.Fatalf("Authorization %q", got)
	}
	for _, c := range calls {
		for _, v := range c.Headers.Values("Authorization") {
			if strings.Contains(v, "secret") || strings.Contains(v, "dTpzZWNyZXQtcHc=") {
				t.Fatalf("credentials in the call log: %q", v)
			}
		}
	}
	p := calls[1]
	if p.Endpoint != EndpointProvision || p.InstanceID != "i1" || p.Query.Get("accepts_incomplete") != "true" ||
		!strings.Contains(string(p.Body), `"size":1`) || p.Status != 201 || p.Description != "" {
		t.Fatalf("provision call %+v", p)
	}
	if c := calls[2]; c.Status != 409 || !strings.Contains(c.Description, "different attributes") {
		t.Fatalf("conflict call %+v", c)
	}
	if c := calls[4]; c.BindingID != "b1" || c.Endpoint != EndpointBind {
		t.Fatalf("bind call %+v", c)
	}
	if c, _ := h.b.LastCall(EndpointAny); c.Endpoint != EndpointDeprovision {
		t.Fatalf("last call %+v", c)
	}
	// The log is a copy.
	calls[0].Headers.Set("X", "y")
	calls[0].Query.Set("x", "y")
	if h.b.Calls()[0].Headers.Get("X") != "" || h.b.Calls()[0].Query.Get("x") != "" {
		t.Fatal("call log aliased")
	}
	h.b.ResetCalls()
	if len(h.b.Calls()) != 0 || h.b.Count(EndpointAny) != 0 {
		t.Fatal("ResetCalls left calls")
	}
	if len(h.b.Instances()) != 0 {
		t.Fatal("state changed")
	}
}

func TestEndpointNames(t *testing.T) {
	mut := map[Endpoint]bool{EndpointProvision: true, EndpointUpdate: true, EndpointDeprovision: true, EndpointBind: true, EndpointUnbind: true}
	seen := map[string]bool{}
	for e := EndpointAny; e <= EndpointUnknown; e++ {
		s := e.String()
		if s == "" || seen[s] || strings.HasPrefix(s, "Endpoint(") {
			t.Fatalf("bad name %q for %d", s, int(e))
		}
		seen[s] = true
		if e.Mutating() != mut[e] {
			t.Fatalf("%v.Mutating() = %v", e, e.Mutating())
		}
	}
	if got := Endpoint(99).String(); got != "Endpoint(99)" {
		t.Fatalf("out of range: %q", got)
	}
}

func TestResetAndDirectState(t *testing.T) {
	h := newHarness(t, Config{})
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true}, OpProvision)
	h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "true")
	h.b.AddFault(Fault{Endpoint: EndpointCatalog, Status: 500})
	h.b.Reset()
	if len(h.b.Instances()) != 0 || len(h.b.Calls()) != 0 {
		t.Fatal("Reset left state")
	}
	expect(t, h.do(http.MethodGet, "/v2/catalog", nil), http.StatusOK, "") // fault gone
	// Behaviours survive Reset.
	expect(t, h.provision("i1", PlanDBSmall, nil, "accepts_incomplete", "true"), http.StatusAccepted, "")
	h.b.ClearBehaviors()

	// PutInstance / PutBinding model resources created elsewhere.
	got := h.b.PutInstance(Instance{ID: "adopt", ServiceID: ServiceDB, PlanID: PlanDBSmall, Parameters: map[string]any{"n": 1}})
	if got.State != StateReady || got.Parameters["n"] != 1.0 {
		t.Fatalf("PutInstance %+v", got)
	}
	expect(t, h.do(http.MethodGet, instPath("adopt"), nil), http.StatusOK, "")
	bn := h.b.PutBinding(Binding{ID: "ab", InstanceID: "adopt", ServiceID: ServiceDB, PlanID: PlanDBSmall})
	if !reflect.DeepEqual(bn.Credentials, DefaultCredentials("", "adopt", "ab")) || bn.State != StateReady {
		t.Fatalf("PutBinding %+v", bn)
	}
	bn = h.b.PutBinding(Binding{ID: "ab2", InstanceID: "adopt", ServiceID: ServiceDB, PlanID: PlanDBSmall, Credentials: map[string]any{"k": 1}})
	if bn.Credentials["k"] != 1.0 {
		t.Fatalf("PutBinding credentials %+v", bn.Credentials)
	}
	if len(h.b.Bindings()) != 2 {
		t.Fatalf("bindings %v", h.b.Bindings())
	}
	if !h.b.RemoveBinding("ab2") || h.b.RemoveBinding("ab2") {
		t.Fatal("RemoveBinding")
	}
	// Removing an instance out of band removes its bindings; the platform
	// then sees 410 on deprovision.
	if !h.b.RemoveInstance("adopt") || h.b.RemoveInstance("adopt") {
		t.Fatal("RemoveInstance")
	}
	if _, ok := h.b.Binding("ab"); ok {
		t.Fatal("binding of a removed instance left")
	}
	expect(t, h.do(http.MethodDelete, instPath("adopt", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), http.StatusGone, "")

	// In-progress states come with a never-ending operation.
	in := h.b.PutInstance(Instance{ID: "busy", ServiceID: ServiceDB, PlanID: PlanDBSmall, State: StateUpdating})
	if in.Operation == "" || in.LastOperation != OpUpdate {
		t.Fatalf("PutInstance updating: %+v", in)
	}
	if p := h.poll("busy", "operation", in.Operation); p.Str("state") != "in progress" {
		t.Fatalf("poll %s", p.Body)
	}
	expectError(t, h.do(http.MethodPut, bindPath("busy", "x"), bindBody(ServiceDB, PlanDBSmall, nil)), http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "")
	h.b.FinishOperation("busy", "", false)
	bn = h.b.PutBinding(Binding{ID: "bb", InstanceID: "busy", ServiceID: ServiceDB, PlanID: PlanDBSmall, State: StateDeleting})
	if bn.LastOperation != OpUnbind || bn.Operation == "" {
		t.Fatalf("PutBinding deleting: %+v", bn)
	}
	if !h.b.FinishOperation("busy", "bb", false) {
		t.Fatal("FinishOperation on a put binding")
	}
	if _, ok := h.b.Binding("bb"); ok {
		t.Fatal("unbind did not remove the binding")
	}
	// A failed instance put directly: no last operation to name.
	h.b.PutInstance(Instance{ID: "f", ServiceID: ServiceDB, PlanID: PlanDBSmall, State: StateFailed})
	expect(t, h.provision("f", PlanDBSmall, nil), http.StatusConflict, "last operation failed")
	expect(t, h.do(http.MethodPatch, instPath("f"), map[string]any{"service_id": ServiceDB}), http.StatusUnprocessableEntity, "last operation failed")
}

func TestAccessorsReturnCopies(t *testing.T) {
	h := newHarness(t, Config{})
	h.provision("i1", PlanDBSmall, map[string]any{"nested": map[string]any{"a": []any{1}}})
	h.mustBind("i1", "b1", PlanDBSmall)
	in := h.b.Instances()["i1"]
	in.Parameters["nested"].(map[string]any)["a"].([]any)[0] = "changed"
	in.Context.Namespace = "changed"
	bn := h.b.Bindings()["b1"]
	bn.Credentials["hosts"].([]any)[0] = "changed"
	if again, _ := h.b.Instance("i1"); again.Parameters["nested"].(map[string]any)["a"].([]any)[0] != 1.0 || again.Context.Namespace != "ns" {
		t.Fatalf("instance aliased: %+v", again)
	}
	if again, _ := h.b.Binding("b1"); again.Credentials["hosts"].([]any)[0] != "db-0.osbtest.invalid" {
		t.Fatalf("binding aliased: %+v", again)
	}
	if _, ok := h.b.Binding("nope"); ok {
		t.Fatal("unknown binding found")
	}
	if _, ok := h.b.Instance("nope"); ok {
		t.Fatal("unknown instance found")
	}
	// Behavior credentials are copied when set.
	creds := map[string]any{"k": "v"}
	h.b.SetBehavior(AnyPlan, Behavior{Credentials: creds}, OpBind)
	creds["k"] = "changed"
	if got := h.mustBind("i1", "b2", PlanDBSmall).JSON()["credentials"].(map[string]any)["k"]; got != "v" {
		t.Fatalf("behavior credentials aliased: %v", got)
	}
}

func TestBehaviorPrecedence(t *testing.T) {
	b := New(Config{})
	b.ClearBehaviors()
	b.SetBehavior(AnyPlan, Behavior{Polls: 1})
	b.SetBehavior(AnyPlan, Behavior{Polls: 2}, OpBind)
	b.SetBehavior(PlanDBSmall, Behavior{Polls: 3})
	b.SetBehavior(PlanDBSmall, Behavior{Polls: 4}, OpUpdate, OpDeprovision)
	tests := []struct {
		plan string
		op   Op
		want int
	}{
		{PlanDBSmall, OpUpdate, 4},
		{PlanDBSmall, OpDeprovision, 4},
		{PlanDBSmall, OpBind, 3},
		{PlanDBLarge, OpBind, 2},
		{PlanDBLarge, OpProvision, 1},
	}
	for _, tt := range tests {
		if got := b.behaviorFor(tt.plan, tt.op).Polls; got != tt.want {
			t.Errorf("behaviorFor(%s, %s).Polls = %d, want %d", tt.plan, tt.op, got, tt.want)
		}
	}
	// Setting all operations again replaces the per-operation ones.
	b.SetBehavior(PlanDBSmall, Behavior{Polls: 5})
	if got := b.behaviorFor(PlanDBSmall, OpUpdate).Polls; got != 5 {
		t.Fatalf("after reset for all ops: %d", got)
	}
	b.ClearBehaviors()
	if got := b.behaviorFor(PlanDBSmall, OpUpdate); !reflect.DeepEqual(got, Behavior{}) {
		t.Fatalf("after ClearBehaviors: %+v", got)
	}
}

func TestDefaultCredentials(t *testing.T) {
	a := DefaultCredentials("s", "i1", "b1")
	if !reflect.DeepEqual(a, DefaultCredentials("s", "i1", "b1")) {
		t.Fatal("not deterministic")
	}
	if !reflect.DeepEqual(DefaultCredentials("", "i1", "b1"), DefaultCredentials(DefaultCredentialSeed, "i1", "b1")) {
		t.Fatal("empty seed is not the default seed")
	}
	for _, other := range []map[string]any{DefaultCredentials("s", "i1", "b2"), DefaultCredentials("t", "i1", "b1"), DefaultCredentials("s", "i2", "b1")} {
		if other["password"] == a["password"] {
			t.Fatal("password does not depend on seed, instance and binding")
		}
	}
	if _, ok := a["port"].(float64); !ok {
		t.Fatalf("port %T", a["port"])
	}
	if !strings.Contains(a["uri"].(string), a["password"].(string)) {
		t.Fatal("uri does not embed the password")
	}
	if len(a["password"].(string)) < 24 {
		t.Fatal("password too short")
	}
}

func TestTLSServerAndLogf(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	b, srv := NewTLSServer(t, Config{BearerToken: "tok", Logf: logf})
	h := &harness{t: t, b: b, srv: srv, cfg: Config{BearerToken: "tok"}}
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("URL %s", srv.URL)
	}
	expect(t, h.do(http.MethodGet, "/v2/catalog", nil), http.StatusOK, "")
	expect(t, h.do(http.MethodGet, "/v2/catalog", nil, noHeader("Authorization")), http.StatusUnauthorized, "")
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 2 || lines[0] != "osbtest: GET /v2/catalog -> 200" || !strings.Contains(lines[1], "-> 401: unauthorized") {
		t.Fatalf("log lines %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, "tok") {
			t.Fatalf("token logged: %q", l)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	h := newHarness(t, Config{})
	h.b.SetBehavior(PlanDBSmall, Behavior{Async: true, Polls: 1}, OpBind)
	const n = 10
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				id := fmt.Sprintf("i-%d-%d", g, i)
				r, err := h.send(h.srv.Client(), http.MethodPut, instPath(id), provisionBody(ServiceDB, PlanDBSmall, nil))
				if err != nil || r.Status != http.StatusCreated {
					t.Errorf("provision %s: %v %d", id, err, r.Status)
					return
				}
				r, err = h.send(h.srv.Client(), http.MethodPut, bindPath(id, id+"-b", "accepts_incomplete", "true"), bindBody(ServiceDB, PlanDBSmall, nil))
				if err != nil || r.Status != http.StatusAccepted {
					t.Errorf("bind %s: %v %d", id, err, r.Status)
					return
				}
				_ = h.b.Instances()
				_ = h.b.Count(EndpointAny)
			}
		}(g)
	}
	// Program the broker while it serves.
	for i := 0; i < n; i++ {
		id := h.b.AddFault(Fault{Endpoint: EndpointGetInstance, Status: 500})
		h.b.RemoveFault(id)
		h.b.SetBehavior(PlanDBLarge, Behavior{Polls: i})
		_ = h.b.Calls()
	}
	wg.Wait()
	if got := len(h.b.Instances()); got != 4*n {
		t.Fatalf("instances %d", got)
	}
	if got := h.b.Count(EndpointBind); got != 4*n {
		t.Fatalf("binds %d", got)
	}
}

func TestReleaseDelays(t *testing.T) {
	h := newHarness(t, Config{})
	h.b.AddFault(Fault{Endpoint: EndpointCatalog, Delay: time.Hour})
	done := make(chan response, 1)
	go func() {
		r, _ := h.send(h.srv.Client(), http.MethodGet, "/v2/catalog", nil)
		done <- r
	}()
	// Release until the request is answered (it may not have arrived yet).
	for {
		h.b.ReleaseDelays()
		select {
		case r := <-done:
			if r.Status != http.StatusOK {
				t.Fatalf("released request: %d", r.Status)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestNoGoroutineLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("server lifecycle", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.b.AddFault(Fault{Endpoint: EndpointProvision, Drop: true, Times: 1})
		slow := h.b.AddFault(Fault{Endpoint: EndpointCatalog, Delay: time.Minute})
		_, _ = h.send(h.srv.Client(), http.MethodPut, instPath("i1"), provisionBody(ServiceDB, PlanDBSmall, nil))
		_, _ = h.send(&http.Client{Timeout: 20 * time.Millisecond}, http.MethodGet, "/v2/catalog", nil)
		h.mustProvision("i1", PlanDBSmall)
		// A request still waiting in an injected delay at cleanup is
		// released by NewServer's cleanup.
		go func() { _, _ = h.send(h.srv.Client(), http.MethodGet, "/v2/catalog", nil) }()
		for h.b.FaultHits(slow) < 2 {
			time.Sleep(5 * time.Millisecond)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
