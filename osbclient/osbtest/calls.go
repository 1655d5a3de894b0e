package osbtest

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Endpoint identifies one OSB endpoint (route + method). It keys the call
// log, per-endpoint counts and fault injection.
type Endpoint int

// The OSB endpoints the broker serves. EndpointAny is only meaningful in a
// Fault (it matches every endpoint); EndpointUnknown is what the call log
// records for a request that matched no OSB route or method.
const (
	EndpointAny                  Endpoint = iota // Fault only: every endpoint
	EndpointCatalog                              // GET /v2/catalog
	EndpointProvision                            // PUT /v2/service_instances/:id
	EndpointUpdate                               // PATCH /v2/service_instances/:id
	EndpointDeprovision                          // DELETE /v2/service_instances/:id
	EndpointGetInstance                          // GET /v2/service_instances/:id
	EndpointLastOperation                        // GET /v2/service_instances/:id/last_operation
	EndpointBind                                 // PUT .../service_bindings/:bid
	EndpointUnbind                               // DELETE .../service_bindings/:bid
	EndpointGetBinding                           // GET .../service_bindings/:bid
	EndpointBindingLastOperation                 // GET .../service_bindings/:bid/last_operation
	EndpointUnknown                              // no OSB route matched
)

var endpointNames = [...]string{
	EndpointAny:                  "Any",
	EndpointCatalog:              "Catalog",
	EndpointProvision:            "Provision",
	EndpointUpdate:               "Update",
	EndpointDeprovision:          "Deprovision",
	EndpointGetInstance:          "GetInstance",
	EndpointLastOperation:        "LastOperation",
	EndpointBind:                 "Bind",
	EndpointUnbind:               "Unbind",
	EndpointGetBinding:           "GetBinding",
	EndpointBindingLastOperation: "BindingLastOperation",
	EndpointUnknown:              "Unknown",
}

// String returns the endpoint's name (e.g. "Provision"), for test messages.
func (e Endpoint) String() string {
	if e >= 0 && int(e) < len(endpointNames) {
		return endpointNames[e]
	}
	return "Endpoint(" + itoa(int(e)) + ")"
}

// Mutating reports whether the endpoint changes broker state (PUT, PATCH or
// DELETE). A dry-run diff must make no mutating call.
func (e Endpoint) Mutating() bool {
	switch e {
	case EndpointProvision, EndpointUpdate, EndpointDeprovision, EndpointBind, EndpointUnbind:
		return true
	}
	return false
}

// Call is one request the broker received, as recorded in the call log.
// Headers are a copy of the request headers with the Authorization
// credentials redacted (the scheme is kept, e.g. "Basic <redacted>").
type Call struct {
	// Time is when the request arrived.
	Time time.Time
	// Endpoint is the OSB endpoint the request addressed (EndpointUnknown
	// when no route matched).
	Endpoint Endpoint
	// Method and Path are the HTTP method and the (decoded) URL path.
	Method string
	Path   string
	// Query holds the parsed query string.
	Query url.Values
	// Headers are the request headers, Authorization redacted.
	Headers http.Header
	// Body is the raw request body (nil when there was none).
	Body []byte
	// Status is the status code answered; 0 when no answer was written
	// (connection dropped, or the client went away during an injected
	// delay).
	Status int
	// RequestID is the X-Broker-API-Request-Identity header value.
	RequestID string
	// InstanceID and BindingID are the IDs from the path, when present.
	InstanceID string
	BindingID  string
	// Description is the error description of a refusal or injected fault
	// ("" for successful answers): it says why the broker answered as it did.
	Description string
	// Fault is the ID of the injected fault that shaped the answer (0: none).
	Fault FaultID
	// Dropped is true when the connection was closed without an answer.
	Dropped bool
}

// Calls returns a copy of the call log, oldest first.
func (b *Broker) Calls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Call, len(b.calls))
	for i, c := range b.calls {
		out[i] = c.clone()
	}
	return out
}

// clone deep-copies a call so callers cannot alter the log.
func (c Call) clone() Call {
	c.Query = cloneValues(c.Query)
	c.Headers = c.Headers.Clone()
	if c.Body != nil {
		c.Body = append([]byte(nil), c.Body...)
	}
	return c
}

// CallsTo returns the logged calls to endpoint e, oldest first.
func (b *Broker) CallsTo(e Endpoint) []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Call
	for _, c := range b.calls {
		if e == EndpointAny || c.Endpoint == e {
			out = append(out, c.clone())
		}
	}
	return out
}

// LastCall returns the most recent call to endpoint e (EndpointAny: to any
// endpoint), and false if there was none.
func (b *Broker) LastCall(e Endpoint) (Call, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.calls) - 1; i >= 0; i-- {
		if e == EndpointAny || b.calls[i].Endpoint == e {
			return b.calls[i].clone(), true
		}
	}
	return Call{}, false
}

// Count returns how many calls endpoint e received (EndpointAny: all calls),
// refused ones included.
func (b *Broker) Count(e Endpoint) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.calls {
		if e == EndpointAny || c.Endpoint == e {
			n++
		}
	}
	return n
}

// MutatingCalls returns the logged PUT, PATCH and DELETE calls (any route),
// so a test can assert that a dry run changed nothing.
func (b *Broker) MutatingCalls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Call
	for _, c := range b.calls {
		switch c.Method {
		case http.MethodPut, http.MethodPatch, http.MethodDelete:
			out = append(out, c.clone())
		}
	}
	return out
}

// ResetCalls empties the call log; broker state and faults are kept.
func (b *Broker) ResetCalls() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = nil
}

// redactHeaders copies h, replacing Authorization credentials.
func redactHeaders(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	if vs := out.Values("Authorization"); len(vs) > 0 {
		red := make([]string, len(vs))
		for i, v := range vs {
			scheme, _, _ := strings.Cut(v, " ")
			red[i] = scheme + " <redacted>"
		}
		out["Authorization"] = red
	}
	return out
}
