//go:build e2e

package e2e

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// syncTransforms exercises every kind of secretTransform; see
// TestSyncKubeSecretStore for the Secret it must produce.
const syncTransforms = `  - renameKey:
      from: uri
      to: DATABASE_URL
  - addKey:
      key: PGSSLMODE
      stringValue: require
  - addKey:
      key: HOSTPORT
      jsonPathExpression: "{.host}:{.port}"
  - removeKey:
      key: ssl
  - addKeysFrom:
      secretRef:
        name: app-extra
`

// TestSyncKubeSecretStore runs `osbgit sync --secret-store kube` as a
// subprocess against a bare Git repo, an osbtest broker with basic auth
// whose credentials are a Secret in the apiserver, and the apiserver as the
// secret store: the binding's Secret appears in the target namespace with
// the credentials transformed per secretTransforms (addKeysFrom reading
// another Secret there), a second sync writes nothing, and removing the
// binding manifest (prune) deletes the Secret.
func TestSyncKubeSecretStore(t *testing.T) {
	needEnv(t)
	const (
		ns       = "e2e-sync"
		systemNS = "e2e-sync-system"
		pass     = "sync-broker-pass-7c1e"
	)
	ensureNamespace(t, ns)
	ensureNamespace(t, systemNS)
	upsertSecret(t, systemNS, "broker-auth", map[string]string{"username": "osbgit", "password": pass})
	upsertSecret(t, ns, "app-extra", map[string]string{"APP_ENV": "production"})

	b, srv := osbtest.NewServer(t, osbtest.Config{Username: "osbgit", Password: pass, RequireOriginatingIdentity: true})
	repo := gittest.New(t, map[string]string{
		"osbgit.yaml":        configYAML("e2e-sync"),
		"brokers/test.yaml":  brokerYAML("test", srv.URL, systemNS, "broker-auth"),
		"apps/db.yaml":       instanceYAML(ns, "db"),
		"apps/db-bind.yaml":  bindingYAML(ns, "db-binding", "db", "db-creds", syncTransforms),
		"apps/README.md":     "not a manifest\n",
		"apps/unrelated.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n",
	})
	env := subprocessEnv(t)
	cache := t.TempDir()
	sync := func() (int, string, string) {
		return runOsbgit(t, env, "sync", "--repo", repo.Bare, "--secret-store", "kube", "--kubeconfig", adminKubeconfig,
			"--cache-dir", cache, "--log-format", "json", "--broker-auth-namespaces", systemNS)
	}

	code, out, errs := sync()
	if code != 0 {
		t.Fatalf("sync: exit %d\nstdout:\n%s\nstderr:\n%s", code, short(out), short(errs))
	}
	if n := len(b.Instances()); n != 1 {
		t.Fatalf("broker has %d instances, want 1", n)
	}
	bindings := b.Bindings()
	if len(bindings) != 1 {
		t.Fatalf("broker has %d bindings, want 1", len(bindings))
	}
	var bindingID string
	var creds map[string]any
	for id, bn := range bindings {
		bindingID, creds = id, bn.Credentials
	}

	s := getSecret(t, ns, "db-creds")
	if s == nil {
		t.Fatalf("no Secret %s/db-creds after sync\nstdout:\n%s\nstderr:\n%s", ns, short(out), short(errs))
	}
	want := map[string]string{}
	for k, v := range creds {
		if str, ok := v.(string); ok {
			want[k] = str
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want[k] = string(j)
	}
	want["DATABASE_URL"] = want["uri"]
	delete(want, "uri")
	delete(want, "ssl")
	want["PGSSLMODE"] = "require"
	want["HOSTPORT"] = creds["host"].(string) + ":5432"
	want["APP_ENV"] = "production"
	got := stringData(s)
	if !maps.Equal(got, want) {
		t.Errorf("Secret keys %v, want %v", keysOf(got), keysOf(want))
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("key %s differs from the transformed credential", k)
			}
		}
	}
	if got["port"] != "5432" || !strings.HasPrefix(got["hosts"], `["`) {
		t.Errorf("non-string credentials are not JSON (port, hosts)")
	}
	wantLabels := map[string]string{
		secrets.LabelManagedBy:        "osbgit",
		secrets.LabelBindingNamespace: ns,
		secrets.LabelBindingName:      "db-binding",
	}
	if !maps.Equal(s.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", s.Labels, wantLabels)
	}
	if s.Annotations[secrets.AnnotationBindingExternalID] != bindingID || s.Annotations[secrets.AnnotationBindingName] != "db-binding" {
		t.Errorf("annotations %v, want binding name db-binding and external ID %s", s.Annotations, bindingID)
	}

	// The record points at the Secret; no credential is in Git or output.
	rec := ""
	for _, f := range repo.Files(".osbgit/status") {
		if strings.Contains(f, "db-binding") {
			rec = repo.Show(f)
		}
	}
	if !strings.Contains(rec, "db-creds") {
		t.Errorf("no status record of the binding names Secret db-creds; records: %v", repo.Files(".osbgit/status"))
	}
	history := repo.History()
	for _, secret := range []string{pass, creds["password"].(string), want["DATABASE_URL"], "production"} {
		for where, text := range map[string]string{"Git history": history, "stdout": out, "stderr": errs} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret value appears in %s", where)
			}
		}
	}

	// A second pass changes nothing: same Secret, same resourceVersion.
	rv := s.ResourceVersion
	mutating := len(b.MutatingCalls())
	if code, out, errs := sync(); code != 0 {
		t.Fatalf("second sync: exit %d\nstdout:\n%s\nstderr:\n%s", code, short(out), short(errs))
	}
	if s := getSecret(t, ns, "db-creds"); s == nil || s.ResourceVersion != rv {
		t.Error("a no-op sync rewrote the Secret")
	}
	if n := len(b.MutatingCalls()); n != mutating {
		t.Errorf("a no-op sync made %d mutating broker calls", n-mutating)
	}

	// Removing the binding manifest (prune: true) unbinds and deletes the
	// Secret; the instance stays.
	repo.Push("remove the binding", nil, []string{filepath.ToSlash("apps/db-bind.yaml")})
	if code, out, errs := sync(); code != 0 {
		t.Fatalf("sync after removing the binding: exit %d\nstdout:\n%s\nstderr:\n%s", code, short(out), short(errs))
	}
	if getSecret(t, ns, "db-creds") != nil {
		t.Error("the Secret of the removed binding still exists")
	}
	if n := len(b.Bindings()); n != 0 {
		t.Errorf("broker still has %d bindings", n)
	}
	if n := len(b.Instances()); n != 1 {
		t.Errorf("broker has %d instances, want 1 (the instance manifest is still there)", n)
	}
	if getSecret(t, ns, "app-extra") == nil {
		t.Error("the addKeysFrom source Secret was deleted")
	}
}

// TestSyncStateConfigMap runs the CronJob's command line twice as the
// example ServiceAccount, each time with an empty cache directory (a new
// pod): the first pass converges and saves its state in the osbgit-state
// ConfigMap that cronjob.yaml creates; the second, with nothing to do, ends
// after one ref lookup, with no broker call and no commit.
func TestSyncStateConfigMap(t *testing.T) {
	needEnv(t)
	kubeconfig, _ := setupServiceAccount(t)
	const pass = "state-broker-pass-3b9a"
	upsertSecret(t, systemNS, brokerAuth, map[string]string{"username": "osbgit", "password": pass})
	deleteSecrets(t, "apps", "state-db-creds")
	b, srv := osbtest.NewServer(t, osbtest.Config{Username: "osbgit", Password: pass})
	repo := gittest.New(t, map[string]string{
		"osbgit.yaml":  configYAML("e2e-state"),
		"broker.yaml":  brokerYAML("test", srv.URL, systemNS, brokerAuth),
		"apps/db.yaml": instanceYAML("apps", "state-db") + "---\n" + bindingYAML("apps", "state-db-binding", "state-db", "state-db-creds", ""),
	})
	env := subprocessEnv(t)
	sync := func() (int, string, string) {
		return runOsbgit(t, env, "sync", "--repo", repo.Bare, "--secret-store", "kube", "--kubeconfig", kubeconfig,
			"--cache-dir", t.TempDir(), "--state-configmap", systemNS+"/"+stateConfigMap, "--log-format", "json")
	}
	code, out, errs := sync()
	if code != 0 {
		t.Fatalf("first sync: exit %d\nstdout:\n%s\nstderr:\n%s", code, short(out), short(errs))
	}
	if s := getSecret(t, "apps", "state-db-creds"); s == nil || len(s.Data) == 0 {
		t.Fatal("the first sync wrote no Secret apps/state-db-creds")
	}
	cm, err := admin.CoreV1().ConfigMaps(systemNS).Get(ctxBG(t), stateConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var saved []string
	for key, data := range cm.Data {
		var st struct {
			ObservedHead string `json:"observedHead"`
		}
		if err := json.Unmarshal([]byte(data), &st); err != nil {
			t.Errorf("ConfigMap key %s: %v\n%s", key, err, data)
		}
		if st.ObservedHead != "" {
			saved = append(saved, key)
		}
	}
	if len(saved) == 0 {
		t.Fatalf("no pass state in ConfigMap %s/%s: %v\nstderr:\n%s", systemNS, stateConfigMap, cm.Data, short(errs))
	}
	commits := repo.CommitCount()
	b.ResetCalls()

	code, out, errs = sync()
	if code != 0 || !strings.Contains(out, "Nothing to do") {
		t.Errorf("second sync (new pod, state in the ConfigMap): exit %d, want 0 and \"Nothing to do\"\nstdout:\n%s\nstderr:\n%s", code, short(out), short(errs))
	}
	if calls := b.Calls(); len(calls) != 0 {
		t.Errorf("second sync made %d broker calls, want none: %v", len(calls), calls)
	}
	if n := repo.CommitCount(); n != commits {
		t.Errorf("second sync made %d commits, want none", n-commits)
	}
	for _, text := range []string{out, errs, repo.History()} {
		if strings.Contains(text, pass) {
			t.Error("the broker password leaked into output or Git")
		}
	}
}
