// Package gittest builds real Git repositories for tests with the git CLI:
// a bare repository whose main branch tests change the way a person's push
// would, plus a working clone for tests that run git commands themselves.
// It is imported only by tests.
//
// Starting a process is most of an end-to-end test's cost, so the helpers
// start as few as they can: one per commit, none to read a file.
package gittest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
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

// HTTPBackend is the path of git's http-backend program (in git
// --exec-path), for tests that serve repositories over smart HTTP. git is
// asked once per test binary.
func HTTPBackend(t testing.TB) string {
	t.Helper()
	dir, err := execPath()
	if err != nil {
		t.Fatalf("git --exec-path: %v\n%s", err, dir)
	}
	return filepath.Join(dir, "git-http-backend")
}

var execPath = sync.OnceValues(func() (string, error) { return run("", "--exec-path") })

// run runs git in dir and returns its trimmed combined output.
func run(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Repo is a bare repository (Bare) with branch main, and a working clone
// of it for tests that run git commands as a person would (Clone).
type Repo struct {
	t    testing.TB
	Bare string

	root      string
	cloneOnce sync.Once
	clone     string
}

// QuietConfig keeps git's automatic housekeeping out of the tests' git
// repositories: every push into the bare repository (osbgit's too) and
// every commit would otherwise start a "git gc --auto" or "git
// maintenance run --auto" process, a tenth of the processes of an
// end-to-end test, for repositories far too small to need it. It also
// keeps git fast-import's pack as it is: below fastimport.unpackLimit
// objects (100 by default) fast-import starts "git unpack-objects" to
// turn it into loose objects, a second process for every Push.
const QuietConfig = "[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n[receive]\n\tautogc = false\n[fastimport]\n\tunpackLimit = 0\n"

// New creates the bare repository and commits files on main as its first
// commit.
func New(t testing.TB, files map[string]string) *Repo {
	t.Helper()
	root := t.TempDir()
	r := &Repo{t: t, Bare: filepath.Join(root, "repo.git"), root: root}
	// Made in process, with no template (what "git init --bare
	// --template= -b main" makes, without starting git): the sample hooks
	// are files that every copy of the repository would copy again.
	if _, err := gogit.PlainInitWithOptions(r.Bare, &gogit.PlainInitOptions{
		Bare: true, InitOptions: gogit.InitOptions{DefaultBranch: plumbing.Main}}); err != nil {
		t.Fatalf("init %s: %v", r.Bare, err)
	}
	AppendConfig(t, r.Bare, QuietConfig)
	if _, out, err := r.fastImport("refs/heads/main", "", false, "initial manifests", files, nil); err != nil {
		t.Fatalf("git fast-import to main: %v\n%s", err, out)
	}
	return r
}

// AppendConfig appends text (git config file syntax) to the config of the
// repository whose git directory is gitDir: no git process to start.
func AppendConfig(t testing.TB, gitDir, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(gitDir, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// For is the same bare repository for test t, whose failures then fail
// t: for a subtest working in its parent's repository (one the parent
// restores at the same path for each subtest). The working clone is not
// shared.
func (r *Repo) For(t testing.TB) *Repo {
	return &Repo{t: t, Bare: r.Bare, root: r.root}
}

// Clone is a working clone of the repository, made from the bare
// repository on its first use (at main's head then) and afterwards left
// to the test: Push and PushBranch do not go through it, so a test that
// works in it after a push pulls first, as a person would.
func (r *Repo) Clone() string {
	r.t.Helper()
	r.cloneOnce.Do(func() {
		r.clone = filepath.Join(r.root, "clone")
		Git(r.t, r.root, "clone", "-q", r.Bare, r.clone)
		AppendConfig(r.t, filepath.Join(r.clone, ".git"), QuietConfig)
	})
	return r.clone
}

// Push commits files (written, or replaced) and the removal of paths on
// top of main's head and moves main to that commit, as a person's push
// would, and returns the commit. Main moving meanwhile (a concurrent
// osbgit push) is not overwritten: the change is applied again on the new
// head, as a person would rebase and push again.
//
// The commit is made with git fast-import in the bare repository, one
// process where a clone's pull, add, commit and push take some twenty.
func (r *Repo) Push(msg string, files map[string]string, remove []string) string {
	r.t.Helper()
	for attempt := 1; ; attempt++ {
		commit, out, err := r.fastImport("refs/heads/main", "refs/heads/main^0", false, msg, files, remove)
		if err == nil {
			return commit
		}
		if attempt == 5 || !strings.Contains(out, "does not contain") && !strings.Contains(out, "cannot lock ref") {
			r.t.Fatalf("git fast-import to main (attempt %d): %v\n%s", attempt, err, out)
		}
	}
}

// PushBranch commits files and removals on branch, made anew from main's
// head (a pull request's branch, force-pushed), and returns its head.
func (r *Repo) PushBranch(branch, msg string, files map[string]string, remove []string) string {
	r.t.Helper()
	commit, out, err := r.fastImport("refs/heads/"+branch, "refs/heads/main^0", true, msg, files, remove)
	if err != nil {
		r.t.Fatalf("git fast-import to %s: %v\n%s", branch, err, out)
	}
	return commit
}

// fastImport makes one commit of files and removals on top of from (a
// root commit when from is "") and moves ref to it, only as a fast-forward unless force,
// with a compare-and-swap against the value it read. It returns the new
// commit, or git's output and the error.
func (r *Repo) fastImport(ref, from string, force bool, msg string, files map[string]string, remove []string) (commit, out string, err error) {
	marks, err := os.CreateTemp(r.root, "marks-*")
	if err != nil {
		r.t.Fatal(err)
	}
	marks.Close()
	defer os.Remove(marks.Name())

	var in bytes.Buffer
	fmt.Fprintf(&in, "commit %s\nmark :1\n", ref)
	fmt.Fprintf(&in, "author Test Author <author@example.com> now\ncommitter Test Author <author@example.com> now\n")
	fmt.Fprintf(&in, "data %d\n%s\n", len(msg), msg)
	if from != "" {
		fmt.Fprintf(&in, "from %s\n", from)
	}
	for _, p := range remove {
		fmt.Fprintf(&in, "D %s\n", fastImportPath(p))
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(&in, "M 100644 inline %s\ndata %d\n%s\n", fastImportPath(p), len(files[p]), files[p])
	}
	args := []string{"fast-import", "--quiet", "--date-format=now", "--export-marks=" + marks.Name()}
	if force {
		args = append(args, "--force")
	}
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env, cmd.Stdin = r.Bare, Env(), &in
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", string(b), err
	}
	m, err := os.ReadFile(marks.Name())
	if err != nil {
		r.t.Fatal(err)
	}
	commit, ok := strings.CutPrefix(strings.TrimSpace(string(m)), ":1 ")
	if !ok {
		r.t.Fatalf("git fast-import wrote marks %q", m)
	}
	return commit, "", nil
}

// fastImportPath quotes p for a fast-import command when it must be
// (it starts with a quote or holds a newline or backslash-sensitive byte).
func fastImportPath(p string) string {
	if !strings.HasPrefix(p, `"`) && !strings.ContainsAny(p, "\n\\") {
		return p
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Write writes files into the working clone without committing
// (uncommitted edits).
func (r *Repo) Write(files map[string]string) {
	r.t.Helper()
	clone := r.Clone()
	for p, c := range files {
		full := filepath.Join(clone, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// Head is main's head in the bare repository.
func (r *Repo) Head() string { return r.Ref("refs/heads/main") }

// Ref is the commit ref (a full name, "refs/heads/main") points to in
// the bare repository, read in process: tests read heads by the hundred.
// The test fails when there is no such ref.
func (r *Repo) Ref(name string) string {
	r.t.Helper()
	repo, err := gogit.PlainOpen(r.Bare)
	if err != nil {
		r.t.Fatalf("open %s: %v", r.Bare, err)
	}
	ref, err := repo.Reference(plumbing.ReferenceName(name), true)
	if err != nil {
		r.t.Fatalf("%s of %s: %v", name, r.Bare, err)
	}
	return ref.Hash().String()
}

// CommitCount is the number of commits on main.
func (r *Repo) CommitCount() int {
	n := 0
	fmt.Sscan(Git(r.t, r.Bare, "rev-list", "--count", "main"), &n)
	return n
}

// Show returns a file at main, or "" when absent. Tests read records by
// the hundred, so Show and Files read the bare repository in process
// (with go-git) instead of starting a git process per call; names go-git
// refuses (control characters) are read with git.
func (r *Repo) Show(path string) string {
	r.t.Helper()
	if strings.ContainsFunc(path, unicode.IsControl) {
		out, err := r.git("show", "main:"+path)
		if err != nil {
			return ""
		}
		return out
	}
	tree := r.mainTree()
	if tree == nil {
		return ""
	}
	f, err := tree.File(path)
	if err != nil {
		return ""
	}
	s, err := f.Contents()
	if err != nil {
		r.t.Fatalf("read %s at main: %v", path, err)
	}
	return s
}

// Files lists the files under prefix (a directory, or a file) at main,
// sorted.
func (r *Repo) Files(prefix string) []string {
	r.t.Helper()
	tree := r.mainTree()
	if tree == nil {
		return nil
	}
	prefix = strings.TrimSuffix(prefix, "/")
	var fs []string
	err := tree.Files().ForEach(func(f *object.File) error {
		if prefix == "" || f.Name == prefix || strings.HasPrefix(f.Name, prefix+"/") {
			fs = append(fs, f.Name)
		}
		return nil
	})
	if err != nil {
		// A name go-git refuses: git lists it.
		args := []string{"ls-tree", "-r", "-z", "--name-only", "main"}
		if prefix != "" {
			args = append(args, "--", prefix)
		}
		out, err := r.git(args...)
		if err != nil {
			r.t.Fatalf("git ls-tree main %s: %v\n%s", prefix, err, out)
		}
		fs = strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
		if out == "" {
			fs = nil
		}
	}
	sort.Strings(fs)
	return fs
}

// git runs git in the bare repository and returns its standard output
// untrimmed (file contents keep their last newline).
func (r *Repo) git(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Bare
	cmd.Env = Env()
	out, err := cmd.Output()
	return string(out), err
}

// mainTree is the tree of main's head, nil when there is no main.
func (r *Repo) mainTree() *object.Tree {
	r.t.Helper()
	repo, err := gogit.PlainOpen(r.Bare)
	if err != nil {
		r.t.Fatalf("open %s: %v", r.Bare, err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName("main"), true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil
	}
	if err != nil {
		r.t.Fatalf("main of %s: %v", r.Bare, err)
	}
	commit, err := repo.CommitObject(ref.Hash())
	if err != nil {
		r.t.Fatalf("main of %s: %v", r.Bare, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		r.t.Fatalf("main of %s: %v", r.Bare, err)
	}
	return tree
}

// History is the whole history of every branch with patches, for searching
// it for values that must never be committed.
func (r *Repo) History() string {
	return Git(r.t, r.Bare, "log", "-p", "--all", "--format=%H %an <%ae> %s%n%b")
}
