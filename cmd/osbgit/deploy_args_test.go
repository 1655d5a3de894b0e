package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestDeployManifestsUseRealFlags parses the container args of the shipped
// CronJob and Deployment and checks every command and flag against this
// binary's command tree, so the examples cannot drift from the CLI.
func TestDeployManifestsUseRealFlags(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"cronjob.yaml", "deployment.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", "deploy", file))
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(data, &obj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		args := containerArgs(obj)
		if len(args) == 0 {
			t.Fatalf("%s: no container args found", file)
		}
		root, _ := newRootCommand(io.Discard, io.Discard)
		cmd, rest, err := root.Find(args)
		if err != nil || cmd == root {
			t.Fatalf("%s: command %q not found: %v", file, args[0], err)
		}
		for _, a := range rest {
			if !strings.HasPrefix(a, "--") {
				continue // a flag value
			}
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			if cmd.Flags().Lookup(name) == nil && cmd.InheritedFlags().Lookup(name) == nil && root.PersistentFlags().Lookup(name) == nil {
				t.Errorf("%s: osbgit %s has no flag --%s", file, cmd.Name(), name)
			}
		}
		for _, env := range containerEnv(obj) {
			flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "OSBGIT_")), "_", "-")
			if !strings.HasPrefix(env, "OSBGIT_") || env == "OSBGIT_GIT_PASSWORD" || env == "OSBGIT_GIT_TOKEN" || env == "OSBGIT_WEBHOOK_SECRET" {
				continue
			}
			if cmd.Flags().Lookup(flag) == nil && root.PersistentFlags().Lookup(flag) == nil {
				t.Errorf("%s: environment %s is not the twin of any flag of osbgit %s", file, env, cmd.Name())
			}
		}
	}
}

// containerArgs digs spec(.jobTemplate.spec).template.spec.containers[0].args.
func containerArgs(obj map[string]any) []string {
	c := firstContainer(obj)
	var out []string
	for _, a := range asSlice(c["args"]) {
		if s, ok := a.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func containerEnv(obj map[string]any) []string {
	c := firstContainer(obj)
	var out []string
	for _, e := range asSlice(c["env"]) {
		if m, ok := e.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				out = append(out, n)
			}
		}
	}
	return out
}

func firstContainer(obj map[string]any) map[string]any {
	spec, _ := obj["spec"].(map[string]any)
	if jt, ok := spec["jobTemplate"].(map[string]any); ok {
		spec, _ = jt["spec"].(map[string]any)
	}
	tmpl, _ := spec["template"].(map[string]any)
	ps, _ := tmpl["spec"].(map[string]any)
	cs := asSlice(ps["containers"])
	if len(cs) == 0 {
		return nil
	}
	c, _ := cs[0].(map[string]any)
	return c
}

func asSlice(v any) []any { s, _ := v.([]any); return s }
