package exec

import (
	"context"
	"github.com/osbgit/osbgit/reconciler/internal/drain"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// pollResult is how polling an operation ended.
type pollResult int

const (
	pollInProgress pollResult = iota // still running when the inline budget ran out
	pollSucceeded                    // state succeeded (or 410 for a delete)
	pollFailed                       // state failed
	pollDeadline                     // maximum polling duration exceeded
	pollError                        // the poll call itself failed
)

// deadline is when polling lo gives up: Step.PollDeadline for the
// operation the step was planned to poll, else lo's start plus
// Step.MaxPollingDuration; zero for none. An orphan mitigation started
// because that deadline passed gets a deadline of its own (issue 19), not
// the expired one.
func (r *stepRun) deadline(lo *manifest.LastOperation) time.Time {
	if !r.s.PollDeadline.IsZero() && r.s.Operation != nil && lo != nil &&
		lo.Type == r.s.Operation.Type && lo.OrphanMitigation == r.s.Operation.OrphanMitigation && lo.StartTime.Equal(&r.s.Operation.StartTime) {
		return r.s.PollDeadline
	}
	if r.s.MaxPollingDuration > 0 && lo != nil && !lo.StartTime.IsZero() {
		return lo.StartTime.Add(r.s.MaxPollingDuration)
	}
	return time.Time{}
}

// pollLoop polls lo until it ends, the deadline passes or the executor's
// InlinePoll budget runs out. immediate polls at once (a Poll step);
// otherwise (right after a 202) the first poll waits PollInitial, and with
// InlinePoll 0 there is no poll at all. After an answer with Retry-After the
// next poll comes when the broker asked (never sooner than PollInitial);
// otherwise waits grow exponentially up to PollMax. A wait that would end
// after the budget ends the loop instead (in progress).
func (r *stepRun) pollLoop(ctx context.Context, lo *manifest.LastOperation, bindingID string, immediate bool) (pollResult, *osbwire.LastOperationResponse, error) {
	e := r.e
	budgetEnd := time.Now().Add(e.InlinePoll)
	deadline := r.deadline(lo)
	wait := e.pollInitial()
	next := func() {
		wait = min(wait*2, e.pollMax())
	}
	if !immediate {
		if e.InlinePoll <= 0 {
			r.out.NextPoll = e.now().Add(wait)
			return pollInProgress, nil, nil
		}
		if !r.sleep(ctx, wait, budgetEnd, deadline) {
			r.out.NextPoll = e.now().Add(wait)
			return pollInProgress, nil, nil
		}
		next()
	}
	for {
		resp, err := r.pollCall(ctx, lo, bindingID)
		if err != nil {
			return pollError, nil, err
		}
		switch {
		case resp.Gone && (lo.Type == manifest.OperationDeprovision || lo.Type == manifest.OperationUnbind):
			return pollSucceeded, resp, nil
		case resp.Gone:
			// OSB 2.17: during a create or update a 410 "SHOULD be
			// interpreted as an invalid response and the Platform SHOULD
			// continue polling" — the broker may well hold the resource,
			// and forgetting it would leak it. Bounded by the deadline.
			r.logger().WithField("operation", string(lo.Type)).Warn("last_operation answered 410 Gone during a create or update: an invalid answer; polling on")
		case resp.State == osbwire.StateSucceeded:
			return pollSucceeded, resp, nil
		case resp.State == osbwire.StateFailed:
			return pollFailed, resp, nil
		}
		// Still in progress: past the deadline that means failed (a poll
		// is always made first, so an operation that finished late still
		// counts as done).
		if !deadline.IsZero() && !e.now().Before(deadline) {
			return pollDeadline, resp, nil
		}
		// The broker's Retry-After says when to ask again: following it
		// (rather than the longer of it and the backoff) lets an operation
		// that answers "in progress, retry in 1s" converge in seconds, not
		// after 1+2+4+8+16+… seconds. Without it, back off exponentially.
		d := wait
		if resp.RetryAfter > 0 {
			d = max(resp.RetryAfter, e.pollInitial())
		}
		next()
		if !r.sleep(ctx, d, budgetEnd, deadline) {
			// Left for a later pass, which should poll no sooner than
			// the broker asked (Retry-After) — and no later.
			r.out.NextPoll = e.now().Add(d)
			return pollInProgress, resp, nil
		}
	}
}

// sleep waits d (cut short to the polling deadline, so it is noticed on
// time) unless the wait would end after budgetEnd or ctx ends first; it
// reports whether polling should go on.
func (r *stepRun) sleep(ctx context.Context, d time.Duration, budgetEnd, deadline time.Time) bool {
	if !deadline.IsZero() {
		if left := deadline.Sub(r.e.now()); left < d {
			d = max(left, 0)
		}
	}
	if time.Now().Add(d).After(budgetEnd) {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-drain.Done(ctx):
		// Shutting down: the operation is recorded in progress.
		return false
	}
}
