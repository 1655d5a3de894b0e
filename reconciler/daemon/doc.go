// Package daemon is osbgit's long-running mode (`osbgit run`). It decides
// when passes run and runs exactly one at a time; what a pass does is
// somebody else's business (a Passer), so this package does not import the
// reconciler and compiles and tests on its own.
//
// # When a pass runs
//
//   - At start (or on becoming leader): one pass straight away.
//   - On a cron schedule (robfig/cron/v3, e.g. "@every 1m"). A tick that
//     falls while a pass is running is skipped, like a CronJob with
//     concurrencyPolicy Forbid: the pass that was running already covers it.
//   - At the pass's NextWake: a pass that leaves asynchronous operations in
//     flight (or a relist due soon) says when it wants to run again, and the
//     next pass runs then — clamped to [Config.MinWake, schedule period] —
//     instead of waiting for the next tick. Async operations are polled when
//     the Passer says they are due (their Retry-After), not at the next tick.
//   - On a verified webhook (POST /hook). Any number of hooks arriving while
//     a pass runs coalesce into ONE follow-up pass; there is no queue, so a
//     burst can never fill one (Argo CD answers 503 when its queue is full;
//     here that cannot happen).
//
// # Webhooks
//
// The receiver accepts GitHub (X-Hub-Signature-256: sha256=<hex HMAC-SHA256
// of the body>), GitLab (X-Gitlab-Token: the shared secret) and a generic
// X-Signature: sha256=<hex HMAC-SHA256 of the body>. Every comparison is
// constant-time (hmac.Equal; tokens are compared as SHA-256 digests so not
// even their length leaks). Bodies are capped (1 MiB by default, 413 above).
// Without a secret the receiver refuses to start unless the caller
// explicitly asked for unauthenticated hooks (Config.WebhookInsecureNoAuth):
// an unauthenticated hook can only trigger a pass, but a pass costs broker
// and Git calls, so accepting them must be a deliberate choice. Failed
// verifications answer 401 and are logged with the remote address, the
// header checked and the reason — never the secret or the value received.
// GitHub's ping event answers 200 without a pass; any other verified event
// triggers one (events are not filtered: a pass with nothing new ends after
// one ref lookup, which is cheaper than the risk of missing a push).
//
// # Metrics and probes
//
// The metrics server serves /metrics from a private prometheus.Registry
// (see Metrics for the series), /healthz (the process is alive) and /readyz
// (200 once a pass finished without error, or while the replica is a standby
// under leader election — a standby is healthy and must stay Ready so that
// rollouts and PodDisruptionBudgets count it; a standby that becomes leader is
// Ready again once its first pass succeeds; 503 while stopping). Once a pass
// succeeded readiness is sticky: a later failing pass does not take the
// replica out of its Service (the webhook receiver still works, and a push fixing the
// problem must reach it); alert on osbgit_last_successful_pass_timestamp_seconds
// instead.
//
// # Leader election
//
// With Config.LeaderElection set, replicas compete for a
// coordination.k8s.io Lease (client-go leaderelection, controller-runtime's
// timings 15s/10s/2s by default, released on a clean stop so a standby takes
// over within one retry period). Only the leader runs passes. A leader that
// fails to renew stops starting passes at once, lets the running pass finish
// within the shutdown grace, and Run returns ErrLeadershipLost (the process
// exits and is restarted as a fresh candidate, as controller-runtime does).
// Webhooks that reach a standby are answered 202 and dropped: the leader
// sees the change at its next scheduled pass.
//
// Leader election does not fence. Two leaders can briefly overlap (a paused
// process does not know its lease expired). The real fence is Git: a pass's
// write-ahead push is rejected when the branch moved, and the pass re-plans
// from the new head before calling any broker (DESIGN.md, "Status written
// back"). The Lease only keeps the overlap rare.
//
// # Stopping
//
// When Run's context is cancelled (SIGTERM/SIGINT in the CLI): readiness
// turns 503, the webhook server shuts down (in-flight requests get a short
// timeout), no new pass starts, the running pass keeps an uncancelled
// context for Config.ShutdownGrace so it can finish its in-flight calls,
// record the operations still running and push status; then the Lease is
// released, the metrics server is closed and Run returns nil.
package daemon
