package daemon

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// counterValue reads one series from the registry: a counter's or gauge's
// value, a histogram's sample count; 0 when absent. labels must match
// exactly the ones given (others are ignored).
func counterValue(t *testing.T, m *Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, mt := range mf.GetMetric() {
			for k, v := range labels {
				if labelValue(mt, k) != v {
					continue metrics
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestNewValidates(t *testing.T) {
	p := newFakePasser()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no passer", Config{Schedule: never}, "no Passer"},
		{"no schedule", Config{Passer: p}, "no Schedule"},
		{"webhook without secret", Config{Passer: p, Schedule: never, WebhookAddr: ":0"}, "shared secret"},
		{"leader election without client", Config{Passer: p, Schedule: never, LeaderElection: &LeaderElection{}}, "no Kubernetes client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestListenReportsPortInUse(t *testing.T) {
	p := newFakePasser()
	r := start(t, Config{Passer: p, Schedule: never, MetricsAddr: "127.0.0.1:0"})
	d, err := New(Config{Passer: p, Schedule: never, MetricsAddr: r.d.MetricsAddr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Listen(); err == nil || !strings.Contains(err.Error(), "metrics server") {
		t.Fatalf("Listen on a used port: %v", err)
	}
	if err := d.Run(context.Background()); err == nil {
		t.Fatal("Run on a used port succeeded")
	}
}

// TestScheduleTicks: passes run at start and then on every tick, never two
// at once. (Fake time: testing/synctest.)
func TestScheduleTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePasser()
		begin := time.Now()
		start(t, Config{Passer: p, Schedule: every(40 * time.Millisecond)})
		if tr := p.waitStarted(t); tr != TriggerStart {
			t.Fatalf("first trigger %q", tr)
		}
		for i := 0; i < 4; i++ {
			if tr := p.waitStarted(t); tr != TriggerSchedule {
				t.Fatalf("pass %d trigger %q, want schedule", i+2, tr)
			}
		}
		if took := time.Since(begin); took != 4*40*time.Millisecond {
			t.Fatalf("five passes took %v, want four periods", took)
		}
	})
}

// TestTicksDuringAPassAreSkipped: a pass longer than the period does not
// queue up the ticks it spans.
func TestTicksDuringAPassAreSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePasser()
		p.gate = make(chan struct{})
		start(t, Config{Passer: p, Schedule: every(20 * time.Millisecond)})
		p.waitStarted(t)
		time.Sleep(300 * time.Millisecond) // 15 ticks go by (fake time)
		close(p.gate)
		p.waitStarted(t) // the next tick's pass
		n := p.count()
		time.Sleep(60 * time.Millisecond) // three periods
		synctest.Wait()
		if got := p.count() - n; got > 3 {
			t.Fatalf("%d passes in three periods after a long pass: missed ticks were queued", got)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.maxRun != 1 {
			t.Fatalf("%d passes ran at once", p.maxRun)
		}
	})
}

// TestWakeUpAtNextWake: a pass leaving operations in flight is followed by
// one at its NextWake, not at the next tick.
func TestWakeUpAtNextWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePasser()
		const retryAfter = 150 * time.Millisecond
		var passTimes = make(chan time.Time, 10)
		p.answer = func(n int) (PassReport, error) {
			passTimes <- time.Now()
			if n <= 2 {
				return PassReport{InFlight: 1, NextWake: time.Now().Add(retryAfter),
					Actions: map[string]map[string]int{"create": {"in_progress": 1}}}, nil
			}
			return PassReport{Actions: map[string]map[string]int{"poll": {"succeeded": 1}}}, nil
		}
		r := start(t, Config{Passer: p, Schedule: never, MinWake: 10 * time.Millisecond})
		want := []Trigger{TriggerStart, TriggerWake, TriggerWake}
		var times []time.Time
		for i, w := range want {
			if tr := p.waitStarted(t); tr != w {
				t.Fatalf("pass %d trigger %q, want %q", i+1, tr, w)
			}
			times = append(times, <-passTimes)
		}
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap != retryAfter {
				t.Fatalf("pass %d ran %v after the previous one, want at its NextWake (%v)", i+1, gap, retryAfter)
			}
		}
		time.Sleep(30 * time.Minute) // anything due would have run
		synctest.Wait()
		if n := p.count(); n != 3 {
			t.Fatalf("%d passes; nothing in flight after pass 3, so no more were due", n)
		}
		if got := counterValue(t, r.d.Metrics(), MetricInFlight, nil); got != 0 {
			t.Fatalf("in-flight gauge %v after the operation finished", got)
		}
	})
}

func TestWakeAt(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		next     time.Time
		min, max time.Duration
		want     time.Time
	}{
		{"none asked", time.Time{}, time.Second, time.Minute, time.Time{}},
		{"in range", now.Add(10 * time.Second), time.Second, time.Minute, now.Add(10 * time.Second)},
		{"past: min", now.Add(-time.Hour), time.Second, time.Minute, now.Add(time.Second)},
		{"Retry-After 0: min", now, time.Second, time.Minute, now.Add(time.Second)},
		{"beyond the period: the period", now.Add(time.Hour), time.Second, time.Minute, now.Add(time.Minute)},
		{"no period", now.Add(time.Hour), time.Second, 0, now.Add(time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := wakeAt(tc.next, now, tc.min, tc.max); !got.Equal(tc.want) {
				t.Fatalf("wakeAt = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseSchedule(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 30, 0, time.UTC)
	tests := []struct {
		spec       string
		wantErr    bool
		wantPeriod time.Duration
	}{
		{DefaultSchedule, false, time.Minute},
		{"@every 30s", false, 30 * time.Second},
		{"*/5 * * * *", false, 5 * time.Minute},
		{"@hourly", false, time.Hour},
		{"bogus", true, 0},
		{"* * * * * * *", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := ParseSchedule(tc.spec)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseSchedule(%q) error %v, want error %v", tc.spec, err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.spec) {
					t.Fatalf("error %q does not name the spec", err)
				}
				return
			}
			if p := period(s, now); p != tc.wantPeriod {
				t.Fatalf("period %v, want %v", p, tc.wantPeriod)
			}
		})
	}
}

// TestMetricsServed: after a pass, /metrics over a real listener holds every
// series with the pass's numbers.
func TestMetricsServed(t *testing.T) {
	p := newFakePasser()
	p.answer = func(n int) (PassReport, error) {
		return PassReport{
			InFlight: 3,
			Actions: map[string]map[string]int{
				"create": {"succeeded": 2, "failed": 1},
				"delete": {"in_progress": 1},
			},
		}, nil
	}
	m := NewMetrics()
	m.ObserveBrokerCall("demo", "Provision", 202, 30*time.Millisecond)
	m.ObserveBrokerCall("demo", "GetCatalog", 0, time.Second)
	m.ObserveBrokerCall("", "Bind", 201, time.Millisecond)
	before := time.Now()
	r := start(t, Config{Passer: p, Schedule: never, MetricsAddr: "127.0.0.1:0", Metrics: m})
	p.waitStarted(t)
	waitFor(t, "last successful pass recorded", func() bool {
		return counterValue(t, m, MetricLastSuccess, nil) > 0
	})
	code, body := get(t, "http://"+r.d.MetricsAddr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`osbgit_pass_duration_seconds_count{result="success"} 1`,
		`osbgit_pass_duration_seconds_count{result="error"} 0`,
		`osbgit_pass_duration_seconds_count{result="skipped"} 0`,
		`osbgit_actions_total{action="create",result="succeeded"} 2`,
		`osbgit_actions_total{action="create",result="failed"} 1`,
		`osbgit_actions_total{action="delete",result="in_progress"} 1`,
		`osbgit_async_operations_in_flight 3`,
		`osbgit_leader 1`,
		`osbgit_broker_request_duration_seconds_count{broker="demo",code="202",endpoint="Provision"} 1`,
		`osbgit_broker_request_duration_seconds_count{broker="demo",code="none",endpoint="GetCatalog"} 1`,
		`osbgit_broker_request_duration_seconds_count{broker="unknown",code="201",endpoint="Bind"} 1`,
		`osbgit_last_successful_pass_timestamp_seconds `,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if ts := counterValue(t, m, MetricLastSuccess, nil); ts < float64(before.Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Errorf("last successful pass timestamp %v not around now", ts)
	}
	// Private registries: a second daemon's metrics start at zero.
	if got := counterValue(t, NewMetrics(), MetricActions, map[string]string{"action": "create", "result": "succeeded"}); got != 0 {
		t.Fatalf("fresh metrics share series: %v", got)
	}
}

func TestPassResultsInMetrics(t *testing.T) {
	p := newFakePasser()
	p.answer = func(n int) (PassReport, error) {
		switch n {
		case 1:
			return PassReport{Skipped: true}, nil
		case 2:
			return PassReport{}, errBoom
		}
		return PassReport{}, nil
	}
	r := start(t, Config{Passer: p, Schedule: every(20 * time.Millisecond)})
	waitFor(t, "three passes", func() bool { return p.count() >= 3 })
	m := r.d.Metrics()
	waitFor(t, "three passes recorded", func() bool {
		return counterValue(t, m, MetricPassDuration, map[string]string{"result": PassSuccess}) >= 1
	})
	for _, res := range []string{PassSkipped, PassError} {
		if got := counterValue(t, m, MetricPassDuration, map[string]string{"result": res}); got != 1 {
			t.Errorf("pass_duration{result=%q} count %v, want 1", res, got)
		}
	}
	if !strings.Contains(r.logs.String(), `"msg":"pass failed"`) || !strings.Contains(r.logs.String(), `"error":"boom"`) {
		t.Errorf("failed pass not logged with its error:\n%s", r.logs.String())
	}
}

// TestHealthAndReadiness: /healthz is 200 throughout; /readyz is 503 until
// a pass succeeds, 200 after (even if a later pass fails), 503 while
// stopping; both servers are closed once Run returns.
func TestHealthAndReadiness(t *testing.T) {
	p := newFakePasser()
	release := make(chan struct{})
	p.answer = func(n int) (PassReport, error) {
		switch n {
		case 1:
			return PassReport{}, errBoom
		case 2:
			return PassReport{}, nil
		case 3:
			return PassReport{}, errBoom
		}
		<-release // pass 4 runs across the stop
		return PassReport{}, nil
	}
	r := start(t, Config{Passer: p, Schedule: never, MetricsAddr: "127.0.0.1:0",
		WebhookAddr: "127.0.0.1:0", WebhookSecret: []byte(testSecret), ShutdownGrace: 10 * time.Second})
	base := "http://" + r.d.MetricsAddr()
	hook := func() {
		t.Helper()
		if code := post(t, "http://"+r.d.WebhookAddr()+"/hook", map[string]string{HeaderGitLabToken: testSecret}, "{}"); code != http.StatusAccepted {
			t.Fatalf("hook: %d", code)
		}
	}
	p.waitStarted(t)
	waitFor(t, "first pass done", func() bool {
		return counterValue(t, r.d.Metrics(), MetricPassDuration, map[string]string{"result": PassError}) == 1
	})
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no pass") {
		t.Fatalf("/readyz after a failed first pass: %d %q, want 503", code, body)
	}
	hook()
	p.waitStarted(t)
	waitFor(t, "ready", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })
	hook()
	p.waitStarted(t)
	waitFor(t, "third pass done", func() bool {
		return counterValue(t, r.d.Metrics(), MetricPassDuration, map[string]string{"result": PassError}) == 2
	})
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after a later failed pass: %d, want 200 (readiness is sticky)", code)
	}
	hook()
	p.waitStarted(t) // pass 4 blocks on release
	r.cancel()
	waitFor(t, "not ready while stopping", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusServiceUnavailable })
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while stopping: %d (the process is still alive)", code)
	}
	close(release)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !refused(r.d.MetricsAddr()) || !refused(r.d.WebhookAddr()) {
		t.Fatal("a server still accepts connections after Run returned")
	}
}

// TestGracefulStop: on stop the webhook receiver closes at once, the
// running pass finishes with a live context within the grace, and Run
// returns nil with both servers down.
func TestGracefulStop(t *testing.T) {
	p := newFakePasser()
	p.gate = make(chan struct{})
	r := start(t, Config{Passer: p, Schedule: never, MetricsAddr: "127.0.0.1:0",
		WebhookAddr: "127.0.0.1:0", WebhookSecret: []byte(testSecret), ShutdownGrace: 10 * time.Second})
	p.waitStarted(t)
	r.cancel()
	waitFor(t, "webhook receiver closed", func() bool { return refused(r.d.WebhookAddr()) })
	if got := r.d.trigger(TriggerWebhook); got != triggerStopping {
		t.Fatalf("trigger while stopping: %v", got)
	}
	close(p.gate)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctxErrs[0] != nil {
		t.Fatalf("the running pass's context was cancelled within the grace: %v", p.ctxErrs[0])
	}
	if !refused(r.d.MetricsAddr()) {
		t.Fatal("metrics server still up")
	}
	if got := counterValue(t, r.d.Metrics(), MetricLeader, nil); got != 0 {
		t.Fatalf("leader gauge %v after stop", got)
	}
}

// TestNoPassStartsAfterStop: while the running pass uses its grace, ticks
// go by and nothing starts; Run waits for the pass, then returns nil.
func TestNoPassStartsAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePasser()
		p.gate = make(chan struct{})
		r := start(t, Config{Passer: p, Schedule: every(20 * time.Millisecond), ShutdownGrace: 10 * time.Second})
		p.waitStarted(t)
		r.cancel()
		time.Sleep(5 * time.Second) // 250 ticks, within the grace
		synctest.Wait()
		select {
		case err := <-r.done:
			t.Fatalf("Run returned (%v) while a pass was running within its grace", err)
		default:
		}
		close(p.gate)
		if err := r.stop(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := p.snapshot(); len(got) != 1 {
			t.Fatalf("passes %v: a pass started after stop", got)
		}
	})
}

// TestShutdownGraceExpires: a pass still running when the grace is over
// gets its context cancelled; Run returns nil once it returns.
func TestShutdownGraceExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePasser()
		p.gate = make(chan struct{}) // never closed: the pass ends only on ctx
		r := start(t, Config{Passer: p, Schedule: never, ShutdownGrace: 100 * time.Millisecond})
		p.waitStarted(t)
		stopped := time.Now()
		if err := r.stop(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if took := time.Since(stopped); took != 100*time.Millisecond {
			t.Fatalf("Run returned after %v, want at the end of the grace (100ms)", took)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if !errors.Is(p.ctxErrs[0], context.Canceled) {
			t.Fatalf("pass context error %v, want Canceled", p.ctxErrs[0])
		}
	})
}

// TestPassIgnoringCancellationIsAbandoned: Run does not hang on a pass
// that ignores its context.
func TestPassIgnoringCancellationIsAbandoned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePasser()
		p.gate = make(chan struct{})
		p.ignoreCtx = true
		defer close(p.gate)
		d, err := New(Config{Passer: p, Schedule: never, ShutdownGrace: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		d.abandonAfter = 50 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		p.waitStarted(t)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, errPassAbandoned) {
				t.Fatalf("Run: %v, want errPassAbandoned", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run hung on a pass ignoring its context")
		}
	})
}
