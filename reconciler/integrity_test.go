package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
)

// Issue 18: osbgit's records cannot be edited, deleted or rewritten from
// under it. Records are read from osbgit's own signed records ref; the
// status branch's .osbgit/ is a copy that each pass puts back. Each test
// plays one attack a committer can make and checks the broker, the
// records and the commit message.

// newTeamsFixture: team-a's db and db-bind, team-b's prod-db and its
// binding, converged by one pass.
func newTeamsFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"osbgit.yaml":              osbgitYAML,
			"brokers/b.yaml":           brokerYAML(url),
			"team-a/db.yaml":           teamInstanceYAML("team-a", "db", ""),
			"team-a/db-bind.yaml":      teamBindingYAML("team-a", "db-bind", "db"),
			"team-b/prod-db.yaml":      teamInstanceYAML("team-b", "prod-db", ""),
			"team-b/prod-db-bind.yaml": teamBindingYAML("team-b", "prod-db-bind", "prod-db"),
		}
	})
	if res := f.sync(f.reconciler(Options{})); res.Exec == nil || res.Exec.Failed() {
		t.Fatalf("first pass: %+v", res)
	}
	return f
}

func teamBindingYAML(ns, name, instance string) string {
	return `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata:
  name: ` + name + `
  namespace: ` + ns + `
spec:
  instanceRef:
    name: ` + instance + `
`
}

func teamBindingPath(ns, name string) string {
	return ".osbgit/status/" + ns + "/servicebinding/" + name + ".yaml"
}

// recordsSnapshot is every .osbgit/ file on main.
func recordsSnapshot(f *fixture) map[string]string {
	out := map[string]string{}
	for _, p := range f.repo.Files(manifest.RecordDir) {
		out[p] = f.repo.Show(p)
	}
	return out
}

// assertRestored: main's .osbgit/ is byte for byte what it was, and the
// last commit says what it undid.
func assertRestored(t *testing.T, f *fixture, want map[string]string, undone ...string) {
	t.Helper()
	got := recordsSnapshot(f)
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s not restored:\n%s\nwant\n%s", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s left on main", p)
		}
	}
	msg := git(t, f.repo.Bare, "log", "-1", "--format=%B", "main")
	for _, p := range undone {
		if !strings.Contains(msg, p) {
			t.Errorf("the restoring commit does not name %s:\n%s", p, msg)
		}
	}
}

// TestEditedRecordIsNotActedOn (attack 1): team-a's record edited to name
// team-b's instance, and its binding's secretRef to team-b's Secret. Then
// team-a adds a binding and deletes db: before, osbgit bound against
// team-b's instance and, with prune, deprovisioned it. Now it binds
// against team-a's own db, deprovisions only team-a's, leaves team-b's
// Secret alone, and restores the records.
func TestEditedRecordIsNotActedOn(t *testing.T) {
	t.Parallel()
	f := newTeamsFixture(t)
	aID := teamRecord(t, f, "team-a", "db").ExternalID
	bID := teamRecord(t, f, "team-b", "prod-db").ExternalID
	before := recordsSnapshot(f)
	dbPath, bindPath := teamRecordPath("team-a", "db"), teamBindingPath("team-a", "db-bind")
	edited := strings.Replace(before[dbPath], aID, bID, 1)
	editedBind := strings.Replace(before[bindPath], `"namespace": "team-a"`, `"namespace": "team-b"`, 1)
	editedBind = strings.Replace(editedBind, `"name": "db-bind"`, `"name": "prod-db-bind"`, 1)
	if edited == before[dbPath] || editedBind == before[bindPath] {
		t.Fatalf("nothing to edit in\n%s\n%s", before[dbPath], before[bindPath])
	}
	f.repo.Push("team-a: tweak records", map[string]string{dbPath: edited, bindPath: editedBind}, nil)

	attack := f.repo.Push("team-a: another binding", map[string]string{"team-a/db-bind2.yaml": teamBindingYAML("team-a", "db-bind2", "db")}, nil)
	res := f.sync(f.reconciler(Options{}))
	if res.Refused != "" || res.Exec == nil || res.Exec.Failed() {
		t.Fatalf("pass: refused %q, %+v", res.Refused, res.Exec)
	}
	_, bindings := brokerState(f.broker)
	bind2 := recordIn(t, f, manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "team-a", Name: "db-bind2"})
	if bind2 == nil || !strings.HasPrefix(bindings[bind2.ExternalID], aID+"/") {
		t.Errorf("db-bind2 bound to %q, want team-a's instance %s", bindings[bind2.ExternalID], aID)
	}
	if got := f.repo.Show(dbPath); got != before[dbPath] {
		t.Errorf("team-a's record not restored:\n%s", got)
	}
	if msg := git(t, f.repo.Bare, "log", "--format=%B", attack+"..main"); !strings.Contains(msg, dbPath) || !strings.Contains(msg, bindPath) {
		t.Errorf("the status commit does not say what it undid:\n%s", msg)
	}

	// team-a deletes everything: only team-a's resources go.
	f.repo.Push("team-a: gone", nil, []string{"team-a/db.yaml", "team-a/db-bind.yaml", "team-a/db-bind2.yaml"})
	if res := f.sync(f.reconciler(Options{})); res.Exec == nil || res.Exec.Failed() {
		t.Fatalf("delete pass: %+v", res.Exec)
	}
	instances, _ := brokerState(f.broker)
	if _, ok := instances[bID]; !ok {
		t.Errorf("team-b's instance %s was deprovisioned; broker holds %v", bID, instances)
	}
	if _, ok := instances[aID]; ok {
		t.Errorf("team-a's instance %s survived its deletion", aID)
	}
	if s, err := f.store.Get(context.Background(), "team-b", "prod-db-bind"); err != nil || len(s) == 0 {
		t.Errorf("team-b's Secret prod-db-bind was touched: %v %v", s, err)
	}
}

// TestDeletedOrRevertedRecordsProvisionNothingAgain (attacks 2 and 3): a
// record deleted by a commit, a status commit reverted, and main forced
// back to a commit from before osbgit's first pass: before, each made the
// next pass provision the resources again under new IDs. Now nothing is
// provisioned again and the records come back.
func TestDeletedOrRevertedRecordsProvisionNothingAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		attack func(t *testing.T, f *fixture, first string)
	}{
		{"deleted record", func(t *testing.T, f *fixture, _ string) {
			f.repo.Push("remove a record", nil, []string{teamRecordPath("team-b", "prod-db")})
		}},
		{"reverted status commit", func(t *testing.T, f *fixture, _ string) {
			git(t, f.repo.Clone(), "pull", "-q", "--rebase", "origin", "main")
			git(t, f.repo.Clone(), "revert", "--no-edit", "HEAD")
			git(t, f.repo.Clone(), "push", "-q", "origin", "HEAD:main")
		}},
		{"force-push from a stale clone", func(t *testing.T, f *fixture, first string) {
			git(t, f.repo.Clone(), "reset", "-q", "--hard", first)
			f.repo.Write(map[string]string{"README": "stale clone\n"})
			git(t, f.repo.Clone(), "add", "-A")
			git(t, f.repo.Clone(), "commit", "-q", "-m", "work from an old clone")
			git(t, f.repo.Clone(), "push", "-q", "-f", "origin", "HEAD:main")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(url string) map[string]string {
				return map[string]string{
					"osbgit.yaml":         osbgitYAML,
					"brokers/b.yaml":      brokerYAML(url),
					"team-b/prod-db.yaml": teamInstanceYAML("team-b", "prod-db", ""),
					"team-b/bind.yaml":    teamBindingYAML("team-b", "bind", "prod-db"),
				}
			})
			first := f.repo.Head()
			f.sync(f.reconciler(Options{}))
			before := recordsSnapshot(f)
			instances, bindings := brokerState(f.broker)
			tc.attack(t, f, first)
			if len(recordsSnapshot(f)) == len(before) && tc.name != "reverted status commit" {
				t.Fatalf("the attack left the records as they were")
			}
			res := f.sync(f.reconciler(Options{}))
			if res.Refused != "" || (res.Exec != nil && res.Exec.Failed()) {
				t.Fatalf("pass: refused %q, %+v", res.Refused, res.Exec)
			}
			i2, b2 := brokerState(f.broker)
			if len(i2) != len(instances) || len(b2) != len(bindings) {
				t.Errorf("broker went from %v %v to %v %v: provisioned again", instances, bindings, i2, b2)
			}
			assertRestored(t, f, before)
		})
	}
}

// TestCopiedRecordAndEditedCatalog (attack 4): team-b's record copied to
// a new team-a instance's path, and the cached catalog edited. Before, the
// new instance adopted team-b's instance ID; the catalog fed the planner.
// Now the new instance gets its own ID and both files are restored.
func TestCopiedRecordAndEditedCatalog(t *testing.T) {
	t.Parallel()
	f := newTeamsFixture(t)
	bID := teamRecord(t, f, "team-b", "prod-db").ExternalID
	before := recordsSnapshot(f)
	catalogPath := ""
	for p := range before {
		if strings.HasPrefix(p, ".osbgit/catalog/") {
			catalogPath = p
		}
	}
	stolen := strings.NewReplacer(`"namespace": "team-b"`, `"namespace": "team-a"`, `"name": "prod-db"`, `"name": "copy"`).Replace(before[teamRecordPath("team-b", "prod-db")])
	attack := f.repo.Push("team-a: copy", map[string]string{
		teamRecordPath("team-a", "copy"): stolen,
		"team-a/copy.yaml":               teamInstanceYAML("team-a", "copy", ""),
		catalogPath:                      strings.Replace(before[catalogPath], "small", "smoll", -1),
	}, nil)
	res := f.sync(f.reconciler(Options{}))
	if res.Exec == nil || res.Exec.Failed() {
		t.Fatalf("pass: %+v", res.Exec)
	}
	cp := teamRecord(t, f, "team-a", "copy")
	if cp == nil || cp.ExternalID == "" || cp.ExternalID == bID {
		t.Fatalf("team-a's copy has record %+v; team-b's ID is %s", cp, bID)
	}
	if got := f.repo.Show(catalogPath); got != before[catalogPath] {
		t.Errorf("catalog record not restored")
	}
	if msg := git(t, f.repo.Bare, "log", "--format=%B", attack+"..main"); !strings.Contains(msg, catalogPath) {
		t.Errorf("the status commit does not name the catalog it restored:\n%s", msg)
	}
}

// TestRecordsRefThatOsbgitDidNotSign: the records ref itself pushed by
// someone (a forged commit, an older records commit, or deleted): the
// pass refuses before any broker call, and `osbgit trust` after review
// lets the next pass go on without provisioning anything again.
func TestRecordsRefThatOsbgitDidNotSign(t *testing.T) {
	t.Parallel()
	ref := gitrepo.RecordsRef("main")
	for _, tc := range []struct {
		name, want string
		attack     func(t *testing.T, f *fixture, firstRecords string)
	}{
		{"forged", "did not sign", func(t *testing.T, f *fixture, _ string) {
			git(t, f.repo.Clone(), "fetch", "-q", "origin", "main")
			git(t, f.repo.Clone(), "push", "-q", "-f", "origin", "origin/main:"+ref)
		}},
		{"moved back", "moved back", func(t *testing.T, f *fixture, firstRecords string) {
			git(t, f.repo.Bare, "update-ref", ref, firstRecords)
		}},
		{"deleted", "missing", func(t *testing.T, f *fixture, _ string) {
			git(t, f.repo.Bare, "update-ref", "-d", ref)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(url string) map[string]string {
				return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
					"team-b/prod-db.yaml": teamInstanceYAML("team-b", "prod-db", "")}
			})
			f.sync(f.reconciler(Options{}))
			firstRecords := git(t, f.repo.Bare, "rev-parse", ref)
			f.repo.Push("a second instance", map[string]string{"team-b/other.yaml": teamInstanceYAML("team-b", "other", "")}, nil)
			f.sync(f.reconciler(Options{}))
			instances, _ := brokerState(f.broker)
			tc.attack(t, f, firstRecords)
			f.broker.ResetCalls()
			f.repo.Push("a third instance", map[string]string{"team-b/third.yaml": teamInstanceYAML("team-b", "third", "")}, nil)
			res := f.sync(f.reconciler(Options{}))
			if !strings.Contains(res.Refused, tc.want) {
				t.Fatalf("refused %q, want it to say %q", res.Refused, tc.want)
			}
			for _, c := range f.broker.Calls() {
				if c.Method != "GET" {
					t.Errorf("refused pass called %s %s", c.Method, c.Path)
				}
			}
			r := f.reconciler(Options{})
			if _, err := r.Trust(context.Background(), []string{".osbgit/status/team-b"}, false); err == nil {
				t.Fatal("trust of some files over a records ref that does not verify: no error")
			}
			tr, err := r.Trust(context.Background(), nil, false)
			if err != nil || tr.Commit == "" {
				t.Fatalf("trust: %+v %v", tr, err)
			}
			res = f.sync(f.reconciler(Options{}))
			if res.Refused != "" || res.Exec == nil || res.Exec.Failed() {
				t.Fatalf("after trust: refused %q, %+v", res.Refused, res.Exec)
			}
			i2, _ := brokerState(f.broker)
			if len(i2) != len(instances)+1 {
				t.Errorf("broker went from %d to %d instances, want one more (third)", len(instances), len(i2))
			}
		})
	}
}

// failingRaise is a Keeper whose Raise fails: a crash between the push
// of a records commit and the update of the highest sequence.
type failingRaise struct{ RecordKeys }

func (failingRaise) Raise(context.Context, string, uint64) error {
	return errors.New("crashed before recording the sequence")
}

// TestCrashBeforeTheSequenceIsRecorded: a pass whose records commit was
// pushed but whose sequence was never stored does not make the next pass
// refuse its own records.
func TestCrashBeforeTheSequenceIsRecorded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": instanceYAML("db", "small", "")}
	})
	r := f.reconciler(Options{})
	r.Keys = failingRaise{r.Keys}
	f.sync(r)
	f.repo.Push("a binding", map[string]string{"apps/db-bind.yaml": bindingYAML("db-bind", "db")}, nil)
	res := f.sync(f.reconciler(Options{}))
	if res.Refused != "" || res.Exec == nil || res.Exec.Counts.Created != 1 {
		t.Fatalf("next pass: refused %q, %+v", res.Refused, res.Exec)
	}
}

// TestTwoReplicasStartTogether: two processes with one secret store and
// no records key yet sync a new repository at once: one key is made, each
// resource is provisioned once, and a third pass trusts every record.
func TestTwoReplicasStartTogether(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": instanceYAML("db", "small", ""), "apps/db-bind.yaml": bindingYAML("db-bind", "db")}
	})
	rs := []*Reconciler{f.reconciler(Options{}), f.reconciler(Options{})}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Sync(context.Background())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, gitrepo.ErrConflict) {
			t.Errorf("replica: %v", err)
		}
	}
	res := f.sync(f.reconciler(Options{}))
	if res.Refused != "" {
		t.Fatalf("third pass refused: %s", res.Refused)
	}
	instances, bindings := brokerState(f.broker)
	if len(instances) != 1 || len(bindings) != 1 {
		t.Errorf("broker holds %v and %v, want one of each", instances, bindings)
	}
}

// TestHistoryRewriteKeepsRecordsTrusted: rewriting every commit (as git
// filter-repo does to purge a file) changes every SHA but not .osbgit/:
// the records stay trusted and nothing is provisioned again.
func TestHistoryRewriteKeepsRecordsTrusted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": instanceYAML("db", "small", ""), "apps/leak.txt": "oops\n"}
	})
	f.sync(f.reconciler(Options{}))
	before := git(t, f.repo.Bare, "rev-parse", "main", gitrepo.RecordsRef("main"))
	instances, _ := brokerState(f.broker)
	rewrite := exec.Command("git", "filter-branch", "-f", "--index-filter",
		"git rm -q --cached --ignore-unmatch apps/leak.txt", "--", "--all")
	rewrite.Dir = f.repo.Bare
	// Without it, filter-branch waits 10 s after its warning.
	rewrite.Env = append(gittest.Env(), "FILTER_BRANCH_SQUELCH_WARNING=1")
	if out, err := rewrite.CombinedOutput(); err != nil {
		t.Fatalf("filter-branch: %v\n%s", err, out)
	}
	if after := git(t, f.repo.Bare, "rev-parse", "main", gitrepo.RecordsRef("main")); after == before {
		t.Fatalf("the rewrite changed nothing")
	}
	f.repo.Push("after the purge", map[string]string{"apps/other.yaml": instanceYAML("other", "small", "")}, nil)
	res := f.sync(f.reconciler(Options{}))
	if res.Refused != "" || res.Exec == nil || res.Exec.Counts.Created != 1 {
		t.Fatalf("pass after the rewrite: refused %q, %+v", res.Refused, res.Exec)
	}
	if i2, _ := brokerState(f.broker); len(i2) != len(instances)+1 {
		t.Errorf("broker went from %d to %d instances, want one more", len(instances), len(i2))
	}
}

// TestRecordsOverHTTPFromAFreshProcess: a CronJob with no cache volume,
// each pass a new process fetching at depth 1 over smart HTTP: the
// records ref comes along, a deleted and an edited record provision
// nothing again and are restored, and a records ref pushed by someone
// else is refused.
func TestRecordsOverHTTPFromAFreshProcess(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml": instanceYAML("db", "small", ""), "apps/db-bind.yaml": bindingYAML("db-bind", "db")}
	})
	g := serveGit(t, f.repo.Bare)
	auth := gitrepo.Auth{Username: gitUser, Password: gitPass}
	pass := func() *SyncResult {
		t.Helper()
		r, err := f.reconcilerAt(t, g.repoURL(f.repo.Bare), auth)
		if err != nil {
			t.Fatal(err)
		}
		return f.sync(r)
	}
	pass()
	before := recordsSnapshot(f)
	instances, bindings := brokerState(f.broker)
	db := statusPath(t, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"})
	bind := statusPath(t, manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "db-bind"})
	f.repo.Push("edit and delete records", map[string]string{db: strings.Replace(before[db], `"provisioned": true`, `"provisioned": false`, 1)}, []string{bind})
	if res := pass(); res.Refused != "" || (res.Exec != nil && res.Exec.Failed()) {
		t.Fatalf("pass: refused %q, %+v", res.Refused, res.Exec)
	}
	if i2, b2 := brokerState(f.broker); len(i2) != len(instances) || len(b2) != len(bindings) {
		t.Errorf("broker went from %v %v to %v %v", instances, bindings, i2, b2)
	}
	assertRestored(t, f, before, db, bind)

	git(t, f.repo.Bare, "update-ref", gitrepo.RecordsRef("main"), f.repo.Head())
	f.repo.Push("another instance", map[string]string{"apps/other.yaml": instanceYAML("other", "small", "")}, nil)
	f.broker.ResetCalls()
	if res := pass(); !strings.Contains(res.Refused, "did not sign") || len(f.broker.MutatingCalls()) != 0 {
		t.Fatalf("forged records ref: refused %q, calls %v", res.Refused, f.broker.MutatingCalls())
	}
}

// TestEverythingDeletedStaysTrusted: when the last resource and broker
// are gone, osbgit's records commit holds an empty .osbgit/; the next
// pass still trusts it (it refused it as "not signed").
func TestEverythingDeletedStaysTrusted(t *testing.T) {
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url), "apps/db.yaml": instanceYAML("db", "small", "")}
	})
	f.sync(f.reconciler(Options{}))
	f.repo.Push("db gone", nil, []string{"apps/db.yaml"})
	f.sync(f.reconciler(Options{}))
	f.repo.Push("broker gone", nil, []string{"brokers/b.yaml"})
	f.sync(f.reconciler(Options{}))
	if got := f.repo.Files(manifest.RecordDir); len(got) != 0 {
		t.Fatalf("records left: %v", got)
	}
	f.repo.Push("a note", map[string]string{"README": "empty\n"}, nil)
	if res := f.sync(f.reconciler(Options{})); res.Refused != "" {
		t.Fatalf("refused over osbgit's own empty records: %s", res.Refused)
	}
}

// TestManyFilesDroppedIntoRecords: a commit adding many files under
// .osbgit/ gets them all removed, with the commit and author of the first
// maxBlamed named and the rest counted, not a line (and a history walk)
// each.
func TestManyFilesDroppedIntoRecords(t *testing.T) {
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url), "apps/db.yaml": instanceYAML("db", "small", "")}
	})
	f.sync(f.reconciler(Options{}))
	before := recordsSnapshot(f)
	junk := map[string]string{}
	for i := range maxBlamed + 10 {
		junk[fmt.Sprintf(".osbgit/status/junk/x%03d.yaml", i)] = "junk\n"
	}
	attack := f.repo.Push("junk", junk, nil)
	f.sync(f.reconciler(Options{}))
	assertRestored(t, f, before)
	msg := git(t, f.repo.Bare, "log", "--format=%B", attack+"..main")
	if !strings.Contains(msg, "- and 10 more") || strings.Count(msg, "added outside osbgit") != maxBlamed {
		t.Errorf("restoring commit message:\n%s", msg)
	}
}
