package manifest

import (
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

func sampleCatalog() osbwire.Catalog {
	var c osbwire.Catalog
	raw := `{"services":[{"name":"db","id":"Svc.ID","description":"d","bindable":true,
	  "plans":[{"id":"p-small","name":"small","description":"s"},{"id":"p-big","name":"big","description":"b","free":false}]}]}`
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		panic(err)
	}
	return c
}

func catalogOf(services ...string) *osbwire.Catalog {
	c := &osbwire.Catalog{}
	for _, s := range services {
		c.Services = append(c.Services, osbwire.Service{Name: s, ID: s + "-id", Bindable: true,
			Plans: []osbwire.Plan{{ID: s + "-plan", Name: "std"}}})
	}
	return c
}

func mustSet(t *testing.T, src string) *Set {
	t.Helper()
	objs, diags := DecodeFile("f.yaml", []byte(src))
	if len(diags) > 0 {
		t.Fatalf("decode: %v", diags)
	}
	set, _ := Assemble(objs, nil)
	return set
}

const resolveRepo = `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata: {name: a}
spec: {url: 'http://a'}
---
apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata: {name: b}
spec: {url: 'http://b', catalogRestrictions: {serviceClass: ["spec.externalName!=hidden"]}}
---
apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBroker
metadata: {name: nsb, namespace: team}
spec: {url: 'http://n'}
---
apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBroker
metadata: {name: other, namespace: elsewhere}
spec: {url: 'http://o'}
`

func TestResolve(t *testing.T) {
	set := mustSet(t, resolveRepo)
	cats := Catalogs{
		"a":               catalogOf("shared", "only-a"),
		"b":               catalogOf("shared", "hidden"),
		"team/nsb":        catalogOf("ns-svc"),
		"elsewhere/other": catalogOf("ns-svc", "far"),
	}
	db := sampleCatalog()
	cats["a"].Services = append(cats["a"].Services, db.Services...)
	tests := []struct {
		name       string
		ns         string
		spec       string
		wantBroker string
		wantPlan   string
		wantErr    string // substring; field prefix included
	}{
		{name: "by external name", spec: "clusterServiceClassExternalName: only-a\n  clusterServicePlanExternalName: std", wantBroker: "ClusterServiceBroker a", wantPlan: "only-a-plan"},
		{name: "ambiguous", spec: "clusterServiceClassExternalName: shared\n  clusterServicePlanExternalName: std", wantErr: `spec.clusterServiceClassExternalName: class "shared" is offered by ClusterServiceBroker a and ClusterServiceBroker b: pin one with spec.clusterServiceBrokerName`},
		{name: "pinned", spec: "clusterServiceClassExternalName: shared\n  clusterServicePlanExternalName: std\n  clusterServiceBrokerName: b", wantBroker: "ClusterServiceBroker b", wantPlan: "shared-plan"},
		{name: "restricted", spec: "clusterServiceClassExternalName: hidden\n  clusterServicePlanExternalName: std", wantErr: "excluded by the catalogRestrictions of ClusterServiceBroker b"},
		{name: "by external id", spec: "clusterServiceClassExternalID: Svc.ID\n  clusterServicePlanExternalID: p-big", wantBroker: "ClusterServiceBroker a", wantPlan: "p-big"},
		{name: "by k8s name (escaped id)", spec: "clusterServiceClassName: z53zvc.z49zz44z\n  clusterServicePlanName: p-small", wantBroker: "ClusterServiceBroker a", wantPlan: "p-small"},
		{name: "by k8s name (raw id)", spec: "clusterServiceClassName: Svc.ID\n  clusterServicePlanName: p-small", wantBroker: "ClusterServiceBroker a", wantPlan: "p-small"},
		{name: "plan omitted, one plan", spec: "clusterServiceClassExternalName: only-a", wantBroker: "ClusterServiceBroker a", wantPlan: "only-a-plan"},
		{name: "plan omitted, two plans", spec: "clusterServiceClassExternalName: db", wantErr: `spec.clusterServicePlanExternalName: required: class "db" has 2 plans (big, small)`},
		{name: "plan not found", spec: "clusterServiceClassExternalName: db\n  clusterServicePlanExternalName: huge", wantErr: `plan "huge" (by external name) not found in class "db" of ClusterServiceBroker a; available: big, small`},
		{name: "namespaced broker of the namespace", ns: "team", spec: "serviceClassExternalName: ns-svc\n  servicePlanExternalName: std", wantBroker: "ServiceBroker team/nsb", wantPlan: "ns-svc-plan"},
		{name: "other namespace's broker is not used", ns: "team", spec: "serviceClassExternalName: far\n  servicePlanExternalName: std", wantErr: `class "far" (by external name) not found in the catalog of ServiceBroker team/nsb`},
		{name: "no namespaced broker", ns: "empty", spec: "serviceClassExternalName: x\n  servicePlanExternalName: std", wantErr: `no ServiceBroker in namespace "empty"`},
		{name: "pinned broker missing", spec: "clusterServiceClassExternalName: x\n  clusterServicePlanExternalName: std\n  clusterServiceBrokerName: zz", wantErr: "spec.clusterServiceBrokerName: no ClusterServiceBroker zz"},
		{name: "invalid form", spec: "clusterServicePlanExternalName: std", wantErr: "spec: invalid plan reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := tt.ns
			if ns == "" {
				ns = "default"
			}
			objs, _ := DecodeFile("i.yaml", []byte("apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata: {name: i, namespace: "+ns+"}\nspec:\n  "+tt.spec+"\n"))
			inst := objs[0].(*ServiceInstance)
			res, err := Resolve(inst, set.Brokers(), cats)
			if tt.wantErr != "" {
				var re *ResolveError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &re) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.BrokerRef.String() != tt.wantBroker || res.Plan.ID != tt.wantPlan {
				t.Errorf("resolved %s plan %s, want %s %s", res.BrokerRef, res.Plan.ID, tt.wantBroker, tt.wantPlan)
			}
		})
	}
}

func TestResolveMissingCatalog(t *testing.T) {
	set := mustSet(t, resolveRepo)
	objs, _ := DecodeFile("i.yaml", []byte("apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata: {name: i}\nspec: {clusterServiceClassExternalName: x, clusterServicePlanExternalName: y}\n"))
	_, err := Resolve(objs[0].(*ServiceInstance), set.Brokers(), Catalogs{"a": catalogOf("q")})
	var re *ResolveError
	if !errors.As(err, &re) || len(re.MissingCatalogs) != 1 || re.MissingCatalogs[0].Name != "b" {
		t.Fatalf("err %#v", err)
	}
}

func TestK8sNameForExternalID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc-123", "abc-123"},
		{"4f6e6cf6-ffdd-425f-a2c7-3c9258ad2468", "4f6e6cf6-ffdd-425f-a2c7-3c9258ad2468"},
		{"Zebra", "z5azebra"},
		{"a.b", "a.b"},
		{".a", "z2eza"},
		{"a-", "az2dz"},
		{"a..b", "a.z2ezb"},
		{"a_b", "az5fzb"},
	}
	for _, tt := range tests {
		if got := K8sNameForExternalID(tt.in); got != tt.want {
			t.Errorf("K8sNameForExternalID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := strings.Repeat("A", 40)
	got := K8sNameForExternalID(long)
	if len(got) != 30+1+32 || !strings.HasPrefix(got, "z41zz41zz41z") {
		t.Errorf("long id -> %q", got)
	}
}

func TestSelectors(t *testing.T) {
	svc := osbwire.Service{Name: "mysql", ID: "MySQL"}
	plan := osbwire.Plan{Name: "small", ID: "p1"}
	paid := false
	paidPlan := osbwire.Plan{Name: "big", ID: "p2", Free: &paid}
	tests := []struct {
		sel     string
		props   []string
		plan    *osbwire.Plan
		want    bool
		wantErr string
	}{
		{sel: "spec.externalName==mysql", props: ClassProperties, want: true},
		{sel: "spec.externalName = mysql", props: ClassProperties, want: true},
		{sel: "spec.externalName!=mysql", props: ClassProperties, want: false},
		{sel: "spec.externalName in (redis, mysql)", props: ClassProperties, want: true},
		{sel: "spec.externalName notin (redis,mysql)", props: ClassProperties, want: false},
		{sel: "name==MySQL", props: ClassProperties, want: true},
		{sel: "name==z4dzyz53zz51zz4cz", props: ClassProperties, want: true},
		{sel: "spec.externalID==MySQL, spec.externalName==mysql", props: ClassProperties, want: true},
		{sel: "spec.externalID==MySQL, spec.externalName==other", props: ClassProperties, want: false},
		{sel: "spec.free==true", props: PlanProperties, plan: &plan, want: true},
		{sel: "spec.free==true", props: PlanProperties, plan: &paidPlan, want: false},
		{sel: "spec.clusterServiceClass.name in (MySQL)", props: PlanProperties, plan: &plan, want: true},
		{sel: "", props: ClassProperties, wantErr: "empty selector"},
		{sel: "spec.free==true", props: ClassProperties, wantErr: "unsupported property"},
		{sel: "spec.externalName", props: ClassProperties, wantErr: "missing operator"},
		{sel: "spec.externalName in a, b", props: ClassProperties, wantErr: "expected '('"},
		{sel: "spec.externalName in (a,,b)", props: ClassProperties, wantErr: "empty value"},
		{sel: "name==a)", props: ClassProperties, wantErr: "unexpected ')'"},
		{sel: "name==a name==b", props: ClassProperties, wantErr: ""},
	}
	for _, tt := range tests {
		s, err := ParseSelector(tt.sel, tt.props)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err %v, want %q", tt.sel, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			// "name==a name==b" is one requirement with value "a name==b":
			// values are literal; just make sure it parses.
			t.Errorf("%q: %v", tt.sel, err)
			continue
		}
		fields := ClassFields(svc)
		if tt.plan != nil {
			fields = PlanFields(svc, *tt.plan)
		}
		if tt.sel == "name==a name==b" {
			continue
		}
		if got := s.Matches(fields); got != tt.want {
			t.Errorf("%q matches = %v, want %v", tt.sel, got, tt.want)
		}
	}
}

func TestFilterCatalog(t *testing.T) {
	c := sampleCatalog()
	c.Services = append(c.Services, catalogOf("other").Services...)
	got, err := FilterCatalog(&c, &CatalogRestrictions{ServicePlan: []string{"spec.free==false"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Services) != 1 || len(got.Services[0].Plans) != 1 || got.Services[0].Plans[0].ID != "p-big" {
		t.Errorf("filtered %+v", got)
	}
	if len(c.Services[0].Plans) != 2 {
		t.Error("input modified")
	}
	if same, _ := FilterCatalog(&c, nil); same != &c {
		t.Error("nil restrictions must return the catalog itself")
	}
}

func TestResolveParameters(t *testing.T) {
	val := func(v string) SecretValue { return SecretValue{Value: []byte(v)} }
	secrets := SecretValues{
		{"ns", "s1", "k"}:   val(`{"password": "hunter2", "port": 5432.0}`),
		{"ns", "s2", "k"}:   val(`{"user": "admin"}`),
		{"ns", "dup", "k"}:  val(`{"size": 3}`),
		{"ns", "bad", "k"}:  val(`["not", "an", "object"]`),
		{"ns", "null", "k"}: val(`null`),
		{"ns", "gone", "k"}: {Err: fs.ErrNotExist},
	}
	src := func(names ...string) []ParametersFromSource {
		var out []ParametersFromSource
		for _, n := range names {
			out = append(out, ParametersFromSource{SecretKeyRef: &SecretKeyReference{Name: n, Key: "k"}})
		}
		return out
	}
	inline := map[string]any{"size": json.Number("10")}
	tests := []struct {
		name     string
		from     []ParametersFromSource
		want     string
		wantKeys string
		wantErr  string
		// unreadable: the error matches ErrSecretUnreadable.
		unreadable bool
	}{
		{name: "inline only", want: `{"size":10}`},
		{name: "merged", from: src("s1", "s2"), want: `{"password":"hunter2","port":5432.0,"size":10,"user":"admin"}`, wantKeys: "password,port,user"},
		{name: "duplicate key", from: src("dup"), wantErr: `spec.parametersFrom[0]: parameter "size" is also set by spec.parameters`},
		{name: "duplicate across sources", from: src("s2", "s2"), wantErr: `spec.parametersFrom[1]: parameter "user" is also set by spec.parametersFrom[0]`},
		{name: "not an object", from: src("bad"), wantErr: "must hold a JSON object"},
		{name: "null", from: src("null"), wantErr: "must hold a JSON object"},
		{name: "not read", from: src("nope"), wantErr: "Secret ns/nope", unreadable: true},
		{name: "unreadable", from: src("gone"), wantErr: `read key "k" of Secret ns/gone: file does not exist`, unreadable: true},
		{name: "no secretKeyRef", from: []ParametersFromSource{{}}, wantErr: "secretKeyRef is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, keys, err := ResolveParameters("ns", inline, tt.from, secrets)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrSecretUnreadable) != tt.unreadable {
					t.Errorf("errors.Is(%v, ErrSecretUnreadable) != %v", err, tt.unreadable)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Error("error leaks a secret value")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(got)
			if string(b) != tt.want || strings.Join(keys, ",") != tt.wantKeys {
				t.Errorf("got %s keys %v, want %s %s", b, keys, tt.want, tt.wantKeys)
			}
			if len(inline) != 1 {
				t.Error("inline parameters modified")
			}
			red := RedactParameters(got, keys)
			if rb, _ := json.Marshal(red); strings.Contains(string(rb), "hunter2") || strings.Contains(string(rb), "admin") {
				t.Errorf("not redacted: %s", rb)
			}
		})
	}
	if _, _, err := ResolveParameters("ns", nil, src("s1"), nil); err == nil {
		t.Error("no values with parametersFrom must fail")
	}
}

// TestParameterSecrets: the keys a pass reads before planning are those of
// every instance's and binding's parametersFrom, each once, in order.
func TestParameterSecrets(t *testing.T) {
	from := func(refs ...SecretKeyReference) []ParametersFromSource {
		var out []ParametersFromSource
		for _, r := range refs {
			out = append(out, ParametersFromSource{SecretKeyRef: &r})
		}
		return append(out, ParametersFromSource{}) // no secretKeyRef: nothing to read
	}
	inst := &ServiceInstance{}
	inst.Namespace = "b-ns"
	inst.Spec.ParametersFrom = from(SecretKeyReference{Name: "s", Key: "k2"}, SecretKeyReference{Name: "s", Key: "k1"})
	bind := &ServiceBinding{}
	bind.Namespace = "a-ns"
	bind.Spec.ParametersFrom = from(SecretKeyReference{Name: "t", Key: "k"}, SecretKeyReference{Name: "t", Key: "k"})
	got := ParameterSecrets(&Set{Instances: []*ServiceInstance{inst}, Bindings: []*ServiceBinding{bind}})
	want := []SecretKey{{"a-ns", "t", "k"}, {"b-ns", "s", "k1"}, {"b-ns", "s", "k2"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if ParameterSecrets(nil) != nil {
		t.Error("a nil set reads nothing")
	}
}

func TestValidateParameters(t *testing.T) {
	schema := json.RawMessage(`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object",
	  "properties":{"n":{"type":"integer","maximum":5,"exclusiveMaximum":true},
	    "list":{"type":"array","items":{"type":"string"}},
	    "a.b":{"type":"object","properties":{"c":{"type":"boolean"}}}},
	  "required":["n"]}`)
	tests := []struct {
		name   string
		params string
		want   []string // Field(): Message
	}{
		{name: "ok", params: `{"n":4}`},
		{name: "draft-04 exclusiveMaximum", params: `{"n":5}`, want: []string{"spec.parameters.n"}},
		{name: "array index", params: `{"n":1,"list":["a",2]}`, want: []string{"spec.parameters.list[1]"}},
		{name: "key with dot", params: `{"n":1,"a.b":{"c":"x"}}`, want: []string{`spec.parameters["a.b"].c`}},
		{name: "missing required", params: `{}`, want: []string{"spec.parameters"}},
		{name: "nil params", params: `null`, want: []string{"spec.parameters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p map[string]any
			dec := json.NewDecoder(strings.NewReader(tt.params))
			dec.UseNumber()
			if err := dec.Decode(&p); err != nil {
				t.Fatal(err)
			}
			errs, err := ValidateParameters(schema, p)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Field())
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("fields %q, want %q (%+v)", got, tt.want, errs)
			}
		})
	}
	for _, bad := range []string{`{"$ref":"file:///etc/passwd"}`, `{"$ref":"https://example.com/s.json"}`, `{"type": 12}`, `not json`} {
		if _, err := ValidateParameters(json.RawMessage(bad), map[string]any{}); err == nil {
			t.Errorf("schema %s: want an error", bad)
		}
	}
}
