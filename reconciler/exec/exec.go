// Package exec is osbgit's executor: it runs the steps of a plan.Plan against
// the brokers, writes binding credentials to the secret store and returns the
// status records that changed. It decides nothing the plan did not show
// (which resource, which action, which IDs and parameters); it owns the OSB
// mechanics of each action: accepts_incomplete, 202 and polling,
// Retry-After, maximum_polling_duration, 410 on delete, ConcurrencyError,
// 409 on create and orphan mitigation exactly where the spec's table asks
// for it.
//
// # Write-ahead
//
// "No call the repo doesn't know about": for every step with WriteAhead
// (create, and update with a new InProgress target or a new binding ID) the
// caller first builds WriteAheadRecords(p, now), commits and pushes them, and
// then calls Run(ctx, p, thoseRecords). Run starts such a step from the
// write-ahead record (not from Step.Record) and compares its result with it;
// a WriteAhead step whose record is missing from the map is refused without
// any broker call.
//
// # OSB handling
//
//   - Every provision, update, deprovision, bind and unbind is sent with
//     accepts_incomplete=true; a 422 AsyncRequired answer anyway is retried
//     once. The originating identity goes on user-caused calls, never on
//     orphan mitigation. organization_guid/space_guid are the context's
//     clusterid/namespace (DefaultOrganizationGUID when there is none).
//   - 202: LastOperation records type, operation key, start time and the
//     service_id/plan_id to poll with (for an update the pre-update plan),
//     AsyncOpInProgress and Phase Provisioning/Updating/Deprovisioning; the
//     step then polls up to InlinePoll (see Executor.InlinePoll). A poll
//     step always polls once; an operation still in progress after its
//     deadline (Step.PollDeadline, or start + Step.MaxPollingDuration) is
//     failed.
//   - 410 on deprovision/unbind, and on their last_operation, is success; on
//     a create's or update's last_operation it is an invalid answer (OSB
//     2.17) and polling goes on, bounded by the polling deadline.
//   - 422 ConcurrencyError: StatusRetryLater, not a failure; only the Ready
//     condition's reason/message change.
//   - Create refused (409, other 4xx, malformed 200): Phase Failed,
//     Provisioned false (true if an earlier attempt with the same ID may
//     have created it, or the broker answered 200), InProgress kept as the
//     target that failed; never retried by the executor.
//   - Orphan mitigation exactly where osbclient.Error.OrphanMitigationRequired
//     says (provision/bind: 5xx, timeout, other 2xx, 201/202 malformed) and
//     when an async provision/bind fails or outlives its deadline: Phase
//     OrphanMitigation, then one DELETE at once (polled inline when async).
//     Success → Phase Failed, Provisioned false; failure → stays
//     OrphanMitigation for the next pass's OrphanMitigate step.
//   - Update failures never mitigate. Transient ones (no answer, 408, 429,
//     5xx, MaintenanceInfoConflict) and answers without a verdict (a 2xx,
//     202 included, whose body cannot be read) keep the phase with
//     Failed/CallFailed so the update is planned again (without
//     previous_values); refusals and failed async updates give
//     Phase Failed, Provisioned true, Properties unchanged, InProgress the
//     failed target, Failed/UpdateFailed, and Ready True unless the broker
//     said instance_usable false.
//   - Delete failures: Phase Deprovisioning with a Failed condition; the
//     next pass deletes again.
//   - Bindings: credentials (sync answer, or GET binding after an async
//     bind) pass through secretTransforms and are written to the Secret
//     before the record goes Ready with SecretRef{namespace, name, keys};
//     unbind success deletes the Secret, then the record. A binding update
//     with a new ID (rotation with predecessor_binding_id, or a new ID)
//     binds first and unbinds the old binding after; with the same ID it
//     unbinds, then binds again.
//
// # Records
//
// Result.Records holds only records whose YAML (manifest.MarshalRecord)
// differs from the record the step started from; a nil value means "delete
// the record file". Conditions are set with manifest.SetCondition, so a step
// that re-records an unchanged state changes no byte, and messages carry no
// request ID, so a repeated failure does not rewrite the record either. No
// credential value ever reaches a record, a log line, an Outcome or an
// error from osbgit's side; what a broker quotes in its answers is
// scrubbed (Executor.Redact) from the records and Outcomes a run returns,
// and the dashboard URL a broker returns is recorded with its userinfo,
// query values and fragment redacted (redact.URL). Log lines are the
// logger's to scrub (redact.Formatter with the same set).
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbwire"
	"github.com/osbgit/osbgit/reconciler/internal/parallel"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// BrokerClient is the subset of *osbclient.Client the executor calls. It is
// declared here, where it is used, so tests and the pass can supply any
// implementation; *osbclient.Client satisfies it.
type BrokerClient interface {
	Provision(ctx context.Context, r *osbwire.ProvisionRequest) (*osbclient.ProvisionResult, error)
	UpdateInstance(ctx context.Context, r *osbwire.UpdateInstanceRequest) (*osbclient.UpdateInstanceResult, error)
	Deprovision(ctx context.Context, r *osbwire.DeprovisionRequest) (*osbclient.DeprovisionResult, error)
	LastOperation(ctx context.Context, r *osbwire.LastOperationRequest) (*osbwire.LastOperationResponse, error)
	Bind(ctx context.Context, r *osbwire.BindRequest) (*osbclient.BindResult, error)
	Unbind(ctx context.Context, r *osbwire.UnbindRequest) (*osbclient.UnbindResult, error)
	// GetBinding fetches the credentials of an asynchronously created (or
	// adopted) binding: an async bind's 202 carries none.
	GetBinding(ctx context.Context, r *osbwire.GetBindingRequest) (*osbwire.GetBindingResponse, error)
	BindingLastOperation(ctx context.Context, r *osbwire.BindingLastOperationRequest) (*osbwire.LastOperationResponse, error)
}

var _ BrokerClient = (*osbclient.Client)(nil)

// BrokerLookup returns the client of a broker (ClusterServiceBroker or
// ServiceBroker ref). An error fails only the steps that need that broker.
type BrokerLookup func(broker manifest.Ref) (BrokerClient, error)

// CallInfo describes a broker call about to be made, for Executor.BeforeCall.
type CallInfo struct {
	// Ref is the resource the step acts on; Broker the broker called.
	Ref, Broker manifest.Ref
	// Op is the OSB call.
	Op osbclient.Operation
	// InstanceID and BindingID are the OSB IDs in the call's path.
	InstanceID, BindingID string
	// OrphanMitigation marks the DELETE of an orphan-mitigation.
	OrphanMitigation bool
}

// Defaults of zero Executor fields.
const (
	// DefaultConcurrency is the per-broker limit of calls in flight.
	DefaultConcurrency = 8
	// DefaultPollInitial is the first wait between last_operation polls.
	DefaultPollInitial = time.Second
	// DefaultPollMax caps the exponential backoff between polls.
	DefaultPollMax = 30 * time.Second
	// DefaultOrganizationGUID is sent as organization_guid when the step's
	// context has no clusterid (the spec requires the field; it must be
	// stable so a repeated create is identical).
	DefaultOrganizationGUID = "osbgit"
)

// Executor runs plans. The zero value is not usable: Brokers is required,
// and Secrets is required for plans with bindings. An Executor may run
// several plans, one after another or concurrently.
type Executor struct {
	// Brokers returns the client of a broker.
	Brokers BrokerLookup
	// Secrets receives binding credentials (and is where addKeysFrom
	// Secrets and stored credentials are read).
	Secrets secrets.Store
	// Concurrency is the maximum number of calls in flight per broker
	// (DefaultConcurrency when <= 0).
	Concurrency int
	// Now is the clock for record timestamps and polling deadlines
	// (time.Now when nil).
	Now func() time.Time
	// Log receives one entry per step and per failed call, with the fields
	// ref, action, broker, external_id, op, status and request_id; never a
	// parameter or credential. Nil discards.
	Log logrus.FieldLogger
	// Identity is sent as X-Broker-API-Originating-Identity on calls a user
	// caused (provision, update, deprovision, bind, unbind), never on
	// orphan mitigation. Nil sends none.
	Identity *osbwire.OriginatingIdentity
	// InlinePoll is how long a step keeps polling an asynchronous operation
	// before it records it as in progress and returns (a later pass polls
	// again): a CronJob pass does not block on long operations. 0 records
	// the operation right after the first in-progress answer (202, or the
	// first poll of a Poll step).
	InlinePoll time.Duration
	// PollInitial and PollMax are the first wait between polls and the cap
	// of its exponential growth (DefaultPollInitial, DefaultPollMax when
	// <= 0). A poll answered with Retry-After is followed by the next one
	// after that delay (at least PollInitial) instead of the backoff.
	PollInitial, PollMax time.Duration
	// BeforeCall, when set, is called before every broker call; an error
	// stops that call (it is not made) and fails the step as a call that
	// never reached the broker. Tests use it to inject crashes.
	BeforeCall func(ctx context.Context, c CallInfo) error
	// OnProgress, when set, is called as each step ends and as each
	// broker call starts and ends (from the steps' goroutines, so it must
	// be safe for concurrent use): the CLI draws progress with it.
	OnProgress func(Progress)
	// Redact learns the binding credentials the run receives (bind and
	// fetch-binding answers, addKeysFrom Secrets, and, before a step calls
	// the broker, the stored Secret of its binding or of its instance's
	// bindings: read from Secrets once per run), and scrubs
	// the free text of every record the run changes (condition and
	// error messages, dashboard URL) of everything it knows. Nil learns
	// and scrubs nothing.
	Redact *redact.Set
	// SecretWritten, when set, is told each binding Secret the run wrote,
	// with the data written (the caller keeps a keyed checksum of it to
	// notice a later edit; it must not keep or log the values). Called
	// from the steps' goroutines.
	SecretWritten func(namespace, name string, data map[string][]byte)
	// WriteAheadJSON, when set, holds the RecordJSON of the write-ahead
	// records passed to Run, as the caller committed them (the journal's
	// entries): Run compares a write-ahead step's new record with it
	// instead of encoding the old one again.
	WriteAheadJSON map[manifest.Ref][]byte
	// RetryMin and RetryMax bound the backoff before a call the broker
	// gave no verdict on is repeated (MinRetryDelay and MaxRetryDelay when
	// zero).
	RetryMin, RetryMax time.Duration
}

// Status is how a step ended.
type Status string

// Step statuses.
const (
	// StatusSucceeded: the action completed (create, update, delete,
	// adopt, forget, orphan mitigation, or a poll that saw the end).
	StatusSucceeded Status = "succeeded"
	// StatusUnchanged: action none without error; nothing was done.
	StatusUnchanged Status = "unchanged"
	// StatusInProgress: an asynchronous operation is still running; a
	// later pass polls it.
	StatusInProgress Status = "in-progress"
	// StatusRetryLater: the broker answered 422 ConcurrencyError (another
	// operation on the resource is running); not a failure, the next pass
	// retries.
	StatusRetryLater Status = "retry-later"
	// StatusWaiting: skipped because a dependency did not complete in this
	// run; the record is unchanged.
	StatusWaiting Status = "waiting"
	// StatusFailed: the step failed (Err says why); the record says so too.
	StatusFailed Status = "failed"
)

// Outcome is what happened to one step. It holds no credential or
// parameter value.
type Outcome struct {
	// Ref is the resource; Action the planned action.
	Ref    manifest.Ref
	Action plan.Action
	// ExternalID is the OSB instance_id or binding_id acted on.
	ExternalID string
	// Status is how the step ended.
	Status Status
	// Err is set for StatusFailed (and holds the broker's answer for
	// StatusRetryLater).
	Err error
	// InProgress reports an asynchronous operation left running.
	InProgress bool
	// NextPoll, for an operation left running, is when it should be polled
	// next: after the broker's Retry-After, or the current backoff. For a
	// failed call on a resource that stays in flight it is when a later
	// pass should retry (RetryDelay).
	NextPoll time.Time
	// Summary says what happened, in words.
	Summary string
}

// Counts tallies a run. Created/Updated/Deleted count operations that
// completed in this run (also when a Poll step saw them finish).
type Counts struct {
	Created, Updated, Deleted int
	// Adopted and Forgotten count records written or dropped without a
	// mutating call.
	Adopted, Forgotten int
	// Polled counts Poll steps run.
	Polled int
	// OrphansMitigated counts successful orphan-mitigation deletes.
	OrphansMitigated int
	// Failed counts failed steps; InProgress operations left running;
	// RetryLater steps deferred by ConcurrencyError; Waiting steps skipped
	// for a dependency.
	Failed, InProgress, RetryLater, Waiting int
}

// String is the counts as sync's summary and the result note word them.
func (c Counts) String() string {
	return fmt.Sprintf("%d created, %d updated, %d deleted, %d in progress, %d failed, %d retried later",
		c.Created, c.Updated, c.Deleted, c.InProgress, c.Failed, c.RetryLater)
}

// Result is what a run did.
type Result struct {
	// Records are the status records that changed, by resource; a nil
	// value means the record file is to be deleted.
	Records map[manifest.Ref]*manifest.StatusRecord
	// RecordJSON is the RecordJSON of each record in Records (none for a
	// deletion), as Run compared it with the record before: the status
	// commit renders that to the file instead of encoding the record
	// again. Records must not be modified after Run, or the two differ.
	RecordJSON map[manifest.Ref][]byte
	// Outcomes has one entry per step, in plan order.
	Outcomes []Outcome
	// Counts tallies Outcomes.
	Counts Counts
	// Refused repeats Plan.Refused when the plan refused to run (no step
	// ran then).
	Refused string
}

// Failed reports whether any step failed (osbgit sync exits 1 then).
func (r *Result) Failed() bool { return r != nil && r.Counts.Failed > 0 }

// NextPoll is the earliest Outcome.NextPoll: when a later pass should poll
// the operations this run left in flight (zero when none).
func (r *Result) NextPoll() time.Time {
	var next time.Time
	if r == nil {
		return next
	}
	for _, o := range r.Outcomes {
		if !o.NextPoll.IsZero() && (next.IsZero() || o.NextPoll.Before(next)) {
			next = o.NextPoll
		}
	}
	return next
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Executor) log() logrus.FieldLogger {
	if e.Log != nil {
		return e.Log
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func (e *Executor) concurrency() int {
	if e.Concurrency > 0 {
		return e.Concurrency
	}
	return DefaultConcurrency
}

func (e *Executor) pollInitial() time.Duration {
	if e.PollInitial > 0 {
		return e.PollInitial
	}
	return DefaultPollInitial
}

func (e *Executor) pollMax() time.Duration {
	if e.PollMax > 0 {
		return max(e.PollMax, e.pollInitial())
	}
	return max(DefaultPollMax, e.pollInitial())
}

// errWriteAheadMissing refuses a WriteAhead step whose record was not
// passed to Run (so was presumably not committed).
var errWriteAheadMissing = errors.New("write-ahead record missing: refusing to call the broker before the record is committed")

// Run executes p and returns the changed records and each step's outcome.
// writeAhead must hold the records WriteAheadRecords(p, …) returned and the
// caller committed (nil when no step needs one); leave Step.Record as the
// planner set it (the record before the write-ahead): Run compares the two
// to know whether an earlier attempt may already have created a resource. Steps run concurrently,
// at most Concurrency calls in flight per broker; a step first waits for
// the steps named in its DependsOn that come before it in p.Steps, and is
// skipped (StatusWaiting, record unchanged) unless they all succeeded or
// were unchanged. A dependency that comes after the step in the plan is
// never waited for (that would be a planner bug): the step is skipped.
// Results are deterministic: Outcomes follow plan order.
func (e *Executor) Run(ctx context.Context, p *plan.Plan, writeAhead map[manifest.Ref]*manifest.StatusRecord) *Result {
	res := &Result{Records: map[manifest.Ref]*manifest.StatusRecord{}, RecordJSON: map[manifest.Ref][]byte{}}
	if p == nil {
		return res
	}
	if p.Refused != "" {
		res.Refused = p.Refused
		return res
	}
	n := len(p.Steps)
	runs := make([]*stepRun, n)
	// done[i] is closed when step i has ended; nil until it starts (steps
	// start in plan order). Steps run inline share one closed channel.
	done := make([]chan struct{}, n)
	ended := make(chan struct{})
	close(ended)
	first := make(map[manifest.Ref]int, n)
	for i := range p.Steps {
		if _, ok := first[p.Steps[i].Ref]; !ok {
			first[p.Steps[i].Ref] = i
		}
	}
	sh := &runShared{
		callers: &callers{size: e.concurrency(), m: map[manifest.Ref]chan func(){}},
		log:     e.log(),
		// Built when a step first calls a broker: a pass with nothing to
		// do needs none (at 200,000 resources it was 50 MB).
		learner:  sync.OnceValue(func() *secrets.Learner { return newLearner(e, p) }),
		progress: &progress{report: e.OnProgress, total: n},
	}
	var wg sync.WaitGroup
	// step runs step i once the steps it depends on are done.
	step := func(i int, r *stepRun) {
		defer sh.progress.stepEnded(&r.out)
		for _, dep := range r.s.DependsOn {
			j, ok := first[dep]
			if !ok || dep == r.s.Ref {
				continue
			}
			if j > i {
				r.waiting(fmt.Sprintf("waiting for %s (ordered after this step in the plan)", dep))
				return
			}
			select {
			case <-done[j]:
			case <-ctx.Done():
				r.failNoRecord(fmt.Errorf("%s: %w", r.s.Ref, ctx.Err()))
				return
			}
			if st := runs[j].out.Status; st != StatusSucceeded && st != StatusUnchanged {
				r.waiting(fmt.Sprintf("waiting for %s (%s)", dep, st))
				return
			}
		}
		r.run(ctx)
	}
	for i := range p.Steps {
		r := newStepRun(e, p, i, writeAhead, sh)
		runs[i] = r
		if r.inline(first, done) {
			step(i, r)
			done[i] = ended
			continue
		}
		done[i] = make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			step(i, r)
		}()
	}
	wg.Wait()
	sh.callers.stop()
	markLostInstances(runs, first, e.now())
	// Comparing records encodes each as JSON twice: on all cores. The new
	// one is kept for the status commit (Result.RecordJSON).
	changed := make([]bool, n)
	rendered := make([][]byte, n)
	errs := make([]error, n)
	parallel.For(n, func(i int) {
		r := runs[i]
		r.out.Err, r.out.Summary = e.Redact.ScrubError(r.out.Err), e.Redact.Scrub(r.out.Summary)
		if r.touched {
			scrubRecord(r.rec, e.Redact)
			changed[i], rendered[i], errs[i] = recordChanged(r.base, r.baseJSON, r.rec)
		}
	})
	res.Outcomes = make([]Outcome, 0, n)
	for i, r := range runs {
		if errs[i] != nil {
			// A record that cannot be rendered is a bug; report it on the
			// step rather than dropping the change silently.
			r.out.Status, r.out.Err = StatusFailed, fmt.Errorf("%s: %w", r.s.Ref, errs[i])
		}
		res.Outcomes = append(res.Outcomes, r.out)
		r.count(&res.Counts)
		if changed[i] && errs[i] == nil {
			res.Records[r.s.Ref] = r.rec
			if rendered[i] != nil {
				res.RecordJSON[r.s.Ref] = rendered[i]
			}
		}
	}
	return res
}

// runShared is what the steps of one Run share.
type runShared struct {
	callers  *callers
	log      logrus.FieldLogger
	learner  func() *secrets.Learner
	progress *progress
}

// Progress is where a Run stands.
type Progress struct {
	// Done steps of Total have ended; CallsInFlight broker calls are
	// being made.
	Done, Total, CallsInFlight int
	// Ended is the step that just ended (nil when a call started or
	// ended).
	Ended *Outcome
}

// progress counts a Run's ended steps and calls in flight for OnProgress.
type progress struct {
	report      func(Progress)
	total       int
	done, calls atomic.Int64
}

func (p *progress) stepEnded(o *Outcome) { p.send(p.done.Add(1), p.calls.Load(), o) }
func (p *progress) callStarted()         { p.send(p.done.Load(), p.calls.Add(1), nil) }
func (p *progress) callEnded()           { p.send(p.done.Load(), p.calls.Add(-1), nil) }

func (p *progress) send(done, calls int64, o *Outcome) {
	if p.report != nil {
		p.report(Progress{Done: int(done), Total: p.total, CallsInFlight: int(calls), Ended: o})
	}
}

// callers make each broker's calls, at most size at a time, on long-lived
// goroutines: a call's stack (HTTP, JSON, redaction) is then grown once per
// worker rather than once per step goroutine, which cost ~5 µs a call (~20
// ms of CPU per converge figure run). Blocked senders queue in order, like
// a semaphore's.
type callers struct {
	mu   sync.Mutex
	size int
	m    map[manifest.Ref]chan func()
}

// queue returns broker's call queue, starting its workers on first use.
func (c *callers) queue(broker manifest.Ref) chan func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, ok := c.m[broker]
	if !ok {
		q = make(chan func())
		c.m[broker] = q
		for range c.size {
			go func() {
				for call := range q {
					call()
				}
			}()
		}
	}
	return q
}

// stop ends the workers; every call has returned.
func (c *callers) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.m {
		close(q)
	}
}

// recordChanged reports whether rec renders differently from base (whose
// RecordJSON is baseJSON, when known), and returns rec's RecordJSON (nil
// when rec is nil).
func recordChanged(base *manifest.StatusRecord, baseJSON []byte, rec *manifest.StatusRecord) (bool, []byte, error) {
	switch {
	case base == nil && rec == nil:
		return false, nil, nil
	case rec == nil:
		return true, nil, nil
	}
	b, err := manifest.RecordJSON(rec)
	if err != nil {
		return false, nil, err
	}
	if base == nil {
		return true, b, nil
	}
	if baseJSON == nil {
		var err error
		if baseJSON, err = manifest.RecordJSON(cloneRecord(base)); err != nil {
			return false, nil, err
		}
	}
	return string(baseJSON) != string(b), b, nil
}
