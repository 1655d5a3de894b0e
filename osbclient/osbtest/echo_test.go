package osbtest

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// echoForms are the four forms an echoing broker quotes a value in.
func echoForms(v string) map[string]string {
	return map[string]string{
		"raw": v, "JSON-escaped": jsonEscape(v), "URL-encoded": url.QueryEscape(v),
		"base64": base64.StdEncoding.EncodeToString([]byte(v)),
	}
}

// TestEchoQuotesWhatItReceived: with Config.Echo, error descriptions,
// last_operation descriptions (what the polled operation's request
// carried) and dashboard URLs quote the auth, the parameters and context
// received, and the instance's bindings' credentials, in four forms;
// without it nothing is quoted.
func TestEchoQuotesWhatItReceived(t *testing.T) {
	const param = `param "secret"/x+y`
	const pass = "broker-pass-&echo"
	h := newHarness(t, Config{Username: "u", Password: pass, Echo: true})
	h.b.SetBehavior(PlanDBAsync, Behavior{Async: true, Fail: true, FailDescription: "async failed"}, OpProvision)

	h.mustProvision("i-1", PlanDBSmall)
	bound := h.mustBind("i-1", "b-1", PlanDBSmall)
	cred, _ := bound.JSON()["credentials"].(map[string]any)["password"].(string)
	if cred == "" {
		t.Fatalf("bind answer without a password: %s", bound.Body)
	}

	// An error answer about the instance: a refused update.
	upd := h.do(http.MethodPatch, instPath("i-1"), map[string]any{"service_id": ServiceDB, "plan_id": "no-such-plan",
		"parameters": map[string]any{"p": param}, "context": map[string]any{"platform": "kubernetes", "namespace": "ns-echo"}})
	if upd.Status != http.StatusBadRequest {
		t.Fatalf("update: %d %s", upd.Status, upd.Body)
	}
	desc := upd.Str("description")
	for _, v := range []string{param, pass, "u:" + pass, "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+pass)), cred, "ns-echo"} {
		for form, f := range echoForms(v) {
			if !strings.Contains(desc, f) {
				t.Errorf("error description lacks %s form of %q (%q):\n%s", form, v, f, desc)
			}
		}
	}
	if c, _ := h.b.LastCall(EndpointUpdate); strings.Contains(c.Description, pass) || !strings.Contains(desc, c.Description) {
		t.Errorf("the call log holds the echo: %q", c.Description)
	}

	// A failed async provision's last_operation description.
	if r := h.provision("i-2", PlanDBAsync, map[string]any{"p": param}, "accepts_incomplete", "true"); r.Status != http.StatusAccepted {
		t.Fatalf("async provision: %d %s", r.Status, r.Body)
	}
	lo := h.poll("i-2", "operation", h.b.Instances()["i-2"].Operation)
	if lo.Str("state") != "failed" || !strings.Contains(lo.Str("description"), "async failed") {
		t.Fatalf("poll: %s", lo.Body)
	}
	for form, f := range echoForms(param) {
		if !strings.Contains(lo.Str("description"), f) {
			t.Errorf("last_operation description lacks the %s form %q: %s", form, f, lo.Body)
		}
	}

	// dashboard_url: userinfo and query.
	pr := h.provision("i-3", PlanDBSmall, map[string]any{"p": param})
	u, err := url.Parse(pr.Str("dashboard_url"))
	if pr.Status != http.StatusCreated || err != nil || u.User == nil {
		t.Fatalf("provision: %d %s (%v)", pr.Status, pr.Body, err)
	}
	if pw, _ := u.User.Password(); !strings.Contains(pw, param) || !strings.Contains(pw, pass) {
		t.Errorf("dashboard userinfo %q lacks the values", pw)
	}
	q := u.Query().Encode()
	for form, f := range map[string]string{"raw": param, "JSON-escaped": jsonEscape(param), "base64": base64.StdEncoding.EncodeToString([]byte(param))} {
		if !strings.Contains(q, url.QueryEscape(f)) {
			t.Errorf("dashboard query lacks the %s form: %s", form, u.RawQuery)
		}
	}

	// Off by default.
	quiet := newHarness(t, Config{Username: "u", Password: pass})
	quiet.mustProvision("i-1", PlanDBSmall)
	r := quiet.do(http.MethodPatch, instPath("i-1"), map[string]any{"service_id": ServiceDB, "plan_id": "no-such-plan",
		"parameters": map[string]any{"p": param}})
	if r.Status != http.StatusBadRequest || strings.Contains(string(r.Body), "received") || strings.Contains(string(r.Body), "pass") {
		t.Errorf("a broker without Echo quoted the request: %s", r.Body)
	}
}
