package reconciler

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/forge"
	"github.com/osbgit/osbgit/reconciler/redact"
)

// fakeGitHub is a forge answering commit status calls with status, and
// recording "state sha" for each.
type fakeGitHub struct {
	mu     sync.Mutex
	calls  []string
	status int
}

func (g *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct{ State string }
	_ = json.NewDecoder(r.Body).Decode(&body)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, body.State+" "+r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
	w.WriteHeader(g.status)
}

func (g *fakeGitHub) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.calls
	g.calls = nil
	return out
}

// TestResultOnEveryReconciledCommit: each pass on a new manifest revision
// leaves a note on that commit (counts, failed resources scrubbed of
// secrets, the status commit), the status commit names the revision in a
// trailer, and the forge sees pending then success or failure; a pass on
// no new revision leaves nothing; a revision with no record change still
// gets its note; a forge that fails never fails the pass nor shows the
// token.
func TestResultOnEveryReconciledCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		return map[string]string{
			"osbgit.yaml":    osbgitYAML,
			"brokers/b.yaml": brokerYAML(url),
			"apps/db.yaml":   instanceYAML("db", "small", ""),
			"apps/bad.yaml":  instanceYAML("bad", "large", ""),
		}
	})
	f.broker.SetBehavior(osbtest.PlanDBLarge, osbtest.Behavior{Fail: true, FailDescription: "quota exceeded for " + brokerPass}, osbtest.OpProvision)
	gh := &fakeGitHub{status: http.StatusCreated}
	srv := httptest.NewServer(gh)
	t.Cleanup(srv.Close)
	const token = "ghp-t0ken-never-logged"
	statuses, err := forge.New(forge.Options{Kind: forge.GitHub, BaseURL: srv.URL, RepoURL: "https://github.com/acme/platform.git", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	pass := func() (*SyncResult, *logCapture) {
		t.Helper()
		r := f.reconciler(Options{StatePath: state})
		set := redact.New()
		set.Add(token)
		logs, log := newLogCapture(set)
		r.Redact, r.Log, r.CommitStatuses = set, log, statuses
		return f.sync(r), logs
	}
	note := func(commit string) string {
		t.Helper()
		return git(t, f.repo.Bare, "notes", "--ref", "osbgit", "show", commit)
	}

	// 1. A new revision with a failure.
	m1 := f.repo.Head()
	res, _ := pass()
	if !res.Failed() || res.Commit == "" {
		t.Fatalf("first pass: failed %v, commit %q", res.Failed(), res.Commit)
	}
	got := note(m1)
	for _, want := range []string{
		"osbgit (cluster test-cluster) reconciled " + m1,
		"Result: failure: 1 created, 0 updated, 0 deleted, 0 in progress, 1 failed, 0 retried later",
		"Failed:\n- ServiceInstance apps/bad: ",
		"Status commit: " + res.Commit,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("note on %s lacks %q:\n%s", m1[:8], want, got)
		}
	}
	if strings.Contains(got, brokerPass) || !strings.Contains(got, "quota exceeded") {
		t.Errorf("failure not quoted, or quoted with the broker's password:\n%s", got)
	}
	if tr := git(t, f.repo.Bare, "log", "-1", "--format=%(trailers:key=Reconciled-Revision,valueonly)", res.Commit); tr != m1 {
		t.Errorf("status commit trailer Reconciled-Revision = %q, want %s\n%s", tr, m1, git(t, f.repo.Bare, "log", "-1", "--format=%B", res.Commit))
	}
	if msg := git(t, f.repo.Bare, "log", "-1", "--format=%B", res.Commit); !strings.Contains(msg, "[skip ci]") {
		t.Errorf("status commit lost [skip ci]:\n%s", msg)
	}
	if calls := gh.take(); strings.Join(calls, ",") != "pending "+m1+",failure "+m1 {
		t.Errorf("forge calls %v, want pending then failure on %s", calls, m1[:8])
	}

	// 2. No new revision (the pass retries the failed resource on
	// osbgit's own status commit): no note, no status.
	notes := git(t, f.repo.Bare, "rev-parse", "refs/notes/osbgit")
	pass()
	if git(t, f.repo.Bare, "rev-parse", "refs/notes/osbgit") != notes || len(gh.take()) != 0 {
		t.Error("a pass on no new revision wrote a note or a status")
	}

	// 3. The fix: success on the new revision; the old note is kept.
	m2 := f.repo.Push("bad: small plan", map[string]string{"apps/bad.yaml": instanceYAML("bad", "small", "")}, nil)
	res, _ = pass()
	if res.Failed() || res.Commit == "" {
		t.Fatalf("third pass: failed %v, commit %q", res.Failed(), res.Commit)
	}
	if n2 := note(m2); !strings.Contains(n2, "Result: success: 1 created,") || strings.Contains(n2, "Failed:") || !strings.Contains(n2, "Status commit: "+res.Commit) {
		t.Errorf("note on %s:\n%s", m2[:8], n2)
	}
	if note(m1) != got {
		t.Error("the first note changed")
	}
	if calls := gh.take(); strings.Join(calls, ",") != "pending "+m2+",success "+m2 {
		t.Errorf("forge calls %v, want pending then success on %s", calls, m2[:8])
	}

	// 4. A revision that changes no record (and a forge that fails): the
	// note is written by itself; the pass succeeds; the log warns
	// without the token.
	gh.status = http.StatusInternalServerError
	m3 := f.repo.Push("docs", map[string]string{"docs/README.md": "hello\n"}, nil)
	res, logs := pass()
	if res.Skipped || res.Commit != "" {
		t.Fatalf("fourth pass: skipped %v (%s), commit %q", res.Skipped, res.Reason, res.Commit)
	}
	if got := note(m3); !strings.Contains(got, "Result: success: 0 created,") || !strings.Contains(got, "Status commit: none") {
		t.Errorf("note on %s:\n%s", m3[:8], got)
	}
	logs.mu.Lock()
	text := logs.text.String()
	logs.mu.Unlock()
	if !strings.Contains(text, "could not set the commit status") || strings.Contains(text, token) {
		t.Errorf("forge failure not logged, or logged with the token:\n%s", text)
	}
	if calls := gh.take(); strings.Join(calls, ",") != "pending "+m3+",success "+m3 {
		t.Errorf("forge calls %v, want pending then success on %s", calls, m3[:8])
	}

	// 5. A commit touching only .osbgit/ is no manifest revision: its
	// pass restores the records but notes nothing.
	gh.status = http.StatusCreated
	notes = git(t, f.repo.Bare, "rev-parse", "refs/notes/osbgit")
	f.repo.Push("edit records", map[string]string{".osbgit/README": "records\n"}, nil)
	if res, _ := pass(); res.Skipped || res.Commit == "" {
		t.Fatalf("pass after an .osbgit-only commit: skipped %v (%s), commit %q", res.Skipped, res.Reason, res.Commit)
	}
	if calls := gh.take(); git(t, f.repo.Bare, "rev-parse", "refs/notes/osbgit") != notes || len(calls) != 0 {
		t.Errorf("an .osbgit-only commit got a note or a status: %v", calls)
	}
}
