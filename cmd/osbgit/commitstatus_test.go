package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
)

// TestCommitStatusFlagsRefuseAtStartup: sync and run refuse a
// --commit-status that cannot work before any pass, with an error naming
// the problem and never the token.
func TestCommitStatusFlagsRefuseAtStartup(t *testing.T) {
	t.Parallel()
	const token = "forge-t0ken-value"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := gittest.New(t, map[string]string{"README.md": "x\n"})
	store := "dir:" + t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"local path", []string{"--commit-status", "github", "--commit-status-token-file", tokenFile}, "cannot tell the forge project from the local path"},
		{"unknown forge", []string{"--commit-status", "bitbucket", "--commit-status-token-file", tokenFile}, `unknown forge "bitbucket"`},
		{"no token file", []string{"--commit-status", "gitlab"}, "--commit-status needs --commit-status-token-file"},
		{"token without forge", []string{"--commit-status-token-file", tokenFile}, "need --commit-status github|gitlab|gitea"},
	} {
		for _, command := range []string{"sync", "run"} {
			t.Run(command+" "+tc.name, func(t *testing.T) {
				var out, errb bytes.Buffer
				args := append([]string{command, "--repo", repo.Bare, "--secret-store", store}, tc.args...)
				if code := run(args, &out, &errb); code != exitError {
					t.Fatalf("exit %d, want %d; stderr %q", code, exitError, errb.String())
				}
				if !strings.Contains(errb.String(), tc.want) || strings.Contains(errb.String()+out.String(), token) {
					t.Errorf("stderr %q: want %q, and never the token", errb.String(), tc.want)
				}
			})
		}
	}
}
