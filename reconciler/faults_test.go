package reconciler

import (
	"net/http"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
)

// TestFaultsConverge injects one broker fault per case into a pass, then
// clears it and runs more passes: the broker must end with exactly the
// desired instance and binding, no orphan, and orphan mitigation (a DELETE
// of the failed create) must have happened exactly where the spec says.
func TestFaultsConverge(t *testing.T) {
	t.Parallel()
	skipWhenShort(t)
	want := desiredState{
		instances: map[string]desiredInstance{"db": {"small", 1}},
		bindings:  map[string]string{"db-bind": "db"},
	}
	cases := []struct {
		name  string
		fault osbtest.Fault
		// wantOM is the endpoint that must see an orphan-mitigation DELETE
		// (EndpointUnknown: none).
		wantOM osbtest.Endpoint
	}{
		{"provision 500 after effect", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 500, AfterEffect: true, Times: 1}, osbtest.EndpointDeprovision},
		{"provision 503 before effect", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 503, RetryAfter: time.Second, Times: 1}, osbtest.EndpointDeprovision},
		{"provision timeout", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Delay: 3 * time.Second, AfterEffect: true, Times: 1}, osbtest.EndpointDeprovision},
		{"provision 201 malformed", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 201, Malformed: true, AfterEffect: true, Times: 1}, osbtest.EndpointDeprovision},
		{"provision connection reset", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Drop: true, AfterEffect: true, Times: 1}, osbtest.EndpointDeprovision},
		{"provision 204 unexpected 2xx", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 204, AfterEffect: true, Times: 1}, osbtest.EndpointDeprovision},
		{"provision 408", osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 408, Times: 1}, osbtest.EndpointUnknown},
		{"bind 500 after effect", osbtest.Fault{Endpoint: osbtest.EndpointBind, Status: 500, AfterEffect: true, Times: 1}, osbtest.EndpointUnbind},
		{"bind timeout", osbtest.Fault{Endpoint: osbtest.EndpointBind, Delay: 3 * time.Second, AfterEffect: true, Times: 1}, osbtest.EndpointUnbind},
		{"bind 201 malformed", osbtest.Fault{Endpoint: osbtest.EndpointBind, Status: 201, Malformed: true, AfterEffect: true, Times: 1}, osbtest.EndpointUnbind},
		{"catalog 500", osbtest.Fault{Endpoint: osbtest.EndpointCatalog, Status: 500, Times: 1}, osbtest.EndpointUnknown},
		{"catalog malformed", osbtest.Fault{Endpoint: osbtest.EndpointCatalog, Status: 200, Malformed: true, Times: 1}, osbtest.EndpointUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, want.files)
			f.transport = http.DefaultTransport
			f.broker.AddFault(tc.fault)
			r := f.reconciler(Options{})
			r.Clients.Timeout = time.Second
			res := f.sync(r) // the faulty pass
			_ = res
			f.broker.ReleaseDelays()
			// Passes until converged (at most 6), and one more that must
			// change nothing: the passes after it would repeat it.
			f.convergeAfterFaults(t, want, 6)
			ins, bns := brokerState(f.broker)
			if len(ins) != 1 || len(bns) != 1 {
				t.Fatalf("broker holds instances %v and bindings %v, want one of each", ins, bns)
			}
			for _, name := range []manifest.Kind{manifest.KindServiceInstance, manifest.KindServiceBinding} {
				ref := "db"
				if name == manifest.KindServiceBinding {
					ref = "db-bind"
				}
				rec := recordOf(t, f, name, ref)
				if rec == nil || rec.Phase != manifest.PhaseReady {
					t.Fatalf("%s record: %+v", name, rec)
				}
			}
			oms := 0
			for _, c := range f.broker.MutatingCalls() {
				if c.Endpoint == osbtest.EndpointDeprovision || c.Endpoint == osbtest.EndpointUnbind {
					oms++
					if c.Endpoint != tc.wantOM {
						t.Errorf("unexpected %s call", c.Endpoint)
					}
				}
			}
			if tc.wantOM != osbtest.EndpointUnknown && oms == 0 {
				t.Errorf("no orphan mitigation (%s) after the fault", tc.wantOM)
			}
			if tc.wantOM == osbtest.EndpointUnknown && oms != 0 {
				t.Errorf("orphan mitigation where the spec forbids it")
			}
		})
	}
}

// TestUpdateFailureNoOrphanMitigation: an update answered 500 is never
// followed by a DELETE, and converges once the broker recovers.
func TestUpdateFailureNoOrphanMitigation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url), "apps/db.yaml": instanceYAML("db", "small", "")}
	})
	f.sync(f.reconciler(Options{}))
	f.repo.Push("large", map[string]string{"apps/db.yaml": instanceYAML("db", "large", "")}, nil)
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 500, Times: 2})
	for i := 0; i < 5; i++ {
		f.sync(f.reconciler(Options{}))
	}
	if n := f.broker.Count(osbtest.EndpointDeprovision); n != 0 {
		t.Fatalf("%d deprovision calls after a failed update", n)
	}
	rec := recordOf(t, f, manifest.KindServiceInstance, "db")
	in, ok := f.broker.Instance(rec.ExternalID)
	if !ok || in.PlanID != osbtest.PlanDBLarge || rec.PlanExternalID != osbtest.PlanDBLarge {
		t.Fatalf("not converged after the update fault cleared: broker %+v, record %+v", in, rec)
	}
}

// TestRefusalIsTerminalUntilTheManifestChanges: a 400 on provision is the
// broker's verdict on the request: no orphan mitigation, no blind retry on
// later passes; bumping spec.updateRequests retries it.
func TestRefusalIsTerminalUntilTheManifestChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url), "apps/db.yaml": instanceYAML("db", "small", "")}
	})
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Status: 400, Times: 1})
	for i := 0; i < 3; i++ {
		f.sync(f.reconciler(Options{}))
	}
	if n := f.broker.Count(osbtest.EndpointProvision); n != 1 {
		t.Fatalf("%d provision calls after a 400, want 1 (no blind retry)", n)
	}
	if n := f.broker.Count(osbtest.EndpointDeprovision); n != 0 {
		t.Fatal("orphan mitigation after a 400")
	}
	rec := recordOf(t, f, manifest.KindServiceInstance, "db")
	if rec == nil || rec.Phase != manifest.PhaseFailed || !manifest.IsConditionTrue(rec.Conditions, manifest.ConditionFailed) {
		t.Fatalf("record after a refusal: %+v", rec)
	}
	f.repo.Push("retry", map[string]string{"apps/db.yaml": instanceYAML("db", "small", "") + "  updateRequests: 1\n"}, nil)
	f.sync(f.reconciler(Options{}))
	if rec := recordOf(t, f, manifest.KindServiceInstance, "db"); rec.Phase != manifest.PhaseReady || len(f.broker.Instances()) != 1 {
		t.Fatalf("not converged after updateRequests bump: %+v", rec)
	}
}
