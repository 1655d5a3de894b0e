package daemon

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names, exported so dashboards, alerts and tests spell them once.
const (
	MetricPassDuration      = "osbgit_pass_duration_seconds"
	MetricActions           = "osbgit_actions_total"
	MetricBrokerDuration    = "osbgit_broker_request_duration_seconds"
	MetricInFlight          = "osbgit_async_operations_in_flight"
	MetricLastSuccess       = "osbgit_last_successful_pass_timestamp_seconds"
	MetricLeader            = "osbgit_leader"
	MetricWebhookRequests   = "osbgit_webhook_requests_total"
	MetricCoalescedTriggers = "osbgit_coalesced_triggers_total"
)

// Values of the result label of osbgit_pass_duration_seconds.
const (
	PassSuccess = "success"
	PassError   = "error"
	PassSkipped = "skipped"
)

// Metrics holds osbgit's Prometheus series in a private registry, so that
// two daemons (or two tests) in one process never share counters and
// nothing registers into the global default registry behind our back.
//
// Series:
//   - osbgit_pass_duration_seconds{result=success|error|skipped} (histogram)
//   - osbgit_actions_total{action,result} — one per executed resource action
//     (result as the Passer reports it: succeeded, failed, in_progress, ...)
//   - osbgit_broker_request_duration_seconds{broker,endpoint,code} (histogram;
//     code "none" when no response was received)
//   - osbgit_async_operations_in_flight (gauge, after the last pass)
//   - osbgit_last_successful_pass_timestamp_seconds (gauge, Unix time)
//   - osbgit_leader (gauge 0/1; 1 without leader election)
//   - osbgit_webhook_requests_total{result=accepted|standby|ping|unauthorized|too_large|bad_request|unavailable}
//   - osbgit_coalesced_triggers_total — triggers folded into a pass that was
//     already pending
//
// plus the Go runtime and process collectors. A nil *Metrics is valid and
// records nothing.
type Metrics struct {
	reg            *prometheus.Registry
	passDuration   *prometheus.HistogramVec
	actions        *prometheus.CounterVec
	brokerDuration *prometheus.HistogramVec
	inFlight       prometheus.Gauge
	lastSuccess    prometheus.Gauge
	leader         prometheus.Gauge
	webhooks       *prometheus.CounterVec
	coalesced      prometheus.Counter
}

// NewMetrics creates the series in a fresh private registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		passDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricPassDuration,
			Help:    "Duration of reconciliation passes, by result (success, error, skipped: nothing was due).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricActions,
			Help: "Resource actions executed by passes, by action kind (create, update, delete, poll, ...) and result (succeeded, failed, in_progress, retry_later, waiting).",
		}, []string{"action", "result"}),
		brokerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricBrokerDuration,
			Help:    "Latency of OSB calls to brokers, by broker, endpoint (OSB operation) and HTTP status code (none: no response).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"broker", "endpoint", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricInFlight,
			Help: "Asynchronous broker operations recorded in progress after the last pass.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricLastSuccess,
			Help: "Unix time at which the last pass without error finished (0: none yet).",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricLeader,
			Help: "1 when this process runs passes (the leader, or the only replica without --leader-elect), else 0.",
		}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricWebhookRequests,
			Help: "Webhook requests by outcome.",
		}, []string{"result"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricCoalescedTriggers,
			Help: "Pass triggers (webhooks) folded into a pass that was already pending.",
		}),
	}
	m.reg.MustRegister(m.passDuration, m.actions, m.brokerDuration, m.inFlight,
		m.lastSuccess, m.leader, m.webhooks, m.coalesced,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Make the pass series exist at zero so dashboards and alerts see them
	// before the first pass of each kind.
	for _, r := range []string{PassSuccess, PassError, PassSkipped} {
		m.passDuration.WithLabelValues(r)
	}
	return m
}

// Registry is the private registry holding the series (for tests and for
// callers adding their own collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveBrokerCall records one finished OSB call: broker is the broker's
// name, op the OSB operation (osbclient.Operation), code the HTTP status (0
// when no response arrived) and d its duration. It is safe for concurrent use
// and does not block, so it can be called from osbclient.Config.OnRequest.
func (m *Metrics) ObserveBrokerCall(broker, op string, code int, d time.Duration) {
	if m == nil {
		return
	}
	if broker == "" {
		broker = "unknown"
	}
	c := "none"
	if code > 0 {
		c = strconv.Itoa(code)
	}
	m.brokerDuration.WithLabelValues(broker, op, c).Observe(d.Seconds())
}

// observePass records a finished pass.
func (m *Metrics) observePass(rep PassReport, err error, d time.Duration, end time.Time) {
	if m == nil {
		return
	}
	result := PassSuccess
	switch {
	case err != nil:
		result = PassError
	case rep.Skipped:
		result = PassSkipped
	}
	m.passDuration.WithLabelValues(result).Observe(d.Seconds())
	// Deterministic order only matters for readability of debugging.
	kinds := make([]string, 0, len(rep.Actions))
	for k := range rep.Actions {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		for res, n := range rep.Actions[kind] {
			if n > 0 {
				m.actions.WithLabelValues(kind, res).Add(float64(n))
			}
		}
	}
	if err == nil {
		m.inFlight.Set(float64(rep.InFlight))
		m.lastSuccess.Set(float64(end.UnixNano()) / 1e9)
	}
}

func (m *Metrics) setLeader(on bool) {
	if m == nil {
		return
	}
	if on {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

func (m *Metrics) webhook(result string) {
	if m == nil {
		return
	}
	m.webhooks.WithLabelValues(result).Inc()
}

func (m *Metrics) coalescedTrigger() {
	if m == nil {
		return
	}
	m.coalesced.Inc()
}
