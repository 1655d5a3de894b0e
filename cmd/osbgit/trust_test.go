package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// The CI recipe (`osbgit diff --branch <pr> -o json`) on a pull request
// that points a new broker at its own URL with an existing auth Secret:
// nothing reaches that URL, the broker's entry says why, and diff exits 2
// because the pull request's instance cannot be planned.
func TestDiffOfPullRequestCLI(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	if code, out, errs := f.run(t, "sync"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer evil.Close()
	f.repo.PushBranch("pr", "a broker of my own", map[string]string{
		"evil.yaml": `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata: {name: evil}
spec:
  url: ` + evil.URL + `
  authInfo: {basic: {secretRef: {namespace: osbgit-system, name: broker-auth}}}
`,
		"apps/db2.yaml": strings.Replace(dbManifest("small"), "name: db,", "name: db2,", 1) + "  clusterServiceBrokerName: evil\n",
	}, nil)

	code, out, errs := f.run(t, "diff", "--branch", "pr", "-o", "json")
	if code != exitError {
		t.Fatalf("diff exit %d, want %d\n%s\n%s", code, exitError, out, errs)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the pull request's broker URL got %d requests", n)
	}
	var doc struct {
		Resources []struct {
			Ref   struct{ Kind, Name string }
			Error string
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("diff -o json: %v\n%s", err, out)
	}
	found := false
	for _, r := range doc.Resources {
		if r.Ref.Kind == "ClusterServiceBroker" && r.Ref.Name == "evil" {
			found = strings.Contains(r.Error, "not contacted: differs from main")
		}
	}
	if !found {
		t.Errorf("no broker entry for evil saying it was not contacted:\n%s", out)
	}

	// sync never reconciles a branch other than the trusted one.
	code, out, errs = f.run(t, "sync", "--branch", "pr", "--trusted-branch", "main")
	if code != exitError || !strings.Contains(errs, "not the trusted branch") {
		t.Errorf("sync --branch pr --trusted-branch main: exit %d, stderr %q", code, errs)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the pull request's broker URL got %d requests", n)
	}
}
