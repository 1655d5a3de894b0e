package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/osbgit/osbgit/reconciler/internal/drain"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"
)

// Trigger says why a pass runs. It is passed to the Passer and logged with
// the pass.
type Trigger string

// The triggers the daemon produces.
const (
	// TriggerStart is the first pass of a process without leader election.
	TriggerStart Trigger = "start"
	// TriggerElected is the first pass after this replica became leader.
	TriggerElected Trigger = "elected"
	// TriggerSchedule is a tick of the cron schedule.
	TriggerSchedule Trigger = "schedule"
	// TriggerWake is the wake-up a previous pass asked for (PassReport.NextWake):
	// in-flight async operations to poll, or a relist coming due.
	TriggerWake Trigger = "wake"
	// TriggerWebhook is a verified webhook (or several, coalesced).
	TriggerWebhook Trigger = "webhook"
	// TriggerSecret is a Secret the manifests reference that may have
	// changed (a watch event, or the re-read interval of a directory
	// store): the pass compares its checksum and ends early if it did not.
	TriggerSecret Trigger = "secret"
)

// PassReport is what one pass tells the daemon, for metrics and for
// scheduling the next pass.
type PassReport struct {
	// Skipped is set when nothing was due and the pass ended early.
	Skipped bool
	// Actions counts executed resource actions: action kind (create,
	// update, delete, poll, ...) → result (succeeded, failed, in_progress) →
	// count.
	Actions map[string]map[string]int
	// InFlight is the number of asynchronous operations still in progress
	// after the pass.
	InFlight int
	// NextWake, when set, is when the pass wants the next one: the earliest
	// Retry-After of the operations in flight, or the next relist. The daemon
	// clamps it to [Config.MinWake, schedule period]; zero means "the
	// schedule is fine".
	NextWake time.Time
}

// Passer runs one reconciliation pass. The daemon never calls Pass
// concurrently. ctx is not cancelled when the daemon is asked to stop, only
// Config.ShutdownGrace later, so a pass can finish its broker calls, record
// the operations in flight and push status.
type Passer interface {
	Pass(ctx context.Context, trigger Trigger) (PassReport, error)
}

// PasserFunc adapts a function to Passer.
type PasserFunc func(ctx context.Context, trigger Trigger) (PassReport, error)

// Pass calls f.
func (f PasserFunc) Pass(ctx context.Context, trigger Trigger) (PassReport, error) {
	return f(ctx, trigger)
}

// Defaults of Config's zero values.
const (
	DefaultMinWake        = time.Second
	DefaultShutdownGrace  = 25 * time.Second
	DefaultWebhookMaxBody = 1 << 20
)

// webhookShutdownTimeout bounds how long in-flight webhook requests may take
// once the daemon stops (they only read a capped body and set a flag).
const webhookShutdownTimeout = 5 * time.Second

// defaultAbandonAfter is how long the daemon waits for a pass to return
// once its context was cancelled at the end of the shutdown grace, before
// giving up on it (the process then exits with the pass still running).
const defaultAbandonAfter = 3 * time.Second

// Config configures a Daemon. Passer and Schedule are required.
type Config struct {
	// Passer runs the passes.
	Passer Passer
	// Schedule is when passes run besides wake-ups and webhooks (see
	// ParseSchedule).
	Schedule cron.Schedule
	// MinWake is the shortest delay before a wake-up pass
	// (DefaultMinWake when zero), so a broker answering Retry-After: 0 does
	// not make passes spin.
	MinWake time.Duration

	// WebhookAddr is the webhook receiver's listen address; empty: no
	// receiver.
	WebhookAddr string
	// WebhookSecret is the shared secret checked against the signature or
	// token of each hook. Required with WebhookAddr unless
	// WebhookInsecureNoAuth is set.
	WebhookSecret []byte
	// WebhookInsecureNoAuth accepts hooks without any verification when no
	// secret is configured. Anyone reaching the port can then trigger passes.
	WebhookInsecureNoAuth bool
	// WebhookMaxBody caps request bodies (DefaultWebhookMaxBody when zero);
	// larger bodies are answered 413.
	WebhookMaxBody int64

	// MetricsAddr is the listen address of /metrics, /healthz and /readyz;
	// empty: not served.
	MetricsAddr string
	// Metrics holds the series; NewMetrics() when nil. Pass your own to
	// hook ObserveBrokerCall into the broker clients before the daemon runs.
	Metrics *Metrics

	// LeaderElection, when set, makes replicas elect one leader on a Lease;
	// only the leader runs passes.
	LeaderElection *LeaderElection

	// ShutdownGrace is how long a running pass keeps an uncancelled context
	// after the daemon is asked to stop (DefaultShutdownGrace when zero).
	ShutdownGrace time.Duration

	// Log receives the daemon's structured logs; discarded when nil.
	Log logrus.FieldLogger
}

// ErrLeadershipLost is returned by Run when this replica stopped being the
// leader without being asked to stop (it failed to renew its Lease). The
// caller should exit non-zero so the process restarts as a fresh candidate.
var ErrLeadershipLost = errors.New("leader election lost: stopped renewing the lease")

// errPassAbandoned ends the loop when a pass ignored its cancelled context.
var errPassAbandoned = errors.New("pass did not return after its context was cancelled")

// Daemon schedules passes, serves webhooks, metrics and probes, and takes
// part in leader election. Create one with New and call Run once.
type Daemon struct {
	cfg     Config
	log     logrus.FieldLogger
	metrics *Metrics

	// kick holds one token while a trigger is pending (cap 1).
	kick chan struct{}

	mu         sync.Mutex
	pending    Trigger // first trigger since the last pass started, "" none
	leading    bool    // this process may run passes
	stopping   bool    // Run's context is done
	passedOK   bool    // a pass finished without error
	listened   bool
	ran        bool
	webhookLn  net.Listener
	metricsLn  net.Listener
	webhookSrv *http.Server
	metricsSrv *http.Server

	passSeq      atomic.Uint64
	abandonAfter time.Duration
}

// New checks cfg and builds a Daemon. It does not listen yet (see Listen
// and Run).
func New(cfg Config) (*Daemon, error) {
	if cfg.Passer == nil {
		return nil, errors.New("daemon: no Passer")
	}
	if cfg.Schedule == nil {
		return nil, errors.New("daemon: no Schedule")
	}
	if cfg.MinWake <= 0 {
		cfg.MinWake = DefaultMinWake
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.WebhookMaxBody <= 0 {
		cfg.WebhookMaxBody = DefaultWebhookMaxBody
	}
	if cfg.WebhookAddr != "" && len(cfg.WebhookSecret) == 0 && !cfg.WebhookInsecureNoAuth {
		return nil, ErrNoWebhookSecret
	}
	if cfg.LeaderElection != nil {
		le, err := cfg.LeaderElection.withDefaults()
		if err != nil {
			return nil, err
		}
		cfg.LeaderElection = le
	}
	log := cfg.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics()
		cfg.Metrics = m
	}
	d := &Daemon{
		cfg:     cfg,
		log:     log,
		metrics: m,
		kick:    make(chan struct{}, 1),
		leading: cfg.LeaderElection == nil,

		abandonAfter: defaultAbandonAfter,
	}
	if len(cfg.WebhookSecret) > 0 && cfg.WebhookInsecureNoAuth {
		log.Warn("webhook: a secret is configured, so hooks are verified despite the insecure no-auth setting")
	}
	return d, nil
}

// Metrics returns the daemon's metrics (Config.Metrics or the ones New
// created).
func (d *Daemon) Metrics() *Metrics { return d.metrics }

// Listen binds the webhook and metrics addresses, so a caller learns about a
// port in use before anything else happens and can ask for the bound
// addresses (":0" in tests). Run calls it when the caller did not. Calling it
// again does nothing.
func (d *Daemon) Listen() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listened {
		return nil
	}
	if d.cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", d.cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics server: %w", err)
		}
		d.metricsLn = ln
		d.metricsSrv = newServer(d.MetricsHandler())
	}
	if d.cfg.WebhookAddr != "" {
		ln, err := net.Listen("tcp", d.cfg.WebhookAddr)
		if err != nil {
			if d.metricsLn != nil {
				d.metricsLn.Close()
				d.metricsLn, d.metricsSrv = nil, nil
			}
			return fmt.Errorf("webhook receiver: %w", err)
		}
		d.webhookLn = ln
		d.webhookSrv = newServer(d.WebhookHandler())
	}
	d.listened = true
	return nil
}

// WebhookAddr is the address the webhook receiver listens on ("" before
// Listen or when off).
func (d *Daemon) WebhookAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.webhookLn == nil {
		return ""
	}
	return d.webhookLn.Addr().String()
}

// MetricsAddr is the address the metrics server listens on ("" before
// Listen or when off).
func (d *Daemon) MetricsAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.metricsLn == nil {
		return ""
	}
	return d.metricsLn.Addr().String()
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Run serves, elects (when configured) and runs passes until ctx is
// cancelled, then stops gracefully (see the package documentation) and
// returns nil. It returns an error when a server fails, when leadership is
// lost (ErrLeadershipLost), or when a pass ignored the end of the shutdown
// grace. Run may be called once.
func (d *Daemon) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.ran {
		d.mu.Unlock()
		return errors.New("daemon: Run called twice")
	}
	d.ran = true
	d.mu.Unlock()
	if err := d.Listen(); err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		servers   sync.WaitGroup
		serverMu  sync.Mutex
		serverErr error
	)
	serve := func(name string, srv *http.Server, ln net.Listener) {
		servers.Add(1)
		go func() {
			defer servers.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serverMu.Lock()
				if serverErr == nil {
					serverErr = fmt.Errorf("%s server: %w", name, err)
				}
				serverMu.Unlock()
				cancel()
			}
		}()
	}
	if d.metricsSrv != nil {
		d.log.WithField("addr", d.metricsLn.Addr().String()).Info("serving /metrics, /healthz and /readyz")
		serve("metrics", d.metricsSrv, d.metricsLn)
	}
	if d.webhookSrv != nil {
		fields := logrus.Fields{"addr": d.webhookLn.Addr().String(), "auth": "signature or token"}
		if len(d.cfg.WebhookSecret) == 0 {
			fields["auth"] = "none"
			d.log.WithFields(fields).Warn("webhook receiver accepts unauthenticated hooks: anyone reaching it can trigger passes")
		} else {
			d.log.WithFields(fields).Info("webhook receiver listening on POST /hook")
		}
		serve("webhook", d.webhookSrv, d.webhookLn)
	}

	// On stop: not ready, no more triggers, no more webhooks.
	webhookDown := make(chan struct{})
	context.AfterFunc(runCtx, func() {
		defer close(webhookDown)
		d.mu.Lock()
		d.stopping = true
		d.pending = ""
		d.mu.Unlock()
		if ctx.Err() != nil {
			d.log.WithField("grace", d.cfg.ShutdownGrace.String()).Info("stopping: no new pass starts; a running pass may finish within the grace")
		}
		d.shutdownServer(d.webhookSrv, "webhook", webhookShutdownTimeout)
	})

	var err error
	if d.cfg.LeaderElection == nil {
		d.setLeading(true)
		err = d.loop(runCtx, TriggerStart)
		d.setLeading(false)
	} else {
		d.metrics.setLeader(false)
		err = d.runElection(runCtx)
	}
	cancel()
	<-webhookDown
	d.shutdownServer(d.metricsSrv, "metrics", webhookShutdownTimeout)
	servers.Wait()
	serverMu.Lock()
	defer serverMu.Unlock()
	if serverErr != nil {
		return errors.Join(serverErr, err)
	}
	return err
}

func (d *Daemon) shutdownServer(srv *http.Server, name string, timeout time.Duration) {
	if srv == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		d.log.WithError(err).WithField("server", name).Warn("server did not shut down in time; closing its connections")
		srv.Close()
	}
}

func (d *Daemon) setLeading(on bool) {
	d.mu.Lock()
	d.leading = on
	if !on {
		d.pending = ""
		select {
		case <-d.kick:
		default:
		}
	}
	d.mu.Unlock()
	d.metrics.setLeader(on)
}

// triggerResult is what became of a trigger.
type triggerResult int

const (
	// triggerQueued: a pass will run for it.
	triggerQueued triggerResult = iota
	// triggerCoalesced: a pass was already pending; it covers this one.
	triggerCoalesced
	// triggerStandby: this replica is not the leader.
	triggerStandby
	// triggerStopping: the daemon is stopping.
	triggerStopping
)

// trigger asks for a pass as soon as none is running. Triggers arriving
// while one is pending fold into it: any number of them cause one pass.
// TriggerSecret wins the fold, since its pass does more (it reads back
// every binding Secret: reconciler.SyncAfterSecretChange).
func (d *Daemon) trigger(t Trigger) triggerResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.stopping:
		return triggerStopping
	case !d.leading:
		return triggerStandby
	case d.pending != "":
		if t == TriggerSecret {
			d.pending = t
		}
		d.metrics.coalescedTrigger()
		return triggerCoalesced
	}
	d.pending = t
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return triggerQueued
}

// Request asks for a pass (trigger t) as soon as none is running, from
// outside the daemon (a Secret watch): like webhooks, any number of
// requests while one is pending cause one pass, and a standby or stopping
// daemon ignores them.
func (d *Daemon) Request(t Trigger) { d.trigger(t) }

// takePending clears the pending trigger: the pass about to start covers
// it. Invariant (under mu): kick holds a token iff pending != "".
func (d *Daemon) takePending() Trigger {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.pending
	d.pending = ""
	select {
	case <-d.kick:
	default:
	}
	return t
}

// readiness is /readyz's answer.
func (d *Daemon) readiness() (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.stopping:
		return false, "stopping"
	case d.passedOK:
		return true, "ok"
	case d.cfg.LeaderElection != nil && !d.leading:
		return true, "ok (standby)"
	default:
		return false, "no pass has finished without error yet"
	}
}

// loop runs passes while ctx is live: first straight away, then on the
// schedule, at wake-ups and on triggers, one at a time. When ctx ends it
// starts nothing more; the running pass keeps its context for the shutdown
// grace.
func (d *Daemon) loop(ctx context.Context, first Trigger) error {
	// The running pass keeps its context through the grace, but learns
	// at once that it must start no new call (drain).
	passCtx, hardCancel := context.WithCancel(drain.With(context.WithoutCancel(ctx), ctx.Done()))
	defer hardCancel()
	loopDone := make(chan struct{})
	defer close(loopDone)
	go func() {
		select {
		case <-loopDone:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(d.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-loopDone:
		case <-t.C:
			d.log.WithField("grace", d.cfg.ShutdownGrace.String()).Warn("shutdown grace is over: cancelling the running pass")
			hardCancel()
		}
	}()

	trig := first
	next := d.cfg.Schedule.Next(time.Now())
	var wake time.Time
	for {
		if trig == "" {
			due, why := next, TriggerSchedule
			if !wake.IsZero() && (due.IsZero() || wake.Before(due)) {
				due, why = wake, TriggerWake
			}
			var timerC <-chan time.Time
			var timer *time.Timer
			if !due.IsZero() {
				timer = time.NewTimer(time.Until(due))
				timerC = timer.C
			}
			select {
			case <-ctx.Done():
			case <-d.kick:
				// takePending below says which trigger it was.
			case <-timerC:
				trig = why
			}
			if timer != nil {
				timer.Stop()
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		// The pass about to start covers every trigger pending so far.
		if p := d.takePending(); trig == "" {
			trig = p
		}
		if trig == "" {
			continue
		}
		res, done := d.runPass(passCtx, trig)
		if !done {
			return errPassAbandoned
		}
		now := time.Now()
		if !next.IsZero() && !next.After(now) {
			// Ticks that fell during the pass are skipped.
			next = d.cfg.Schedule.Next(now)
		}
		wake = time.Time{}
		if res.err == nil {
			wake = wakeAt(res.rep.NextWake, now, d.cfg.MinWake, period(d.cfg.Schedule, now))
		}
		trig = ""
	}
}

// passResult is what a Passer returned.
type passResult struct {
	rep PassReport
	err error
}

// runPass runs one pass, logs it and records its metrics. done is false
// when the pass did not return within d.abandonAfter of its context's
// cancellation.
func (d *Daemon) runPass(ctx context.Context, t Trigger) (res passResult, done bool) {
	id := d.passSeq.Add(1)
	log := d.log.WithFields(logrus.Fields{"pass": id, "trigger": string(t)})
	log.Debug("pass started")
	start := time.Now()
	ch := make(chan passResult, 1)
	go func() {
		rep, err := d.cfg.Passer.Pass(ctx, t)
		ch <- passResult{rep, err}
	}()
	select {
	case res = <-ch:
	case <-ctx.Done():
		timer := time.NewTimer(d.abandonAfter)
		defer timer.Stop()
		select {
		case res = <-ch:
		case <-timer.C:
			log.WithField("duration", time.Since(start).Round(time.Millisecond).String()).
				Error("pass did not return after its context was cancelled; abandoning it")
			return passResult{err: errPassAbandoned}, false
		}
	}
	end := time.Now()
	dur := end.Sub(start)
	d.metrics.observePass(res.rep, res.err, dur, end)
	fields := logrus.Fields{"duration": dur.Round(time.Millisecond).String(), "in_flight": res.rep.InFlight}
	if s := formatActions(res.rep.Actions); s != "" {
		fields["actions"] = s
	}
	if !res.rep.NextWake.IsZero() {
		fields["next_wake"] = res.rep.NextWake.UTC().Format(time.RFC3339)
	}
	log = log.WithFields(fields)
	switch {
	case res.err != nil:
		log.WithError(res.err).Error("pass failed")
	case res.rep.Skipped:
		log.Debug("pass skipped: nothing due")
	default:
		log.Info("pass finished")
	}
	if res.err == nil {
		d.mu.Lock()
		d.passedOK = true
		d.mu.Unlock()
	}
	return res, true
}

// formatActions renders action counts compactly and in a stable order:
// "create/succeeded=2 delete/failed=1".
func formatActions(a map[string]map[string]int) string {
	var parts []string
	for kind, byResult := range a {
		for res, n := range byResult {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%s/%s=%d", kind, res, n))
			}
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
