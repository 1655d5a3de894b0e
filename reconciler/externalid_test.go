package reconciler

import (
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
)

// TestExternalIDHeldByAnotherRecordIsRefused: team-a's manifest naming the
// instance_id team-b's record holds is not adopted; both are blocked and
// the messages name both files, and once team-a removes its manifest
// team-b's instance is still there (before: adopted, then deprovisioned).
func TestExternalIDHeldByAnotherRecordIsRefused(t *testing.T) {
	t.Parallel()
	f, victim := newTeamBFixture(t)
	victimPath := teamRecordPath("team-b", "prod-db")
	f.repo.Push("team-a claims it", map[string]string{
		"team-a/thief.yaml": teamInstanceYAML("team-a", "thief", "  externalID: "+victim.ExternalID+"\n"),
	}, nil)
	f.broker.ResetCalls()
	res := f.sync(f.reconciler(Options{}))
	thief := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "team-a", Name: "thief"}
	owner := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "team-b", Name: "prod-db"}
	for _, ref := range []manifest.Ref{thief, owner} {
		got := outcomeOf(t, res, ref)
		for _, want := range []string{"failed", "team-a/thief.yaml:9", victimPath} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: outcome %q does not contain %q", ref, got, want)
			}
		}
	}
	if n := len(f.broker.MutatingCalls()); n != 0 {
		t.Fatalf("%d mutating calls while the claim stands: %+v", n, f.broker.MutatingCalls())
	}
	if rec := teamRecord(t, f, "team-a", "thief"); rec != nil && rec.ExternalID != "" {
		t.Fatalf("team-a's record took the ID: %+v", rec)
	}
	// team-a removes the manifest (prune is on): nothing is deprovisioned.
	f.repo.Push("team-a leaves", nil, []string{"team-a/thief.yaml"})
	f.sync(f.reconciler(Options{}))
	if _, ok := f.broker.Instance(victim.ExternalID); !ok {
		t.Fatal("team-b's instance was deprovisioned through team-a's manifest")
	}
	if n := f.broker.Count(osbtest.EndpointDeprovision); n != 0 {
		t.Fatalf("%d deprovision calls", n)
	}
	// The claim gone, team-b's record loses its error.
	if rec := teamRecord(t, f, "team-b", "prod-db"); rec == nil || rec.Error != nil || rec.ExternalID != victim.ExternalID {
		t.Fatalf("team-b's record after the claim is gone: %+v", rec)
	}
}

// TestUnrecordedExternalIDIsStillAdopted: the migration path. An ID no
// record holds (an instance created outside osbgit) is adopted, also when
// other records exist.
func TestUnrecordedExternalIDIsStillAdopted(t *testing.T) {
	t.Parallel()
	f, _ := newTeamBFixture(t)
	f.broker.PutInstance(osbtest.Instance{ID: "made-by-hand", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall,
		OrganizationGUID: "o", SpaceGUID: "s", State: osbtest.StateReady})
	f.repo.Push("team-a adopts its own", map[string]string{
		"team-a/legacy.yaml": teamInstanceYAML("team-a", "legacy", "  externalID: made-by-hand\n"),
	}, nil)
	f.broker.ResetCalls()
	f.sync(f.reconciler(Options{}))
	if n := f.broker.Count(osbtest.EndpointProvision); n != 0 {
		t.Fatalf("%d provision calls for an adopted instance", n)
	}
	if rec := teamRecord(t, f, "team-a", "legacy"); rec == nil || rec.ExternalID != "made-by-hand" || rec.Phase != manifest.PhaseReady {
		t.Fatalf("record after adoption: %+v", rec)
	}
}
