package reconciler

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
)

func brokerWithRelist(url, extra string) string {
	return brokerYAML(url) + extra
}

// TestBrokerSpecHash: the hash recorded with a catalog sees what decides the
// catalog (URL, auth, TLS, restrictions) and ignores the relist settings,
// so changing relistDuration does not force a relist.
func TestBrokerSpecHash(t *testing.T) {
	t.Parallel()
	base := manifest.BrokerSpec{URL: "http://x"}
	tests := []struct {
		name string
		edit func(*manifest.BrokerSpec)
		same bool
	}{
		{"relist fields", func(s *manifest.BrokerSpec) {
			s.RelistBehavior, s.RelistRequests = manifest.RelistManual, 3
			s.RelistDuration = &metav1.Duration{Duration: time.Hour}
		}, true},
		{"url", func(s *manifest.BrokerSpec) { s.URL = "http://y" }, false},
		{"auth secret", func(s *manifest.BrokerSpec) {
			s.AuthInfo = &manifest.BrokerAuthInfo{Bearer: &manifest.SecretAuthConfig{SecretRef: &manifest.ObjectReference{Namespace: "ns", Name: "tok"}}}
		}, false},
		{"ca bundle", func(s *manifest.BrokerSpec) { s.CABundle = []byte("pem") }, false},
		{"skip tls verify", func(s *manifest.BrokerSpec) { s.InsecureSkipTLSVerify = true }, false},
		{"catalog restrictions", func(s *manifest.BrokerSpec) {
			s.CatalogRestrictions = &manifest.CatalogRestrictions{ServiceClass: []string{"name==db"}}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.edit(&s)
			if got := BrokerSpecHash(&s) == BrokerSpecHash(&base); got != tc.same {
				t.Errorf("hash unchanged = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestRelistDecisions(t *testing.T) {
	t.Parallel()
	var url string
	f := newFixture(t, func(u string) map[string]string {
		url = u
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerWithRelist(u, "  relistBehavior: Manual\n"),
			"apps/db.yaml": instanceYAML("db", "small", "")}
	})
	clock := time.Now()
	newR := func(st *PassState) *Reconciler {
		r := f.reconciler(Options{})
		r.Now = func() time.Time { return clock }
		r.State = st
		return r
	}
	st := &PassState{}
	f.sync(newR(st))
	if n := f.broker.Count(osbtest.EndpointCatalog); n != 1 {
		t.Fatalf("first pass fetched the catalog %d times, want 1", n)
	}
	if p, _ := manifest.CatalogPath(manifest.Ref{Kind: manifest.KindClusterServiceBroker, Name: "test-broker"}); f.repo.Show(p) == "" {
		t.Fatal("catalog record not committed")
	}

	// Manual: no relist even a day later.
	clock = clock.Add(24 * time.Hour)
	f.repo.Push("touch", map[string]string{"apps/other.yaml": "# nothing\n"}, nil)
	f.sync(newR(st))
	if n := f.broker.Count(osbtest.EndpointCatalog); n != 1 {
		t.Fatalf("Manual broker relisted (%d catalog calls)", n)
	}

	// relistRequests bump forces one.
	f.repo.Push("relist", map[string]string{"brokers/b.yaml": brokerWithRelist(url, "  relistBehavior: Manual\n  relistRequests: 1\n")}, nil)
	f.sync(newR(st))
	if n := f.broker.Count(osbtest.EndpointCatalog); n != 2 {
		t.Fatalf("relistRequests bump: %d catalog calls, want 2", n)
	}

	// Duration: relisted once the period elapsed, not before; an identical
	// catalog commits nothing.
	f.repo.Push("duration", map[string]string{"brokers/b.yaml": brokerWithRelist(url, "  relistDuration: 10m\n  relistRequests: 1\n")}, nil)
	f.sync(newR(st)) // spec changed: relist
	calls := f.broker.Count(osbtest.EndpointCatalog)
	commits := f.repo.CommitCount()
	clock = clock.Add(5 * time.Minute)
	if res := f.sync(newR(st)); !res.Skipped {
		t.Fatalf("pass 5 minutes later not skipped: %s", res.Reason)
	}
	clock = clock.Add(6 * time.Minute)
	res := f.sync(newR(st))
	if res.Skipped || f.broker.Count(osbtest.EndpointCatalog) != calls+1 {
		t.Fatalf("relistDuration elapsed: skipped=%v, catalog calls %d, want %d", res.Skipped, f.broker.Count(osbtest.EndpointCatalog), calls+1)
	}
	if f.repo.CommitCount() != commits {
		t.Fatal("relisting an unchanged catalog made a commit")
	}

	// A plan that vanished from the catalog is flagged on the instance
	// using it, which is left alone.
	cat := f.broker.Catalog()
	for i := range cat.Services {
		var plans = cat.Services[i].Plans[:0]
		for _, p := range cat.Services[i].Plans {
			if p.ID != osbtest.PlanDBSmall {
				plans = append(plans, p)
			}
		}
		cat.Services[i].Plans = plans
	}
	f.broker.SetCatalog(cat)
	clock = clock.Add(11 * time.Minute)
	f.broker.ResetCalls()
	res = f.sync(newR(st))
	if len(f.broker.MutatingCalls()) != 0 {
		t.Fatal("a vanished plan caused a mutating call")
	}
	var step *plan.Step
	for i := range res.Plan.Steps {
		if res.Plan.Steps[i].Ref.Name == "db" {
			step = &res.Plan.Steps[i]
		}
	}
	if step == nil || step.Action != plan.None || !strings.Contains(strings.Join(step.Warnings, " ")+step.Reason, "catalog") {
		t.Fatalf("instance on a vanished plan: %+v", step)
	}
}
