package reconciler

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// gitEnv gives git CLI calls a fixed identity and no user config.
func gitEnv() []string {
	return append(os.Environ(),
		"GIT_AUTHOR_NAME=Test Author", "GIT_AUTHOR_EMAIL=author@example.com",
		"GIT_COMMITTER_NAME=Test Author", "GIT_COMMITTER_EMAIL=author@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir(), "GIT_TERMINAL_PROMPT=0")
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// testRepo is a bare repository with a working clone used to push changes
// the way a person would.
type testRepo struct {
	t     testing.TB
	bare  string
	clone string
}

func newTestRepo(t testing.TB, files map[string]string) *testRepo {
	t.Helper()
	root := t.TempDir()
	tr := &testRepo{t: t, bare: filepath.Join(root, "repo.git"), clone: filepath.Join(root, "clone")}
	git(t, root, "init", "-q", "--bare", "-b", "main", tr.bare)
	git(t, root, "clone", "-q", tr.bare, tr.clone)
	git(t, tr.clone, "checkout", "-q", "-b", "main")
	tr.push("initial manifests", files, nil)
	return tr
}

// push writes files (a nil remove list leaves others alone), commits and
// pushes to main, pulling first so osbgit's own commits are kept.
func (tr *testRepo) push(msg string, files map[string]string, remove []string) string {
	tr.t.Helper()
	if out := git(tr.t, tr.clone, "ls-remote", "origin", "main"); out != "" {
		git(tr.t, tr.clone, "pull", "-q", "--rebase", "origin", "main")
	}
	for p, c := range files {
		full := filepath.Join(tr.clone, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tr.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			tr.t.Fatal(err)
		}
	}
	for _, p := range remove {
		git(tr.t, tr.clone, "rm", "-q", p)
	}
	git(tr.t, tr.clone, "add", "-A")
	git(tr.t, tr.clone, "commit", "-q", "--allow-empty", "-m", msg)
	git(tr.t, tr.clone, "push", "-q", "origin", "HEAD:main")
	return git(tr.t, tr.clone, "rev-parse", "HEAD")
}

func (tr *testRepo) head() string { return git(tr.t, tr.bare, "rev-parse", "main") }

func (tr *testRepo) commitCount() int {
	n := 0
	fmt.Sscan(git(tr.t, tr.bare, "rev-list", "--count", "main"), &n)
	return n
}

// show returns a file at main, or "" when absent.
func (tr *testRepo) show(path string) string {
	cmd := exec.Command("git", "show", "main:"+path)
	cmd.Dir = tr.bare
	cmd.Env = gitEnv()
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func (tr *testRepo) files(prefix string) []string {
	out := git(tr.t, tr.bare, "ls-tree", "-r", "--name-only", "main", prefix)
	if out == "" {
		return nil
	}
	fs := strings.Split(out, "\n")
	sort.Strings(fs)
	return fs
}

// fixture is a repo, a broker, a secret store and a reconciler factory.
type fixture struct {
	t      testing.TB
	repo   *testRepo
	broker *osbtest.Broker
	url    string
	store  *secretstore.Dir
	ids    atomic.Int64
	// transport wraps broker calls (crash injection).
	transport http.RoundTripper
}

const (
	brokerUser = "broker-user"
	brokerPass = "broker-pass-s3cr3t"
)

func newFixture(t testing.TB, manifests func(brokerURL string) map[string]string) *fixture {
	t.Helper()
	b, srv := osbtest.NewServer(t, osbtest.Config{Username: brokerUser, Password: brokerPass, RequireRequestIdentity: true})
	f := &fixture{t: t, broker: b, url: srv.URL}
	store, err := secretstore.NewDir(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	f.store = store
	ctx := context.Background()
	if err := store.Put(ctx, "osbgit-system", "broker-auth", secretstore.Secret{Data: map[string][]byte{
		"username": []byte(brokerUser), "password": []byte(brokerPass)}}); err != nil {
		t.Fatal(err)
	}
	f.repo = newTestRepo(t, manifests(srv.URL))
	return f
}

// reconciler returns a fresh reconciler, as a new process would build it
// (no in-memory state), reading the same repo, broker and store.
func (f *fixture) reconciler(opts Options) *Reconciler {
	f.t.Helper()
	repo, err := gitrepo.Open(context.Background(), gitrepo.Options{URL: f.repo.bare, Branch: "main"},
		gitrepo.WithBackoff(5*time.Millisecond, 20*time.Millisecond))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { repo.Close() })
	clients := &BrokerClients{Secrets: f.store}
	if f.transport != nil {
		clients.HTTPClient = &http.Client{Transport: f.transport}
	}
	return &Reconciler{
		Source:  repo,
		Secrets: f.store,
		Clients: clients,
		Options: opts,
		NewID:   func() string { return fmt.Sprintf("id-%04d", f.ids.Add(1)) },
	}
}

func (f *fixture) sync(r *Reconciler) *SyncResult {
	f.t.Helper()
	res, err := r.Sync(context.Background())
	if err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	return res
}

// crashTransport lets the first n broker calls through and then
// "crashes": every later call fails without reaching the broker, and crashed
// reports true so the test's source can refuse further Git writes (a dead
// process writes nothing).
type crashTransport struct {
	mu      sync.Mutex
	allowed int
	seen    int
	crashed bool
	base    http.RoundTripper
}

func (c *crashTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.seen >= c.allowed {
		c.crashed = true
	}
	c.seen++
	crashed := c.crashed
	c.mu.Unlock()
	if crashed {
		return nil, fmt.Errorf("process crashed before this call")
	}
	return c.base.RoundTrip(req)
}

func (c *crashTransport) isCrashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

// crashingSource refuses every Git write once the transport crashed.
type crashingSource struct {
	Source
	crash *crashTransport
}

func (s crashingSource) WriteIntent(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	if s.crash.isCrashed() {
		return gitrepo.WriteResult{}, fmt.Errorf("process crashed")
	}
	return s.Source.WriteIntent(ctx, cs)
}

func (s crashingSource) WriteStatus(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	if s.crash.isCrashed() {
		return gitrepo.WriteResult{}, fmt.Errorf("process crashed")
	}
	return s.Source.WriteStatus(ctx, cs)
}
