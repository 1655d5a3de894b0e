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
