package osbclient

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// ErrorKind classifies why an OSB call failed. Callers branch on it (and on
// StatusCode and Code) instead of parsing error strings; the orphan mitigation
// rules depend on it too.
type ErrorKind string

// The kinds of failure the client reports. Every *Error has exactly one.
const (
	// KindRequest: the caller built a request the client refuses to send
	// (missing IDs, an endpoint the configured API version lacks, parameters
	// that do not encode as JSON). Nothing was sent.
	KindRequest ErrorKind = "request"
	// KindConnection: the connection failed (DNS, refused, reset, EOF) and no
	// usable response arrived. Error.RequestSent says whether the request had
	// been written in full before the failure.
	KindConnection ErrorKind = "connection"
	// KindTLS: the TLS handshake failed (unknown authority, wrong host name,
	// plain HTTP on the other end, ...). Nothing reached the broker's handler.
	KindTLS ErrorKind = "tls"
	// KindTimeout: the per-request timeout or the caller's deadline expired
	// before the response was read in full.
	KindTimeout ErrorKind = "timeout"
	// KindCanceled: the caller's context was canceled before the response was
	// read in full.
	KindCanceled ErrorKind = "canceled"
	// KindStatus: the broker answered 4xx or 5xx, with or without an OSB
	// error body. Code, Description, InstanceUsable and UpdateRepeatable
	// carry what the body said, if anything.
	KindStatus ErrorKind = "status"
	// KindUnexpectedStatus: the broker answered a 1xx/2xx/3xx status the
	// spec does not allow for this call (e.g. 204 on provision, any
	// redirect: the client never follows redirects).
	KindUnexpectedStatus ErrorKind = "unexpected-status"
	// KindContentType: a success response carried a body whose Content-Type
	// is set and is not JSON (e.g. text/html from a proxy or login page).
	KindContentType ErrorKind = "content-type"
	// KindMalformedBody: a success response body is not valid JSON of the
	// expected shape, or lacks a field the spec requires.
	KindMalformedBody ErrorKind = "malformed-body"
	// KindBodyTooLarge: a success response body exceeded
	// Config.MaxResponseBytes.
	KindBodyTooLarge ErrorKind = "body-too-large"
)

// Error is the only error type the client's calls return (always as *Error).
// It says which call failed against which broker, how, and carries what the
// broker said, so callers can apply the OSB rules (retry, give up, orphan
// mitigation) without string matching.
//
// Neither Error() nor any field holds a credential: requests carry auth in
// headers only, URLs are shown as paths without userinfo or query, and the
// client's configured secrets are redacted from everything else (broker
// text, IDs, causes) when the Error is built, so the fields are as safe to
// log one by one as the whole message.
type Error struct {
	// Op is the OSB call that failed.
	Op Operation
	// Broker is Config.BrokerName.
	Broker string
	// Method and Path are the HTTP method and escaped URL path (no query, no
	// userinfo) of the request.
	Method, Path string
	// StatusCode is the HTTP status of the response, 0 if none was received.
	StatusCode int
	// Kind classifies the failure.
	Kind ErrorKind
	// Code is the OSB error code from the body ("error"), if any.
	Code string
	// Description is the broker's description of the failure, if any.
	Description string
	// InstanceUsable and UpdateRepeatable are the body's optional flags.
	InstanceUsable, UpdateRepeatable *bool
	// RetryAfter is the response's Retry-After (delta-seconds or HTTP-date),
	// 0 when absent or unparsable.
	RetryAfter time.Duration
	// RequestID is the X-Broker-API-Request-Identity the client sent, empty
	// if no request was sent.
	RequestID string
	// RequestSent reports that the request was written to the connection in
	// full, so the broker may have acted on it even though no complete
	// response arrived. It matters only when StatusCode is 0.
	RequestSent bool
	// Err is the underlying cause, if any.
	Err error
}

// Error renders the failure for logs and status records: broker, call,
// method, path, status, OSB code and description, request identity.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("osb")
	if e.Broker != "" {
		fmt.Fprintf(&b, " broker %q", e.Broker)
	}
	if e.Op != "" {
		fmt.Fprintf(&b, ": %s", e.Op)
	}
	if e.Method != "" || e.Path != "" {
		fmt.Fprintf(&b, " %s %s", e.Method, e.Path)
	}
	b.WriteString(": ")
	status := ""
	if e.StatusCode != 0 {
		status = fmt.Sprintf("HTTP %d", e.StatusCode)
		if t := http.StatusText(e.StatusCode); t != "" {
			status += " " + t
		}
	}
	switch e.Kind {
	case KindStatus:
		b.WriteString(status)
		if e.Code != "" {
			b.WriteString(": " + e.Code)
		}
		if e.Description != "" {
			b.WriteString(": " + e.Description)
		}
	case KindUnexpectedStatus:
		fmt.Fprintf(&b, "unexpected %s (not a valid answer to %s)", status, e.Op)
	case KindMalformedBody:
		fmt.Fprintf(&b, "malformed response body (%s)", status)
	case KindContentType:
		fmt.Fprintf(&b, "response is not JSON (%s)", status)
	case KindBodyTooLarge:
		fmt.Fprintf(&b, "response body too large (%s)", status)
	case KindTimeout:
		b.WriteString("timed out")
	case KindCanceled:
		b.WriteString("canceled")
		if e.RequestSent && e.StatusCode == 0 {
			b.WriteString(" after the request was sent")
		}
	case KindConnection:
		b.WriteString("connection failed")
		if e.RequestSent && e.StatusCode == 0 {
			b.WriteString(" after the request was sent")
		}
	case KindTLS:
		b.WriteString("TLS handshake failed")
	case KindRequest:
		b.WriteString("invalid request")
	default:
		b.WriteString(string(e.Kind))
	}
	if e.Kind != KindStatus && e.Kind != KindMalformedBody && e.Kind != KindContentType &&
		e.Kind != KindBodyTooLarge && e.Kind != KindUnexpectedStatus && status != "" {
		b.WriteString(" after " + status)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// createsOrDeletes reports whether op creates or deletes a resource at the
// broker, i.e. whether orphan mitigation can ever apply to it.
func (op Operation) createsOrDeletes() bool {
	switch op {
	case OpProvision, OpDeprovision, OpBind, OpUnbind:
		return true
	}
	return false
}

// OrphanMitigationRequired reports whether the spec's Orphan Mitigation table
// asks the platform to delete the resource this failed call may have created
// or half-deleted: the instance for Provision/Deprovision, the binding for
// Bind/Unbind. It is never true for other calls (update, fetches, polls,
// catalog). Rows, by response:
//
//   - 200 (even malformed), 408, any other 4xx, 3xx: no.
//   - 201 or 202 whose body is malformed (or not JSON, too large, or cut
//     short): yes for Provision and Bind only.
//   - any other 2xx: yes for all four calls.
//   - 5xx: yes for all four calls.
//   - no response: a timeout is a yes for Provision and Bind. A connection
//     failure or cancellation after the request was written in full
//     (RequestSent) is treated like a timeout, because the broker may have
//     acted on the request; before that, or a TLS failure, it is a no.
//
// A last_operation answer of state "failed" is not an error; callers apply
// that row of the table themselves.
func (e *Error) OrphanMitigationRequired() bool {
	if !e.Op.createsOrDeletes() {
		return false
	}
	createOp := e.Op == OpProvision || e.Op == OpBind
	s := e.StatusCode
	switch {
	case s == 0:
		switch e.Kind {
		case KindTimeout:
			return createOp
		case KindConnection, KindCanceled:
			return createOp && e.RequestSent
		}
		return false
	case s == http.StatusOK:
		return false
	case s == http.StatusCreated || s == http.StatusAccepted:
		return createOp
	case s >= 200 && s < 300:
		return true
	case s >= 500 && s < 600:
		return true
	}
	return false
}

// asError finds the *Error in err's chain.
func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func statusWithCode(err error, status int, code string) bool {
	e, ok := asError(err)
	return ok && e.Kind == KindStatus && e.StatusCode == status && strings.EqualFold(e.Code, code)
}

func hasStatus(err error, status int) bool {
	e, ok := asError(err)
	return ok && e.Kind == KindStatus && e.StatusCode == status
}

// IsAsyncRequired reports a 422 AsyncRequired answer: repeat the call with
// accepts_incomplete=true.
func IsAsyncRequired(err error) bool {
	return statusWithCode(err, http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired)
}

// IsConcurrencyError reports a 422 ConcurrencyError answer: another operation
// on the resource is in progress; retry later, no orphan mitigation.
func IsConcurrencyError(err error) bool {
	return statusWithCode(err, http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError)
}

// IsRequiresApp reports a 422 RequiresApp answer to a bind: the broker wants
// an app_guid.
func IsRequiresApp(err error) bool {
	return statusWithCode(err, http.StatusUnprocessableEntity, osbwire.ErrorCodeRequiresApp)
}

// IsMaintenanceInfoConflict reports a 422 MaintenanceInfoConflict answer: the
// platform's maintenance_info is stale; refetch the catalog.
func IsMaintenanceInfoConflict(err error) bool {
	return statusWithCode(err, http.StatusUnprocessableEntity, osbwire.ErrorCodeMaintenanceInfoConflict)
}

// IsConflict reports a 409 answer (the resource exists with other attributes),
// whatever the body says. A create that gets it has failed and is not retried.
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsGone reports a 410 answer returned as an error. Deprovision, Unbind and
// the last_operation calls report 410 in their results instead (Gone: true).
func IsGone(err error) bool { return hasStatus(err, http.StatusGone) }

// IsNotFound reports a 404 answer, e.g. fetching an instance or binding that
// does not exist (or is still being created).
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsTimeout reports that the call timed out before a complete response
// arrived (per-request timeout or the caller's deadline).
func IsTimeout(err error) bool {
	e, ok := asError(err)
	return ok && e.Kind == KindTimeout
}

// redact replaces every secret of at least minRedactLen characters in s.
func redact(s string, secrets []string) string {
	if s == "" {
		return s
	}
	for _, sec := range secrets {
		if len(sec) >= minRedactLen && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}

// minRedactLen keeps one- to three-character "secrets" from mangling every
// message; such values are not secrets in any useful sense.
const minRedactLen = 4

// redactedError is a cause whose message had a secret removed; it still
// unwraps to the original for errors.Is/As.
type redactedError struct {
	msg string
	err error
}

func (r *redactedError) Error() string { return r.msg }
func (r *redactedError) Unwrap() error { return r.err }

// redactErr returns err, or a redactedError if its message holds a secret.
func redactErr(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := redact(msg, secrets); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}
