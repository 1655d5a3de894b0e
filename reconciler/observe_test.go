package reconciler

import (
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
)

// TestDriftCheckRestoresThePlan: with driftCheckInterval set, a pass that is
// due GETs the instance, sees the broker moved it to another plan, and
// updates it back to what the manifest says.
func TestDriftCheckRestoresThePlan(t *testing.T) {
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
