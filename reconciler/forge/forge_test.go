package forge

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	testToken = "tok-3xYz-secret"
	testSHA   = "0123456789abcdef0123456789abcdef01234567"
)

// call is one request the fake forge received.
type call struct {
	method, rawPath string
	header          http.Header
	body            map[string]string
}

// fakeForge records requests and answers with status.
func fakeForge(t *testing.T, status int, answer string) (*httptest.Server, *[]call) {
	t.Helper()
	var calls []call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c := call{method: r.Method, rawPath: r.URL.EscapedPath(), header: r.Header.Clone()}
		if err := json.Unmarshal(b, &c.body); err != nil {
			t.Errorf("body %q is not a JSON object of strings: %v", b, err)
		}
		calls = append(calls, c)
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// TestSetStatus: each forge gets its method, path, auth header and body.
func TestSetStatus(t *testing.T) {
	for _, tt := range []struct {
		kind       Kind
		repo       string
		state      State
		wantPath   string
		authHeader string
		authValue  string
		wantBody   map[string]string
	}{
		{GitHub, "https://github.com/acme/platform.git", Pending, "/api/v3/repos/acme/platform/statuses/" + testSHA,
			"Authorization", "Bearer " + testToken, map[string]string{"state": "pending", "context": "osbgit/prod", "description": "reconciling"}},
		{GitHub, "git@github.com:acme/platform.git", Failure, "/api/v3/repos/acme/platform/statuses/" + testSHA,
			"Authorization", "Bearer " + testToken, map[string]string{"state": "failure", "context": "osbgit/prod", "description": "reconciling"}},
		{GitLab, "https://gitlab.example.com/group/sub/platform.git", Failure, "/api/v3/projects/group%2Fsub%2Fplatform/statuses/" + testSHA,
			"PRIVATE-TOKEN", testToken, map[string]string{"state": "failed", "name": "osbgit/prod", "description": "reconciling"}},
		{GitLab, "ssh://git@gitlab.example.com:2222/group/platform", Success, "/api/v3/projects/group%2Fplatform/statuses/" + testSHA,
			"PRIVATE-TOKEN", testToken, map[string]string{"state": "success", "name": "osbgit/prod", "description": "reconciling"}},
		{Gitea, "https://gitea.example.com/acme/platform", Success, "/api/v3/repos/acme/platform/statuses/" + testSHA,
			"Authorization", "token " + testToken, map[string]string{"state": "success", "context": "osbgit/prod", "description": "reconciling"}},
	} {
		t.Run(string(tt.kind)+" "+string(tt.state), func(t *testing.T) {
			srv, calls := fakeForge(t, http.StatusCreated, `{"id":1}`)
			c, err := New(Options{Kind: tt.kind, BaseURL: srv.URL + "/api/v3/", RepoURL: tt.repo, Token: testToken, Context: "osbgit/prod"})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.SetStatus(context.Background(), testSHA, tt.state, "reconciling"); err != nil {
				t.Fatal(err)
			}
			if len(*calls) != 1 {
				t.Fatalf("%d calls, want 1", len(*calls))
			}
			got := (*calls)[0]
			if got.method != http.MethodPost || got.rawPath != tt.wantPath {
				t.Errorf("%s %s, want POST %s", got.method, got.rawPath, tt.wantPath)
			}
			if v := got.header.Get(tt.authHeader); v != tt.authValue {
				t.Errorf("%s: %q, want %q", tt.authHeader, v, tt.authValue)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if len(got.body) != len(tt.wantBody) {
				t.Errorf("body %v, want %v", got.body, tt.wantBody)
			}
			for k, v := range tt.wantBody {
				if got.body[k] != v {
					t.Errorf("body %s = %q, want %q", k, got.body[k], v)
				}
			}
		})
	}
}

// TestSetStatusErrorsNeverShowTheToken: a forge's refusal (which may echo
// the token) and an unreachable forge make errors without the token.
func TestSetStatusErrorsNeverShowTheToken(t *testing.T) {
	srv, _ := fakeForge(t, http.StatusUnauthorized, `{"message":"Bad credentials: `+testToken+`"}`)
	c, err := New(Options{Kind: GitHub, BaseURL: srv.URL, RepoURL: "https://github.com/acme/platform", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	err = c.SetStatus(context.Background(), testSHA, Success, "ok")
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), testToken) {
		t.Errorf("refused: %v; want the 401 without the token", err)
	}
	srv.Close()
	err = c.SetStatus(context.Background(), testSHA, Success, "ok")
	if err == nil || strings.Contains(err.Error(), testToken) {
		t.Errorf("unreachable: %v", err)
	}
}

// TestDescriptionIsCut: GitHub refuses descriptions over 140 characters.
func TestDescriptionIsCut(t *testing.T) {
	srv, calls := fakeForge(t, http.StatusCreated, "{}")
	c, err := New(Options{Kind: GitHub, BaseURL: srv.URL, RepoURL: "https://github.com/a/b", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetStatus(context.Background(), testSHA, Failure, strings.Repeat("é", 300)); err != nil {
		t.Fatal(err)
	}
	d := (*calls)[0].body["description"]
	if n := len([]rune(d)); n != maxDescription || !strings.HasSuffix(d, "…") {
		t.Errorf("description of %d runes: %q", n, d)
	}
}

// TestNewRefuses: what cannot work is refused at startup, clearly.
func TestNewRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    Options
		want string
	}{
		{"unknown forge", Options{Kind: "bitbucket", RepoURL: "https://x/a/b", Token: "t"}, "unknown forge"},
		{"local path", Options{Kind: GitHub, RepoURL: "/srv/git/platform.git", Token: "t"}, "local path"},
		{"file URL", Options{Kind: GitHub, RepoURL: "file:///srv/git/platform.git", Token: "t"}, "cannot tell the forge project"},
		{"not owner/repo", Options{Kind: GitHub, RepoURL: "https://github.com/a/b/c", Token: "t"}, "not OWNER/REPO"},
		{"no path", Options{Kind: Gitea, RepoURL: "https://gitea.example.com/", Token: "t"}, "no OWNER/REPO path"},
		{"no token", Options{Kind: GitLab, RepoURL: "https://gitlab.com/g/p", Token: " "}, "no token"},
		{"bad base URL", Options{Kind: GitLab, BaseURL: "ftp://x", RepoURL: "https://gitlab.com/g/p", Token: "t"}, "not an http(s) URL"},
		{"base URL with credentials", Options{Kind: GitLab, BaseURL: "https://u:pw@x", RepoURL: "https://gitlab.com/g/p", Token: "t"}, "without credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error shows a credential: %v", err)
			}
		})
	}
}

// TestDefaultBaseURLs: the public APIs when no base URL is given.
func TestDefaultBaseURLs(t *testing.T) {
	for kind, want := range DefaultBaseURL {
		c, err := New(Options{Kind: kind, RepoURL: "https://example.com/a/b", Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if c.base.String() != want {
			t.Errorf("%s: base %s, want %s", kind, c.base, want)
		}
	}
}
