package main

import (
	"strings"
	"testing"

	"github.com/osbgit/osbgit/osbclient/osbtest"
)

// TestSyncExitCodesAndCounts (issue 19, item 7): sync exits 1 only for a
// call that failed in this pass; a 422 ConcurrencyError is "retried
// later" in its log entry and its count (it printed FAILED beside "0
// failed"); a verdict from an earlier pass is listed, not an exit 1 every
// minute. Each step's outcome is logged once (issue 20: it was logged
// twice, then repeated in the summary).
func TestSyncExitCodesAndCounts(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	fast := []string{"--min-retry-delay", "1ns", "--max-retry-delay", "1ns", "--no-state"}
	if code, out, errs := f.run(t, "sync"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	f.repo.Push("large", map[string]string{"apps/db.yaml": dbManifest("large")}, nil)

	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 422, Times: 1,
		Body: []byte(`{"error":"ConcurrencyError","description":"busy"}`)})
	code, out, errs := f.run(t, append([]string{"sync"}, fast...)...)
	if code != exitOK || strings.Count(errs, "broker reports another operation in progress") != 1 ||
		!strings.Contains(out, "0 failed, 1 retried later") {
		t.Fatalf("sync meeting a ConcurrencyError: exit %d\n%s\n%s", code, out, errs)
	}

	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 400, Times: 1})
	code, out, errs = f.run(t, append([]string{"sync"}, fast...)...)
	if code != exitChanges || strings.Count(errs, "level=error") != 1 || !strings.Contains(out, "1 failed") {
		t.Fatalf("sync with an update refused: exit %d, want %d\n%s\n%s", code, exitChanges, out, errs)
	}

	code, out, errs = f.run(t, append([]string{"sync"}, fast...)...)
	if code != exitOK || !strings.Contains(out, "still failed     ServiceInstance apps/db") ||
		!strings.Contains(out, "0 failed, 0 retried later, 1 still failed from earlier passes") {
		t.Fatalf("sync after an earlier verdict: exit %d, want %d listing it\n%s\n%s", code, exitOK, out, errs)
	}
}
