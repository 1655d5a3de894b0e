package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// Knobs of TestSyncSurvivesSIGKILL, from the environment.
const (
	// killPointsEnv sets how many passes are killed (default
	// defaultKillPoints; the full figure is 100).
	killPointsEnv     = "OSBGIT_KILL_POINTS"
	defaultKillPoints = 20
	// killSeedEnv seeds the kill delays (default 1), to replay a failure.
	killSeedEnv = "OSBGIT_KILL_SEED"
)

// killState is the desired state of one step of the kill test's cycle:
// instance name -> "plan/size", binding name -> instance name.
type killState struct {
	name      string
	instances map[string]string
	bindings  map[string]string
}

// killCycle is the sequence of desired states the kill test cycles through,
// so killed passes create, update, delete, and start and poll async
// operations.
var killCycle = []killState{
	{name: "creates", instances: map[string]string{"a": "small/1", "b": "small/2", "c": "large/1"},
		bindings: map[string]string{"a-bind": "a", "b-bind": "b"}},
	{name: "updates", instances: map[string]string{"a": "large/1", "b": "small/3", "c": "large/5"},
		bindings: map[string]string{"a-bind": "a", "b-bind": "b"}},
	{name: "deletes", instances: map[string]string{"a": "large/1"},
		bindings: map[string]string{"a-bind": "a"}},
	{name: "async", instances: map[string]string{"a": "large/1", "d": "async/1", "e": "async/2"},
		bindings: map[string]string{"a-bind": "a", "d-bind": "d"}},
	{name: "empty"},
}

const killBrokerPass = "kill-broker-pass-77c1"

// killCallDelay is how long each broker call waits before and again after
// its effect, so passes spend most of their time in broker calls.
const killCallDelay = 15 * time.Millisecond

// killFixture is a bare repo, an osbtest broker served from the test
// process (each call slowed down after its effect, so a kill lands in the
// middle of calls), a dir secret store and a cache dir shared by every
// osbgit process of the test.
type killFixture struct {
	t      *testing.T
	bin    string
	repo   *gittest.Repo
	broker *osbtest.Broker
	url    string
	store  string
	cache  string
	// firstMutating is when the broker got the first mutating request
	// since it was reset (UnixNano; 0: none yet).
	firstMutating atomic.Int64
}

// buildOsbgit builds the osbgit binary of this package into a temp dir.
func buildOsbgit(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "osbgit")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func newKillFixture(t *testing.T, bin string) *killFixture {
	t.Helper()
	k := &killFixture{t: t, bin: bin, store: filepath.Join(t.TempDir(), "secrets"), cache: t.TempDir()}
	b := osbtest.New(osbtest.Config{Username: "u", Password: killBrokerPass})
	// Each call waits before reaching the broker (a kill then means the
	// call never happened) and after its effect (a kill then means the
	// broker did the work but osbgit never heard).
	b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointAny, Delay: killCallDelay, AfterEffect: true})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			k.firstMutating.CompareAndSwap(0, time.Now().UnixNano())
		}
		select {
		case <-time.After(killCallDelay):
			b.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { b.ReleaseDelays(); srv.Close() })
	// Async operations answer "in progress" once, then succeed: they span
	// passes without making the test slow.
	b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Polls: 1})
	k.broker, k.url = b, srv.URL
	st, err := secretstore.NewDir(k.store)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), "osbgit-system", "broker-auth", secrets.Secret{Data: map[string][]byte{
		"username": []byte("u"), "password": []byte(killBrokerPass)}}); err != nil {
		t.Fatal(err)
	}
	k.repo = gittest.New(t, k.files(killState{name: "empty"}))
	return k
}

// files renders a desired state as the repo's files.
func (k *killFixture) files(s killState) map[string]string {
	out := map[string]string{
		"osbgit.yaml": "apiVersion: osbgit.dev/v1alpha1\nkind: Config\nclusterID: kill\nprune: true\n",
		"broker.yaml": fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata: {name: test}
spec:
  url: %s
  authInfo: {basic: {secretRef: {namespace: osbgit-system, name: broker-auth}}}
`, k.url),
	}
	for name, ps := range s.instances {
		plan, size, _ := strings.Cut(ps, "/")
		out["apps/"+name+".yaml"] = fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata: {name: %s, namespace: apps}
spec:
  clusterServiceClassExternalName: osbtest-db
  clusterServicePlanExternalName: %s
  parameters: {size: %s}
`, name, plan, size)
	}
	for name, inst := range s.bindings {
		out["apps/"+name+".yaml"] = fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata: {name: %s, namespace: apps}
spec:
  instanceRef: {name: %s}
  secretTransforms:
  - renameKey: {from: uri, to: DATABASE_URL}
`, name, inst)
	}
	return out
}

// pushState commits the change from one state to the next.
func (k *killFixture) pushState(from, to killState) {
	k.t.Helper()
	files := k.files(to)
	var remove []string
	for p := range k.files(from) {
		if _, ok := files[p]; !ok {
			remove = append(remove, p)
		}
	}
	sort.Strings(remove)
	k.repo.Push("to "+to.name, files, remove)
}

// syncArgs are the arguments of every sync of the test, killed or not.
func (k *killFixture) syncArgs() []string {
	return []string{"sync", "--repo", k.repo.Bare, "--secret-store", "dir:" + k.store, "--cache-dir", k.cache,
		"--inline-poll", "0", "--log-level", "debug"}
}

// killRun is how one subprocess pass ended.
type killRun struct {
	killed bool
	took   time.Duration
	// firstCall is when the first mutating broker call came, after the
	// start (zero: none).
	firstCall time.Duration
	commits   int // commits osbgit pushed during the run
	mutating  int // mutating broker calls during the run
	output    string
}

// runKilled starts `osbgit sync` and kills it with SIGKILL after delay (a
// zero delay never kills: the pass runs to its end).
func (k *killFixture) runKilled(delay time.Duration) killRun {
	k.t.Helper()
	commits, calls := k.repo.CommitCount(), len(k.broker.MutatingCalls())
	var out bytes.Buffer
	cmd := exec.Command(k.bin, k.syncArgs()...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	start := time.Now()
	k.firstMutating.Store(0)
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var res killRun
	var timer <-chan time.Time
	if delay > 0 {
		timer = time.After(delay)
	}
	select {
	case <-done:
	case <-timer:
		res.killed = cmd.Process.Signal(syscall.SIGKILL) == nil
		<-done
		if cmd.ProcessState != nil && cmd.ProcessState.Exited() {
			res.killed = false // it ended just before the signal
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		k.t.Fatalf("osbgit sync hung:\n%s", out.String())
	}
	res.took = time.Since(start)
	if n := k.firstMutating.Load(); n != 0 {
		res.firstCall = time.Unix(0, n).Sub(start)
	}
	res.commits = k.repo.CommitCount() - commits
	res.mutating = len(k.broker.MutatingCalls()) - calls
	res.output = out.String()
	return res
}

// syncInProcess runs one full pass in this process (as the next CronJob
// run would) and returns its exit code and output.
func (k *killFixture) syncInProcess() (int, string) {
	var out, errb bytes.Buffer
	code := run(k.syncArgs(), &out, &errb)
	return code, out.String() + errb.String()
}

// record reads the status record of an apps/ resource at main (nil if none).
func (k *killFixture) record(kind manifest.Kind, name string) *manifest.StatusRecord {
	ref := manifest.Ref{Kind: kind, Namespace: "apps", Name: name}
	p, err := manifest.StatusPath(ref)
	if err != nil {
		k.t.Fatal(err)
	}
	data := k.repo.Show(p)
	if data == "" {
		return nil
	}
	rec, err := manifest.UnmarshalStatusRecord(p, []byte(data))
	if err != nil {
		k.t.Fatalf("record %s: %v", ref, err)
	}
	return rec
}

// divergence says how the broker, the records and the secret store differ
// from s ("" when they hold exactly s): one broker instance per instance
// manifest and one binding per binding manifest (no duplicate, no orphan),
// on the desired plan and size, ready; records Ready naming them; a Secret
// per binding and none for anything else; no temp file left in the store.
func (k *killFixture) divergence(s killState) string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	ins, bns := k.broker.Instances(), k.broker.Bindings()
	if len(ins) != len(s.instances) {
		bad("broker holds %d instances, want %d", len(ins), len(s.instances))
	}
	if len(bns) != len(s.bindings) {
		bad("broker holds %d bindings, want %d", len(bns), len(s.bindings))
	}
	for id, in := range ins {
		if in.State != osbtest.StateReady {
			bad("broker instance %s is %s", id, in.State)
		}
	}
	if len(p) > 0 {
		return strings.Join(p, "\n") // records are read only once the broker matches
	}
	ids := map[string]string{}
	plans := map[string]string{"small": osbtest.PlanDBSmall, "large": osbtest.PlanDBLarge, "async": osbtest.PlanDBAsync}
	for name, ps := range s.instances {
		plan, size, _ := strings.Cut(ps, "/")
		rec := k.record(manifest.KindServiceInstance, name)
		if rec == nil || rec.Phase != manifest.PhaseReady || rec.AsyncOpInProgress {
			bad("instance %s: record not Ready (%v)", name, phaseOf(rec))
			continue
		}
		ids[name] = rec.ExternalID
		in, ok := ins[rec.ExternalID]
		switch {
		case !ok:
			bad("instance %s: record names %s, unknown to the broker", name, rec.ExternalID)
		case in.State != osbtest.StateReady || in.PlanID != plans[plan] || fmt.Sprint(in.Parameters["size"]) != size:
			bad("instance %s: broker has %s %s size %v, want %s size %s", name, in.State, in.PlanID, in.Parameters["size"], plans[plan], size)
		}
	}
	for name, inst := range s.bindings {
		rec := k.record(manifest.KindServiceBinding, name)
		if rec == nil || rec.Phase != manifest.PhaseReady || rec.AsyncOpInProgress {
			bad("binding %s: record not Ready (%v)", name, phaseOf(rec))
			continue
		}
		bn, ok := bns[rec.ExternalID]
		switch {
		case !ok:
			bad("binding %s: record names %s, unknown to the broker", name, rec.ExternalID)
		case bn.State != osbtest.StateReady || bn.InstanceID != ids[inst]:
			bad("binding %s: broker has %s on %s, want ready on %s", name, bn.State, bn.InstanceID, ids[inst])
		}
		if _, err := os.Stat(filepath.Join(k.store, "apps", name, "DATABASE_URL")); err != nil {
			bad("binding %s: credentials Secret: %v", name, err)
		}
	}
	for _, f := range k.repo.Files(".osbgit/status") {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if _, ok := s.instances[name]; !ok {
			if _, ok := s.bindings[name]; !ok {
				bad("record %s left for a resource that is not desired", f)
			}
		}
	}
	if ents, err := os.ReadDir(filepath.Join(k.store, "apps")); err == nil {
		for _, e := range ents {
			if _, ok := s.bindings[e.Name()]; !ok {
				bad("store entry apps/%s left", e.Name())
			}
		}
	}
	filepath.WalkDir(k.store, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".osbgit-") && d.Name() != ".osbgit-meta.json" {
			rel, _ := filepath.Rel(k.store, path)
			bad("temp file left in the secret store: %s", rel)
		}
		return nil
	})
	sort.Strings(p)
	return strings.Join(p, "\n")
}

func phaseOf(rec *manifest.StatusRecord) string {
	if rec == nil {
		return "no record"
	}
	return fmt.Sprintf("phase %s, async %v", rec.Phase, rec.AsyncOpInProgress)
}

// converge runs in-process passes until the state is s (at most 20), then
// one more that must be a no-op for the broker.
func (k *killFixture) converge(s killState, after string) {
	k.t.Helper()
	var why, out string
	var log []string
	for pass := 1; pass <= 20; pass++ {
		var code int
		code, out = k.syncInProcess()
		log = append(log, fmt.Sprintf("--- pass %d (exit %d):\n%s", pass, code, out))
		if code == exitError {
			k.t.Fatalf("%s: pass %d after the kill failed:\n%s", after, pass, out)
		}
		if why = k.divergence(s); why == "" {
			calls := len(k.broker.MutatingCalls())
			if code, out := k.syncInProcess(); code != exitOK || len(k.broker.MutatingCalls()) != calls {
				k.t.Fatalf("%s: converged, but the next pass exited %d with %d mutating calls:\n%s",
					after, code, len(k.broker.MutatingCalls())-calls, out)
			}
			return
		}
	}
	k.t.Fatalf("%s: not converged after 20 passes:\n%s\npasses:\n%s", after, why, strings.Join(log, "\n"))
}

// killPhase names where in a pass a kill landed, from what it left behind.
func killPhase(r killRun) string {
	switch {
	case !r.killed:
		return "not killed (pass ended first)"
	case r.commits == 0 && r.mutating == 0:
		return "before any push or call"
	case r.commits == 1 && r.mutating == 0:
		return "after the write-ahead push, before any call"
	case r.commits <= 1:
		return "during broker calls"
	}
	return "after the status push"
}

// TestSyncSurvivesSIGKILL kills `osbgit sync` (the built binary, a real
// process) with SIGKILL at random points of passes that create, update,
// delete, and start async operations; after each kill, normal passes must
// converge to exactly the manifests: one broker instance per instance
// manifest and one binding per binding manifest (no duplicate), nothing
// else at the broker (no orphan), records naming what the broker holds,
// and no temp file left in the secret store.
//
// 20 kill points by default; OSBGIT_KILL_POINTS=100 runs the full figure
// (about 1.5 s per point here), OSBGIT_KILL_SEED replays a sequence.
func TestSyncSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary and runs many passes")
	}
	points := defaultKillPoints
	if v := os.Getenv(killPointsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", killPointsEnv, v)
		}
		points = n
	}
	seed := uint64(1)
	if v := os.Getenv(killSeedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", killSeedEnv, v, err)
		}
		seed = n
	}
	rng := rand.New(rand.NewPCG(seed, 0x05b617))
	began := time.Now()
	k := newKillFixture(t, buildOsbgit(t))
	built := time.Since(began)

	// Measure an uninterrupted pass (the first creates) to spread the kill
	// delays over a pass's duration.
	prev := killState{name: "empty"}
	k.pushState(prev, killCycle[0])
	first := k.runKilled(0)
	if strings.Contains(first.output, "level=error") {
		t.Fatalf("the measuring pass failed:\n%s", first.output)
	}
	k.converge(killCycle[0], "measuring pass")
	prev = killCycle[0]
	t.Logf("seed %d; an uninterrupted creating pass takes %v, its first mutating call comes after %v", seed, first.took, first.firstCall)
	// span[i] is the duration of the pass into killCycle[i] (the creating
	// pass's until a pass into that state ran to its end); calls[i] is
	// when its first mutating call came. Half the kills fall anywhere in
	// the pass, half once it changes something at the broker (process start, fetch and
	// planning take a good part of a pass).
	span := make([]time.Duration, len(killCycle))
	calls := make([]time.Duration, len(killCycle))
	for i := range span {
		span[i], calls[i] = first.took, min(first.firstCall, first.took/2)
	}

	phases := map[string]int{}
	var inKilled, inConverge time.Duration
	for i := 0; i < points; i++ {
		ni := (i + 1) % len(killCycle)
		next := killCycle[ni]
		k.pushState(prev, next)
		from := time.Duration(0)
		if i%2 == 1 {
			from = calls[ni]
		}
		delay := from + time.Duration(rng.Int64N(int64(span[ni]-from)+1)) + time.Millisecond
		r := k.runKilled(delay)
		inKilled += r.took
		phases[killPhase(r)]++
		if !r.killed {
			span[ni] = r.took
			if r.firstCall > 0 && r.firstCall < r.took {
				calls[ni] = r.firstCall
			}
		}
		start := time.Now()
		k.converge(next, fmt.Sprintf("kill %d (%s -> %s, after %v: %s)", i+1, prev.name, next.name, delay, killPhase(r)))
		inConverge += time.Since(start)
		prev = next
	}
	var summary []string
	for ph, n := range phases {
		summary = append(summary, fmt.Sprintf("%s: %d", ph, n))
	}
	sort.Strings(summary)
	t.Logf("%d kill points (build %v, killed passes %v, converging %v):\n  %s", points,
		built.Round(time.Millisecond), inKilled.Round(time.Millisecond), inConverge.Round(time.Millisecond), strings.Join(summary, "\n  "))
	if phases["not killed (pass ended first)"] > points/2 {
		t.Errorf("most passes ended before the kill: the delays do not cover the passes")
	}
}
