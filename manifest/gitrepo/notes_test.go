package gitrepo

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// noteText is a Note.Text naming the status commit, as osbgit's does.
func noteText(text string) func(string) string {
	return func(status string) string {
		if status == "" {
			status = "none"
		}
		return text + "\nStatus commit: " + status + "\n"
	}
}

// otherNoteWriter is another writer of refs/notes/osbgit (another cluster,
// a person): a clone of the bare repository that adds or appends a note with
// the git CLI and pushes it straight into the bare repository.
func otherNoteWriter(t *testing.T, tr *testRepo) func(commit, text string) {
	dir := filepath.Join(t.TempDir(), "other")
	runGit(t, tr.root, "clone", "-q", tr.bare, dir)
	return func(commit, text string) {
		// Fails while there are no notes yet.
		_, _ = gitErr(dir, "fetch", "-q", "origin", "+"+NotesRef+":"+NotesRef)
		runGit(t, dir, "fetch", "-q", "origin")
		runGit(t, dir, "notes", "--ref", "osbgit", "append", "-m", text, commit)
		runGit(t, dir, "push", "-q", "origin", NotesRef)
	}
}

// showNote is `git notes --ref osbgit show commit` in the bare repository.
func showNote(t *testing.T, tr *testRepo, commit string) string {
	t.Helper()
	return runGit(t, tr.bare, "notes", "--ref", "osbgit", "show", commit)
}

// TestStatusWriteWithNote: the note rides in the status commit's push (one
// receive-pack), names the status commit, and git reads it; with another
// writer's note pushed between our fetch and our push (on another commit,
// or on the same one) both notes survive, nothing is force-pushed, and the
// status commit still lands.
func TestStatusWriteWithNote(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// theirs is the commit the concurrent writer annotates: "" for
		// none, "same" for ours, "other" for the initial commit.
		theirs string
		sealed bool
	}{
		{name: "alone"},
		{name: "alone sealed", sealed: true},
		{name: "their note on another commit", theirs: "other"},
		{name: "their note on the same commit", theirs: "same"},
		{name: "their note on the same commit sealed", theirs: "same", sealed: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, gs, o := httpRepo(t, baseFiles)
			initial := tr.head("main")
			manifests := tr.commit("change manifests", map[string]string{"apps/x.yaml": "kind: X\n"})
			r := mustOpen(t, o, WithCacheDir(t.TempDir()))
			mustFetch(t, r)
			other := otherNoteWriter(t, tr)
			if tt.theirs != "" {
				// An older note of theirs, fetched before our write.
				other(initial, "theirs: first")
			}
			target := map[string]string{"same": manifests, "other": initial}[tt.theirs]
			var once sync.Once
			gs.mu.Lock()
			gs.before = func(req *http.Request) {
				if target != "" && req.URL.Query().Get("service") == "git-receive-pack" {
					once.Do(func() { other(target, "theirs: between our fetch and our push") })
				}
			}
			gs.mu.Unlock()
			gs.requests()

			cs := ChangeSet{Message: "osbgit: status", Files: map[string][]byte{statusPath: []byte("externalID: 1\n")},
				Note: &Note{Commit: manifests, Text: noteText("osbgit: 1 created")}}
			var log signLog
			if tt.sealed {
				cs.Sealed = &Sealed{Sign: log.sign}
			}
			res, err := r.WriteStatus(testCtx(t), cs)
			if err != nil || res.NoteErr != nil {
				t.Fatalf("WriteStatus: %v, note: %v", err, res.NoteErr)
			}
			if res.Commit != tr.head("main") || res.NoteCommit != runGit(t, tr.bare, "rev-parse", NotesRef) {
				t.Fatalf("result %+v; remote main %s, notes %s", res, tr.head("main"), runGit(t, tr.bare, "rev-parse", NotesRef))
			}
			ours := "osbgit: 1 created\nStatus commit: " + res.Commit
			got := showNote(t, tr, manifests)
			switch tt.theirs {
			case "":
				if got != ours {
					t.Errorf("note = %q, want %q", got, ours)
				}
				if n := countReq(gs.requests(), "POST /repo.git/git-receive-pack"); n != 1 {
					t.Errorf("%d pushes, want the note in the status commit's push", n)
				}
			case "same":
				if n := countReq(gs.requests(), "POST /repo.git/git-receive-pack"); n != 2 {
					t.Errorf("%d pushes, want 2: the status commit once their note moved the ref, then ours", n)
				}
				if want := "theirs: between our fetch and our push\n\n" + ours; got != want {
					t.Errorf("note = %q, want theirs then ours:\n%s", got, want)
				}
			case "other":
				if got != ours {
					t.Errorf("note = %q, want %q", got, ours)
				}
				if want := "theirs: first\n\ntheirs: between our fetch and our push"; showNote(t, tr, initial) != want {
					t.Errorf("their note = %q, want %q", showNote(t, tr, initial), want)
				}
			}
			if tt.theirs != "" && !strings.Contains(runGit(t, tr.bare, "log", "--format=%s", NotesRef), "Notes added by 'git notes append'") {
				t.Errorf("their notes commit is not in the notes history (force-pushed?)")
			}
			runGit(t, tr.bare, "fsck", "--strict", "--no-progress")
		})
	}
}

// TestWriteNoteAlone: a note with no status commit; a concurrent writer
// makes the first push fail, the retry builds on theirs; writing the same
// text again changes nothing.
func TestWriteNoteAlone(t *testing.T) {
	t.Parallel()
	tr, gs, o := httpRepo(t, baseFiles)
	head := tr.head("main")
	r := mustOpen(t, o, WithCacheDir(t.TempDir()))
	mustFetch(t, r)
	other := otherNoteWriter(t, tr)
	var once sync.Once
	gs.mu.Lock()
	gs.before = func(req *http.Request) {
		if req.URL.Query().Get("service") == "git-receive-pack" {
			once.Do(func() { other(head, "theirs") })
		}
	}
	gs.mu.Unlock()
	n := Note{Commit: head, Text: noteText("osbgit: no changes")}
	h, err := r.WriteNote(testCtx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	if want := "theirs\n\nosbgit: no changes\nStatus commit: none"; showNote(t, tr, head) != want {
		t.Errorf("note = %q, want %q", showNote(t, tr, head), want)
	}
	gs.requests()
	again, err := r.WriteNote(testCtx(t), n)
	if err != nil || again != h {
		t.Errorf("same note again: %s, %v; want %s unchanged", again, err, h)
	}
	if c := countReq(gs.requests(), "POST /repo.git/git-receive-pack"); c != 0 {
		t.Errorf("same note again pushed %d times", c)
	}
}

// TestNoteFanOut: notes git fanned out into directories ("ab/cdef…") are
// found and appended to in place, a new note goes under the existing
// fan-out directory of its commit, and entries that are not notes are
// kept.
func TestNoteFanOut(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	first := tr.head("main")
	second := tr.commit("second", map[string]string{"apps/y.yaml": "kind: Y\n"})
	// Theirs on first at first[:2]/first[2:], a README beside it, and an
	// empty first-level directory of second's prefix.
	git := func(stdin string, args ...string) string {
		t.Helper()
		out, err := gitStdin(tr.bare, stdin, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	blob := git("theirs on first\n", "hash-object", "-w", "--stdin")
	readme := git("not a note\n", "hash-object", "-w", "--stdin")
	inner := git("100644 blob "+blob+"\t"+first[2:]+"\n", "mktree")
	entries := "100644 blob " + readme + "\tREADME\n040000 tree " + inner + "\t" + first[:2] + "\n"
	if second[:2] != first[:2] {
		other := git("100644 blob "+readme+"\tREADME\n", "mktree")
		entries += "040000 tree " + other + "\t" + second[:2] + "\n"
	}
	root := git(entries, "mktree")
	commit := git("", "commit-tree", root, "-m", "fanned out")
	runGit(t, tr.bare, "update-ref", NotesRef, commit)
	if got := showNote(t, tr, first); got != "theirs on first" {
		t.Fatalf("git reads the fanned-out note as %q", got)
	}

	r := mustOpen(t, Options{URL: tr.bare, Branch: "main"})
	mustFetch(t, r)
	for _, c := range []string{first, second} {
		if _, err := r.WriteNote(testCtx(t), Note{Commit: c, Text: noteText("ours")}); err != nil {
			t.Fatal(err)
		}
	}
	if want := "theirs on first\n\nours\nStatus commit: none"; showNote(t, tr, first) != want {
		t.Errorf("first's note = %q, want %q", showNote(t, tr, first), want)
	}
	if want := "ours\nStatus commit: none"; showNote(t, tr, second) != want {
		t.Errorf("second's note = %q, want %q", showNote(t, tr, second), want)
	}
	files := runGit(t, tr.bare, "ls-tree", "-r", "--name-only", NotesRef)
	for _, want := range []string{"README", first[:2] + "/" + first[2:], second[:2] + "/" + second[2:]} {
		if !strings.Contains("\n"+files+"\n", "\n"+want+"\n") {
			t.Errorf("notes tree lacks %s:\n%s", want, files)
		}
	}
	if strings.Contains(files, first+"\n") || strings.HasSuffix(files, first) {
		t.Errorf("first's note written twice (fanned out and at the root):\n%s", files)
	}
	runGit(t, tr.bare, "fsck", "--strict", "--no-progress")
}

// TestNoteRefusesWhatItCannotAppendTo: a note that is a directory, or a
// notes ref that is not a commit, is an error, and nothing is overwritten.
func TestNoteRefusesWhatItCannotAppendTo(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	head := tr.head("main")
	blob, err := gitStdin(tr.bare, "x\n", "hash-object", "-w", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := gitStdin(tr.bare, "100644 blob "+blob+"\tx\n", "mktree")
	root, _ := gitStdin(tr.bare, "040000 tree "+dir+"\t"+head+"\n", "mktree")
	commit, _ := gitStdin(tr.bare, "", "commit-tree", root, "-m", "odd")
	for name, ref := range map[string]string{"note is a directory": commit, "ref is a blob": blob} {
		t.Run(name, func(t *testing.T) {
			runGit(t, tr.bare, "update-ref", NotesRef, ref)
			r := mustOpen(t, Options{URL: tr.bare, Branch: "main"})
			mustFetch(t, r)
			if _, err := r.WriteNote(testCtx(t), Note{Commit: head, Text: noteText("ours")}); err == nil {
				t.Fatal("WriteNote succeeded")
			}
			if got := runGit(t, tr.bare, "rev-parse", NotesRef); got != ref {
				t.Errorf("notes ref moved to %s", got)
			}
		})
	}
}

// gitStdin runs git in dir with stdin.
func gitStdin(dir, stdin string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, gitEnv()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// TestStatusWriteWhenTheServerRefusesNotes: an update hook that refuses
// refs/notes/* (a server policy) costs the note, never the status commit;
// a pre-receive hook refusing the whole push fails the write as it would
// without a note (it is not retried without the note).
func TestStatusWriteWhenTheServerRefusesNotes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, hook, script string
		wantErr            bool
	}{
		{name: "notes refused", hook: "update", script: "#!/bin/sh\ncase \"$1\" in refs/notes/*) echo 'no notes here' >&2; exit 1;; esac\nexit 0\n"},
		{name: "push refused", hook: "pre-receive", script: "#!/bin/sh\necho 'frozen' >&2\nexit 1\n", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, gs, o := httpRepo(t, baseFiles)
			manifests := tr.commit("change manifests", map[string]string{"apps/x.yaml": "kind: X\n"})
			hook := filepath.Join(tr.bare, "hooks", tt.hook)
			if err := os.MkdirAll(filepath.Dir(hook), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(hook, []byte(tt.script), 0o755); err != nil {
				t.Fatal(err)
			}
			r := mustOpen(t, o, WithCacheDir(t.TempDir()))
			mustFetch(t, r)
			gs.requests()
			res, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "osbgit: status", Files: map[string][]byte{statusPath: []byte("externalID: 1\n")},
				Note: &Note{Commit: manifests, Text: noteText("osbgit: 1 created")}})
			pushes := countReq(gs.requests(), "POST /repo.git/git-receive-pack")
			if tt.wantErr {
				if err == nil || pushes != 1 {
					t.Fatalf("WriteStatus = %+v, %v after %d pushes; want the refusal, one push", res, err, pushes)
				}
				return
			}
			if err != nil || res.Commit != tr.head("main") || res.NoteErr == nil {
				t.Fatalf("WriteStatus = %+v, %v; want the status commit on main and a note error", res, err)
			}
			if out, _ := gitErr(tr.bare, "rev-parse", "--verify", "-q", NotesRef); strings.TrimSpace(out) != "" {
				t.Errorf("the notes ref exists after the server refused it: %s", out)
			}
		})
	}
}
