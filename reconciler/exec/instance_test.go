package exec

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
)

// TestInstanceLifecycleSync runs create, update (plan and parameters),
// update (parameters only, then plan only) and delete against a synchronous
// broker, checking the records and the broker's own state after each.
func TestInstanceLifecycleSync(t *testing.T) {
	e := newEnv(t)
	const id = "inst-1"
	ref := instRef("db")
	steps := []struct {
		name  string
		step  plan.Step
		check func(t *testing.T, res *Result)
	}{
		{
			name: "create",
			step: createInstance("db", id, osbtest.PlanDBSmall, map[string]any{"size": 1, "password": "hunter2-param"}),
			check: func(t *testing.T, res *Result) {
				wantStatus(t, res, ref, StatusSucceeded)
				rec := e.rec(ref)
				if rec.Phase != manifest.PhaseReady || !rec.Provisioned || rec.InProgress != nil || rec.AsyncOpInProgress {
					t.Fatalf("record %+v", rec)
				}
				if rec.PlanExternalID != osbtest.PlanDBSmall || rec.ParameterChecksum != "sum-db" || rec.ExternalID != id {
					t.Fatalf("properties %+v", rec.Properties)
				}
				if rec.LastOperation == nil || rec.LastOperation.Type != manifest.OperationProvision || rec.LastOperation.State != manifest.OperationSucceeded {
					t.Fatalf("last operation %+v", rec.LastOperation)
				}
				if rec.SpecHash != "spec-db" || rec.ObservedRevision != "rev-1" || rec.Broker != brokerRef {
					t.Fatalf("facts %+v", rec)
				}
				if !strings.Contains(rec.DashboardURL, id) {
					t.Fatalf("dashboard %q", rec.DashboardURL)
				}
				wantCond(t, rec, manifest.ConditionReady, manifest.ConditionTrue, ReasonProvisionedSuccessfully)
				in, ok := e.b.Instance(id)
				if !ok || in.PlanID != osbtest.PlanDBSmall || in.Parameters["size"] != float64(1) {
					t.Fatalf("broker instance %+v", in)
				}
				if in.OrganizationGUID != "cluster-1" || in.SpaceGUID != ns || in.Context.InstanceName != "db" {
					t.Fatalf("broker instance org/space/context %+v", in)
				}
				c, _ := e.b.LastCall(osbtest.EndpointProvision)
				if c.Query.Get("accepts_incomplete") != "true" || c.Headers.Get(osbclient.HeaderOriginatingIdentity) == "" {
					t.Fatalf("provision call query %v identity %q", c.Query, c.Headers.Get(osbclient.HeaderOriginatingIdentity))
				}
				if res.Counts.Created != 1 || res.Failed() {
					t.Fatalf("counts %+v", res.Counts)
				}
			},
		},
		{
			name: "update plan and parameters",
			step: updateInstance("db", id, osbtest.PlanDBSmall, osbtest.PlanDBPinned, map[string]any{"size": 2}),
			check: func(t *testing.T, res *Result) {
				wantStatus(t, res, ref, StatusSucceeded)
				rec := e.rec(ref)
				if rec.Phase != manifest.PhaseReady || rec.PlanExternalID != osbtest.PlanDBPinned || rec.ParameterChecksum != "sum2-db" || rec.InProgress != nil {
					t.Fatalf("record %+v", rec)
				}
				if rec.LastOperation.Type != manifest.OperationUpdate || rec.LastOperation.PlanID != osbtest.PlanDBSmall {
					t.Fatalf("last operation %+v (want pre-update plan)", rec.LastOperation)
				}
				wantCond(t, rec, manifest.ConditionReady, manifest.ConditionTrue, ReasonUpdatedSuccessfully)
				in, _ := e.b.Instance(id)
				if in.PlanID != osbtest.PlanDBPinned || in.Parameters["size"] != float64(2) || in.Parameters["password"] != "hunter2-param" {
					t.Fatalf("broker instance %+v", in)
				}
				body := bodyOf(t, mustLast(t, e.b, osbtest.EndpointUpdate))
				pv, _ := body["previous_values"].(map[string]any)
				if body["plan_id"] != osbtest.PlanDBPinned || pv["plan_id"] != osbtest.PlanDBSmall {
					t.Fatalf("update body plan_id %v previous_values %v", body["plan_id"], pv)
				}
				if res.Counts.Updated != 1 {
					t.Fatalf("counts %+v", res.Counts)
				}
			},
		},
		{
			name: "update without parameters sends none",
			step: func() plan.Step {
				s := updateInstance("db", id, osbtest.PlanDBPinned, osbtest.PlanDBPinned, nil)
				s.SendParameters, s.Parameters = false, map[string]any{"size": 99}
				return s
			}(),
			check: func(t *testing.T, res *Result) {
				wantStatus(t, res, ref, StatusSucceeded)
				body := bodyOf(t, mustLast(t, e.b, osbtest.EndpointUpdate))
				if _, ok := body["parameters"]; ok {
					t.Fatalf("parameters sent although SendParameters is false: %v", body)
				}
				if _, ok := body["plan_id"]; ok {
					t.Fatalf("plan_id sent although SendPlan is false: %v", body)
				}
				in, _ := e.b.Instance(id)
				if in.Parameters["size"] != float64(2) {
					t.Fatalf("broker parameters changed: %v", in.Parameters)
				}
			},
		},
		{
			name: "delete",
			step: deleteInstance("db", id, osbtest.PlanDBPinned),
			check: func(t *testing.T, res *Result) {
				wantStatus(t, res, ref, StatusSucceeded)
				if rec, ok := res.Records[ref]; !ok || rec != nil {
					t.Fatalf("want the record deleted (nil), got %v %v", rec, ok)
				}
				if _, ok := e.b.Instance(id); ok {
					t.Fatal("broker still holds the instance")
				}
				c := mustLast(t, e.b, osbtest.EndpointDeprovision)
				if c.Query.Get("plan_id") != osbtest.PlanDBPinned || c.Query.Get("accepts_incomplete") != "true" {
					t.Fatalf("deprovision query %v", c.Query)
				}
				if c.Headers.Get(osbclient.HeaderOriginatingIdentity) == "" {
					t.Fatal("user-caused deprovision without originating identity")
				}
				if res.Counts.Deleted != 1 {
					t.Fatalf("counts %+v", res.Counts)
				}
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.check(t, e.pass(st.step))
		})
	}
}

func mustLast(t *testing.T, b *osbtest.Broker, ep osbtest.Endpoint) osbtest.Call {
	t.Helper()
	c, ok := b.LastCall(ep)
	if !ok {
		t.Fatalf("no %s call", ep)
	}
	return c
}

// TestAsyncProvision covers an asynchronous provision converging inline,
// and, with InlinePoll 0, recorded in progress and finished by later Poll
// steps, with unchanged polls leaving the record byte-identical.
func TestAsyncProvision(t *testing.T) {
	t.Run("converges inline", func(t *testing.T) {
		e := newEnv(t)
		res := e.pass(createInstance("db", "a-1", osbtest.PlanDBAsync, nil))
		wantStatus(t, res, instRef("db"), StatusSucceeded)
		rec := e.rec(instRef("db"))
		if rec.Phase != manifest.PhaseReady || rec.AsyncOpInProgress || rec.LastOperation.Operation == "" || rec.LastOperation.State != manifest.OperationSucceeded {
			t.Fatalf("record %+v op %+v", rec, rec.LastOperation)
		}
		if n := e.count(osbtest.EndpointLastOperation); n != 3 {
			t.Fatalf("%d polls, want 3 (2 in progress + succeeded)", n)
		}
		if in, _ := e.b.Instance("a-1"); in.State != osbtest.StateReady {
			t.Fatalf("broker state %s", in.State)
		}
	})
	t.Run("recorded and polled by later runs", func(t *testing.T) {
		e := newEnv(t)
		e.ex.InlinePoll = 0
		ref := instRef("db")
		res := e.pass(createInstance("db", "a-2", osbtest.PlanDBAsync, nil))
		o := wantStatus(t, res, ref, StatusInProgress)
		if !o.InProgress || res.Counts.InProgress != 1 || res.Failed() {
			t.Fatalf("outcome %+v counts %+v", o, res.Counts)
		}
		rec := e.rec(ref)
		if rec.Phase != manifest.PhaseProvisioning || !rec.AsyncOpInProgress || rec.InProgress == nil || rec.LastOperation.Operation == "" {
			t.Fatalf("record %+v", rec)
		}
		if rec.LastOperation.PlanID != osbtest.PlanDBAsync || rec.LastOperation.ServiceID != osbtest.ServiceDB {
			t.Fatalf("last operation %+v", rec.LastOperation)
		}
		wantCond(t, rec, manifest.ConditionReady, manifest.ConditionFalse, ReasonProvisioning)
		if n := e.count(osbtest.EndpointLastOperation); n != 0 {
			t.Fatalf("%d polls with InlinePoll 0", n)
		}
		// Two polls still in progress: nothing changes in the record.
		for i := 0; i < 2; i++ {
			e.advance(time.Minute)
			res = e.pass(pollStep(e.rec(ref)))
			wantStatus(t, res, ref, StatusInProgress)
			if _, changed := res.Records[ref]; changed {
				t.Fatalf("poll %d: an in-progress poll changed the record", i)
			}
			if res.Counts.Polled != 1 {
				t.Fatalf("counts %+v", res.Counts)
			}
		}
		res = e.pass(pollStep(e.rec(ref)))
		wantStatus(t, res, ref, StatusSucceeded)
		rec = e.rec(ref)
		if rec.Phase != manifest.PhaseReady || rec.AsyncOpInProgress || rec.InProgress != nil || rec.PlanExternalID != osbtest.PlanDBAsync {
			t.Fatalf("record %+v", rec)
		}
		if res.Counts.Created != 1 || res.Counts.Polled != 1 {
			t.Fatalf("counts %+v", res.Counts)
		}
	})
}

// asyncUpdateEnv is an instance db (instance_id id) provisioned on the
// small plan, whose updates to the pinned plan are async and answer polls
// "in progress" polls times; passes do not poll inline.
func asyncUpdateEnv(t *testing.T, id string, polls int) (*env, manifest.Ref) {
	t.Helper()
	e := newEnv(t)
	e.ex.InlinePoll = 0
	ref := instRef("db")
	e.b.SetBehavior(osbtest.PlanDBPinned, osbtest.Behavior{Async: true, Polls: polls}, osbtest.OpUpdate)
	wantStatus(t, e.pass(createInstance("db", id, osbtest.PlanDBSmall, nil)), ref, StatusSucceeded)
	return e, ref
}

// TestAsyncUpdatePollsWithPreUpdatePlan: an async update records the plan
// before the update and polls with it (osbtest refuses any other).
func TestAsyncUpdatePollsWithPreUpdatePlan(t *testing.T) {
	e, ref := asyncUpdateEnv(t, "u-1", 1)
	res := e.pass(updateInstance("db", "u-1", osbtest.PlanDBSmall, osbtest.PlanDBPinned, nil))
	wantStatus(t, res, ref, StatusInProgress)
	rec := e.rec(ref)
	if rec.Phase != manifest.PhaseUpdating || rec.LastOperation.PlanID != osbtest.PlanDBSmall || rec.InProgress.PlanExternalID != osbtest.PlanDBPinned {
		t.Fatalf("record %+v op %+v", rec, rec.LastOperation)
	}
	// A poll with the new plan is refused by the strict broker...
	bad := pollStep(rec)
	bad.Operation.PlanID = osbtest.PlanDBPinned
	res = e.pass(bad)
	o := wantStatus(t, res, ref, StatusFailed)
	if !o.InProgress || !strings.Contains(o.Err.Error(), "400") {
		t.Fatalf("outcome %+v", o)
	}
	// ...the recorded one is accepted, and the update completes.
	e.ex.InlinePoll = 5 * time.Second
	res = e.pass(pollStep(e.rec(ref)))
	wantStatus(t, res, ref, StatusSucceeded)
	rec = e.rec(ref)
	if rec.Phase != manifest.PhaseReady || rec.PlanExternalID != osbtest.PlanDBPinned {
		t.Fatalf("record %+v", rec)
	}
	for _, c := range e.b.CallsTo(osbtest.EndpointLastOperation) {
		if c.Status == http.StatusOK && c.Query.Get("plan_id") != osbtest.PlanDBSmall {
			t.Fatalf("poll with plan_id %q", c.Query.Get("plan_id"))
		}
	}
	if in, _ := e.b.Instance("u-1"); in.PlanID != osbtest.PlanDBPinned {
		t.Fatalf("broker plan %s", in.PlanID)
	}
}

// TestAsyncUpdateUnreadableAccept: a 202 to an update whose body cannot be
// read (the operation key is lost) is no verdict. The record keeps the old
// properties without a Failed verdict; the repeated update (without
// previous_values) meets the broker's running operation, is followed by
// its poll, and completes on the new plan.
func TestAsyncUpdateUnreadableAccept(t *testing.T) {
	e, ref := asyncUpdateEnv(t, "u-2", 2)
	e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: http.StatusAccepted, Malformed: true, AfterEffect: true, Times: 1})
	step := updateInstance("db", "u-2", osbtest.PlanDBSmall, osbtest.PlanDBPinned, nil)
	wantStatus(t, e.pass(step), ref, StatusFailed)
	rec := e.rec(ref)
	if rec.Phase != manifest.PhaseReady || rec.PlanExternalID != osbtest.PlanDBSmall {
		t.Fatalf("after the unreadable 202: phase %s plan %s", rec.Phase, rec.PlanExternalID)
	}
	wantCond(t, rec, manifest.ConditionFailed, manifest.ConditionTrue, ReasonCallFailed)
	var done bool
	for pass := 0; pass < 6 && !done; pass++ {
		res := e.pass(updateInstance("db", "u-2", osbtest.PlanDBSmall, osbtest.PlanDBPinned, nil))
		switch o := res.Outcomes[0]; o.Status {
		case StatusRetryLater, StatusInProgress:
		case StatusSucceeded:
			done = true
		default:
			t.Fatalf("pass %d: %+v", pass, o)
		}
		if r := e.rec(ref); r.Phase == manifest.PhaseUpdating {
			res = e.pass(pollStep(r))
			done = e.rec(ref).Phase == manifest.PhaseReady
		}
	}
	rec = e.rec(ref)
	if !done || rec.Phase != manifest.PhaseReady || rec.PlanExternalID != osbtest.PlanDBPinned {
		t.Fatalf("not converged: phase %s plan %s", rec.Phase, rec.PlanExternalID)
	}
	if manifest.FindCondition(rec.Conditions, manifest.ConditionFailed) != nil {
		t.Fatalf("a Failed condition is left: %+v", rec.Conditions)
	}
	if in, _ := e.b.Instance("u-2"); in.PlanID != osbtest.PlanDBPinned {
		t.Fatalf("broker plan %s", in.PlanID)
	}
	var statuses []int
	for _, c := range e.b.CallsTo(osbtest.EndpointUpdate) {
		statuses = append(statuses, c.Status)
	}
	// osbtest answers an identical re-sent PATCH during its own update
	// with 202 and the same operation (a broker without that idempotency
	// answers 422 ConcurrencyError, retried later).
	if len(statuses) < 2 || statuses[0] != http.StatusAccepted ||
		statuses[1] != http.StatusAccepted && statuses[1] != http.StatusUnprocessableEntity {
		t.Fatalf("update answers %v, want 202 (unreadable), then 202 or 422 while it runs", statuses)
	}
	for _, c := range e.b.CallsTo(osbtest.EndpointUpdate)[1:] {
		if strings.Contains(string(c.Body), "previous_values") {
			t.Fatalf("a repeated update after no verdict sent previous_values: %s", c.Body)
		}
	}
}

// TestDeleteGone: 410 on deprovision is success, and so is 410 on the
// last_operation poll of an async deprovision.
func TestDeleteGone(t *testing.T) {
	t.Run("deprovision 410", func(t *testing.T) {
		e := newEnv(t)
		ref := instRef("db")
		e.records[ref] = &manifest.StatusRecord{Ref: ref, Phase: manifest.PhaseReady, ExternalID: "gone-1", Broker: brokerRef, Provisioned: true,
			Properties: *props(osbtest.PlanDBSmall, "x")}
		res := e.pass(deleteInstance("db", "gone-1", osbtest.PlanDBSmall))
		wantStatus(t, res, ref, StatusSucceeded)
		if rec, ok := res.Records[ref]; !ok || rec != nil {
			t.Fatal("record not deleted")
		}
		if c := mustLast(t, e.b, osbtest.EndpointDeprovision); c.Status != http.StatusGone {
			t.Fatalf("broker answered %d", c.Status)
		}
	})
	t.Run("last_operation 410 during deprovision", func(t *testing.T) {
		e := newEnv(t)
		e.ex.InlinePoll = 0
		ref := instRef("db")
		e.b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: -1}, osbtest.OpDeprovision)
		e.ex.InlinePoll = 5 * time.Second
		wantStatus(t, e.pass(createInstance("db", "g-2", osbtest.PlanDBAsync, nil)), ref, StatusSucceeded)
		e.ex.InlinePoll = 0
		res := e.pass(deleteInstance("db", "g-2", osbtest.PlanDBAsync))
		wantStatus(t, res, ref, StatusInProgress)
		if rec := e.rec(ref); rec.Phase != manifest.PhaseDeprovisioning || !rec.AsyncOpInProgress {
			t.Fatalf("record %+v", rec)
		}
		e.b.RemoveInstance("g-2") // the broker forgets it: polls answer 410
		res = e.pass(pollStep(e.rec(ref)))
		wantStatus(t, res, ref, StatusSucceeded)
		if rec, ok := res.Records[ref]; !ok || rec != nil {
			t.Fatal("record not deleted after 410")
		}
		if c := mustLast(t, e.b, osbtest.EndpointLastOperation); c.Status != http.StatusGone {
			t.Fatalf("poll answered %d", c.Status)
		}
	})
	// Issue 19: OSB 2.17 says a 410 while a create or update runs is an
	// invalid answer and polling goes on; it used to mark the instance
	// Failed and not provisioned although the broker held it (with prune,
	// a leak).
	for _, op := range []struct {
		name string
		step func(e *env) plan.Step
	}{
		{"provision", func(e *env) plan.Step { return createInstance("db", "g-3", osbtest.PlanDBAsync, nil) }},
		{"update", func(e *env) plan.Step {
			e.records[instRef("db")] = &manifest.StatusRecord{Ref: instRef("db"), Phase: manifest.PhaseReady, ExternalID: "g-3",
				Broker: brokerRef, Provisioned: true, Properties: *props(osbtest.PlanDBAsync, "sum-db")}
			e.b.PutInstance(osbtest.Instance{ID: "g-3", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBAsync, OrganizationGUID: "o", SpaceGUID: "s"})
			return updateInstance("db", "g-3", osbtest.PlanDBAsync, osbtest.PlanDBAsync, map[string]any{"size": 5})
		}},
	} {
		t.Run("last_operation 410 during "+op.name+" is polled on", func(t *testing.T) {
			e := newEnv(t)
			e.ex.InlinePoll = 0
			ref := instRef("db")
			wantStatus(t, e.pass(op.step(e)), ref, StatusInProgress)
			e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointLastOperation, Status: http.StatusGone, Times: 2})
			for i := 0; i < 2; i++ {
				wantStatus(t, e.pass(pollStep(e.rec(ref))), ref, StatusInProgress)
				if rec := e.rec(ref); rec.Phase == manifest.PhaseFailed || !rec.Provisioned || !rec.AsyncOpInProgress {
					t.Fatalf("after a 410 poll: record %+v", rec)
				}
			}
			var res *Result
			for i := 0; i < 5 && e.rec(ref).AsyncOpInProgress; i++ {
				res = e.pass(pollStep(e.rec(ref)))
			}
			wantStatus(t, res, ref, StatusSucceeded)
			if rec := e.rec(ref); rec.Phase != manifest.PhaseReady || !rec.Provisioned {
				t.Fatalf("record after the broker answered again: %+v", rec)
			}
			if e.count(osbtest.EndpointDeprovision) != 0 {
				t.Fatal("a DELETE for an instance the broker holds")
			}
		})
	}
	t.Run("last_operation 410 until the polling deadline: orphan mitigation", func(t *testing.T) {
		e := newEnv(t)
		e.ex.InlinePoll = 0
		ref := instRef("db")
		wantStatus(t, e.pass(createInstance("db", "g-4", osbtest.PlanDBAsync, nil)), ref, StatusInProgress)
		e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointLastOperation, Status: http.StatusGone})
		e.advance(11 * time.Minute)
		step := pollStep(e.rec(ref))
		step.PollDeadline = e.rec(ref).LastOperation.StartTime.Add(10 * time.Minute)
		e.pass(step)
		if e.count(osbtest.EndpointDeprovision) != 1 {
			t.Fatalf("%d DELETEs after the deadline, want the orphan mitigation's one", e.count(osbtest.EndpointDeprovision))
		}
	})
}

// TestConcurrencyErrorRetryLater: 422 ConcurrencyError on create, update and
// delete is "retry later": no orphan mitigation, not a failure; the Ready
// condition's reason and message change, and a retry is due (RetryAt).
func TestConcurrencyErrorRetryLater(t *testing.T) {
	cases := []struct {
		name string
		step func() plan.Step
	}{
		{"create", func() plan.Step { return createInstance("db", "busy-1", osbtest.PlanDBSmall, nil) }},
		{"update", func() plan.Step {
			return updateInstance("db", "busy-1", osbtest.PlanDBSmall, osbtest.PlanDBSmall, map[string]any{"size": 3})
		}},
		{"delete", func() plan.Step { return deleteInstance("db", "busy-1", osbtest.PlanDBSmall) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ref := instRef("db")
			base := &manifest.StatusRecord{Ref: ref, Phase: manifest.PhaseReady, ExternalID: "busy-1", Broker: brokerRef, Provisioned: true,
				Properties: *props(osbtest.PlanDBSmall, "x"), ObservedRevision: "rev-1", SpecHash: "spec-db"}
			base.Conditions = manifest.SetCondition(nil, manifest.Condition{Type: manifest.ConditionReady, Status: manifest.ConditionTrue, Reason: ReasonProvisionedSuccessfully}, e.clock())
			if tc.name == "create" {
				base = nil
			}
			if base != nil {
				e.records[ref] = base
			}
			// An update is in progress at the broker (started elsewhere).
			e.b.PutInstance(osbtest.Instance{ID: "busy-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall,
				OrganizationGUID: "cluster-1", SpaceGUID: ns, Context: kubeContext("db"), State: osbtest.StateUpdating})
			res := e.pass(tc.step())
			o := wantStatus(t, res, ref, StatusRetryLater)
			if !osbclient.IsConcurrencyError(o.Err) || res.Failed() || res.Counts.RetryLater != 1 {
				t.Fatalf("outcome %+v counts %+v", o, res.Counts)
			}
			rec := e.rec(ref)
			wantCond(t, rec, manifest.ConditionReady, "", ReasonConcurrencyError)
			// Issue 19: a retry stays due (10 s at first), for every
			// operation.
			if want := e.clock().Add(MinRetryDelay); rec.Retry == nil || !rec.Retry.At.Time.Equal(want) || !res.NextPoll().Equal(want) {
				t.Fatalf("retry %+v, next poll %v; want both at %v", rec.Retry, res.NextPoll(), want)
			}
			if tc.name != "create" {
				want := cloneRecord(base)
				want.Conditions, want.Retry = rec.Conditions, rec.Retry
				if changed, _, _ := recordChanged(want, nil, rec); changed {
					t.Fatalf("record changed beyond the condition:\n%+v\n%+v", want, rec)
				}
				wantCond(t, rec, manifest.ConditionReady, manifest.ConditionTrue, ReasonConcurrencyError)
			} else if rec.Phase != manifest.PhasePending || !rec.Provisioned {
				t.Fatalf("create record %+v", rec)
			}
			if n := e.count(osbtest.EndpointDeprovision); tc.name != "delete" && n != 0 {
				t.Fatalf("%d deprovision calls (orphan mitigation on ConcurrencyError)", n)
			}
			if in, ok := e.b.Instance("busy-1"); !ok || in.State != osbtest.StateUpdating {
				t.Fatalf("broker instance %+v", in)
			}
		})
	}
}

// TestAsyncRequiredRetried: a broker answering 422 AsyncRequired although
// accepts_incomplete=true was sent gets the call once more.
func TestAsyncRequiredRetried(t *testing.T) {
	e := newEnv(t)
	e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: http.StatusUnprocessableEntity,
		Body: []byte(`{"error":"AsyncRequired","description":"needs async"}`), Times: 1})
	res := e.pass(createInstance("db", "ar-1", osbtest.PlanDBSmall, nil))
	wantStatus(t, res, instRef("db"), StatusSucceeded)
	calls := e.b.CallsTo(osbtest.EndpointProvision)
	if len(calls) != 2 || calls[0].Status != 422 || calls[1].Status != 201 {
		t.Fatalf("calls %+v", calls)
	}
	for _, c := range calls {
		if c.Query.Get("accepts_incomplete") != "true" {
			t.Fatalf("accepts_incomplete %q", c.Query.Get("accepts_incomplete"))
		}
	}
}

// TestConflictOnCreateIsTerminal: 409 fails the create for good (Phase
// Failed, Provisioned false), with no orphan mitigation and no retry.
func TestConflictOnCreateIsTerminal(t *testing.T) {
	e := newEnv(t)
	ref := instRef("db")
	e.b.PutInstance(osbtest.Instance{ID: "c-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBLarge, OrganizationGUID: "x", SpaceGUID: "y"})
	res := e.pass(createInstance("db", "c-1", osbtest.PlanDBSmall, nil))
	o := wantStatus(t, res, ref, StatusFailed)
	if !osbclient.IsConflict(o.Err) || res.Counts.Failed != 1 {
		t.Fatalf("outcome %+v", o)
	}
	rec := e.rec(ref)
	if rec.Phase != manifest.PhaseFailed || rec.Provisioned || rec.AsyncOpInProgress {
		t.Fatalf("record %+v", rec)
	}
	if rec.InProgress == nil || rec.InProgress.PlanExternalID != osbtest.PlanDBSmall {
		t.Fatalf("InProgress must keep the failed target: %+v", rec.InProgress)
	}
	wantCond(t, rec, manifest.ConditionFailed, manifest.ConditionTrue, ReasonProvisionFailed)
	wantCond(t, rec, manifest.ConditionReady, manifest.ConditionFalse, ReasonProvisionFailed)
	if e.count(osbtest.EndpointProvision) != 1 || e.count(osbtest.EndpointDeprovision) != 0 {
		t.Fatalf("calls: %d provision, %d deprovision", e.count(osbtest.EndpointProvision), e.count(osbtest.EndpointDeprovision))
	}
	if in, _ := e.b.Instance("c-1"); in.PlanID != osbtest.PlanDBLarge {
		t.Fatal("the other instance was touched")
	}
}
