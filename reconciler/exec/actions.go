package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbwire"
	"github.com/osbgit/osbgit/reconciler/redact"
)

func (r *stepRun) createType() manifest.OperationType {
	if r.binding {
		return manifest.OperationBind
	}
	return manifest.OperationProvision
}

func (r *stepRun) deleteType() manifest.OperationType {
	if r.binding {
		return manifest.OperationUnbind
	}
	return manifest.OperationDeprovision
}

func (r *stepRun) createFailedReason() string {
	if r.binding {
		return ReasonBindFailed
	}
	return ReasonProvisionFailed
}

// createCallFailedReason marks a create whose call failed without a verdict
// from the broker: it is retried once orphan mitigation has cleaned up.
func (r *stepRun) createCallFailedReason() string {
	if r.binding {
		return ReasonBindCallFailed
	}
	return ReasonProvisionCallFailed
}

// retryAfterMitigation reports whether the record's failure is a call
// failure (see ReasonProvisionCallFailed), so the create is retried once the
// orphan is gone.
func (r *stepRun) retryAfterMitigation() bool {
	c := manifest.FindCondition(r.rec.Conditions, manifest.ConditionFailed)
	return c != nil && c.Status == manifest.ConditionTrue && c.Reason == r.createCallFailedReason()
}

func (r *stepRun) newOp(t manifest.OperationType, serviceID, planID string) *manifest.LastOperation {
	return &manifest.LastOperation{
		Type: t, State: manifest.OperationInProgress, StartTime: metaNow(r.e.now()),
		ServiceID: serviceID, PlanID: planID,
	}
}

// mayExistBefore reports whether an earlier attempt of this create (same
// ExternalID, record not known to be clean) may already have created the
// resource, so that a refusal now must not be read as "nothing exists".
func (r *stepRun) mayExistBefore() bool {
	old := r.s.Record
	return old != nil && old.Provisioned && old.ExternalID != "" && old.ExternalID == r.s.ExternalID
}

// ---------------------------------------------------------------------------
// Create: provision or bind.

func (r *stepRun) create(ctx context.Context) {
	if r.binding && r.s.PredecessorBindingID != "" {
		r.rebind(ctx)
		return
	}
	mayExist := r.mayExistBefore()
	r.prepareCreate()
	r.startCreate(ctx, "", mayExist)
}

// prepareCreate sets the record up for a create: the write-ahead state
// (Pending, InProgress target, Provisioned since the broker may hold it
// once the call is sent).
func (r *stepRun) prepareCreate() {
	r.ensureRecord()
	rec := r.rec
	rec.Phase = manifest.PhasePending
	rec.InProgress = cloneProps(r.s.Desired)
	rec.Provisioned = true
	rec.AsyncOpInProgress = false
}

// startCreate sends the provision or bind and follows it to its end (or
// to the end of the inline polling budget).
func (r *stepRun) startCreate(ctx context.Context, predecessor string, mayExist bool) {
	rec := r.rec
	lo := r.newOp(r.createType(), r.s.Target.ServiceID, r.s.Target.PlanID)
	var (
		st  started
		err error
	)
	if r.binding {
		st, err = r.bindCall(ctx, predecessor)
	} else {
		st, err = r.provisionCall(ctx)
	}
	if err != nil {
		r.createFailed(ctx, lo, err, mayExist)
		return
	}
	if st.dashboard != "" {
		rec.DashboardURL = redact.URL(st.dashboard)
	}
	if !st.async {
		lo.State = manifest.OperationSucceeded
		r.createSucceeded(ctx, lo, st.creds, true)
		return
	}
	reason := ReasonProvisioning
	if r.binding {
		reason = ReasonBinding
	}
	r.awaitAccepted(ctx, lo, st.operation, manifest.PhaseProvisioning, reason)
}

func (r *stepRun) createFailed(ctx context.Context, lo *manifest.LastOperation, err error, mayExist bool) {
	what := string(lo.Type)
	cause := fmt.Errorf("%s %s: %w", what, r.s.Ref, err)
	if r.binding && osbclient.IsNotFound(err) {
		// No binding was made; the broker does not know the instance
		// any more. Run records the instance as lost, and the pass that
		// provisions it again binds this binding again.
		lo.State = manifest.OperationFailed
		r.instanceLost = true
		r.out.NextPoll = r.e.now()
		r.createTerminal(lo, fmt.Errorf("%s %s: the broker no longer holds instance %s: %w", what, r.s.Ref, r.instanceID(), err), mayExist)
		return
	}
	switch classify(err) {
	case classRetryLater:
		r.retryLater(what, err)
	case classTransient:
		// Nothing known to have happened at the broker: the phase stays
		// (Pending) and the next pass repeats the create with the same ID.
		r.failCall(cause)
	case classOrphan:
		lo.State = manifest.OperationFailed
		r.omRetry = true
		r.orphanMitigate(ctx, cause)
	default:
		// 409 and other refusals: terminal, not retried until the desired
		// state changes. The broker holds nothing of ours, unless an
		// earlier attempt with the same ID may have created it or the
		// broker answered 200 (exists) with an unreadable body.
		lo.State = manifest.OperationFailed
		r.createTerminal(lo, cause, mayExist || brokerHoldsAfter(err))
	}
}

// createTerminal records a create that failed for good.
func (r *stepRun) createTerminal(lo *manifest.LastOperation, cause error, provisioned bool) {
	rec := r.rec
	r.touched = true
	rec.Phase = manifest.PhaseFailed
	rec.Provisioned = provisioned
	// InProgress keeps the target that failed: the planner retries only
	// when the desired state differs from it (or from SpecHash).
	rec.AsyncOpInProgress = false
	rec.LastOperation = lo
	msg := stableMessage(cause)
	r.setCond(manifest.ConditionReady, manifest.ConditionFalse, r.createFailedReason(), msg)
	r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, r.createFailedReason(), msg)
	r.dropCond(manifest.ConditionOrphanMitigation)
	r.fail(cause, cause.Error())
}

// createSucceeded completes a create: for bindings the credentials (from
// the sync answer, or fetched after an async bind) go to the secret store
// first; only then is the record Ready.
func (r *stepRun) createSucceeded(ctx context.Context, lo *manifest.LastOperation, creds map[string]any, sync bool) {
	rec := r.rec
	r.touched = true
	if r.binding {
		if !sync {
			var err error
			creds, err = r.getBindingCall(ctx)
			if err != nil {
				// Leave the operation recorded as in flight: the next
				// pass polls (succeeded again) and fetches again.
				r.failCall(fmt.Errorf("fetch credentials of %s after the bind succeeded: %w", r.s.Ref, err))
				return
			}
		}
		ref, err := r.writeSecret(ctx, creds)
		if err != nil {
			if sync {
				// A repeated identical bind answers 200 with the
				// credentials again: keep the create pending.
				rec.Phase = manifest.PhasePending
			}
			cause := fmt.Errorf("bind %s succeeded but its credentials could not be stored: %w", r.s.Ref, err)
			r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, ReasonSecretWriteFailed, cause.Error())
			r.fail(cause, cause.Error())
			return
		}
		rec.SecretRef = ref
	}
	if rec.InProgress != nil {
		rec.Properties = *rec.InProgress
	}
	rec.InProgress = nil
	rec.Applied = rec.SpecSource
	rec.Phase = manifest.PhaseReady
	rec.Provisioned = true
	rec.AsyncOpInProgress = false
	rec.LastOperation = lo
	reason, summary := ReasonProvisionedSuccessfully, "provisioned"
	if r.binding {
		reason, summary = ReasonBoundSuccessfully, "bound; credentials written to Secret "+rec.SecretRef.Namespace+"/"+rec.SecretRef.Name
	}
	r.setCond(manifest.ConditionReady, manifest.ConditionTrue, reason, "")
	r.dropCond(manifest.ConditionFailed)
	r.dropCond(manifest.ConditionOrphanMitigation)
	r.completed = lo.Type
	r.succeed(summary)
}

// ---------------------------------------------------------------------------
// Update (instances; bindings re-bind).

func (r *stepRun) update(ctx context.Context) {
	if r.binding {
		r.rebind(ctx)
		return
	}
	r.ensureRecord()
	rec := r.rec
	prev := rec.PlanExternalID
	if r.s.Previous != nil && r.s.Previous.PlanID != "" {
		prev = r.s.Previous.PlanID
	}
	// The operation is polled with the pre-update plan_id.
	lo := r.newOp(manifest.OperationUpdate, r.s.Target.ServiceID, prev)
	previousValues := prev
	if lastCallUnanswered(rec) {
		// The last update failed without a verdict: the broker may hold
		// either plan, so previous_values.plan_id would be a guess that
		// a broker checking it refuses on every retry.
		previousValues = ""
	}
	st, err := r.updateCall(ctx, previousValues)
	if err != nil && previousValues != "" && refused(err) && r.alreadyUpdated(ctx) {
		// A pass that died after the broker applied this update left
		// no trace in the repo, and the broker now refuses the stale
		// previous_values: it already holds what the manifest asks.
		r.logger().WithError(err).Info("update refused, but the broker already holds the desired plan and parameters")
		rec.InProgress = cloneProps(r.s.Desired)
		lo.State = manifest.OperationSucceeded
		r.updateSucceeded(lo)
		return
	}
	if err != nil {
		r.updateFailed(lo, err, fmt.Errorf("update %s: %w", r.s.Ref, err), nil)
		return
	}
	rec.InProgress = cloneProps(r.s.Desired)
	if st.dashboard != "" {
		rec.DashboardURL = redact.URL(st.dashboard)
	}
	if !st.async {
		lo.State = manifest.OperationSucceeded
		r.updateSucceeded(lo)
		return
	}
	r.awaitAccepted(ctx, lo, st.operation, manifest.PhaseUpdating, ReasonUpdating)
}

func (r *stepRun) updateSucceeded(lo *manifest.LastOperation) {
	rec := r.rec
	r.touched = true
	if rec.InProgress != nil {
		rec.Properties = *rec.InProgress
	}
	rec.InProgress = nil
	rec.Applied = rec.SpecSource
	rec.Phase = manifest.PhaseReady
	rec.AsyncOpInProgress = false
	rec.LastOperation = lo
	r.setCond(manifest.ConditionReady, manifest.ConditionTrue, ReasonUpdatedSuccessfully, "")
	r.dropCond(manifest.ConditionFailed)
	r.completed = manifest.OperationUpdate
	r.succeed("updated")
}

// updateFailed handles a failed update: callErr is the failed call's error
// (classified: ConcurrencyError and transient failures are retried), or
// nil for an async update that failed (cause says how; resp is the last
// answer). Never orphan mitigation.
func (r *stepRun) updateFailed(lo *manifest.LastOperation, callErr, cause error, resp *osbwire.LastOperationResponse) {
	if osbclient.IsNotFound(callErr) {
		r.touched = true
		lo.State = manifest.OperationFailed
		r.rec.Phase = manifest.PhaseFailed
		r.rec.AsyncOpInProgress = false
		r.rec.LastOperation = lo
		markLost(r.rec, "update", r.e.now())
		r.fail(cause, "the broker no longer holds the instance (404): it is provisioned again with the same instance_id by the next pass")
		r.out.NextPoll = r.e.now()
		return
	}
	if callErr != nil {
		switch classify(callErr) {
		case classRetryLater:
			r.retryLater("update", callErr)
			return
		case classTransient:
			r.failCall(cause)
			return
		}
		if unreadableAnswer(callErr) {
			// The broker answered 2xx but not in a form we can read:
			// the update may have been applied. No verdict: retried.
			r.failCall(cause)
			return
		}
	}
	rec := r.rec
	r.touched = true
	// Terminal: Phase Failed with Provisioned unchanged (the broker still
	// holds the instance, with its previous plan and parameters, which
	// Properties keep); InProgress keeps the target that failed, so the
	// planner does not repeat the same update until the manifest changes.
	// The instance stays usable (Ready True) unless the broker said
	// otherwise.
	lo.State = manifest.OperationFailed
	rec.Phase = manifest.PhaseFailed
	if rec.InProgress == nil {
		rec.InProgress = cloneProps(r.s.Desired)
	}
	rec.AsyncOpInProgress = false
	rec.LastOperation = lo
	msg := stableMessage(cause)
	r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, ReasonUpdateFailed, msg)
	if resp != nil && resp.InstanceUsable != nil && !*resp.InstanceUsable {
		r.setCond(manifest.ConditionReady, manifest.ConditionFalse, ReasonUpdateFailed, "the broker reports the instance unusable after the failed update")
	} else {
		r.setCond(manifest.ConditionReady, manifest.ConditionTrue, ReasonUpdateFailed, "the last update failed; the instance keeps its previous plan and parameters")
	}
	r.fail(cause, cause.Error())
}

// ---------------------------------------------------------------------------
// Delete: deprovision or unbind.

func (r *stepRun) delete(ctx context.Context) {
	r.ensureRecord()
	rec := r.rec
	sid, pid := r.recordedIDs()
	lo := r.newOp(r.deleteType(), sid, pid)
	st, err := r.deleteCall(ctx, false)
	if err != nil {
		cause := fmt.Errorf("%s %s: %w", lo.Type, r.s.Ref, err)
		switch classify(err) {
		case classRetryLater:
			r.retryLater(string(lo.Type), err)
			return
		case classTransient, classOrphan:
			// For a delete the orphan mitigation table means: delete
			// again, which the next pass does (Phase Deprovisioning).
			rec.Phase = manifest.PhaseDeprovisioning
			rec.AsyncOpInProgress = false
			r.failCall(cause)
			return
		}
		// The broker's verdict: not repeated until an operator asks
		// (`osbgit retry`, Record.Retry).
		rec.Phase = manifest.PhaseFailed
		rec.AsyncOpInProgress = false
		r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, r.deleteFailedReason(), stableMessage(cause))
		r.fail(cause, cause.Error())
		return
	}
	if st.gone || !st.async {
		lo.State = manifest.OperationSucceeded
		r.deleted(ctx, lo)
		return
	}
	reason := ReasonDeprovisioning
	if r.binding {
		reason = ReasonUnbinding
	}
	r.awaitAccepted(ctx, lo, st.operation, manifest.PhaseDeprovisioning, reason)
}

// awaitAccepted records an operation the broker accepted asynchronously (202
// with its operation key) — phase, LastOperation in flight, Ready False with
// reason — and follows it (inline polling up to the executor's budget).
func (r *stepRun) awaitAccepted(ctx context.Context, lo *manifest.LastOperation, operation string, phase manifest.Phase, reason string) {
	rec := r.rec
	lo.Operation = operation
	rec.LastOperation = lo
	rec.AsyncOpInProgress = true
	rec.Phase = phase
	r.setCond(manifest.ConditionReady, manifest.ConditionFalse, reason, fmt.Sprintf("%s accepted by the broker; in progress", lo.Type))
	r.await(ctx, lo, false)
}

func (r *stepRun) deleteFailedReason() string {
	if r.binding {
		return ReasonUnbindFailed
	}
	return ReasonDeprovisionFailed
}

// deleted completes a delete: a binding's Secret is removed, then the
// record (unless the delete is the first half of a same-ID re-bind).
func (r *stepRun) deleted(ctx context.Context, lo *manifest.LastOperation) {
	r.touched = true
	if r.binding {
		if err := r.deleteSecret(ctx); err != nil {
			cause := fmt.Errorf("unbind %s succeeded but its Secret could not be deleted: %w", r.s.Ref, err)
			rec := r.rec
			rec.Phase = manifest.PhaseDeprovisioning
			rec.AsyncOpInProgress = false
			rec.LastOperation = lo
			r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, ReasonSecretDeleteFailed, cause.Error())
			r.fail(cause, cause.Error())
			return
		}
	}
	r.completed = lo.Type
	if r.rebinding {
		r.rec.SecretRef = nil
		r.rec.LastOperation = lo
		return
	}
	r.rec = nil
	if r.binding {
		r.succeed("unbound; Secret deleted")
	} else {
		r.succeed("deprovisioned")
	}
}

// ---------------------------------------------------------------------------
// Polling an operation started earlier or just now.

func (r *stepRun) poll(ctx context.Context) {
	r.polled = true
	var lo *manifest.LastOperation
	switch {
	case r.s.Operation != nil:
		c := *r.s.Operation
		lo = &c
	case r.rec != nil && r.rec.LastOperation != nil:
		c := *r.rec.LastOperation
		lo = &c
	}
	if lo == nil || r.rec == nil {
		r.failNoRecord(fmt.Errorf("poll %s: no operation recorded to poll", r.s.Ref))
		return
	}
	r.await(ctx, lo, true)
	if r.binding && r.s.PredecessorBindingID != "" && r.completed == manifest.OperationBind {
		r.completed = manifest.OperationUpdate
		r.unbindPredecessor(ctx, r.s.PredecessorBindingID)
	}
}

// await polls lo and applies its end to the record.
func (r *stepRun) await(ctx context.Context, lo *manifest.LastOperation, immediate bool) {
	res, resp, err := r.pollLoop(ctx, lo, r.externalID(), immediate)
	switch res {
	case pollInProgress:
		if r.omCause != nil {
			r.fail(r.omCause, r.omCause.Error()+"; orphan mitigation in progress")
			r.out.InProgress = true
			return
		}
		r.inProgress(fmt.Sprintf("%s in progress", opLabel(lo)))
	case pollError:
		cause := fmt.Errorf("poll %s of %s: %w", opLabel(lo), r.s.Ref, err)
		if r.omCause != nil {
			cause = fmt.Errorf("%w; then %w", r.omCause, cause)
		}
		// The record keeps the operation in flight; the next pass polls.
		r.out.Status, r.out.Err, r.out.InProgress, r.out.Summary = StatusFailed, cause, true, cause.Error()
	case pollSucceeded:
		done := *lo
		done.State = manifest.OperationSucceeded
		switch lo.Type {
		case manifest.OperationProvision, manifest.OperationBind:
			r.createSucceeded(ctx, &done, nil, false)
		case manifest.OperationUpdate:
			r.updateSucceeded(&done)
		case manifest.OperationDeprovision, manifest.OperationUnbind:
			if lo.OrphanMitigation {
				r.omSucceeded(&done)
			} else {
				r.deleted(ctx, &done)
			}
		}
	default:
		r.opFailed(ctx, lo, res, resp)
	}
}

func opLabel(lo *manifest.LastOperation) string {
	if lo.OrphanMitigation {
		return "orphan mitigation " + string(lo.Type)
	}
	return string(lo.Type)
}

// opFailed applies an operation's failure (state failed, or maximum
// polling duration exceeded).
func (r *stepRun) opFailed(ctx context.Context, lo *manifest.LastOperation, res pollResult, resp *osbwire.LastOperationResponse) {
	desc := "the broker reports state failed"
	if resp != nil && resp.Description != "" {
		desc += ": " + resp.Description
	}
	switch res {
	case pollDeadline:
		desc = fmt.Sprintf("polling gave up at %s (maximum polling duration exceeded)", r.deadline(lo).UTC().Format("2006-01-02T15:04:05Z"))
	}
	cause := fmt.Errorf("%s of %s failed: %s", opLabel(lo), r.s.Ref, desc)
	failed := *lo
	failed.State = manifest.OperationFailed
	r.touched = true
	switch lo.Type {
	case manifest.OperationProvision, manifest.OperationBind:
		// An async create that failed (or never finished) may have left
		// something behind: the spec's last_operation row.
		r.orphanMitigate(ctx, cause)
	case manifest.OperationUpdate:
		r.updateFailed(&failed, nil, cause, resp)
	case manifest.OperationDeprovision, manifest.OperationUnbind:
		if lo.OrphanMitigation {
			r.omFailed(&failed, cause)
			return
		}
		rec := r.rec
		// State failed is the broker's verdict: the delete waits for
		// `osbgit retry`. Polling that gave up got none: the next pass
		// deletes again.
		rec.Phase = manifest.PhaseFailed
		if res == pollDeadline {
			rec.Phase = manifest.PhaseDeprovisioning
		}
		rec.AsyncOpInProgress = false
		rec.LastOperation = &failed
		r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, r.deleteFailedReason(), cause.Error())
		r.fail(cause, cause.Error())
	}
}

// ---------------------------------------------------------------------------
// Orphan mitigation.

// orphanMitigate deletes what a failed create may have left at the broker:
// Phase OrphanMitigation first (so a crash leaves the duty recorded), then
// one DELETE without originating identity, followed inline when async. On
// success the record goes Failed with Provisioned false, so the next plan
// creates again as the spec says; otherwise it stays OrphanMitigation for
// the next pass. cause is the create's failure (nil for an OrphanMitigate
// step, whose record already says why).
func (r *stepRun) orphanMitigate(ctx context.Context, cause error) {
	rec := r.rec
	r.touched = true
	r.omCause = cause
	rec.Phase = manifest.PhaseOrphanMitigation
	rec.Provisioned = true
	rec.AsyncOpInProgress = false
	if cause != nil {
		msg := stableMessage(cause)
		reason := r.createFailedReason()
		if r.omRetry {
			reason = r.createCallFailedReason()
		}
		r.setCond(manifest.ConditionReady, manifest.ConditionFalse, reason, msg)
		r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, reason, msg)
	}
	r.setCond(manifest.ConditionOrphanMitigation, manifest.ConditionTrue, ReasonOrphanMitigationInProgress,
		fmt.Sprintf("deleting what the failed %s may have left at the broker", r.createType()))
	sid, pid := r.recordedIDs()
	lo := r.newOp(r.deleteType(), sid, pid)
	lo.OrphanMitigation = true
	rec.LastOperation = lo
	st, err := r.deleteCall(ctx, true)
	if err != nil {
		failed := *lo
		failed.State = manifest.OperationFailed
		r.omFailed(&failed, fmt.Errorf("orphan mitigation %s of %s: %w", lo.Type, r.s.Ref, err))
		return
	}
	if st.gone || !st.async {
		lo.State = manifest.OperationSucceeded
		r.omSucceeded(lo)
		return
	}
	lo.Operation = st.operation
	rec.AsyncOpInProgress = true
	r.await(ctx, lo, false)
}

func (r *stepRun) orphanMitigateStep(ctx context.Context) {
	if r.rec == nil {
		r.failNoRecord(fmt.Errorf("orphan mitigation %s: no record", r.s.Ref))
		return
	}
	r.ensureRecord()
	r.orphanMitigate(ctx, nil)
}

func (r *stepRun) omSucceeded(lo *manifest.LastOperation) {
	rec := r.rec
	r.touched = true
	rec.Phase = manifest.PhaseFailed
	if r.retryAfterMitigation() {
		// The call failed without a verdict: create again, same ID.
		rec.Phase = manifest.PhasePending
	}
	rec.Provisioned = false
	rec.AsyncOpInProgress = false
	rec.LastOperation = lo
	r.setCond(manifest.ConditionOrphanMitigation, manifest.ConditionFalse, ReasonOrphanMitigationSuccessful, "the broker confirmed the delete")
	if manifest.FindCondition(rec.Conditions, manifest.ConditionFailed) == nil {
		r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, r.createFailedReason(), "the create failed; orphan mitigation deleted it")
	}
	if c := manifest.FindCondition(rec.Conditions, manifest.ConditionReady); c == nil || c.Status != manifest.ConditionFalse {
		r.setCond(manifest.ConditionReady, manifest.ConditionFalse, r.createFailedReason(), "the create failed; orphan mitigation deleted it")
	}
	r.mitigated = true
	if r.omCause != nil {
		r.fail(r.omCause, r.omCause.Error()+"; orphan mitigation deleted what the broker may have created")
		return
	}
	r.succeed("orphan mitigation done: the broker confirmed the delete")
}

func (r *stepRun) omFailed(lo *manifest.LastOperation, err error) {
	rec := r.rec
	r.touched = true
	rec.Phase = manifest.PhaseOrphanMitigation
	rec.Provisioned = true
	rec.AsyncOpInProgress = false
	rec.LastOperation = lo
	r.setCond(manifest.ConditionOrphanMitigation, manifest.ConditionTrue, ReasonOrphanMitigationFailed, stableMessage(err)+"; retried on the next pass")
	if r.omCause != nil {
		r.fail(fmt.Errorf("%w; %w", r.omCause, err), r.omCause.Error()+"; orphan mitigation pending: "+err.Error())
		return
	}
	r.fail(err, err.Error())
}

// ---------------------------------------------------------------------------
// Bindings: update (re-bind or rotation) and adopt.

// rebind replaces a binding. With a new ExternalID (rotation via
// PredecessorBindingID, or a plain new ID) the new binding is created and
// its credentials written first, then the old binding is unbound, so the
// Secret is never empty. With the same ID the binding is unbound, then
// bound again (OSB has no binding update).
func (r *stepRun) rebind(ctx context.Context) {
	s := r.s
	if s.ExternalID == "" {
		r.failNoRecord(fmt.Errorf("update %s: no binding ID", s.Ref))
		return
	}
	oldID := s.PredecessorBindingID
	if oldID == "" && s.Record != nil && s.Record.ExternalID != s.ExternalID {
		oldID = s.Record.ExternalID
	}
	if s.PredecessorOnly && oldID != "" {
		// The new binding is bound (an earlier pass); what is left of the
		// rotation is unbinding its predecessor.
		r.ensureRecord()
		r.succeed("rotation to binding " + s.ExternalID)
		r.unbindPredecessor(ctx, oldID)
		if r.rec.PredecessorExternalID == "" {
			r.dropCond(manifest.ConditionFailed)
			r.completed = manifest.OperationUpdate
		}
		return
	}
	if oldID != "" && oldID != s.ExternalID {
		mayExist := r.mayExistBefore()
		r.prepareCreate()
		r.startCreate(ctx, s.PredecessorBindingID, mayExist)
		if r.completed != manifest.OperationBind {
			return
		}
		r.completed = manifest.OperationUpdate
		r.unbindPredecessor(ctx, oldID)
		return
	}
	// Same ID: unbind, then bind again.
	r.rebinding = true
	r.delete(ctx)
	r.rebinding = false
	if r.completed != manifest.OperationUnbind {
		// In flight or failed: the record says Deprovisioning; once the
		// unbind completes the record is dropped and the next plan binds
		// again.
		return
	}
	r.completed = ""
	r.prepareCreate()
	r.startCreate(ctx, "", false)
	if r.completed == manifest.OperationBind {
		r.completed = manifest.OperationUpdate
	}
}

// unbindPredecessor unbinds the binding a new binding replaced (with the
// user's identity: the user asked for the change). Its failure fails the
// step but leaves the new binding Ready.
func (r *stepRun) unbindPredecessor(ctx context.Context, oldID string) {
	sid, pid := r.recordedIDs()
	var lo *manifest.LastOperation
	var err error
	if r.rec != nil && r.rec.PredecessorOperation != nil {
		// Accepted by an earlier pass: poll it, do not send it again.
		op := *r.rec.PredecessorOperation
		lo = &op
	} else {
		var st started
		st, err = r.unbindCall(ctx, oldID, false)
		if err == nil && st.async {
			lo = r.newOp(manifest.OperationUnbind, sid, pid)
			lo.Operation = st.operation
		}
	}
	if lo != nil {
		switch res, resp, perr := r.pollLoop(ctx, lo, oldID, r.rec != nil && r.rec.PredecessorOperation != nil); res {
		case pollSucceeded:
		case pollInProgress:
			if r.rec != nil {
				r.rec.PredecessorOperation = lo
				r.touched = true
			}
			r.out.Summary += "; unbind of predecessor " + oldID + " in progress at the broker"
			return
		case pollError:
			err = perr
		default:
			d := "state failed"
			if resp != nil && resp.Description != "" {
				d += ": " + resp.Description
			}
			err = errors.New(d)
			if r.rec != nil && r.rec.PredecessorOperation != nil {
				// Over: a retry sends the DELETE again.
				r.rec.PredecessorOperation = nil
				r.touched = true
			}
		}
	}
	if osbclient.IsConcurrencyError(err) {
		// The broker is still unbinding it (the repeated DELETE of an
		// async unbind), or busy with another operation on it: the
		// rotation waits, nothing failed.
		r.retryLater("unbind of predecessor "+oldID, err)
		return
	}
	if err != nil {
		cause := fmt.Errorf("%s: new binding %s is ready, but unbinding predecessor %s failed: %w", r.s.Ref, r.s.ExternalID, oldID, err)
		r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, ReasonUnbindFailed, stableMessage(cause))
		r.fail(cause, cause.Error())
		return
	}
	if r.rec != nil && r.rec.PredecessorExternalID == oldID {
		r.rec.PredecessorExternalID, r.rec.PredecessorOperation = "", nil
		r.touched = true
		if c := manifest.FindCondition(r.rec.Conditions, manifest.ConditionReady); c != nil && c.Reason == ReasonConcurrencyError {
			// An earlier pass's 422 on this unbind; the binding itself
			// has been Ready since its bind.
			r.setCond(manifest.ConditionReady, manifest.ConditionTrue, ReasonBoundSuccessfully, "")
		}
	}
	r.out.Summary += "; predecessor " + oldID + " unbound"
}

// adopt records a resource the broker already holds, without a mutating
// call. A binding not yet recorded Ready with a Secret has its credentials
// fetched (GET) and written, since a Ready binding must have its Secret.
//
// With RestoreSecret (the binding's Secret was deleted or edited) the
// credentials are fetched the same way and the Secret written again; the
// record keeps its conditions.
func (r *stepRun) adopt(ctx context.Context) {
	if r.binding && (r.rec == nil || r.rec.SecretRef == nil || r.rec.Phase != manifest.PhaseReady || r.s.RestoreSecret) {
		if !r.lookupClient() {
			return
		}
		r.ensureRecord()
		creds, err := r.getBindingCall(ctx)
		if err != nil {
			r.failCall(fmt.Errorf("adopt %s: fetch binding: %w", r.s.Ref, err))
			return
		}
		ref, err := r.writeSecret(ctx, creds)
		if err != nil {
			cause := fmt.Errorf("adopt %s: %w", r.s.Ref, err)
			r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, ReasonSecretWriteFailed, cause.Error())
			r.fail(cause, cause.Error())
			return
		}
		r.rec.SecretRef = ref
		if r.s.RestoreSecret {
			r.completed = manifest.OperationUpdate
			r.succeed("Secret " + ref.Namespace + "/" + ref.Name + " restored from the broker (fetch binding)")
			return
		}
	}
	r.ensureRecord()
	rec := r.rec
	if r.s.Desired != nil {
		rec.Properties = *r.s.Desired
		rec.Applied = rec.SpecSource
	}
	rec.InProgress = nil
	rec.Provisioned = true
	rec.Phase = manifest.PhaseReady
	rec.AsyncOpInProgress = false
	r.setCond(manifest.ConditionReady, manifest.ConditionTrue, ReasonAdopted, "the broker already held the resource")
	r.dropCond(manifest.ConditionFailed)
	r.dropCond(manifest.ConditionOrphanMitigation)
	r.adopted = true
	r.succeed("adopted without a mutating call")
}

// lastCallUnanswered reports whether the record's last call failed without
// a verdict from the broker (Failed condition CallFailed: timeout, reset,
// 5xx, unreadable answer), so what the broker holds is not known.
func lastCallUnanswered(rec *manifest.StatusRecord) bool {
	c := manifest.FindCondition(rec.Conditions, manifest.ConditionFailed)
	return c != nil && c.Status == manifest.ConditionTrue && c.Reason == ReasonCallFailed
}

// unreadableAnswer reports whether err is a success whose answer could not
// be read (an unexpected 2xx, a malformed or oversized body, a wrong
// Content-Type): the broker may have done the work, or (202) be doing it
// under an operation key we could not read. Only an update asks: its
// caller retries without a verdict, and the repeated update meets the
// broker's running operation (202 with its operation key from a broker
// that honours the identical re-sent request, else 422 ConcurrencyError,
// retried later), then succeeds. (For a create the spec's answer is orphan
// mitigation; a delete is repeated anyway.)
func unreadableAnswer(err error) bool {
	var oe *osbclient.Error
	if !errors.As(err, &oe) {
		return false
	}
	switch oe.Kind {
	case osbclient.KindUnexpectedStatus, osbclient.KindMalformedBody, osbclient.KindContentType, osbclient.KindBodyTooLarge:
		return true
	}
	return false
}

// refused reports whether err is a 400 answer.
func refused(err error) bool {
	var oe *osbclient.Error
	return errors.As(err, &oe) && oe.Kind == osbclient.KindStatus && oe.StatusCode == 400
}

// instanceGetter is implemented by broker clients that can fetch an
// instance (osbclient.Client does).
type instanceGetter interface {
	GetInstance(ctx context.Context, r *osbwire.GetInstanceRequest) (*osbwire.GetInstanceResponse, error)
}

// alreadyUpdated fetches the instance (when the client can, and the broker
// answers: instances_retrievable) and reports whether it already has the
// update's target plan and parameters.
func (r *stepRun) alreadyUpdated(ctx context.Context) bool {
	g, ok := r.client.(instanceGetter)
	if !ok {
		return false
	}
	req := &osbwire.GetInstanceRequest{InstanceID: r.externalID(), ServiceID: r.s.Target.ServiceID}
	var got *osbwire.GetInstanceResponse
	err := r.call(ctx, CallInfo{Op: osbclient.OpGetInstance, InstanceID: req.InstanceID}, func(ctx context.Context) error {
		var err error
		got, err = g.GetInstance(ctx, req)
		return err
	})
	if err != nil || got == nil || got.PlanID != r.s.Target.PlanID {
		return false
	}
	if !r.s.SendParameters {
		return true
	}
	for k, want := range r.s.Parameters {
		wb, err1 := json.Marshal(want)
		gb, err2 := json.Marshal(got.Parameters[k])
		if err1 != nil || err2 != nil || !bytes.Equal(wb, gb) {
			return false
		}
	}
	return true
}
