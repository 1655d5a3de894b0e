package osbclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// TestStatusMatrix sends every call against every status class and checks
// success/error classification, the error fields and orphan mitigation.
func TestStatusMatrix(t *testing.T) {
	statuses := []int{200, 201, 202, 204, 206, 302, 400, 401, 404, 408, 409, 410, 412, 422, 500, 502, 503}
	const errBody = `{"error":"SomeCode","description":"it broke","instance_usable":false,"update_repeatable":true}`
	for _, cc := range calls() {
		for _, status := range statuses {
			t.Run(fmt.Sprintf("%s/%d", cc.op, status), func(t *testing.T) {
				body := okBody
				if status >= 400 {
					body = errBody
				}
				b := newBroker(t, reply(status, body, "Location", "/v2/catalog"))
				res, err := cc.do(context.Background(), newClient(t, b.URL))
				if n := len(b.requests()); n != 1 {
					t.Fatalf("broker saw %d requests (redirect followed?)", n)
				}

				success := status == 200 ||
					(cc.mutating && (status == 201 || status == 202)) ||
					(status == 410 && (cc.deletes || cc.lastOp))
				if success {
					if err != nil {
						t.Fatalf("want success, got %v", err)
					}
					checkGone(t, res, status == 410)
					return
				}
				if err == nil {
					t.Fatalf("want error, got %+v", res)
				}
				e := asOSB(t, err)
				if e.Op != cc.op || e.Method != cc.method || e.Path != cc.path || e.StatusCode != status ||
					e.Broker != "test-broker" || e.RequestID == "" {
					t.Errorf("error fields %+v", e)
				}
				wantKind := osbclient.KindUnexpectedStatus
				if status >= 400 {
					wantKind = osbclient.KindStatus
				}
				if e.Kind != wantKind {
					t.Errorf("kind %s, want %s", e.Kind, wantKind)
				}
				if wantKind == osbclient.KindStatus {
					if e.Code != "SomeCode" || e.Description != "it broke" ||
						e.InstanceUsable == nil || *e.InstanceUsable || e.UpdateRepeatable == nil || !*e.UpdateRepeatable {
						t.Errorf("body fields: %+v", e)
					}
					msg := err.Error()
					for _, want := range []string{`"test-broker"`, string(cc.op), cc.method, cc.path, fmt.Sprint(status), "SomeCode", "it broke", e.RequestID} {
						if !strings.Contains(msg, want) {
							t.Errorf("Error() %q lacks %q", msg, want)
						}
					}
				}
				// Only 409 is a conflict, 410 gone, 404 not found; never by body alone.
				if osbclient.IsConflict(err) != (status == 409) || osbclient.IsGone(err) != (status == 410) ||
					osbclient.IsNotFound(err) != (status == 404) || osbclient.IsTimeout(err) ||
					osbclient.IsAsyncRequired(err) || osbclient.IsConcurrencyError(err) {
					t.Errorf("predicates wrong for %d", status)
				}
				wantOM := omOp(cc.op) && ((status >= 200 && status < 300) || status >= 500)
				if got := e.OrphanMitigationRequired(); got != wantOM {
					t.Errorf("OrphanMitigationRequired = %v, want %v", got, wantOM)
				}
			})
		}
	}
}

func checkGone(t *testing.T, res any, want bool) {
	t.Helper()
	var got bool
	switch r := res.(type) {
	case *osbclient.DeprovisionResult:
		got = r.Gone
	case *osbclient.UnbindResult:
		got = r.Gone
	case *osbwire.LastOperationResponse:
		got = r.Gone
	}
	if got != want {
		t.Errorf("Gone = %v, want %v (%+v)", got, want, res)
	}
}

// Test422Codes checks the code predicates on each call that can answer 422.
func Test422Codes(t *testing.T) {
	preds := map[string]func(error) bool{
		"AsyncRequired":           osbclient.IsAsyncRequired,
		"ConcurrencyError":        osbclient.IsConcurrencyError,
		"RequiresApp":             osbclient.IsRequiresApp,
		"MaintenanceInfoConflict": osbclient.IsMaintenanceInfoConflict,
	}
	codes := []string{"AsyncRequired", "ConcurrencyError", "RequiresApp", "MaintenanceInfoConflict", "asyncrequired", "", "Other"}
	for _, cc := range calls() {
		if !cc.mutating && cc.op != osbclient.OpGetInstance {
			continue
		}
		for _, code := range codes {
			t.Run(string(cc.op)+"/"+code, func(t *testing.T) {
				b := newBroker(t, reply(422, fmt.Sprintf(`{"error":%q,"description":"d"}`, code)))
				_, err := cc.do(context.Background(), newClient(t, b.URL))
				e := asOSB(t, err)
				if e.Kind != osbclient.KindStatus || e.StatusCode != 422 || e.Code != code {
					t.Fatalf("error %+v", e)
				}
				for name, pred := range preds {
					if want := strings.EqualFold(name, code); pred(err) != want {
						t.Errorf("Is%s = %v, want %v", name, !want, want)
					}
				}
				if e.OrphanMitigationRequired() {
					t.Error("orphan mitigation after 422")
				}
			})
		}
	}
	// A code on another status does not count: status first.
	b := newBroker(t, reply(400, `{"error":"AsyncRequired"}`))
	_, err := calls()[1].do(context.Background(), newClient(t, b.URL))
	if osbclient.IsAsyncRequired(err) {
		t.Error("IsAsyncRequired on a 400")
	}
	// Predicates see through wrapping and reject other errors.
	wrapped := fmt.Errorf("pass: %w", &osbclient.Error{Kind: osbclient.KindStatus, StatusCode: 422, Code: "ConcurrencyError"})
	if !osbclient.IsConcurrencyError(wrapped) || osbclient.IsConcurrencyError(errors.New("x")) || osbclient.IsTimeout(nil) {
		t.Error("predicates and wrapping")
	}
}

func TestErrorBodyVariants(t *testing.T) {
	tests := []struct {
		name     string
		h        http.HandlerFunc
		code     string
		desc     string
		maxBytes int64
	}{
		{"no body", reply(500, ""), "", "", 0},
		{"message field", reply(400, `{"message":"bad thing"}`), "", "bad thing", 0},
		{"description wins over message", reply(400, `{"description":"d","message":"m"}`), "", "d", 0},
		{"ill-typed error field", reply(400, `{"error":{"x":1},"description":"still here","instance_usable":"yes"}`), "", "still here", 0},
		{"text/plain", reply(502, "Bad gateway:\n\tupstream\x00 reset ", "Content-Type", "text/plain; charset=utf-8"), "", "Bad gateway: upstream reset", 0},
		{"long text/plain", reply(503, strings.Repeat("x", 1000), "Content-Type", "text/plain"), "", strings.Repeat("x", 256) + "…", 0},
		{"html ignored", reply(502, "<html><body>Bad gateway</body></html>", "Content-Type", "text/html"), "", "", 0},
		{"json without content type", reply(409, `{"error":"Exists","description":"other attrs"}`, "Content-Type", ""), "Exists", "other attrs", 0},
		{"text without content type", reply(500, `oops`, "Content-Type", ""), "", "oops", 0},
		{"html without content type", reply(500, `<html>x</html>`, "Content-Type", ""), "", "", 0},
		{"json with malformed params", reply(400, `{"error":"E"}`, "Content-Type", "application/json; charset"), "E", "", 0},
		{"problem+json", reply(400, `{"error":"E","description":"p"}`, "Content-Type", "application/problem+json"), "E", "p", 0},
		{"not json at all", reply(400, `{"error":`), "", "", 0},
		{"too large", reply(500, `{"error":"E","description":"`+strings.Repeat("x", 200)+`"}`), "", "", 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, tt.h)
			c := newClient(t, b.URL, func(c *osbclient.Config) { c.MaxResponseBytes = tt.maxBytes })
			_, err := c.GetCatalog(context.Background())
			e := asOSB(t, err)
			if e.Kind != osbclient.KindStatus || e.Code != tt.code || e.Description != tt.desc {
				t.Errorf("got kind %s code %q desc %q, want code %q desc %q", e.Kind, e.Code, e.Description, tt.code, tt.desc)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name     string
		status   int
		value    string
		min, max time.Duration
	}{
		{"503 seconds", 503, "120", 120 * time.Second, 120 * time.Second},
		{"503 http-date", 503, date, 85 * time.Second, 90 * time.Second},
		{"422 concurrency seconds", 422, "5", 5 * time.Second, 5 * time.Second},
		{"429 seconds", 429, "1", time.Second, time.Second},
		{"503 garbage", 503, "soon", 0, 0},
		{"503 negative", 503, "-3", 0, 0},
		{"503 past date", 503, "Mon, 02 Jan 2006 15:04:05 GMT", 0, 0},
		{"503 absent", 503, "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, reply(tt.status, `{"error":"ConcurrencyError"}`, "Retry-After", tt.value))
			_, err := calls()[1].do(context.Background(), newClient(t, b.URL))
			e := asOSB(t, err)
			if e.RetryAfter < tt.min || e.RetryAfter > tt.max {
				t.Errorf("RetryAfter %s, want [%s, %s]", e.RetryAfter, tt.min, tt.max)
			}
			if tt.min > 0 && !strings.Contains(err.Error(), "retry after") {
				t.Errorf("Error() %q does not mention retry after", err)
			}
		})
	}
	t.Run("last operation http-date", func(t *testing.T) {
		for _, i := range []int{5, 9} {
			b := newBroker(t, reply(200, `{"state":"in progress"}`, "Retry-After", date))
			res, err := calls()[i].do(context.Background(), newClient(t, b.URL))
			if err != nil {
				t.Fatal(err)
			}
			if ra := res.(*osbwire.LastOperationResponse).RetryAfter; ra < 85*time.Second || ra > 90*time.Second {
				t.Errorf("RetryAfter %s", ra)
			}
		}
	})
}

func TestMalformedBodies(t *testing.T) {
	for _, cc := range calls() {
		for _, status := range []int{200, 201, 202} {
			if status != 200 && !cc.mutating {
				continue
			}
			t.Run(fmt.Sprintf("%s/%d", cc.op, status), func(t *testing.T) {
				b := newBroker(t, reply(status, `{"services": [`))
				_, err := cc.do(context.Background(), newClient(t, b.URL))
				e := asOSB(t, err)
				if e.Kind != osbclient.KindMalformedBody || e.StatusCode != status {
					t.Fatalf("error %+v", e)
				}
				if !strings.Contains(err.Error(), "malformed response body") {
					t.Errorf("Error() = %q", err)
				}
				// 200 malformed: never; 201/202 malformed: provision and bind.
				want := status != 200 && createOp(cc.op)
				if got := e.OrphanMitigationRequired(); got != want {
					t.Errorf("OrphanMitigationRequired = %v, want %v", got, want)
				}
			})
		}
	}
}

func TestMalformedShapes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call int // index into calls()
		body string
		want string
	}{
		{"catalog without services", 0, `{"service":[]}`, `no "services" array`},
		{"catalog null services", 0, `{"services":null}`, `no "services" array`},
		{"catalog services not array", 0, `{"services":{}}`, "cannot unmarshal"},
		{"catalog empty body", 0, ``, "empty body"},
		{"catalog json array", 0, `[]`, "cannot unmarshal"},
		{"last op no state", 5, `{"description":"x"}`, `state ""`},
		{"last op bad state", 5, `{"state":"done"}`, `state "done"`},
		{"last op empty body", 5, "  \n", "empty body"},
		{"binding last op bad state", 9, `{"state":"pending"}`, `state "pending"`},
		{"provision operation not string", 1, `{"operation":5}`, "cannot unmarshal"},
		{"bind credentials not object", 6, `{"credentials":"secret-string"}`, "cannot unmarshal"},
		{"get instance parameters not object", 4, `{"parameters":[1]}`, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, reply(200, tt.body))
			_, err := calls()[tt.call].do(ctx, newClient(t, b.URL))
			e := asOSB(t, err)
			if e.Kind != osbclient.KindMalformedBody || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %s: %v, want malformed %q", e.Kind, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret-string") {
				t.Errorf("Error() shows body content: %v", err)
			}
		})
	}
}

func TestContentType(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		call    int
		status  int
		ct      string
		body    string
		wantErr bool
	}{
		{"html on catalog", 0, 200, "text/html; charset=utf-8", "<html>login</html>", true},
		{"html that parses as json", 0, 200, "text/html", `{"services":[]}`, true},
		{"text/plain json", 0, 200, "text/plain", `{"services":[]}`, true},
		{"garbage content type", 0, 200, "&&&", `{"services":[]}`, true},
		{"html on provision 201", 1, 201, "text/html", "<html/>", true},
		{"html on bind 202", 6, 202, "text/html", "<html/>", true},
		{"html on deprovision 200", 3, 200, "text/html", "<html/>", true},
		{"missing content type with json", 0, 200, "", `{"services":[]}`, false},
		{"json with charset", 0, 200, "application/json; charset=utf-8", `{"services":[]}`, false},
		{"uppercase json", 0, 200, "Application/JSON", `{"services":[]}`, false},
		{"vendor +json", 0, 200, "application/vnd.broker+json", `{"services":[]}`, false},
		{"html with empty body on deprovision", 3, 200, "text/html", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, reply(tt.status, tt.body, "Content-Type", tt.ct))
			cc := calls()[tt.call]
			_, err := cc.do(ctx, newClient(t, b.URL))
			if !tt.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := asOSB(t, err)
			if e.Kind != osbclient.KindContentType || e.StatusCode != tt.status {
				t.Fatalf("error %+v", e)
			}
			if !strings.Contains(err.Error(), "not JSON") {
				t.Errorf("Error() = %q", err)
			}
			if want := tt.status != 200 && createOp(cc.op); e.OrphanMitigationRequired() != want {
				t.Errorf("OrphanMitigationRequired = %v, want %v", !want, want)
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	ctx := context.Background()
	big := `{"services":[],"pad":"` + strings.Repeat("x", 200) + `"}`
	chunked := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.(http.Flusher).Flush() // no Content-Length: chunked
			for i := 0; i < len(body); i += 10 {
				_, _ = w.Write([]byte(body[i:min(i+10, len(body))]))
			}
		}
	}
	tests := []struct {
		name    string
		call    int
		h       http.HandlerFunc
		wantErr bool
		wantOM  bool
	}{
		{"content-length catalog", 0, reply(200, big), true, false},
		{"chunked catalog", 0, chunked(200, big), true, false},
		{"content-length provision 201", 1, reply(201, big), true, true},
		{"chunked bind 202", 6, chunked(202, big), true, true},
		{"chunked provision 200", 1, chunked(200, big), true, false},
		{"exactly at the cap", 0, reply(200, `{"services":[]}`+strings.Repeat(" ", 64-15)), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, tt.h)
			c := newClient(t, b.URL, func(c *osbclient.Config) { c.MaxResponseBytes = 64 })
			_, err := calls()[tt.call].do(ctx, c)
			if !tt.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := asOSB(t, err)
			if e.Kind != osbclient.KindBodyTooLarge || e.StatusCode == 0 || !strings.Contains(err.Error(), "too large") {
				t.Fatalf("error %+v: %v", e, err)
			}
			if e.OrphanMitigationRequired() != tt.wantOM {
				t.Errorf("OrphanMitigationRequired = %v", !tt.wantOM)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	for _, status := range []int{301, 302, 307, 308} {
		b := newBroker(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				reply(200, okBody)(w, r)
				return
			}
			http.Redirect(w, r, "/elsewhere", status)
		})
		for _, mod := range []func(*osbclient.Config){
			func(*osbclient.Config) {},
			func(c *osbclient.Config) { c.HTTPClient = &http.Client{} },
		} {
			_, err := calls()[1].do(context.Background(), newClient(t, b.URL, mod))
			e := asOSB(t, err)
			if e.Kind != osbclient.KindUnexpectedStatus || e.StatusCode != status || e.OrphanMitigationRequired() {
				t.Errorf("%d: %+v", status, e)
			}
		}
		if n := len(b.requests()); n != 2 {
			t.Errorf("%d: broker saw %d requests, redirect followed", status, n)
		}
	}
}
