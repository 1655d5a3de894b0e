package exec

import (
	"cmp"
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/reconciler/plan"
)

// Bounds of the delay before a later pass retries a failed call on a
// resource that stays in flight.
const (
	MinRetryDelay = 10 * time.Second
	MaxRetryDelay = 10 * time.Minute
)

// NeedsLaterPass reports whether a record keeps a later pass due: an async
// operation, a write-ahead record whose create has not completed, a pending
// orphan mitigation, an update or delete in progress, a rotated binding's
// predecessor not unbound yet, a call the broker gave no verdict on
// (Retry), or a resource the broker lost (Lost: provisioned again).
func NeedsLaterPass(rec *manifest.StatusRecord) bool {
	if rec == nil {
		return false
	}
	switch rec.Phase {
	case manifest.PhasePending, manifest.PhaseProvisioning, manifest.PhaseUpdating,
		manifest.PhaseDeprovisioning, manifest.PhaseOrphanMitigation:
		return true
	}
	return rec.AsyncOpInProgress || rec.PredecessorExternalID != "" || rec.RetryPending() || rec.Lost != nil
}

// RetryDelay is how long after a failed call a resource still in flight is
// retried: as long as it has been failing (since its Failed condition, else
// its Ready condition, last changed), within [MinRetryDelay,
// MaxRetryDelay]. The delays double from pass to pass, so a broker that
// keeps failing (an orphan mitigation DELETE answered 500) is not called
// every poll interval forever, and one that recovers is retried soon.
func RetryDelay(rec *manifest.StatusRecord, now time.Time) time.Duration {
	var since time.Time
	if rec != nil {
		for _, t := range []manifest.ConditionType{manifest.ConditionFailed, manifest.ConditionReady} {
			if c := manifest.FindCondition(rec.Conditions, t); c != nil && !c.LastTransitionTime.IsZero() &&
				(t == manifest.ConditionReady || c.Status == manifest.ConditionTrue) {
				since = c.LastTransitionTime.Time
				break
			}
		}
	}
	if since.IsZero() {
		since = now
	}
	return backoff(since, now, MinRetryDelay, MaxRetryDelay)
}

// backoff is how long to wait before repeating a call that has been
// failing since since: as long as it has been failing, within [lo, hi], so
// the waits double from attempt to attempt.
func backoff(since, now time.Time, lo, hi time.Duration) time.Duration {
	return min(max(now.Sub(since), lo), hi)
}

// scheduleRetry keeps a retry due for a step whose call ended without the
// broker's verdict (noVerdict): the record's Retry, after a delay as long
// as the calls have been failing (10 s, 10 s, 20 s, 40 s, … up to 10 min),
// and a later pass woken for it. A create, update or delete (or the poll
// of one) that got a verdict clears it: a failure then stays until the
// manifest changes. An orphan mitigation's poll leaves it, so a create
// with no verdict is retried once its mitigation is done.
func (r *stepRun) scheduleRetry() {
	if r.rec == nil {
		return
	}
	now := r.e.now()
	switch {
	case r.out.Status == StatusRetryLater || (r.out.Status == StatusFailed && noVerdict(r.out.Err)):
		since := now
		if r.rec.Retry != nil && !r.rec.Retry.Since.IsZero() {
			since = r.rec.Retry.Since.Time
		}
		at := now.Add(backoff(since, now, cmp.Or(r.e.RetryMin, MinRetryDelay), cmp.Or(r.e.RetryMax, MaxRetryDelay)))
		r.rec.Retry = &manifest.Retry{Since: metav1.NewTime(since), At: metav1.NewTime(at)}
		r.touched = true
		if r.out.NextPoll.IsZero() || at.Before(r.out.NextPoll) {
			r.out.NextPoll = at
		}
		return
	case r.out.Status == StatusFailed && NeedsLaterPass(r.rec):
		// In flight (e.g. an orphan mitigation DELETE answered 400):
		// polled again with backoff.
		if r.out.NextPoll.IsZero() {
			r.out.NextPoll = now.Add(RetryDelay(r.rec, now))
		}
	}
	if r.rec.Retry == nil || r.out.InProgress || r.mitigating() {
		return
	}
	switch r.s.Action {
	case plan.Create, plan.Update, plan.Delete, plan.Poll:
		r.rec.Retry = nil
		r.touched = true
	}
}

// noVerdict reports a broker call that ended without the broker's verdict
// on it (classify: 5xx, 408, 429, a timeout, a connection failure, a
// malformed answer, ConcurrencyError). Errors of no call (a manifest
// problem, a Secret that could not be written) are not retried this way.
func noVerdict(err error) bool {
	var oe *osbclient.Error
	return errors.As(err, &oe) && classify(err) != classTerminal
}

// mitigating reports whether the step acted on an orphan mitigation.
func (r *stepRun) mitigating() bool {
	return r.s.Action == plan.OrphanMitigate || (r.rec.LastOperation != nil && r.rec.LastOperation.OrphanMitigation) ||
		r.rec.Phase == manifest.PhaseOrphanMitigation
}

// markLost records on an instance's record that the broker answered 404 to
// call (an update, or a bind against the instance): it no longer holds the
// instance. The planner then provisions it again with the same ID and binds
// its bindings again (manifest.Lost).
func markLost(rec *manifest.StatusRecord, call string, now time.Time) {
	rec.Lost = &manifest.Lost{Call: call, At: metaNow(now)}
	msg := "the broker answered 404 to the " + call + ": it no longer holds the instance, which the next pass provisions again with the same instance_id (its data is not restored)"
	for _, t := range []manifest.ConditionType{manifest.ConditionReady, manifest.ConditionFailed} {
		st := manifest.ConditionTrue
		if t == manifest.ConditionReady {
			st = manifest.ConditionFalse
		}
		rec.Conditions = manifest.SetCondition(rec.Conditions, manifest.Condition{Type: t, Status: st, Reason: ReasonNotFoundAtBroker, Message: msg}, now)
	}
}

// markLostInstances records, on its instance, each bind this pass that was
// answered 404 — unless the instance was provisioned in this very pass (a
// broker that cannot find an instance it just made is not one that lost
// it: the bind fails and nothing is provisioned again).
func markLostInstances(runs []*stepRun, first map[manifest.Ref]int, now time.Time) {
	for _, r := range runs {
		if !r.instanceLost || r.s.InstanceName == "" {
			continue
		}
		j, ok := first[manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: r.s.Ref.Namespace, Name: r.s.InstanceName}]
		if !ok {
			continue
		}
		inst := runs[j]
		if inst.completed == manifest.OperationProvision || inst.rec == nil || !inst.rec.Provisioned || inst.rec.Lost != nil {
			continue
		}
		if !inst.touched {
			inst.rec = cloneRecord(inst.rec) // a no-op step shares its record with the plan
		}
		markLost(inst.rec, "bind of "+r.s.Ref.String(), now)
		inst.touched = true
	}
}
