//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ensureNamespace creates namespace ns unless it exists.
func ensureNamespace(t testing.TB, ns string) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
}

// upsertSecret creates or replaces Secret ns/name with data, as a person
// with kubectl would (no osbgit labels).
func upsertSecret(t testing.TB, ns, name string, data map[string]string) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	_, err := admin.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := admin.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			t.Fatalf("get secret %s/%s: %v", ns, name, gerr)
		}
		cur.Data, cur.StringData = nil, data
		_, err = admin.CoreV1().Secrets(ns).Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("write secret %s/%s: %v", ns, name, err)
	}
}

// deleteSecrets deletes Secrets ns/names left by an earlier run (go test
// -count=N reuses the apiserver), so that waiting for osbgit to create them
// means something.
func deleteSecrets(t testing.TB, ns string, names ...string) {
	t.Helper()
	for _, name := range names {
		err := admin.CoreV1().Secrets(ns).Delete(ctxBG(t), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("delete secret %s/%s: %v", ns, name, err)
		}
	}
}

// getSecret reads Secret ns/name through the verifier client; nil when it
// does not exist.
func getSecret(t testing.TB, ns, name string) *corev1.Secret {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	s, err := verifier.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get secret %s/%s: %v", ns, name, err)
	}
	return s
}

// stringData returns a Secret's data as strings, for comparisons.
func stringData(s *corev1.Secret) map[string]string {
	out := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

// writeTokenKubeconfig writes a kubeconfig that reaches the envtest
// apiserver with a bearer token (a ServiceAccount's), as the one kubelet
// mounts would, and returns its path.
func writeTokenKubeconfig(t testing.TB, name, token string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: adminConfig.Host, CertificateAuthorityData: adminConfig.CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitFor polls cond every 100ms until it returns true or timeout passes,
// then fails the test with what.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// subprocessEnv is the environment of osbgit subprocesses: the test's, minus
// anything that would make the result depend on the machine (kubeconfig,
// OSBGIT_* settings, proxies, the pod identity), plus extra.
func subprocessEnv(t testing.TB, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch up := strings.ToUpper(k); {
		case strings.HasPrefix(up, "OSBGIT_"), up == "KUBECONFIG", up == "HTTP_PROXY", up == "HTTPS_PROXY", up == "NO_PROXY",
			up == "ALL_PROXY", up == "POD_NAME", up == "POD_NAMESPACE", up == "HOME", up == "XDG_CACHE_HOME":
			continue
		}
		env = append(env, kv)
	}
	// A HOME of its own: no ~/.kube/config, no user Git config.
	env = append(env, "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	return append(env, extra...)
}

// runOsbgit runs the osbgit binary to completion and returns its exit code,
// stdout and stderr.
func runOsbgit(t testing.TB, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	cmd := exec.CommandContext(ctx, osbgitBin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run osbgit %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemonProc is a long-running osbgit subprocess (osbgit run).
type daemonProc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer // stdout and stderr
	done chan struct{}
	err  error // set when done is closed
}

// startOsbgit starts osbgit in the background. The process is killed when
// the test ends if it is still running, and its output is logged when the
// test failed.
func startOsbgit(t testing.TB, name string, env []string, args ...string) *daemonProc {
	t.Helper()
	p := &daemonProc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(osbgitBin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start osbgit %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of osbgit %s:\n%s", name, short(p.out.String()))
		}
	})
	return p
}

// stop sends SIGTERM and waits up to timeout for the process to exit,
// returning its exit code.
func (p *daemonProc) stop(t testing.TB, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM osbgit %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("osbgit %s did not exit within %s of SIGTERM", p.name, timeout)
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("osbgit %s: %v", p.name, p.err)
	return -1
}

// exited reports whether the process has exited.
func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// brokerYAML is a ClusterServiceBroker manifest with basic auth from Secret
// authNS/authName.
func brokerYAML(name, url, authNS, authName string) string {
	return fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata:
  name: %s
spec:
  url: %s
  authInfo:
    basic:
      secretRef:
        namespace: %s
        name: %s
`, name, url, authNS, authName)
}

// instanceYAML is a ServiceInstance of osbtest's synchronous small
// database plan.
func instanceYAML(ns, name string) string {
	return fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata:
  name: %s
  namespace: %s
spec:
  clusterServiceClassExternalName: osbtest-db
  clusterServicePlanExternalName: small
  parameters:
    size: 1
`, name, ns)
}

// bindingYAML is a ServiceBinding of instance whose credentials go to
// Secret secretName; transforms is the YAML list of secretTransforms
// (indented for spec), or "".
func bindingYAML(ns, name, instance, secretName, transforms string) string {
	s := fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata:
  name: %s
  namespace: %s
spec:
  instanceRef:
    name: %s
  secretName: %s
`, name, ns, instance, secretName)
	if transforms != "" {
		s += "  secretTransforms:\n" + transforms
	}
	return s
}

// configYAML is an osbgit.yaml with prune on.
func configYAML(clusterID string) string {
	return "apiVersion: osbgit.dev/v1alpha1\nkind: Config\nclusterID: " + clusterID + "\nprune: true\n"
}

// ctxBG is a short-lived context for one API call.
func ctxBG(t testing.TB) context.Context { return testContext(t, 30*time.Second) }

// failureLog is a testing.TB that also keeps its failure messages and logs
// them again once every cleanup ran: the replicas' output, which startOsbgit
// logs on failure, would otherwise bury the reason under pages of JSON lines
// (CI shows the end of a failed test's output).
type failureLog struct {
	*testing.T
	mu   sync.Mutex
	msgs []string
}

// recordFailures wraps t; use the result in place of t.
func recordFailures(t *testing.T) *failureLog {
	f := &failureLog{T: t}
	t.Cleanup(func() { // registered first, so it runs last
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.msgs) > 0 {
			t.Logf("the failures above, again:\n%s", strings.Join(f.msgs, "\n"))
		}
	})
	return f
}

func (f *failureLog) keep(msg string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, msg)
	return msg
}

func (f *failureLog) Error(args ...any) { f.T.Helper(); f.T.Error(f.keep(fmt.Sprint(args...))) }
func (f *failureLog) Errorf(format string, args ...any) {
	f.T.Helper()
	f.T.Error(f.keep(fmt.Sprintf(format, args...)))
}
func (f *failureLog) Fatal(args ...any) { f.T.Helper(); f.T.Fatal(f.keep(fmt.Sprint(args...))) }
func (f *failureLog) Fatalf(format string, args ...any) {
	f.T.Helper()
	f.T.Fatal(f.keep(fmt.Sprintf(format, args...)))
}
