package policy

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
	"github.com/osbgit/osbgit/reconciler/plan"
)

const examplePolicy = `apiVersion: osbgit.dev/v1alpha1
kind: Policy
paths:
- path: platform/**
  namespaces: ["*"]
  clusterScoped: true
- path: teams/a/**
  namespaces: [team-a, team-a-*]
- path: teams/b/**
  namespaces: [team-b]
plans:
- namespaces: [team-a, team-a-*]
  allow:
  - class: db
    plans: [small, medium]
  - class: "cache-*"
    plans: ["*"]
- namespaces: ["*"]
  allow:
  - class: "*"
    plans: ["*"]
maxCreatesPerPass: 2
maxDeletesPerPass: 1
`

func mustDecode(t *testing.T, src string) *Policy {
	t.Helper()
	p, diags := Decode("policy.yaml", []byte(src))
	if p == nil || diags.HasErrors() {
		t.Fatalf("decode: %v", diags)
	}
	return p
}

func TestDecodeErrorsAtFileLine(t *testing.T) {
	head := "apiVersion: osbgit.dev/v1alpha1\nkind: Policy\n"
	tests := []struct {
		name, src string
		// want is "line: field: message fragment".
		want string
	}{
		{"empty", "", "empty: want a Policy document"},
		{"wrong kind", "apiVersion: osbgit.dev/v1alpha1\nkind: Config\n", `want apiVersion osbgit.dev/v1alpha1 and kind Policy, got "osbgit.dev/v1alpha1" and "Config"`},
		{"unknown field", head + "path:\n- path: a/**\n", `3: path: unknown field "path" (did you mean "paths"?)`},
		{"unknown rule field", head + "paths:\n- path: a/**\n  namespace: [a]\n", `5: paths[0].namespace: unknown field "namespace" (did you mean "namespaces"?)`},
		{"wrong type", head + "maxCreatesPerPass: many\n", "3: maxCreatesPerPass:"},
		{"negative cap", head + "maxDeletesPerPass: -1\n", "3: maxDeletesPerPass: must not be negative"},
		{"rule allows nothing", head + "paths:\n- path: a/**\n", "4: paths[0]: allows nothing"},
		{"bad glob", head + "paths:\n- path: \"a/[\"\n  namespaces: [a]\n", "4: paths[0].path:"},
		{"absolute glob", head + "paths:\n- path: /a/**\n  namespaces: [a]\n", "4: paths[0].path: \"/a/**\": paths are relative"},
		{"partial **", head + "paths:\n- path: a/b**\n  namespaces: [a]\n", "** must be a whole path segment"},
		{"empty namespace", head + "paths:\n- path: a/**\n  namespaces: [\"\"]\n", "5: paths[0].namespaces[0]: empty name"},
		{"plan rule without namespaces", head + "plans:\n- allow: []\n", "4: plans[0].namespaces: required"},
		{"class without plans", head + "plans:\n- namespaces: [a]\n  allow:\n  - class: db\n", "6: plans[0].allow[0].plans: required"},
		{"two documents", head + "---\n" + head, "must hold a single Policy document"},
		{"not YAML", head + "paths: [\n", "invalid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := Decode("policy.yaml", []byte(tt.src))
			if p != nil {
				t.Errorf("policy returned despite errors")
			}
			var got []string
			for _, d := range diags.Errors() {
				got = append(got, d.String())
				if d.File != "policy.yaml" {
					t.Errorf("diagnostic without the file: %v", d)
				}
			}
			joined := strings.Join(got, "\n")
			if !strings.Contains(joined, tt.want) {
				t.Errorf("errors:\n%s\nwant one containing %q", joined, tt.want)
			}
		})
	}
	if p := mustDecode(t, examplePolicy); len(p.Paths) != 3 || *p.MaxCreatesPerPass != 2 {
		t.Errorf("example policy decoded as %+v", p)
	}
}

func TestMatch(t *testing.T) {
	paths := []struct {
		glob, file string
		want       bool
	}{
		{"teams/a/**", "teams/a/db.yaml", true},
		{"teams/a/**", "teams/a/x/y/db.yaml", true},
		{"teams/a/**", "teams/ab/db.yaml", false},
		{"teams/a/**", "teams/a", true},
		{"teams/*/db.yaml", "teams/a/db.yaml", true},
		{"teams/*/db.yaml", "teams/a/b/db.yaml", false},
		{"**/db.yaml", "db.yaml", true},
		{"**/db.yaml", "x/y/db.yaml", true},
		{"a/**/z.yaml", "a/z.yaml", true},
		{"a/**/z.yaml", "a/b/c/z.yaml", true},
		{"a/**/z.yaml", "a/b/c/y.yaml", false},
		{"**", "anything/at/all.yaml", true},
		{"teams/a/*.yaml", "teams/a/.hidden/x.yaml", false},
	}
	for _, tt := range paths {
		if got := matchPath(tt.glob, tt.file); got != tt.want {
			t.Errorf("matchPath(%q, %q) = %v, want %v", tt.glob, tt.file, got, tt.want)
		}
	}
	names := []struct {
		pattern, s string
		want       bool
	}{
		{"team-a", "team-a", true},
		{"team-a", "team-ab", false},
		{"team-a-*", "team-a-dev", true},
		{"team-a-*", "team-a", false},
		{"*", "", true},
		{"*-db", "pg/x-db", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
	}
	for _, tt := range names {
		if got := matchName(tt.pattern, tt.s); got != tt.want {
			t.Errorf("matchName(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

const brokerDoc = `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata:
  name: b
spec:
  url: https://broker.example
`

func instanceDoc(ns, name, class, plan string) string {
	return `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata:
  name: ` + name + `
  namespace: ` + ns + `
spec:
  clusterServiceClassExternalName: ` + class + `
  clusterServicePlanExternalName: ` + plan + `
`
}

func bindingDoc(ns, name, instance string) string {
	return `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata:
  name: ` + name + `
  namespace: ` + ns + `
spec:
  instanceRef:
    name: ` + instance + `
`
}

func load(t *testing.T, files map[string]string) *manifest.Set {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	set, _ := manifest.Load(fsys, "")
	return set
}

func TestCheck(t *testing.T) {
	catalogs := manifest.Catalogs{"b": &osbwire.Catalog{Services: []osbwire.Service{
		{ID: "db-id", Name: "db", Plans: []osbwire.Plan{{ID: "small-id", Name: "small"}, {ID: "large-id", Name: "large"}}},
	}}}
	tests := []struct {
		name  string
		files map[string]string
		// want maps "file:line: field" to a message fragment; nothing else
		// may be reported.
		want map[string]string
	}{
		{"allowed", map[string]string{
			"platform/broker.yaml": brokerDoc,
			"teams/a/db.yaml":      instanceDoc("team-a", "db", "db", "small"),
			"teams/a/dev/db.yaml":  instanceDoc("team-a-dev", "db", "cache-redis", "huge"),
			"teams/b/db.yaml":      instanceDoc("team-b", "db", "db", "large"),
			"teams/a/bind.yaml":    bindingDoc("team-a", "db-creds", "db"),
		}, nil},
		{"another team's namespace", map[string]string{
			"platform/broker.yaml": brokerDoc,
			"teams/a/db.yaml":      instanceDoc("team-b", "db", "db", "small"),
		}, map[string]string{"teams/a/db.yaml:5: metadata.namespace": `namespace "team-b" may not be declared in teams/a/db.yaml: the tenancy policy (policy.yaml:7) allows files under "teams/a/**" namespace(s) "team-a", "team-a-*"`}},
		{"a file no rule covers", map[string]string{
			"platform/broker.yaml": brokerDoc,
			"apps/db.yaml":         instanceDoc("team-a", "db", "db", "small"),
		}, map[string]string{"apps/db.yaml:5: metadata.namespace": "no rule of the tenancy policy (policy.yaml) covers apps/db.yaml"}},
		{"a cluster broker from a team", map[string]string{
			"teams/a/broker.yaml": brokerDoc,
		}, map[string]string{"teams/a/broker.yaml:2: kind": "ClusterServiceBroker is cluster-scoped"}},
		{"plan outside the allow-list", map[string]string{
			"platform/broker.yaml": brokerDoc,
			"teams/a/db.yaml":      instanceDoc("team-a", "db", "db", "large"),
			"teams/a/bind.yaml":    bindingDoc("team-a", "db-creds", "db"),
		}, map[string]string{
			"teams/a/db.yaml:8: spec.clusterServicePlanExternalName": `plan "large" of class "db" is not allowed in namespace "team-a" by the tenancy policy (policy.yaml:12); allowed: "small", "medium"`,
			"teams/a/bind.yaml:8: spec.instanceRef.name":             "instance team-a/db is blocked by the tenancy policy",
		}},
		{"class outside the allow-list", map[string]string{
			"platform/broker.yaml": brokerDoc,
			"teams/a/q.yaml":       instanceDoc("team-a", "q", "queue", "small"),
		}, map[string]string{"teams/a/q.yaml:7: spec.clusterServiceClassExternalName": `class "queue" is not allowed in namespace "team-a"`}},
		{"a binding in another team's namespace", map[string]string{
			"platform/broker.yaml": brokerDoc,
			"teams/b/db.yaml":      instanceDoc("team-b", "db", "db", "small"),
			"teams/a/steal.yaml":   bindingDoc("team-b", "steal", "db"),
		}, map[string]string{"teams/a/steal.yaml:5: metadata.namespace": `namespace "team-b" may not be declared in teams/a/steal.yaml`}},
		{"resolved through the catalog", map[string]string{
			"platform/broker.yaml": brokerDoc,
			"teams/a/db.yaml": strings.NewReplacer("clusterServiceClassExternalName: db", "clusterServiceClassExternalID: db-id",
				"clusterServicePlanExternalName: large", "clusterServicePlanExternalID: large-id").Replace(instanceDoc("team-a", "db", "db", "large")),
		}, map[string]string{"teams/a/db.yaml:8: spec.clusterServicePlanExternalID": `plan "large" of class "db"`}},
		{"not resolvable: fail closed", map[string]string{
			"platform/broker.yaml": brokerDoc,
			"teams/a/db.yaml": strings.NewReplacer("clusterServiceClassExternalName: db", "clusterServiceClassExternalID: nope",
				"clusterServicePlanExternalName: large", "clusterServicePlanExternalID: nope").Replace(instanceDoc("team-a", "db", "db", "large")),
		}, map[string]string{"teams/a/db.yaml:7: spec.clusterServiceClassExternalID": "cannot be checked against the tenancy policy"}},
	}
	p := mustDecode(t, examplePolicy)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := Check(load(t, tt.files), p, catalogs)
			got := map[string]string{}
			for _, d := range diags {
				if d.Severity != manifest.SeverityError || d.Ref.Kind == "" {
					t.Errorf("not an error about an object: %v", d)
				}
				got[d.File+":"+strconv.Itoa(d.Line)+": "+d.Field] = d.Message
			}
			for k, frag := range tt.want {
				if !strings.Contains(got[k], frag) {
					t.Errorf("%s: got %q, want it to contain %q (all: %v)", k, got[k], frag, diags)
				}
			}
			for k := range got {
				if _, ok := tt.want[k]; !ok {
					t.Errorf("unexpected diagnostic %s: %s", k, got[k])
				}
			}
		})
	}
	if d := Check(load(t, tests[1].files), nil, nil); d != nil {
		t.Errorf("a nil policy reported %v", d)
	}
}

func TestLimit(t *testing.T) {
	inst := func(name string, a plan.Action, deps ...string) plan.Step {
		s := plan.Step{Ref: manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "ns", Name: name}, Action: a, Reason: "r", WriteAhead: a == plan.Create}
		for _, d := range deps {
			s.DependsOn = append(s.DependsOn, manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "ns", Name: d})
		}
		return s
	}
	bind := func(name string, a plan.Action, instance string) plan.Step {
		s := plan.Step{Ref: manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "ns", Name: name}, Action: a, Reason: "r"}
		if instance != "" {
			s.DependsOn = []manifest.Ref{{Kind: manifest.KindServiceInstance, Namespace: "ns", Name: instance}}
		}
		return s
	}
	tests := []struct {
		name   string
		policy string
		steps  []plan.Step
		// held are the step names held back.
		held []string
	}{
		{"no caps", "", []plan.Step{inst("a", plan.Create), inst("b", plan.Create)}, nil},
		{"creates past the cap, in plan order", "maxCreatesPerPass: 2\n",
			[]plan.Step{inst("a", plan.Create), inst("b", plan.Update), inst("c", plan.Create), inst("d", plan.Create), inst("e", plan.Create)},
			[]string{"d", "e"}},
		{"a bind on a held-back instance is held and uses no cap", "maxCreatesPerPass: 1\n",
			[]plan.Step{inst("a", plan.Create), inst("b", plan.Create), bind("b-creds", plan.Create, "b"), bind("x-creds", plan.Create, "")},
			[]string{"b", "b-creds", "x-creds"}},
		{"zero allows none", "maxCreatesPerPass: 0\nmaxDeletesPerPass: 0\n",
			[]plan.Step{inst("a", plan.Create), inst("b", plan.Delete), inst("c", plan.Poll)},
			[]string{"a", "b"}},
		{"deletes: unbinds first, a deprovision waits for its held unbinds", "maxDeletesPerPass: 1\n",
			[]plan.Step{bind("x", plan.Delete, ""), bind("y", plan.Delete, ""), inst("i", plan.Delete, "y"), inst("j", plan.Delete)},
			[]string{"y", "i", "j"}},
		{"orphan mitigation is not capped", "maxDeletesPerPass: 0\n",
			[]plan.Step{inst("a", plan.OrphanMitigate)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustDecode(t, "apiVersion: osbgit.dev/v1alpha1\nkind: Policy\n"+tt.policy)
			pl := &plan.Plan{Steps: tt.steps}
			before := make([]plan.Action, len(pl.Steps))
			for i, s := range pl.Steps {
				before[i] = s.Action
			}
			n := Limit(pl, p)
			var held []string
			for i, s := range pl.Steps {
				if s.Error != "" {
					held = append(held, s.Ref.Name)
					if s.Action != plan.None || s.WriteAhead || s.DependsOn != nil || !strings.HasPrefix(s.Error, "held back: ") || !strings.Contains(s.Error, "policy's max") || !strings.Contains(s.Error, "policy.yaml:") {
						t.Errorf("%s held back as %+v", s.Ref.Name, s)
					}
				} else if s.Action != before[i] {
					t.Errorf("%s: action %s changed to %s without an error", s.Ref.Name, before[i], s.Action)
				}
			}
			if strings.Join(held, ",") != strings.Join(tt.held, ",") || n != len(held) {
				t.Errorf("held back %v (Limit says %d), want %v", held, n, tt.held)
			}
		})
	}
	refused := &plan.Plan{Refused: "too many", Steps: []plan.Step{inst("a", plan.Create)}}
	Limit(refused, mustDecode(t, "apiVersion: osbgit.dev/v1alpha1\nkind: Policy\nmaxCreatesPerPass: 0\n"))
	if refused.Steps[0].Error != "" {
		t.Errorf("a refused plan was changed")
	}
}

// The example policy in the README decodes.
func TestReadmeExample(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "### Tenancy policy")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no yaml block in the README's Tenancy policy section")
	}
	p := mustDecode(t, block)
	if len(p.Paths) != 3 || len(p.Plans) != 2 || p.MaxDeletesPerPass == nil {
		t.Errorf("README example decoded as %+v", p)
	}
}

// Digest changes with the policy's file name or content.
func TestDigest(t *testing.T) {
	const src = "apiVersion: osbgit.dev/v1alpha1\nkind: Policy\nmaxCreatesPerPass: 2\n"
	a, b, c := mustDecode(t, src), mustDecode(t, src+"maxDeletesPerPass: 1\n"), mustDecode(t, src)
	other, _ := Decode("other.yaml", []byte(src))
	var none *Policy
	if a.Digest() == "" || a.Digest() != c.Digest() || a.Digest() == b.Digest() || a.Digest() == other.Digest() || none.Digest() != "" {
		t.Errorf("digests %q %q %q %q %q", a.Digest(), b.Digest(), c.Digest(), other.Digest(), none.Digest())
	}
}
