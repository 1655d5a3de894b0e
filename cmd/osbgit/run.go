package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bombsimon/logrusr/v4"
	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/reconciler"
	"github.com/osbgit/osbgit/reconciler/daemon"
	"github.com/osbgit/osbgit/reconciler/exec"
	"github.com/osbgit/osbgit/reconciler/secretstore"
	"github.com/osbgit/osbgit/reconciler/secretwatch"
)

func init() { subcommands = append(subcommands, newRunCommand) }

// webhookSecretEnv holds the webhook secret when --webhook-secret-file is
// not given (like OSBGIT_GIT_PASSWORD, an environment-only setting that is
// not a flag twin: a secret has no business on a command line).
const webhookSecretEnv = "OSBGIT_WEBHOOK_SECRET"

// runFlags are `osbgit run`'s own flags.
type runFlags struct {
	schedule              string
	webhookAddr           string
	webhookSecretFile     string
	webhookInsecureNoAuth bool
	metricsAddr           string
	leaderElect           bool
	leaderElectionID      string
	leaderElectionNS      string
	shutdownGrace         time.Duration
	inlinePoll            time.Duration
	pollInterval          time.Duration
	secretCheckInterval   time.Duration
	state                 stateFlags
}

func (rf *runFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&rf.schedule, "schedule", daemon.DefaultSchedule, `when passes run besides webhooks and wake-ups: "@every <duration>", a descriptor like "@hourly", or a 5-field cron expression`)
	f.StringVar(&rf.webhookAddr, "webhook-addr", "", `listen address of the webhook receiver (POST /hook), e.g. ":8080"; empty: no receiver`)
	f.StringVar(&rf.webhookSecretFile, "webhook-secret-file", "", "file holding the webhook secret: GitHub's webhook secret, GitLab's secret token, or the key of X-Signature: sha256=<hex HMAC-SHA256 of the body> (or env "+webhookSecretEnv+")")
	f.BoolVar(&rf.webhookInsecureNoAuth, "webhook-insecure-no-auth", false, "accept webhooks without any verification when no secret is set (anyone reaching the port can trigger passes)")
	f.StringVar(&rf.metricsAddr, "metrics-addr", ":9090", "listen address of /metrics, /healthz and /readyz; empty: off")
	f.BoolVar(&rf.leaderElect, "leader-elect", false, "elect one leader among replicas on a coordination.k8s.io Lease; only the leader runs passes")
	f.StringVar(&rf.leaderElectionID, "leader-election-id", daemon.DefaultLeaseName, "name of the leader-election Lease")
	f.StringVar(&rf.leaderElectionNS, "leader-election-namespace", "", "namespace of the leader-election Lease (default: $POD_NAMESPACE, else default)")
	f.DurationVar(&rf.shutdownGrace, "shutdown-grace", daemon.DefaultShutdownGrace, "on SIGTERM, how long the running pass may take to finish its calls, record operations in flight and push status (keep below terminationGracePeriodSeconds)")
	f.DurationVar(&rf.inlinePoll, "inline-poll", 5*time.Second, "how long a pass keeps polling an async operation before leaving it to a later pass")
	f.DurationVar(&rf.pollInterval, "poll-interval", 10*time.Second, "how soon the next pass polls async operations left in flight (the schedule still applies when sooner)")
	f.DurationVar(&rf.secretCheckInterval, "secret-check-interval", time.Minute, "with --secret-store dir:PATH, how often the Secrets the manifests reference (parametersFrom, broker auth, binding Secrets) are re-read; a change runs a pass (with kube, they are watched); 0: only on the schedule")
	rf.state.register(f, "do not keep pass state in the cache dir (the first pass after a restart is a full pass)")
}

// webhookSecret reads --webhook-secret-file, else OSBGIT_WEBHOOK_SECRET.
// nil means none.
func (rf *runFlags) webhookSecret() ([]byte, error) {
	if rf.webhookSecretFile != "" {
		s, err := readSecretFile("webhook-secret-file", rf.webhookSecretFile)
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, fmt.Errorf("--webhook-secret-file %s is empty", rf.webhookSecretFile)
		}
		return []byte(s), nil
	}
	if v := os.Getenv(webhookSecretEnv); v != "" {
		return []byte(v), nil
	}
	return nil, nil
}

func newRunCommand(g *globalOptions) *cobra.Command {
	var (
		pf passFlags
		rf runFlags
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run passes continuously: on a schedule, on webhooks and when async operations are due (exit 0 on SIGTERM, 2 on error)",
		Long: `run is the long-running mode (a Deployment). It runs a pass at start, then
on --schedule, when operations left in flight are due for a poll, and when a
verified webhook arrives; never two at once, and any number of webhooks
arriving during a pass cause one more pass.

Webhooks (POST /hook on --webhook-addr) are verified with a shared secret
(--webhook-secret-file or ` + webhookSecretEnv + `): GitHub's
X-Hub-Signature-256, GitLab's X-Gitlab-Token, or X-Signature: sha256=<hex
HMAC-SHA256 of the body>. Without a secret run refuses to start the receiver
unless --webhook-insecure-no-auth is given.

--metrics-addr serves /metrics (Prometheus), /healthz and /readyz.

With --leader-elect, replicas elect a leader on a Lease (--kubeconfig, else
in-cluster config); only the leader runs passes, the others stay Ready as
standbys. The Lease does not fence: the rejected Git push is what keeps two
overlapping leaders from conflicting (a pass whose write-ahead push is
rejected re-plans before calling any broker).

On SIGTERM or SIGINT run stops accepting webhooks, starts no new pass, lets
the running one finish within --shutdown-grace, releases the Lease and exits 0.
It exits 2 on a configuration error or when it loses the Lease.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			parent := cmd.Context()
			if parent == nil {
				parent = context.Background()
			}
			ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, os.Interrupt)
			defer stop()
			if err := runDaemon(ctx, cmd, g, &pf, &rf); err != nil {
				return withExitCode(exitError, err)
			}
			return nil
		},
	}
	pf.register(cmd, true)
	rf.register(cmd)
	return cmd
}

// runDaemon checks the settings before touching Git or Kubernetes, wires a
// reconciler into a daemon and runs it until ctx ends.
func runDaemon(ctx context.Context, cmd *cobra.Command, g *globalOptions, pf *passFlags, rf *runFlags) error {
	sched, err := daemon.ParseSchedule(rf.schedule)
	if err != nil {
		return fmt.Errorf("--schedule: %w", err)
	}
	secret, err := rf.webhookSecret()
	if err != nil {
		return err
	}
	if rf.webhookAddr != "" && secret == nil && !rf.webhookInsecureNoAuth {
		return fmt.Errorf("--webhook-addr %s: no webhook secret: set --webhook-secret-file or %s (or --webhook-insecure-no-auth to accept unauthenticated hooks)", rf.webhookAddr, webhookSecretEnv)
	}
	if g.SecretStore == "" {
		return errors.New("run writes binding credentials: set --secret-store kube or dir:PATH")
	}
	if rf.shutdownGrace <= 0 {
		return fmt.Errorf("--shutdown-grace %s: must be positive", rf.shutdownGrace)
	}
	// client-go's leader election logs through klog: send it to our logger
	// so that --log-format applies.
	klog.SetLogger(klogLogger(g.log))

	var le *daemon.LeaderElection
	if rf.leaderElect {
		cs, err := secretstore.NewKubeClient(g.Kubeconfig)
		if err != nil {
			return fmt.Errorf("--leader-elect: %w", err)
		}
		id, err := daemon.DefaultIdentity()
		if err != nil {
			return err
		}
		ns := rf.leaderElectionNS
		if ns == "" {
			ns = daemon.DefaultLeaseNamespace()
		}
		le = &daemon.LeaderElection{Client: cs.CoordinationV1(), Namespace: ns, Name: rf.leaderElectionID, Identity: id}
	}

	metrics := daemon.NewMetrics()
	r, repo, err := newReconciler(ctx, cmd, g, pf)
	if err != nil {
		return err
	}
	defer repo.Close()
	if err := repo.CheckWritable(); err != nil {
		return err
	}
	r.Options.InlinePoll = rf.inlinePoll
	r.Cache = reconciler.NewDecodeCache() // passes decode only what changed
	r.Options.ScopeIndexPath = rf.state.indexPath(g, repo)
	if r.Options.StateStore, err = rf.state.store(g, repo); err != nil {
		return err
	}
	if r.Clients != nil {
		// RequestInfo.Broker is the broker's name (namespace/name for a
		// namespaced ServiceBroker): the metric's broker label.
		r.Clients.OnRequest = func(ri osbclient.RequestInfo) {
			metrics.ObserveBrokerCall(ri.Broker, string(ri.Op), ri.StatusCode, ri.Duration)
		}
	}

	passer := newReconcilerPasser(r, g.log, rf.pollInterval)
	var watch *secretwatch.Kube
	if kube, ok := r.Secrets.(*secretstore.Kube); ok {
		watch = &secretwatch.Kube{Client: kube.Client(), Log: g.log}
		passer.watch = watch.Update
	}
	d, err := daemon.New(daemon.Config{
		Passer:                passer,
		Schedule:              sched,
		WebhookAddr:           rf.webhookAddr,
		WebhookSecret:         secret,
		WebhookInsecureNoAuth: rf.webhookInsecureNoAuth,
		MetricsAddr:           rf.metricsAddr,
		Metrics:               metrics,
		LeaderElection:        le,
		ShutdownGrace:         rf.shutdownGrace,
		Log:                   g.log,
	})
	if err != nil {
		return err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	switch {
	case watch != nil:
		watch.Changed = func() { d.Request(daemon.TriggerSecret) }
		go watch.Run(watchCtx)
	case rf.secretCheckInterval > 0:
		go func() {
			_ = secretwatch.Poll(watchCtx, rf.secretCheckInterval, func() { d.Request(daemon.TriggerSecret) })
		}()
	}
	if err := d.Run(ctx); err != nil {
		return err
	}
	g.log.Info("stopped")
	return nil
}

// reconcilerPasser adapts reconciler.Reconciler.Sync to daemon.Passer: it
// runs one pass and reports action counts, the operations left in flight and
// when the next pass is due.
type reconcilerPasser struct {
	sync func(ctx context.Context) (*reconciler.SyncResult, error)
	// syncAfterSecretChange is sync for a pass a Secret trigger asked for.
	syncAfterSecretChange func(ctx context.Context) (*reconciler.SyncResult, error)
	state                 func() *reconciler.PassState
	log                   logrus.FieldLogger
	now                   func() time.Time
	// pollInterval is how soon operations in flight are polled again (the
	// pass state does not record their Retry-After).
	pollInterval time.Duration
	// watch, when set, is given the Secrets to watch after each pass.
	watch func(secretwatch.Set)
}

func newReconcilerPasser(r *reconciler.Reconciler, log logrus.FieldLogger, pollInterval time.Duration) *reconcilerPasser {
	return &reconcilerPasser{
		sync:                  r.Sync,
		syncAfterSecretChange: r.SyncAfterSecretChange,
		state:                 func() *reconciler.PassState { return r.State },
		log:                   log,
		now:                   time.Now,
		pollInterval:          pollInterval,
	}
}

// Pass implements daemon.Passer.
func (p *reconcilerPasser) Pass(ctx context.Context, trigger daemon.Trigger) (daemon.PassReport, error) {
	sync := p.sync
	if trigger == daemon.TriggerSecret && p.syncAfterSecretChange != nil {
		sync = p.syncAfterSecretChange
	}
	res, err := sync(ctx)
	var rep daemon.PassReport
	if st := p.state(); st != nil && p.watch != nil {
		p.watch(watchSet(st))
	}
	if st := p.state(); st != nil {
		rep.InFlight = st.InFlight
		rep.NextWake = st.NextRelist
		if st.InFlight > 0 {
			// Poll operations in flight when the broker asked to be
			// polled (Retry-After, or the executor's backoff); fall back
			// to --poll-interval when the last pass did not poll them.
			poll := st.NextPoll
			if poll.IsZero() && p.pollInterval > 0 {
				poll = p.now().Add(p.pollInterval)
			}
			if !poll.IsZero() && (rep.NextWake.IsZero() || poll.Before(rep.NextWake)) {
				rep.NextWake = poll
			}
		}
	}
	// The reconciler and the executor already log failed resources and
	// catalogs; the daemon logs the pass with these counts.
	if res != nil {
		rep.Skipped = res.Skipped
		if res.Exec != nil {
			rep.Actions = actionCounts(res.Exec.Outcomes)
		}
	}
	if err != nil {
		return rep, err
	}
	if res == nil {
		return rep, nil
	}
	if res.Refused != "" {
		return rep, fmt.Errorf("pass refused: %s", res.Refused)
	}
	return rep, nil
}

// watchSet is the Secrets the pass state depends on, as secretwatch takes
// them.
func watchSet(st *reconciler.PassState) secretwatch.Set {
	referenced, bindings := st.ReferencedSecrets()
	conv := func(ns []reconciler.SecretName) []secretwatch.Name {
		out := make([]secretwatch.Name, len(ns))
		for i, n := range ns {
			out[i] = secretwatch.Name{Namespace: n.Namespace, Name: n.Name}
		}
		return out
	}
	return secretwatch.Set{Referenced: conv(referenced), Bindings: conv(bindings)}
}

// actionCounts tallies outcomes by action and result for
// osbgit_actions_total; steps that did nothing are left out.
func actionCounts(outcomes []exec.Outcome) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, o := range outcomes {
		if o.Status == exec.StatusUnchanged {
			continue
		}
		result := strings.ReplaceAll(string(o.Status), "-", "_")
		switch {
		case result != "":
		case o.Err != nil:
			result = "failed"
		case o.InProgress:
			result = "in_progress"
		default:
			result = "succeeded"
		}
		kind := string(o.Action)
		if out[kind] == nil {
			out[kind] = map[string]int{}
		}
		out[kind][result]++
	}
	return out
}

// klogLogger is where klog (client-go's leader election) writes: our
// logger through logrusr, each entry tagged component=client-go, so that
// --log-format and --log-level apply (klog's V(n) shows from logrus level
// info+n: V(0) at info, V(1) at debug).
func klogLogger(log logrus.FieldLogger) logr.Logger {
	return logrusr.New(log.WithField("component", "client-go"))
}
