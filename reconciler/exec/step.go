package exec

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// Condition reasons the executor writes. The planner may branch on them
// (e.g. an instance whose Failed condition has ReasonUpdateFailed is not
// updated again until its desired state changes).
const (
	// Ready reasons.
	ReasonPending                 = "Pending"
	ReasonProvisioning            = "Provisioning"
	ReasonProvisionedSuccessfully = "ProvisionedSuccessfully"
	ReasonUpdating                = "Updating"
	ReasonUpdatedSuccessfully     = "UpdatedSuccessfully"
	ReasonDeprovisioning          = "DeprovisionInProgress"
	ReasonBinding                 = "Binding"
	ReasonBoundSuccessfully       = "InjectedBindResult"
	ReasonUnbinding               = "UnbindInProgress"
	ReasonAdopted                 = "Adopted"

	// Failed (and Ready False) reasons.
	// ReasonProvisionFailed / ReasonBindFailed: the create failed
	// terminally (Phase Failed, or OrphanMitigation first).
	ReasonProvisionFailed = "ProvisionFailed"
	ReasonBindFailed      = "BindFailed"
	// ReasonProvisionCallFailed / ReasonBindCallFailed: the create call
	// itself failed in a way that may have left an orphan (5xx, timeout,
	// connection reset, malformed 201/202 body, unexpected 2xx). Orphan
	// mitigation deletes what the broker may hold, and then the create is
	// retried with the same ID (Phase Pending): the failure said nothing
	// about the request itself, so a later attempt can succeed.
	ReasonProvisionCallFailed = "ProvisionCallFailed"
	ReasonBindCallFailed      = "BindCallFailed"
	// ReasonUpdateFailed: the update failed terminally (refused, or its
	// async operation failed or exceeded maximum_polling_duration); Phase
	// Failed with Provisioned true, Properties unchanged, InProgress the
	// target that failed; Ready stays True unless the broker reported the
	// instance unusable.
	ReasonUpdateFailed = "UpdateFailed"
	// ReasonDeprovisionFailed / ReasonUnbindFailed: the delete failed;
	// Phase Deprovisioning, the delete is retried.
	ReasonDeprovisionFailed = "DeprovisionFailed"
	ReasonUnbindFailed      = "UnbindFailed"
	// ReasonCallFailed: a call failed in a way that may clear by itself
	// (no answer, TLS, 408, 429, 5xx without orphan mitigation,
	// MaintenanceInfoConflict, broker client unavailable): the phase is
	// kept and the next pass retries.
	ReasonCallFailed = "CallFailed"
	// ReasonSecretWriteFailed / ReasonSecretDeleteFailed: the broker call
	// succeeded but the credentials Secret could not be written / deleted.
	ReasonSecretWriteFailed  = "SecretWriteFailed"
	ReasonSecretDeleteFailed = "SecretDeleteFailed"
	// ReasonConcurrencyError: 422 ConcurrencyError; retried later. Set on
	// the Ready condition (status kept) with the broker's message.
	ReasonConcurrencyError = "ConcurrencyError"
	// ReasonNotFoundAtBroker: the broker answered 404 to an update (or to
	// a bind against the instance): it no longer holds the instance, which
	// the next pass provisions again (manifest.Lost).
	ReasonNotFoundAtBroker = "NotFoundAtBroker"

	// OrphanMitigation reasons.
	ReasonOrphanMitigationInProgress = "OrphanMitigationInProgress"
	ReasonOrphanMitigationSuccessful = "OrphanMitigationSuccessful"
	ReasonOrphanMitigationFailed     = "OrphanMitigationFailed"
)

// stepRun is the state of one step while it runs.
type stepRun struct {
	e       *Executor
	p       *plan.Plan
	s       *plan.Step
	callers *callers
	// progress counts the Run's steps and calls for Executor.OnProgress.
	progress *progress
	// sent counts the calls the step sent; drained is set when its first
	// call was not sent because osbgit is shutting down.
	sent    int
	drained bool
	// parentLog is the executor's logger; logger() adds the step's fields
	// on first use (most steps of a large pass log nothing).
	parentLog logrus.FieldLogger
	log       logrus.FieldLogger

	// base is the record as committed before Run (the write-ahead record
	// for WriteAhead steps); rec the working copy (nil = delete).
	base *manifest.StatusRecord
	// baseJSON is base's RecordJSON when the caller gave it
	// (Executor.WriteAheadJSON).
	baseJSON []byte
	rec      *manifest.StatusRecord
	// touched: rec may differ from base and must be compared.
	touched bool
	// baseErr refuses the step before anything runs.
	baseErr error

	client  BrokerClient
	binding bool
	// learner learns the stored credentials before calling.
	learner func() *secrets.Learner
	out     Outcome
	// completed is the operation type that completed in this step.
	completed manifest.OperationType
	mitigated bool
	adopted   bool
	forgotten bool
	polled    bool
	// omCause is the create failure that started orphan mitigation in
	// this step (nil for an OrphanMitigate step).
	omCause error
	// omRetry: the orphan mitigation follows a create call failure with
	// no verdict from the broker, so the create is retried afterwards.
	omRetry bool
	// rebinding: the delete half of a same-ID binding update; the record
	// is not dropped when the unbind completes.
	rebinding bool
	// instanceLost: a bind was answered 404, so the broker no longer
	// holds the binding's instance; Run records it on the instance.
	instanceLost bool
}

func newStepRun(e *Executor, p *plan.Plan, i int, writeAhead map[manifest.Ref]*manifest.StatusRecord, sh *runShared) *stepRun {
	s := &p.Steps[i]
	r := &stepRun{e: e, p: p, s: s, callers: sh.callers, binding: s.Ref.Kind == manifest.KindServiceBinding, learner: sh.learner, progress: sh.progress}
	r.out = Outcome{Ref: s.Ref, Action: s.Action, ExternalID: s.ExternalID}
	r.base = s.Record
	if needsWriteAhead(s) {
		wa := writeAhead[s.Ref]
		if wa == nil {
			r.baseErr = errWriteAheadMissing
		}
		r.base, r.baseJSON = wa, e.WriteAheadJSON[s.Ref]
	}
	if s.Action == plan.None && s.Error == "" && (r.base == nil || r.base.Error == nil) {
		// Nothing will change the record (none() only clears an Error):
		// a large no-op pass need not copy every record.
		r.rec = r.base
	} else {
		r.rec = cloneRecord(r.base)
	}
	if r.out.ExternalID == "" && r.rec != nil {
		r.out.ExternalID = r.rec.ExternalID
	}
	r.parentLog = sh.log
	return r
}

// inline reports whether the step can run on the executor's goroutine as
// it is started: a step with nothing to do (action none, no error) whose
// dependencies are all done. It waits for nothing and calls nothing, and a
// pass over 200,000 resources with nothing to do otherwise started as many
// goroutines at once, their stacks a large part of its peak memory.
func (r *stepRun) inline(first map[manifest.Ref]int, done []chan struct{}) bool {
	if r.s.Action != plan.None || r.s.Error != "" || r.baseErr != nil {
		return false
	}
	for _, dep := range r.s.DependsOn {
		if j, ok := first[dep]; ok && dep != r.s.Ref {
			select {
			case <-done[j]:
			default:
				return false
			}
		}
	}
	return true
}

// logger is the step's logger: the executor's with the step's fields.
func (r *stepRun) logger() logrus.FieldLogger {
	if r.log == nil {
		r.log = r.parentLog.WithFields(r.logFields(0))
	}
	return r.log
}

// logFields are the step's ref, action, broker and external ID, in a map
// sized for extra more fields.
func (r *stepRun) logFields(extra int) logrus.Fields {
	fields := make(logrus.Fields, 4+extra)
	fields["ref"], fields["action"] = r.s.Ref.String(), string(r.s.Action)
	if r.s.Target.Broker.Name != "" {
		fields["broker"] = r.s.Target.Broker.String()
	}
	if r.out.ExternalID != "" {
		fields["external_id"] = r.out.ExternalID
	}
	return fields
}

// run dispatches the step.
func (r *stepRun) run(ctx context.Context) {
	s := r.s
	if r.baseErr != nil {
		r.failNoRecord(fmt.Errorf("%s %s: %w", s.Action, s.Ref, r.baseErr))
		r.finishLog()
		return
	}
	if s.Error != "" {
		r.blocked()
		r.finishLog()
		return
	}
	switch s.Action {
	case plan.None:
		r.none()
	case plan.Forget:
		r.forget()
	case plan.Adopt:
		r.adopt(ctx)
	case plan.Create, plan.Update, plan.Delete, plan.Poll, plan.OrphanMitigate:
		if err := ctx.Err(); err != nil {
			r.failNoRecord(fmt.Errorf("%s %s: %w", s.Action, s.Ref, err))
			break
		}
		if !r.lookupClient() {
			break
		}
		r.learnStoredCredentials(ctx)
		switch s.Action {
		case plan.Create:
			r.create(ctx)
		case plan.Update:
			r.update(ctx)
		case plan.Delete:
			r.delete(ctx)
		case plan.Poll:
			r.poll(ctx)
		case plan.OrphanMitigate:
			r.orphanMitigateStep(ctx)
		}
	default:
		r.failNoRecord(fmt.Errorf("%s: unknown action %q", s.Ref, s.Action))
	}
	if r.drained {
		// Shutting down before its first call: as if the step had not
		// run; the next pass picks it up.
		r.rec, r.touched = cloneRecord(r.base), false
		r.out = Outcome{Ref: r.out.Ref, Action: r.out.Action, ExternalID: r.out.ExternalID}
		r.waiting("not started: osbgit is shutting down")
		r.finishLog()
		return
	}
	r.scheduleRetry()
	r.finishLog()
}

// lookupClient finds the broker client; on failure the step fails with a
// CallFailed condition and no call.
func (r *stepRun) lookupClient() bool {
	broker := r.s.Target.Broker
	if broker.Name == "" && r.rec != nil {
		broker = r.rec.Broker
	}
	if r.e.Brokers == nil {
		r.failCall(fmt.Errorf("%s %s: no broker lookup configured", r.s.Action, r.s.Ref))
		return false
	}
	c, err := r.e.Brokers(broker)
	if err == nil && c == nil {
		err = errors.New("no client")
	}
	if err != nil {
		r.failCall(fmt.Errorf("%s %s: broker %s: %w", r.s.Action, r.s.Ref, broker, err))
		return false
	}
	r.client = c
	return true
}

func (r *stepRun) broker() manifest.Ref {
	if r.s.Target.Broker.Name != "" || r.rec == nil {
		return r.s.Target.Broker
	}
	return r.rec.Broker
}

// ---------------------------------------------------------------------------
// Actions without broker calls

// blocked records Step.Error (invalid manifest, ...): nothing else changes.
// A resource whose name cannot have a record (validation refused it, and
// the error says so) gets none: its name must not build a path.
func (r *stepRun) blocked() {
	r.out.Status, r.out.Err = StatusFailed, fmt.Errorf("%s: %s", r.s.Ref, r.s.Error)
	r.out.Summary = "blocked: " + r.s.Error
	if r.rec == nil {
		if _, err := manifest.StatusPath(r.s.Ref); err != nil {
			return
		}
		r.rec = manifest.NewStatusRecord(r.s.Ref)
	}
	r.touched = true
	r.rec.Error = &manifest.RecordError{Message: r.s.Error}
}

// none leaves the record alone, except that a stale Error is cleared.
func (r *stepRun) none() {
	r.out.Status, r.out.Summary = StatusUnchanged, "in sync"
	if r.s.Reason != "" {
		r.out.Summary = r.s.Reason
	}
	if r.rec != nil && r.rec.Error != nil {
		r.rec.Error = nil
		r.touched = true
		if k := r.s.Ref.Kind; k == manifest.KindClusterServiceBroker || k == manifest.KindServiceBroker {
			// A broker's record only ever carries its error (blocked):
			// once the error is gone, so is the record.
			r.rec = nil
		}
	}
}

// forget drops the record without calling the broker.
func (r *stepRun) forget() {
	r.rec, r.touched, r.forgotten = nil, true, true
	r.out.Status, r.out.Summary = StatusSucceeded, "record dropped without a broker call"
}

// ---------------------------------------------------------------------------
// Outcomes

func (r *stepRun) succeed(summary string) {
	r.out.Status, r.out.Err, r.out.InProgress, r.out.Summary = StatusSucceeded, nil, false, summary
	if r.rec != nil && r.s.Target.BrokerURL != "" && r.rec.Broker == r.s.Target.Broker {
		// The broker answered for the resource at this URL.
		r.rec.BrokerURL = r.s.Target.BrokerURL
	}
}

func (r *stepRun) inProgress(summary string) {
	r.out.Status, r.out.Err, r.out.InProgress, r.out.Summary = StatusInProgress, nil, true, summary
}

func (r *stepRun) waiting(summary string) {
	r.out.Status, r.out.Summary = StatusWaiting, summary
	r.logger().WithField("status", string(StatusWaiting)).Info(summary)
}

// failNoRecord fails the step leaving the record untouched.
func (r *stepRun) failNoRecord(err error) {
	r.out.Status, r.out.Err, r.out.Summary = StatusFailed, err, err.Error()
}

// fail fails the step; the caller has updated the record.
func (r *stepRun) fail(err error, summary string) {
	r.out.Status, r.out.Err, r.out.InProgress, r.out.Summary = StatusFailed, err, false, summary
	r.touched = true
}

// keepBaseFacts undoes the manifest facts (SpecHash, SpecSource, DeletionPolicy,
// ObservedRevision) applied at the start of a step whose call did not take
// effect (retry later, transient failure): the record then changes only in
// its condition, and the next attempt records them.
func (r *stepRun) keepBaseFacts() {
	if r.rec == nil || r.base == nil {
		return
	}
	r.rec.SpecHash, r.rec.SpecSource, r.rec.DeletionPolicy, r.rec.ObservedRevision = r.base.SpecHash, r.base.SpecSource, r.base.DeletionPolicy, r.base.ObservedRevision
}

// failCall records a failure that may clear by itself: phase kept, Failed
// condition CallFailed.
func (r *stepRun) failCall(err error) {
	if r.rec != nil {
		r.touched = true
		r.keepBaseFacts()
		r.setCond(manifest.ConditionFailed, manifest.ConditionTrue, ReasonCallFailed, stableMessage(err))
	}
	r.fail(err, err.Error())
}

// retryLater handles 422 ConcurrencyError: only the Ready condition's
// reason and message change (status kept), the next pass retries.
func (r *stepRun) retryLater(what string, err error) {
	if r.rec != nil {
		r.touched = true
		r.keepBaseFacts()
		status := manifest.ConditionFalse
		if c := manifest.FindCondition(r.rec.Conditions, manifest.ConditionReady); c != nil {
			status = c.Status
		}
		r.setCond(manifest.ConditionReady, status, ReasonConcurrencyError,
			what+": another operation is in progress at the broker; retrying on a later pass: "+stableMessage(err))
	}
	r.out.Status, r.out.Err, r.out.Summary = StatusRetryLater, err, "retry later: "+what+": broker reports another operation in progress"
}

func (r *stepRun) finishLog() {
	if r.out.Status == StatusUnchanged && !debugEnabled(r.parentLog) {
		return
	}
	// One map of all fields: each logrus With* copies the fields.
	fields := r.logFields(3)
	fields["status"] = string(r.out.Status)
	if r.out.Err != nil {
		fields[logrus.ErrorKey] = r.out.Err
		if id := requestID(r.out.Err); id != "" {
			fields["request_id"] = id
		}
	}
	l := r.parentLog.WithFields(fields)
	switch r.out.Status {
	case StatusFailed:
		l.Error(r.out.Summary)
	case StatusRetryLater, StatusWaiting:
		l.Warn(r.out.Summary)
	case StatusUnchanged:
		l.Debug(r.out.Summary)
	default:
		l.Info(r.out.Summary)
	}
}

func (r *stepRun) count(c *Counts) {
	switch r.out.Status {
	case StatusFailed:
		c.Failed++
	case StatusInProgress:
		c.InProgress++
	case StatusRetryLater:
		c.RetryLater++
	case StatusWaiting:
		c.Waiting++
	}
	switch r.completed {
	case manifest.OperationProvision, manifest.OperationBind:
		c.Created++
	case manifest.OperationUpdate:
		c.Updated++
	case manifest.OperationDeprovision, manifest.OperationUnbind:
		c.Deleted++
	}
	if r.mitigated {
		c.OrphansMitigated++
	}
	if r.adopted {
		c.Adopted++
	}
	if r.forgotten {
		c.Forgotten++
	}
	if r.polled {
		c.Polled++
	}
}

// ---------------------------------------------------------------------------
// Record helpers

// scrubRecord removes every value set knows from the record's free text:
// condition and error messages (which quote broker answers) and the
// dashboard URL. Names, IDs, the plan and the operation key (sent back
// verbatim when polling) are left alone: scrubbing a value that happens to
// equal a plan name would garble them.
func scrubRecord(rec *manifest.StatusRecord, set *redact.Set) {
	if rec == nil || set.Len() == 0 {
		return
	}
	for i := range rec.Conditions {
		rec.Conditions[i].Message = set.Scrub(rec.Conditions[i].Message)
	}
	if rec.Error != nil {
		rec.Error.Message = set.Scrub(rec.Error.Message)
	}
	rec.DashboardURL = set.Scrub(rec.DashboardURL)
}

func (r *stepRun) setCond(t manifest.ConditionType, st manifest.ConditionStatus, reason, msg string) {
	r.rec.Conditions = manifest.SetCondition(r.rec.Conditions, manifest.Condition{Type: t, Status: st, Reason: reason, Message: msg}, r.e.now())
}

func (r *stepRun) dropCond(t manifest.ConditionType) {
	r.rec.Conditions = manifest.RemoveCondition(r.rec.Conditions, t)
}

// ensureRecord makes sure there is a working record for the step's
// resource, filled with what the step knows (IDs, broker, manifest facts).
func (r *stepRun) ensureRecord() {
	s := r.s
	if r.rec == nil {
		r.rec = manifest.NewStatusRecord(s.Ref)
	}
	r.touched = true
	applyStepFacts(r.rec, s, r.p.Revision)
}

// applyStepFacts copies the step's identity and manifest facts into rec.
func applyStepFacts(rec *manifest.StatusRecord, s *plan.Step, revision string) {
	if s.ExternalID != "" && (s.Action == plan.Create || s.Action == plan.Update || s.Action == plan.Adopt) {
		rec.ExternalID = s.ExternalID
	}
	if rec.ExternalID == "" {
		rec.ExternalID = s.ExternalID
	}
	if p := s.PredecessorBindingID; p != "" && p != rec.ExternalID && s.Ref.Kind == manifest.KindServiceBinding {
		rec.PredecessorExternalID = p
	}
	if s.Target.Broker.Name != "" {
		rec.Broker = s.Target.Broker
	}
	if s.Ref.Kind == manifest.KindServiceBinding {
		if s.InstanceName != "" {
			rec.InstanceName = s.InstanceName
		}
		if s.InstanceExternalID != "" {
			rec.InstanceExternalID = s.InstanceExternalID
		}
	}
	switch s.Action {
	case plan.Create, plan.Update, plan.Adopt:
		if s.SpecHash != "" {
			rec.SpecHash = s.SpecHash
		}
		if s.Source != nil {
			rec.DeletionPolicy = s.DeletionPolicy
			src := *s.Source
			rec.SpecSource = &src
		}
	}
	if s.Action.Mutating() || s.Action == plan.Adopt {
		if revision != "" {
			rec.ObservedRevision = revision
		}
		rec.Error = nil
	}
}

func cloneProps(p *manifest.Properties) *manifest.Properties {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// cloneRecord deep-copies a status record.
func cloneRecord(r *manifest.StatusRecord) *manifest.StatusRecord {
	if r == nil {
		return nil
	}
	c := *r
	c.InProgress = cloneProps(r.InProgress)
	if r.LastOperation != nil {
		lo := *r.LastOperation
		c.LastOperation = &lo
	}
	c.Conditions = slices.Clone(r.Conditions)
	if r.SecretRef != nil {
		sr := *r.SecretRef
		sr.Keys = slices.Clone(r.SecretRef.Keys)
		c.SecretRef = &sr
	}
	if r.Error != nil {
		e := *r.Error
		c.Error = &e
	}
	return &c
}

// needsWriteAhead reports whether WriteAheadRecords writes a record for s
// (and Run therefore requires it).
func needsWriteAhead(s *plan.Step) bool {
	return s.WriteAhead && s.Error == "" && (s.Action == plan.Create || s.Action == plan.Update)
}

// ---------------------------------------------------------------------------
// Errors

// errClass is how a failed call is handled.
type errClass int

const (
	// classTerminal: the broker refused (4xx other than below, malformed
	// answers, invalid requests); not retried until the desired state
	// changes (creates, updates) or retried as a delete (deletes).
	classTerminal errClass = iota
	// classTransient: may clear by itself; the next pass retries.
	classTransient
	// classRetryLater: 422 ConcurrencyError.
	classRetryLater
	// classOrphan: the spec's orphan mitigation table applies
	// (provision/bind: delete now; deprovision/unbind: delete again).
	classOrphan
)

func classify(err error) errClass {
	if osbclient.IsConcurrencyError(err) {
		return classRetryLater
	}
	var oe *osbclient.Error
	if !errors.As(err, &oe) {
		// Hook errors, context cancellation before sending, lookup
		// failures: nothing reached the broker.
		return classTransient
	}
	if oe.OrphanMitigationRequired() {
		return classOrphan
	}
	switch oe.Kind {
	case osbclient.KindConnection, osbclient.KindTLS, osbclient.KindTimeout, osbclient.KindCanceled:
		return classTransient
	case osbclient.KindStatus:
		switch {
		case oe.StatusCode == 408, oe.StatusCode == 429, oe.StatusCode >= 500:
			return classTransient
		case osbclient.IsMaintenanceInfoConflict(err):
			// The cached catalog is stale; a relist fixes it.
			return classTransient
		}
	}
	return classTerminal
}

// brokerHoldsAfter reports whether a failed create may nevertheless have
// created the resource although no orphan mitigation is due: a 200 whose
// body could not be read (the spec: 200 means it exists).
func brokerHoldsAfter(err error) bool {
	var oe *osbclient.Error
	return errors.As(err, &oe) && oe.StatusCode == 200
}

// stableMessage renders err for a record: osbclient errors without their
// request identity and Retry-After, so a repeated failure renders the same.
func stableMessage(err error) string {
	var oe *osbclient.Error
	if !errors.As(err, &oe) {
		return err.Error()
	}
	c := *oe
	c.RequestID, c.RetryAfter = "", 0
	return c.Error()
}

func requestID(err error) string {
	var oe *osbclient.Error
	if errors.As(err, &oe) {
		return oe.RequestID
	}
	return ""
}

// debugEnabled reports whether l logs at debug level (true when it cannot
// tell).
func debugEnabled(l logrus.FieldLogger) bool {
	switch l := l.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}
