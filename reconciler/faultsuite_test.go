package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
)

// desiredState is the manifests' view of a repo in the fault suite: instance
// name -> plan and size parameter, binding name -> instance name. It renders
// to manifest files and is what the broker must hold once converged.
type desiredState struct {
	instances map[string]desiredInstance
	bindings  map[string]string
}

// desiredInstance is one ServiceInstance of a desiredState.
type desiredInstance struct {
	plan string // external plan name: small, large, async
	size int
}

// planIDs maps the osbtest database plans' external names to their IDs.
var planIDs = map[string]string{"small": osbtest.PlanDBSmall, "large": osbtest.PlanDBLarge, "async": osbtest.PlanDBAsync}

// files renders d (plus osbgit.yaml and the broker) as repo files.
func (d desiredState) files(url string) map[string]string {
	out := map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url)}
	for name, in := range d.instances {
		out["apps/"+name+".yaml"] = instanceYAML(name, in.plan, fmt.Sprintf("    size: %d\n", in.size))
	}
	for name, inst := range d.bindings {
		out["apps/"+name+".yaml"] = bindingYAML(name, inst)
	}
	return out
}

// with returns a copy of d changed by f.
func (d desiredState) with(f func(*desiredState)) desiredState {
	c := desiredState{instances: map[string]desiredInstance{}, bindings: map[string]string{}}
	for k, v := range d.instances {
		c.instances[k] = v
	}
	for k, v := range d.bindings {
		c.bindings[k] = v
	}
	f(&c)
	return c
}

// pushState commits the difference between from and to to the fixture's
// repo, as a person would.
func (f *fixture) pushState(msg string, from, to desiredState) {
	f.t.Helper()
	files := to.files(f.url)
	var remove []string
	for p := range from.files(f.url) {
		if _, ok := files[p]; !ok {
			remove = append(remove, p)
		}
	}
	sort.Strings(remove)
	f.repo.Push(msg, files, remove)
}

// convergedTo returns "" when the broker, the records and the secret store
// hold exactly d: one broker instance per instance manifest on the desired
// plan and size, one binding per binding manifest on its instance, all
// ready, records Ready and pointing at them, a Secret per binding, no record
// and no broker resource for anything else. Otherwise it says what differs.
func (f *fixture) convergedTo(t *testing.T, d desiredState) string {
	t.Helper()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	ins, bns := f.broker.Instances(), f.broker.Bindings()
	if len(ins) != len(d.instances) {
		bad("broker holds %d instances, want %d", len(ins), len(d.instances))
	}
	if len(bns) != len(d.bindings) {
		bad("broker holds %d bindings, want %d", len(bns), len(d.bindings))
	}
	for id, in := range ins {
		if in.State != osbtest.StateReady {
			bad("broker instance %s is %s", id, in.State)
		}
	}
	for id, bn := range bns {
		if bn.State != osbtest.StateReady {
			bad("broker binding %s is %s", id, bn.State)
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return strings.Join(problems, "\n") // records are read once the broker matches
	}
	instIDs := map[string]string{}
	for name, want := range d.instances {
		rec := recordOf(t, f, manifest.KindServiceInstance, name)
		if rec == nil || rec.Phase != manifest.PhaseReady || rec.AsyncOpInProgress {
			bad("instance %s record not Ready: %+v", name, rec)
			continue
		}
		instIDs[name] = rec.ExternalID
		bi, ok := ins[rec.ExternalID]
		switch {
		case !ok:
			bad("instance %s: record names %s, unknown to the broker", name, rec.ExternalID)
		case bi.State != osbtest.StateReady:
			bad("instance %s: broker state %s", name, bi.State)
		case bi.PlanID != planIDs[want.plan] || rec.PlanExternalID != planIDs[want.plan]:
			bad("instance %s: broker plan %s, record plan %s, want %s", name, bi.PlanID, rec.PlanExternalID, planIDs[want.plan])
		case fmt.Sprint(bi.Parameters["size"]) != fmt.Sprint(want.size):
			bad("instance %s: broker size %v, want %d", name, bi.Parameters["size"], want.size)
		}
	}
	for name, inst := range d.bindings {
		rec := recordOf(t, f, manifest.KindServiceBinding, name)
		if rec == nil || rec.Phase != manifest.PhaseReady || rec.AsyncOpInProgress {
			bad("binding %s record not Ready: %+v", name, rec)
			continue
		}
		bb, ok := bns[rec.ExternalID]
		switch {
		case !ok:
			bad("binding %s: record names %s, unknown to the broker", name, rec.ExternalID)
		case bb.State != osbtest.StateReady:
			bad("binding %s: broker state %s", name, bb.State)
		case bb.InstanceID != instIDs[inst]:
			bad("binding %s: on broker instance %s, want %s", name, bb.InstanceID, instIDs[inst])
		}
		sec, err := f.store.Get(context.Background(), "apps", name)
		if err != nil || len(sec["DATABASE_URL"]) == 0 {
			bad("binding %s: credentials Secret missing (%v)", name, err)
		}
	}
	for _, file := range f.repo.Files(".osbgit/status") {
		name := strings.TrimSuffix(file[strings.LastIndex(file, "/")+1:], ".yaml")
		_, isInst := d.instances[name]
		_, isBind := d.bindings[name]
		if !isInst && !isBind {
			bad("record %s left for a resource that is not desired", file)
		}
	}
	sort.Strings(problems)
	return strings.Join(problems, "\n")
}

// convergeAfterFaults runs passes (a fresh reconciler each, as a new process
// would) until the state is d, at most maxPasses passes, then one more pass
// that must make no mutating call. It fails the test otherwise, and returns
// how many passes converging took.
func (f *fixture) convergeAfterFaults(t *testing.T, d desiredState, maxPasses int) int {
	t.Helper()
	var why string
	for pass := 1; pass <= maxPasses; pass++ {
		f.sync(f.reconciler(Options{}))
		if why = f.convergedTo(t, d); why == "" {
			before := len(f.broker.MutatingCalls())
			f.sync(f.reconciler(Options{}))
			if n := len(f.broker.MutatingCalls()) - before; n != 0 {
				t.Fatalf("converged after %d passes, but the next pass made %d mutating calls", pass, n)
			}
			if why = f.convergedTo(t, d); why != "" {
				t.Fatalf("converged after %d passes, then diverged:\n%s", pass, why)
			}
			return pass
		}
	}
	t.Fatalf("not converged after %d passes once faults cleared:\n%s", maxPasses, why)
	return 0
}

// faultKind is one column of the fault matrix: how a broker call goes
// wrong. build returns the fault for an endpoint.
type faultKind struct {
	name  string
	build func(e osbtest.Endpoint) osbtest.Fault
}

// faultKinds are the six columns: the call times out (the broker did the
// work, the answer never comes in time), 500 after the work, 503 with
// Retry-After before any work, a malformed JSON body after the work, the
// connection dropped after the work, and a 204 (an unexpected 2xx) after
// the work. Each fires on every matching request while it is installed.
var faultKinds = []faultKind{
	{"timeout", func(e osbtest.Endpoint) osbtest.Fault {
		return osbtest.Fault{Endpoint: e, Delay: time.Minute, AfterEffect: true}
	}},
	{"500", func(e osbtest.Endpoint) osbtest.Fault {
		return osbtest.Fault{Endpoint: e, Status: http.StatusInternalServerError, AfterEffect: true}
	}},
	{"503 retry-after", func(e osbtest.Endpoint) osbtest.Fault {
		return osbtest.Fault{Endpoint: e, Status: http.StatusServiceUnavailable, RetryAfter: time.Second}
	}},
	{"malformed json", func(e osbtest.Endpoint) osbtest.Fault {
		return osbtest.Fault{Endpoint: e, Malformed: true, AfterEffect: true}
	}},
	{"connection reset", func(e osbtest.Endpoint) osbtest.Fault {
		return osbtest.Fault{Endpoint: e, Drop: true, AfterEffect: true}
	}},
	{"204", func(e osbtest.Endpoint) osbtest.Fault {
		return osbtest.Fault{Endpoint: e, Status: http.StatusNoContent, AfterEffect: true}
	}},
}

// faultRow is one row of the fault matrix: a broker endpoint reached in a
// given situation.
type faultRow struct {
	name     string
	endpoint osbtest.Endpoint
	// start is converged (without faults) before the fault is installed;
	// nil starts from an empty broker.
	start *desiredState
	// want is pushed (if start is set) and is the state to converge to.
	want desiredState
}

// faultRows are the matrix's rows: every endpoint a pass calls, reached by
// a create, an update or a removal, synchronous and asynchronous.
func faultRows() []faultRow {
	syncState := desiredState{
		instances: map[string]desiredInstance{"db": {"small", 1}},
		bindings:  map[string]string{"db-bind": "db"},
	}
	async := desiredState{
		instances: map[string]desiredInstance{"db": {"async", 1}},
		bindings:  map[string]string{"db-bind": "db"},
	}
	withTmp := func(d desiredState, plan string) *desiredState {
		s := d.with(func(s *desiredState) {
			s.instances["tmp"] = desiredInstance{plan, 1}
			s.bindings["tmp-bind"] = "tmp"
		})
		return &s
	}
	resized := func(d desiredState, plan string) desiredState {
		return d.with(func(s *desiredState) { s.instances["db"] = desiredInstance{plan, 2} })
	}
	pt := func(d desiredState) *desiredState { return &d }
	return []faultRow{
		{name: "catalog", endpoint: osbtest.EndpointCatalog, want: syncState},
		{name: "provision", endpoint: osbtest.EndpointProvision, want: syncState},
		{name: "bind", endpoint: osbtest.EndpointBind, want: syncState},
		{name: "update", endpoint: osbtest.EndpointUpdate, start: pt(syncState), want: resized(syncState, "large")},
		{name: "deprovision", endpoint: osbtest.EndpointDeprovision, start: withTmp(syncState, "small"), want: syncState},
		{name: "unbind", endpoint: osbtest.EndpointUnbind, start: withTmp(syncState, "small"), want: syncState},
		{name: "last_operation provision", endpoint: osbtest.EndpointLastOperation, want: async},
		{name: "last_operation update", endpoint: osbtest.EndpointLastOperation, start: pt(async), want: resized(async, "async")},
		{name: "last_operation deprovision", endpoint: osbtest.EndpointLastOperation, start: withTmp(async, "async"), want: async},
		{name: "binding last_operation bind", endpoint: osbtest.EndpointBindingLastOperation, want: async},
		{name: "binding last_operation unbind", endpoint: osbtest.EndpointBindingLastOperation, start: withTmp(async, "async"), want: async},
		{name: "get binding", endpoint: osbtest.EndpointGetBinding, want: async},
	}
}

// Fault budget of TestFaultMatrix: passes run with the fault installed
// until it fired, then extraFaultyPasses more (at most maxFaultyPasses in
// all); a broker call times out after faultTimeout.
const (
	maxFaultyPasses   = 8
	extraFaultyPasses = 1
	faultTimeout      = time.Second
)

// TestFaultMatrix completes the pass-level fault suite: every broker
// endpoint a pass calls × {timeout, 500, 503 with Retry-After, malformed
// JSON, connection reset, unexpected 204}. The fault stays installed until it
// fired and for one more pass, is cleared, and then passes run until the broker
// holds exactly the desired resources (ready, on the desired plan), no
// orphan is left, every record is Ready, and a further pass is a no-op.
func TestFaultMatrix(t *testing.T) {
	skipWhenShort(t)
	t.Parallel()
	for _, row := range faultRows() {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			// The row's columns start, one after another, from one fixture
			// restored at the same paths (records are sealed for their
			// repository's path): the row's start converged (if set) with
			// the change pushed, then as many passes as do not yet reach
			// the endpoint (the same for every column: a fault changes
			// nothing before it fires), so a column's first pass reaches it.
			files := row.want.files
			if row.start != nil {
				files = row.start.files
			}
			f := newFixture(t, files)
			if row.start != nil {
				f.convergeAfterFaults(t, *row.start, 8)
				f.pushState("change", *row.start, row.want)
			}
			start := saveFixture(t, f)
			for pass := 1; pass < maxFaultyPasses; pass++ {
				before := f.broker.Count(row.endpoint)
				f.sync(f.reconciler(Options{}))
				if f.broker.Count(row.endpoint) > before {
					break
				}
				start = saveFixture(t, f)
			}
			for _, fk := range faultKinds {
				t.Run(fk.name, func(t *testing.T) {
					f := start.restore(t)
					f.broker.ResetCalls()
					fault := f.broker.AddFault(fk.build(row.endpoint))
					// Faulty passes: until the fault fired (an endpoint may
					// first be reached by a later pass, e.g. a poll), then
					// extraFaultyPasses more, so a retry meets it again.
					passes, extra := 0, 0
					for ; passes < maxFaultyPasses && extra <= extraFaultyPasses; passes++ {
						r := f.reconciler(Options{})
						r.Clients.Timeout = faultTimeout
						if _, err := r.Sync(context.Background()); err != nil {
							t.Fatalf("faulty pass %d: %v", passes+1, err)
						}
						if f.broker.FaultHits(fault) > 0 {
							extra++
						}
					}
					hits := f.broker.FaultHits(fault)
					f.broker.ClearFaults()
					f.broker.ReleaseDelays()
					if hits == 0 {
						t.Fatalf("the fault never fired: no %s call in %d passes", row.endpoint, passes)
					}
					f.convergeAfterFaults(t, row.want, 15)
				})
			}
		})
	}
}

// TestAsyncBindAppliesSecretSpec: credentials of an asynchronous bind are
// fetched by a later pass's poll; they must still go to the manifest's
// secretName with its secretTransforms applied, as for a synchronous bind.
func TestAsyncBindAppliesSecretSpec(t *testing.T) {
	t.Parallel()
	for _, planName := range []string{"small", "async"} {
		t.Run(planName, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(url string) map[string]string {
				return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
					"apps/db.yaml":      instanceYAML("db", planName, ""),
					"apps/db-bind.yaml": bindingYAML("db-bind", "db") + "  secretName: db-creds\n"}
			})
			for i := 0; i < 12; i++ {
				f.sync(f.reconciler(Options{}))
				if rec := recordOf(t, f, manifest.KindServiceBinding, "db-bind"); rec != nil && rec.Phase == manifest.PhaseReady {
					break
				}
			}
			rec := recordOf(t, f, manifest.KindServiceBinding, "db-bind")
			if rec == nil || rec.Phase != manifest.PhaseReady || rec.SecretRef == nil {
				t.Fatalf("binding not ready: %+v", rec)
			}
			if rec.SecretRef.Name != "db-creds" {
				t.Errorf("credentials written to Secret %s, want db-creds", rec.SecretRef.Name)
			}
			sec, err := f.store.Get(context.Background(), "apps", "db-creds")
			if err != nil {
				t.Fatalf("Secret db-creds: %v", err)
			}
			if len(sec["DATABASE_URL"]) == 0 || sec["uri"] != nil {
				t.Errorf("secretTransforms not applied: keys %v", keys(sec))
			}
			if _, err := f.store.Get(context.Background(), "apps", "db-bind"); err == nil {
				t.Errorf("credentials also written to the default Secret apps/db-bind")
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Git faults.

// gitHTTP serves the directory holding the fixture's bare repository over
// smart HTTP (git http-backend) behind basic auth. While down is set, every
// request's connection is closed without an answer (the remote is gone).
type gitHTTP struct {
	*httptest.Server
	down atomic.Bool
}

// Git credentials of gitHTTP; gitPass is planted: it must never show.
const (
	gitUser = "git-user"
	gitPass = "git-pass-Zq9s3cr3t"
)

// serveGit starts gitHTTP for bare (a repository directory): its URL for
// the repository is srv.URL + "/" + filepath.Base(bare).
func serveGit(t testing.TB, bare string) *gitHTTP {
	t.Helper()
	gittest.Git(t, bare, "config", "http.receivepack", "true")
	backend := &cgi.Handler{
		Path:   gittest.HTTPBackend(t),
		Env:    []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
		Stderr: io.Discard,
	}
	g := &gitHTTP{}
	g.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		u, p, ok := r.BasicAuth()
		if !ok || u != gitUser || p != gitPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Header.Set("Remote-User", u)
		backend.ServeHTTP(w, r)
	}))
	g.Config.ErrorLog = log.New(io.Discard, "", 0)
	g.Start()
	t.Cleanup(g.Close)
	return g
}

// repoURL is the repository's URL on g.
func (g *gitHTTP) repoURL(bare string) string { return g.URL + "/" + filepath.Base(bare) }

// reconcilerAt is f.reconciler reading the repository at url with the
// given credentials instead of the local bare path.
func (f *fixture) reconcilerAt(t *testing.T, url string, auth gitrepo.Auth) (*Reconciler, error) {
	t.Helper()
	repo, err := gitrepo.Open(context.Background(), gitrepo.Options{URL: url, Branch: "main", Auth: auth},
		gitrepo.WithBackoff(5*time.Millisecond, 20*time.Millisecond), gitrepo.WithTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { repo.Close() })
	r := f.reconciler(Options{})
	r.Source = repo
	return r, nil
}

// rejectPushes installs a pre-receive hook in bare that refuses osbgit's
// pushes numbered in reject (1-based, counted in a file next to the hook;
// pushes of commits by anyone else are let through and not counted).
func rejectPushes(t testing.TB, bare string, reject ...int) {
	t.Helper()
	var cases []string
	for _, n := range reject {
		cases = append(cases, fmt.Sprint(n))
	}
	script := fmt.Sprintf(`#!/bin/sh
read old new ref
[ "$(git log -1 --format=%%an "$new")" = osbgit ] || exit 0
n=$(cat "$GIT_DIR/push-count" 2>/dev/null || echo 0)
n=$((n+1))
echo $n > "$GIT_DIR/push-count"
case $n in
%s) echo "policy: push $n refused by the test hook" >&2; exit 1;;
esac
exit 0
`, strings.Join(cases, "|"))
	hook := filepath.Join(bare, "hooks", "pre-receive")
	if err := os.MkdirAll(filepath.Dir(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// pushCount is how many pushes the hook of rejectPushes has seen.
func pushCount(t testing.TB, bare string) int {
	b, err := os.ReadFile(filepath.Join(bare, "push-count"))
	if err != nil {
		return 0
	}
	n := 0
	fmt.Sscan(string(b), &n)
	return n
}

// humanWriter pushes a human commit into the fixture's repo when hit
// (from a Source or transport hook), and remembers every commit it pushed.
type humanWriter struct {
	mu      sync.Mutex
	f       *fixture
	n       int
	commits []string
}

// push commits a new file under notes/ as a person would.
func (h *humanWriter) push() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	c := h.f.repo.Push(fmt.Sprintf("human edit %d", h.n), map[string]string{fmt.Sprintf("notes/n%d.txt", h.n): "hello\n"}, nil)
	h.commits = append(h.commits, c)
}

// assertLanded fails unless every human commit is on main.
func (h *humanWriter) assertLanded(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.commits {
		cmd := exec.Command("git", "merge-base", "--is-ancestor", c, "main")
		cmd.Dir, cmd.Env = h.f.repo.Bare, gittest.Env()
		if err := cmd.Run(); err != nil {
			t.Errorf("human commit %s is not on main: lost", c[:12])
		}
	}
	for i := 1; i <= h.n; i++ {
		if h.f.repo.Show(fmt.Sprintf("notes/n%d.txt", i)) == "" {
			t.Errorf("human file notes/n%d.txt missing on main", i)
		}
	}
}

// racingSource pushes a human commit just before the write-ahead push
// (intentRaces times) and before the status push (statusRaces times), so
// each of those pushes finds the branch moved.
type racingSource struct {
	Source
	human                   *humanWriter
	intentRaces, statusRace int
}

func (s *racingSource) WriteIntent(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	if s.intentRaces > 0 {
		s.intentRaces--
		s.human.push()
	}
	return s.Source.WriteIntent(ctx, cs)
}

func (s *racingSource) WriteStatus(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	if s.statusRace > 0 {
		s.statusRace--
		s.human.push()
	}
	return s.Source.WriteStatus(ctx, cs)
}

// TestGitPushRejected: the push of the write-ahead record or of the status
// records is refused (a concurrent writer moved the branch, or a
// pre-receive hook said no). The pass either recovers (re-plan, re-apply)
// or fails with a clear error before or after its broker calls; nothing a
// person pushed is lost, and later passes converge with exactly one broker
// resource per manifest.
func TestGitPushRejected(t *testing.T) {
	skipWhenShort(t)
	t.Parallel()
	want := desiredState{
		instances: map[string]desiredInstance{"db": {"small", 1}, "cache": {"large", 2}},
		bindings:  map[string]string{"db-bind": "db"},
	}
	cases := []struct {
		name string
		// intentRaces/statusRaces: human pushes racing the pass's pushes.
		intentRaces, statusRaces int
		// hookRejects: pushes (1-based) the pre-receive hook refuses.
		hookRejects []int
		// wantErr: the faulty pass fails with an error containing it
		// ("" : it succeeds).
		wantErr string
		// wantReplans is the faulty pass's SyncResult.Replans.
		wantReplans int
		// faultyPasses is how many passes meet the fault (default 1).
		faultyPasses int
		// wantPushes is how many osbgit pushes the hook saw in them.
		wantPushes int
	}{
		{name: "write-ahead push races a human push", intentRaces: 1, wantReplans: 1},
		{name: "write-ahead push loses every race", intentRaces: 10, wantErr: "write-ahead records"},
		{name: "status push races a human push", statusRaces: 1},
		{name: "both pushes race", intentRaces: 1, statusRaces: 1, wantReplans: 1},
		{name: "hook refuses the write-ahead push", hookRejects: []int{1}, wantPushes: 1, wantErr: "write-ahead records"},
		{name: "hook refuses the status push", hookRejects: []int{2}, wantPushes: 2, wantErr: "push status records"},
		{name: "hook refuses three passes", hookRejects: []int{1, 2, 3}, wantPushes: 3, faultyPasses: 3, wantErr: "write-ahead records"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, want.files)
			human := &humanWriter{f: f}
			if len(tc.hookRejects) > 0 {
				rejectPushes(t, f.repo.Bare, tc.hookRejects...)
			}
			var (
				res *SyncResult
				err error
			)
			for i := 0; i < max(tc.faultyPasses, 1); i++ {
				r := f.reconciler(Options{})
				r.Source = &racingSource{Source: r.Source, human: human, intentRaces: tc.intentRaces, statusRace: tc.statusRaces}
				res, err = r.Sync(context.Background())
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("faulty pass: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("faulty pass succeeded, want an error about %q", tc.wantErr)
			case err != nil:
				msg := err.Error()
				if !strings.Contains(msg, tc.wantErr) || !strings.Contains(msg, f.repo.Bare) {
					t.Errorf("error %q should say %q and name the repository", msg, tc.wantErr)
				}
				if len(tc.hookRejects) > 0 && !strings.Contains(msg, "rejected") {
					t.Errorf("error %q should say the push was rejected", msg)
				}
			}
			if err == nil && res.Replans != tc.wantReplans {
				t.Errorf("replans %d, want %d", res.Replans, tc.wantReplans)
			}
			if strings.Contains(tc.wantErr, "write-ahead") && len(f.broker.MutatingCalls()) != 0 {
				t.Errorf("%d mutating broker calls after the write-ahead push failed", len(f.broker.MutatingCalls()))
			}
			if len(tc.hookRejects) > 0 && pushCount(t, f.repo.Bare) != tc.wantPushes {
				t.Errorf("the hook saw %d osbgit pushes", pushCount(t, f.repo.Bare))
			}
			// The hook stays; the pushes it does not list pass.
			human.push() // one more human commit after the fault
			f.convergeAfterFaults(t, want, 6)
			human.assertLanded(t)
			if n := f.broker.Count(osbtest.EndpointProvision); n > 2*len(want.instances) {
				t.Errorf("%d provision calls for %d instances", n, len(want.instances))
			}
		})
	}
}

// TestGitRemoteFaults: the remote is unreachable (a closed port, or it
// goes away mid-pass) or refuses the credentials. The error names the
// repository URL without the password and says what went wrong; nothing a
// person pushed is lost; once the remote is back (or the password fixed)
// passes converge with no duplicate broker resource.
func TestGitRemoteFaults(t *testing.T) {
	skipWhenShort(t)
	t.Parallel()
	want := desiredState{
		instances: map[string]desiredInstance{"db": {"small", 1}},
		bindings:  map[string]string{"db-bind": "db"},
	}
	good := gitrepo.Auth{Username: gitUser, Password: gitPass}
	cases := []struct {
		name string
		// run runs the faulty pass(es) and returns the error to check.
		run func(t *testing.T, f *fixture, g *gitHTTP) error
		// kind is the gitrepo sentinel the error must match.
		kind error
		// secret must not appear in the error.
		secret string
	}{
		{name: "closed port", kind: gitrepo.ErrUnreachable, secret: gitPass,
			run: func(t *testing.T, f *fixture, g *gitHTTP) error {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := l.Addr().String()
				l.Close()
				r, err := f.reconcilerAt(t, "http://"+gitUser+":"+gitPass+"@"+addr+"/repo.git", gitrepo.Auth{})
				if err != nil {
					return err
				}
				_, err = r.Sync(context.Background())
				return err
			}},
		{name: "down before the pass", kind: nil, secret: gitPass,
			run: func(t *testing.T, f *fixture, g *gitHTTP) error {
				r, err := f.reconcilerAt(t, g.repoURL(f.repo.Bare), good)
				if err != nil {
					return err
				}
				g.down.Store(true)
				defer g.down.Store(false)
				_, err = r.Sync(context.Background())
				return err
			}},
		{name: "down after the broker calls", kind: nil, secret: gitPass,
			run: func(t *testing.T, f *fixture, g *gitHTTP) error {
				r, err := f.reconcilerAt(t, g.repoURL(f.repo.Bare), good)
				if err != nil {
					return err
				}
				r.Source = &downBeforeStatus{Source: r.Source, g: g}
				defer g.down.Store(false)
				_, err = r.Sync(context.Background())
				if len(f.broker.Instances()) == 0 {
					t.Error("precondition: the pass reached the broker before the remote went down")
				}
				return err
			}},
		{name: "wrong password", kind: gitrepo.ErrAuthFailed, secret: "wrong-pass-Kx81",
			run: func(t *testing.T, f *fixture, g *gitHTTP) error {
				r, err := f.reconcilerAt(t, g.repoURL(f.repo.Bare), gitrepo.Auth{Username: gitUser, Password: "wrong-pass-Kx81"})
				if err != nil {
					return err
				}
				_, err = r.Sync(context.Background())
				return err
			}},
		{name: "wrong password in the URL", kind: gitrepo.ErrAuthFailed, secret: "wrong-pass-Kx81",
			run: func(t *testing.T, f *fixture, g *gitHTTP) error {
				u := strings.Replace(g.repoURL(f.repo.Bare), "http://", "http://"+gitUser+":wrong-pass-Kx81@", 1)
				r, err := f.reconcilerAt(t, u, gitrepo.Auth{})
				if err != nil {
					return err
				}
				_, err = r.Sync(context.Background())
				return err
			}},
		{name: "no credentials", kind: gitrepo.ErrAuthFailed, secret: gitPass,
			run: func(t *testing.T, f *fixture, g *gitHTTP) error {
				r, err := f.reconcilerAt(t, g.repoURL(f.repo.Bare), gitrepo.Auth{})
				if err != nil {
					return err
				}
				_, err = r.Sync(context.Background())
				return err
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, want.files)
			g := serveGit(t, f.repo.Bare)
			human := &humanWriter{f: f}
			human.push()
			err := tc.run(t, f, g)
			if err == nil {
				t.Fatal("the faulty pass reported no error")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("error does not match %v: %s", tc.kind, msg)
			}
			if strings.Contains(msg, tc.secret) || strings.Contains(msg, gitPass) {
				t.Fatalf("the error shows a password: %s", msg)
			}
			if !strings.Contains(msg, "127.0.0.1") || !strings.Contains(msg, "repo.git") {
				t.Errorf("the error does not name the repository URL: %s", msg)
			}
			human.push()
			// The remote is back (or the credentials fixed): converge over
			// HTTP, as the deployment would.
			for pass := 1; ; pass++ {
				r, err := f.reconcilerAt(t, g.repoURL(f.repo.Bare), good)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.Sync(context.Background()); err != nil {
					t.Fatalf("pass %d after the fault: %v", pass, err)
				}
				if f.convergedTo(t, want) == "" {
					break
				}
				if pass == 6 {
					t.Fatalf("not converged:\n%s", f.convergedTo(t, want))
				}
			}
			f.convergeAfterFaults(t, want, 2) // and stable from the local path too
			human.assertLanded(t)
			if n := f.broker.Count(osbtest.EndpointProvision); n > 2 {
				t.Errorf("%d provision calls for one instance", n)
			}
		})
	}
}

// downBeforeStatus takes the remote down just before the status push.
type downBeforeStatus struct {
	Source
	g *gitHTTP
}

func (s *downBeforeStatus) WriteStatus(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	s.g.down.Store(true)
	return s.Source.WriteStatus(ctx, cs)
}

// TestPassStateKeepsDependentsDue: with a pass state file (a CronJob's
// cache volume, or `run`), a step that waited for another one in flight —
// a bind waiting for an async provision, a deprovision waiting for an async
// unbind — is still due once that operation ends: the pass that sees it end
// must not leave a state that skips the next passes.
func TestPassStateKeepsDependentsDue(t *testing.T) {
	t.Parallel()
	withApp := desiredState{
		instances: map[string]desiredInstance{"db": {"async", 1}},
		bindings:  map[string]string{"db-bind": "db"},
	}
	empty := desiredState{}
	instOnly := withApp.with(func(d *desiredState) { d.bindings = map[string]string{} })
	f := newFixture(t, instOnly.files)
	state := filepath.Join(t.TempDir(), "state.json")
	// The binding arrives while the async provision is in flight.
	f.sync(f.reconciler(Options{StatePath: state}))
	f.pushState("bind", instOnly, withApp)
	converge := func(d desiredState) {
		t.Helper()
		for pass := 1; pass <= 15; pass++ {
			f.sync(f.reconciler(Options{StatePath: state}))
			if f.convergedTo(t, d) == "" {
				return
			}
		}
		t.Fatalf("not converged with a pass state file:\n%s", f.convergedTo(t, d))
	}
	converge(withApp)
	f.pushState("remove", withApp, empty)
	converge(empty)
}

// TestUpdateAppliedByADeadPass: a pass died after the broker applied an
// update (plan and parameters) but before its status push, so the record
// still shows the old plan; the broker refuses the next pass's
// previous_values. The pass must find the broker already holding what the
// manifest asks and record it, not fail the instance for good.
func TestUpdateAppliedByADeadPass(t *testing.T) {
	t.Parallel()
	before := desiredState{instances: map[string]desiredInstance{"db": {"small", 1}}, bindings: map[string]string{}}
	after := before.with(func(d *desiredState) { d.instances["db"] = desiredInstance{"large", 7} })
	f := newFixture(t, before.files)
	f.convergeAfterFaults(t, before, 4)
	rec := recordOf(t, f, manifest.KindServiceInstance, "db")
	in, _ := f.broker.Instance(rec.ExternalID)
	// What the dead pass did at the broker.
	in.PlanID, in.Parameters = osbtest.PlanDBLarge, map[string]any{"size": 7}
	f.broker.PutInstance(in)
	f.pushState("large", before, after)
	f.convergeAfterFaults(t, after, 3)
	if n := f.broker.Count(osbtest.EndpointDeprovision); n != 0 {
		t.Errorf("%d deprovision calls", n)
	}
}
