package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cliPolicy lets apps/ declare only namespace apps, with plan small.
const cliPolicy = `apiVersion: osbgit.dev/v1alpha1
kind: Policy
paths:
- path: "*.yaml"
  namespaces: ["*"]
  clusterScoped: true
- path: apps/**
  namespaces: [apps]
plans:
- namespaces: [apps]
  allow:
  - class: osbtest-db
    plans: [small]
`

func writePolicy(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// --policy (or OSBGIT_POLICY) reaches validate, diff in every format, sync
// and status: a plan outside the allow-list is an error at file:line and
// field, and nothing is called for it.
func TestTenancyPolicyCLI(t *testing.T) {
	f := newCLIFixture(t)
	f.repo.Push("large", map[string]string{"apps/db.yaml": dbManifest("large")}, nil)
	pol := writePolicy(t, cliPolicy)
	const want = `apps/db.yaml:6: spec.clusterServicePlanExternalName: plan "large" of class "osbtest-db" is not allowed in namespace "apps" by the tenancy policy (` // + pol:10)

	var out, errb strings.Builder
	code := run([]string{"validate", "--repo", f.repo.Clone(), "--policy", pol}, &out, &errb)
	if code != exitInvalid || !strings.Contains(out.String(), want+pol+":10)") {
		t.Errorf("validate: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	for _, format := range []string{"text", "json", "markdown"} {
		code, out, errs := f.run(t, "diff", "--policy", pol, "-o", format)
		if code == exitOK || !strings.Contains(out, "is not allowed in namespace") || !strings.Contains(out, "apps/db.yaml") {
			t.Errorf("diff -o %s: exit %d\n%s\n%s", format, code, out, errs)
		}
	}
	t.Setenv("OSBGIT_POLICY", pol)
	code, out2, errs := f.run(t, "sync", "--no-state")
	if code == exitOK {
		t.Errorf("sync of a blocked resource exited 0\n%s\n%s", out2, errs)
	}
	if n := len(f.broker.MutatingCalls()); n != 0 {
		t.Errorf("%d mutating calls for a resource the policy blocks", n)
	}
	code, out2, errs = f.run(t, "status")
	if code != exitChanges || !strings.Contains(out2, `spec.clusterServicePlanExternalName: plan "large"`) {
		t.Errorf("status: exit %d\n%s\n%s", code, out2, errs)
	}

	// A broken policy stops every command (exit 2) with file:line.
	bad := writePolicy(t, "apiVersion: osbgit.dev/v1alpha1\nkind: Policy\npaths:\n- path: apps/**\n  namespace: [apps]\n")
	for _, cmd := range []string{"validate", "diff", "sync"} {
		code, _, errs := f.run(t, cmd, "--policy", bad)
		if code != exitError || !strings.Contains(errs, bad+`:5: paths[0].namespace: unknown field "namespace"`) {
			t.Errorf("%s with a broken policy: exit %d\n%s", cmd, code, errs)
		}
	}
}
