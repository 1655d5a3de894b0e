package gitrepo

import (
	"errors"
	"strings"
	"testing"
)

// signWith is a Sealed.Sign that records what it was asked to sign.
type signLog struct{ bases, trees []string }

func (l *signLog) sign(base RecordsBase, tree string) (string, error) {
	l.bases = append(l.bases, base.Commit)
	l.trees = append(l.trees, tree)
	return "osbgit: records\n\nSeal: " + tree + "\n", nil
}

// TestSealedWrite: a sealed write moves the records ref and the status
// branch in one push; the branch's .osbgit/ is the records tree, so a
// human's edit there is replaced; a records ref moved by another writer
// makes WriteStatus build on theirs, and WriteIntent report a conflict
// naming the records.
func TestSealedWrite(t *testing.T) {
	t.Parallel()
	tr, _, o := httpRepo(t, baseFiles)
	r := mustOpen(t, o, WithCacheDir(t.TempDir()))
	mustFetch(t, r)
	ctx := testCtx(t)
	var log signLog

	res, err := r.WriteStatus(ctx, ChangeSet{Message: "osbgit: status", Sealed: &Sealed{Sign: log.sign},
		Files: map[string][]byte{statusPath: []byte("externalID: 1\n")}})
	if err != nil {
		t.Fatal(err)
	}
	recRef := RecordsRef("main")
	if res.RecordsCommit != runGit(t, tr.bare, "rev-parse", recRef) || res.Commit != tr.head("main") {
		t.Fatalf("result %+v; remote records %s, main %s", res, runGit(t, tr.bare, "rev-parse", recRef), tr.head("main"))
	}
	if got := runGit(t, tr.bare, "ls-tree", "--name-only", recRef); got != StatusDir {
		t.Errorf("records commit holds %q, want only %s", got, StatusDir)
	}
	recTree := runGit(t, tr.bare, "rev-parse", recRef+":"+StatusDir)
	if got := runGit(t, tr.bare, "rev-parse", "main:"+StatusDir); got != recTree {
		t.Errorf("branch .osbgit %s, records .osbgit %s", got, recTree)
	}
	if len(log.trees) != 1 || log.trees[0] != recTree || log.bases[0] != "" {
		t.Errorf("signed %v on %v, want %s on none", log.trees, log.bases, recTree)
	}
	if msg := runGit(t, tr.bare, "log", "-1", "--format=%B", recRef); !strings.Contains(msg, "Seal: "+recTree) {
		t.Errorf("records commit message %q", msg)
	}
	fr := mustFetch(t, r)
	if fr.RecordsHead != res.RecordsCommit {
		t.Errorf("fetch: records head %q, want %s", fr.RecordsHead, res.RecordsCommit)
	}

	// A human edits the record on the branch and adds one: the next
	// sealed write (even with no edits of its own) puts the records
	// tree back.
	tr.commit("edit a record", map[string]string{statusPath: "externalID: 666\n", ".osbgit/status/x.yaml": "forged\n"})
	mustFetch(t, r)
	res2, err := r.WriteStatus(ctx, ChangeSet{Message: "osbgit: restore", Sealed: &Sealed{Base: res.RecordsCommit, Sign: log.sign}})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Changed || res2.RecordsCommit != res.RecordsCommit || len(log.trees) != 1 {
		t.Errorf("restore: %+v, %d signatures; want a branch commit only", res2, len(log.trees))
	}
	if got := runGit(t, tr.bare, "rev-parse", "main:"+StatusDir); got != recTree {
		t.Errorf("branch .osbgit %s after restore, want %s", got, recTree)
	}

	// Another writer moves the records ref: WriteIntent reports it...
	other := mustOpen(t, o, WithCacheDir(t.TempDir()))
	ofr := mustFetch(t, other)
	ores, err := other.WriteStatus(ctx, ChangeSet{Message: "other", Sealed: &Sealed{Base: ofr.RecordsHead, Sign: log.sign},
		Files: map[string][]byte{".osbgit/status/other.yaml": []byte("theirs\n")}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.WriteIntent(ctx, ChangeSet{Message: "intent", Sealed: &Sealed{Base: res.RecordsCommit, Sign: log.sign},
		Files: map[string][]byte{".osbgit/status/mine.yaml": []byte("mine\n")}})
	var ce *ConflictError
	if !errors.As(err, &ce) || !ce.Records {
		t.Fatalf("intent on a moved records ref: %v, want a records conflict", err)
	}
	// ...and WriteStatus builds on theirs, keeping their record.
	res3, err := r.WriteStatus(ctx, ChangeSet{Message: "status", Sealed: &Sealed{Base: res.RecordsCommit, Sign: log.sign},
		Files: map[string][]byte{".osbgit/status/mine.yaml": []byte("mine\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if last := log.bases[len(log.bases)-1]; last != ores.RecordsCommit {
		t.Errorf("signed on %s, want their records commit %s", last, ores.RecordsCommit)
	}
	for p, want := range map[string]string{".osbgit/status/other.yaml": "theirs", ".osbgit/status/mine.yaml": "mine"} {
		if got := tr.show(RecordsRef("main"), p); got != want {
			t.Errorf("records %s = %q, want %q", p, got, want)
		}
		if got := tr.show("main", p); got != want {
			t.Errorf("branch %s = %q, want %q", p, got, want)
		}
	}
	if res3.RecordsCommit != runGit(t, tr.bare, "rev-parse", recRef) {
		t.Errorf("records head %s, want %s", runGit(t, tr.bare, "rev-parse", recRef), res3.RecordsCommit)
	}
	runGit(t, tr.bare, "fsck", "--strict", "--no-progress")
}
