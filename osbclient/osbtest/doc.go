// Package osbtest is an in-memory, strict, programmable Open Service Broker
// API 2.17 broker for tests.
//
// A *Broker is an http.Handler that keeps service instances and bindings in
// memory and answers every OSB endpoint the way a conformant — and stricter
// than usual — broker does. Every refusal is an OSB error body
// ({"error": code?, "description": ...}) whose description says exactly what
// was wrong, and every request, refused or not, lands in a call log the test
// can inspect (Calls, Count, MutatingCalls, LastCall).
//
// What the broker does is programmable per plan and operation (SetBehavior:
// synchronous or asynchronous, how many polls an operation stays in
// progress, failure, Retry-After, credentials, dashboard URL), and faults can
// be injected per endpoint (AddFault: status and body, delay, malformed body,
// dropped connection, "the Nth call", "the next K calls"), either before the
// operation takes effect or after it (the broker did the work but the answer
// was lost), which is what orphan-mitigation tests need.
//
// Typical use:
//
//	b, srv := osbtest.NewServer(t, osbtest.Config{Username: "u", Password: "p"})
//	b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Async: true, Polls: 2}, osbtest.OpProvision)
//	b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointBind, Status: 500, Times: 1, AfterEffect: true})
//	// ... point the code under test at srv.URL ...
//	if n := b.Count(osbtest.EndpointProvision); n != 1 {
//		t.Fatalf("provisioned %d times", n)
//	}
//	inst, ok := b.Instance("instance-1")
//
// # Rules enforced
//
// On every request, in this order: a known route and method (404 / 405 with
// Allow); authentication when configured (basic and/or bearer; 401 with
// WWW-Authenticate); X-Broker-API-Version present, MAJOR.MINOR, major 2 and
// at least Config.MinAPIVersion (412 otherwise — also when missing, although
// the spec would allow 400); X-Broker-API-Request-Identity when
// Config.RequireRequestIdentity (400), echoed back on every answer;
// X-Broker-API-Originating-Identity, when present, exactly
// "<platform> <standard base64 of a JSON object>", with a non-empty
// "username" for the kubernetes platform, and equal to context.platform when
// the body has a context (400); required on PUT/PATCH/DELETE when
// Config.RequireOriginatingIdentity.
//
// On bodies (PUT, PATCH): Content-Type application/json (400 when missing or
// different, as the spec says, not 415); a non-empty, valid JSON object of the
// right field types (400; unknown fields are ignored as the spec requires);
// required fields (provision: service_id, plan_id, organization_guid,
// space_guid; update: service_id; bind: service_id, plan_id; 400 naming them
// all); context.platform when context is present (400); service and plan in
// the catalog and the plan belonging to the service (400); parameters valid
// against the plan's JSON schema (400 naming each violation, values
// redacted; Config.IgnoreParameterSchemas turns this off);
// maintenance_info.version equal to the plan's (422 MaintenanceInfoConflict,
// also when the plan declares none). accepts_incomplete must be "true" or
// "false" when present (400); an asynchronous Behavior without it is 422
// AsyncRequired.
//
// Provision: 201 (sync) or 202 + operation (async; dashboard_url in the
// first answer); an identical PUT is 200 once provisioned and 202 with the
// same operation while in progress (the spec's MUST); different attributes
// are 409 naming the differing fields (keys only, never parameter values);
// an instance whose last operation failed is 409 until deprovisioned; a PUT
// during another operation is 422 ConcurrencyError.
//
// Update: 404 for an unknown instance; service_id must be the instance's;
// previous_values, when given, must match (400); a plan change needs the
// current plan to be plan_updateable (plan's value, else the service's; 400);
// any operation in progress on the instance or one of its bindings is 422
// ConcurrencyError, except that an identical re-sent PATCH during its own
// update is 202 with the same operation; parameters are merged shallowly (a
// null value removes a key); an update without parameters leaves them; a
// failed asynchronous update leaves the instance unchanged and usable.
//
// Deprovision: service_id and plan_id query parameters are required (400,
// checked before existence) and must be the instance's (400); 410 when the
// instance does not exist; refused with 422 (no error code, the description
// lists the bindings) while any binding of the instance exists, since the
// spec leaves the broker's answer open; a re-sent DELETE during its own
// deprovision is 202 with the same operation; during an update 422
// ConcurrencyError; during a provision it is accepted and aborts the
// provision (the spec's MUST), whose operation then polls as failed.
//
// Fetch instance: only for services with instances_retrievable (400); 404
// when unknown, still provisioning or failed to provision; 422
// ConcurrencyError while updating. Fetch binding likewise with
// bindings_retrievable (404 while binding or failed to bind). Optional
// service_id/plan_id query parameters must match (400).
//
// last_operation (instance and binding): 410 for a resource that does not
// exist (never existed or deleted; after a successful asynchronous delete the
// terminal poll answers "succeeded", later ones 410); 400 when no
// asynchronous operation was ever issued for it; the operation parameter is
// required when the broker issued one, forbidden when it issued none
// (Behavior.OmitOperation), and must match the latest operation (400);
// service_id and plan_id, when given, must match — and for an update poll
// plan_id must be the plan *before* the update (400), the Kubernetes Service
// Catalog bug osbgit must not repeat. An operation answers "in progress"
// (with Retry-After when programmed) Behavior.Polls times, then its terminal
// state, which it keeps answering; refused polls do not advance it.
//
// Bind: 404 for an unknown instance; service_id and plan_id must be the
// instance's (400); the plan must be bindable (plan's value, else the
// service's; 400); an operation in progress on the instance is 422
// ConcurrencyError, an instance that is not ready 422; predecessor_binding_id
// needs a binding_rotatable plan and an existing ready binding of the same
// instance (400); identical re-binds are 200 with the same credentials (202
// with the same operation while in progress), different ones 409 (also for a
// binding ID used by another instance); Behavior.RequiresApp gives 422
// RequiresApp. A 202 carries no credentials; they are fetched after the
// operation succeeded.
//
// Unbind: service_id and plan_id query parameters required and matching
// (the plan the binding was created with or the instance's current plan;
// 400); 410 when the binding does not exist; during its own bind it aborts
// the bind.
//
// A failed asynchronous provision or bind leaves the resource in StateFailed
// (an orphan the platform must delete); a synchronous Behavior.Fail answers
// 500 and changes nothing.
//
// Not enforced: allow_context_updates (context-only updates are accepted)
// and the spec's suggestion that bindings may serialize on their instance
// (bindings of one instance may be created concurrently).
//
// The package must not be imported by non-test code except examples/broker,
// which wraps it as a runnable demo broker.
package osbtest
