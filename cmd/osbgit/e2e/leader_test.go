//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
)

// leaseName is `osbgit run`'s default Lease name (--leader-election-id).
const leaseName = "osbgit"

// brokerHost is the broker's host in the manifests. It does not resolve:
// each osbgit process reaches the broker only through its own HTTP proxy
// (HTTP_PROXY), which tags every call with the process's name, so the
// broker call log says which replica made each call.
const brokerHost = "http://osbtest-broker.invalid"

// taggedCall is one broker call and the replica that made it.
type taggedCall struct {
	replica, method, path string
	at                    time.Time
}

// callLog collects taggedCalls.
type callLog struct {
	mu    sync.Mutex
	calls []taggedCall
}

func (l *callLog) add(c taggedCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

// of returns the calls replica made at or after since.
func (l *callLog) of(replica string, since time.Time) []taggedCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []taggedCall
	for _, c := range l.calls {
		if c.replica == replica && !c.at.Before(since) {
			out = append(out, c)
		}
	}
	return out
}

// proxyFor starts an HTTP forward proxy for replica that serves every
// request with broker and records it in log.
func proxyFor(t testing.TB, replica string, broker http.Handler, log *callLog) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.RequestURI, brokerHost+"/") {
			http.Error(w, "this proxy only reaches "+brokerHost, http.StatusBadGateway)
			return
		}
		log.add(taggedCall{replica: replica, method: r.Method, path: r.URL.Path, at: time.Now()})
		broker.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// leaseHolder returns the holder of the leader-election Lease ("" when it
// does not exist or is released).
func leaseHolder(t testing.TB) string {
	t.Helper()
	l, err := verifier.CoordinationV1().Leases(systemNS).Get(ctxBG(t), leaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("get Lease %s/%s: %v", systemNS, leaseName, err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// countLines counts the log lines of out that contain every one of subs.
func countLines(out string, subs ...string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// TestLeaderElection runs two `osbgit run --leader-elect` replicas as the
// example ServiceAccount against one repo and one broker: one holds the
// coordination.k8s.io Lease and is the only one to reconcile (the broker
// call log, tagged per replica, and the logs show it); SIGTERM to the leader
// makes it exit 0 and release the Lease, the other takes over and
// reconciles a manifest change pushed afterwards.
func TestLeaderElection(tt *testing.T) {
	t := recordFailures(tt)
	needEnv(t)
	code, out, errs := runOsbgit(t, subprocessEnv(t), "run", "--help")
	if code != 0 || !strings.Contains(out, "--leader-elect") || !strings.Contains(out, "--leader-election-namespace") {
		t.Skipf("osbgit run --leader-elect is not available in this build (run --help: exit %d): %s", code, short(out+errs))
	}
	kubeconfig, _ := setupServiceAccount(t)

	const pass = "leader-broker-pass-3a90"
	upsertSecret(t, systemNS, brokerAuth, map[string]string{"username": "osbgit", "password": pass})
	broker := osbtest.New(osbtest.Config{Username: "osbgit", Password: pass})
	t.Cleanup(broker.ReleaseDelays)
	calls := &callLog{}
	repo := gittest.New(t, map[string]string{
		"osbgit.yaml":  configYAML("e2e-leader"),
		"broker.yaml":  brokerYAML("test", brokerHost, systemNS, brokerAuth),
		"apps/db.yaml": instanceYAML("apps", "le-db") + "---\n" + bindingYAML("apps", "le-db-binding", "le-db", "le-db-creds", ""),
	})

	// Start from no Lease and none of the Secrets.
	deleteSecrets(t, "apps", "le-db-creds", "le-db2-creds")
	err := admin.CoordinationV1().Leases(systemNS).Delete(ctxBG(t), leaseName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}

	replicas := map[string]*daemonProc{}
	for _, name := range []string{"osbgit-e2e-a", "osbgit-e2e-b"} {
		env := subprocessEnv(t, "POD_NAME="+name, "HTTP_PROXY="+proxyFor(t, name, broker, calls), "NO_PROXY=")
		replicas[name] = startOsbgit(t, name, env, "run",
			"--repo", repo.Bare, "--secret-store", "kube", "--kubeconfig", kubeconfig, "--cache-dir", t.TempDir(),
			"--leader-elect", "--leader-election-namespace", systemNS,
			"--schedule", "@every 1s", "--metrics-addr=", "--log-format", "json", "--log-level", "debug")
	}

	// One of them takes the Lease and converges the repo.
	start := time.Now()
	var leader string
	waitFor(t, time.Minute, "a replica to hold the Lease", func() bool {
		leader = leaseHolder(t)
		return leader != ""
	})
	if replicas[leader] == nil {
		t.Fatalf("the Lease is held by %q, not by one of the replicas", leader)
	}
	standby := "osbgit-e2e-a"
	if leader == standby {
		standby = "osbgit-e2e-b"
	}
	t.Logf("%s leads after %s; %s stands by", leader, time.Since(start).Round(time.Millisecond), standby)
	waitFor(t, time.Minute, "the leader to create Secret apps/le-db-creds", func() bool {
		return getSecret(t, "apps", "le-db-creds") != nil
	})

	// The standby learns who leads on its first look at the Lease. That
	// is up to RetryPeriod plus jitter (2 s + 2.4 s) after it lost the
	// race to create the Lease, so it is waited for, not assumed after
	// the sleep below.
	waitFor(t, 15*time.Second, "the standby to log that it stands by", func() bool {
		return countLines(replicas[standby].out.String(), "standing by") > 0
	})
	// Let several scheduled passes (@every 1s) go by: still only the leader
	// works.
	time.Sleep(4 * time.Second)
	if got := leaseHolder(t); got != leader {
		t.Fatalf("the Lease moved from %s to %q with both replicas running", leader, got)
	}
	if c := calls.of(standby, time.Time{}); len(c) != 0 {
		t.Errorf("the standby %s made %d broker calls, want none: %v", standby, len(c), c)
	}
	if len(calls.of(leader, time.Time{})) == 0 {
		t.Errorf("the leader %s made no broker call", leader)
	}
	lout, sout := replicas[leader].out.String(), replicas[standby].out.String()
	if n := countLines(lout, `"pass started"`); n < 2 {
		t.Errorf("the leader logged %d passes, want several (schedule @every 1s)", n)
	}
	if n := countLines(sout, `"pass started"`); n != 0 {
		t.Errorf("the standby logged %d passes, want 0", n)
	}
	if countLines(sout, "became leader") != 0 {
		t.Errorf("the standby's log shows it leading")
	}
	t.Logf("with both running: leader %s made %d broker calls and logged %d passes; standby %s made %d and logged %d",
		leader, len(calls.of(leader, time.Time{})), countLines(lout, `"pass started"`),
		standby, len(calls.of(standby, time.Time{})), countLines(sout, `"pass started"`))
	if n, m := broker.Count(osbtest.EndpointProvision), broker.Count(osbtest.EndpointBind); n != 1 || m != 1 {
		t.Errorf("broker saw %d provisions and %d binds, want 1 and 1", n, m)
	}
	if replicas[standby].exited() || replicas[leader].exited() {
		t.Fatal("a replica exited")
	}

	// SIGTERM to the leader: it exits 0 and releases the Lease; the standby
	// takes over.
	killed := time.Now()
	if code := replicas[leader].stop(t, time.Minute); code != 0 {
		t.Errorf("the leader exited %d on SIGTERM, want 0", code)
	}
	waitFor(t, time.Minute, fmt.Sprintf("%s to take the Lease over", standby), func() bool {
		return leaseHolder(t) == standby
	})
	t.Logf("%s took over %s after SIGTERM to %s", standby, time.Since(killed).Round(time.Millisecond), leader)

	// A manifest change pushed now is reconciled by the new leader.
	pushed := time.Now()
	repo.Push("a second database", map[string]string{
		"apps/db2.yaml": instanceYAML("apps", "le-db2") + "---\n" + bindingYAML("apps", "le-db2-binding", "le-db2", "le-db2-creds", ""),
	}, nil)
	waitFor(t, time.Minute, "the new leader to create Secret apps/le-db2-creds", func() bool {
		return getSecret(t, "apps", "le-db2-creds") != nil
	})
	t.Logf("%s reconciled the change %s after the push", standby, time.Since(pushed).Round(time.Millisecond))
	var binds int
	for _, c := range calls.of(standby, pushed) {
		if c.method == http.MethodPut && strings.Contains(c.path, "/service_bindings/") {
			binds++
		}
	}
	if binds != 1 {
		t.Errorf("the new leader %s made %d bind calls after the push, want 1", standby, binds)
	}
	if c := calls.of(leader, killed); len(c) != 0 {
		t.Errorf("the stopped leader %s made %d broker calls after SIGTERM", leader, len(c))
	}
	if n, m := broker.Count(osbtest.EndpointProvision), broker.Count(osbtest.EndpointBind); n != 2 || m != 2 {
		t.Errorf("broker saw %d provisions and %d binds in all, want 2 and 2 (no duplicate)", n, m)
	}
	if n := countLines(replicas[standby].out.String(), "became leader"); n != 1 {
		t.Errorf("the new leader logged 'became leader' %d times, want 1", n)
	}

	// A clean stop of the last replica releases the Lease.
	if code := replicas[standby].stop(t, time.Minute); code != 0 {
		t.Errorf("%s exited %d on SIGTERM, want 0", standby, code)
	}
	if h := leaseHolder(t); h != "" {
		t.Errorf("the Lease is still held by %q after both replicas stopped", h)
	}
	for _, p := range replicas {
		if strings.Contains(p.out.String(), pass) {
			t.Errorf("the broker password appears in %s's log", p.name)
		}
	}
}
