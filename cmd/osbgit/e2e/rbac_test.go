//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// The example deployment's names (examples/deploy).
const (
	systemNS       = "osbgit-system"
	serviceAccount = "osbgit"
	saUser         = "system:serviceaccount:osbgit-system:osbgit"
	// brokerAuth is a broker auth Secret name rbac.yaml lets osbgit read.
	brokerAuth = "demo-broker-auth"
	// stateConfigMap holds the CronJob's pass state (cronjob.yaml).
	stateConfigMap = "osbgit-state"
)

// deployDir is examples/deploy, relative to this package's directory (the
// working directory of `go test`).
var deployDir = filepath.Join("..", "..", "..", "examples", "deploy")

// applyManifests server-side applies every object of the given files of
// examples/deploy, as `kubectl apply --server-side` would.
func applyManifests(t testing.TB, files ...string) {
	t.Helper()
	c, err := client.New(adminConfig, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, time.Minute)
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(deployDir, f))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(obj) == 0 {
				continue // a document of comments only
			}
			u := &unstructured.Unstructured{Object: obj}
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("osbgit-e2e"), client.ForceOwnership); err != nil {
				t.Fatalf("%s: apply %s %s/%s: %v", f, u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
		}
	}
}

// setupServiceAccount applies the example deployment's namespace,
// ServiceAccount and RBAC (examples/deploy) and returns a kubeconfig that
// authenticates as that ServiceAccount with a token from the TokenRequest
// API (what the kubelet mounts into the pod), plus a clientset using it.
func setupServiceAccount(t testing.TB) (string, kubernetes.Interface) {
	t.Helper()
	applyManifests(t, "namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "rbac-targets.yaml", "cronjob.yaml")
	exp := int64(3600)
	tr, err := admin.CoreV1().ServiceAccounts(systemNS).CreateToken(ctxBG(t), serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", systemNS, serviceAccount, err)
	}
	path := writeTokenKubeconfig(t, "osbgit-sa", tr.Status.Token)
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200 // dozens of access reviews in a row
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return path, cs
}

// accessCheck is one SelfSubjectAccessReview question.
type accessCheck struct {
	verb, group, resource, namespace, name string
}

func (c accessCheck) String() string {
	s := c.verb + " " + c.resource
	if c.group != "" {
		s += "." + c.group
	}
	if c.name != "" {
		s += "/" + c.name
	}
	if c.namespace == "" {
		return s + " (cluster-wide)"
	}
	return s + " in " + c.namespace
}

// TestExampleRBAC applies examples/deploy's namespace, ServiceAccount and
// RBAC, authenticates as that ServiceAccount with a TokenRequest token, and
// shows that it can do what osbgit needs — Secrets in the target namespaces
// (default, apps), Leases in osbgit-system, its broker auth Secret by name —
// and nothing more (SelfSubjectAccessReviews and real calls that fail with
// 403). Then `osbgit sync` runs as the ServiceAccount: a binding in apps
// gets its Secret; one in a namespace without the Role fails with a clear
// "forbidden" error and writes nothing there.
func TestExampleRBAC(t *testing.T) {
	needEnv(t)
	kubeconfig, sa := setupServiceAccount(t)
	ctx := testContext(t, 2*time.Minute)

	// Who are we?
	who, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if who.Status.UserInfo.Username != saUser {
		t.Fatalf("authenticated as %q, want %q", who.Status.UserInfo.Username, saUser)
	}

	secretVerbs := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	var allowed, denied []accessCheck
	for _, ns := range []string{"default", "apps"} {
		for _, v := range secretVerbs {
			allowed = append(allowed, accessCheck{verb: v, resource: "secrets", namespace: ns})
		}
	}
	for _, v := range []string{"get", "create", "update"} {
		allowed = append(allowed, accessCheck{verb: v, group: "coordination.k8s.io", resource: "leases", namespace: systemNS})
	}
	for _, n := range []string{"git-credentials", brokerAuth, "osbgit-records-key", "osbgit-records-sequence"} {
		allowed = append(allowed, accessCheck{verb: "get", resource: "secrets", namespace: systemNS, name: n})
	}
	// run watches the broker auth Secret by name.
	for _, v := range []string{"list", "watch"} {
		allowed = append(allowed, accessCheck{verb: v, resource: "secrets", namespace: systemNS, name: brokerAuth})
	}
	// The records key and sequence are created by the first osbgit.
	allowed = append(allowed, accessCheck{verb: "create", resource: "secrets", namespace: systemNS},
		accessCheck{verb: "update", resource: "secrets", namespace: systemNS, name: "osbgit-records-sequence"})
	for _, v := range []string{"get", "update"} {
		allowed = append(allowed, accessCheck{verb: v, resource: "configmaps", namespace: systemNS, name: stateConfigMap})
	}
	denied = []accessCheck{
		{verb: "get", resource: "secrets", namespace: "kube-system"},
		{verb: "list", resource: "secrets", namespace: "kube-system"},
		{verb: "list", resource: "secrets"},
		{verb: "get", resource: "secrets"},
		{verb: "watch", resource: "secrets"},
		{verb: "list", resource: "secrets", namespace: systemNS},
		{verb: "get", resource: "secrets", namespace: systemNS, name: "some-other-secret"},
		{verb: "watch", resource: "secrets", namespace: systemNS},
		{verb: "watch", resource: "secrets", namespace: systemNS, name: "osbgit-records-key"},
		{verb: "update", resource: "secrets", namespace: systemNS, name: "osbgit-records-key"},
		{verb: "update", resource: "secrets", namespace: systemNS, name: brokerAuth},
		{verb: "delete", resource: "secrets", namespace: systemNS, name: brokerAuth},
		{verb: "get", resource: "secrets", namespace: "e2e-no-rbac"},
		{verb: "create", resource: "secrets", namespace: "e2e-no-rbac"},
		{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: systemNS},
		{verb: "list", group: "coordination.k8s.io", resource: "leases", namespace: systemNS},
		{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "default"},
		{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system"},
		{verb: "get", resource: "configmaps", namespace: "apps"},
		{verb: "create", resource: "configmaps", namespace: systemNS},
		{verb: "list", resource: "configmaps", namespace: systemNS},
		{verb: "delete", resource: "configmaps", namespace: systemNS, name: stateConfigMap},
		{verb: "get", resource: "configmaps", namespace: systemNS, name: "osbgit"},
		{verb: "update", resource: "configmaps", namespace: systemNS, name: "osbgit"},
		{verb: "list", resource: "pods", namespace: "apps"},
		{verb: "create", resource: "serviceaccounts/token", namespace: systemNS},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "roles", namespace: systemNS},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: "apps"},
		{verb: "create", resource: "namespaces"},
	}
	check := func(c accessCheck) bool {
		t.Helper()
		ra := &authorizationv1.ResourceAttributes{Verb: c.verb, Group: c.group, Namespace: c.namespace, Name: c.name}
		ra.Resource, ra.Subresource, _ = strings.Cut(c.resource, "/")
		r, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: ra}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SelfSubjectAccessReview %s: %v", c, err)
		}
		return r.Status.Allowed
	}
	for _, c := range allowed {
		if !check(c) {
			t.Errorf("the ServiceAccount cannot %s; osbgit needs it", c)
		}
	}
	for _, c := range denied {
		if check(c) {
			t.Errorf("the ServiceAccount can %s; it should not", c)
		}
	}

	// Real calls that must work.
	ensureNamespace(t, "e2e-no-rbac")
	upsertSecret(t, systemNS, brokerAuth, map[string]string{"username": "osbgit", "password": "rbac-broker-pass-51d0"})
	store := secretstore.NewKube(sa)
	if data, err := store.Get(ctx, systemNS, brokerAuth); err != nil || len(data["password"]) == 0 {
		t.Errorf("read the broker auth Secret: %v", err)
	}
	for _, ns := range []string{"default", "apps"} {
		sec := secrets.BindingSecret(map[string][]byte{"k": []byte("v1")}, ns, "rbac-probe", "id-1")
		if err := store.Put(ctx, ns, "rbac-probe", sec); err != nil {
			t.Errorf("create a Secret in %s: %v", ns, err)
		}
		sec.Data = map[string][]byte{"k": []byte("v2")}
		if err := store.Put(ctx, ns, "rbac-probe", sec); err != nil {
			t.Errorf("update a Secret in %s: %v", ns, err)
		}
		if err := store.Delete(ctx, ns, "rbac-probe"); err != nil {
			t.Errorf("delete a Secret in %s: %v", ns, err)
		}
	}
	leases := sa.CoordinationV1().Leases(systemNS)
	holder := "rbac-probe"
	l, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "e2e-rbac-probe"}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		l, err = leases.Get(ctx, "e2e-rbac-probe", metav1.GetOptions{})
	}
	if err != nil {
		t.Errorf("create/get a Lease in %s: %v", systemNS, err)
	} else if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Errorf("update a Lease in %s: %v", systemNS, err)
	}

	// Real calls that must fail with 403 Forbidden.
	forbidden := map[string]error{}
	_, forbidden["list Secrets cluster-wide"] = sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	_, forbidden["list Secrets in kube-system"] = sa.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	_, forbidden["get a Secret in kube-system"] = sa.CoreV1().Secrets("kube-system").Get(ctx, "anything", metav1.GetOptions{})
	_, forbidden["list Secrets in osbgit-system"] = sa.CoreV1().Secrets(systemNS).List(ctx, metav1.ListOptions{})
	_, forbidden["get an unlisted Secret in osbgit-system"] = sa.CoreV1().Secrets(systemNS).Get(ctx, "some-other-secret", metav1.GetOptions{})
	_, forbidden["read a Secret in a namespace without the Role"] = store.Get(ctx, "e2e-no-rbac", "anything")
	forbidden["write a Secret in a namespace without the Role"] = store.Put(ctx, "e2e-no-rbac", "x", secrets.BindingSecret(map[string][]byte{"k": []byte("v")}, "e2e-no-rbac", "x", ""))
	forbidden["delete a Lease"] = leases.Delete(ctx, "e2e-rbac-probe", metav1.DeleteOptions{})
	_, forbidden["list ConfigMaps in apps"] = sa.CoreV1().ConfigMaps("apps").List(ctx, metav1.ListOptions{})
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: got %v, want 403 Forbidden", what, err)
		}
	}

	// osbgit sync as the ServiceAccount.
	t.Run("sync", func(t *testing.T) { testSyncAsServiceAccount(t, kubeconfig) })
}

// testSyncAsServiceAccount runs `osbgit sync --secret-store kube` with the
// ServiceAccount's kubeconfig: broker auth from osbgit-system, a binding in
// apps (allowed) and one in e2e-no-rbac (no Role there).
func testSyncAsServiceAccount(t testing.TB, kubeconfig string) {
	const pass = "rbac-sync-broker-pass-0e77"
	deleteSecrets(t, "apps", "rbac-db-creds")
	upsertSecret(t, systemNS, brokerAuth, map[string]string{"username": "osbgit", "password": pass})
	b, srv := osbtest.NewServer(t, osbtest.Config{Username: "osbgit", Password: pass})
	repo := gittest.New(t, map[string]string{
		"osbgit.yaml":         configYAML("e2e-rbac"),
		"broker.yaml":         brokerYAML("test", srv.URL, systemNS, brokerAuth),
		"apps/db.yaml":        instanceYAML("apps", "rbac-db") + "---\n" + bindingYAML("apps", "rbac-db-binding", "rbac-db", "rbac-db-creds", ""),
		"elsewhere/db.yaml":   instanceYAML("e2e-no-rbac", "db") + "---\n" + bindingYAML("e2e-no-rbac", "db-binding", "db", "db-creds", ""),
		"elsewhere/README.md": "e2e-no-rbac has no osbgit-secrets Role\n",
	})
	code, out, errs := runOsbgit(t, subprocessEnv(t), "sync", "--repo", repo.Bare, "--secret-store", "kube",
		"--kubeconfig", kubeconfig, "--cache-dir", t.TempDir(), "--log-format", "json")
	if code != 1 {
		t.Errorf("sync exit %d, want 1 (one binding fails)\nstdout:\n%s\nstderr:\n%s", code, short(out), short(errs))
	}
	if s := getSecret(t, "apps", "rbac-db-creds"); s == nil || len(s.Data) == 0 {
		t.Errorf("no Secret apps/rbac-db-creds: the ServiceAccount could not write to a target namespace\nstdout:\n%s\nstderr:\n%s", short(out), short(errs))
	}
	if s := getSecret(t, "e2e-no-rbac", "db-creds"); s != nil {
		t.Error("a Secret was written in a namespace without the Role")
	}
	if !strings.Contains(strings.ToLower(out+errs), "forbidden") {
		t.Errorf("the failed binding's error does not say forbidden\nstdout:\n%s\nstderr:\n%s", short(out), short(errs))
	}
	rec := ""
	for _, f := range repo.Files(".osbgit/status/e2e-no-rbac") {
		if strings.Contains(f, "db-binding") {
			rec = repo.Show(f)
		}
	}
	if !strings.Contains(rec, "SecretWriteFailed") || !strings.Contains(strings.ToLower(rec), "forbidden") {
		t.Errorf("the status record of the failed binding does not say SecretWriteFailed/forbidden:\n%s\n(records: %v)", rec, repo.Files(".osbgit/status"))
	}
	if len(b.Instances()) != 2 {
		t.Errorf("broker has %d instances, want 2", len(b.Instances()))
	}
	for _, text := range []string{out, errs, repo.History()} {
		if strings.Contains(text, pass) {
			t.Error("the broker password leaked into output or Git")
		}
	}
}
