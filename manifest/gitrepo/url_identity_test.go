package gitrepo

import "testing"

func TestIdentity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"https://github.com/org/repo.git", "github.com/org/repo"},
		{"https://user:xxxxx@GitHub.com/org/repo", "github.com/org/repo"},
		{"http://xxxxx@127.0.0.1:8080/repo.git/", "127.0.0.1:8080/repo"},
		{"ssh://git@github.com/org/repo.git", "github.com/org/repo"},
		{"git@github.com:org/repo.git", "github.com/org/repo"},
		{"https://host/org/repo?token=xxxxx", "host/org/repo"},
		{"file:///srv/git/repo.git", "/srv/git/repo.git"},
		{"/srv/git/repo.git/", "/srv/git/repo.git"},
	} {
		if got := Identity(tc.in); got != tc.want {
			t.Errorf("Identity(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
