package reconciler

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/exec"
)

// TestCallsWithoutAVerdictAreRetried (issue 19, item 1), as a CronJob runs
// sync: a call that got no verdict from the broker (here a 500 on an
// update PATCH, a 422 ConcurrencyError on a deprovision DELETE) keeps a
// retry due, after a backoff, with the head unchanged; before, every later
// sync said "Nothing to do" until the next commit. A verdict (400) stays
// until the manifest changes.
func TestCallsWithoutAVerdictAreRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": instanceYAML("db", "small", ""), "apps/other.yaml": instanceYAML("other", "small", "")}
	})
	state := filepath.Join(t.TempDir(), "state.json")
	clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	pass := func() *SyncResult {
		t.Helper()
		r := f.reconciler(Options{StatePath: state, MinRetryDelay: exec.MinRetryDelay, MaxRetryDelay: exec.MaxRetryDelay})
		r.Now = func() time.Time { return clock }
		return f.sync(r)
	}
	pass()
	db := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"}

	// An update answered 500: retried after 10 s, not before.
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 500, Times: 1})
	f.repo.Push("db large", map[string]string{"apps/db.yaml": instanceYAML("db", "large", "")}, nil)
	pass()
	if rec := recordIn(t, f, db); !rec.RetryPending() || rec.PlanExternalID != osbtest.PlanDBSmall {
		t.Fatalf("after a 500: record %+v, want a retry due", rec)
	}
	if res := pass(); res.Skipped || f.broker.Count(osbtest.EndpointUpdate) != 1 {
		t.Fatalf("before the retry time: skipped %v (%s), %d updates; want a pass holding the retry", res.Skipped, res.Reason, f.broker.Count(osbtest.EndpointUpdate))
	}
	clock = clock.Add(11 * time.Second)
	pass()
	if rec := recordIn(t, f, db); f.broker.Count(osbtest.EndpointUpdate) != 2 || rec.PlanExternalID != osbtest.PlanDBLarge || rec.RetryPending() {
		t.Fatalf("after the retry: %d updates, record %+v", f.broker.Count(osbtest.EndpointUpdate), rec)
	}
	if res := pass(); !res.Skipped {
		t.Fatalf("converged, yet the next pass ran: %+v", res.Plan)
	}

	// A 400 is a verdict: no blind retry with the head unchanged.
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 400, Times: 1})
	f.repo.Push("db small", map[string]string{"apps/db.yaml": instanceYAML("db", "small", "")}, nil)
	pass()
	clock = clock.Add(11 * time.Second)
	if res := pass(); !res.Skipped || f.broker.Count(osbtest.EndpointUpdate) != 3 {
		t.Fatalf("after a 400: skipped %v, %d updates; want no retry", res.Skipped, f.broker.Count(osbtest.EndpointUpdate))
	}

	// A deprovision meeting another operation (422 ConcurrencyError) is
	// retried once the broker is free.
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointDeprovision, Status: 422,
		Body: []byte(`{"error":"ConcurrencyError","description":"busy"}`), Times: 1})
	f.repo.Push("other gone", nil, []string{"apps/other.yaml"})
	pass()
	if n := len(f.broker.Instances()); n != 2 {
		t.Fatalf("broker holds %d instances after a busy deprovision, want 2", n)
	}
	clock = clock.Add(11 * time.Second)
	res := pass()
	if n := len(f.broker.Instances()); n != 1 {
		t.Fatalf("deprovision not retried: broker holds %d instances (%s)", n, res.Reason)
	}
	if rec := recordIn(t, f, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "other"}); rec != nil {
		t.Errorf("record of the deprovisioned instance left: %+v", rec)
	}
	if !strings.Contains(f.repo.Show(".osbgit/status/apps/serviceinstance/db.yaml"), "update") {
		t.Errorf("db's record lost its failed update")
	}
}

// TestRetryAfterAVerdict: a deprovision refused with a 400 (a verdict)
// is not repeated by later passes; `osbgit retry` makes the next one
// repeat it.
func TestRetryAfterAVerdict(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url), "apps/db.yaml": instanceYAML("db", "small", "")}
	})
	state := filepath.Join(t.TempDir(), "state.json")
	f.sync(f.reconciler(Options{StatePath: state}))
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointDeprovision, Status: 400, Times: 1})
	f.repo.Push("db gone", nil, []string{"apps/db.yaml"})
	for i := 0; i < 3; i++ {
		f.sync(f.reconciler(Options{StatePath: state}))
	}
	if n := f.broker.Count(osbtest.EndpointDeprovision); n != 1 {
		t.Fatalf("%d deprovisions after a 400, want 1 (no blind retry)", n)
	}
	db := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"}
	if err := f.reconciler(Options{StatePath: state}).Retry(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	f.sync(f.reconciler(Options{StatePath: state}))
	if n := f.broker.Count(osbtest.EndpointDeprovision); n != 2 || len(f.broker.Instances()) != 0 {
		t.Fatalf("after osbgit retry: %d deprovisions, broker holds %v", n, f.broker.Instances())
	}
	if rec := recordIn(t, f, db); rec != nil {
		t.Errorf("record left after the retried deprovision: %+v", rec)
	}
}
