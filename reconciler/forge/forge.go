// Package forge sets commit statuses on a Git forge (GitHub, GitLab, Gitea)
// through its REST API, so the result of the pass that reconciled a commit
// shows next to that commit and on the pull request that merged it (Flux's
// notification-controller does the same).
//
// The token goes only into the request's auth header: it is never part of
// an error or a URL this package returns or logs.
package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind names a forge API.
type Kind string

// The forges whose commit status API is supported.
const (
	GitHub Kind = "github"
	GitLab Kind = "gitlab"
	Gitea  Kind = "gitea"
)

// Kinds lists the supported forges, for flag help and errors.
var Kinds = []Kind{GitHub, GitLab, Gitea}

// DefaultBaseURL is each forge's public API root; self-hosted instances
// (GitHub Enterprise, GitLab, Gitea) give theirs (Options.BaseURL).
var DefaultBaseURL = map[Kind]string{
	GitHub: "https://api.github.com",
	GitLab: "https://gitlab.com/api/v4",
	Gitea:  "https://gitea.com/api/v1",
}

// State is a commit status state.
type State string

// The states osbgit sets: pending when a pass starts acting on a revision,
// success or failure when it ends.
const (
	Pending State = "pending"
	Success State = "success"
	Failure State = "failure"
)

// DefaultContext is the status's name on the commit ("context" on GitHub
// and Gitea, "name" on GitLab).
const DefaultContext = "osbgit"

// maxDescription bounds a status description (GitHub refuses more than
// 140 characters).
const maxDescription = 140

// maxErrorBody bounds how much of a forge's error answer is quoted.
const maxErrorBody = 200

// Options configure a Client.
type Options struct {
	Kind Kind
	// BaseURL is the API root; "" means DefaultBaseURL[Kind].
	BaseURL string
	// RepoURL is the repository's clone URL (https, ssh or scp-like):
	// the project is its path, "owner/repo" for GitHub and Gitea, "group/
	// subgroup/project" for GitLab.
	RepoURL string
	// Token authenticates the calls.
	Token string
	// Context names the status ("" means DefaultContext); several
	// clusters reconciling one repository set one each.
	Context string
	// HTTP is the client used (nil: one with a 30 s timeout).
	HTTP *http.Client
}

// Client sets commit statuses on one repository of a forge.
type Client struct {
	kind    Kind
	base    *url.URL
	project string
	token   string
	context string
	http    *http.Client
}

// New checks o and returns its client: a clear error names what is wrong
// (an unknown forge, a base URL that is not http(s), a repository URL the
// project cannot be read from, no token), so osbgit can refuse to start.
func New(o Options) (*Client, error) {
	def, ok := DefaultBaseURL[o.Kind]
	if !ok {
		return nil, fmt.Errorf("commit status: unknown forge %q (want one of %s)", o.Kind, kindList())
	}
	if o.BaseURL == "" {
		o.BaseURL = def
	}
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.User != nil {
		return nil, fmt.Errorf("commit status: API base URL %q is not an http(s) URL without credentials", redactURL(o.BaseURL))
	}
	project, err := ProjectPath(o.RepoURL)
	if err != nil {
		return nil, err
	}
	if o.Kind != GitLab && strings.Count(project, "/") != 1 {
		return nil, fmt.Errorf("commit status: repository path %q is not OWNER/REPO, which the %s API needs", project, o.Kind)
	}
	if strings.TrimSpace(o.Token) == "" {
		return nil, errors.New("commit status: no token (set --commit-status-token-file)")
	}
	c := &Client{kind: o.Kind, base: base, project: project, token: o.Token, context: o.Context, http: o.HTTP}
	if c.context == "" {
		c.context = DefaultContext
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	return c, nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

var (
	scpLike = regexp.MustCompile(`^(?:[^@/:]+@)?[^:/\s]+:(.+)$`)
	hexSHA  = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
)

// ProjectPath returns the project path of a repository clone URL
// ("https://github.com/owner/repo.git", "git@gitlab.com:group/sub/p.git",
// "ssh://git@host:22/owner/repo") without ".git" or slashes around it. A
// local path or file:// URL has no forge project: that is an error.
func ProjectPath(repoURL string) (string, error) {
	var p string
	switch {
	case strings.Contains(repoURL, "://"):
		u, err := url.Parse(repoURL)
		if err != nil || u.Host == "" || u.Scheme == "file" {
			return "", fmt.Errorf("commit status: cannot tell the forge project from repository %q: give --repo as the forge's https or ssh URL", redactURL(repoURL))
		}
		p = u.Path
	case scpLike.MatchString(repoURL) && !strings.HasPrefix(repoURL, "/") && !strings.HasPrefix(repoURL, "."):
		p = scpLike.FindStringSubmatch(repoURL)[1]
	default:
		return "", fmt.Errorf("commit status: cannot tell the forge project from the local path %q: give --repo as the forge's https or ssh URL", repoURL)
	}
	p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
	if p == "" || strings.Contains(p, "//") || strings.Contains(p, "..") {
		return "", fmt.Errorf("commit status: repository %q has no OWNER/REPO path", redactURL(repoURL))
	}
	return p, nil
}

// redactURL drops a URL's userinfo.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// SetStatus sets state on commit sha with description (cut to what the
// forges accept). An error says which call failed and how, never with the
// token.
func (c *Client) SetStatus(ctx context.Context, sha string, state State, description string) error {
	if !hexSHA.MatchString(sha) {
		return fmt.Errorf("commit status: %q is not a commit hash", sha)
	}
	description = cut(description, maxDescription)
	var path string
	var body map[string]string
	switch c.kind {
	case GitLab:
		st := string(state)
		if state == Failure {
			st = "failed"
		}
		path = "/projects/" + url.PathEscape(c.project) + "/statuses/" + sha
		body = map[string]string{"state": st, "name": c.context, "description": description}
	default: // GitHub, Gitea
		path = "/repos/" + escapeSegments(c.project) + "/statuses/" + sha
		body = map[string]string{"state": string(state), "context": c.context, "description": description}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("commit status: %w", err)
	}
	// path is escaped already (GitLab's project ID is "group%2Fproject").
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("commit status: %w", err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "osbgit")
	switch c.kind {
	case GitHub:
		r.Header.Set("Authorization", "Bearer "+c.token)
		r.Header.Set("Accept", "application/vnd.github+json")
		r.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	case GitLab:
		r.Header.Set("PRIVATE-TOKEN", c.token)
	case Gitea:
		r.Header.Set("Authorization", "token "+c.token)
	}
	resp, err := c.http.Do(r)
	if err != nil {
		return fmt.Errorf("commit status %s on %s: %s", state, short(sha), c.scrub(err.Error()))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("commit status %s on %s: %s %s answered %s: %s", state, short(sha), r.Method, redactURL(r.URL.String()),
			resp.Status, c.scrub(cut(strings.TrimSpace(string(answer)), maxErrorBody)))
	}
	return nil
}

// scrub removes the token from text quoted from elsewhere.
func (c *Client) scrub(s string) string {
	return strings.ReplaceAll(s, c.token, "[redacted]")
}

// escapeSegments path-escapes each segment of p.
func escapeSegments(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// cut shortens s to at most n runes.
func cut(s string, n int) string {
	for i := range s {
		if n--; n == 0 && i+utf8.RuneLen([]rune(s[i:])[0]) < len(s) {
			return s[:i] + "…"
		}
	}
	return s
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
