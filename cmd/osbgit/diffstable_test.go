package main

import (
	"strings"
	"testing"
)

// TestDiffIsByteIdentical: diff on the same repo prints the same bytes
// every run, in every format — a create's ID, generated afresh by each
// plan, is shown as new rather than as a throwaway value.
func TestDiffIsByteIdentical(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	if code, out, errs := f.run(t, "sync", "--no-state"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	// A new instance and a binding on it: two generated IDs, one of them
	// also the binding's instance_id.
	f.repo.Push("queue and binding", map[string]string{"apps/queue.yaml": `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata: {name: queue, namespace: apps}
spec:
  clusterServiceClassExternalName: osbtest-queue
  clusterServicePlanExternalName: standard
---
apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata: {name: queue-binding, namespace: apps}
spec:
  instanceRef: {name: queue}
  secretName: queue-creds
`, "apps/db.yaml": dbManifest("large")}, nil)
	for _, format := range []string{"text", "json", "markdown"} {
		for _, mode := range [][]string{nil, {"--offline"}} {
			args := append([]string{"diff", "-o", format}, mode...)
			t.Run(strings.Join(args[1:], " "), func(t *testing.T) {
				code, first, errs := f.run(t, args...)
				if code != exitChanges {
					t.Fatalf("exit %d, want %d\n%s\n%s", code, exitChanges, first, errs)
				}
				_, second, _ := f.run(t, args...)
				if first != second {
					t.Fatalf("two runs differ:\n--- first\n%s\n--- second\n%s", first, second)
				}
				want := map[string]string{"text": "id: new ID, recorded before the first call; instance id: the instance's new ID",
					"json": `"new_id": true`, "markdown": "id: new ID, recorded before the first call"}[format]
				if !strings.Contains(first, want) || !strings.Contains(first, "large") {
					t.Errorf("output lacks %q:\n%s", want, first)
				}
			})
		}
	}
}
