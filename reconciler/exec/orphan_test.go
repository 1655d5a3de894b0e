package exec

import (
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
)

// TestOrphanMitigation: exactly where the spec's table asks (provision and
// bind: 5xx, timeout, 201/202 malformed, async failure) the executor
// deletes at once, without originating identity, and the broker ends with
// nothing; the record goes Failed with Provisioned false.
func TestOrphanMitigation(t *testing.T) {
	cases := []struct {
		name     string
		opts     []envOption
		setup    func(e *env)
		binding  bool
		planID   string
		deleteEP osbtest.Endpoint
		// retry: a call failure with no verdict from the broker; after the
		// mitigation the create is retried (Phase Pending, reason
		// *CallFailed). Otherwise the broker's verdict stands (Failed).
		retry bool
	}{
		{name: "provision 500 after effect", retry: true, planID: osbtest.PlanDBSmall, deleteEP: osbtest.EndpointDeprovision,
			setup: func(e *env) {
				e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 500, AfterEffect: true, Times: 1})
			}},
		{name: "provision timeout after effect", retry: true, planID: osbtest.PlanDBSmall, deleteEP: osbtest.EndpointDeprovision,
			opts: []envOption{withClientTimeout(300 * time.Millisecond)},
			setup: func(e *env) {
				e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Delay: 5 * time.Second, AfterEffect: true, Times: 1})
			}},
		{name: "provision 201 malformed body after effect", retry: true, planID: osbtest.PlanDBSmall, deleteEP: osbtest.EndpointDeprovision,
			setup: func(e *env) {
				e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Malformed: true, AfterEffect: true, Times: 1})
			}},
		{name: "async provision failed", planID: osbtest.PlanDBAsync, deleteEP: osbtest.EndpointDeprovision,
			setup: func(e *env) {
				e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: 1, Fail: true}, osbtest.OpProvision)
			}},
		{name: "bind 500 after effect", retry: true, binding: true, planID: osbtest.PlanDBSmall, deleteEP: osbtest.EndpointUnbind,
			setup: func(e *env) {
				e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointBind, Status: 503, AfterEffect: true, Times: 1})
			}},
		{name: "async bind failed", binding: true, planID: osbtest.PlanDBAsync, deleteEP: osbtest.EndpointUnbind,
			setup: func(e *env) {
				e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: 0, Fail: true}, osbtest.OpBind)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			var step plan.Step
			ref := instRef("db")
			if tc.binding {
				e.b.PutInstance(osbtest.Instance{ID: "i-1", ServiceID: osbtest.ServiceDB, PlanID: tc.planID, OrganizationGUID: "o", SpaceGUID: "s"})
				step = createBinding("creds", "b-1", "db", "i-1", tc.planID)
				ref = bindRef("creds")
			} else {
				step = createInstance("db", "i-1", tc.planID, nil)
			}
			tc.setup(e)
			res := e.pass(step)
			o := wantStatus(t, res, ref, StatusFailed)
			if o.InProgress || res.Counts.OrphansMitigated != 1 {
				t.Fatalf("outcome %+v counts %+v", o, res.Counts)
			}
			rec := e.rec(ref)
			wantPhase := manifest.PhaseFailed
			if tc.retry {
				wantPhase = manifest.PhasePending
			}
			if rec.Phase != wantPhase || rec.Provisioned || rec.AsyncOpInProgress {
				t.Fatalf("record phase %s (want %s) %+v", rec.Phase, wantPhase, rec)
			}
			if lo := rec.LastOperation; lo == nil || !lo.OrphanMitigation || lo.State != manifest.OperationSucceeded {
				t.Fatalf("last operation %+v", rec.LastOperation)
			}
			wantCond(t, rec, manifest.ConditionOrphanMitigation, manifest.ConditionFalse, ReasonOrphanMitigationSuccessful)
			wantCond(t, rec, manifest.ConditionFailed, manifest.ConditionTrue, "")
			if rec.SecretRef != nil {
				t.Fatalf("secret recorded for a failed bind: %+v", rec.SecretRef)
			}
			dels := e.b.CallsTo(tc.deleteEP)
			if len(dels) == 0 {
				t.Fatal("no orphan-mitigation delete")
			}
			for _, c := range dels {
				if c.Headers.Get(osbclient.HeaderOriginatingIdentity) != "" {
					t.Fatal("orphan mitigation sent an originating identity")
				}
			}
			if tc.binding {
				if len(e.b.Bindings()) != 0 {
					t.Fatalf("broker still holds %v", e.b.Bindings())
				}
				if _, err := e.store.Get(t.Context(), ns, "creds-creds"); err == nil {
					t.Fatal("a Secret was written for a failed bind")
				}
			} else if len(e.b.Instances()) != 0 {
				t.Fatalf("broker still holds %v", e.b.Instances())
			}
		})
	}
}

// TestOrphanMitigationRetriedNextPass: when the mitigating DELETE fails the
// record stays OrphanMitigation; the next pass's OrphanMitigate step
// finishes it.
func TestOrphanMitigationRetriedNextPass(t *testing.T) {
	e := newEnv(t)
	ref := instRef("db")
	e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 500, AfterEffect: true, Times: 1})
	e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointDeprovision, Status: 500, Times: 1})
	res := e.pass(createInstance("db", "om-1", osbtest.PlanDBSmall, nil))
	wantStatus(t, res, ref, StatusFailed)
	rec := e.rec(ref)
	if rec.Phase != manifest.PhaseOrphanMitigation || !rec.Provisioned {
		t.Fatalf("record %+v", rec)
	}
	wantCond(t, rec, manifest.ConditionOrphanMitigation, manifest.ConditionTrue, ReasonOrphanMitigationFailed)
	if _, ok := e.b.Instance("om-1"); !ok {
		t.Fatal("precondition: the broker holds the orphan")
	}
	res = e.pass(plan.Step{Ref: ref, Action: plan.OrphanMitigate, ExternalID: "om-1", Target: target(osbtest.PlanDBSmall)})
	wantStatus(t, res, ref, StatusSucceeded)
	rec = e.rec(ref)
	// The provision failed with a 500 (no verdict): once the orphan is
	// gone, the create is retried.
	if rec.Phase != manifest.PhasePending || rec.Provisioned {
		t.Fatalf("record %+v", rec)
	}
	if len(e.b.Instances()) != 0 {
		t.Fatal("orphan left at the broker")
	}
	if res.Counts.OrphansMitigated != 1 || res.Failed() {
		t.Fatalf("counts %+v", res.Counts)
	}
}

// TestNoOrphanMitigation: never after 400, 408, other 4xx, or any update
// failure. 408 and update 5xx may clear by themselves (phase kept, retried);
// 400 is terminal.
func TestNoOrphanMitigation(t *testing.T) {
	cases := []struct {
		name      string
		fault     osbtest.Fault
		update    bool
		wantPhase manifest.Phase
		wantProv  bool
		reason    string
	}{
		{name: "provision 400", fault: osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 400},
			wantPhase: manifest.PhaseFailed, reason: ReasonProvisionFailed},
		{name: "provision 403", fault: osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 403},
			wantPhase: manifest.PhaseFailed, reason: ReasonProvisionFailed},
		{name: "provision 408", fault: osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 408},
			wantPhase: manifest.PhasePending, wantProv: true, reason: ReasonCallFailed},
		{name: "provision 200 malformed", fault: osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 200, Malformed: true, AfterEffect: true},
			wantPhase: manifest.PhaseFailed, wantProv: true, reason: ReasonProvisionFailed},
		{name: "update 500", update: true, fault: osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 500, AfterEffect: true},
			wantPhase: manifest.PhaseReady, wantProv: true, reason: ReasonCallFailed},
		{name: "update 400", update: true, fault: osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 400},
			wantPhase: manifest.PhaseFailed, wantProv: true, reason: ReasonUpdateFailed},
		{name: "update 202 malformed", update: true, fault: osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 202, Malformed: true},
			wantPhase: manifest.PhaseReady, wantProv: true, reason: ReasonCallFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ref := instRef("db")
			step := createInstance("db", "n-1", osbtest.PlanDBSmall, nil)
			if tc.update {
				wantStatus(t, e.pass(step), ref, StatusSucceeded)
				step = updateInstance("db", "n-1", osbtest.PlanDBSmall, osbtest.PlanDBSmall, map[string]any{"size": 5})
			}
			tc.fault.Times = 1
			e.b.AddFault(tc.fault)
			res := e.pass(step)
			wantStatus(t, res, ref, StatusFailed)
			rec := e.rec(ref)
			if rec.Phase != tc.wantPhase || rec.Provisioned != tc.wantProv {
				t.Fatalf("phase %s provisioned %v, want %s %v", rec.Phase, rec.Provisioned, tc.wantPhase, tc.wantProv)
			}
			wantCond(t, rec, manifest.ConditionFailed, manifest.ConditionTrue, tc.reason)
			if manifest.FindCondition(rec.Conditions, manifest.ConditionOrphanMitigation) != nil {
				t.Fatal("orphan mitigation condition set")
			}
			if n := e.count(osbtest.EndpointDeprovision); n != 0 {
				t.Fatalf("%d deprovision calls", n)
			}
			if tc.update {
				if rec.PlanExternalID != osbtest.PlanDBSmall || rec.ParameterChecksum != "sum-db" {
					t.Fatalf("properties changed by a failed update: %+v", rec.Properties)
				}
				if tc.reason == ReasonUpdateFailed {
					wantCond(t, rec, manifest.ConditionReady, manifest.ConditionTrue, ReasonUpdateFailed)
					if rec.InProgress == nil || rec.InProgress.ParameterChecksum != "sum2-db" {
						t.Fatalf("InProgress must keep the failed target: %+v", rec.InProgress)
					}
				}
			}
		})
	}
}

// TestMaximumPollingDuration: an operation polled past its deadline is
// failed; for a provision that means orphan mitigation, for an update an
// UpdateFailed record.
func TestMaximumPollingDuration(t *testing.T) {
	t.Run("inline provision exceeds MaxPollingDuration", func(t *testing.T) {
		e := newEnv(t)
		e.ex.Now = nil // real clock: the deadline passes while polling
		ref := instRef("db")
		e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: -1}, osbtest.OpProvision)
		step := createInstance("db", "mp-1", osbtest.PlanDBAsync, nil)
		step.MaxPollingDuration = 1500 * time.Millisecond // LastOperation start is truncated to seconds
		start := time.Now()
		res := e.pass(step)
		o := wantStatus(t, res, ref, StatusFailed)
		if time.Since(start) > 4*time.Second {
			t.Fatalf("polled for %s", time.Since(start))
		}
		rec := e.rec(ref)
		if rec.Phase != manifest.PhaseFailed || rec.Provisioned || res.Counts.OrphansMitigated != 1 {
			t.Fatalf("record %+v outcome %+v", rec, o)
		}
		if len(e.b.Instances()) != 0 {
			t.Fatal("the broker still holds the instance")
		}
	})
	t.Run("poll step past PollDeadline", func(t *testing.T) {
		e := newEnv(t)
		e.ex.InlinePoll = 0
		ref := instRef("db")
		e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: -1}, osbtest.OpProvision)
		wantStatus(t, e.pass(createInstance("db", "mp-2", osbtest.PlanDBAsync, nil)), ref, StatusInProgress)
		e.advance(11 * time.Minute)
		step := pollStep(e.rec(ref))
		step.PollDeadline = e.rec(ref).LastOperation.StartTime.Add(10 * time.Minute)
		res := e.pass(step)
		o := wantStatus(t, res, ref, StatusFailed)
		if n := e.count(osbtest.EndpointLastOperation); n != 1 {
			t.Fatalf("%d polls; want one last poll before giving up", n)
		}
		// The mitigating deprovision is async on this plan and InlinePoll
		// is 0: it is recorded in flight...
		rec := e.rec(ref)
		if !o.InProgress || rec.Phase != manifest.PhaseOrphanMitigation || !rec.AsyncOpInProgress || !rec.LastOperation.OrphanMitigation {
			t.Fatalf("outcome %+v record %+v", o, rec)
		}
		if c := mustLast(t, e.b, osbtest.EndpointDeprovision); c.Headers.Get(osbclient.HeaderOriginatingIdentity) != "" {
			t.Fatal("orphan mitigation sent an originating identity")
		}
		// ...and the next passes poll it to the end.
		for i := 0; i < 5 && e.rec(ref).AsyncOpInProgress; i++ {
			step := pollStep(e.rec(ref))
			res = e.pass(step)
		}
		wantStatus(t, res, ref, StatusSucceeded)
		rec = e.rec(ref)
		if rec.Phase != manifest.PhaseFailed || rec.Provisioned || res.Counts.OrphansMitigated != 1 {
			t.Fatalf("record %+v counts %+v", rec, res.Counts)
		}
		if len(e.b.Instances()) != 0 {
			t.Fatal("the broker still holds the instance")
		}
	})
	// Issue 19: the orphan mitigation a passed deadline starts is polled
	// inline against a deadline of its own; it was given the expired one,
	// so it failed at its first poll.
	t.Run("orphan mitigation after PollDeadline polls to its own deadline", func(t *testing.T) {
		e := newEnv(t)
		e.ex.InlinePoll = 0
		ref := instRef("db")
		e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: -1}, osbtest.OpProvision)
		wantStatus(t, e.pass(createInstance("db", "mp-3", osbtest.PlanDBAsync, nil)), ref, StatusInProgress)
		e.advance(11 * time.Minute)
		step := pollStep(e.rec(ref))
		step.PollDeadline = e.rec(ref).LastOperation.StartTime.Add(10 * time.Minute)
		step.MaxPollingDuration = 10 * time.Minute
		e.ex.InlinePoll = 5 * time.Second
		res := e.pass(step)
		wantStatus(t, res, ref, StatusFailed)
		rec := e.rec(ref)
		if rec.Phase != manifest.PhaseFailed || rec.Provisioned || res.Counts.OrphansMitigated != 1 || len(e.b.Instances()) != 0 {
			t.Fatalf("orphan mitigation did not finish inline: record %+v counts %+v broker %v", rec, res.Counts, e.b.Instances())
		}
	})
	t.Run("poll step past PollDeadline finds it done", func(t *testing.T) {
		e := newEnv(t)
		e.ex.InlinePoll = 0
		ref := instRef("db")
		e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: -1}, osbtest.OpProvision)
		wantStatus(t, e.pass(createInstance("db", "mp-3", osbtest.PlanDBAsync, nil)), ref, StatusInProgress)
		e.b.FinishOperation("mp-3", "", false)
		e.advance(time.Hour)
		step := pollStep(e.rec(ref))
		step.PollDeadline = e.clock().Add(-time.Minute)
		wantStatus(t, e.pass(step), ref, StatusSucceeded)
	})
	t.Run("update past deadline", func(t *testing.T) {
		e := newEnv(t)
		e.ex.InlinePoll = 0
		ref := instRef("db")
		wantStatus(t, e.pass(createInstance("db", "mp-4", osbtest.PlanDBSmall, nil)), ref, StatusSucceeded)
		e.b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Async: true, Polls: -1}, osbtest.OpUpdate)
		wantStatus(t, e.pass(updateInstance("db", "mp-4", osbtest.PlanDBSmall, osbtest.PlanDBSmall, map[string]any{"size": 9})), ref, StatusInProgress)
		step := pollStep(e.rec(ref))
		step.PollDeadline = e.clock().Add(-time.Second)
		res := e.pass(step)
		wantStatus(t, res, ref, StatusFailed)
		rec := e.rec(ref)
		if rec.Phase != manifest.PhaseFailed || !rec.Provisioned || rec.AsyncOpInProgress {
			t.Fatalf("record %+v", rec)
		}
		wantCond(t, rec, manifest.ConditionFailed, manifest.ConditionTrue, ReasonUpdateFailed)
		if n := e.count(osbtest.EndpointDeprovision); n != 0 {
			t.Fatal("orphan mitigation after an update")
		}
	})
}

// TestRetryAfterHonoured: polls wait at least the broker's Retry-After.
func TestRetryAfterHonoured(t *testing.T) {
	// Retry-After counts whole seconds: the test waits them out, in
	// parallel with the other such waits.
	t.Parallel()
	e := newEnv(t)
	e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: 1, RetryAfter: time.Second}, osbtest.OpProvision)
	res := e.pass(createInstance("db", "ra-1", osbtest.PlanDBAsync, nil))
	wantStatus(t, res, instRef("db"), StatusSucceeded)
	polls := e.b.CallsTo(osbtest.EndpointLastOperation)
	if len(polls) != 2 {
		t.Fatalf("%d polls", len(polls))
	}
	if polls[0].Status != http.StatusOK || polls[0].Headers == nil {
		t.Fatalf("first poll %+v", polls[0])
	}
	if gap := polls[1].Time.Sub(polls[0].Time); gap < 950*time.Millisecond {
		t.Fatalf("second poll %s after the first; Retry-After was 1s", gap)
	}
}

// TestRetryAfterReplacesBackoff: after an answer with Retry-After the next
// poll comes when the broker asked, not after a longer backoff.
func TestRetryAfterReplacesBackoff(t *testing.T) {
	// Retry-After counts whole seconds: the test waits them out, in
	// parallel with the other such waits.
	t.Parallel()
	e := newEnv(t)
	e.ex.InlinePoll = time.Minute
	e.ex.PollInitial, e.ex.PollMax = 400*time.Millisecond, time.Minute
	e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: 3, RetryAfter: time.Second}, osbtest.OpProvision)
	res := e.pass(createInstance("db", "ra-2", osbtest.PlanDBAsync, nil))
	wantStatus(t, res, instRef("db"), StatusSucceeded)
	polls := e.b.CallsTo(osbtest.EndpointLastOperation)
	if len(polls) != 4 {
		t.Fatalf("%d polls", len(polls))
	}
	// The backoff alone would wait 0.8s, 1.6s, 3.2s.
	for i := 1; i < len(polls); i++ {
		if gap := polls[i].Time.Sub(polls[i-1].Time); gap < 950*time.Millisecond || gap > 2500*time.Millisecond {
			t.Errorf("poll %d came %s after the previous one; Retry-After was 1s", i+1, gap)
		}
	}
}

// TestInlinePollBudget: a Retry-After beyond the inline budget ends the
// step in progress instead of blocking.
func TestInlinePollBudget(t *testing.T) {
	e := newEnv(t)
	e.ex.InlinePoll = 200 * time.Millisecond
	e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: 5, RetryAfter: 10 * time.Second}, osbtest.OpProvision)
	start := time.Now()
	res := e.pass(createInstance("db", "ib-1", osbtest.PlanDBAsync, nil))
	wantStatus(t, res, instRef("db"), StatusInProgress)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("step blocked for %s", d)
	}
	if n := e.count(osbtest.EndpointLastOperation); n != 1 {
		t.Fatalf("%d polls", n)
	}
}

// TestOrphanMitigationRetryBacksOff: a mitigating DELETE that keeps failing
// is retried later and later (as long as it has been failing, from
// MinRetryDelay up to MaxRetryDelay), not at every poll interval.
func TestOrphanMitigationRetryBacksOff(t *testing.T) {
	e := newEnv(t)
	ref := instRef("db")
	e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 500, AfterEffect: true, Times: 1})
	e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointDeprovision, Status: 500})
	start := e.clock()
	res := e.pass(createInstance("db", "om-1", osbtest.PlanDBSmall, nil))
	if o := wantStatus(t, res, ref, StatusFailed); !o.NextPoll.Equal(start.Add(MinRetryDelay)) {
		t.Errorf("first failure: retry at %v, want %v", o.NextPoll, start.Add(MinRetryDelay))
	}
	mitigate := plan.Step{Ref: ref, Action: plan.OrphanMitigate, ExternalID: "om-1", Target: target(osbtest.PlanDBSmall)}
	for _, elapsed := range []time.Duration{10 * time.Second, 3 * time.Minute, 40 * time.Minute} {
		e.advance(start.Add(elapsed).Sub(e.clock()))
		res = e.pass(mitigate)
		want := e.clock().Add(min(elapsed, MaxRetryDelay))
		if o := wantStatus(t, res, ref, StatusFailed); !o.NextPoll.Equal(want) {
			t.Errorf("failing for %v: retry at %v, want %v", elapsed, o.NextPoll, want)
		}
		if res.NextPoll() != outcome(t, res, ref).NextPoll {
			t.Errorf("Result.NextPoll %v", res.NextPoll())
		}
	}
	if rec := e.rec(ref); rec.Phase != manifest.PhaseOrphanMitigation {
		t.Fatalf("record %+v", rec)
	}
}

func TestRetryDelay(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	cond := func(ct manifest.ConditionType, st manifest.ConditionStatus, ago time.Duration) manifest.Condition {
		return manifest.Condition{Type: ct, Status: st, LastTransitionTime: metav1.NewTime(now.Add(-ago))}
	}
	for _, tc := range []struct {
		name  string
		conds []manifest.Condition
		want  time.Duration
	}{
		{"no condition", nil, MinRetryDelay},
		{"just failed", []manifest.Condition{cond(manifest.ConditionFailed, manifest.ConditionTrue, 0)}, MinRetryDelay},
		{"failing 90s", []manifest.Condition{cond(manifest.ConditionReady, manifest.ConditionFalse, time.Hour), cond(manifest.ConditionFailed, manifest.ConditionTrue, 90*time.Second)}, 90 * time.Second},
		{"Failed False: Ready's time", []manifest.Condition{cond(manifest.ConditionFailed, manifest.ConditionFalse, time.Second), cond(manifest.ConditionReady, manifest.ConditionFalse, 2*time.Minute)}, 2 * time.Minute},
		{"failing a day", []manifest.Condition{cond(manifest.ConditionFailed, manifest.ConditionTrue, 24*time.Hour)}, MaxRetryDelay},
	} {
		if got := RetryDelay(&manifest.StatusRecord{Conditions: tc.conds}, now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
