package gittest

import (
	"slices"
	"strings"
	"testing"
)

// TestPushBuildsOnMain: Push commits on top of whatever main holds, commits
// made meanwhile by someone else included, with odd paths intact, and
// removals; Show, Files and the clone see the same tree git does.
func TestPushBuildsOnMain(t *testing.T) {
	t.Parallel()
	r := New(t, map[string]string{"a.yaml": "a: 1\n", "dir/b.yaml": "b: 1\n"})
	// Someone else pushes from their clone.
	clone := r.Clone()
	Git(t, clone, "rm", "-q", "dir/b.yaml")
	Git(t, clone, "commit", "-q", "-m", "theirs")
	Git(t, clone, "push", "-q", "origin", "HEAD:main")
	theirs := r.Head()

	odd := []string{"with space.yaml", `"quoted".yaml`, "back\\slash.yaml", "new\nline.yaml", "ünï.yaml"}
	files := map[string]string{"a.yaml": "a: 2\n", "empty.yaml": ""}
	for _, p := range odd {
		files["odd/"+p] = p + "\n"
	}
	ours := r.Push("ours", files, []string{"odd-to-remove.yaml"})
	if ours != r.Head() {
		t.Fatalf("Push returned %s, main is %s", ours, r.Head())
	}
	if parent := Git(t, r.Bare, "rev-parse", "main^"); parent != theirs {
		t.Fatalf("our commit's parent is %s, want their commit %s", parent, theirs)
	}
	r.Push("remove", nil, []string{"empty.yaml"})

	if got := r.Show("a.yaml"); got != "a: 2\n" {
		t.Errorf("a.yaml = %q", got)
	}
	if got := r.Show("dir/b.yaml"); got != "" {
		t.Errorf("their removal was undone: dir/b.yaml = %q", got)
	}
	want := []string{"a.yaml"}
	for _, p := range odd {
		want = append(want, "odd/"+p)
		if got := r.Show("odd/" + p); got != p+"\n" {
			t.Errorf("%q = %q", p, got)
		}
	}
	slices.Sort(want)
	if got := r.Files(""); !slices.Equal(got, want) {
		t.Errorf("Files = %q, want %q", got, want)
	}
	if got := r.Files("odd/"); len(got) != len(odd) {
		t.Errorf("Files(odd/) = %q", got)
	}
	// git itself reads the same tree.
	if n := strings.Count(Git(t, r.Bare, "ls-tree", "-r", "-z", "--name-only", "main"), "\x00"); n != len(want) {
		t.Errorf("git ls-tree lists %d files, want %d", n, len(want))
	}
	Git(t, r.Bare, "fsck", "--strict", "--no-progress")
	Git(t, clone, "pull", "-q", "origin", "main")
	if got := Git(t, clone, "rev-parse", "HEAD"); got != r.Head() {
		t.Errorf("the clone pulled %s, main is %s", got, r.Head())
	}
	if r.CommitCount() != 4 {
		t.Errorf("%d commits, want 4 (initial, theirs, ours, remove)", r.CommitCount())
	}
}

// TestPushBranchStartsFromMain: a pull request's branch starts at main's
// head and leaves main alone.
func TestPushBranchStartsFromMain(t *testing.T) {
	t.Parallel()
	r := New(t, map[string]string{"a.yaml": "a: 1\n"})
	main := r.Push("second", map[string]string{"b.yaml": "b: 1\n"}, nil)
	head := r.PushBranch("pr", "pr change", map[string]string{"a.yaml": "a: 2\n"}, []string{"b.yaml"})
	if got := Git(t, r.Bare, "rev-parse", "pr^"); got != main {
		t.Errorf("pr starts at %s, want main %s", got, main)
	}
	if r.Head() != main {
		t.Errorf("main moved to %s", r.Head())
	}
	if got := Git(t, r.Bare, "ls-tree", "-r", "--name-only", head); got != "a.yaml" {
		t.Errorf("pr holds %q", got)
	}
	// Again, from main's new head: the branch is made anew.
	main = r.Push("third", map[string]string{"c.yaml": "c: 1\n"}, nil)
	r.PushBranch("pr", "pr again", nil, nil)
	if got := Git(t, r.Bare, "rev-parse", "pr^"); got != main {
		t.Errorf("pr made anew starts at %s, want main %s", got, main)
	}
}
