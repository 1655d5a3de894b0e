package reconciler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// TestBrokerThatLostItsStateIsRecovered (issue 19, item 5): a broker
// restored from an old backup (osbtest Reset: it holds nothing) answers
// 404 to an update, to a bind against the instance, or to a drift GET of
// an instance whose last update failed. Each is handled as drift: the
// instance is provisioned again with the same instance_id, its binding is
// bound again with the same binding_id and its Secret is written again.
// Before, the update's 404 was an UpdateFailed verdict (Ready "keeps its
// previous plan and parameters"), the bind's 404 a BindFailed verdict, and
// the drift check skipped failed records: nothing was ever recovered.
func TestBrokerThatLostItsStateIsRecovered(t *testing.T) {
	t.Parallel()
	db := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"}
	for _, tc := range []struct {
		name string
		// lose makes the broker lose its state and changes the repo so
		// that the next pass meets the 404; it returns how far the clock
		// moves before that pass.
		lose func(t *testing.T, f *fixture) time.Duration
		// passes is how many passes recover (the 404 pass included).
		passes   int
		bindings []string
		wantPlan string
	}{{
		name: "update answered 404",
		lose: func(t *testing.T, f *fixture) time.Duration {
			f.broker.Reset()
			f.repo.Push("db large", map[string]string{"apps/db.yaml": instanceYAML("db", "large", "")}, nil)
			return time.Second
		},
		passes: 2, bindings: []string{"db-creds"}, wantPlan: osbtest.PlanDBLarge,
	}, {
		name: "bind answered 404",
		lose: func(t *testing.T, f *fixture) time.Duration {
			f.broker.Reset()
			f.repo.Push("second binding", map[string]string{"apps/db-more.yaml": bindingYAML("db-more", "db")}, nil)
			return time.Second
		},
		passes: 2, bindings: []string{"db-creds", "db-more"}, wantPlan: osbtest.PlanDBSmall,
	}, {
		name: "drift GET of a failed update answered 404",
		lose: func(t *testing.T, f *fixture) time.Duration {
			f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 400, Times: 1})
			f.repo.Push("db large", map[string]string{"apps/db.yaml": instanceYAML("db", "large", "")}, nil)
			return 0
		},
		passes: 1, bindings: []string{"db-creds"}, wantPlan: osbtest.PlanDBLarge,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(url string) map[string]string {
				return map[string]string{"osbgit.yaml": osbgitYAML + "driftCheckInterval: 1h\n", "brokers/b.yaml": brokerYAML(url),
					"apps/db.yaml": instanceYAML("db", "small", ""), "apps/db-creds.yaml": bindingYAML("db-creds", "db")}
			})
			clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
			st := &PassState{}
			pass := func() *SyncResult {
				r := f.reconciler(Options{})
				r.Now = func() time.Time { return clock }
				r.State = st
				return f.sync(r)
			}
			pass()
			id := recordIn(t, f, db).ExternalID
			bindingIDs := map[string]string{}
			clock = clock.Add(tc.lose(t, f))
			if tc.name == "drift GET of a failed update answered 404" {
				pass()
				if rec := recordIn(t, f, db); rec.Phase != manifest.PhaseFailed {
					t.Fatalf("setup: the update did not fail: %+v", rec)
				}
				f.broker.Reset()
				clock = clock.Add(2 * time.Hour) // the drift check is due
			}
			for _, name := range tc.bindings {
				// Whatever the Secret holds now is replaced.
				if err := f.store.Put(context.Background(), "apps", name, secrets.Secret{Data: map[string][]byte{"DATABASE_URL": []byte("stale")}}); err != nil {
					t.Fatal(err)
				}
				if rec := recordIn(t, f, manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: name}); rec != nil {
					bindingIDs[name] = rec.ExternalID
				}
			}
			for i := range tc.passes {
				if res := pass(); res.Skipped {
					t.Fatalf("pass %d skipped (%s): the lost instance keeps a pass due", i+1, res.Reason)
				}
				if i == 0 && tc.passes > 1 {
					if rec := recordIn(t, f, db); rec.Lost == nil || !strings.Contains(recordText(rec), "404") {
						t.Fatalf("after the 404: instance record %s, want it marked lost", recordText(rec))
					}
				}
			}

			inst, ok := f.broker.Instance(id)
			if !ok || inst.PlanID != tc.wantPlan {
				t.Fatalf("broker holds instance %s: %v (plan %s), want it provisioned again with plan %s; instances %v", id, ok, inst.PlanID, tc.wantPlan, f.broker.Instances())
			}
			if rec := recordIn(t, f, db); rec.Phase != manifest.PhaseReady || rec.Lost != nil || rec.ExternalID != id {
				t.Errorf("instance record after recovery: %s", recordText(rec))
			}
			for _, name := range tc.bindings {
				rec := recordIn(t, f, manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: name})
				if rec == nil || rec.Phase != manifest.PhaseReady {
					t.Fatalf("binding %s after recovery: %s", name, recordText(rec))
				}
				if want := bindingIDs[name]; want != "" && rec.ExternalID != want {
					t.Errorf("binding %s bound again as %s, want the same binding_id %s", name, rec.ExternalID, want)
				}
				bn, ok := f.broker.Binding(rec.ExternalID)
				if !ok {
					t.Fatalf("broker holds no binding %s for %s", rec.ExternalID, name)
				}
				sec, err := f.store.Get(context.Background(), "apps", name)
				if err != nil || string(sec["DATABASE_URL"]) != bn.Credentials["uri"] {
					t.Errorf("Secret apps/%s after recovery: %q (%v), want the broker's new credentials", name, sec["DATABASE_URL"], err)
				}
			}
			if res := pass(); !res.Skipped {
				t.Errorf("recovered, yet the next pass ran: %s", res.Reason)
			}
		})
	}
}

// TestDriftUndetectableIsSaid (issue 19, item 5): with drift checks on,
// resources whose service offers no GET are named in a warning instead of
// being skipped silently.
func TestDriftUndetectableIsSaid(t *testing.T) {
	t.Parallel()
	queue := strings.NewReplacer("osbtest-db", "osbtest-queue", "small", "standard").Replace(instanceYAML("q", "small", ""))
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/q.yaml": queue, "apps/db.yaml": instanceYAML("db", "small", "")}
	})
	f.sync(f.reconciler(Options{}))
	res, err := f.reconciler(Options{}).Diff(context.Background(), DiffOptions{Drift: true})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, d := range res.Plan.Diagnostics {
		if strings.Contains(d.Message, "drift cannot be detected") {
			found = append(found, d.Message)
		}
	}
	want := `drift cannot be detected for 1 ServiceInstance(s) of class "osbtest-queue" at ClusterServiceBroker test-broker (its service is not instances_retrievable): apps/q`
	if len(found) != 1 || found[0] != want {
		t.Fatalf("drift warnings %q, want [%q]", found, want)
	}
	if n := f.broker.Count(osbtest.EndpointGetInstance); n != 1 {
		t.Errorf("%d GETs, want 1 (db only)", n)
	}
}

// recordText renders a record for a failure message.
func recordText(rec *manifest.StatusRecord) string {
	if rec == nil {
		return "<none>"
	}
	b, err := manifest.RecordJSON(rec)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
