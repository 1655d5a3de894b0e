package osbtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// waitCalls waits until the broker logged n calls (handlers record after
// the client may already have given up).
func waitCalls(t *testing.T, b *Broker, n int) []Call {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		calls := b.Calls()
		if len(calls) >= n {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker logged %d calls, want %d", len(calls), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFaultAnswers(t *testing.T) {
	tests := []struct {
		name        string
		fault       Fault
		status      int
		body        string // exact body, or prefix when it ends in "*"
		validJSON   bool
		instance    bool // whether the provision took effect
		description string
	}{
		{"status and body before effect", Fault{Status: 503, Body: []byte(`{"description":"maintenance"}`)},
			503, `{"description":"maintenance"}`, true, false, "custom body"},
		{"status only", Fault{Status: 500},
			500, `{"description":"injected fault: 500 Internal Server Error"}`, true, false, "500"},
		{"2xx before effect", Fault{Status: 200},
			200, `{}`, true, false, "200 OK"},
		{"malformed before effect", Fault{Malformed: true},
			500, `{"description": "this body*`, false, false, "malformed"},
		{"after effect 500", Fault{Status: 500, AfterEffect: true},
			500, `{"description":"injected fault: 500 Internal Server Error"}`, true, true, "500"},
		{"after effect malformed 201", Fault{Malformed: true, AfterEffect: true},
			201, `{"description": "this body*`, false, true, "malformed"},
		{"after effect other 2xx", Fault{Status: 204, AfterEffect: true},
			204, ``, false, true, ""},
		{"after effect custom body", Fault{Body: []byte(`{"dashboard_url": 5}`), AfterEffect: true},
			201, `{"dashboard_url": 5}`, true, true, "custom body"},
		{"after effect 408", Fault{Status: 408, AfterEffect: true},
			408, `{"description":"injected fault: 408 Request Timeout"}`, true, true, "408"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			f := tt.fault
			f.Endpoint = EndpointProvision
			id := h.b.AddFault(f)
			r := h.provision("i1", PlanDBSmall, nil)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d (%s)", r.Status, tt.status, r.Body)
			}
			if p, ok := strings.CutSuffix(tt.body, "*"); ok {
				if !strings.HasPrefix(string(r.Body), p) {
					t.Fatalf("body %s, want prefix %s", r.Body, p)
				}
			} else if string(r.Body) != tt.body {
				t.Fatalf("body %s, want %s", r.Body, tt.body)
			}
			if json.Valid(r.Body) != tt.validJSON {
				t.Fatalf("body %s: valid JSON %v", r.Body, !tt.validJSON)
			}
			if _, ok := h.b.Instance("i1"); ok != tt.instance {
				t.Fatalf("instance exists: %v, want %v", ok, tt.instance)
			}
			c, _ := h.b.LastCall(EndpointProvision)
			if c.Fault != id || c.Status != tt.status || !strings.Contains(c.Description, tt.description) {
				t.Fatalf("call %+v", c)
			}
			if h.b.FaultHits(id) != 1 {
				t.Fatalf("hits %d", h.b.FaultHits(id))
			}
		})
	}
}

func TestFaultDrop(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(map[bool]string{false: "before effect", true: "after effect"}[after], func(t *testing.T) {
			h := newHarness(t, Config{})
			h.b.AddFault(Fault{Endpoint: EndpointProvision, Drop: true, AfterEffect: after, Times: 1})
			_, err := h.send(h.srv.Client(), http.MethodPut, instPath("i1"), provisionBody(ServiceDB, PlanDBSmall, nil))
			if err == nil {
				t.Fatal("dropped connection gave no error")
			}
			if _, ok := h.b.Instance("i1"); ok != after {
				t.Fatalf("instance exists %v, want %v", ok, after)
			}
			c, _ := h.b.LastCall(EndpointProvision)
			if !c.Dropped || c.Status != 0 || !strings.Contains(c.Description, "dropped") || strings.Contains(c.Description, "took effect") != after {
				t.Fatalf("call %+v", c)
			}
			// The fault was for one call only: a retry works (200 if the
			// first attempt took effect).
			want := map[bool]int{false: http.StatusCreated, true: http.StatusOK}[after]
			expect(t, h.provision("i1", PlanDBSmall, nil), want, "")
		})
	}
}

func TestFaultDelayTimeout(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(map[bool]string{false: "before effect", true: "after effect"}[after], func(t *testing.T) {
			h := newHarness(t, Config{})
			h.b.AddFault(Fault{Endpoint: EndpointProvision, Delay: time.Minute, AfterEffect: after})
			c := &http.Client{Timeout: 100 * time.Millisecond}
			start := time.Now()
			_, err := h.send(c, http.MethodPut, instPath("i1"), provisionBody(ServiceDB, PlanDBSmall, nil))
			if err == nil {
				t.Fatal("no timeout")
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("delay did not end with the client")
			}
			calls := waitCalls(t, h.b, 1)
			if _, ok := h.b.Instance("i1"); ok != after {
				t.Fatalf("instance exists %v, want %v", ok, after)
			}
			if !after && (calls[0].Status != 0 || !strings.Contains(calls[0].Description, "no effect")) {
				t.Fatalf("call %+v", calls[0])
			}
			if after && calls[0].Status != http.StatusCreated {
				t.Fatalf("call %+v", calls[0])
			}
		})
	}
}

func TestFaultDelayOnly(t *testing.T) {
	h := newHarness(t, Config{})
	h.b.AddFault(Fault{Endpoint: EndpointCatalog, Delay: 50 * time.Millisecond, RetryAfter: 3 * time.Second})
	start := time.Now()
	r := h.do(http.MethodGet, "/v2/catalog", nil)
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("no delay")
	}
	expect(t, r, http.StatusOK, "")
	if r.Header.Get("Retry-After") != "3" || !strings.Contains(string(r.Body), "services") {
		t.Fatalf("answer changed: %v %s", r.Header, r.Body)
	}
}

func TestFaultCounting(t *testing.T) {
	statuses := func(h *harness, n int) []int {
		var out []int
		for i := 0; i < n; i++ {
			out = append(out, h.do(http.MethodGet, "/v2/catalog", nil).Status)
		}
		return out
	}
	tests := []struct {
		name  string
		fault Fault
		want  []int
	}{
		{"every call", Fault{Status: 500}, []int{500, 500, 500, 500}},
		{"the 3rd call", Fault{Status: 500, Skip: 2, Times: 1}, []int{200, 200, 500, 200}},
		{"the next 2 calls", Fault{Status: 503, Times: 2}, []int{503, 503, 200, 200}},
		{"after the first, forever", Fault{Status: 502, Skip: 1}, []int{200, 502, 502, 502}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			f := tt.fault
			f.Endpoint = EndpointCatalog
			id := h.b.AddFault(f)
			got := statuses(h, len(tt.want))
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("statuses %v, want %v", got, tt.want)
				}
			}
			fired := 0
			for _, s := range tt.want {
				if s != 200 {
					fired++
				}
			}
			if h.b.FaultHits(id) != fired {
				t.Fatalf("hits %d, want %d", h.b.FaultHits(id), fired)
			}
		})
	}
}

func TestFaultMatching(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("i1", PlanDBSmall)
	h.mustProvision("i2", PlanDBSmall)
	h.mustBind("i1", "b1", PlanDBSmall)
	h.mustBind("i1", "b2", PlanDBSmall)

	del := h.b.AddFault(Fault{Endpoint: EndpointAny, Method: http.MethodDelete, Status: 500})
	expect(t, h.do(http.MethodDelete, bindPath("i1", "b1", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), 500, "injected")
	expect(t, h.do(http.MethodDelete, instPath("i2", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil), 500, "injected")
	expect(t, h.do(http.MethodGet, instPath("i2"), nil), http.StatusOK, "")
	h.b.RemoveFault(del)
	h.b.RemoveFault(del) // no-op
	if h.b.FaultHits(del) != 0 {
		t.Fatal("hits of a removed fault")
	}

	h.b.AddFault(Fault{Endpoint: EndpointGetInstance, InstanceID: "i1", Status: 404})
	h.b.AddFault(Fault{Endpoint: EndpointGetBinding, BindingID: "b2", Status: 500})
	expect(t, h.do(http.MethodGet, instPath("i1"), nil), 404, "injected")
	expect(t, h.do(http.MethodGet, instPath("i2"), nil), http.StatusOK, "")
	expect(t, h.do(http.MethodGet, bindPath("i1", "b1"), nil), http.StatusOK, "")
	expect(t, h.do(http.MethodGet, bindPath("i1", "b2"), nil), 500, "injected")
	h.b.ClearFaults()
	expect(t, h.do(http.MethodGet, instPath("i1"), nil), http.StatusOK, "")

	// Two matching faults: the first due one fires, both count the call.
	first := h.b.AddFault(Fault{Endpoint: EndpointCatalog, Status: 501, Times: 1})
	second := h.b.AddFault(Fault{Endpoint: EndpointCatalog, Status: 502, Skip: 1, Times: 1})
	if s := []int{h.do(http.MethodGet, "/v2/catalog", nil).Status, h.do(http.MethodGet, "/v2/catalog", nil).Status, h.do(http.MethodGet, "/v2/catalog", nil).Status}; s[0] != 501 || s[1] != 502 || s[2] != 200 {
		t.Fatalf("statuses %v", s)
	}
	if h.b.FaultHits(first) != 1 || h.b.FaultHits(second) != 1 {
		t.Fatalf("hits %d %d", h.b.FaultHits(first), h.b.FaultHits(second))
	}
}

func TestFaultOnLastOperation(t *testing.T) {
	// A broker whose polls fail twice before answering keeps the operation's
	// progress: faulted polls (before effect) do not advance it.
	h := newHarness(t, Config{})
	op := h.provision("i1", PlanDBAsync, nil, "accepts_incomplete", "true").Str("operation")
	h.b.AddFault(Fault{Endpoint: EndpointLastOperation, Status: 503, Times: 2, RetryAfter: time.Second})
	for i := 0; i < 2; i++ {
		r := h.poll("i1", "operation", op)
		if r.Status != 503 || r.Header.Get("Retry-After") != "1" {
			t.Fatalf("poll %d: %d %v", i, r.Status, r.Header)
		}
	}
	states := []string{h.poll("i1", "operation", op).Str("state"), h.poll("i1", "operation", op).Str("state"), h.poll("i1", "operation", op).Str("state")}
	if states[0] != "in progress" || states[1] != "in progress" || states[2] != "succeeded" {
		t.Fatalf("states %v", states)
	}
}
