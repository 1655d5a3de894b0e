package plan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/goldentest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/render"
)

var (
	hashes = flag.Bool("hashes", false, "print parameter checksums and spec hashes of every scenario's manifests (to write records)")
)

// goldenDir holds one directory per scenario:
//
//	<scenario>/repo/            the manifest repo (osbgit.yaml optional) with
//	                            .osbgit/status/… records
//	<scenario>/input.yaml       optional: options, secrets, observations
//	<scenario>/catalogs.json    optional: replaces ../catalogs.json
//	<scenario>/plan.txt         golden text view
//	<scenario>/plan.json        golden JSON view
//	<scenario>/plan.md          golden Markdown view
const goldenDir = "../../testdata/plan"

// scenarioInput is input.yaml.
type scenarioInput struct {
	// Options override what the repo's osbgit.yaml gives.
	Options struct {
		Prune                     *bool  `json:"prune"`
		MaxDeletions              *int   `json:"maxDeletions"`
		ClusterID                 string `json:"clusterID"`
		Revision                  string `json:"revision"`
		Now                       string `json:"now"`
		DefaultMaxPollingDuration string `json:"defaultMaxPollingDuration"`
	} `json:"options"`
	// Secrets maps "namespace/name/key" to the value.
	Secrets map[string]string `json:"secrets"`
	// Observations maps "Kind namespace/name" to a live GET result.
	Observations map[string]plan.Observation `json:"observations"`
	// SkipCatalogValidation leaves out manifest.ValidateWithCatalogs (the
	// pass runs it, so scenarios use it by default).
	SkipCatalogValidation bool `json:"skipCatalogValidation"`
}

// scenario loads a scenario's Input.
func scenario(t *testing.T, dir string) plan.Input {
	t.Helper()
	var si scenarioInput
	if b, err := os.ReadFile(filepath.Join(dir, "input.yaml")); err == nil {
		if err := yaml.UnmarshalStrict(b, &si); err != nil {
			t.Fatalf("input.yaml: %v", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	catFile := filepath.Join(dir, "catalogs.json")
	if _, err := os.Stat(catFile); err != nil {
		catFile = filepath.Join(goldenDir, "catalogs.json")
	}
	cb, err := os.ReadFile(catFile)
	if err != nil {
		t.Fatal(err)
	}
	var cats manifest.Catalogs
	if err := json.Unmarshal(cb, &cats); err != nil {
		t.Fatalf("%s: %v", catFile, err)
	}
	repo := os.DirFS(filepath.Join(dir, "repo"))
	set, diags := manifest.Load(repo, "")
	if *hashes {
		printHashes(t, set, readSecrets(set, mapSecrets(si.Secrets)))
	}
	recs, err := manifest.LoadRecords(repo)
	if err != nil {
		t.Fatalf("records: %v", err)
	}
	if !si.SkipCatalogValidation {
		diags = append(diags, manifest.ValidateWithCatalogs(set, cats, manifest.WithRecords(recs))...)
		diags.Sort()
	}
	opts := plan.Options{
		Prune:                     set.Config.Prune,
		MaxDeletions:              set.Config.MaxDeletions,
		ClusterID:                 set.Config.ClusterID,
		Revision:                  "1111111111111111111111111111111111111111",
		Now:                       time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
		DefaultMaxPollingDuration: 24 * time.Hour,
	}
	if opts.ClusterID == "" {
		opts.ClusterID = "test-cluster"
	}
	o := si.Options
	if o.Prune != nil {
		opts.Prune = *o.Prune
	}
	if o.MaxDeletions != nil {
		opts.MaxDeletions = *o.MaxDeletions
	}
	if o.ClusterID != "" {
		opts.ClusterID = o.ClusterID
	}
	if o.Revision != "" {
		opts.Revision = o.Revision
	}
	if o.Now != "" {
		if opts.Now, err = time.Parse(time.RFC3339, o.Now); err != nil {
			t.Fatal(err)
		}
	}
	if o.DefaultMaxPollingDuration != "" {
		if opts.DefaultMaxPollingDuration, err = time.ParseDuration(o.DefaultMaxPollingDuration); err != nil {
			t.Fatal(err)
		}
	}
	obs := map[manifest.Ref]plan.Observation{}
	for k, v := range si.Observations {
		obs[parseRef(t, k)] = v
	}
	return plan.Input{
		Set:          set,
		Diagnostics:  diags,
		Records:      recs.Status,
		Catalogs:     cats,
		Observations: obs,
		Secrets:      readSecrets(set, mapSecrets(si.Secrets)),
		NewID:        seqIDs(),
		Options:      opts,
	}
}

// parseRef reads "Kind namespace/name" or "Kind name".
func parseRef(t *testing.T, s string) manifest.Ref {
	t.Helper()
	kind, rest, ok := strings.Cut(s, " ")
	if !ok {
		t.Fatalf("bad ref %q", s)
	}
	r := manifest.Ref{Kind: manifest.Kind(kind), Name: rest}
	if ns, name, ok := strings.Cut(rest, "/"); ok {
		r.Namespace, r.Name = ns, name
	}
	return r
}

// readSecrets reads the parametersFrom values of set with read, as a pass
// does before planning.
func readSecrets(set *manifest.Set, read func(namespace, name, key string) ([]byte, error)) manifest.SecretValues {
	out := manifest.SecretValues{}
	for _, k := range manifest.ParameterSecrets(set) {
		v, err := read(k.Namespace, k.Name, k.Key)
		out[k] = manifest.SecretValue{Value: v, Err: err}
	}
	return out
}

// mapSecrets reads "namespace/name/key" → value.
func mapSecrets(m map[string]string) func(namespace, name, key string) ([]byte, error) {
	return func(namespace, name, key string) ([]byte, error) {
		v, ok := m[namespace+"/"+name+"/"+key]
		if !ok {
			return nil, fmt.Errorf("key %q of Secret %s/%s: %w", key, namespace, name, fs.ErrNotExist)
		}
		return []byte(v), nil
	}
}

// seqIDs returns a deterministic ID generator.
func seqIDs() func() string {
	n := 0
	return func() string {
		n++
		return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
	}
}

func scenarios(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// TestGolden plans every scenario under testdata/plan and compares the
// text and JSON views with plan.txt and plan.json (-update rewrites them).
func TestGolden(t *testing.T) {
	names := scenarios(t)
	if len(names) < 20 {
		t.Errorf("only %d scenarios; want at least 20", len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(goldenDir, name)
			in := scenario(t, dir)
			p := plan.Build(in)
			// Purity: the same input plans the same.
			in2 := scenario(t, dir)
			if again := plan.Build(in2); !samePlan(p, again) {
				t.Errorf("Build is not deterministic")
			}
			var txt, js, md bytes.Buffer
			if err := render.Text(&txt, p, render.TextOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := render.JSON(&js, p); err != nil {
				t.Fatal(err)
			}
			if err := render.Markdown(&md, p, render.MarkdownOptions{}); err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join(dir, "plan.txt"), txt.Bytes())
			compareGolden(t, filepath.Join(dir, "plan.json"), js.Bytes())
			compareGolden(t, filepath.Join(dir, "plan.md"), md.Bytes())
			checkInvariants(t, in, p)
			if exp, err := os.ReadFile(filepath.Join(dir, "expect.txt")); err == nil {
				for _, want := range strings.Split(strings.TrimSpace(string(exp)), "\n") {
					if want = strings.TrimSpace(want); want != "" && !strings.Contains(txt.String(), want) {
						t.Errorf("plan.txt lacks expected line %q", want)
					}
				}
			}
		})
	}
}

func samePlan(a, b *plan.Plan) bool {
	ja, _ := json.Marshal(render.NewDocument(a))
	jb, _ := json.Marshal(render.NewDocument(b))
	return bytes.Equal(ja, jb)
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	goldentest.Compare(t, path, got)
}

// checkInvariants asserts what holds for every plan: one step per
// resource, dependencies come first, unbinds precede deprovisions, errors
// only on None steps, secrets never rendered.
func checkInvariants(t *testing.T, in plan.Input, p *plan.Plan) {
	t.Helper()
	pos := map[manifest.Ref]int{}
	for i, s := range p.Steps {
		if _, dup := pos[s.Ref]; dup {
			t.Errorf("two steps for %s", s.Ref)
		}
		pos[s.Ref] = i
		if s.Error != "" && s.Action != plan.None {
			t.Errorf("%s: error on a %s step", s.Ref, s.Action)
		}
		if s.Action == plan.Create && s.ExternalID == "" {
			t.Errorf("%s: create without ExternalID", s.Ref)
		}
		if s.Action == plan.Poll && s.Operation == nil {
			t.Errorf("%s: poll without operation", s.Ref)
		}
		if s.Action == plan.Update && s.Previous == nil {
			t.Errorf("%s: update without Previous", s.Ref)
		}
	}
	for i, s := range p.Steps {
		for _, d := range s.DependsOn {
			j, ok := pos[d]
			if !ok || j >= i {
				t.Errorf("%s depends on %s, which does not come before it", s.Ref, d)
			}
		}
	}
	for _, o := range in.Set.Objects() {
		if _, ok := pos[o.GetRef()]; !ok {
			t.Errorf("no step for %s", o.GetRef())
		}
	}
	for r := range in.Records {
		if r.Kind == manifest.KindServiceInstance || r.Kind == manifest.KindServiceBinding {
			if _, ok := pos[r]; !ok {
				t.Errorf("no step for recorded %s", r)
			}
		}
	}
}

// printHashes logs what records need to look in sync with the manifests.
func printHashes(t *testing.T, set *manifest.Set, secrets manifest.SecretValues) {
	for _, o := range set.Objects() {
		var params map[string]any
		var from []manifest.ParametersFromSource
		switch v := o.(type) {
		case *manifest.ServiceInstance:
			params, from = v.Spec.Parameters, v.Spec.ParametersFrom
		case *manifest.ServiceBinding:
			params, from = v.Spec.Parameters, v.Spec.ParametersFrom
		default:
			continue
		}
		rp, _, err := manifest.ResolveParameters(o.GetRef().Namespace, params, from, secrets)
		sum := "(" + fmt.Sprint(err) + ")"
		if err == nil {
			sum, _ = manifest.ParameterChecksum(rp)
		}
		sh, _ := manifest.SpecHash(o)
		t.Logf("HASH\t%s\t%s\t%s\t%s", t.Name(), o.GetRef(), sum, sh)
	}
}

// TestNoSecretInOutput plants a secret value via parametersFrom (create,
// update and binding) and asserts that neither view shows it.
func TestNoSecretInOutput(t *testing.T) {
	const secret = "hunter2-TOPSECRET"
	for _, name := range []string{"parameters-from-secret", "new-instance-and-binding"} {
		t.Run(name, func(t *testing.T) {
			in := scenario(t, filepath.Join(goldenDir, name))
			in.Secrets = readSecrets(in.Set, func(namespace, n, key string) ([]byte, error) {
				return []byte(`{"password":"` + secret + `","nested":{"token":"` + secret + `-2"}}`), nil
			})
			p := plan.Build(in)
			found := false
			for _, s := range p.Steps {
				for _, k := range s.SecretParameterKeys {
					if k == "password" && s.SendParameters {
						found = true
					}
				}
			}
			if !found {
				t.Fatalf("scenario %s does not send a secret parameter", name)
			}
			var txt, js, md bytes.Buffer
			if err := render.Text(&txt, p, render.TextOptions{ShowUnchanged: true, Color: true}); err != nil {
				t.Fatal(err)
			}
			if err := render.JSON(&js, p); err != nil {
				t.Fatal(err)
			}
			if err := render.Markdown(&md, p, render.MarkdownOptions{}); err != nil {
				t.Fatal(err)
			}
			for view, out := range map[string]string{"text": txt.String(), "json": js.String(), "markdown": md.String()} {
				if strings.Contains(out, "hunter2") {
					t.Errorf("%s view shows the secret:\n%s", view, out)
				}
				if !strings.Contains(out, plan.SensitiveValue) {
					t.Errorf("%s view does not mark the secret parameter %s:\n%s", view, plan.SensitiveValue, out)
				}
			}
			// Step JSON (what a log might dump) has no parameters either.
			b, _ := json.Marshal(p)
			if strings.Contains(string(b), "hunter2") {
				t.Errorf("plan JSON shows the secret")
			}
		})
	}
}
