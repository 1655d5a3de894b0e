package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
	"github.com/osbgit/osbgit/reconciler/render"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// ciExamples are the CI examples and the variables their osbgit command
// line reads (the base branch of the pull or merge request).
var ciExamples = []struct {
	file string
	env  map[string]string
}{
	{"github-actions.yaml", map[string]string{"BASE_REF": "main"}},
	{"gitlab-ci.yaml", map[string]string{"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}},
}

// yamlDocs parses every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	for _, d := range regexp.MustCompile(`(?m)^---$`).Split(string(b), -1) {
		var m map[string]any
		if err := yaml.UnmarshalStrict([]byte(d), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, m)
	}
	return docs
}

// scripts returns every shell line a workflow or pipeline runs: GitHub
// steps' run, GitLab jobs' before_script and script.
func scripts(doc map[string]any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				switch s := x.(type) {
				case string:
					if k == "run" {
						out = append(out, strings.Split(s, "\n")...)
					}
				case []any:
					if k == "script" || k == "before_script" {
						for _, l := range s {
							if str, ok := l.(string); ok {
								out = append(out, strings.Split(str, "\n")...)
							}
						}
						continue
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return out
}

// shellWords splits a simple shell command line: words, "double quotes"
// with $VAR expanded from env, stopping at a redirection.
func shellWords(t *testing.T, line string, env map[string]string) []string {
	t.Helper()
	var words []string
	for _, m := range regexp.MustCompile(`"[^"]*"|[^\s"]+`).FindAllString(line, -1) {
		if strings.HasPrefix(m, ">") || m == "#" {
			break
		}
		w := strings.Trim(m, `"`)
		w = regexp.MustCompile(`\$\{?([A-Z_]+)\}?`).ReplaceAllStringFunc(w, func(v string) string {
			name := strings.Trim(v, "${}")
			val, ok := env[name]
			if !ok {
				t.Fatalf("%q uses $%s, which the test does not know", line, name)
			}
			return val
		})
		words = append(words, w)
	}
	return words
}

// demoCatalog is the catalog examples/repo is written against (the
// demo broker's, see examples/broker): postgres small/large (plan
// updateable), redis standard, queue basic (not bindable).
func demoCatalog() *osbwire.Catalog {
	no := false
	return &osbwire.Catalog{Services: []osbwire.Service{
		{Name: "postgres", ID: "postgres-id", Description: "PostgreSQL", Bindable: true, PlanUpdateable: true, Plans: []osbwire.Plan{
			{ID: "postgres-small", Name: "small", Description: "small"}, {ID: "postgres-large", Name: "large", Description: "large"}}},
		{Name: "redis", ID: "redis-id", Description: "Redis", Bindable: true, Plans: []osbwire.Plan{{ID: "redis-standard", Name: "standard", Description: "standard"}}},
		{Name: "queue", ID: "queue-id", Description: "queue", Plans: []osbwire.Plan{{ID: "queue-basic", Name: "basic", Description: "basic", Bindable: &no}}},
	}}
}

// demoRepo builds a repo the way the demo does (examples/demo/demo.sh):
// examples/repo pushed to a bare repository, its broker URL pointed at a
// broker serving the demo catalog, synced once so that main holds records
// and the cached catalog. It returns the repo and the broker.
func demoRepo(t *testing.T) (*gittest.Repo, *osbtest.Broker) {
	t.Helper()
	const pass = "demo-broker-pass-ci"
	b, srv := osbtest.NewServer(t, osbtest.Config{Catalog: demoCatalog(), Username: "demo", Password: pass})
	files := map[string]string{}
	root := filepath.Join("..", "..", "examples", "repo")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = strings.ReplaceAll(string(data), "url: http://127.0.0.1:8085", "url: "+srv.URL)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(files["brokers/demo-broker.yaml"], srv.URL) {
		t.Fatal("examples/repo/brokers/demo-broker.yaml: the broker URL was not rewritten")
	}
	repo := gittest.New(t, files)
	store := filepath.Join(t.TempDir(), "secrets")
	st, err := secretstore.NewDir(store)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range []struct {
		ns, name string
		data     map[string][]byte
	}{
		{"osbgit-system", "demo-broker-auth", map[string][]byte{"username": []byte("demo"), "password": []byte(pass)}},
		{"apps", "analytics-db-params", map[string][]byte{"parameters": []byte(`{"adminPassword": "ci-admin-pw-1"}`)}},
	} {
		if err := st.Put(ctx, s.ns, s.name, secrets.Secret{Data: s.data}); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"sync", "--no-state", "--repo", repo.Bare, "--secret-store", "dir:" + store, "--cache-dir", t.TempDir()}, &out, &errb); code != exitOK {
		t.Fatalf("sync of the demo repo: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	return repo, b
}

// TestCIExamples runs the osbgit command line of each CI example in a
// detached checkout of a pull request on the demo repo, with no broker
// credential and no secret store, and checks that it prints the Markdown
// plan of the pull request and calls no broker. It also checks the
// examples' trust split: the GitHub job that runs the pull request's code
// uses no secret, and the job that comments never checks out.
func TestCIExamples(t *testing.T) {
	repo, broker := demoRepo(t)
	// The pull request: orders-db grows to plan large, a new instance.
	pr := filepath.Join(t.TempDir(), "pr")
	gittest.Git(t, "", "clone", "-q", repo.Bare, pr)
	gittest.Git(t, pr, "checkout", "-q", "--detach")
	orders := filepath.Join(pr, "apps", "orders-db.yaml")
	b, err := os.ReadFile(orders)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orders, bytes.Replace(b, []byte("clusterServicePlanExternalName: small"), []byte("clusterServicePlanExternalName: large"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pr, "apps", "reports-db.yaml"), []byte(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata: {name: reports-db, namespace: apps}
spec:
  clusterServiceClassExternalName: postgres
  clusterServicePlanExternalName: small
`), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, pr, "add", "-A")
	gittest.Git(t, pr, "-c", "user.name=PR Author", "-c", "user.email=pr@example.invalid", "commit", "-q", "-m", "grow orders-db, add reports-db")
	broker.ResetCalls()

	for _, ex := range ciExamples {
		t.Run(ex.file, func(t *testing.T) {
			docs := yamlDocs(t, filepath.Join("..", "..", "examples", "ci", ex.file))
			var cmdLine string
			for _, d := range docs {
				for _, l := range scripts(d) {
					if l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- ")); strings.HasPrefix(l, "osbgit ") {
						if cmdLine != "" {
							t.Fatalf("two osbgit command lines: %q and %q", cmdLine, l)
						}
						cmdLine = l
					}
				}
			}
			args := shellWords(t, cmdLine, ex.env)
			if len(args) < 2 || args[1] != "diff" || !strings.Contains(cmdLine, "-o markdown") || !strings.Contains(cmdLine, "--offline") ||
				strings.Contains(cmdLine, "--secret-store") {
				t.Fatalf("the example runs %q, want osbgit diff -o markdown --offline without a secret store", cmdLine)
			}
			t.Chdir(pr)
			t.Setenv("OSBGIT_CACHE_DIR", t.TempDir())
			var out, errb bytes.Buffer
			code := run(args[1:], &out, &errb)
			if code != exitChanges {
				t.Fatalf("%s: exit %d, want %d\n%s\n%s", cmdLine, code, exitChanges, out.String(), errb.String())
			}
			md := out.String()
			for _, want := range []string{
				render.MarkdownMarker + "\n### osbgit plan for the working tree\n",
				"**Plan: 1 to create, 1 to update, 0 to delete.**",
				"| `~ update` | ServiceInstance | `apps/orders-db` | `demo-broker` | `postgres/small` → `postgres/large` |",
				"| `+ create` | ServiceInstance | `apps/reports-db` | `demo-broker` | `postgres/small` |",
				"<details><summary><code>+ create</code> ServiceInstance <code>apps/reports-db</code>",
				"id: new ID, recorded before the first call",
			} {
				if !strings.Contains(md, want) {
					t.Errorf("the plan lacks %q:\n%s", want, md)
				}
			}
			if n := len(broker.Calls()); n != 0 {
				t.Errorf("the example's diff made %d broker calls", n)
			}
		})
	}

	// GitHub: the pull_request workflow has no secret; the workflow_run
	// one, which holds a write token, never checks out.
	docs := yamlDocs(t, filepath.Join("..", "..", "examples", "ci", "github-actions.yaml"))
	if len(docs) != 2 {
		t.Fatalf("github-actions.yaml: %d workflows, want 2", len(docs))
	}
	raw, _ := os.ReadFile(filepath.Join("..", "..", "examples", "ci", "github-actions.yaml"))
	first, second, _ := strings.Cut(string(raw), "\n---\n")
	for _, c := range []struct {
		doc, trigger string
	}{{first, "pull_request:"}, {second, "workflow_run:"}} {
		if !strings.Contains(c.doc, "\n  "+c.trigger) {
			t.Errorf("a workflow is not triggered by %s", c.trigger)
		}
	}
	if strings.Contains(first, "secrets.") || strings.Contains(first, "github.token") {
		t.Error("the pull_request workflow uses a secret or token")
	}
	if strings.Contains(second, "actions/checkout") || len(scripts(docs[1])) != 0 {
		t.Error("the workflow_run workflow checks out or runs a command")
	}
	if !strings.Contains(second, render.MarkdownMarker) {
		t.Error("the comment job does not find its comment by the marker")
	}
}
