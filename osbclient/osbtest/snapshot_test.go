package osbtest

import "testing"

// TestSnapshotRestore: a snapshot taken while an asynchronous provision is
// in flight puts that operation back, with the polls it had left, each
// time it is restored; what happened after the snapshot is gone.
func TestSnapshotRestore(t *testing.T) {
	h := newHarness(t, Config{})
	h.mustProvision("sync", PlanDBSmall)
	if r := h.provision("a", PlanDBAsync, nil, "accepts_incomplete", "true"); r.Status != 202 {
		t.Fatalf("async provision: status %d", r.Status)
	}
	op := h.b.Instances()["a"].Operation
	s := h.b.Snapshot()
	for round := 1; round <= 2; round++ {
		// PlanDBAsync answers two polls "in progress", then "succeeded".
		for i, want := range []string{"in progress", "in progress", "succeeded"} {
			if got := h.poll("a", "operation", op).Str("state"); got != want {
				t.Fatalf("round %d poll %d: %q, want %q", round, i+1, got, want)
			}
		}
		if in := h.b.Instances()["a"]; in.State != StateReady {
			t.Fatalf("round %d: instance %+v after its last poll", round, in)
		}
		h.do("DELETE", instPath("sync", "service_id", ServiceDB, "plan_id", PlanDBSmall), nil)
		h.b.Restore(s)
		ins := h.b.Instances()
		if len(ins) != 2 || ins["a"].State != StateCreating || ins["a"].Operation != op || ins["sync"].State != StateReady {
			t.Fatalf("round %d: restored instances %+v", round, ins)
		}
	}
}
