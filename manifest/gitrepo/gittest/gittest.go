// Package gittest builds real Git repositories for tests with the git CLI:
// a bare repository plus a working clone through which changes are pushed
// the way a person would push them. It is imported only by tests.
package gittest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Env is the environment of git CLI calls: a fixed identity, no system or
// user configuration, no prompts.
func Env() []string {
	return append(os.Environ(),
		"GIT_AUTHOR_NAME=Test Author", "GIT_AUTHOR_EMAIL=author@example.com",
		"GIT_COMMITTER_NAME=Test Author", "GIT_COMMITTER_EMAIL=author@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
}

// Git runs git in dir and fails the test on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := run(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// run runs git in dir and returns its trimmed combined output.
func run(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Repo is a bare repository (Bare) with branch main and a working clone
// (Clone).
type Repo struct {
	t     testing.TB
	Bare  string
	Clone string
}

// New creates the bare repository and pushes files as its first commit.
func New(t testing.TB, files map[string]string) *Repo {
	t.Helper()
	root := t.TempDir()
	r := &Repo{t: t, Bare: filepath.Join(root, "repo.git"), Clone: filepath.Join(root, "clone")}
	Git(t, root, "init", "-q", "--bare", "-b", "main", r.Bare)
	Git(t, root, "clone", "-q", r.Bare, r.Clone)
	Git(t, r.Clone, "checkout", "-q", "-b", "main")
	r.Push("initial manifests", files, nil)
	return r
}

// Push writes files and removes paths in the clone, commits and pushes to
// main (rebasing on the remote first, so commits osbgit pushed are kept), and
// returns the new head. A push that a concurrent osbgit push beat is rebased
// and retried, as a person would.
func (r *Repo) Push(msg string, files map[string]string, remove []string) string {
	r.t.Helper()
	remoteHasMain := Git(r.t, r.Clone, "ls-remote", "origin", "main") != ""
	if remoteHasMain {
		Git(r.t, r.Clone, "pull", "-q", "--rebase", "origin", "main")
	}
	r.Write(files)
	for _, p := range remove {
		Git(r.t, r.Clone, "rm", "-q", p)
	}
	Git(r.t, r.Clone, "add", "-A")
	Git(r.t, r.Clone, "commit", "-q", "--allow-empty", "-m", msg)
	for attempt := 1; ; attempt++ {
		out, err := run(r.Clone, "push", "-q", "origin", "HEAD:main")
		if err == nil {
			break
		}
		if attempt == 5 || !remoteHasMain || !strings.Contains(out, "rejected") {
			r.t.Fatalf("git push origin HEAD:main (attempt %d): %v\n%s", attempt, err, out)
		}
		Git(r.t, r.Clone, "pull", "-q", "--rebase", "origin", "main")
	}
	return Git(r.t, r.Clone, "rev-parse", "HEAD")
}

// PushBranch commits files and removals on a new branch made from main's
// head (a pull request's branch), pushes it and returns its head; the
// clone is back on main afterwards.
func (r *Repo) PushBranch(branch, msg string, files map[string]string, remove []string) string {
	r.t.Helper()
	Git(r.t, r.Clone, "pull", "-q", "--rebase", "origin", "main")
	Git(r.t, r.Clone, "checkout", "-q", "-B", branch)
	r.Write(files)
	for _, p := range remove {
		Git(r.t, r.Clone, "rm", "-q", p)
	}
	Git(r.t, r.Clone, "add", "-A")
	Git(r.t, r.Clone, "commit", "-q", "--allow-empty", "-m", msg)
	Git(r.t, r.Clone, "push", "-q", "-f", "origin", "HEAD:"+branch)
	head := Git(r.t, r.Clone, "rev-parse", "HEAD")
	Git(r.t, r.Clone, "checkout", "-q", "main")
	return head
}

// Write writes files into the clone without committing (uncommitted edits).
func (r *Repo) Write(files map[string]string) {
	r.t.Helper()
	for p, c := range files {
		full := filepath.Join(r.Clone, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// Head is main's head in the bare repository.
func (r *Repo) Head() string { return Git(r.t, r.Bare, "rev-parse", "main") }

// CommitCount is the number of commits on main.
func (r *Repo) CommitCount() int {
	n := 0
	fmt.Sscan(Git(r.t, r.Bare, "rev-list", "--count", "main"), &n)
	return n
}

// Show returns a file at main, or "" when absent.
func (r *Repo) Show(path string) string {
	cmd := exec.Command("git", "show", "main:"+path)
	cmd.Dir = r.Bare
	cmd.Env = Env()
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// Files lists the files under prefix at main, sorted.
func (r *Repo) Files(prefix string) []string {
	out := Git(r.t, r.Bare, "ls-tree", "-r", "--name-only", "main", prefix)
	if out == "" {
		return nil
	}
	fs := strings.Split(out, "\n")
	sort.Strings(fs)
	return fs
}

// History is the whole history of every branch with patches, for searching
// it for values that must never be committed.
func (r *Repo) History() string {
	return Git(r.t, r.Bare, "log", "-p", "--all", "--format=%H %an <%ae> %s%n%b")
}
