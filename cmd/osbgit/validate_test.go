package main

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

const fixtures = "../../testdata/manifest/"

func TestValidateCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    []string // lines that must appear on stdout
		wantNotOut []string
		wantErr    string // substring of stderr
	}{
		{
			name:     "walkthrough repo is valid",
			args:     []string{"validate", "--repo", fixtures + "good/walkthrough"},
			wantCode: exitOK,
			wantErr:  "valid: 0 warnings (3 brokers, 3 instances, 2 bindings)",
		},
		{
			name:     "exported objects with status are valid",
			args:     []string{"validate", "--repo", fixtures + "good/exported"},
			wantCode: exitOK,
		},
		{
			name:     "config path is used and hidden dirs skipped",
			args:     []string{"validate", "--repo", fixtures + "good/mixed", "--broker-auth-namespaces", "osbgit-system,team"},
			wantCode: exitOK,
			wantErr:  "2 brokers, 2 instances, 1 bindings",
		},
		{
			name:     "broker auth Secrets only from the namespaces the operator allows",
			args:     []string{"validate", "--repo", fixtures + "good/mixed"},
			wantCode: exitInvalid,
			wantOut: []string{
				`manifests/team/broker.yaml:11: spec.authInfo.basic.secretRef.namespace: broker auth Secrets may only come from namespace(s) "osbgit-system" (set by the operator: --broker-auth-namespaces), not "team"`,
			},
		},
		{
			name:     "--path overrides the config",
			args:     []string{"validate", "--repo", fixtures + "good/mixed", "--path", "manifests/team", "--broker-auth-namespaces", "team"},
			wantCode: exitOK,
			wantErr:  "1 brokers, 1 instances, 0 bindings",
		},
		{
			name:     "duplicates are invalid and both places named",
			args:     []string{"validate", "--repo", fixtures + "errors/duplicate"},
			wantCode: exitInvalid,
			wantOut: []string{
				"a/db.yaml:8: metadata.name: duplicate ServiceInstance default/db: also defined at b/db.yaml:2",
				"b/db.yaml:2: metadata.name: duplicate ServiceInstance default/db: also defined at a/db.yaml:8",
			},
			wantErr: "invalid: 2 errors",
		},
		{
			name:     "config errors",
			args:     []string{"validate", "--repo", fixtures + "errors/config", "--path", "."},
			wantCode: exitInvalid,
			wantOut: []string{
				`osbgit.yaml:3: maxDeletion: unknown field "maxDeletion" (did you mean "maxDeletions"?)`,
				`warning: broker.yaml:13: kind: unknown kind "ClusterServiceBrokr" for servicecatalog.k8s.io/v1beta1; document ignored`,
			},
		},
		{
			name:     "cached catalogs are used",
			args:     []string{"validate", "--repo", fixtures + "catalog/resolve"},
			wantCode: exitInvalid,
			wantOut: []string{
				`instances.yaml:31: spec.parameters.size: maximum: got 1,000, want 100 (plan schema service_instance.create)`,
				`bindings.yaml:7: spec.instanceRef.name: plan "cache" of class "redis" is not bindable`,
				`warning: instances.yaml:107: spec.clusterServiceClassExternalName: class "kafka" (by external name) not found; no catalog yet for ClusterServiceBroker fresh`,
			},
			wantErr: "checked against 3 cached catalogs",
		},
		{
			name:     "existing instances use the update schema",
			args:     []string{"validate", "--repo", fixtures + "catalog/existing"},
			wantCode: exitInvalid,
			wantOut: []string{
				`manifests.yaml:17: spec.parameters: additional properties 'version' not allowed (plan schema service_instance.update)`,
			},
		},
		{
			name:     "missing repo is an error",
			args:     []string{"validate", "--repo", fixtures + "does-not-exist"},
			wantCode: exitError,
			wantErr:  "does-not-exist",
		},
		{
			name:     "missing path is an error",
			args:     []string{"validate", "--repo", fixtures + "good/walkthrough", "--path", "nope"},
			wantCode: exitError,
			wantErr:  `manifest path "nope"`,
		},
		{
			name:     "file as path is an error",
			args:     []string{"validate", "--repo", fixtures + "good/walkthrough", "--path", "ups-binding.yaml"},
			wantCode: exitError,
			wantErr:  "not a directory",
		},
		{
			name:     "extra arguments are an error",
			args:     []string{"validate", "extra"},
			wantCode: exitError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out.String(), errb.String())
			}
			lines := strings.Split(out.String(), "\n")
			for _, w := range tt.wantOut {
				found := false
				for _, l := range lines {
					if l == w {
						found = true
					}
				}
				if !found {
					t.Errorf("stdout lacks line %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.wantNotOut {
				if strings.Contains(out.String()+errb.String(), w) {
					t.Errorf("output contains %q", w)
				}
			}
			if !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errb.String(), tt.wantErr)
			}
		})
	}
}

// TestValidateUsesTreeSeam checks that validate reads manifests through
// manifestTree, which the Git layer replaces to serve a commit's tree.
func TestValidateUsesTreeSeam(t *testing.T) {
	tree := fstest.MapFS{
		"svc/instance.yaml": &fstest.MapFile{Data: []byte(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata:
  name: db
spec:
  clusterServiceClassExternalName: mysql
  clusterServicePlanExternalName: small
  clusterServiceBrokerName: missing
`)},
	}
	old := manifestTree
	t.Cleanup(func() { manifestTree = old })
	var closed bool
	manifestTree = func(g *globalOptions) (fs.FS, func() error, error) {
		if g.Repo != "git@example.com:ops/manifests.git" {
			t.Errorf("repo %q", g.Repo)
		}
		return tree, func() error { closed = true; return nil }, nil
	}
	var out, errb bytes.Buffer
	code := run([]string{"validate", "--repo", "git@example.com:ops/manifests.git"}, &out, &errb)
	if code != exitInvalid {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	want := `svc/instance.yaml:8: spec.clusterServiceBrokerName: no ClusterServiceBroker "missing" in the repository`
	if !strings.Contains(out.String(), want) {
		t.Errorf("stdout %q lacks %q", out.String(), want)
	}
	if !closed {
		t.Error("tree not closed")
	}

	manifestTree = func(*globalOptions) (fs.FS, func() error, error) {
		return nil, nil, errors.New("clone failed")
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"validate"}, &out, &errb); code != exitError || !strings.Contains(errb.String(), "clone failed") {
		t.Errorf("tree error: exit %d, stderr %q", code, errb.String())
	}
}

// TestOpenLocalTree covers the default tree (used when no Git layer is
// wired in): local directories only, URLs refused with the password hidden.
func TestOpenLocalTree(t *testing.T) {
	t.Parallel()
	tests := []struct {
		repo    string
		wantErr string
	}{
		{fixtures + "good/walkthrough", ""},
		{"", ""},
		{fixtures + "does-not-exist", "--repo"},
		{fixtures + "good/walkthrough/ups-binding.yaml", "not a directory"},
		{"https://bob:s3cret@git.example.com/ops.git", "https://bob:REDACTED@git.example.com/ops.git: remote repositories are not supported"},
		{"git@github.com:ops/repo.git", "remote repositories are not supported"},
	}
	for _, tt := range tests {
		fsys, closeFn, err := openLocalTree(&globalOptions{Repo: tt.repo})
		if tt.wantErr == "" {
			if err != nil || fsys == nil || closeFn != nil {
				t.Errorf("%q: fsys %v close %v err %v", tt.repo, fsys, closeFn != nil, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: err %v, want %q", tt.repo, err, tt.wantErr)
		}
	}
}

func TestLooksLikeURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"https://github.com/a/b.git", true},
		{"ssh://git@host/a.git", true},
		{"git@github.com:a/b.git", true},
		{"/srv/repos/ops", false},
		{"./ops", false},
		{"dir/with@at:colon", false},
		{"C:/repos", false},
	}
	for _, tt := range tests {
		if got := looksLikeURL(tt.in); got != tt.want {
			t.Errorf("looksLikeURL(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
