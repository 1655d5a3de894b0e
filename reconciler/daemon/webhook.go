package daemon

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sirupsen/logrus"
)

// ErrNoWebhookSecret is returned by New when a webhook address is set
// without a secret and unauthenticated hooks were not explicitly allowed.
var ErrNoWebhookSecret = errors.New("webhook receiver needs a shared secret to verify hooks (or an explicit opt-in to unauthenticated hooks)")

// The headers a hook is verified by, in the order they are looked for.
const (
	// HeaderGitHubSignature carries "sha256=<hex HMAC-SHA256 of the body>".
	HeaderGitHubSignature = "X-Hub-Signature-256"
	// HeaderGitLabToken carries the shared secret itself.
	HeaderGitLabToken = "X-Gitlab-Token"
	// HeaderSignature is the generic "sha256=<hex HMAC-SHA256 of the body>".
	HeaderSignature = "X-Signature"
	// HeaderGitHubEvent names the GitHub event ("push", "ping", ...).
	HeaderGitHubEvent = "X-GitHub-Event"
)

// Webhook outcome labels of osbgit_webhook_requests_total.
const (
	hookAccepted     = "accepted"
	hookStandby      = "standby"
	hookPing         = "ping"
	hookUnauthorized = "unauthorized"
	hookTooLarge     = "too_large"
	hookBadRequest   = "bad_request"
	hookUnavailable  = "unavailable"
)

// WebhookHandler is the webhook receiver: POST /hook (and /hook/<anything>,
// so one receiver can be given per-forge URLs). Mount it elsewhere only
// behind the same path prefix.
func (d *Daemon) WebhookHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", d.serveHook)
	mux.HandleFunc("/hook/", d.serveHook)
	return mux
}

func (d *Daemon) serveHook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: POST a webhook", http.StatusMethodNotAllowed)
		return
	}
	log := d.log.WithFields(logrus.Fields{"remote": r.RemoteAddr, "path": r.URL.Path})
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, d.cfg.WebhookMaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			d.metrics.webhook(hookTooLarge)
			log.WithField("limit_bytes", d.cfg.WebhookMaxBody).Warn("webhook rejected: body too large")
			http.Error(w, fmt.Sprintf("request body larger than %d bytes", d.cfg.WebhookMaxBody), http.StatusRequestEntityTooLarge)
			return
		}
		d.metrics.webhook(hookBadRequest)
		log.WithError(err).Warn("webhook rejected: reading the body failed")
		http.Error(w, "could not read the request body", http.StatusBadRequest)
		return
	}
	source := "unauthenticated"
	if len(d.cfg.WebhookSecret) > 0 {
		v := verifyHook(d.cfg.WebhookSecret, r.Header, body)
		if !v.ok {
			d.metrics.webhook(hookUnauthorized)
			// Never log the secret or what was received: a near-miss
			// signature or a mistyped token is still sensitive.
			log.WithFields(logrus.Fields{"header": v.header, "reason": v.reason}).Warn("webhook rejected: verification failed")
			http.Error(w, "webhook verification failed", http.StatusUnauthorized)
			return
		}
		source = v.source
	}
	event := r.Header.Get(HeaderGitHubEvent)
	log = log.WithField("source", source)
	if event != "" {
		log = log.WithField("event", event)
	}
	if event == "ping" {
		d.metrics.webhook(hookPing)
		log.Info("webhook ping answered")
		fmt.Fprintln(w, "pong")
		return
	}
	switch d.trigger(TriggerWebhook) {
	case triggerQueued, triggerCoalesced:
		d.metrics.webhook(hookAccepted)
		log.Info("webhook accepted: pass queued")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, "accepted: a pass will run")
	case triggerStandby:
		d.metrics.webhook(hookStandby)
		log.Info("webhook accepted by a standby replica: the leader sees the change at its next scheduled pass")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, "accepted by a standby replica: the leader picks the change up on its schedule")
	default:
		d.metrics.webhook(hookUnavailable)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	}
}

// verification is the outcome of checking a hook. header and reason are
// safe to log; neither holds anything received or configured.
type verification struct {
	ok     bool
	source string // github, gitlab, generic
	header string // the header checked
	reason string
}

// verifyHook checks the first of X-Hub-Signature-256, X-Gitlab-Token and
// X-Signature present on the request against secret, in constant time.
func verifyHook(secret []byte, h http.Header, body []byte) verification {
	if v := h.Get(HeaderGitHubSignature); v != "" {
		return checkHMAC("github", HeaderGitHubSignature, secret, body, v)
	}
	if v := h.Get(HeaderGitLabToken); v != "" {
		vr := verification{source: "gitlab", header: HeaderGitLabToken}
		// Compare digests: hmac.Equal on equal-length inputs takes the same
		// time whatever the token, and not even its length leaks.
		got, want := sha256.Sum256([]byte(v)), sha256.Sum256(secret)
		if !hmac.Equal(got[:], want[:]) {
			vr.reason = "token mismatch"
			return vr
		}
		vr.ok = true
		return vr
	}
	if v := h.Get(HeaderSignature); v != "" {
		return checkHMAC("generic", HeaderSignature, secret, body, v)
	}
	return verification{header: "none", reason: "no " + HeaderGitHubSignature + ", " + HeaderGitLabToken + " or " + HeaderSignature + " header"}
}

// checkHMAC verifies value = "sha256=<hex HMAC-SHA256(secret, body)>".
func checkHMAC(source, header string, secret, body []byte, value string) verification {
	vr := verification{source: source, header: header}
	const prefix = "sha256="
	if len(value) < len(prefix) || !strings.EqualFold(value[:len(prefix)], prefix) {
		vr.reason = "malformed: want sha256=<hex>"
		return vr
	}
	got, err := hex.DecodeString(value[len(prefix):])
	if err != nil || len(got) != sha256.Size {
		vr.reason = "malformed: want sha256=<64 hex digits>"
		return vr
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got) {
		vr.reason = "signature mismatch"
		return vr
	}
	vr.ok = true
	return vr
}
