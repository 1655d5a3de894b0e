package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
)

// TestConcurrencyLimit: at most Concurrency calls are in flight at one
// broker, and the limit is reached.
func TestConcurrencyLimit(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			e := newEnv(t)
			e.ex.Concurrency = limit
			e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Delay: 60 * time.Millisecond})
			var steps []plan.Step
			for i := 0; i < 8; i++ {
				steps = append(steps, createInstance(fmt.Sprintf("db%d", i), fmt.Sprintf("id-%d", i), osbtest.PlanDBSmall, nil))
			}
			res := e.pass(steps...)
			if res.Counts.Created != 8 || res.Failed() {
				t.Fatalf("counts %+v", res.Counts)
			}
			e.mu.Lock()
			got := e.maxInFlight
			e.mu.Unlock()
			if got != limit {
				t.Fatalf("max %d calls in flight, want %d", got, limit)
			}
			if len(e.b.Instances()) != 8 {
				t.Fatalf("broker holds %d instances", len(e.b.Instances()))
			}
			for i, o := range res.Outcomes {
				if o.Ref != steps[i].Ref {
					t.Fatalf("outcome %d is %s, want plan order", i, o.Ref)
				}
			}
		})
	}
}

// TestDependencies: a step waits for the steps it depends on and is skipped
// (record unchanged, no call) unless they succeeded.
func TestDependencies(t *testing.T) {
	cases := []struct {
		name       string
		setup      func(e *env)
		instStatus Status
		bindStatus Status
	}{
		{name: "instance succeeds", instStatus: StatusSucceeded, bindStatus: StatusSucceeded},
		{name: "instance fails", instStatus: StatusFailed, bindStatus: StatusWaiting,
			setup: func(e *env) { e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 400}) }},
		{name: "instance goes async", instStatus: StatusInProgress, bindStatus: StatusWaiting,
			setup: func(e *env) {
				e.ex.InlinePoll = 0
				e.b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Async: true, Polls: 1}, osbtest.OpProvision)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			// Slow the instance down so an unordered bind would run first.
			e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Delay: 50 * time.Millisecond})
			bind := createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)
			bind.DependsOn = []manifest.Ref{instRef("db")}
			res := e.pass(createInstance("db", "i-1", osbtest.PlanDBSmall, nil), bind)
			wantStatus(t, res, instRef("db"), tc.instStatus)
			o := wantStatus(t, res, bindRef("app"), tc.bindStatus)
			if tc.bindStatus == StatusWaiting {
				if !strings.Contains(o.Summary, "waiting for ServiceInstance apps/db") || e.count(osbtest.EndpointBind) != 0 || res.Counts.Waiting != 1 {
					t.Fatalf("outcome %+v, %d binds", o, e.count(osbtest.EndpointBind))
				}
				// The write-ahead record stays as committed.
				if _, changed := res.Records[bindRef("app")]; changed {
					t.Fatal("a skipped step changed its record")
				}
			}
		})
	}
	t.Run("dependency ordered after the step", func(t *testing.T) {
		e := newEnv(t)
		bind := createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)
		bind.DependsOn = []manifest.Ref{instRef("db")}
		res := e.pass(bind, createInstance("db", "i-1", osbtest.PlanDBSmall, nil))
		wantStatus(t, res, bindRef("app"), StatusWaiting)
		wantStatus(t, res, instRef("db"), StatusSucceeded)
	})
}

// TestWriteAheadRecords checks the reserved records and that Run starts
// from them and refuses a WriteAhead step without one.
func TestWriteAheadRecords(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 500, time.UTC)
	readyInst := &manifest.StatusRecord{Ref: instRef("db"), Phase: manifest.PhaseReady, ExternalID: "i-1", Broker: brokerRef,
		Provisioned: true, Properties: *props(osbtest.PlanDBSmall, "old")}
	upd := updateInstance("db", "i-1", osbtest.PlanDBSmall, osbtest.PlanDBLarge, nil)
	upd.WriteAhead, upd.Record = true, readyInst
	bind := createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)
	noWA := createInstance("other", "o-1", osbtest.PlanDBSmall, nil)
	noWA.WriteAhead = false
	p := &plan.Plan{Revision: "rev-9", Steps: []plan.Step{createInstance("new", "n-1", osbtest.PlanDBSmall, nil), upd, bind, noWA}}
	wa := WriteAheadRecords(p, now)
	if len(wa) != 3 {
		t.Fatalf("%d records", len(wa))
	}
	c := wa[instRef("new")]
	if c.Phase != manifest.PhasePending || c.ExternalID != "n-1" || !c.Provisioned || c.Broker != brokerRef || c.InProgress == nil ||
		c.InProgress.PlanExternalID != osbtest.PlanDBSmall || c.ObservedRevision != "rev-9" || c.SpecHash != "spec-new" {
		t.Fatalf("create record %+v", c)
	}
	if c.LastOperation == nil || c.LastOperation.Type != manifest.OperationProvision || c.LastOperation.PlanID != osbtest.PlanDBSmall || c.AsyncOpInProgress {
		t.Fatalf("create last operation %+v", c.LastOperation)
	}
	wantCond(t, c, manifest.ConditionReady, manifest.ConditionFalse, ReasonPending)
	u := wa[instRef("db")]
	if u.Phase != manifest.PhaseReady || u.PlanExternalID != osbtest.PlanDBSmall || u.InProgress.PlanExternalID != osbtest.PlanDBLarge ||
		u.LastOperation.Type != manifest.OperationUpdate || u.LastOperation.PlanID != osbtest.PlanDBSmall {
		t.Fatalf("update record %+v op %+v", u, u.LastOperation)
	}
	b := wa[bindRef("app")]
	if b.Phase != manifest.PhasePending || b.InstanceName != "db" || b.InstanceExternalID != "i-1" || b.LastOperation.Type != manifest.OperationBind {
		t.Fatalf("binding record %+v", b)
	}
	for _, r := range wa {
		if _, err := manifest.MarshalRecord(cloneRecord(r)); err != nil {
			t.Fatal(err)
		}
	}
	if readyInst.InProgress != nil || readyInst.LastOperation != nil {
		t.Fatal("WriteAheadRecords modified Step.Record")
	}

	t.Run("Run refuses a WriteAhead step without its record", func(t *testing.T) {
		e := newEnv(t)
		res := e.ex.Run(context.Background(), &plan.Plan{Steps: []plan.Step{createInstance("db", "i-1", osbtest.PlanDBSmall, nil)}}, nil)
		o := wantStatus(t, res, instRef("db"), StatusFailed)
		if !errors.Is(o.Err, errWriteAheadMissing) || len(e.b.Calls()) != 0 || len(res.Records) != 0 {
			t.Fatalf("outcome %+v, %d calls, records %v", o, len(e.b.Calls()), res.Records)
		}
	})
	t.Run("Run starts from the write-ahead record", func(t *testing.T) {
		e := newEnv(t)
		e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 429, Times: 1})
		res := e.pass(createInstance("db", "i-1", osbtest.PlanDBSmall, nil))
		wantStatus(t, res, instRef("db"), StatusFailed)
		rec := e.rec(instRef("db"))
		// A transient failure leaves the reserved record plus a condition.
		if rec.Phase != manifest.PhasePending || !rec.Provisioned || rec.ExternalID != "i-1" {
			t.Fatalf("record %+v", rec)
		}
		wantCond(t, rec, manifest.ConditionFailed, manifest.ConditionTrue, ReasonCallFailed)
		// The next pass repeats the create with the same ID and converges.
		step := createInstance("db", "i-1", osbtest.PlanDBSmall, nil)
		step.WriteAhead = false
		wantStatus(t, e.pass(step), instRef("db"), StatusSucceeded)
		if e.rec(instRef("db")).Phase != manifest.PhaseReady || len(e.b.Instances()) != 1 {
			t.Fatal("did not converge")
		}
	})
	t.Run("repeated create after a crash is idempotent", func(t *testing.T) {
		e := newEnv(t)
		crash := errors.New("crash")
		e.ex.BeforeCall = func(context.Context, CallInfo) error { return nil }
		// First pass: the provision reaches the broker but the pass dies
		// before recording (modelled by dropping the result).
		p := &plan.Plan{Steps: []plan.Step{createInstance("db", "i-1", osbtest.PlanDBSmall, nil)}}
		wa := WriteAheadRecords(p, e.clock())
		e.records[instRef("db")] = wa[instRef("db")]
		_ = e.ex.Run(context.Background(), p, wa)
		// Second pass: the planner repeats the create from the Pending record.
		step := createInstance("db", "i-1", osbtest.PlanDBSmall, nil)
		step.WriteAhead = false
		wantStatus(t, e.pass(step), instRef("db"), StatusSucceeded)
		if c := mustLast(t, e.b, osbtest.EndpointProvision); c.Status != 200 {
			t.Fatalf("repeat answered %d, want 200 (identical)", c.Status)
		}
		if len(e.b.Instances()) != 1 {
			t.Fatal("duplicate")
		}
		// A hook error stops the call before it is sent.
		e.ex.BeforeCall = func(context.Context, CallInfo) error { return crash }
		n := len(e.b.Calls())
		res := e.pass(deleteInstance("db", "i-1", osbtest.PlanDBSmall))
		o := wantStatus(t, res, instRef("db"), StatusFailed)
		if !errors.Is(o.Err, crash) || len(e.b.Calls()) != n {
			t.Fatalf("outcome %+v", o)
		}
	})
}

// TestRecordOnlyActions covers none, forget, adopt and errors: no mutating
// call, and byte-identical records where nothing changes.
func TestRecordOnlyActions(t *testing.T) {
	e := newEnv(t)
	ref := instRef("db")
	wantStatus(t, e.pass(createInstance("db", "i-1", osbtest.PlanDBSmall, nil)), ref, StatusSucceeded)
	calls := len(e.b.Calls())
	e.advance(time.Hour)

	res := e.pass(plan.Step{Ref: ref, Action: plan.None, Reason: "in sync"})
	wantStatus(t, res, ref, StatusUnchanged)
	if len(res.Records) != 0 {
		t.Fatalf("none changed records: %v", res.Records)
	}

	res = e.pass(plan.Step{Ref: ref, Action: plan.None, Error: "spec.parameters: invalid"})
	o := wantStatus(t, res, ref, StatusFailed)
	rec := e.rec(ref)
	if rec.Error == nil || rec.Error.Message != "spec.parameters: invalid" || rec.Phase != manifest.PhaseReady || !res.Failed() || o.Err == nil {
		t.Fatalf("record %+v", rec)
	}
	// The same error again changes nothing.
	res = e.pass(plan.Step{Ref: ref, Action: plan.None, Error: "spec.parameters: invalid"})
	if len(res.Records) != 0 {
		t.Fatal("repeated error rewrote the record")
	}
	// Fixed: the error is cleared, nothing else.
	res = e.pass(plan.Step{Ref: ref, Action: plan.None})
	if r := res.Records[ref]; r == nil || r.Error != nil {
		t.Fatalf("error not cleared: %v", res.Records)
	}

	// An invalid new manifest gets a record holding only the error.
	res = e.pass(plan.Step{Ref: instRef("bad"), Action: plan.None, Error: "spec: unknown field"})
	if r := res.Records[instRef("bad")]; r == nil || r.Error == nil || r.Phase != "" || r.ExternalID != "" {
		t.Fatalf("record %+v", r)
	}

	res = e.pass(plan.Step{Ref: instRef("adopted"), Action: plan.Adopt, ExternalID: "live-1", Target: target(osbtest.PlanDBLarge),
		Desired: props(osbtest.PlanDBLarge, "c"), DeletionPolicy: "Retain", Source: &manifest.Source{}})
	wantStatus(t, res, instRef("adopted"), StatusSucceeded)
	rec = e.rec(instRef("adopted"))
	if rec.Phase != manifest.PhaseReady || !rec.Provisioned || rec.ExternalID != "live-1" || rec.PlanExternalID != osbtest.PlanDBLarge || rec.DeletionPolicy != "Retain" {
		t.Fatalf("adopted record %+v", rec)
	}
	wantCond(t, rec, manifest.ConditionReady, manifest.ConditionTrue, ReasonAdopted)
	if res.Counts.Adopted != 1 {
		t.Fatalf("counts %+v", res.Counts)
	}

	res = e.pass(plan.Step{Ref: instRef("adopted"), Action: plan.Forget})
	wantStatus(t, res, instRef("adopted"), StatusSucceeded)
	if r, ok := res.Records[instRef("adopted")]; !ok || r != nil {
		t.Fatal("forget did not delete the record")
	}
	if len(e.b.Calls()) != calls {
		t.Fatalf("record-only actions made %d calls", len(e.b.Calls())-calls)
	}
}

// TestRepeatedCreateByteIdentical: running the same create twice (the
// second answered 200 by the broker) gives the same record bytes, since
// condition transition times are kept.
func TestRepeatedCreateByteIdentical(t *testing.T) {
	e := newEnv(t)
	ref := instRef("db")
	step := createInstance("db", "i-1", osbtest.PlanDBSmall, nil)
	wantStatus(t, e.pass(step), ref, StatusSucceeded)
	first, _ := manifest.MarshalRecord(cloneRecord(e.rec(ref)))
	step.WriteAhead = false
	res := e.pass(step)
	wantStatus(t, res, ref, StatusSucceeded)
	if _, changed := res.Records[ref]; changed {
		second, _ := manifest.MarshalRecord(cloneRecord(res.Records[ref]))
		t.Fatalf("record changed:\n%s\n---\n%s", first, second)
	}
}

// TestBrokerLookupFailure: a broker without a client fails its steps only.
func TestBrokerLookupFailure(t *testing.T) {
	e := newEnv(t)
	other := createInstance("x", "x-1", osbtest.PlanDBSmall, nil)
	other.Target.Broker = manifest.Ref{Kind: manifest.KindClusterServiceBroker, Name: "missing"}
	res := e.pass(other, createInstance("db", "i-1", osbtest.PlanDBSmall, nil))
	o := wantStatus(t, res, instRef("x"), StatusFailed)
	var ub *unknownBroker
	if !errors.As(o.Err, &ub) {
		t.Fatalf("err %v", o.Err)
	}
	wantCond(t, e.rec(instRef("x")), manifest.ConditionFailed, manifest.ConditionTrue, ReasonCallFailed)
	wantStatus(t, res, instRef("db"), StatusSucceeded)
}

// TestRefusedPlan runs nothing.
func TestRefusedPlan(t *testing.T) {
	e := newEnv(t)
	res := e.ex.Run(context.Background(), &plan.Plan{Refused: "too many deletions", Steps: []plan.Step{deleteInstance("db", "i", osbtest.PlanDBSmall)}}, nil)
	if res.Refused == "" || len(res.Outcomes) != 0 || len(e.b.Calls()) != 0 {
		t.Fatalf("result %+v", res)
	}
}

// TestIdentityOnUserCalls: user-caused calls carry the originating
// identity in the kubernetes profile.
func TestIdentityOnUserCalls(t *testing.T) {
	e := newEnv(t)
	wantStatus(t, e.pass(createInstance("db", "i-1", osbtest.PlanDBSmall, nil)), instRef("db"), StatusSucceeded)
	wantStatus(t, e.pass(createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)), bindRef("app"), StatusSucceeded)
	wantStatus(t, e.pass(deleteBinding("app", "b-1", "i-1", osbtest.PlanDBSmall)), bindRef("app"), StatusSucceeded)
	for _, c := range e.b.MutatingCalls() {
		if h := c.Headers.Get(osbclient.HeaderOriginatingIdentity); !strings.HasPrefix(h, "kubernetes ") {
			t.Fatalf("%s without identity: %q", c.Endpoint, h)
		}
	}
}

// TestDeleteFailures: a delete the broker gave no verdict on leaves the
// record Deprovisioning with a Failed condition and a retry due; one it
// refused (a verdict) leaves it Failed until osbgit retry (issue 19).
func TestDeleteFailures(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(e *env)
		planID  string
		reason  string
		verdict bool
	}{
		{name: "deprovision 400", planID: osbtest.PlanDBSmall, reason: ReasonDeprovisionFailed, verdict: true,
			setup: func(e *env) {
				e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointDeprovision, Status: 400, Times: 1})
			}},
		{name: "deprovision 500", planID: osbtest.PlanDBSmall, reason: ReasonCallFailed,
			setup: func(e *env) {
				e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointDeprovision, Status: 500, Times: 1})
			}},
		{name: "async deprovision failed", planID: osbtest.PlanDBAsync, reason: ReasonDeprovisionFailed, verdict: true,
			setup: func(e *env) {
				e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: 0, Fail: true}, osbtest.OpDeprovision)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ref := instRef("db")
			wantStatus(t, e.pass(createInstance("db", "d-1", tc.planID, nil)), ref, StatusSucceeded)
			tc.setup(e)
			res := e.pass(deleteInstance("db", "d-1", tc.planID))
			wantStatus(t, res, ref, StatusFailed)
			rec := e.rec(ref)
			// A verdict (400, state failed) stays until osbgit retry; no
			// verdict (500) keeps a retry due.
			wantPhase := manifest.PhaseDeprovisioning
			if tc.verdict {
				wantPhase = manifest.PhaseFailed
			}
			if rec.Phase != wantPhase || rec.AsyncOpInProgress || !rec.Provisioned || rec.RetryPending() == tc.verdict {
				t.Fatalf("record %+v", rec)
			}
			wantCond(t, rec, manifest.ConditionFailed, manifest.ConditionTrue, tc.reason)
			if _, ok := e.b.Instance("d-1"); !ok {
				t.Fatal("instance gone although the delete failed")
			}
			// Retried by the next pass.
			e.b.ClearBehaviors()
			wantStatus(t, e.pass(deleteInstance("db", "d-1", tc.planID)), ref, StatusSucceeded)
			if _, ok := e.records[ref]; ok {
				t.Fatal("record kept after the delete")
			}
		})
	}
}

// TestSecretWriteFailure: the binding exists but its Secret cannot be
// written (a Secret of that name is not osbgit's): the create stays
// pending, and the next pass gets the credentials again (200) and writes
// them once the conflict is gone.
func TestSecretWriteFailure(t *testing.T) {
	e := newEnv(t)
	ref := bindRef("app")
	e.b.PutInstance(osbtest.Instance{ID: "i-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall, OrganizationGUID: "o", SpaceGUID: "s"})
	writeHandSecret(t, e, "app-creds", map[string]string{"mine": "x"})
	res := e.pass(createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall))
	o := wantStatus(t, res, ref, StatusFailed)
	rec := e.rec(ref)
	if rec.Phase != manifest.PhasePending || !rec.Provisioned || rec.SecretRef != nil {
		t.Fatalf("record %+v (%v)", rec, o.Err)
	}
	wantCond(t, rec, manifest.ConditionFailed, manifest.ConditionTrue, ReasonSecretWriteFailed)
	if e.count(osbtest.EndpointUnbind) != 0 {
		t.Fatal("unbound a binding whose Secret failed")
	}
	data, _ := e.store.Get(t.Context(), ns, "app-creds")
	if string(data["mine"]) != "x" || len(data) != 1 {
		t.Fatal("the unmanaged Secret was modified")
	}
	if err := os.RemoveAll(filepath.Join(e.store.Path(), ns, "app-creds")); err != nil {
		t.Fatal(err)
	}
	step := createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)
	step.WriteAhead = false
	wantStatus(t, e.pass(step), ref, StatusSucceeded)
	if c := mustLast(t, e.b, osbtest.EndpointBind); c.Status != 200 {
		t.Fatalf("repeat bind answered %d", c.Status)
	}
	if rec := e.rec(ref); rec.Phase != manifest.PhaseReady || rec.SecretRef == nil {
		t.Fatalf("record %+v", rec)
	}
}

// TestAdoptBinding: adopting a binding the broker holds fetches its
// credentials (GET) and writes the Secret, with no mutating call.
func TestAdoptBinding(t *testing.T) {
	e := newEnv(t)
	e.b.PutInstance(osbtest.Instance{ID: "i-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall, OrganizationGUID: "o", SpaceGUID: "s"})
	e.b.PutBinding(osbtest.Binding{ID: "b-live", InstanceID: "i-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall})
	step := createBinding("app", "b-live", "db", "i-1", osbtest.PlanDBSmall)
	step.Action, step.WriteAhead = plan.Adopt, false
	res := e.pass(step)
	wantStatus(t, res, bindRef("app"), StatusSucceeded)
	rec := e.rec(bindRef("app"))
	if rec.Phase != manifest.PhaseReady || rec.SecretRef == nil || rec.ExternalID != "b-live" {
		t.Fatalf("record %+v", rec)
	}
	if len(e.b.MutatingCalls()) != 0 || e.count(osbtest.EndpointGetBinding) != 1 {
		t.Fatalf("calls %d mutating, %d GET", len(e.b.MutatingCalls()), e.count(osbtest.EndpointGetBinding))
	}
	// Adopting it again (e.g. a deletion-policy change) needs no call.
	step.DeletionPolicy = "Retain"
	res = e.pass(step)
	wantStatus(t, res, bindRef("app"), StatusSucceeded)
	if e.count(osbtest.EndpointGetBinding) != 1 || e.rec(bindRef("app")).DeletionPolicy != "Retain" {
		t.Fatal("re-adopt fetched again or lost the policy")
	}
}

// TestCanceledContext: no call is made once the context is done.
func TestCanceledContext(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := &plan.Plan{Steps: []plan.Step{createInstance("db", "i-1", osbtest.PlanDBSmall, nil)}}
	res := e.ex.Run(ctx, p, WriteAheadRecords(p, e.clock()))
	o := wantStatus(t, res, instRef("db"), StatusFailed)
	if !errors.Is(o.Err, context.Canceled) || len(e.b.Calls()) != 0 {
		t.Fatalf("outcome %+v calls %d", o, len(e.b.Calls()))
	}
}

// TestNoOpStepsRunInline checks that steps with nothing to do whose
// dependencies are done run without a goroutine each (a pass over 200,000
// unchanged resources started as many at once), and that one depending on
// a step that did not succeed still waits for it.
func TestNoOpStepsRunInline(t *testing.T) {
	e := newEnv(t)
	const n = 300
	var steps []plan.Step
	for i := range n {
		steps = append(steps, plan.Step{Ref: instRef(fmt.Sprint("db-", i)), Action: plan.None})
	}
	for i := range n {
		steps = append(steps, plan.Step{Ref: bindRef(fmt.Sprint("b-", i)), Action: plan.None, DependsOn: []manifest.Ref{instRef(fmt.Sprint("db-", i))}})
	}
	steps = append(steps,
		plan.Step{Ref: instRef("broken"), Action: plan.None, Error: "spec: unknown field"},
		plan.Step{Ref: bindRef("on-broken"), Action: plan.None, DependsOn: []manifest.Ref{instRef("broken")}})
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	most := 0
	e.ex.OnProgress = func(Progress) {
		mu.Lock()
		most = max(most, runtime.NumGoroutine())
		mu.Unlock()
	}
	res := e.pass(steps...)
	if most > base+10 {
		t.Errorf("%d goroutines while %d no-op steps ran (%d before)", most, 2*n, base)
	}
	for i := range n {
		wantStatus(t, res, bindRef(fmt.Sprint("b-", i)), StatusUnchanged)
	}
	wantStatus(t, res, instRef("broken"), StatusFailed)
	wantStatus(t, res, bindRef("on-broken"), StatusWaiting)
}

// TestRecordChangedWithBaseJSON: a base given with its RecordJSON compares
// as one encoded here.
func TestRecordChangedWithBaseJSON(t *testing.T) {
	base := WriteAheadRecords(&plan.Plan{Revision: "rev-1", Steps: []plan.Step{createInstance("db", "i-1", osbtest.PlanDBSmall, nil)}},
		time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))[instRef("db")]
	baseJSON, err := manifest.RecordJSON(cloneRecord(base))
	if err != nil {
		t.Fatal(err)
	}
	ready := cloneRecord(base)
	ready.Phase = manifest.PhaseReady
	for _, tc := range []struct {
		name string
		rec  *manifest.StatusRecord
		want bool
	}{
		{"same", cloneRecord(base), false},
		{"ready", ready, true},
	} {
		for _, given := range [][]byte{nil, baseJSON} {
			changed, rendered, err := recordChanged(base, given, tc.rec)
			want, _ := manifest.RecordJSON(cloneRecord(tc.rec))
			if err != nil || changed != tc.want || string(rendered) != string(want) {
				t.Errorf("%s (base JSON given: %v): changed %v, rendered %s, %v; want %v", tc.name, given != nil, changed, rendered, err, tc.want)
			}
		}
	}
}
