package gitrepo

import (
	"context"
	"errors"
	"testing"
)

// TestClusterIDIsAPathSegment: a cluster ID becomes a directory and a ref
// segment; anything that could leave .osbgit/clusters/<id>/ or make an
// invalid or ambiguous ref is refused when the repository is opened.
func TestClusterIDIsAPathSegment(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id string
		ok bool
	}{
		{"eu", true},
		{"prod-eu-1", true},
		{"a", true},
		{"..", false},
		{"../status", false},
		{"eu/../../x", false},
		{"eu/us", false},
		{"EU", false},
		{"-eu", false},
		{"eu.west", false},
		{"eu\n", false},
		{".osbgit", false},
		{"a234567890123456789012345678901234567890123456789012345678901234", false},
	}
	for _, tc := range cases {
		err := CheckClusterID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("CheckClusterID(%q) = %v, want ok %v", tc.id, err, tc.ok)
		}
		if tc.ok {
			continue
		}
		_, err = Open(context.Background(), Options{URL: t.TempDir(), Branch: "main", ClusterID: tc.id})
		if !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Open with cluster ID %q: %v, want ErrInvalidOptions", tc.id, err)
		}
	}
}

// TestClusterLayout pins the directories and refs of each deployment:
// without a cluster ID exactly the layout osbgit always had.
func TestClusterLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ id, dir, ref string }{
		{"", ".osbgit", "refs/osbgit/records/main"},
		{"eu", ".osbgit/clusters/eu", "refs/osbgit/clusters/eu/records/main"},
	} {
		if got := RecordsDir(tc.id); got != tc.dir {
			t.Errorf("RecordsDir(%q) = %q, want %q", tc.id, got, tc.dir)
		}
		if got := ClusterRecordsRef(tc.id, "main"); got != tc.ref {
			t.Errorf("ClusterRecordsRef(%q) = %q, want %q", tc.id, got, tc.ref)
		}
	}
}

// TestRetireLegacyOnce: two deployments with cluster IDs that fetched the
// same legacy records both try to take them over; the push that deletes
// the legacy records ref is a compare-and-swap, so the second fails and
// writes nothing, and the winner's status branch keeps only its own
// directory (the legacy copy gone).
func TestRetireLegacyOnce(t *testing.T) {
	t.Parallel()
	tr, _, o := httpRepo(t, baseFiles)
	ctx := testCtx(t)
	var log signLog
	legacy := mustOpen(t, o, WithCacheDir(t.TempDir()))
	mustFetch(t, legacy)
	if _, err := legacy.WriteStatus(ctx, ChangeSet{Message: "osbgit: status", Sealed: &Sealed{Sign: log.sign},
		Files: map[string][]byte{statusPath: []byte("externalID: 1\n")}}); err != nil {
		t.Fatal(err)
	}
	open := func(id string) (*Repo, FetchResult) {
		o := o
		o.ClusterID = id
		r := mustOpen(t, o, WithCacheDir(t.TempDir()))
		return r, mustFetch(t, r)
	}
	a, fa := open("a")
	b, fb := open("b")
	if fa.LegacyRecordsHead == "" || fa.LegacyRecordsHead != fb.LegacyRecordsHead || fa.RecordsHead != "" {
		t.Fatalf("fetch: %+v and %+v: want the legacy records head and no records of their own", fa, fb)
	}
	move := func(r *Repo, fr FetchResult) error {
		p := r.RecordsDir() + "/status/default/ServiceInstance/db.yaml"
		_, err := r.WriteIntent(ctx, ChangeSet{Message: "osbgit records move", Sealed: &Sealed{Sign: log.sign, Resign: true},
			RetireLegacy: fr.LegacyRecordsHead, Files: map[string][]byte{p: []byte("externalID: 1\n")}})
		return err
	}
	if err := move(a, fa); err != nil {
		t.Fatalf("first move: %v", err)
	}
	// b is up to date with the status branch but took the legacy head
	// before a's move: only the legacy records ref's compare-and-swap
	// stops it.
	mustFetch(t, b)
	if err := move(b, fb); !errors.Is(err, ErrConflict) {
		t.Fatalf("second move: %v, want ErrConflict", err)
	}
	refs := runGit(t, tr.bare, "for-each-ref", "--format=%(refname)", "refs/osbgit/")
	if refs != ClusterRecordsRef("a", "main") {
		t.Fatalf("records refs %q: want only a's", refs)
	}
	if got := runGit(t, tr.bare, "ls-tree", "-r", "--name-only", "main", StatusDir); got != ".osbgit/clusters/a/status/default/ServiceInstance/db.yaml" {
		t.Fatalf("status branch .osbgit/ holds %q", got)
	}
	// A write outside its own directory is refused.
	if _, err := a.WriteStatus(ctx, ChangeSet{Message: "x", Sealed: &Sealed{Sign: log.sign},
		Files: map[string][]byte{".osbgit/clusters/b/status/x.yaml": []byte("x")}}); !errors.Is(err, ErrOutsideStatusDir) {
		t.Fatalf("write into b's directory: %v, want ErrOutsideStatusDir", err)
	}
	if _, err := legacy.WriteStatus(ctx, ChangeSet{Message: "x", Files: map[string][]byte{".osbgit/clusters/a/status/x.yaml": []byte("x")}}); !errors.Is(err, ErrOutsideStatusDir) {
		t.Fatalf("legacy write into a's directory: %v, want ErrOutsideStatusDir", err)
	}
}
