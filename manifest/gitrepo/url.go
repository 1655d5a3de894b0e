package gitrepo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// sourceKind tells how a repository is reached.
type sourceKind int

const (
	// kindRemote: fetched through a transport (http, https, ssh, git,
	// file://) into a cache directory or memory.
	kindRemote sourceKind = iota
	// kindWorkTree: a local non-bare repository used in place.
	kindWorkTree
	// kindBare: a local bare repository used in place.
	kindBare
)

// String describes the kind for messages.
func (k sourceKind) String() string {
	switch k {
	case kindWorkTree:
		return "local working copy"
	case kindBare:
		return "local bare repository"
	}
	return "remote"
}

// source is a parsed repository location.
type source struct {
	kind sourceKind
	// url is what go-git gets: credentials removed (http/https), ssh user
	// kept, local paths made absolute.
	url string
	// shown is the redacted form used in messages and as the cache key.
	shown string
	// scheme is lower-case: http, https, ssh, git, file, or "" for a path.
	scheme string
	// host is the host without port ("" for paths and file://).
	host string
	// user and password come from the URL's userinfo.
	user, password string
}

var (
	schemeRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
	scpLikeRE = regexp.MustCompile(`^(?:([^@/:]+)@)?([^:/\s]+):(.*)$`)
	// urlInTextRE finds URL-looking substrings in free text (error causes).
	urlInTextRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)
)

// isSCPLike reports whether s is git's scp-like ssh syntax, user@host:path.
// Like git, a slash before the first colon makes it a local path.
func isSCPLike(s string) bool {
	if schemeRE.MatchString(s) {
		return false
	}
	before, _, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(before, "/") || before == "" {
		return false
	}
	return scpLikeRE.MatchString(s)
}

// parseSource classifies raw as a URL or a local path and separates any
// credentials from it. Local paths are classified further by Open.
func parseSource(raw string) (source, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return source{}, fmt.Errorf("%w: empty repository URL", ErrInvalidOptions)
	}
	switch {
	case schemeRE.MatchString(raw):
		u, err := url.Parse(raw)
		if err != nil {
			// url.Parse errors quote the input; do not echo it.
			return source{}, fmt.Errorf("%w: cannot parse repository URL %s", ErrInvalidOptions, RedactURL(raw))
		}
		src := source{kind: kindRemote, scheme: strings.ToLower(u.Scheme), host: u.Hostname()}
		switch src.scheme {
		case "http", "https":
			if u.User != nil {
				src.user = u.User.Username()
				src.password, _ = u.User.Password()
				u.User = nil
			}
		case "ssh":
			if u.User != nil {
				if _, has := u.User.Password(); has {
					return source{}, fmt.Errorf("%w: passwords in ssh URLs are not supported (use a key): %s", ErrInvalidOptions, RedactURL(raw))
				}
				src.user = u.User.Username()
			}
		case "git":
		case "file":
			src.host = ""
		default:
			return source{}, fmt.Errorf("%w: unsupported URL scheme %q", ErrInvalidOptions, src.scheme)
		}
		src.url = u.String()
		src.shown = RedactURL(raw)
		return src, nil
	case isSCPLike(raw):
		m := scpLikeRE.FindStringSubmatch(raw)
		return source{kind: kindRemote, scheme: "ssh", url: raw, shown: raw, user: m[1], host: m[2]}, nil
	default:
		abs, err := filepath.Abs(raw)
		if err != nil {
			return source{}, fmt.Errorf("%w: repository path %q: %v", ErrInvalidOptions, raw, err)
		}
		return source{kind: kindWorkTree, url: abs, shown: abs}, nil
	}
}

// RedactURL returns s with any credentials replaced by "xxxxx", so the URL
// can be logged or shown: the password of https://user:pass@host/… (the user
// name stays), a lone user name of an http(s) URL (https://TOKEN@host/… is a
// common way to pass a token), and the values of query parameters whose name
// suggests a secret (token, password, key, secret, signature). Strings that
// are not URLs (local paths, scp-like user@host:path) are returned unchanged.
// It never fails: an unparsable URL has everything between "//" and "@"
// masked.
func RedactURL(s string) string {
	if !schemeRE.MatchString(s) {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		if i, j := strings.Index(s, "//"), strings.LastIndex(s, "@"); i >= 0 && j > i {
			return s[:i+2] + redacted + s[j:]
		}
		return s
	}
	if u.User != nil {
		name := u.User.Username()
		_, hasPw := u.User.Password()
		scheme := strings.ToLower(u.Scheme)
		switch {
		case hasPw:
			u.User = url.UserPassword(name, redacted)
		case name != "" && (scheme == "http" || scheme == "https"):
			u.User = url.User(redacted)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			lk := strings.ToLower(k)
			for _, w := range []string{"token", "pass", "key", "secret", "sig", "auth"} {
				if strings.Contains(lk, w) {
					q[k] = []string{redacted}
					changed = true
					break
				}
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// redactURLsIn redacts every URL found in free text.
func redactURLsIn(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInTextRE.ReplaceAllStringFunc(s, RedactURL)
}

// isLoopbackHost reports whether host (without port) is a loopback name or
// address; credentials may be sent there over plain http.
func isLoopbackHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// cacheKey names the cache subdirectory for a redacted URL.
func cacheKey(shown string) string {
	sum := sha256.Sum256([]byte(shown))
	return hex.EncodeToString(sum[:12])
}

// Identity names the repository a URL reaches, the same however it is
// reached: host and path, without scheme, credentials, query, a trailing
// "/" or ".git", so https://user:token@Host/org/repo.git,
// ssh://git@host/org/repo and git@host:org/repo are one repository. A
// local path is returned cleaned. Records are signed for it (a records
// commit of one repository does not verify in another).
func Identity(raw string) string {
	trim := func(p string) string {
		p = strings.TrimSuffix(strings.Trim(p, "/"), ".git")
		return strings.TrimSuffix(p, "/")
	}
	switch {
	case schemeRE.MatchString(raw):
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		if u.Scheme == "file" {
			return filepath.Clean(u.Path)
		}
		return strings.ToLower(u.Host) + "/" + trim(u.Path)
	case scpLikeRE.MatchString(raw) && !strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "."):
		m := scpLikeRE.FindStringSubmatch(raw)
		return strings.ToLower(m[2]) + "/" + trim(m[3])
	}
	return filepath.Clean(raw)
}
