package osbtest

import (
	"context"
	"net/http"
	"time"
)

// FaultID identifies an injected fault, for RemoveFault and FaultHits.
type FaultID int

// Fault describes a misbehaviour injected into the broker's answers. A fault
// matches requests to its Endpoint (EndpointAny: all), optionally narrowed by
// Method, InstanceID and BindingID. Of the matching requests it lets the
// first Skip through, then fires on the next Times requests (0: on every
// request from then on). When several faults match a request, the one added
// first that is due fires; every matching fault counts the request.
//
// "Fail the 3rd provision": Fault{Endpoint: EndpointProvision, Skip: 2, Times: 1, Status: 500}.
// "The next 2 polls time out": Fault{Endpoint: EndpointLastOperation, Times: 2, Delay: time.Minute}.
//
// Before effect (the default), a fault that answers (Status, Malformed or
// Drop set) replaces the broker's handling entirely: no state changes, as
// with a broker that failed before doing anything. AfterEffect performs the
// request normally first and then replaces or spoils the answer: the broker
// did the work but the platform never learns it — the situation orphan
// mitigation exists for.
type Fault struct {
	// Endpoint the fault applies to; EndpointAny matches every endpoint.
	Endpoint Endpoint
	// Method, when set, narrows the fault to one HTTP method.
	Method string
	// InstanceID and BindingID, when set, narrow the fault to requests for
	// that instance / binding.
	InstanceID string
	BindingID  string

	// Skip is how many matching requests pass untouched before the fault
	// fires; Times is how many requests it then affects (0: unlimited).
	Skip  int
	Times int

	// Status is the status code to answer. 0 means: the status the broker's
	// own handling produced (AfterEffect), or 500 (before effect) when the
	// fault answers at all.
	Status int
	// Body is the raw body to answer. Empty means a default: an OSB error
	// body naming the fault for status >= 400, the broker's own body
	// otherwise (AfterEffect) or "{}".
	Body []byte
	// Malformed answers a body that is not valid JSON (a truncated object).
	Malformed bool
	// Drop closes the connection without answering (hijack + close).
	Drop bool
	// Delay waits before answering — before handling the request (before
	// effect; if the client gives up meanwhile the request has no effect at
	// all) or after handling it (AfterEffect: the state changed even if the
	// client times out). A fault with only a Delay slows the broker down
	// without changing its answer. The wait ends early when the client
	// goes away.
	Delay time.Duration
	// RetryAfter, when positive, adds a Retry-After header (whole seconds,
	// rounded up) to the answer.
	RetryAfter time.Duration
	// AfterEffect performs the request before applying the fault.
	AfterEffect bool
}

// answers reports whether the fault replaces the broker's answer (as opposed
// to only delaying it or adding a header).
func (f *Fault) answers() bool {
	return f.Status != 0 || f.Malformed || f.Drop || len(f.Body) > 0
}

type faultEntry struct {
	id    FaultID
	f     Fault
	seen  int
	fired int
}

// AddFault injects f and returns its ID. Faults stay until they have fired
// Times times, are removed with RemoveFault, or ClearFaults/Reset is called.
func (b *Broker) AddFault(f Fault) FaultID {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextFault++
	f.Body = append([]byte(nil), f.Body...)
	b.faults = append(b.faults, &faultEntry{id: b.nextFault, f: f})
	return b.nextFault
}

// RemoveFault removes the fault with the given ID (no-op if unknown).
func (b *Broker) RemoveFault(id FaultID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, e := range b.faults {
		if e.id == id {
			b.faults = append(b.faults[:i], b.faults[i+1:]...)
			return
		}
	}
}

// ClearFaults removes every injected fault.
func (b *Broker) ClearFaults() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = nil
}

// FaultHits reports how many requests the fault with the given ID has fired
// on (it keeps counting after the fault is exhausted, until it is removed).
func (b *Broker) FaultHits(id FaultID) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.faults {
		if e.id == id {
			return e.fired
		}
	}
	return 0
}

// pickFault counts the request against every matching fault and returns the
// first one due to fire (a copy), or nil.
func (b *Broker) pickFault(rt route, method string) (*Fault, FaultID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var (
		picked *Fault
		id     FaultID
	)
	for _, e := range b.faults {
		f := &e.f
		if f.Endpoint != EndpointAny && f.Endpoint != rt.endpoint {
			continue
		}
		if f.Method != "" && f.Method != method {
			continue
		}
		if f.InstanceID != "" && f.InstanceID != rt.instanceID {
			continue
		}
		if f.BindingID != "" && f.BindingID != rt.bindingID {
			continue
		}
		e.seen++
		if picked != nil || e.seen <= f.Skip {
			continue
		}
		if f.Times > 0 && e.fired >= f.Times {
			continue
		}
		e.fired++
		c := *f
		picked, id = &c, e.id
	}
	return picked, id
}

// apply turns the broker's own result (nil before effect) into the faulty
// answer.
func (f *Fault) apply(own *result) *result {
	out := &result{header: http.Header{}}
	if own != nil {
		out = own
	}
	if f.RetryAfter > 0 {
		out.header.Set("Retry-After", retryAfterSeconds(f.RetryAfter))
	}
	if !f.answers() {
		return out
	}
	switch {
	case f.Status != 0:
		out.status = f.Status
	case own == nil:
		out.status = http.StatusInternalServerError
	}
	out.header.Set("Content-Type", "application/json")
	switch {
	case f.Malformed:
		out.body = []byte(`{"description": "this body is cut short`)
		out.description = "injected fault: malformed body"
	case len(f.Body) > 0:
		out.body = f.Body
		out.description = "injected fault: custom body"
	case out.status >= 400:
		desc := "injected fault: " + itoa(out.status) + " " + http.StatusText(out.status)
		out.errorBody(out.status, "", desc)
	case own == nil:
		out.body = []byte("{}")
		out.description = "injected fault: " + itoa(out.status) + " " + http.StatusText(out.status)
	}
	return out
}

// ReleaseDelays ends every injected delay in progress as if it had
// elapsed, so the delayed requests are answered now. NewServer and
// NewTLSServer call it before closing their server, so a test never waits
// for a long Delay at cleanup.
func (b *Broker) ReleaseDelays() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.release)
	b.release = make(chan struct{})
}

// sleep waits for d, until ctx is done or until ReleaseDelays; it reports
// whether the wait ended normally (elapsed or released).
func (b *Broker) sleep(ctx context.Context, d time.Duration) bool {
	b.mu.Lock()
	release := b.release
	b.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-release:
		return true
	case <-ctx.Done():
		return false
	}
}
