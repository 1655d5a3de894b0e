package gitrepo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// newSSHKey returns a fresh ed25519 signer.
func newSSHKey(t *testing.T) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

// writeKey writes an OpenSSH private key file, encrypted when passphrase is
// set.
func writeKey(t *testing.T, priv ed25519.PrivateKey, passphrase string) string {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeKnownHosts writes a known_hosts file with one line per host:key.
func writeKnownHosts(t *testing.T, entries map[string]ssh.PublicKey) string {
	t.Helper()
	var b strings.Builder
	for addr, key := range entries {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key))
		b.WriteString("\n")
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSSHAuthConfig(t *testing.T) {
	t.Parallel()
	_, clientPriv := newSSHKey(t)
	hostSigner, _ := newSSHKey(t)
	otherHost, _ := newSSHKey(t)
	plainKey := writeKey(t, clientPriv, "")
	const passphrase = "c0rrect-horse"
	encKey := writeKey(t, clientPriv, passphrase)
	kh := writeKnownHosts(t, map[string]ssh.PublicKey{"git.example.com:22": hostSigner.PublicKey()})

	tests := []struct {
		name string
		url  string
		a    Auth
		opts []Option
		want error // nil: builds
		user string
	}{
		{"key and known_hosts", "ssh://git.example.com/r.git", Auth{SSHKeyFile: plainKey, KnownHostsFile: kh}, nil, nil, "git"},
		{"scp-like user", "deploy@git.example.com:org/r.git", Auth{SSHKeyFile: plainKey, KnownHostsFile: kh}, nil, nil, "deploy"},
		{"user option", "ssh://git.example.com/r.git", Auth{Username: "ci", SSHKeyFile: plainKey, KnownHostsFile: kh}, nil, nil, "ci"},
		{"encrypted key", "ssh://git.example.com/r.git", Auth{SSHKeyFile: encKey, SSHKeyPassphrase: passphrase, KnownHostsFile: kh}, nil, nil, "git"},
		{"known_hosts required", "ssh://git.example.com/r.git", Auth{SSHKeyFile: plainKey}, nil, ErrInvalidOptions, ""},
		{"known_hosts missing", "ssh://git.example.com/r.git", Auth{SSHKeyFile: plainKey, KnownHostsFile: kh + ".nope"}, nil, ErrInvalidOptions, ""},
		{"explicit skip", "ssh://git.example.com/r.git", Auth{SSHKeyFile: plainKey}, []Option{WithInsecureSkipHostKeyCheck()}, nil, "git"},
		{"key required", "ssh://git.example.com/r.git", Auth{KnownHostsFile: kh}, nil, ErrInvalidOptions, ""},
		{"passphrase missing", "ssh://git.example.com/r.git", Auth{SSHKeyFile: encKey, KnownHostsFile: kh}, nil, ErrInvalidOptions, ""},
		{"wrong passphrase", "ssh://git.example.com/r.git", Auth{SSHKeyFile: encKey, SSHKeyPassphrase: "wr0ng-horse", KnownHostsFile: kh}, nil, ErrInvalidOptions, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(context.Background(), Options{URL: tc.url, Branch: "main", Auth: tc.a}, tc.opts...)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Open = %v, want %v", err, tc.want)
				}
				assertNoSecrets(t, err, passphrase, "wr0ng-horse")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			keys, ok := r.auth.method.(*gitssh.PublicKeys)
			if !ok || keys.User != tc.user {
				t.Fatalf("auth = %#v", r.auth.method)
			}
			cfg, err := keys.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 22}
			if err := cfg.HostKeyCallback("git.example.com:22", addr, hostSigner.PublicKey()); err != nil {
				t.Fatalf("known host rejected: %v", err)
			}
			if len(tc.opts) > 0 {
				return // checks skipped on request
			}
			if !strings.Contains(strings.Join(cfg.HostKeyAlgorithms, ","), "ssh-ed25519") {
				t.Errorf("HostKeyAlgorithms = %v", cfg.HostKeyAlgorithms)
			}
			err = cfg.HostKeyCallback("git.example.com:22", addr, otherHost.PublicKey())
			if classify(err) != ErrHostKey {
				t.Errorf("changed host key: %v (kind %v)", err, classify(err))
			}
			err = cfg.HostKeyCallback("other.example.com:22", addr, hostSigner.PublicKey())
			if classify(err) != ErrHostKey {
				t.Errorf("unknown host: %v (kind %v)", err, classify(err))
			}
		})
	}
}

// sshGitServer is a minimal in-process SSH server that runs git-upload-pack
// and git-receive-pack on repositories under root for one authorised key.
type sshGitServer struct {
	addr    string
	hostKey ssh.Signer
	wg      sync.WaitGroup
}

func newSSHGitServer(t *testing.T, root string, authorized ssh.PublicKey) *sshGitServer {
	t.Helper()
	hostKey, _ := newSSHKey(t)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unauthorised key")
		},
	}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshGitServer{addr: l.Addr().String(), hostKey: hostKey}
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c, cfg, root)
			}()
		}
	}()
	return s
}

func (s *sshGitServer) serve(c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range chReqs {
				if req.Type != "exec" {
					if req.WantReply {
						req.Reply(false, nil)
					}
					continue
				}
				var payload struct{ Command string }
				ssh.Unmarshal(req.Payload, &payload)
				svc, arg, _ := strings.Cut(payload.Command, " ")
				if svc != "git-upload-pack" && svc != "git-receive-pack" {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				dir := filepath.Join(root, filepath.Clean("/"+strings.Trim(arg, "'")))
				cmd := exec.Command("git", strings.TrimPrefix(svc, "git-"), dir)
				cmd.Env = gitEnv()
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				status := uint32(0)
				if err := cmd.Run(); err != nil {
					status = 1
				}
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], status)
				ch.SendRequest("exit-status", false, b[:])
				return
			}
		}()
	}
}

func TestSSHLive(t *testing.T) {
	t.Parallel()
	tr := newTestRepo(t, baseFiles)
	clientSigner, clientPriv := newSSHKey(t)
	srv := newSSHGitServer(t, tr.root, clientSigner.PublicKey())
	// Unencrypted keys: bcrypt key derivation is slow under -race and the
	// passphrase path is covered by TestSSHAuthConfig.
	key := writeKey(t, clientPriv, "")
	kh := writeKnownHosts(t, map[string]ssh.PublicKey{srv.addr: srv.hostKey.PublicKey()})
	url := "ssh://git@" + srv.addr + "/repo.git"
	auth := Auth{SSHKeyFile: key, KnownHostsFile: kh}

	t.Run("fetch and write", func(t *testing.T) {
		r := mustOpen(t, Options{URL: url, Branch: "main", Auth: auth}, WithCacheDir(t.TempDir()))
		if fr := mustFetch(t, r); fr.Head != tr.head("main") {
			t.Fatalf("fetch = %+v", fr)
		}
		res, err := r.WriteStatus(testCtx(t), ChangeSet{Message: "over ssh", Files: map[string][]byte{statusPath: []byte("ssh\n")}})
		if err != nil || res.Commit != tr.head("main") {
			t.Fatalf("write = %+v, %v", res, err)
		}
	})

	otherHost, _ := newSSHKey(t)
	_, otherPriv := newSSHKey(t)
	tests := []struct {
		name string
		a    Auth
		want error
	}{
		{"host key changed", Auth{SSHKeyFile: key,
			KnownHostsFile: writeKnownHosts(t, map[string]ssh.PublicKey{srv.addr: otherHost.PublicKey()})}, ErrHostKey},
		{"host unknown", Auth{SSHKeyFile: key,
			KnownHostsFile: writeKnownHosts(t, map[string]ssh.PublicKey{"elsewhere.example.com:22": srv.hostKey.PublicKey()})}, ErrHostKey},
		{"client key not authorised", Auth{SSHKeyFile: writeKey(t, otherPriv, ""), KnownHostsFile: kh}, ErrAuthFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustOpen(t, Options{URL: url, Branch: "main", Auth: tc.a})
			_, err := r.RemoteHead(testCtx(t), "")
			if !errors.Is(err, tc.want) {
				t.Fatalf("RemoteHead = %v, want %v", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}
