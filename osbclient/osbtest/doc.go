// Package osbtest is an in-memory, strict, programmable Open Service Broker
// API 2.17 broker for tests.
//
// A *Broker is an http.Handler that keeps service instances and bindings in
// memory and answers every OSB endpoint the way a conformant — and stricter
// than usual — broker does: it checks the API version header, authentication,
// Content-Type, JSON bodies, required fields, catalog IDs, plan capabilities
// (plan_updateable, bindable, instances_retrievable, bindings_retrievable,
// binding_rotatable), the originating identity header, accepts_incomplete,
// concurrency, and the query parameters of last_operation polls (including
// the OSB rule that an update is polled with the plan_id it had *before* the
// update, which Kubernetes Service Catalog got wrong). Every refusal is an OSB
// error body whose description says exactly what was wrong, and every request
// lands in a call log the test can inspect.
//
// What the broker does is programmable per plan and operation (Behavior:
// synchronous or asynchronous, how many polls an operation stays in
// progress, failure, Retry-After, credentials, dashboard URL), and faults can
// be injected per endpoint (status and body, delay, malformed body, dropped
// connection, "the Nth call", "the next K calls"), either before the
// operation takes effect or after it (the broker did the work but the answer
// was lost), which is what orphan-mitigation tests need.
//
// Typical use:
//
//	b, srv := osbtest.NewServer(t, osbtest.Config{Username: "u", Password: "p"})
//	b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Async: true, Polls: 2}, osbtest.OpProvision)
//	b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointBind, Status: 500, Times: 1, AfterEffect: true})
//	// ... point the code under test at srv.URL ...
//	if n := b.Count(osbtest.EndpointProvision); n != 1 { t.Fatalf("provisioned %d times", n) }
//	inst, ok := b.Instance("instance-1")
//
// The package must not be imported by non-test code except examples/broker,
// which wraps it as a runnable demo broker.
package osbtest
