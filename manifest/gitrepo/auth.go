package gitrepo

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// transportAuth is everything a transport call needs besides the URL.
type transportAuth struct {
	method   transport.AuthMethod
	caBundle []byte
	// secrets are scrubbed from every error message.
	secrets []string
}

// buildAuth turns the URL's userinfo, Auth and settings into a go-git auth
// method, enforcing the plain-http and known_hosts rules. It does no I/O
// other than reading the configured files.
func buildAuth(src source, a Auth, s settings) (transportAuth, error) {
	var ta transportAuth
	addSecret := func(v string) {
		if v != "" {
			ta.secrets = append(ta.secrets, v)
		}
	}
	addSecret(a.Password)
	addSecret(a.Token)
	addSecret(a.SSHKeyPassphrase)
	addSecret(src.password)
	if src.password == "" && (src.scheme == "http" || src.scheme == "https") {
		// https://TOKEN@host/… puts the secret in the user name.
		addSecret(src.user)
	}

	switch src.scheme {
	case "http", "https":
		urlCreds := src.user != "" || src.password != ""
		optCreds := a.Username != "" || a.Password != "" || a.Token != ""
		if urlCreds && optCreds {
			return ta, fmt.Errorf("%w: credentials given both in the URL and as options for %s", ErrInvalidOptions, src.shown)
		}
		user, pass, token := a.Username, a.Password, a.Token
		if urlCreds {
			user, pass = src.user, src.password
		}
		if token != "" && pass != "" {
			return ta, fmt.Errorf("%w: both a password and a token were given for %s", ErrInvalidOptions, src.shown)
		}
		switch {
		case token != "" && user != "":
			ta.method = &githttp.BasicAuth{Username: user, Password: token}
		case token != "":
			ta.method = &githttp.TokenAuth{Token: token}
		case user != "" || pass != "":
			ta.method = &githttp.BasicAuth{Username: user, Password: pass}
		}
		if ta.method != nil && src.scheme == "http" && !isLoopbackHost(src.host) && !s.insecureHTTP {
			return ta, fmt.Errorf("%w to %s (host %s is not loopback; use https or the insecure-http option)",
				ErrInsecureTransport, src.shown, src.host)
		}
		if a.CAFile != "" && src.scheme == "https" {
			pem, err := os.ReadFile(a.CAFile)
			if err != nil {
				return ta, fmt.Errorf("%w: reading CA file: %v", ErrInvalidOptions, err)
			}
			if !x509.NewCertPool().AppendCertsFromPEM(pem) {
				return ta, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrInvalidOptions, a.CAFile)
			}
			ta.caBundle = pem
		}
	case "ssh":
		m, err := sshAuth(src, a, s)
		if err != nil {
			return ta, err
		}
		ta.method = m
	}
	return ta, nil
}

// sshAuth builds public-key auth with host key checking against an explicit
// known_hosts file (never the user's default files: what is trusted must be
// configured).
func sshAuth(src source, a Auth, s settings) (transport.AuthMethod, error) {
	user := src.user
	if user == "" {
		user = a.Username
	}
	if user == "" {
		user = "git"
	}
	if a.SSHKeyFile == "" {
		return nil, fmt.Errorf("%w: ssh URL %s needs a private key file", ErrInvalidOptions, src.shown)
	}
	pem, err := os.ReadFile(a.SSHKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: reading ssh key: %v", ErrInvalidOptions, err)
	}
	keys, err := gitssh.NewPublicKeys(user, pem, a.SSHKeyPassphrase)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("%w: ssh key %s is encrypted and no passphrase was given", ErrInvalidOptions, a.SSHKeyFile)
		}
		// The cause may mention the passphrase only by description, never
		// by value; keep it generic anyway.
		return nil, fmt.Errorf("%w: cannot load ssh key %s (wrong passphrase or not a private key)", ErrInvalidOptions, a.SSHKeyFile)
	}
	if s.insecureSkipHostKey {
		keys.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec // explicit opt-in
		return keys, nil
	}
	if a.KnownHostsFile == "" {
		return nil, fmt.Errorf("%w: ssh URL %s needs a known_hosts file (host key checking is only skipped with the insecure-skip-host-key-check option)",
			ErrInvalidOptions, src.shown)
	}
	if _, err := os.Stat(a.KnownHostsFile); err != nil {
		return nil, fmt.Errorf("%w: known_hosts: %v", ErrInvalidOptions, err)
	}
	db, err := gitssh.NewKnownHostsDb(a.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("%w: known_hosts %s: %v", ErrInvalidOptions, a.KnownHostsFile, err)
	}
	keys.HostKeyCallback = db.HostKeyCallback()
	// Offer only the key types known_hosts has for this host, so the
	// server does not pick a type we cannot verify.
	keys.HostKeyAlgorithms = db.HostKeyAlgorithms(sshHostPort(src))
	return keys, nil
}

// sshHostPort returns host:port of an ssh source (port 22 by default).
func sshHostPort(src source) string {
	port := "22"
	if u, err := url.Parse(src.url); err == nil && schemeRE.MatchString(src.url) && u.Port() != "" {
		port = u.Port()
	}
	return net.JoinHostPort(strings.Trim(src.host, "[]"), port)
}
