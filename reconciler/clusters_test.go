package reconciler

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
)

// refHead is ref's commit in the bare repository ("" when missing).
func refHead(t *testing.T, f *fixture, ref string) string {
	t.Helper()
	cmd := exec.Command("git", "rev-parse", "--verify", "-q", ref)
	cmd.Dir, cmd.Env = f.repo.Bare, gittest.Env()
	out, _ := cmd.Output()
	return strings.TrimSpace(string(out))
}

// treeAt is the tree of dir on main ("" when missing).
func treeAt(t *testing.T, f *fixture, dir string) string {
	t.Helper()
	return refHead(t, f, "main:"+dir)
}

// clusterState is what one deployment keeps in Git: its records on the
// status branch and its records ref.
type clusterState struct{ tree, ref string }

func stateOf(t *testing.T, f *fixture, id string) clusterState {
	t.Helper()
	return clusterState{treeAt(t, f, gitrepo.RecordsDir(id)), refHead(t, f, gitrepo.ClusterRecordsRef(id, "main"))}
}

// instanceRecordIn reads the record of ServiceInstance apps/name under
// root at main (nil if none).
func instanceRecordIn(t *testing.T, f *fixture, root manifest.RecordRoot, name string) *manifest.StatusRecord {
	t.Helper()
	p, err := root.StatusPath(manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	data := f.repo.Show(p)
	if data == "" {
		return nil
	}
	rec, err := manifest.UnmarshalStatusRecord(p, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// dbPerDeployment declares, in each of dirs (one deployment's --path
// each), the test broker and instance db.
func dbPerDeployment(dirs ...string) func(url string) map[string]string {
	return func(url string) map[string]string {
		files := map[string]string{"osbgit.yaml": osbgitYAML}
		for _, d := range dirs {
			files[d+"/broker.yaml"] = brokerYAML(url)
			files[d+"/db.yaml"] = instanceYAML("db", "small", "")
		}
		return files
	}
}

// TestClustersShareRepo runs two deployments (different --path and
// cluster ID) on one repository and one broker, with prune: both
// converge with records of their own, the same instance name in both
// means two instances, and removing a manifest from one deployment's path
// deprovisions only its instance. No pass of one changes the other's
// records on the status branch or its records ref.
func TestClustersShareRepo(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"osbgit.yaml":    osbgitYAML,
			"eu/broker.yaml": brokerYAML(url),
			"eu/db.yaml":     instanceYAML("db", "small", ""),
			"eu/bind.yaml":   bindingYAML("eu-bind", "db"),
			"us/broker.yaml": brokerYAML(url),
			"us/db.yaml":     instanceYAML("db", "small", ""),
			"us/bind.yaml":   bindingYAML("us-bind", "db"),
			"us/cache.yaml":  instanceYAML("cache", "small", ""),
		}
	})
	deployments := []struct{ id, path string }{{"eu", "eu"}, {"us", "us"}}
	other := map[string]string{"eu": "us", "us": "eu"}
	pass := func(id string) *SyncResult {
		t.Helper()
		before := stateOf(t, f, other[id])
		res := f.sync(f.reconcilerAs(id, Options{Path: id}))
		if res.Exec != nil && res.Exec.Failed() {
			t.Fatalf("%s: pass failed: %+v", id, res.Exec)
		}
		if after := stateOf(t, f, other[id]); after != before {
			t.Fatalf("a pass of %s changed %s's records: %+v -> %+v", id, other[id], before, after)
		}
		return res
	}

	for _, d := range deployments {
		pass(d.id)
	}
	ids := map[string]string{}
	for _, d := range deployments {
		root := manifest.RecordRoot(gitrepo.RecordsDir(d.id))
		rec := instanceRecordIn(t, f, root, "db")
		if rec == nil || rec.Phase != manifest.PhaseReady {
			t.Fatalf("%s: record of db: %+v", d.id, rec)
		}
		in, ok := f.broker.Instance(rec.ExternalID)
		if !ok || in.Context == nil || in.Context.ClusterID != d.id {
			t.Fatalf("%s: broker instance %+v (ok %v): want context.clusterid %q", d.id, in, ok, d.id)
		}
		ids[d.id] = rec.ExternalID
		if refHead(t, f, gitrepo.ClusterRecordsRef(d.id, "main")) == "" {
			t.Fatalf("%s: no records ref", d.id)
		}
	}
	if ids["eu"] == ids["us"] {
		t.Fatalf("both deployments recorded instance %s", ids["eu"])
	}
	if ins, bns := brokerState(f.broker); len(ins) != 3 || len(bns) != 2 {
		t.Fatalf("broker holds %v and %v: want 3 instances, 2 bindings", ins, bns)
	}
	if got := f.repo.Files(".osbgit/status"); len(got) != 0 {
		t.Fatalf("records in the legacy root: %v", got)
	}
	if refHead(t, f, gitrepo.RecordsRef("main")) != "" {
		t.Fatal("a legacy records ref was written")
	}

	// Passes with nothing to do: no call, no commit, for either.
	f.broker.ResetCalls()
	commits := f.repo.CommitCount()
	for _, d := range deployments {
		pass(d.id)
	}
	if n := len(f.broker.MutatingCalls()); n != 0 || f.repo.CommitCount() != commits {
		t.Fatalf("no-op passes made %d mutating calls and %d commits", n, f.repo.CommitCount()-commits)
	}

	// eu's db goes: only eu's instance (and its binding) is deprovisioned.
	f.repo.Push("eu: drop db", nil, []string{"eu/db.yaml", "eu/bind.yaml"})
	pass("eu")
	pass("us")
	if _, ok := f.broker.Instance(ids["eu"]); ok {
		t.Fatal("eu's db is still at the broker")
	}
	if _, ok := f.broker.Instance(ids["us"]); !ok {
		t.Fatal("us's db was deprovisioned by eu's removal")
	}
	if ins, bns := brokerState(f.broker); len(ins) != 2 || len(bns) != 1 {
		t.Fatalf("broker holds %v and %v: want us's 2 instances and 1 binding", ins, bns)
	}
	if instanceRecordIn(t, f, manifest.RecordRoot(gitrepo.RecordsDir("eu")), "db") != nil {
		t.Fatal("eu's record of db is still there")
	}
	if instanceRecordIn(t, f, manifest.RecordRoot(gitrepo.RecordsDir("us")), "db") == nil {
		t.Fatal("us's record of db is gone")
	}

	// Each reads its own records: status of eu does not list us's.
	rep, err := f.reconcilerAs("eu", Options{Path: "eu"}).ReadRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Trust != RecordsVerified || len(rep.Records.Status) != 0 || len(rep.Records.Catalogs) != 1 || rep.RecordsRef != gitrepo.ClusterRecordsRef("eu", "main") {
		t.Fatalf("eu's records: trust %s (%s), %d status records, %d catalogs, ref %s: want only eu's broker's catalog", rep.Trust, rep.Reason, len(rep.Records.Status), len(rep.Records.Catalogs), rep.RecordsRef)
	}
}

// TestClusterIgnoredByLegacyDeployment: a deployment without a cluster ID
// on a status branch also holding a cluster's records neither restores
// them away nor carries them, and the cluster's stay as they were.
func TestClusterIgnoredByLegacyDeployment(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dbPerDeployment("a", "b"))
	f.sync(f.reconcilerAs("b", Options{Path: "b"}))
	b := stateOf(t, f, "b")
	for i := 0; i < 2; i++ {
		res := f.sync(f.reconciler(Options{Path: "a"}))
		if res.Exec != nil && res.Exec.Failed() {
			t.Fatalf("legacy pass failed: %+v", res.Exec)
		}
		if got := stateOf(t, f, "b"); got != b {
			t.Fatalf("legacy pass %d changed cluster b's records: %+v -> %+v", i, b, got)
		}
	}
	if ins, _ := brokerState(f.broker); len(ins) != 2 {
		t.Fatalf("broker holds %v: want a's and b's db", ins)
	}
	rep, err := f.reconciler(Options{Path: "a"}).ReadRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Trust != RecordsVerified || len(rep.Diverged) != 0 || len(rep.Records.Status) != 1 {
		t.Fatalf("legacy records: %s (%s), diverged %+v, %d records: want its db only", rep.Trust, rep.Reason, rep.Diverged, len(rep.Records.Status))
	}
}

// TestRecordsMoveUpgrade upgrades a repository's only deployment to one
// with a cluster ID (osbgit records move): the records move unchanged and
// stay sealed, nothing is provisioned again, the move happens once, and
// the deployment left without a cluster ID refuses rather than start over.
func TestRecordsMoveUpgrade(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"osbgit.yaml":       osbgitYAML,
			"brokers/b.yaml":    brokerYAML(url),
			"apps/db.yaml":      instanceYAML("db", "small", ""),
			"apps/db-bind.yaml": bindingYAML("db-bind", "db"),
		}
	})
	ctx := context.Background()
	f.sync(f.reconciler(Options{}))
	legacy := f.repo.Files(".osbgit")
	if len(legacy) == 0 {
		t.Fatal("no records to move")
	}
	contents := map[string]string{}
	for _, p := range legacy {
		contents[strings.TrimPrefix(p, ".osbgit/")] = f.repo.Show(p)
	}

	dry, err := f.reconcilerAs("prod", Options{}).MoveRecords(ctx, true)
	if err != nil || len(dry.Files) != len(legacy) || dry.Commit != "" || len(f.repo.Files(gitrepo.RecordsDir("prod"))) != 0 {
		t.Fatalf("dry run: %+v, %v: want %d files listed and nothing written", dry, err, len(legacy))
	}
	res, err := f.reconcilerAs("prod", Options{}).MoveRecords(ctx, false)
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	if len(res.Files) != len(legacy) {
		t.Fatalf("moved %v, want %v", res.Files, legacy)
	}
	if got := f.repo.Files(".osbgit"); len(got) != len(legacy) {
		t.Fatalf("after the move .osbgit/ holds %v", got)
	}
	for rest, want := range contents {
		if got := f.repo.Show(gitrepo.RecordsDir("prod") + "/" + rest); got != want {
			t.Fatalf("%s moved as %q, want %q", rest, got, want)
		}
	}
	if refHead(t, f, gitrepo.RecordsRef("main")) != "" || refHead(t, f, gitrepo.ClusterRecordsRef("prod", "main")) != res.Commit {
		t.Fatal("the move must delete the legacy records ref and start prod's")
	}

	// Once only: neither another cluster nor the same one moves them again.
	for _, id := range []string{"other", "prod"} {
		if _, err := f.reconcilerAs(id, Options{}).MoveRecords(ctx, false); err == nil {
			t.Fatalf("a second move to %s succeeded", id)
		}
	}

	// The deployment with its cluster ID: verified records, nothing to do.
	f.broker.ResetCalls()
	rep, err := f.reconcilerAs("prod", Options{}).ReadRecords(ctx)
	if err != nil || rep.Trust != RecordsVerified || len(rep.Records.Status) != 2 {
		t.Fatalf("prod's records after the move: %+v, %v", rep, err)
	}
	commits := f.repo.CommitCount()
	f.sync(f.reconcilerAs("prod", Options{}))
	if calls := f.broker.MutatingCalls(); len(calls) != 0 || f.repo.CommitCount() != commits {
		t.Fatalf("pass after the move made %d mutating calls (%+v) and %d commits", len(calls), calls, f.repo.CommitCount()-commits)
	}
	if ins, bns := brokerState(f.broker); len(ins) != 1 || len(bns) != 1 {
		t.Fatalf("broker holds %v and %v", ins, bns)
	}

	// Still running without the cluster ID: refuses, calls nothing.
	if res := f.sync(f.reconciler(Options{})); !strings.Contains(res.Refused, gitrepo.RecordsRef("main")+" is missing") {
		t.Fatalf("legacy pass after the move: refused %q: want a refusal naming its records ref", res.Refused)
	}
	if calls := f.broker.MutatingCalls(); len(calls) != 0 {
		t.Fatalf("legacy pass after the move called the broker: %+v", calls)
	}
}
