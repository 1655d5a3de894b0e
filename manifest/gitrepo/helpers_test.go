package gitrepo

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
)

// gitEnv isolates the git CLI from the machine's configuration and gives it
// an identity.
func gitEnv() []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test Human",
		"GIT_AUTHOR_EMAIL=human@example.com",
		"GIT_COMMITTER_NAME=Test Human",
		"GIT_COMMITTER_EMAIL=human@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

// runGit runs the git CLI in dir and returns trimmed stdout.
func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gitErr(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// gitErr is runGit without failing the test.
func gitErr(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &gitCLIError{err: err, stderr: stderr.String()}
	}
	return strings.TrimSpace(stdout.String()), nil
}

type gitCLIError struct {
	err    error
	stderr string
}

func (e *gitCLIError) Error() string { return e.err.Error() + ": " + e.stderr }

// testRepo is a bare repository served by the tests, changed by "human"
// commits made in it with git fast-import (gittest), and a working clone
// made on first use for tests that run git commands in one.
type testRepo struct {
	t    testing.TB
	g    *gittest.Repo
	root string // GIT_PROJECT_ROOT
	name string // e.g. "repo.git"
	bare string // root/name
}

// newTestRepo creates root/repo.git (bare, default branch main) with an
// initial commit holding files.
func newTestRepo(t testing.TB, files map[string]string) *testRepo {
	t.Helper()
	g := gittest.New(t, files)
	tr := &testRepo{t: t, g: g, root: filepath.Dir(g.Bare), name: filepath.Base(g.Bare), bare: g.Bare}
	gittest.AppendConfig(t, tr.bare, "[http]\n\treceivepack = true\n[receive]\n\tdenyNonFastForwards = true\n\tdenyDeletes = true\n")
	return tr
}

// work is a working clone of the repository, cloned at main's head on
// first use and afterwards left to the test (commit does not go through
// it).
func (tr *testRepo) work() string {
	tr.t.Helper()
	return tr.g.Clone()
}

// commit commits files (empty content deletes) on top of main and moves
// main to it, as a human's push would, and returns the commit.
func (tr *testRepo) commit(msg string, files map[string]string) string {
	tr.t.Helper()
	write := map[string]string{}
	var remove []string
	for p, c := range files {
		if c == "" {
			remove = append(remove, p)
		} else {
			write[p] = c
		}
	}
	return tr.g.Push(msg, write, remove)
}

// head returns the bare repo's head of branch.
func (tr *testRepo) head(branch string) string {
	tr.t.Helper()
	return tr.g.Ref("refs/heads/" + branch)
}

// show returns a file's contents at rev in the bare repo.
func (tr *testRepo) show(rev, path string) string {
	tr.t.Helper()
	return runGit(tr.t, tr.bare, "show", rev+":"+path)
}

// gitServer serves a directory of bare repositories over smart HTTP with
// git http-backend behind basic auth, and logs requests.
type gitServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string // "METHOD path?query"
	// before, when set, runs before each request is served (a test's
	// concurrent writer).
	before func(r *http.Request)
}

// newGitServer starts the server. An empty user disables auth.
func newGitServer(t testing.TB, root, user, pass string, tlsServer bool) *gitServer {
	t.Helper()
	backend := &cgi.Handler{
		Path: gittest.HTTPBackend(t),
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
		},
		// Rejected ref updates are expected in some tests; keep the
		// backend's complaints out of the test output.
		Stderr: io.Discard,
	}
	gs := &gitServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gs.mu.Lock()
		gs.reqs = append(gs.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		before := gs.before
		gs.mu.Unlock()
		if before != nil {
			before(r)
		}
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			r.Header.Set("Remote-User", u)
		}
		backend.ServeHTTP(w, r)
	})
	gs.Server = httptest.NewUnstartedServer(h)
	gs.Config.ErrorLog = log.New(io.Discard, "", 0) // expected TLS rejections
	if tlsServer {
		gs.StartTLS()
	} else {
		gs.Start()
	}
	t.Cleanup(gs.Close)
	return gs
}

// requests returns and clears the request log.
func (gs *gitServer) requests() []string {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	out := gs.reqs
	gs.reqs = nil
	return out
}

// countReq counts logged requests containing s.
func countReq(reqs []string, s string) int {
	n := 0
	for _, r := range reqs {
		if strings.Contains(r, s) {
			n++
		}
	}
	return n
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// mustOpen opens a repository or fails the test; it closes it at cleanup.
func mustOpen(t testing.TB, o Options, opts ...Option) *Repo {
	t.Helper()
	r, err := Open(testCtx(t), o, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// mustFetch fetches or fails the test.
func mustFetch(t testing.TB, r *Repo) FetchResult {
	t.Helper()
	res, err := r.Fetch(testCtx(t))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return res
}

const (
	testUser = "osbgit"
	testPass = "s3cret-Pa55word"
)

// httpRepo serves a fresh test repo with auth and returns it with Options
// to reach it.
func httpRepo(t testing.TB, files map[string]string) (*testRepo, *gitServer, Options) {
	t.Helper()
	tr := newTestRepo(t, files)
	gs := newGitServer(t, tr.root, testUser, testPass, false)
	return tr, gs, Options{URL: gs.URL + "/" + tr.name, Branch: "main",
		Auth: Auth{Username: testUser, Password: testPass}}
}
