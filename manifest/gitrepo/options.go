package gitrepo

import (
	"time"
)

// Options says where the repository is, which branches to use and how to
// authenticate. It maps one-to-one onto the CLI's --repo, --branch,
// statusBranch and --git-* flags.
type Options struct {
	// URL is the repository: a local working copy path, a local bare
	// repository path, file://, http://, https://, ssh:// or scp-like
	// user@host:path. Credentials embedded in an http(s) URL
	// (https://user:pass@host/…) are used and never shown.
	URL string
	// Branch holds the manifests. Empty means the remote's default branch
	// (HEAD), or the checked-out branch of a local working copy.
	Branch string
	// StatusBranch receives the .osbgit/ records. Empty means the trusted
	// branch. It is created from Branch's head on the first write if it
	// does not exist.
	StatusBranch string
	// TrustedBranch is the branch the operator trusts: the one osbgit
	// reconciles, whose broker manifests decide where broker credentials
	// may be sent, and whose records a diff of any other branch reads.
	// Empty means Branch, or the remote's default branch with
	// TrustDefaultBranch. A Repo whose Branch is not its trusted branch
	// never writes.
	TrustedBranch string
	// TrustDefaultBranch makes an empty TrustedBranch the remote's default
	// branch (HEAD) rather than Branch: what `osbgit diff` of another
	// branch compares with. For a local working copy it is the branch
	// origin/HEAD names, else the checked-out branch.
	TrustDefaultBranch bool
	// ClusterID names the deployment whose records this Repo reads and
	// writes, when several share the repository: its records live in
	// RecordsDir(ClusterID) and its records ref is
	// ClusterRecordsRef(ClusterID, status branch). Empty keeps the layout
	// of a repository with one deployment (.osbgit/,
	// refs/osbgit/records/<branch>). Set by the operator, never by the
	// repository; Open refuses one CheckClusterID refuses.
	ClusterID string
	// Auth holds credentials; the zero value means anonymous.
	Auth Auth
}

// Auth holds Git credentials. Which fields apply depends on the URL scheme;
// fields that do not apply are ignored.
//
// For http(s):
//   - Username + Password: HTTP basic auth.
//   - Token alone: "Authorization: Bearer <token>" (Flux's bearerToken;
//     Azure DevOps, Gitea, Bitbucket Server access tokens).
//   - Token + Username: basic auth with the token as the password — the
//     convention of GitHub (username "x-access-token" or any), GitLab
//     ("oauth2" for OAuth tokens, any name for personal tokens) and
//     Bitbucket Cloud ("x-token-auth").
//   - CAFile: a PEM bundle trusted in addition to the system roots.
//
// Credentials are never sent over plain http:// to a non-loopback host
// unless WithInsecureHTTP is given.
//
// For ssh:// and scp-like URLs: SSHKeyFile (PEM/OpenSSH private key) with an
// optional SSHKeyPassphrase, and KnownHostsFile, which is required unless
// WithInsecureSkipHostKeyCheck is given. The user comes from the URL, else
// Username, else "git".
type Auth struct {
	// Username for HTTP basic auth (with Password or Token), or the SSH user
	// when the URL has none.
	Username string
	// Password for HTTP basic auth.
	Password string
	// Token is an access token; see the type documentation for how it is
	// sent.
	Token string
	// CAFile is a PEM file of extra CA certificates for https.
	CAFile string
	// SSHKeyFile is a private key file for ssh.
	SSHKeyFile string
	// SSHKeyPassphrase decrypts SSHKeyFile when it is encrypted.
	SSHKeyPassphrase string
	// KnownHostsFile is a known_hosts file; required for ssh.
	KnownHostsFile string
}

// Option tunes Open. Options are applied in order.
type Option func(*settings)

// settings is the result of applying Options.
type settings struct {
	cacheDir            string
	depth               int
	insecureHTTP        bool
	insecureSkipHostKey bool
	authorName          string
	authorEmail         string
	maxAttempts         int
	backoffInitial      time.Duration
	backoffMax          time.Duration
	timeout             time.Duration
}

// Defaults used when no Option overrides them.
const (
	// DefaultDepth is the fetch depth: only branch heads are fetched.
	DefaultDepth = 1
	// DefaultMaxPushAttempts bounds WriteStatus's push-fetch-reapply loop.
	DefaultMaxPushAttempts = 6
	// DefaultAuthorName is the commit author's name.
	DefaultAuthorName = "osbgit"
	// DefaultAuthorEmail is the commit author's email.
	DefaultAuthorEmail = "osbgit@localhost"
	// DefaultTimeout bounds each network operation when the context has no
	// earlier deadline.
	DefaultTimeout = 2 * time.Minute
)

func defaultSettings() settings {
	return settings{
		depth:          DefaultDepth,
		authorName:     DefaultAuthorName,
		authorEmail:    DefaultAuthorEmail,
		maxAttempts:    DefaultMaxPushAttempts,
		backoffInitial: 200 * time.Millisecond,
		backoffMax:     5 * time.Second,
		timeout:        DefaultTimeout,
	}
}

// WithCacheDir keeps a bare clone per repository under dir (in a
// subdirectory named by a hash of the redacted URL) and reuses it on later
// runs, so a CronJob volume or a laptop re-run fetches only what changed.
// Without it, remote repositories are fetched into memory on every Open.
// Local path sources never use the cache.
func WithCacheDir(dir string) Option { return func(s *settings) { s.cacheDir = dir } }

// WithDepth sets how many commits of history each fetch brings (default 1:
// heads only, which is all a pass needs). 0 fetches full history.
func WithDepth(n int) Option {
	return func(s *settings) {
		if n >= 0 {
			s.depth = n
		}
	}
}

// WithInsecureHTTP allows credentials over plain http:// to any host
// (--git-insecure-http). Without it they are sent only to loopback hosts.
func WithInsecureHTTP() Option { return func(s *settings) { s.insecureHTTP = true } }

// WithInsecureSkipHostKeyCheck disables SSH host key verification, making
// KnownHostsFile optional. It exists for tests and throwaway setups only.
func WithInsecureSkipHostKeyCheck() Option {
	return func(s *settings) { s.insecureSkipHostKey = true }
}

// WithAuthor sets the author and committer of status and intent commits.
func WithAuthor(name, email string) Option {
	return func(s *settings) {
		if name != "" {
			s.authorName = name
		}
		if email != "" {
			s.authorEmail = email
		}
	}
}

// WithMaxPushAttempts bounds how many times WriteStatus pushes (the first
// try included) before giving up with a *ConflictError.
func WithMaxPushAttempts(n int) Option {
	return func(s *settings) {
		if n > 0 {
			s.maxAttempts = n
		}
	}
}

// WithBackoff sets the retry delay of WriteStatus: it starts at initial,
// doubles per attempt up to max, and each wait is jittered to a random
// value in [d/2, d).
func WithBackoff(initial, max time.Duration) Option {
	return func(s *settings) {
		if initial > 0 {
			s.backoffInitial = initial
		}
		if max >= initial && max > 0 {
			s.backoffMax = max
		}
	}
}

// WithTimeout bounds each network operation (ls-remote, fetch, push).
func WithTimeout(d time.Duration) Option {
	return func(s *settings) {
		if d > 0 {
			s.timeout = d
		}
	}
}
