package osbtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// echoDashboardBase is the dashboard URL an echoing broker answers with when
// its Behavior sets none.
const echoDashboardBase = "https://dashboard.osbtest.invalid/instances/"

// echo makes res quote, in every form a careless broker might, what this
// request (or the operation it polls) carried and the credentials of the
// instance's bindings (Config.Echo).
// The call log and Logf keep the description without the echo.
func (b *Broker) echo(rt route, r *http.Request, body []byte, res *result) {
	if res == nil || len(res.body) == 0 {
		return
	}
	vals := b.echoValues(rt, r, body)
	if len(vals) == 0 {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(res.body))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil || obj == nil {
		return // not a JSON object (an injected raw body): left alone
	}
	switch {
	case res.status >= 400,
		rt.endpoint == EndpointLastOperation || rt.endpoint == EndpointBindingLastOperation:
		d, _ := obj["description"].(string)
		obj["description"] = strings.TrimSpace(d + " " + echoText(vals))
	case rt.endpoint == EndpointProvision || rt.endpoint == EndpointUpdate || rt.endpoint == EndpointGetInstance:
		d, _ := obj["dashboard_url"].(string)
		obj["dashboard_url"] = echoURL(d, rt.instanceID, vals)
	default:
		return
	}
	if raw, err := json.Marshal(obj); err == nil {
		res.body = raw
	}
}

// echoValues collects the values an echoing broker quotes: the
// Authorization header (whole, and its password or token), the string
// leaves of the body's parameters and context — this request's, or for a
// request without a body those of the latest request with one about the
// same instance (the operation a poll follows) — and the credentials of
// the instance's bindings. Sorted, without duplicates.
func (b *Broker) echoValues(rt route, r *http.Request, body []byte) []string {
	var vals []string
	if a := r.Header.Get("Authorization"); a != "" {
		vals = append(vals, a)
		if u, p, ok := r.BasicAuth(); ok {
			vals = append(vals, p, u+":"+p)
		} else if _, cred, ok := strings.Cut(a, " "); ok {
			vals = append(vals, strings.TrimSpace(cred))
		}
	}
	var req struct {
		Parameters any `json:"parameters"`
		Context    any `json:"context"`
	}
	var sent []string
	if len(body) > 0 && json.Unmarshal(body, &req) == nil {
		sent = appendLeaves(appendLeaves(nil, req.Parameters), req.Context)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if rt.instanceID != "" {
		if len(body) > 0 {
			b.echoes[rt.instanceID] = sent
		} else {
			sent = b.echoes[rt.instanceID]
		}
		for _, bn := range b.bindings {
			if bn.instanceID == rt.instanceID {
				vals = appendLeaves(vals, map[string]any(bn.creds))
			}
		}
	}
	vals = append(vals, sent...)
	slices.Sort(vals)
	return slices.Compact(vals)
}

// appendLeaves appends the non-empty string leaves of a JSON-like value.
func appendLeaves(vals []string, v any) []string {
	switch t := v.(type) {
	case string:
		if t != "" {
			vals = append(vals, t)
		}
	case map[string]any:
		for _, e := range t {
			vals = appendLeaves(vals, e)
		}
	case []any:
		for _, e := range t {
			vals = appendLeaves(vals, e)
		}
	}
	return vals
}

// echoText quotes each value raw, JSON-escaped, URL-encoded and in base64.
func echoText(vals []string) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("raw=%s json=%s url=%s base64=%s", v, jsonEscape(v), url.QueryEscape(v),
			base64.StdEncoding.EncodeToString([]byte(v)))
	}
	return "(received: " + strings.Join(parts, "; ") + ")"
}

// echoURL is the dashboard URL base (or a default one) carrying the values
// in its userinfo and its query (raw, JSON-escaped and base64 values, which
// the URL encodes).
func echoURL(base, instanceID string, vals []string) string {
	u, err := url.Parse(base)
	if base == "" || err != nil {
		u, _ = url.Parse(echoDashboardBase + url.PathEscape(instanceID))
	}
	u.User = url.UserPassword("echo", strings.Join(vals, " "))
	q := u.Query()
	for i, v := range vals {
		q.Set(fmt.Sprintf("v%d", i), v)
		q.Set(fmt.Sprintf("v%d_json", i), jsonEscape(v))
		q.Set(fmt.Sprintf("v%d_base64", i), base64.StdEncoding.EncodeToString([]byte(v)))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// jsonEscape is v as inside a JSON string.
func jsonEscape(v string) string {
	raw, _ := json.Marshal(v)
	return string(raw[1 : len(raw)-1])
}
