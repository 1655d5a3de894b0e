package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/integrity"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// cliFixture is a bare repo with a broker and an instance, a strict broker
// with basic auth, and a dir secret store holding the broker's credentials.
type cliFixture struct {
	repo   *gittest.Repo
	broker *osbtest.Broker
	store  string
	cache  string
}

const cliBrokerPass = "cli-broker-pass-9f2"

func newCLIFixture(t *testing.T) *cliFixture {
	t.Helper()
	b, srv := osbtest.NewServer(t, osbtest.Config{Username: "u", Password: cliBrokerPass})
	f := &cliFixture{broker: b, store: filepath.Join(t.TempDir(), "secrets"), cache: t.TempDir()}
	st, err := secretstore.NewDir(f.store)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), "osbgit-system", "broker-auth", secrets.Secret{Data: map[string][]byte{
		"username": []byte("u"), "password": []byte(cliBrokerPass)}}); err != nil {
		t.Fatal(err)
	}
	f.repo = gittest.New(t, map[string]string{
		"osbgit.yaml": "apiVersion: osbgit.dev/v1alpha1\nkind: Config\nclusterID: cli\nprune: true\n",
		"broker.yaml": fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata: {name: test}
spec:
  url: %s
  authInfo: {basic: {secretRef: {namespace: osbgit-system, name: broker-auth}}}
`, srv.URL),
		"apps/db.yaml": dbManifest("small"),
	})
	return f
}

func dbManifest(plan string) string {
	return `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata: {name: db, namespace: apps}
spec:
  clusterServiceClassExternalName: osbtest-db
  clusterServicePlanExternalName: ` + plan + `
  parameters: {size: 3}
`
}

func (f *cliFixture) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	base := []string{"--repo", f.repo.Bare, "--secret-store", "dir:" + f.store, "--cache-dir", f.cache}
	code := run(append(append([]string{args[0]}, base...), args[1:]...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDiffSyncCLI(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)

	// Changes pending: exit 1, only GET calls.
	code, out, errs := f.run(t, "diff")
	if code != exitChanges {
		t.Fatalf("diff exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitChanges, out, errs)
	}
	if !strings.Contains(out, "+ create ServiceInstance apps/db") || !strings.Contains(out, "Plan: 1 to create, 0 to update, 0 to delete.") {
		t.Fatalf("diff output:\n%s", out)
	}
	if n := len(f.broker.MutatingCalls()); n != 0 {
		t.Fatalf("diff made %d mutating calls", n)
	}
	for _, c := range f.broker.Calls() {
		if c.Method != "GET" {
			t.Fatalf("diff made a %s call", c.Method)
		}
	}

	// JSON view.
	code, out, _ = f.run(t, "diff", "-o", "json")
	var doc map[string]any
	if code != exitChanges || json.Unmarshal([]byte(out), &doc) != nil || doc["format_version"] == nil {
		t.Fatalf("diff -o json: exit %d\n%s", code, out)
	}

	// diff writes nothing into the secret store, not even the records key
	// (a key made there would not be the one that seals the records).
	keyDir := filepath.Join(f.store, "osbgit-system", integrity.KeySecretName)
	if _, err := os.Stat(keyDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("diff created the records key %s (stat: %v)", keyDir, err)
	}

	// Sync converges: exit 0, one provision, status committed.
	commits := f.repo.CommitCount()
	code, out, errs = f.run(t, "sync", "--no-state")
	if code != exitOK {
		t.Fatalf("sync exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if got := len(f.broker.Instances()); got != 1 {
		t.Fatalf("broker has %d instances after sync", got)
	}
	if f.repo.CommitCount() <= commits {
		t.Fatal("sync committed no status")
	}
	if _, err := os.Stat(keyDir); err != nil {
		t.Fatalf("sync made no records key: %v", err)
	}

	// In sync: exit 0.
	if code, out, errs = f.run(t, "diff"); code != exitOK || !strings.Contains(out, "No changes") {
		t.Fatalf("diff after sync: exit %d\n%s\n%s", code, out, errs)
	}

	// --offline makes no call at all and still sees the change.
	f.repo.Push("large", map[string]string{"apps/db.yaml": dbManifest("large")}, nil)
	f.broker.ResetCalls()
	code, out, errs = f.run(t, "diff", "--offline")
	if code != exitChanges || !strings.Contains(out, "~ update ServiceInstance apps/db") {
		t.Fatalf("diff --offline: exit %d\n%s\n%s", code, out, errs)
	}
	if n := len(f.broker.Calls()); n != 0 {
		t.Fatalf("diff --offline made %d broker calls", n)
	}

	// No credential anywhere: outputs, logs, Git history.
	for _, s := range []string{out, errs, f.repo.History()} {
		if strings.Contains(s, cliBrokerPass) {
			t.Fatal("the broker password leaked")
		}
	}
}

func TestDiffWorkingCopySeesUncommittedEdits(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	if code, out, errs := f.run(t, "sync", "--no-state"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	gittest.Git(t, f.repo.Clone(), "pull", "-q", "origin", "main")
	f.repo.Write(map[string]string{"apps/db.yaml": dbManifest("large")}) // not committed
	var out, errb bytes.Buffer
	code := run([]string{"diff", "--repo", f.repo.Clone(), "--secret-store", "dir:" + f.store, "--cache-dir", f.cache, "--offline"}, &out, &errb)
	if code != exitChanges || !strings.Contains(out.String(), "~ update ServiceInstance apps/db") {
		t.Fatalf("diff of a working copy: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}

func TestDiffErrorsNeverExitOne(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"missing repo":      {"diff", "--repo", filepath.Join(t.TempDir(), "nope")},
		"bad output format": {"diff", "--repo", ".", "-o", "xml"},
		"bad secret store":  {"diff", "--repo", ".", "--secret-store", "vault"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != exitError {
				t.Fatalf("exit %d, want %d; stderr %s", code, exitError, errb.String())
			}
		})
	}
}

func TestSyncRequiresSecretStore(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	var out, errb bytes.Buffer
	if code := run([]string{"sync", "--repo", f.repo.Bare}, &out, &errb); code != exitError || !strings.Contains(errb.String(), "--secret-store") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestCatalogCommand(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	if code, out, errs := f.run(t, "sync", "--no-state"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	f.broker.ResetCalls()
	code, out, errs := f.run(t, "catalog")
	if code != exitOK || !strings.Contains(out, "osbtest-db") || !strings.Contains(out, "small") {
		t.Fatalf("catalog: exit %d\n%s\n%s", code, out, errs)
	}
	if n := len(f.broker.Calls()); n != 0 {
		t.Fatalf("catalog from the cache made %d broker calls", n)
	}
	code, out, _ = f.run(t, "catalog", "--refresh", "-o", "json", "--broker", "test")
	var views []map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &views) != nil || len(views) != 1 || views[0]["live"] != true {
		t.Fatalf("catalog --refresh -o json: exit %d\n%s", code, out)
	}
	if n := len(f.broker.CallsTo(osbtest.EndpointCatalog)); n != 1 {
		t.Fatalf("catalog --refresh made %d catalog calls, want 1", n)
	}
	if code, _, errs = f.run(t, "catalog", "--broker", "nope"); code != exitError || !strings.Contains(errs, "nope") {
		t.Fatalf("unknown broker: exit %d %s", code, errs)
	}
}

// TestDiffExitCodeWhenPlanLeftCatalog: an in-sync instance whose plan left
// the catalog is a warning, not an error: diff exits 0. A blocked resource
// (invalid manifest) exits 2.
func TestDiffExitCodeWhenPlanLeftCatalog(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	if code, out, errs := f.run(t, "sync", "--no-state"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	cat := f.broker.Catalog()
	for i := range cat.Services {
		var plans = cat.Services[i].Plans[:0]
		for _, p := range cat.Services[i].Plans {
			if p.ID != osbtest.PlanDBSmall {
				plans = append(plans, p)
			}
		}
		cat.Services[i].Plans = plans
	}
	f.broker.SetCatalog(cat)
	if code, out, errs := f.run(t, "diff", "--refresh"); code != exitOK {
		t.Fatalf("diff with a vanished plan: exit %d, want 0\n%s\n%s", code, out, errs)
	}
	f.repo.Push("typo", map[string]string{"apps/db.yaml": strings.Replace(dbManifest("small"), "clusterServicePlanExternalName", "clusterServicePlanExternalNme", 1)}, nil)
	if code, out, errs := f.run(t, "diff", "--offline"); code != exitError {
		t.Fatalf("diff with an invalid manifest: exit %d, want 2\n%s\n%s", code, out, errs)
	}
}
