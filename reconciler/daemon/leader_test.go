package daemon

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Short lease timings for tests. The Lease stores whole seconds, so the
// duration must be at least 1s. Takeover after a clean stop takes about one
// RetryPeriod (the Lease is released), loss detection RenewDeadline.
func testElection(cs *fake.Clientset, id string) *LeaderElection {
	return &LeaderElection{
		Client:        cs.CoordinationV1(),
		Namespace:     "osbgit-system",
		Name:          "osbgit",
		Identity:      id,
		LeaseDuration: 4 * time.Second,
		RenewDeadline: 3 * time.Second, // generous: CPU-starved CI must not lose the lease
		RetryPeriod:   100 * time.Millisecond,
	}
}

func readyz(d *Daemon) int {
	rec := httptest.NewRecorder()
	d.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code
}

func leaseHolder(t *testing.T, cs *fake.Clientset) string {
	t.Helper()
	l, err := cs.CoordinationV1().Leases("osbgit-system").Get(context.Background(), "osbgit", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestLeaderElectionOneLeaderAndTakeover: of two replicas on one Lease only
// the leader runs passes; the standby is Ready, answers webhooks 202
// without a pass; when the leader stops it releases the Lease and the
// standby takes over within a retry period or so.
func TestLeaderElectionOneLeaderAndTakeover(t *testing.T) {
	synctest.Test(t, testLeaderElectionOneLeaderAndTakeover)
}

func testLeaderElectionOneLeaderAndTakeover(t *testing.T) {
	cs := fake.NewClientset()
	pa, pb := newFakePasser(), newFakePasser()
	ra := start(t, Config{Passer: pa, Schedule: every(50 * time.Millisecond), LeaderElection: testElection(cs, "a")})
	waitFor(t, "a leads", func() bool { return pa.count() > 0 })
	if tr := pa.waitStarted(t); tr != TriggerElected {
		t.Fatalf("leader's first trigger %q, want elected", tr)
	}
	rb := start(t, Config{Passer: pb, Schedule: every(50 * time.Millisecond), LeaderElection: testElection(cs, "b"),
		WebhookSecret: []byte(testSecret)})

	time.Sleep(10 * time.Second) // b keeps trying for several lease durations (fake time)
	synctest.Wait()
	if n := pb.count(); n != 0 {
		t.Fatalf("standby ran %d passes", n)
	}
	if holder := leaseHolder(t, cs); holder != "a" {
		t.Fatalf("lease holder %q, want a", holder)
	}
	if got := counterValue(t, ra.d.Metrics(), MetricLeader, nil); got != 1 {
		t.Fatalf("leader gauge of a: %v", got)
	}
	if got := counterValue(t, rb.d.Metrics(), MetricLeader, nil); got != 0 {
		t.Fatalf("leader gauge of b: %v", got)
	}
	if code := readyz(rb.d); code != http.StatusOK {
		t.Fatalf("standby /readyz %d, want 200", code)
	}
	if code := serveHook(rb.d, http.MethodPost, "/hook", map[string]string{HeaderGitLabToken: testSecret}, "{}"); code != http.StatusAccepted {
		t.Fatalf("hook to the standby: %d, want 202", code)
	}
	if got := counterValue(t, rb.d.Metrics(), MetricWebhookRequests, map[string]string{"result": hookStandby}); got != 1 {
		t.Fatalf("standby hooks counted %v", got)
	}

	// The leader stops: it releases the Lease, b takes over.
	if err := ra.stop(t); err != nil {
		t.Fatalf("leader Run: %v", err)
	}
	stoppedA := pa.count()
	if tr := pb.waitStarted(t); tr != TriggerElected {
		t.Fatalf("b's first trigger %q, want elected", tr)
	}
	if holder := leaseHolder(t, cs); holder != "b" {
		t.Fatalf("lease holder %q, want b", holder)
	}
	if got := counterValue(t, rb.d.Metrics(), MetricLeader, nil); got != 1 {
		t.Fatalf("leader gauge of b after takeover: %v", got)
	}
	time.Sleep(time.Second) // b's ticks go by
	synctest.Wait()
	if pa.count() != stoppedA {
		t.Fatal("a ran a pass after it stopped")
	}
	pa.mu.Lock()
	pb.mu.Lock()
	if pa.maxRun != 1 || pb.maxRun != 1 {
		t.Errorf("concurrent passes: a %d, b %d", pa.maxRun, pb.maxRun)
	}
	pb.mu.Unlock()
	pa.mu.Unlock()
	if err := rb.stop(t); err != nil {
		t.Fatalf("b Run: %v", err)
	}
	if holder := leaseHolder(t, cs); holder != "" {
		t.Fatalf("lease still held by %q after a clean stop", holder)
	}
}

// TestLeaderElectionLeaseLost: a leader whose Lease is taken stops starting
// passes and Run returns ErrLeadershipLost.
func TestLeaderElectionLeaseLost(t *testing.T) {
	synctest.Test(t, testLeaderElectionLeaseLost)
}

func testLeaderElectionLeaseLost(t *testing.T) {
	cs := fake.NewClientset()
	// The fake tracker does not check resourceVersion on update; the API
	// server would reject a's stale writes once the Lease changed hands.
	var stolen atomic.Bool
	cs.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l, ok := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if ok && stolen.Load() && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "a" {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, l.Name, errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	p := newFakePasser()
	r := start(t, Config{Passer: p, Schedule: every(30 * time.Millisecond), LeaderElection: testElection(cs, "a")})
	p.waitStarted(t)
	// Another holder takes the Lease (as after a long pause of this process).
	ctx := context.Background()
	leases := cs.CoordinationV1().Leases("osbgit-system")
	l, err := leases.Get(ctx, "osbgit", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	thief, dur := "thief", int32(3600)
	now := metav1.NewMicroTime(time.Now())
	l.Spec = coordinationv1.LeaseSpec{HolderIdentity: &thief, LeaseDurationSeconds: &dur, AcquireTime: &now, RenewTime: &now}
	stolen.Store(true) // before the theft, so no write of a's lands after it
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		r.done <- err
		if !errors.Is(err, ErrLeadershipLost) {
			t.Fatalf("Run: %v, want ErrLeadershipLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after losing the lease")
	}
	n := p.count()
	time.Sleep(time.Second) // ticks go by
	synctest.Wait()
	if p.count() != n {
		t.Fatal("passes still start after the lease was lost")
	}
	if got := counterValue(t, r.d.Metrics(), MetricLeader, nil); got != 0 {
		t.Fatalf("leader gauge %v", got)
	}
	if holder := leaseHolder(t, cs); holder != "thief" {
		t.Fatalf("lease holder %q: the loser must not release someone else's lease", holder)
	}
	if !strings.Contains(r.logs.String(), "lost the lease") {
		t.Fatalf("loss not logged:\n%s", r.logs.String())
	}
}

func TestDefaultIdentityAndNamespace(t *testing.T) {
	t.Setenv("POD_NAME", "")
	t.Setenv("POD_NAMESPACE", "")
	a, err := DefaultIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DefaultIdentity()
	if a == b {
		t.Fatalf("two processes on one host share identity %q", a)
	}
	if ns := DefaultLeaseNamespace(); ns != "default" {
		t.Fatalf("namespace %q", ns)
	}
	t.Setenv("POD_NAME", "osbgit-7d9-abc")
	t.Setenv("POD_NAMESPACE", "osbgit-system")
	if id, _ := DefaultIdentity(); id != "osbgit-7d9-abc" {
		t.Fatalf("identity %q, want POD_NAME", id)
	}
	if ns := DefaultLeaseNamespace(); ns != "osbgit-system" {
		t.Fatalf("namespace %q, want POD_NAMESPACE", ns)
	}
}
