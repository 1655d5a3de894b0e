// Package osbclient is a client for the Open Service Broker API 2.17 (2.13 to
// 2.17 selectable). It knows OSB only: no Git, no manifests, no reconciling.
// The reconciler decides what to call; this package makes the call right
// and reports exactly what happened.
//
// # Requests
//
// Every request carries X-Broker-API-Version, a fresh
// X-Broker-API-Request-Identity (a UUID, also reported on errors and to
// Config.OnRequest), User-Agent and Accept: application/json; bodies carry
// Content-Type: application/json. When a request's Identity is set it is sent
// as X-Broker-API-Originating-Identity in the kubernetes profile
// ("kubernetes " + base64(JSON)); a request whose context names another
// platform is refused, since the spec wants both to agree.
// accepts_incomplete, service_id, plan_id and operation travel in the query
// string; instance and binding IDs are path-escaped. Required fields are
// checked before anything is sent (KindRequest): instance and binding IDs,
// service_id and plan_id on provision, bind, deprovision and unbind,
// organization_guid and space_guid on provision (the client fills in
// nothing). Fetching instances or bindings and polling bindings need API
// 2.14 or later.
//
// Authentication is basic (Config.Username/Password or userinfo in the
// URL) or bearer (Config.BearerToken). Credentials are only ever sent in the
// Authorization header; they never appear in an error, a RequestInfo or a
// URL the package shows. As defence in depth, the configured password,
// token and encoded basic credentials (4 characters or longer) are redacted
// from broker-supplied text and IDs when an Error is built. Success bodies
// (which may hold binding credentials) are not quoted in errors; the only
// success-body value an error shows is an invalid last_operation state,
// truncated.
//
// # Responses
//
// Status codes are classified first, the body second, because some brokers
// send error bodies without an OSB error code:
//
//   - Provision, Bind: 200, 201, 202 succeed (202 = Async).
//   - UpdateInstance: 200, 201, 202 succeed.
//   - Deprovision, Unbind: 200, 201, 202 succeed; 410 succeeds with Gone.
//   - LastOperation, BindingLastOperation: 200 succeeds; 410 is returned as
//     LastOperationResponse{Gone: true} with no error, because what it means
//     (deprovision done, or provision failed) depends on the operation.
//   - GetCatalog, GetInstance, GetBinding: 200 succeeds.
//   - 4xx and 5xx are *Error of KindStatus with the body's code and
//     description if it can be read; any other status is
//     KindUnexpectedStatus. Redirects are never followed.
//
// 201 on the mutating calls is accepted because the spec's orphan mitigation
// table reads 200, 201 and 202 as success for every request and some brokers
// answer a repeated PUT with 201. 202 is accepted even without
// accepts_incomplete: the broker is working asynchronously either way and
// polling is the only safe follow-up.
//
// Success bodies must be JSON: a body whose Content-Type is set to anything
// but application/json or a +json type (e.g. text/html from a proxy) is
// KindContentType; a body without a Content-Type is accepted if it parses,
// as the spec allows. Unknown fields are ignored. An empty success body
// reads as {} where every response field is optional (provision, update,
// deprovision, bind, unbind, fetches); the catalog must have a "services"
// array and last_operation a valid "state" (matched case-insensitively).
// Bodies above Config.MaxResponseBytes are KindBodyTooLarge. Retry-After
// (delta-seconds or HTTP-date) is read on errors and last_operation answers.
//
// # Errors and orphan mitigation
//
// Every failure is a *Error; see ErrorKind for the kinds and the Is*
// predicates for the cases the reconciler branches on.
// Error.OrphanMitigationRequired implements the spec's orphan mitigation
// table by Op. Where the table is silent the package decides: a connection
// failure or cancellation after the request was written in full is treated
// like a timeout (the broker may have acted on it: mitigation for provision
// and bind), a failure before that is not; a 3xx needs no mitigation.
//
// # Transport
//
// Without Config.HTTPClient the client builds its own transport: TLS 1.2 or
// later; Config.CABundle, when set, is the set of trusted roots (as Service
// Catalog's caBundle was), else the system roots; proxies from the
// environment; keep-alive with up to 16 idle connections per broker.
// Config.Timeout bounds each request including its body.
package osbclient
