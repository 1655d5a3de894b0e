package exec

import (
	"time"

	"github.com/osbgit/osbgit/manifest"
)

// Bounds of the delay before a later pass retries a failed call on a
// resource that stays in flight.
const (
	MinRetryDelay = 10 * time.Second
	MaxRetryDelay = 10 * time.Minute
)

// NeedsLaterPass reports whether a record keeps a later pass due: an async
// operation, a write-ahead record whose create has not completed, a pending
// orphan mitigation, an update or delete in progress, or a rotated
// binding's predecessor not unbound yet.
func NeedsLaterPass(rec *manifest.StatusRecord) bool {
	if rec == nil {
		return false
	}
	switch rec.Phase {
	case manifest.PhasePending, manifest.PhaseProvisioning, manifest.PhaseUpdating,
		manifest.PhaseDeprovisioning, manifest.PhaseOrphanMitigation:
		return true
	}
	return rec.AsyncOpInProgress || rec.PredecessorExternalID != ""
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
	d := MinRetryDelay
	if !since.IsZero() {
		d = max(now.Sub(since), MinRetryDelay)
	}
	return min(d, MaxRetryDelay)
}

// scheduleRetry sets when a later pass should retry a step whose call
// failed (or met another operation) and whose resource stays in flight,
// unless the step already knows when to poll.
func (r *stepRun) scheduleRetry() {
	if !r.out.NextPoll.IsZero() || (r.out.Status != StatusFailed && r.out.Status != StatusRetryLater) || !NeedsLaterPass(r.rec) {
		return
	}
	now := r.e.now()
	r.out.NextPoll = now.Add(RetryDelay(r.rec, now))
}
