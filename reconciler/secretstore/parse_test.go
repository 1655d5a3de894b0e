package secretstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

func TestParse(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	fakeClient := fake.NewClientset()
	var gotKubeconfig string
	opts := Options{
		Kubeconfig: "/path/to/kubeconfig",
		NewKubeClient: func(kubeconfig string) (kubernetes.Interface, error) {
			gotKubeconfig = kubeconfig
			return fakeClient, nil
		},
	}
	tests := []struct {
		spec    string
		wantDir string // for dir: stores
		kube    bool
		wantErr string
	}{
		{spec: "kube", kube: true},
		{spec: "dir:/var/lib/osbgit/secrets", wantDir: "/var/lib/osbgit/secrets"},
		{spec: "dir:/var/lib/osbgit/secrets/", wantDir: "/var/lib/osbgit/secrets"},
		{spec: "dir:rel/secrets", wantDir: filepath.Join(cwd, "rel/secrets")},
		{spec: "dir:/a:b", wantDir: "/a:b"},
		{spec: "", wantErr: `invalid secret store "": want "kube" or "dir:PATH"`},
		{spec: "dir:", wantErr: `invalid secret store "dir:": dir: needs a path`},
		{spec: "dir", wantErr: `want "kube" or "dir:PATH"`},
		{spec: "Kube", wantErr: `want "kube" or "dir:PATH"`},
		{spec: "kube:ctx", wantErr: `want "kube" or "dir:PATH"`},
		{spec: "file:/tmp", wantErr: `want "kube" or "dir:PATH"`},
		{spec: " dir:/x", wantErr: `want "kube" or "dir:PATH"`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := Parse(tt.spec, opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch s := s.(type) {
			case *Kube:
				if !tt.kube {
					t.Fatalf("got a kube store")
				}
				if s.client != fakeClient || gotKubeconfig != "/path/to/kubeconfig" {
					t.Errorf("kube store not built from the injected client and kubeconfig (%q)", gotKubeconfig)
				}
			case *Dir:
				if s.Path() != tt.wantDir {
					t.Errorf("path = %q, want %q", s.Path(), tt.wantDir)
				}
			default:
				t.Fatalf("unexpected store %T", s)
			}
		})
	}
}

func TestParseKubeClientError(t *testing.T) {
	_, err := Parse("kube", Options{NewKubeClient: func(string) (kubernetes.Interface, error) {
		return nil, errors.New("no cluster")
	}})
	if err == nil || err.Error() != "secret store kube: no cluster" {
		t.Errorf("err = %v", err)
	}
}

// TestParsedStoresWork runs the same round trip through both kinds of
// store Parse returns.
func TestParsedStoresWork(t *testing.T) {
	ctx := context.Background()
	opts := Options{NewKubeClient: func(string) (kubernetes.Interface, error) { return fake.NewClientset(), nil }}
	for _, spec := range []string{"kube", "dir:" + t.TempDir()} {
		t.Run(strings.SplitN(spec, ":", 2)[0], func(t *testing.T) {
			s, err := Parse(spec, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, "ns", "s", secrets.BindingSecret(map[string][]byte{"k": []byte("v")}, "ns", "b", "id")); err != nil {
				t.Fatal(err)
			}
			if data, err := s.Get(ctx, "ns", "s"); err != nil || len(data) != 1 || string(data["k"]) != "v" {
				t.Fatalf("Get = %q, %v", data, err)
			}
			if err := s.Delete(ctx, "ns", "s"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "ns", "s"); !errors.Is(err, ErrNotFound) {
				t.Errorf("after delete: %v", err)
			}
		})
	}
}

const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://%s:6443
contexts:
- name: ctx
  context:
    cluster: c
    user: u
current-context: ctx
users:
- name: u
  user:
    token: not-a-real-token
`

func writeKubeconfig(t *testing.T, host string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(strings.Replace(testKubeconfig, "%s", host, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadKubeConfig(t *testing.T) {
	// Not in a cluster, no ~/.kube/config.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	t.Setenv("HOME", t.TempDir())
	explicit := writeKubeconfig(t, "explicit.example")
	fromEnv := writeKubeconfig(t, "env.example")

	tests := []struct {
		name       string
		kubeconfig string
		env        string
		wantHost   string
		wantErr    string
	}{
		{name: "explicit path", kubeconfig: explicit, env: fromEnv, wantHost: "https://explicit.example:6443"},
		{name: "$KUBECONFIG", env: fromEnv, wantHost: "https://env.example:6443"},
		{name: "nothing", wantErr: "no kubernetes configuration"},
		{name: "explicit path missing", kubeconfig: filepath.Join(t.TempDir(), "missing"), wantErr: "load kubeconfig "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tt.env)
			cfg, err := LoadKubeConfig(tt.kubeconfig)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tt.wantHost {
				t.Errorf("host = %q, want %q", cfg.Host, tt.wantHost)
			}
			if cfg.UserAgent != "osbgit" || cfg.QPS != 20 || cfg.Burst != 50 {
				t.Errorf("user agent %q, qps %v, burst %d", cfg.UserAgent, cfg.QPS, cfg.Burst)
			}
		})
	}
	if _, err := NewKubeFromKubeconfig(explicit); err != nil {
		t.Errorf("NewKubeFromKubeconfig: %v", err)
	}
}
