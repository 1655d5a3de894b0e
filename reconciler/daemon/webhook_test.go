package daemon

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
)

func TestVerifyHook(t *testing.T) {
	body := `{"ref":"refs/heads/main"}`
	good := sign(testSecret, body)
	tests := []struct {
		name       string
		headers    map[string]string
		wantOK     bool
		wantSource string
		wantHeader string
		wantReason string
	}{
		{"github good", map[string]string{HeaderGitHubSignature: good}, true, "github", HeaderGitHubSignature, ""},
		{"github upper-case prefix", map[string]string{HeaderGitHubSignature: "SHA256=" + strings.TrimPrefix(good, "sha256=")}, true, "github", HeaderGitHubSignature, ""},
		{"github wrong secret", map[string]string{HeaderGitHubSignature: sign("other", body)}, false, "github", HeaderGitHubSignature, "signature mismatch"},
		{"github other body", map[string]string{HeaderGitHubSignature: sign(testSecret, body+" ")}, false, "github", HeaderGitHubSignature, "signature mismatch"},
		{"github sha1 prefix", map[string]string{HeaderGitHubSignature: "sha1=" + strings.TrimPrefix(good, "sha256=")}, false, "github", HeaderGitHubSignature, "malformed: want sha256=<hex>"},
		{"github not hex", map[string]string{HeaderGitHubSignature: "sha256=zz"}, false, "github", HeaderGitHubSignature, "malformed: want sha256=<64 hex digits>"},
		{"github truncated", map[string]string{HeaderGitHubSignature: good[:20]}, false, "github", HeaderGitHubSignature, "malformed: want sha256=<64 hex digits>"},
		{"gitlab good", map[string]string{HeaderGitLabToken: testSecret}, true, "gitlab", HeaderGitLabToken, ""},
		{"gitlab bad", map[string]string{HeaderGitLabToken: testSecret + "x"}, false, "gitlab", HeaderGitLabToken, "token mismatch"},
		{"gitlab prefix of secret", map[string]string{HeaderGitLabToken: testSecret[:5]}, false, "gitlab", HeaderGitLabToken, "token mismatch"},
		{"generic good", map[string]string{HeaderSignature: good}, true, "generic", HeaderSignature, ""},
		{"generic bad", map[string]string{HeaderSignature: sign("other", body)}, false, "generic", HeaderSignature, "signature mismatch"},
		{"no header", nil, false, "", "none", "no X-Hub-Signature-256, X-Gitlab-Token or X-Signature header"},
		{"sha1 github header only", map[string]string{"X-Hub-Signature": "sha1=abc"}, false, "", "none", "no X-Hub-Signature-256, X-Gitlab-Token or X-Signature header"},
		// The first header present decides: a bad GitHub signature is not
		// rescued by a good token.
		{"github bad wins over gitlab good", map[string]string{HeaderGitHubSignature: sign("other", body), HeaderGitLabToken: testSecret}, false, "github", HeaderGitHubSignature, "signature mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.headers {
				h.Set(k, v)
			}
			v := verifyHook([]byte(testSecret), h, []byte(body))
			if v.ok != tc.wantOK || v.source != tc.wantSource || v.header != tc.wantHeader || v.reason != tc.wantReason {
				t.Fatalf("verifyHook = %+v, want ok=%v source=%q header=%q reason=%q", v, tc.wantOK, tc.wantSource, tc.wantHeader, tc.wantReason)
			}
		})
	}
}

// TestWebhookHTTP drives the receiver over real HTTP: verified hooks answer
// 202 and cause a pass; everything else is refused and causes none.
func TestWebhookHTTP(t *testing.T) {
	body := `{"ref":"refs/heads/main","after":"0123abcd"}`
	tests := []struct {
		name     string
		method   string
		path     string
		headers  map[string]string
		body     string
		wantCode int
		wantPass bool
		wantHook string // osbgit_webhook_requests_total result label
	}{
		{"github good", "POST", "/hook", map[string]string{HeaderGitHubSignature: sign(testSecret, body), HeaderGitHubEvent: "push"}, body, 202, true, hookAccepted},
		{"github good under /hook/github", "POST", "/hook/github", map[string]string{HeaderGitHubSignature: sign(testSecret, body)}, body, 202, true, hookAccepted},
		{"github bad", "POST", "/hook", map[string]string{HeaderGitHubSignature: sign("wrong", body), HeaderGitHubEvent: "push"}, body, 401, false, hookUnauthorized},
		{"github ping", "POST", "/hook", map[string]string{HeaderGitHubSignature: sign(testSecret, body), HeaderGitHubEvent: "ping"}, body, 200, false, hookPing},
		{"github ping unsigned", "POST", "/hook", map[string]string{HeaderGitHubEvent: "ping"}, body, 401, false, hookUnauthorized},
		{"gitlab good", "POST", "/hook", map[string]string{HeaderGitLabToken: testSecret}, body, 202, true, hookAccepted},
		{"gitlab bad", "POST", "/hook", map[string]string{HeaderGitLabToken: "nope"}, body, 401, false, hookUnauthorized},
		{"generic good", "POST", "/hook", map[string]string{HeaderSignature: sign(testSecret, body)}, body, 202, true, hookAccepted},
		{"generic bad", "POST", "/hook", map[string]string{HeaderSignature: sign(testSecret, "other")}, body, 401, false, hookUnauthorized},
		{"missing header", "POST", "/hook", nil, body, 401, false, hookUnauthorized},
		{"oversize body", "POST", "/hook", map[string]string{HeaderSignature: sign(testSecret, strings.Repeat("x", 2048))}, strings.Repeat("x", 2048), 413, false, hookTooLarge},
		{"GET", "GET", "/hook", nil, "", 405, false, ""},
		{"other path", "POST", "/other", map[string]string{HeaderSignature: sign(testSecret, body)}, body, 404, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newFakePasser()
				r := start(t, Config{Passer: p, Schedule: never, WebhookSecret: []byte(testSecret), WebhookMaxBody: 1024})
				if tr := p.waitStarted(t); tr != TriggerStart {
					t.Fatalf("first pass trigger %q", tr)
				}
				if code := serveHook(r.d, tc.method, tc.path, tc.headers, tc.body); code != tc.wantCode {
					t.Fatalf("status %d, want %d", code, tc.wantCode)
				}
				if tc.wantPass {
					if tr := p.waitStarted(t); tr != TriggerWebhook {
						t.Fatalf("pass trigger %q, want webhook", tr)
					}
				} else {
					synctest.Wait() // the daemon has done all the hook made it do
					if n := p.countOf(TriggerWebhook); n != 0 {
						t.Fatalf("%d webhook passes, want none", n)
					}
				}
				if tc.wantHook != "" {
					if got := counterValue(t, r.d.Metrics(), MetricWebhookRequests, map[string]string{"result": tc.wantHook}); got != 1 {
						t.Fatalf("%s{result=%q} = %v, want 1", MetricWebhookRequests, tc.wantHook, got)
					}
				}
			})
		})
	}
}

// TestWebhookServedOverHTTP: the receiver listens where it is told and a
// verified hook over real HTTP starts a pass.
func TestWebhookServedOverHTTP(t *testing.T) {
	p := newFakePasser()
	r := start(t, Config{Passer: p, Schedule: never, WebhookAddr: "127.0.0.1:0", WebhookSecret: []byte(testSecret)})
	p.waitStarted(t)
	body := `{"ref":"refs/heads/main"}`
	if code := post(t, "http://"+r.d.WebhookAddr()+"/hook", map[string]string{HeaderGitHubSignature: sign(testSecret, body)}, body); code != http.StatusAccepted {
		t.Fatalf("hook: %d, want 202", code)
	}
	if tr := p.waitStarted(t); tr != TriggerWebhook {
		t.Fatalf("trigger %q, want webhook", tr)
	}
}

// TestWebhookSecretsNeverLogged sends good, bad and near-miss hooks and
// checks that neither the secret nor anything received as a signature or
// token appears in the logs, while the failures are logged with what an
// operator needs.
func TestWebhookSecretsNeverLogged(t *testing.T) {
	p := newFakePasser()
	r := start(t, Config{Passer: p, Schedule: never, WebhookAddr: "127.0.0.1:0", WebhookSecret: []byte(testSecret)})
	p.waitStarted(t)
	url := "http://" + r.d.WebhookAddr() + "/hook"
	body := `{"ref":"refs/heads/main"}`
	nearMissToken := testSecret[:len(testSecret)-1] + "X"
	badSig := sign("attacker-guess", body)
	sent := []map[string]string{
		{HeaderGitHubSignature: sign(testSecret, body)},
		{HeaderGitHubSignature: badSig},
		{HeaderGitLabToken: testSecret},
		{HeaderGitLabToken: nearMissToken},
		{HeaderSignature: badSig},
		{HeaderSignature: "sha256=not-hex-" + testSecret},
	}
	for _, h := range sent {
		post(t, url, h, body)
	}
	waitFor(t, "failures logged", func() bool { return strings.Count(r.logs.String(), "verification failed") == 4 })
	logs := r.logs.String()
	secretish := []string{
		testSecret,
		nearMissToken,
		strings.TrimPrefix(badSig, "sha256="),
		strings.TrimPrefix(sign(testSecret, body), "sha256="),
		testSecret[:12], // not even a prefix
	}
	for _, s := range secretish {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q:\n%s", s, logs)
		}
	}
	for _, want := range []string{`"header":"X-Hub-Signature-256"`, `"header":"X-Gitlab-Token"`, `"header":"X-Signature"`, `"remote":"127.0.0.1:`, `"reason":"signature mismatch"`, `"reason":"token mismatch"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestWebhookNeedsSecret(t *testing.T) {
	_, err := New(Config{Passer: newFakePasser(), Schedule: never, WebhookAddr: "127.0.0.1:0"})
	if !errors.Is(err, ErrNoWebhookSecret) {
		t.Fatalf("New without secret: %v, want ErrNoWebhookSecret", err)
	}
	// An explicit opt-in accepts unauthenticated hooks (and says so).
	p := newFakePasser()
	r := start(t, Config{Passer: p, Schedule: never, WebhookAddr: "127.0.0.1:0", WebhookInsecureNoAuth: true})
	p.waitStarted(t)
	if code := post(t, "http://"+r.d.WebhookAddr()+"/hook", nil, "{}"); code != http.StatusAccepted {
		t.Fatalf("unauthenticated hook: %d, want 202", code)
	}
	if tr := p.waitStarted(t); tr != TriggerWebhook {
		t.Fatalf("trigger %q", tr)
	}
	if !strings.Contains(r.logs.String(), "accepts unauthenticated hooks") {
		t.Fatalf("no warning about unauthenticated hooks:\n%s", r.logs.String())
	}
}

// TestWebhookBurstCoalesces: 20 hooks while a pass runs cause exactly one
// follow-up pass.
func TestWebhookBurstCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePasser()
		p.gate = make(chan struct{})
		r := start(t, Config{Passer: p, Schedule: never, WebhookSecret: []byte(testSecret)})
		if tr := p.waitStarted(t); tr != TriggerStart {
			t.Fatalf("trigger %q", tr)
		}
		body := `{"ref":"refs/heads/main"}`
		headers := map[string]string{HeaderGitHubSignature: sign(testSecret, body)}
		var wg sync.WaitGroup
		codes := make(chan int, 20)
		for range 20 {
			wg.Go(func() { codes <- serveHook(r.d, http.MethodPost, "/hook", headers, body) })
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != http.StatusAccepted {
				t.Fatalf("hook answered %d, want 202", c)
			}
		}
		close(p.gate) // the blocked pass (and any later one) completes
		if tr := p.waitStarted(t); tr != TriggerWebhook {
			t.Fatalf("follow-up trigger %q, want webhook", tr)
		}
		synctest.Wait()
		if got := p.snapshot(); len(got) != 2 {
			t.Fatalf("passes %v, want [start webhook]", got)
		}
		if got := counterValue(t, r.d.Metrics(), MetricCoalescedTriggers, nil); got != 19 {
			t.Fatalf("coalesced triggers %v, want 19", got)
		}
		// Idle again: one hook, one pass.
		serveHook(r.d, http.MethodPost, "/hook", headers, body)
		p.waitStarted(t)
		synctest.Wait()
		if n := p.count(); n != 3 {
			t.Fatalf("%d passes, want 3", n)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.maxRun != 1 {
			t.Fatalf("%d passes ran at once", p.maxRun)
		}
	})
}

// TestSecretTriggerWinsTheFold: a Secret trigger that arrives while a
// webhook's pass is pending folds into it and the pass runs as the
// Secret's (which reads back every binding Secret): a watch event is not
// lost behind a webhook.
func TestSecretTriggerWinsTheFold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePasser()
		p.gate = make(chan struct{})
		r := start(t, Config{Passer: p, Schedule: never, WebhookSecret: []byte(testSecret)})
		if tr := p.waitStarted(t); tr != TriggerStart {
			t.Fatalf("trigger %q", tr)
		}
		body := `{"ref":"refs/heads/main"}`
		headers := map[string]string{HeaderGitHubSignature: sign(testSecret, body)}
		if c := serveHook(r.d, http.MethodPost, "/hook", headers, body); c != http.StatusAccepted {
			t.Fatalf("hook answered %d", c)
		}
		r.d.Request(TriggerSecret)
		serveHook(r.d, http.MethodPost, "/hook", headers, body)
		close(p.gate)
		if tr := p.waitStarted(t); tr != TriggerSecret {
			t.Fatalf("follow-up trigger %q, want secret", tr)
		}
		synctest.Wait()
		if got := p.snapshot(); len(got) != 2 {
			t.Fatalf("passes %v, want [start secret]", got)
		}
	})
}
