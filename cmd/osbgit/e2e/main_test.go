//go:build e2e

// Package e2e runs osbgit against a real kube-apiserver and etcd, started
// once for the whole package by controller-runtime's envtest: the kube
// secret store through client-go, `osbgit sync --secret-store kube` and
// `osbgit run --leader-elect` as subprocesses, and the example RBAC of
// examples/deploy with osbgit running as its ServiceAccount.
//
// The tests need the kube-apiserver and etcd binaries in the directory named
// by KUBEBUILDER_ASSETS and skip without it. `make e2e` builds them from the
// Go module proxy (.ci/k8s-test-assets.sh, cached outside the work tree) and
// runs
//
//	KUBEBUILDER_ASSETS=<dir> go test -tags e2e -count=1 ./cmd/osbgit/e2e/
//
// The build tag keeps these tests out of `go test ./...`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// The package-wide test environment, set up by TestMain.
var (
	// testEnv is the running control plane (kube-apiserver + etcd).
	testEnv *envtest.Environment
	// adminConfig is envtest's own admin user (system:masters).
	adminConfig *rest.Config
	// admin is a clientset for adminConfig: the tests' hands for setup.
	admin kubernetes.Interface
	// verifier is a clientset of a second, separate admin user: the
	// tests' eyes, reading back what osbgit wrote.
	verifier kubernetes.Interface
	// adminKubeconfig is a kubeconfig file for a third admin user, for
	// osbgit subprocesses that run with full rights.
	adminKubeconfig string
	// osbgitBin is the osbgit binary built from this tree.
	osbgitBin string
	// workDir holds the binary and kubeconfigs; removed at the end.
	workDir string
	// skipReason, when set, makes every test skip (no KUBEBUILDER_ASSETS).
	skipReason string
)

// TestMain builds osbgit, starts one kube-apiserver + etcd for the
// package, runs the tests and stops the control plane.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		skipReason = "KUBEBUILDER_ASSETS is unset: these tests need kube-apiserver and etcd binaries; run `make e2e`, which builds them (.ci/k8s-test-assets.sh) and sets it"
		return m.Run()
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: KUBEBUILDER_ASSETS=%s has no %s: %v\n", assets, b, err)
			return 1
		}
	}
	// envtest logs through controller-runtime's logger; without one it
	// complains after 30s. Errors only.
	ctrllog.SetLogger(funcr.New(func(prefix, args string) {
		fmt.Fprintln(os.Stderr, "envtest:", prefix, args)
	}, funcr.Options{Verbosity: 0}).V(1))

	var err error
	workDir, err = os.MkdirTemp("", "osbgit-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(workDir)

	start := time.Now()
	osbgitBin = filepath.Join(workDir, "osbgit")
	// Same environment as the test binary's build (no CGO_ENABLED=0, no
	// -race), so every package compiled for it is reused from the cache.
	build := exec.Command("go", "build", "-o", osbgitBin, "github.com/osbgit/osbgit/cmd/osbgit")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build osbgit: %v\n%s", err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built osbgit in %s\n", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	testEnv = &envtest.Environment{BinaryAssetsDirectory: assets}
	adminConfig, err = testEnv.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start kube-apiserver + etcd from %s: %v\n", assets, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: kube-apiserver + etcd started in %s (%s)\n", time.Since(start).Round(time.Millisecond), adminConfig.Host)
	adminConfig.QPS, adminConfig.Burst = 100, 200
	defer func() {
		start := time.Now()
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: stop control plane:", err)
		}
		fmt.Fprintf(os.Stderr, "e2e: control plane stopped in %s\n", time.Since(start).Round(time.Millisecond))
	}()

	if err := setupClients(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// setupClients creates the admin clientsets and the admin kubeconfig file.
func setupClients() error {
	var err error
	if admin, err = kubernetes.NewForConfig(adminConfig); err != nil {
		return err
	}
	v, err := testEnv.AddUser(envtest.User{Name: "e2e-verifier", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add verifier user: %w", err)
	}
	vc := rest.CopyConfig(v.Config())
	vc.QPS, vc.Burst = 100, 200
	if verifier, err = kubernetes.NewForConfig(vc); err != nil {
		return err
	}
	a, err := testEnv.AddUser(envtest.User{Name: "osbgit-e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kc, err := a.KubeConfig()
	if err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	adminKubeconfig = filepath.Join(workDir, "admin.kubeconfig")
	return os.WriteFile(adminKubeconfig, kc, 0o600)
}

// needEnv skips the test when there is no control plane.
func needEnv(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// testContext is a context that ends with the test (or after d).
func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// short trims long subprocess output for failure messages.
func short(s string) string {
	const max = 6000
	s = strings.TrimSpace(s)
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}
