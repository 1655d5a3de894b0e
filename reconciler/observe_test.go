package reconciler

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
)

// TestDriftCheckRestoresThePlan: with driftCheckInterval set, a pass that is
// due GETs the instance, sees the broker moved it to another plan, and
// updates it back to what the manifest says.
func TestDriftCheckRestoresThePlan(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML + "driftCheckInterval: 1m\n", "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": instanceYAML("db", "small", "")}
	})
	clock := time.Now()
	st := &PassState{}
	newR := func() *Reconciler {
		r := f.reconciler(Options{})
		r.Now = func() time.Time { return clock }
		r.State = st
		return r
	}
	f.sync(newR())
	rec := recordOf(t, f, manifest.KindServiceInstance, "db")
	in, _ := f.broker.Instance(rec.ExternalID)
	in.PlanID = osbtest.PlanDBLarge // changed behind osbgit's back
	f.broker.PutInstance(in)

	clock = clock.Add(30 * time.Second)
	if res := f.sync(newR()); !res.Skipped {
		t.Fatalf("drift check ran before it was due: %s", res.Reason)
	}
	clock = clock.Add(time.Minute)
	f.broker.ResetCalls()
	f.sync(newR())
	if f.broker.Count(osbtest.EndpointGetInstance) != 1 {
		t.Fatalf("%d GET instance calls, want 1", f.broker.Count(osbtest.EndpointGetInstance))
	}
	if in, _ := f.broker.Instance(rec.ExternalID); in.PlanID != osbtest.PlanDBSmall {
		t.Fatalf("drift not corrected: broker plan %s", in.PlanID)
	}
}

// TestAdoptExistingInstance: a manifest naming an instance the broker
// already holds (spec.externalID) is adopted without a provision call.
func TestAdoptExistingInstance(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": instanceYAML("db", "small", "") + "  externalID: pre-existing-1\n"}
	})
	f.broker.PutInstance(osbtest.Instance{ID: "pre-existing-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall,
		OrganizationGUID: "o", SpaceGUID: "s", State: osbtest.StateReady})
	f.sync(f.reconciler(Options{}))
	if n := f.broker.Count(osbtest.EndpointProvision); n != 0 {
		t.Fatalf("%d provision calls for an instance the broker already holds", n)
	}
	rec := recordOf(t, f, manifest.KindServiceInstance, "db")
	if rec == nil || rec.ExternalID != "pre-existing-1" || rec.Phase != manifest.PhaseReady {
		t.Fatalf("record after adoption: %+v", rec)
	}
}

// concurrentGets counts GETs of instances in flight at once.
type concurrentGets struct {
	mu        sync.Mutex
	now, peak int
}

func (c *concurrentGets) RoundTrip(req *http.Request) (*http.Response, error) {
	get := req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v2/service_instances/")
	if get {
		c.mu.Lock()
		c.now++
		c.peak = max(c.peak, c.now)
		c.mu.Unlock()
		defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestDriftGetsKeepTheBrokersCallLimit (issue 19): a drift check asks a
// broker at most its call limit (concurrency) at a time; it used a fixed
// 8 and a goroutine per resource.
func TestDriftGetsKeepTheBrokersCallLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		files := map[string]string{"osbgit.yaml": osbgitYAML + "concurrency: 2\n", "brokers/b.yaml": brokerYAML(url)}
		for i := range 12 {
			name := fmt.Sprintf("db%d", i)
			files["apps/"+name+".yaml"] = instanceYAML(name, "small", "")
		}
		return files
	})
	f.sync(f.reconciler(Options{}))
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointGetInstance, Delay: 30 * time.Millisecond})
	c := &concurrentGets{}
	f.transport = c
	r := f.reconciler(Options{})
	if _, err := r.Diff(context.Background(), DiffOptions{Drift: true}); err != nil {
		t.Fatal(err)
	}
	if n := f.broker.Count(osbtest.EndpointGetInstance); n != 12 {
		t.Fatalf("%d drift GETs, want 12", n)
	}
	if c.peak > 2 {
		t.Errorf("%d GETs at once at one broker, want at most its concurrency 2", c.peak)
	}
}
