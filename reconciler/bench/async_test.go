package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler"
	"github.com/osbgit/osbgit/reconciler/internal/parallel"
)

// Parameters and limit of the async figure.
const (
	asyncRatioLimit = 1.2
	asyncPolls      = 5
	asyncRetryAfter = time.Second
	// asyncFirstPoll is how long after a 202 osbgit polls first
	// (exec.DefaultPollInitial; the 202 carries no Retry-After).
	asyncFirstPoll = time.Second
)

// asyncConverge is figure 3: 1,000 instances whose provision is
// asynchronous (202, then 5 "in progress" polls each answered with
// Retry-After: 1, then succeeded), converged by one pass that polls inline
// (as `osbgit run` and a long InlinePoll do) at concurrency 8.
//
// The minimum is the larger of two bounds: the Retry-After chain of the
// last instance to be provisioned (the time to send every provision at 8
// in flight, measured with a plain net/http loop, plus the first poll's
// wait and 5 Retry-After waits: 6 s) and the call throughput (every
// provision and poll at 8 in flight, at the per-call times the plain loop
// measured).
func asyncConverge(t *testing.T, s settings) figure {
	n := s.n(1000)
	w := newWorld(t)
	bh := osbtest.Behavior{Async: true, Polls: asyncPolls, RetryAfter: asyncRetryAfter, DashboardURL: osbtest.DefaultDashboardURL}
	w.broker.SetBehavior(osbtest.PlanDBSmall, bh, osbtest.OpProvision)
	logf("async: generating %d asynchronous instances", n)
	repo := newRepo(t, manifests(w.srv.URL, n, false, "small"))
	reps := s.repsOr(3)
	var osb stats
	var parts []breakdown
	var tPut, tPoll stats
	var calls int
	for i := range reps {
		bare := copyRepo(t, repo.Bare)
		store := newStore(t)
		w.broker.Reset()
		runtime.GC()
		r, closeRepo, err := openReconciler(bare, store, reconciler.Options{Concurrency: 8, InlinePoll: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ts := &timedSource{Source: r.Source}
		r.Source = ts
		ts.start = time.Now()
		res, err := r.Sync(context.Background())
		end := time.Now()
		closeRepo()
		if err != nil {
			t.Fatalf("async converge: %v", err)
		}
		if c := res.Exec.Counts; c.Failed != 0 || c.Created != n || c.InProgress != 0 {
			t.Fatalf("async converge: %+v", c)
		}
		polls := w.broker.Count(osbtest.EndpointLastOperation)
		if polls != n*(asyncPolls+1) {
			t.Fatalf("%d polls, want %d", polls, n*(asyncPolls+1))
		}
		calls = w.broker.Count(osbtest.EndpointAny)
		puts := w.broker.CallsTo(osbtest.EndpointProvision)
		b := ts.breakdown(end)
		osb.add(b.total)
		parts = append(parts, b)

		w.broker.Reset()
		runtime.GC()
		p, q, err := plainAsync(w.srv.URL, puts, 8)
		if err != nil {
			t.Fatal(err)
		}
		tPut.add(p.Seconds())
		tPoll.add(q.Seconds())
		logf("async %d/%d: osbgit %s (%s); plain loop: %d provisions %s, one poll each %s",
			i+1, reps, dur(b.total), b, n, dur(p.Seconds()), dur(q.Seconds()))
	}
	put, poll := tPut.best(), tPoll.best()
	chain := put + (asyncFirstPoll + asyncPolls*asyncRetryAfter).Seconds()
	throughput := put + (asyncPolls+1)*poll
	minimum := max(chain, throughput)
	best := parts[0]
	for _, b := range parts {
		if b.total < best.total {
			best = b
		}
	}
	return figure{
		ratio: osb.best() / minimum,
		limit: asyncRatioLimit,
		raw: fmt.Sprintf("osbgit %s vs minimum %s (best of %d; median %s; spread %.0f%%); "+
			"bounds: Retry-After chain %s (provisions at 8 in flight %s + first poll %s + %d x Retry-After %s), "+
			"call throughput %s (%d calls: provisions %s + %d poll rounds of %s); osbgit best run: %s; %d instances",
			dur(osb.best()), dur(minimum), reps, dur(osb.median()), 100*osb.spread(),
			dur(chain), dur(put), asyncFirstPoll, asyncPolls, asyncRetryAfter,
			dur(throughput), calls, dur(put), asyncPolls+1, dur(poll), best, n),
	}
}

// plainAsync measures the calls of the async figure with a plain net/http
// loop and workers concurrent workers: every provision osbgit sent (same
// path, query, headers and body), then one last_operation poll of each
// (answered "in progress"). It returns the two durations.
func plainAsync(baseURL string, puts []osbtest.Call, workers int) (put, poll time.Duration, err error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 100, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}}
	defer client.CloseIdleConnections()
	type op struct {
		instance, operation, service, plan string
	}
	ops := make([]op, len(puts))
	var failed atomic.Value
	inParallel := func(f func(i int)) time.Duration {
		start := time.Now()
		parallel.ForN(workers, len(puts), f)
		return time.Since(start)
	}
	do := func(method, u string, h http.Header, body []byte, want int) []byte {
		var rd io.Reader
		if body != nil {
			rd = strings.NewReader(string(body))
		}
		req, err := http.NewRequest(method, u, rd)
		if err != nil {
			failed.Store(err)
			return nil
		}
		for k, v := range h {
			req.Header[k] = v
		}
		req.SetBasicAuth(brokerUser, brokerPass)
		req.Header.Set(osbtest.HeaderRequestIdentity, uuid.NewString())
		resp, err := client.Do(req)
		if err != nil {
			failed.Store(err)
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			failed.Store(fmt.Errorf("%s %s: %d, want %d", method, u, resp.StatusCode, want))
		}
		return b
	}
	put = inParallel(func(i int) {
		c := puts[i]
		h := c.Headers.Clone()
		for _, k := range []string{"Authorization", osbtest.HeaderRequestIdentity, "Content-Length", "Accept-Encoding"} {
			h.Del(k)
		}
		b := do(c.Method, baseURL+c.Path+"?"+c.Query.Encode(), h, c.Body, http.StatusAccepted)
		var ans struct {
			Operation string `json:"operation"`
		}
		var req struct {
			ServiceID string `json:"service_id"`
			PlanID    string `json:"plan_id"`
		}
		_ = json.Unmarshal(b, &ans)
		_ = json.Unmarshal(c.Body, &req)
		ops[i] = op{instance: c.InstanceID, operation: ans.Operation, service: req.ServiceID, plan: req.PlanID}
	})
	if err, ok := failed.Load().(error); ok {
		return put, 0, err
	}
	h := http.Header{osbtest.HeaderAPIVersion: {"2.17"}}
	poll = inParallel(func(i int) {
		o := ops[i]
		q := url.Values{"operation": {o.operation}, "service_id": {o.service}, "plan_id": {o.plan}}
		do(http.MethodGet, baseURL+"/v2/service_instances/"+o.instance+"/last_operation?"+q.Encode(), h, nil, http.StatusOK)
	})
	if err, ok := failed.Load().(error); ok {
		return put, poll, err
	}
	return put, poll, nil
}
