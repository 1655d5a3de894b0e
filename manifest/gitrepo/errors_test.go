package gitrepo

import (
	"context"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// errorChain returns err and everything it wraps.
func errorChain(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// assertNoSecrets fails if any message in err's chain contains a secret.
func assertNoSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, e := range errorChain(err) {
		msg := e.Error()
		for _, s := range secrets {
			if s != "" && strings.Contains(msg, s) {
				t.Errorf("error message leaks a secret %q: %s", s, msg)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tr, gs, good := httpRepo(t, baseFiles)
	emptyBare := filepath.Join(tr.root, "empty.git")
	runGit(t, tr.root, "init", "-q", "--bare", "-b", "main", emptyBare)
	dead := "http://" + closedPort(t) + "/repo.git"
	const wrongPass = "wr0ng-Passw0rd"
	const token = "tok-9f8e7d6c5b4a"

	tests := []struct {
		name    string
		o       Options
		opts    []Option
		want    error
		secrets []string
		mention []string // substrings the message must contain
	}{
		{
			name:    "wrong password",
			o:       Options{URL: good.URL, Branch: "main", Auth: Auth{Username: testUser, Password: wrongPass}},
			want:    ErrAuthFailed,
			secrets: []string{wrongPass},
			mention: []string{gs.URL + "/repo.git", `branch "main"`},
		},
		{
			name:    "wrong password in URL",
			o:       Options{URL: strings.Replace(gs.URL, "http://", "http://"+testUser+":"+wrongPass+"@", 1) + "/repo.git", Branch: "main"},
			want:    ErrAuthFailed,
			secrets: []string{wrongPass},
			mention: []string{testUser + ":xxxxx@"},
		},
		{
			name:    "wrong token",
			o:       Options{URL: good.URL, Branch: "main", Auth: Auth{Token: token}},
			want:    ErrAuthFailed,
			secrets: []string{token},
		},
		{
			name: "no credentials",
			o:    Options{URL: good.URL, Branch: "main"},
			want: ErrAuthFailed,
		},
		{
			name:    "unknown branch",
			o:       Options{URL: good.URL, Branch: "nope", Auth: good.Auth},
			want:    ErrBranchNotFound,
			secrets: []string{testPass},
			mention: []string{`branch "nope"`},
		},
		{
			name:    "unknown branch, file URL",
			o:       Options{URL: "file://" + tr.bare, Branch: "nope"},
			want:    ErrBranchNotFound,
			mention: []string{"file://" + tr.bare},
		},
		{
			name:    "unknown branch, local path",
			o:       Options{URL: tr.bare, Branch: "nope"},
			want:    ErrBranchNotFound,
			mention: []string{tr.bare},
		},
		{
			name:    "empty repository over http",
			o:       Options{URL: gs.URL + "/empty.git", Branch: "main", Auth: good.Auth},
			want:    ErrEmptyRepo,
			secrets: []string{testPass},
		},
		{
			name: "empty repository, file URL",
			o:    Options{URL: "file://" + emptyBare, Branch: "main"},
			want: ErrEmptyRepo,
		},
		{
			name: "empty repository, local path",
			o:    Options{URL: emptyBare, Branch: "main"},
			want: ErrEmptyRepo,
		},
		{
			name:    "unreachable",
			o:       Options{URL: dead, Branch: "main", Auth: Auth{Username: testUser, Password: testPass}},
			want:    ErrUnreachable,
			secrets: []string{testPass},
			mention: []string{dead},
		},
		{
			name:    "unresolvable host",
			o:       Options{URL: "https://git.invalid/repo.git", Branch: "main", Auth: Auth{Token: token}},
			opts:    []Option{WithTimeout(10 * time.Second)},
			want:    ErrUnreachable,
			secrets: []string{token},
		},
		{
			name:    "no such repository over http",
			o:       Options{URL: gs.URL + "/missing.git", Branch: "main", Auth: good.Auth},
			want:    ErrRepositoryNotFound,
			secrets: []string{testPass},
		},
		{
			name: "no such file URL",
			o:    Options{URL: "file://" + filepath.Join(tr.root, "missing.git"), Branch: "main"},
			want: ErrRepositoryNotFound,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			r, err := Open(ctx, tc.o, tc.opts...)
			if err == nil {
				defer r.Close()
				_, err = r.RemoteHead(ctx, "")
				if err == nil {
					_, err = r.Fetch(ctx)
				}
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %T is not an *Error", err)
			}
			assertNoSecrets(t, err, append(tc.secrets, testPass)...)
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not mention %q", err, m)
				}
			}
			t.Logf("%v", err)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	notRepo := t.TempDir()
	tests := []struct {
		name string
		o    Options
		opts []Option
		want error
	}{
		{"missing path", Options{URL: filepath.Join(notRepo, "nope")}, nil, ErrRepositoryNotFound},
		{"not a repository", Options{URL: notRepo}, nil, ErrRepositoryNotFound},
		{"empty URL", Options{}, nil, ErrInvalidOptions},
		{"unsupported scheme", Options{URL: "ftp://host/repo"}, nil, ErrInvalidOptions},
		{"bad branch", Options{URL: "https://h/r.git", Branch: "a..b"}, nil, ErrInvalidOptions},
		{"password and token", Options{URL: "https://h/r.git", Branch: "m", Auth: Auth{Username: "u", Password: "p4ssword", Token: "t0ken123"}}, nil, ErrInvalidOptions},
		{"URL and option credentials", Options{URL: "https://u:p4ssword@h/r.git", Branch: "m", Auth: Auth{Token: "t0ken123"}}, nil, ErrInvalidOptions},
		{"ssh password in URL", Options{URL: "ssh://git:p4ssword@h/r.git", Branch: "m"}, []Option{WithInsecureSkipHostKeyCheck()}, ErrInvalidOptions},
		{"CA file missing", Options{URL: "https://h/r.git", Branch: "m", Auth: Auth{CAFile: filepath.Join(notRepo, "ca.pem")}}, nil, ErrInvalidOptions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(context.Background(), tc.o, tc.opts...)
			if err == nil {
				r.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			assertNoSecrets(t, err, "p4ssword", "t0ken123")
		})
	}
}

func TestPlainHTTPCredentialRefusal(t *testing.T) {
	t.Parallel()
	creds := Auth{Username: "u", Password: "pl41n-secret"}
	tests := []struct {
		name string
		o    Options
		opts []Option
		ok   bool
	}{
		{"basic auth to remote host", Options{URL: "http://git.example.com/r.git", Auth: creds}, nil, false},
		{"credentials in URL", Options{URL: "http://u:pl41n-secret@git.example.com/r.git"}, nil, false},
		{"token", Options{URL: "http://git.example.com/r.git", Auth: Auth{Token: "pl41n-secret"}}, nil, false},
		{"IP address", Options{URL: "http://10.1.2.3:8080/r.git", Auth: creds}, nil, false},
		{"anonymous", Options{URL: "http://git.example.com/r.git"}, nil, true},
		{"loopback IPv4", Options{URL: "http://127.0.0.1:9/r.git", Auth: creds}, nil, true},
		{"loopback IPv6", Options{URL: "http://[::1]:9/r.git", Auth: creds}, nil, true},
		{"localhost", Options{URL: "http://localhost:9/r.git", Auth: creds}, nil, true},
		{"explicit opt-in", Options{URL: "http://git.example.com/r.git", Auth: creds}, []Option{WithInsecureHTTP()}, true},
		{"https", Options{URL: "https://git.example.com/r.git", Auth: creds}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Branch = "main" // no network in Open
			r, err := Open(context.Background(), tc.o, tc.opts...)
			if tc.ok {
				if err != nil {
					t.Fatalf("Open = %v", err)
				}
				r.Close()
				return
			}
			if !errors.Is(err, ErrInsecureTransport) {
				t.Fatalf("Open = %v, want ErrInsecureTransport", err)
			}
			assertNoSecrets(t, err, "pl41n-secret")
		})
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://user:pass@git.example.com/org/repo.git", "https://user:xxxxx@git.example.com/org/repo.git"},
		{"https://ghp_abcdef@github.com/org/repo", "https://xxxxx@github.com/org/repo"},
		{"http://git.example.com/repo", "http://git.example.com/repo"},
		{"ssh://git@example.com:2222/repo.git", "ssh://git@example.com:2222/repo.git"},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"/srv/git/repo.git", "/srv/git/repo.git"},
		{"https://h/repo?private_token=abc&x=1", "https://h/repo?private_token=xxxxx&x=1"},
		{"https://u:p%40ss@h/r", "https://u:xxxxx@h/r"},
		{"https://u:p ss@h/%zz", "https://xxxxx@h/%zz"},
	}
	for _, tc := range tests {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	msg := scrub(`Get "https://u:hunter22@h/r/info/refs": refused; token tok-123456 bad`, []string{"tok-123456"})
	if strings.Contains(msg, "hunter22") || strings.Contains(msg, "tok-123456") {
		t.Fatalf("scrub left a secret: %s", msg)
	}
}

func TestParseSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in                      string
		kind                    sourceKind
		scheme, host, user, url string
		password                string
	}{
		{"https://u:p@h.example/r.git", kindRemote, "https", "h.example", "u", "https://h.example/r.git", "p"},
		{"http://127.0.0.1:8080/r.git", kindRemote, "http", "127.0.0.1", "", "http://127.0.0.1:8080/r.git", ""},
		{"ssh://deploy@h:2222/r.git", kindRemote, "ssh", "h", "deploy", "ssh://deploy@h:2222/r.git", ""},
		{"git@github.com:org/r.git", kindRemote, "ssh", "github.com", "git", "git@github.com:org/r.git", ""},
		{"file:///srv/r.git", kindRemote, "file", "", "", "file:///srv/r.git", ""},
		{"/srv/r.git", kindWorkTree, "", "", "", "/srv/r.git", ""},
		{"./a:b", kindWorkTree, "", "", "", "", ""},
	}
	for _, tc := range tests {
		src, err := parseSource(tc.in)
		if err != nil {
			t.Errorf("parseSource(%q): %v", tc.in, err)
			continue
		}
		if tc.url == "" {
			tc.url = src.url // relative path made absolute
			if !filepath.IsAbs(src.url) {
				t.Errorf("parseSource(%q).url = %q, want absolute", tc.in, src.url)
			}
		}
		got := []any{src.kind, src.scheme, src.host, src.user, src.url, src.password}
		want := []any{tc.kind, tc.scheme, tc.host, tc.user, tc.url, tc.password}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("parseSource(%q) = %v, want %v", tc.in, got, want)
				break
			}
		}
	}
}

func TestHTTPAuthMethods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		url      string
		a        Auth
		wantType string
		user     string
		secret   string
	}{
		{"basic", "https://h/r", Auth{Username: "u", Password: "pw"}, "basic", "u", "pw"},
		{"token alone is bearer", "https://h/r", Auth{Token: "tk"}, "bearer", "", "tk"},
		{"token with username is basic", "https://h/r", Auth{Username: "x-access-token", Token: "tk"}, "basic", "x-access-token", "tk"},
		{"URL credentials", "https://u:pw@h/r", Auth{}, "basic", "u", "pw"},
		{"token as URL user", "https://tk@h/r", Auth{}, "basic", "tk", ""},
		{"anonymous", "https://h/r", Auth{}, "none", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := parseSource(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			ta, err := buildAuth(src, tc.a, defaultSettings())
			if err != nil {
				t.Fatal(err)
			}
			switch m := ta.method.(type) {
			case *githttp.BasicAuth:
				if tc.wantType != "basic" || m.Username != tc.user || m.Password != tc.secret {
					t.Fatalf("got basic %q/%q", m.Username, m.Password)
				}
			case *githttp.TokenAuth:
				if tc.wantType != "bearer" || m.Token != tc.secret {
					t.Fatalf("got bearer %q", m.Token)
				}
			case nil:
				if tc.wantType != "none" {
					t.Fatalf("got no auth")
				}
			default:
				t.Fatalf("unexpected auth %T", m)
			}
			if tc.secret != "" {
				found := false
				for _, s := range ta.secrets {
					found = found || s == tc.secret
				}
				if !found {
					t.Fatalf("secret %q not registered for scrubbing", tc.secret)
				}
			}
		})
	}
}

func TestHTTPSWithCABundle(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	gs := newGitServer(t, tr.root, testUser, testPass, true)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: gs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{URL: gs.URL + "/repo.git", Branch: "main", Auth: Auth{Username: testUser, Password: testPass, CAFile: caFile}}
	r := mustOpen(t, o, WithCacheDir(t.TempDir()))
	if fr := mustFetch(t, r); fr.Head != tr.head("main") {
		t.Fatalf("fetch = %+v", fr)
	}
	res, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "m", Files: map[string][]byte{statusPath: []byte("tls\n")}})
	if err != nil || res.Commit != tr.head("main") {
		t.Fatalf("write over https = %+v, %v", res, err)
	}

	o.Auth.CAFile = ""
	r2 := mustOpen(t, o)
	_, err = r2.RemoteHead(testCtx(t), "")
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("untrusted certificate = %v, want ErrUnreachable", err)
	}
	assertNoSecrets(t, err, testPass)
}

// TestCredentialsInURL: credentials embedded in the URL work, are shown
// redacted, and are written nowhere in the cache.
func TestCredentialsInURL(t *testing.T) {
	t.Parallel()
	tr, gs, _ := httpRepo(t, baseFiles)
	url := strings.Replace(gs.URL, "http://", "http://"+testUser+":"+testPass+"@", 1) + "/repo.git"
	cache := t.TempDir()
	r := mustOpen(t, Options{URL: url, Branch: "main"}, WithCacheDir(cache))
	if strings.Contains(r.URL(), testPass) || !strings.Contains(r.URL(), "xxxxx") {
		t.Fatalf("URL() = %q", r.URL())
	}
	if fr := mustFetch(t, r); fr.Head != tr.head("main") {
		t.Fatalf("fetch = %+v", fr)
	}
	if _, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "m", Files: map[string][]byte{statusPath: []byte("x\n")}}); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), testPass) {
			t.Errorf("cache file %s contains the password", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
