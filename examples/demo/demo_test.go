// Package demo holds `make demo` (demo.sh). Its tests check that the script
// still fits what it relies on: the sample repo's files, the status record
// layout, and bash. OSBGIT_DEMO_TEST=1 also runs the whole demo.
package demo

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// scriptVar returns the value of a `name=value` line of demo.sh.
func scriptVar(t *testing.T, script, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `=(\S+)`).FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("demo.sh sets no %s", name)
	}
	return m[1]
}

func TestScriptSyntax(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	if out, err := exec.Command("bash", "-n", "demo.sh").CombinedOutput(); err != nil {
		t.Fatalf("bash -n demo.sh: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command("shellcheck", "-S", "warning", "demo.sh").CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	}
}

// TestScriptMatchesSampleRepo: the broker URL the script rewrites, the lines
// its edit of orders-db.yaml changes, and the record paths it shows exist.
func TestScriptMatchesSampleRepo(t *testing.T) {
	script := readFile(t, "demo.sh")

	url := scriptVar(t, script, "manifest_url")
	if b := readFile(t, "../repo/brokers/demo-broker.yaml"); !strings.Contains(b, "url: "+url+"\n") {
		t.Errorf("examples/repo/brokers/demo-broker.yaml has no url %s, which demo.sh rewrites to the broker's port", url)
	}

	orders := readFile(t, "../repo/apps/orders-db.yaml")
	for _, re := range []string{`(?m)^  clusterServicePlanExternalName: small$`, `(?m)^    size: 10( .*)?$`} {
		if !regexp.MustCompile(re).MatchString(orders) {
			t.Errorf("examples/repo/apps/orders-db.yaml has no line matching %s, which demo.sh edits", re)
		}
	}

	for name, ref := range map[string]manifest.Ref{
		"orders_record":         {Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "orders-db"},
		"orders_binding_record": {Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "orders-db-binding"},
	} {
		want, err := manifest.StatusPath(ref)
		if got := scriptVar(t, script, name); err != nil || got != want {
			t.Errorf("demo.sh %s=%s, but the record of %s is at %s", name, got, ref, want)
		}
	}

	// The Secrets the script creates are the ones examples/repo needs.
	for _, p := range []string{"osbgit-system/demo-broker-auth/username", "osbgit-system/demo-broker-auth/password", "apps/analytics-db-params/parameters"} {
		if !strings.Contains(script, `"$store/`+p+`"`) {
			t.Errorf("demo.sh does not write %s to the secret store", p)
		}
	}
}

// TestDemo runs the whole demo (builds, starts the broker, syncs; about 20s
// with a warm build cache) when OSBGIT_DEMO_TEST=1.
func TestDemo(t *testing.T) {
	if os.Getenv("OSBGIT_DEMO_TEST") != "1" {
		t.Skip("set OSBGIT_DEMO_TEST=1 to run the whole demo")
	}
	cmd := exec.Command("bash", "demo.sh")
	cmd.Env = append(os.Environ(), "DEMO_DIR="+t.TempDir()+"/demo", "DEMO_PORT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	for _, want := range []string{"Nothing to do", "osbgit diff: exit 0, in sync", "no password, URI or other credential value"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
