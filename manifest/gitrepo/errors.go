package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// Sentinel errors. Every error returned by this package that has one of
// these causes matches it with errors.Is, so callers can branch on the kind
// of failure without parsing messages.
var (
	// ErrAuthFailed means the remote rejected the credentials (or asked for
	// credentials that were not given). Retrying with the same credentials
	// will not help.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrBranchNotFound means the repository exists but has no such branch.
	ErrBranchNotFound = errors.New("branch not found")
	// ErrEmptyRepo means the repository exists but has no commits at all.
	ErrEmptyRepo = errors.New("repository is empty")
	// ErrUnreachable means the remote could not be contacted (DNS, refused
	// connection, TLS failure, timeout). It is usually transient.
	ErrUnreachable = errors.New("remote unreachable")
	// ErrConflict means the target branch moved on the remote since it was
	// read: a push was rejected as non-fast-forward. With the write-ahead
	// mode the caller must re-plan from the new head; with the status mode it
	// is returned only after all retries were used. See ConflictError.
	ErrConflict = errors.New("branch moved on the remote (push rejected)")
	// ErrRepositoryNotFound means there is no repository at the URL or path
	// (some hosts also answer this for a private repo without credentials).
	ErrRepositoryNotFound = errors.New("repository not found")
	// ErrInsecureTransport means credentials would be sent over plain
	// http:// to a non-loopback host; see WithInsecureHTTP.
	ErrInsecureTransport = errors.New("refusing to send credentials over plain http")
	// ErrHostKey means the SSH server's host key is not in known_hosts or
	// does not match it.
	ErrHostKey = errors.New("ssh host key verification failed")
	// ErrRevisionNotFound means a revision (commit, branch) is not present
	// locally — for example an old observed commit that a fresh cache never
	// fetched. Callers fall back to a full reload.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrNotWorkTree means WorkTreeFS was called on a source that is not a
	// local working copy (a URL or a bare repository).
	ErrNotWorkTree = errors.New("not a local working copy")
	// ErrCheckedOutBranch means a write would move the branch that is checked
	// out in a local working copy, which would leave the user's index out of
	// step with HEAD (git refuses such a push for the same reason).
	ErrCheckedOutBranch = errors.New("refusing to write to the checked-out branch of a working copy")
	// ErrOutsideStatusDir means a change set names a path outside .osbgit/.
	ErrOutsideStatusDir = errors.New("path outside the status directory")
	// ErrUntrustedBranch means a write was asked of a Repo opened on a
	// branch other than its trusted branch (a diff of a pull request).
	ErrUntrustedBranch = errors.New("refusing to write from an untrusted branch")
	// ErrInvalidOptions means Open was given inconsistent or unusable
	// options (bad URL, missing known_hosts, unreadable key file, ...).
	ErrInvalidOptions = errors.New("invalid git options")
)

// Error is the error type returned for failed repository operations. It names
// the operation, the redacted URL and the branch, and wraps both the kind (one
// of the sentinels above, when known) and the underlying cause. Its message
// never contains a password, token or passphrase: the URL is redacted and the
// cause's text is scrubbed of every configured secret.
type Error struct {
	// Op is the operation that failed: "open", "ls-remote", "fetch", "push",
	// "read", "write".
	Op string
	// URL is the redacted repository URL or path.
	URL string
	// Branch is the branch concerned, if any.
	Branch string
	// Kind is the sentinel describing the failure, or nil when unknown.
	Kind error
	// Err is the underlying cause.
	Err error

	secrets []string
}

// Error implements error with a scrubbed, single-line message.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("git ")
	b.WriteString(e.Op)
	if e.URL != "" {
		b.WriteString(" ")
		b.WriteString(e.URL)
	}
	if e.Branch != "" {
		fmt.Fprintf(&b, " (branch %q)", e.Branch)
	}
	cause := ""
	if e.Err != nil && e.Err != e.Kind {
		cause = strings.TrimRight(scrub(e.Err.Error(), e.secrets), ": \n")
	}
	if e.Kind != nil && !strings.HasPrefix(cause, e.Kind.Error()) {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if cause != "" {
		b.WriteString(": ")
		b.WriteString(cause)
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// ConflictError reports that a push was rejected because the target branch
// moved on the remote. It matches ErrConflict with errors.Is. Expected is the
// head the write was based on, Actual the head found on the remote ("" when
// unknown or when the branch does not exist).
type ConflictError struct {
	// URL is the redacted repository URL.
	URL string
	// Branch is the branch the write targeted.
	Branch string
	// Expected is the remote head the commit was built on.
	Expected string
	// Actual is the remote head found when the push was rejected.
	Actual string
	// Attempts is how many pushes were tried (1 in write-ahead mode).
	Attempts int
	// Records is true when the ref that moved is the records ref
	// (RecordsRef), not a branch: another writer changed the records.
	Records bool
}

// Error implements error.
func (e *ConflictError) Error() string {
	exp, act := shortHash(e.Expected), shortHash(e.Actual)
	msg := fmt.Sprintf("git push %s (branch %q): %v: expected head %s, found %s", e.URL, e.Branch, ErrConflict, exp, act)
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" (gave up after %d attempts)", e.Attempts)
	}
	return msg
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

func shortHash(h string) string {
	switch {
	case h == "" || h == plumbing.ZeroHash.String():
		return "(none)"
	case len(h) > 12:
		return h[:12]
	}
	return h
}

// newError builds an *Error for op, classifying cause into a sentinel.
func (r *Repo) newError(op, branch string, cause error) error {
	if cause == nil {
		return nil
	}
	var e *Error
	if errors.As(cause, &e) {
		return cause
	}
	var ce *ConflictError
	if errors.As(cause, &ce) {
		return cause
	}
	return &Error{Op: op, URL: r.shownURL, Branch: branch, Kind: classify(cause), Err: cause, secrets: r.secrets}
}

// classify maps go-git, network and SSH errors to this package's sentinels.
// It returns nil when the error has no known kind.
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{ErrAuthFailed, ErrBranchNotFound, ErrEmptyRepo, ErrUnreachable, ErrConflict,
		ErrRepositoryNotFound, ErrInsecureTransport, ErrHostKey, ErrRevisionNotFound, ErrNotWorkTree,
		ErrCheckedOutBranch, ErrOutsideStatusDir, ErrInvalidOptions, ErrUntrustedBranch} {
		if errors.Is(err, s) {
			return s
		}
	}
	var keyErr *xknownhosts.KeyError
	var revokedErr *xknownhosts.RevokedError
	var noRef git.NoMatchingRefSpecError
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var urlErr *url.Error
	msg := err.Error()
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod):
		return ErrAuthFailed
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return ErrEmptyRepo
	case errors.Is(err, transport.ErrRepositoryNotFound),
		errors.Is(err, git.ErrRepositoryNotExists):
		return ErrRepositoryNotFound
	case errors.As(err, &noRef), errors.Is(err, plumbing.ErrReferenceNotFound):
		return ErrBranchNotFound
	case errors.As(err, &keyErr), errors.As(err, &revokedErr),
		strings.Contains(msg, "knownhosts:"), strings.Contains(msg, "host key mismatch"):
		return ErrHostKey
	case strings.Contains(msg, "unable to authenticate"):
		return ErrAuthFailed
	case errors.Is(err, context.Canceled):
		return nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &dnsErr), errors.As(err, &opErr), errors.As(err, &urlErr):
		return ErrUnreachable
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"),
		strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "x509:"),
		strings.Contains(msg, "tls:"):
		return ErrUnreachable
	}
	return nil
}

// scrub replaces every secret (of at least minSecretLen bytes; shorter ones
// would garble messages) in s, and any password in an embedded URL.
func scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= minSecretLen {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return redactURLsIn(s)
}

const (
	redacted     = "xxxxx"
	minSecretLen = 4
)
