package osbclient

import (
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"  ", 0},
		{"0", 0},
		{"-1", 0},
		{"30", 30 * time.Second},
		{" 30 ", 30 * time.Second},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999", time.Duration(math.MaxInt64)},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(2 * time.Hour).Format(time.RFC850), 2 * time.Hour},
		{now.Add(45 * time.Second).Format(time.ANSIC), 45 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestErrorString(t *testing.T) {
	f := false
	tests := []struct {
		e    *Error
		want string
	}{
		{&Error{Op: OpProvision, Broker: "b1", Method: "PUT", Path: "/v2/service_instances/i", StatusCode: 422,
			Kind: KindStatus, Code: "AsyncRequired", Description: "needs async", InstanceUsable: &f,
			RetryAfter: 5 * time.Second, RequestID: "r-1"},
			`osb broker "b1": Provision PUT /v2/service_instances/i: HTTP 422 Unprocessable Entity: AsyncRequired: needs async (retry after 5s) [request r-1]`},
		{&Error{Op: OpGetCatalog, Broker: "b1", Method: "GET", Path: "/v2/catalog", StatusCode: 204, Kind: KindUnexpectedStatus},
			`osb broker "b1": GetCatalog GET /v2/catalog: unexpected HTTP 204 No Content (not a valid answer to GetCatalog)`},
		{&Error{Op: OpBind, Method: "PUT", Path: "/p", Kind: KindTimeout, Err: errors.New("deadline")},
			`osb: Bind PUT /p: timed out: deadline`},
		{&Error{Op: OpBind, Method: "PUT", Path: "/p", StatusCode: 201, Kind: KindConnection, Err: errors.New("unexpected EOF")},
			`osb: Bind PUT /p: connection failed after HTTP 201 Created: unexpected EOF`},
		{&Error{StatusCode: 799, Kind: KindStatus}, `osb: HTTP 799`},
		{&Error{Kind: "weird"}, `osb: weird`},
		{&Error{Kind: KindCanceled}, `osb: canceled`},
		{&Error{Kind: KindCanceled, RequestSent: true}, `osb: canceled after the request was sent`},
		{&Error{Kind: KindConnection, RequestSent: true, Err: errors.New("EOF")}, `osb: connection failed after the request was sent: EOF`},
		{&Error{Kind: KindBodyTooLarge, StatusCode: 200}, `osb: response body too large (HTTP 200 OK)`},
		{&Error{Kind: KindRequest, Err: redactErr(errors.New("pw-secret here"), []string{"pw-secret", "abc", ""})},
			`osb: invalid request: [REDACTED] here`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
	cause := errors.New("cause")
	if !errors.Is(&Error{Err: cause}, cause) {
		t.Error("Unwrap")
	}
	secretCause := errors.New("has pw-secret")
	red := redactErr(secretCause, []string{"pw-secret"})
	if red.Error() != "has [REDACTED]" || !errors.Is(red, secretCause) {
		t.Errorf("redactErr: %v", red)
	}
	if redactErr(nil, nil) != nil || redactErr(cause, []string{"pw-secret"}) != cause {
		t.Error("redactErr passes clean errors through")
	}
}

func TestSnippetAndTruncate(t *testing.T) {
	if got := snippet([]byte("a\r\n\tb\x01c  d")); got != "a bc d" {
		t.Errorf("snippet = %q", got)
	}
	if got := truncate("héllo", 2); got != "hé…" {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("héllo", 5); got != "héllo" {
		t.Errorf("truncate = %q", got)
	}
	if got := redact("abc abcd", []string{"abc", "abcd"}); got != "abc [REDACTED]" {
		t.Errorf("redact = %q (short secrets are left alone)", got)
	}
	if !strings.HasSuffix(truncate(strings.Repeat("x", 10), 3), "…") {
		t.Error("ellipsis")
	}
}
