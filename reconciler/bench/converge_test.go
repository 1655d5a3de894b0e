package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler"
)

// convergeRatioLimit is the converge figure's limit.
const convergeRatioLimit = 1.3

// converge is figure 2: a cold converge of 1,000 instances and 1,000
// bindings (fresh repository copy, empty broker, empty secret store) at
// concurrency 8, against a plain net/http loop that replays exactly the
// calls osbgit made (method, path, query, headers, body) with 8 workers on
// keep-alive connections, each worker provisioning an instance and then
// binding it, against the same broker reset to empty.
//
// The floor is the broker calls alone; osbgit's time is the whole pass:
// loading and planning, the write-ahead commit of every new record, the
// calls, the credentials Secrets and the status commit. The breakdown is
// reported.
func converge(t *testing.T, s settings) figure {
	n := s.n(1000)
	w := newWorld(t)
	logf("converge: generating %d instances + %d bindings", n, n)
	repo := newRepo(t, manifests(w.srv.URL, n, true, "small"))
	reps := s.repsOr(5)
	var osb, floor stats
	var parts []breakdown
	var script *replayScript
	for i := -1; i < reps; i++ { // i == -1: warm-up, discarded
		bare := copyRepo(t, repo.Bare)
		store := newStore(t)
		w.broker.Reset()
		runtime.GC()
		r, closeRepo, err := openReconciler(bare, store, reconciler.Options{Concurrency: 8})
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
			t.Fatalf("converge: %v", err)
		}
		if c := res.Exec.Counts; c.Failed != 0 || c.Created != 2*n || res.Commit == "" {
			t.Fatalf("converge: %+v, commit %q", c, res.Commit)
		}
		calls := w.broker.Calls()
		if script == nil {
			script = newScript(t, calls)
		}
		b := ts.breakdown(end)
		b.calls = len(calls)

		w.broker.Reset()
		runtime.GC()
		ft, err := script.replay(w.srv.URL, 8)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(w.broker.Instances()) + len(w.broker.Bindings()); got != 2*n {
			t.Fatalf("replay left %d resources at the broker, want %d", got, 2*n)
		}
		if i < 0 {
			continue
		}
		osb.add(b.total)
		floor.add(ft.Seconds())
		parts = append(parts, b)
		logf("converge %d/%d: osbgit %s (%s), floor %s (%d calls)", i+1, reps, dur(b.total), b, dur(ft.Seconds()), script.calls)
	}
	best := parts[0]
	for _, b := range parts {
		if b.total < best.total {
			best = b
		}
	}
	return figure{
		ratio: osb.best() / floor.best(),
		limit: convergeRatioLimit,
		raw: fmt.Sprintf("osbgit %s vs net/http loop %s (best of %d; medians %s / %s = %.2f; spread %.0f%% / %.0f%%); "+
			"%d calls each; osbgit best run: %s; %d+%d resources",
			dur(osb.best()), dur(floor.best()), reps, dur(osb.median()), dur(floor.median()), osb.median()/floor.median(),
			100*osb.spread(), 100*floor.spread(), script.calls, best, n, n),
	}
}

// timedSource wraps a pass's Source to time its Git writes.
type timedSource struct {
	reconciler.Source
	start                  time.Time
	intentStart, intentEnd time.Time
	statusStart, statusEnd time.Time
}

// ManifestAuthor forwards to the repository, so the pass sends the same
// originating identity as without the wrapper.
func (s *timedSource) ManifestAuthor(rev string) (gitrepo.Person, error) {
	return s.Source.(interface {
		ManifestAuthor(string) (gitrepo.Person, error)
	}).ManifestAuthor(rev)
}

// WriteIntent times the write-ahead commit and push.
func (s *timedSource) WriteIntent(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	s.intentStart = time.Now()
	defer func() { s.intentEnd = time.Now() }()
	return s.Source.WriteIntent(ctx, cs)
}

// WriteStatus times the status commit and push.
func (s *timedSource) WriteStatus(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	s.statusStart = time.Now()
	defer func() { s.statusEnd = time.Now() }()
	return s.Source.WriteStatus(ctx, cs)
}

// breakdown splits a pass's wall time.
type breakdown struct {
	total float64
	// plan: fetch, load, records, catalog, plan; intent: write-ahead
	// commit; exec: broker calls and Secrets; status: status commit; rest:
	// after it.
	plan, intent, exec, status, rest float64
	calls                            int
}

func (s *timedSource) breakdown(end time.Time) breakdown {
	sec := func(a, b time.Time) float64 {
		if a.IsZero() || b.IsZero() {
			return 0
		}
		return b.Sub(a).Seconds()
	}
	b := breakdown{total: end.Sub(s.start).Seconds()}
	b.plan = sec(s.start, s.intentStart)
	b.intent = sec(s.intentStart, s.intentEnd)
	b.exec = sec(s.intentEnd, s.statusStart)
	b.status = sec(s.statusStart, s.statusEnd)
	b.rest = sec(s.statusEnd, end)
	return b
}

func (b breakdown) String() string {
	return fmt.Sprintf("load+plan %s, write-ahead commit %s, calls+secrets %s, status commit %s, rest %s",
		dur(b.plan), dur(b.intent), dur(b.exec), dur(b.status), dur(b.rest))
}

// replayCall is one recorded request.
type replayCall struct {
	method, path, query string
	header              http.Header
	body                []byte
	status              int
}

// replayScript is osbgit's calls grouped for replay: calls not about an
// instance first, one after another, then one chain per instance (its
// provision, then its bindings), chains spread over the workers.
type replayScript struct {
	before []replayCall
	chains [][]replayCall
	calls  int
}

func newScript(t *testing.T, calls []osbtest.Call) *replayScript {
	t.Helper()
	s := &replayScript{}
	index := map[string]int{}
	for _, c := range calls {
		if c.Status == 0 || c.Status >= 400 {
			t.Fatalf("osbgit's call %s %s was answered %d", c.Method, c.Path, c.Status)
		}
		h := c.Headers.Clone()
		h.Del("Authorization")
		h.Del(osbtest.HeaderRequestIdentity)
		h.Del("Content-Length")
		h.Del("Accept-Encoding")
		rc := replayCall{method: c.Method, path: c.Path, query: c.Query.Encode(), header: h, body: c.Body, status: c.Status}
		s.calls++
		if c.InstanceID == "" {
			s.before = append(s.before, rc)
			continue
		}
		i, ok := index[c.InstanceID]
		if !ok {
			i = len(s.chains)
			index[c.InstanceID] = i
			s.chains = append(s.chains, nil)
		}
		s.chains[i] = append(s.chains[i], rc)
	}
	return s
}

// replay makes the script's calls with workers concurrent workers over
// keep-alive connections, reading and discarding each answer, and returns
// the wall time. Every answer must have the status osbgit got.
func (s *replayScript) replay(baseURL string, workers int) (time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 100, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}}
	defer client.CloseIdleConnections()
	var failed atomic.Value
	do := func(c replayCall) {
		u := baseURL + c.path
		if c.query != "" {
			u += "?" + c.query
		}
		var body io.Reader
		if c.body != nil {
			body = bytes.NewReader(c.body)
		}
		req, err := http.NewRequest(c.method, u, body)
		if err != nil {
			failed.Store(err)
			return
		}
		for k, v := range c.header {
			req.Header[k] = v
		}
		req.SetBasicAuth(brokerUser, brokerPass)
		req.Header.Set(osbtest.HeaderRequestIdentity, uuid.NewString())
		resp, err := client.Do(req)
		if err != nil {
			failed.Store(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			failed.Store(fmt.Errorf("replay %s %s: %d, osbgit got %d", c.method, c.path, resp.StatusCode, c.status))
		}
	}
	start := time.Now()
	for _, c := range s.before {
		do(c)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(s.chains) {
					return
				}
				for _, c := range s.chains[i] {
					do(c)
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if err, ok := failed.Load().(error); ok {
		return d, err
	}
	return d, nil
}
