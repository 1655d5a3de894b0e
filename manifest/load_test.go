package manifest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

const instHead = "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata:\n  name: db\nspec:\n  clusterServiceClassExternalName: c\n  clusterServicePlanExternalName: p\n"

func TestDecodeFile(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantRefs  []string // GetRef().String() of decoded objects
		wantDiags []string // Diagnostic.String() of file-level diagnostics
		wantObj   []string // String() of object-level diagnostics
		check     func(t *testing.T, objs []Object)
	}{
		{name: "empty", in: ""},
		{name: "comments only", in: "# nothing\n---\n# still nothing\n"},
		{name: "empty documents", in: "---\n---\n...\n"},
		{
			name:     "byte order mark and CRLF",
			in:       "\ufeff" + strings.ReplaceAll(instHead, "\n", "\r\n"),
			wantRefs: []string{"ServiceInstance db"},
			check: func(t *testing.T, objs []Object) {
				if l := objs[0].FieldLine("spec.clusterServicePlanExternalName"); l != 7 {
					t.Errorf("line %d, want 7", l)
				}
			},
		},
		{
			name:     "List items keep their own lines",
			in:       "apiVersion: v1\nkind: List\nitems:\n- apiVersion: servicecatalog.k8s.io/v1beta1\n  kind: ClusterServiceBroker\n  metadata: {name: a}\n  spec: {url: 'http://a'}\n- apiVersion: servicecatalog.k8s.io/v1beta1\n  kind: ClusterServiceBroker\n  metadata: {name: b}\n  spec: {url: 'http://b'}\n",
			wantRefs: []string{"ClusterServiceBroker a", "ClusterServiceBroker b"},
			check: func(t *testing.T, objs []Object) {
				if objs[0].GetSource().Line != 4 || objs[1].GetSource().Line != 8 {
					t.Errorf("sources %v %v", objs[0].GetSource(), objs[1].GetSource())
				}
			},
		},
		{
			name:     "numbers in parameters keep their value",
			in:       instHead + "  parameters: {hex: 0x1F, plus: +12, exact: 1.10, big: 123456789012345678901234567890, exp: 1e3, neg: -0.5, octal: 0o17}\n",
			wantRefs: []string{"ServiceInstance db"},
			check: func(t *testing.T, objs []Object) {
				b, _ := json.Marshal(objs[0].(*ServiceInstance).Spec.Parameters)
				want := `{"big":123456789012345678901234567890,"exact":1.10,"exp":1e3,"hex":31,"neg":-0.5,"octal":15,"plus":12}`
				if string(b) != want {
					t.Errorf("parameters %s, want %s", b, want)
				}
			},
		},
		{
			name:     "anchors and aliases are expanded",
			in:       "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata:\n  name: db\n  labels: &l {a: b}\n  annotations: *l\nspec:\n  clusterServiceClassExternalName: &c c\n  clusterServicePlanExternalName: *c\n",
			wantRefs: []string{"ServiceInstance db"},
			check: func(t *testing.T, objs []Object) {
				i := objs[0].(*ServiceInstance)
				if i.Annotations["a"] != "b" || i.Spec.ClusterServicePlanExternalName != "c" {
					t.Errorf("aliases not expanded: %+v %+v", i.Annotations, i.Spec.PlanReference)
				}
			},
		},
		{
			name:     "caBundle as !!binary",
			in:       "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ClusterServiceBroker\nmetadata: {name: b}\nspec:\n  url: http://b\n  caBundle: !!binary |\n    aGVs\n    bG8=\n",
			wantRefs: []string{"ClusterServiceBroker b"},
			check: func(t *testing.T, objs []Object) {
				if got := string(objs[0].(*ClusterServiceBroker).Spec.CABundle); got != "hello" {
					t.Errorf("caBundle %q", got)
				}
			},
		},
		{
			name:      "syntax error keeps earlier documents",
			in:        instHead + "---\nkey: [unclosed\n",
			wantRefs:  []string{"ServiceInstance db"},
			wantDiags: []string{"f.yaml:9: invalid YAML: did not find expected ',' or ']'"},
		},
		{
			name:      "not UTF-8",
			in:        "a: b\nc: \xff\n",
			wantDiags: []string{"f.yaml:2: file is not valid UTF-8"},
		},
		{
			name:      "tabs",
			in:        "apiVersion: v1\n\tkind: x\n",
			wantDiags: []string{"f.yaml:2: invalid YAML: found a tab character that violates indentation"},
		},
		{
			name:     "unknown field in metadata and status ignored",
			in:       instHead + "status: {anything: [goes]}\n" + "  \n",
			wantRefs: []string{"ServiceInstance db"},
		},
		{
			name:     "object-level problems travel with the object",
			in:       instHead + "  colour: blue\n",
			wantRefs: []string{"ServiceInstance db"},
			wantObj:  []string{`f.yaml:8: spec.colour: unknown field "colour"`},
		},
		{
			name:     "parameter keys that are not identifiers",
			in:       instHead + "  parameters:\n    \"a.b\": {\"c d\": 1}\n",
			wantRefs: []string{"ServiceInstance db"},
			check: func(t *testing.T, objs []Object) {
				if l := objs[0].FieldLine(`spec.parameters["a.b"]["c d"]`); l != 9 {
					t.Errorf("line %d, want 9", l)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, diags := DecodeFile("f.yaml", []byte(tt.in))
			var refs []string
			var objDiags []string
			for _, o := range objs {
				refs = append(refs, o.GetRef().String())
				for _, d := range o.objBase().decodeDiags {
					objDiags = append(objDiags, d.String())
				}
			}
			if strings.Join(refs, "|") != strings.Join(tt.wantRefs, "|") {
				t.Errorf("refs %q, want %q", refs, tt.wantRefs)
			}
			var got []string
			for _, d := range diags {
				got = append(got, d.String())
			}
			if strings.Join(got, "|") != strings.Join(tt.wantDiags, "|") {
				t.Errorf("diagnostics %q, want %q", got, tt.wantDiags)
			}
			if strings.Join(objDiags, "|") != strings.Join(tt.wantObj, "|") {
				t.Errorf("object diagnostics %q, want %q", objDiags, tt.wantObj)
			}
			if tt.check != nil && len(objs) > 0 {
				tt.check(t, objs)
			}
		})
	}
}

func TestDecodeFileTooLarge(t *testing.T) {
	data := make([]byte, MaxFileSize+1)
	objs, diags := DecodeFile("big.yaml", data)
	if len(objs) != 0 || len(diags) != 1 || !strings.Contains(diags[0].Message, "larger than") {
		t.Fatalf("objs %d diags %v", len(objs), diags)
	}
}

// TestAssembleDoesNotMutate checks that cached DecodeFile results can be
// assembled again under another config.
func TestAssembleDoesNotMutate(t *testing.T) {
	src := instHead + "---\napiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceBinding\nmetadata: {name: b}\nspec: {instanceRef: {name: db}}\n" +
		"---\napiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceBroker\nmetadata: {name: sb}\nspec: {url: 'http://x', authInfo: {basic: {secretRef: {name: s}}}}\n"
	objs, diags := DecodeFile("f.yaml", []byte(src))
	if len(diags) != 0 || len(objs) != 3 {
		t.Fatalf("decode: %v %d", diags, len(objs))
	}
	for _, ns := range []string{"alpha", "beta"} {
		cfg := DefaultConfig()
		cfg.DefaultNamespace = ns
		set, _ := Assemble(objs, cfg)
		if set.Instance(ns, "db") == nil {
			t.Errorf("%s: instance not defaulted into the namespace", ns)
		}
		b := set.Bindings[0]
		if b.Namespace != ns || b.Spec.SecretName != "b" {
			t.Errorf("%s: binding %s/%s secret %q", ns, b.Namespace, b.Name, b.Spec.SecretName)
		}
		sb := set.ServiceBrokers[0]
		if got := sb.Spec.AuthInfo.Basic.SecretRef.Namespace; got != ns {
			t.Errorf("%s: auth secret namespace %q", ns, got)
		}
	}
	for _, o := range objs {
		if o.GetMetadata().Namespace != "" {
			t.Errorf("original %v was modified", o.GetRef())
		}
	}
	if objs[1].(*ServiceBinding).Spec.SecretName != "" || objs[2].(*ServiceBroker).Spec.AuthInfo.Basic.SecretRef.Namespace != "" {
		t.Error("original spec was defaulted in place")
	}
}

// TestAssembleSharesWhatItDoesNotChange checks that objects Assemble has
// nothing to change in are taken as they are (not copied), that
// assembling them again, also concurrently (the race detector watches),
// gives the same Set, and that an object's decode diagnostics are
// reported by every Assemble.
func TestAssembleSharesWhatItDoesNotChange(t *testing.T) {
	src := "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata: {name: db, namespace: team}\nspec: {clusterServiceClassExternalName: c, clusterServicePlanExternalName: p}\n" +
		"---\napiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceBinding\nmetadata: {name: b, namespace: team}\nspec: {instanceRef: {name: db}, secretName: creds}\n" +
		"---\napiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceBinding\nmetadata: {name: b2, namespace: team}\nspec: {instanceRef: {name: db}}\n" +
		"---\napiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata: {name: warned, namespace: team}\nspec: {clusterServiceClassExternalName: c, clusterServicePlanExternalName: p, bogus: 1}\n"
	objs, diags := DecodeFile("f.yaml", []byte(src))
	if diags.HasErrors() || len(objs) != 4 {
		t.Fatalf("decode: %v %d", diags, len(objs))
	}
	assemble := func() (*Set, Diagnostics) { return Assemble(objs, DefaultConfig()) }
	set, d1 := assemble()
	if got := set.Instance("team", "db"); got != objs[0] {
		t.Errorf("instance with nothing to default was copied")
	}
	binding := func(name string) *ServiceBinding {
		o, _ := set.Get(Ref{Kind: KindServiceBinding, Namespace: "team", Name: name})
		b, _ := o.(*ServiceBinding)
		return b
	}
	if got := binding("b"); got != objs[1] {
		t.Errorf("binding with a secretName was copied")
	}
	b2 := binding("b2")
	if b2 == objs[2] || b2.Spec.SecretName != "b2" || objs[2].(*ServiceBinding).Spec.SecretName != "" {
		t.Errorf("binding without secretName: shared %v, secretName %q (original %q)", b2 == objs[2], b2.Spec.SecretName, objs[2].(*ServiceBinding).Spec.SecretName)
	}
	results := make(chan Diagnostics, 2)
	for range 2 {
		go func() { _, d := assemble(); results <- d }()
	}
	for range 2 {
		if d := <-results; fmt.Sprint(d) != fmt.Sprint(d1) {
			t.Errorf("assembled again: %v, first %v", d, d1)
		}
	}
	if !strings.Contains(fmt.Sprint(d1), "bogus") {
		t.Errorf("decode diagnostic of the copied object missing: %v", d1)
	}
}

// TestLoadSameFromAnyFS loads a fixture through os.DirFS and through an
// in-memory copy (as a Git tree would be) and expects identical results.
func TestLoadSameFromAnyFS(t *testing.T) {
	root := filepath.Join(goldenRoot, "good", "mixed")
	mem := fstest.MapFS{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		mem[filepath.ToSlash(rel)] = &fstest.MapFile{Data: data}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s1, d1 := Load(os.DirFS(root), "")
	s2, d2 := Load(mem, "")
	if a, b := string(renderSet(t, s1, d1)), string(renderSet(t, s2, d2)); a != b {
		t.Errorf("DirFS and MapFS differ:\n%s\n---\n%s", a, b)
	}
}

func TestLoadReportsUnreadableFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"ok.yaml":     &fstest.MapFile{Data: []byte(instHead)},
		"broken.yaml": &fstest.MapFile{Data: []byte("a: [\n")},
		"b.yml":       &fstest.MapFile{Data: []byte("\xfe")},
		".git/x.yaml": &fstest.MapFile{Data: []byte("a: [\n")},
		"notes.txt":   &fstest.MapFile{Data: []byte("a: [\n")},
	}
	set, diags := Load(fsys, "")
	if got := strings.Join(set.UnreadableFiles, ","); got != "b.yml,broken.yaml" {
		t.Errorf("unreadable %q", got)
	}
	if !diags.HasErrors() || set.Instance("default", "db") == nil {
		t.Errorf("diags %v", diags)
	}
}

func TestLoadPathArgument(t *testing.T) {
	fsys := fstest.MapFS{
		"osbgit.yaml":   &fstest.MapFile{Data: []byte("apiVersion: osbgit.dev/v1alpha1\nkind: Config\npath: a\n")},
		"a/i.yaml":      &fstest.MapFile{Data: []byte(instHead)},
		"b/broker.yaml": &fstest.MapFile{Data: []byte("apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ClusterServiceBroker\nmetadata: {name: x}\nspec: {url: 'http://x'}\n")},
	}
	tests := []struct {
		dir                  string
		instances, brokers   int
		wantErrorDiagnostics bool
	}{
		{"", 1, 0, true}, // config path a: instance without its broker
		{"b", 0, 1, false},
		{"./b/", 0, 1, false},
		{".", 1, 1, false},
		{"../x", 0, 0, true},
		{"missing", 0, 0, true},
	}
	for _, tt := range tests {
		set, diags := Load(fsys, tt.dir)
		if len(set.Instances) != tt.instances || len(set.Brokers()) != tt.brokers || diags.HasErrors() != tt.wantErrorDiagnostics {
			t.Errorf("Load(%q): %d instances, %d brokers, diags %v", tt.dir, len(set.Instances), len(set.Brokers()), diags)
		}
	}
}

func TestDiagnosticString(t *testing.T) {
	tests := []struct {
		d    Diagnostic
		want string
	}{
		{Diagnostic{File: "a.yaml", Line: 3, Field: "spec.url", Severity: SeverityError, Message: "required"}, "a.yaml:3: spec.url: required"},
		{Diagnostic{File: "a.yaml", Line: 3, Severity: SeverityWarning, Message: "m"}, "warning: a.yaml:3: m"},
		{Diagnostic{File: "a.yaml", Severity: SeverityError, Message: "m"}, "a.yaml: m"},
		{Diagnostic{Severity: SeverityError, Message: "m", Ref: Ref{Kind: KindServiceInstance, Namespace: "n", Name: "x"}}, "ServiceInstance n/x: m"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("%q, want %q", got, tt.want)
		}
	}
	ds := Diagnostics{tests[1].d, tests[0].d, tests[0].d}
	ds.Sort()
	if len(ds) != 2 || ds[0].Field != "" || ds.Err() == nil || ds.Errors()[0].Field != "spec.url" {
		t.Errorf("sorted %v", ds)
	}
	if (Diagnostics{tests[1].d}).Err() != nil {
		t.Error("warnings only must not be an error")
	}
	if !IsDiagnostics(ds.Err()) {
		t.Error("Err is not a DiagnosticsError")
	}
}

func TestSpecHash(t *testing.T) {
	decode := func(s string) Object {
		objs, _ := DecodeFile("f.yaml", []byte(s))
		set, _ := Assemble(objs, nil)
		return set.Objects()[0]
	}
	base := decode(instHead)
	labelled := decode(strings.Replace(instHead, "  name: db\n", "  name: db\n  labels: {team: x}\n", 1))
	changed := decode(instHead + "  updateRequests: 1\n")
	retained := decode(strings.Replace(instHead, "  name: db\n", "  name: db\n  annotations: {osbgit.dev/deletion-policy: Retain}\n", 1))
	h := func(o Object) string {
		s, err := SpecHash(o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if h(base) != h(labelled) {
		t.Error("labels changed the spec hash")
	}
	if h(base) == h(changed) || h(base) == h(retained) {
		t.Error("spec or deletion policy change did not change the hash")
	}
}

func TestLoadRecords(t *testing.T) {
	rec := NewStatusRecord(Ref{Kind: KindServiceInstance, Namespace: "ns", Name: "db"})
	rec.Phase = PhaseReady
	good, err := MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := NewCatalogRecord(Ref{Kind: KindServiceBroker, Namespace: "ns", Name: "b"}, sampleCatalog(), t0, "", 0)
	catBytes, _ := MarshalRecord(cat)
	fsys := fstest.MapFS{
		".osbgit/status/ns/serviceinstance/db.yaml":    &fstest.MapFile{Data: good},
		".osbgit/status/ns/serviceinstance/wrong.yaml": &fstest.MapFile{Data: good},
		".osbgit/catalog/ns/b.yaml":                    &fstest.MapFile{Data: catBytes},
	}
	recs, err := LoadRecords(fsys)
	if err != nil {
		t.Errorf("err %v", err)
	}
	// The path decides whose record a file is (see TestLoadRecordsPathWins).
	wrong := Ref{Kind: KindServiceInstance, Namespace: "ns", Name: "wrong"}
	if recs.Status[rec.Ref] == nil || recs.Status[wrong] == nil || recs.Status[wrong].Ref != wrong || recs.Catalogs[cat.Broker] == nil {
		t.Errorf("records %+v", recs)
	}
	if len(recs.Warnings) != 1 || !strings.Contains(recs.Warnings[0], "wrong.yaml: the record names") {
		t.Errorf("warnings %q", recs.Warnings)
	}
	if c := recs.CatalogsByKey()["ns/b"]; c == nil || len(c.Services) != 1 {
		t.Errorf("CatalogsByKey %v", recs.CatalogsByKey())
	}
	empty, err := LoadRecords(fstest.MapFS{})
	if err != nil || len(empty.Status) != 0 {
		t.Errorf("empty tree: %v %v", empty, err)
	}
}

// TestLoadNeverLooksEmptyByAccident: when the manifests cannot be read, the
// Set must say so, so that a planner with prune on deletes nothing.
func TestLoadNeverLooksEmptyByAccident(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
		dir  string
	}{
		{"missing dir", fstest.MapFS{"a.yaml": &fstest.MapFile{Data: []byte(instHead)}}, "nope"},
		{"dir outside the repo", fstest.MapFS{}, "../x"},
		{"config path outside the repo", fstest.MapFS{"osbgit.yaml": &fstest.MapFile{Data: []byte("apiVersion: osbgit.dev/v1alpha1\nkind: Config\npath: ../x\n")}}, ""},
		{"config with errors", fstest.MapFS{"osbgit.yaml": &fstest.MapFile{Data: []byte("apiVersion: osbgit.dev/v1alpha1\nkind: Config\nprun: true\n")}}, ""},
		{"syntax error", fstest.MapFS{"a.yaml": &fstest.MapFile{Data: []byte("a: [\n")}}, ""},
	}
	for _, tt := range tests {
		set, diags := Load(tt.fsys, tt.dir)
		if len(set.UnreadableFiles) == 0 || !diags.HasErrors() {
			t.Errorf("%s: UnreadableFiles %v, diags %v", tt.name, set.UnreadableFiles, diags)
		}
	}
}

// TestBrokerAuthSecretRef: the auth Secret a broker names, as the client
// reads it and the Secret check watches it.
func TestBrokerAuthSecretRef(t *testing.T) {
	basic, bearer := &ObjectReference{Name: "basic"}, &ObjectReference{Name: "bearer"}
	for _, tc := range []struct {
		name       string
		ai         *BrokerAuthInfo
		want       *ObjectReference
		wantBearer bool
	}{
		{"none", nil, nil, false},
		{"basic", &BrokerAuthInfo{Basic: &SecretAuthConfig{SecretRef: basic}}, basic, false},
		{"bearer", &BrokerAuthInfo{Bearer: &SecretAuthConfig{SecretRef: bearer}}, bearer, true},
		{"basic without a Secret", &BrokerAuthInfo{Basic: &SecretAuthConfig{}, Bearer: &SecretAuthConfig{SecretRef: bearer}}, bearer, true},
		{"neither names one", &BrokerAuthInfo{Basic: &SecretAuthConfig{}}, nil, false},
	} {
		got, gotBearer := tc.ai.SecretRef()
		if got != tc.want || gotBearer != tc.wantBearer {
			t.Errorf("%s: got %v, %v; want %v, %v", tc.name, got, gotBearer, tc.want, tc.wantBearer)
		}
	}
}

// TestAssembleWithAdmission: with an admission (the tenancy policy's path
// rules), a duplicate's copies whose file may not declare it are ignored
// when another copy's file may, each with an error at its file that names
// no resource (so nothing blocks the admitted copy); when no copy or
// every copy may, the duplicate errors block the resource as without one.
func TestAssembleWithAdmission(t *testing.T) {
	inst := func(file, plan string, extra string) []Object {
		src := "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata: {name: db, namespace: team-a}\n" +
			"spec: {clusterServiceClassExternalName: c, clusterServicePlanExternalName: " + plan + extra + "}\n"
		objs, diags := DecodeFile(file, []byte(src))
		if len(objs) != 1 {
			t.Fatalf("decode %s: %v", file, diags)
		}
		return objs
	}
	// teams/a/ may declare team-a; no other directory may.
	admit := func(o Object) *Diagnostic {
		if strings.HasPrefix(o.GetSource().File, "teams/a/") {
			return nil
		}
		return &Diagnostic{File: o.GetSource().File, Line: 3, Field: "metadata.namespace", Severity: SeverityError, Ref: o.GetRef(),
			Message: "namespace \"team-a\" may not be declared in " + o.GetSource().File}
	}
	ref := Ref{Kind: KindServiceInstance, Namespace: "team-a", Name: "db"}
	tests := []struct {
		name  string
		files [][]Object
		// plan is the plan of the instance in the Set; blocked says the
		// ref has duplicate errors; errFiles are the files with errors
		// naming no resource.
		plan     string
		blocked  bool
		errFiles []string
	}{
		{name: "refused copy sorts after", files: [][]Object{inst("teams/a/db.yaml", "small", ""), inst("teams/b/db.yaml", "large", "")},
			plan: "small", errFiles: []string{"teams/b/db.yaml"}},
		{name: "refused copy sorts first", files: [][]Object{inst("teams/0/db.yaml", "large", ""), inst("teams/a/db.yaml", "small", "")},
			plan: "small", errFiles: []string{"teams/0/db.yaml"}},
		{name: "refused copies with their own errors", files: [][]Object{inst("teams/0/db.yaml", "large", ", parameters: [1]"), inst("teams/a/db.yaml", "small", ""), inst("x/db.yaml", "large", "")},
			plan: "small", errFiles: []string{"teams/0/db.yaml", "x/db.yaml"}},
		{name: "no copy admitted", files: [][]Object{inst("teams/0/db.yaml", "large", ""), inst("teams/b/db.yaml", "large", "")},
			plan: "large", blocked: true},
		{name: "every copy admitted", files: [][]Object{inst("teams/a/db.yaml", "small", ""), inst("teams/a/db2.yaml", "large", "")},
			plan: "small", blocked: true},
		{name: "single refused copy", files: [][]Object{inst("teams/b/db.yaml", "large", "")},
			plan: "large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var objs []Object
			for _, f := range tt.files {
				objs = append(objs, f...)
			}
			set, diags := Assemble(objs, DefaultConfig(), WithAdmission(admit))
			got := set.Instance("team-a", "db")
			if got == nil || got.Spec.ClusterServicePlanExternalName != tt.plan {
				t.Fatalf("instance %+v, want plan %q\n%v", got, tt.plan, diags)
			}
			blocked := false
			var errFiles []string
			for _, d := range diags.Errors() {
				switch d.Ref {
				case ref:
					blocked = blocked || strings.Contains(d.Message, "duplicate")
					if len(tt.errFiles) > 0 && d.File != "teams/a/db.yaml" {
						t.Errorf("an ignored copy's error names the resource: %v", d)
					}
				case Ref{}:
					if !slices.Contains(errFiles, d.File) {
						errFiles = append(errFiles, d.File)
					}
					if !strings.Contains(d.Message, "this copy is ignored") && !strings.Contains(d.Message, "expected a mapping") {
						t.Errorf("error at %s: %q", d.File, d.Message)
					}
				}
			}
			if blocked != tt.blocked || fmt.Sprint(errFiles) != fmt.Sprint(tt.errFiles) {
				t.Errorf("blocked %v, errors naming no resource at %v; want %v, %v\n%v", blocked, errFiles, tt.blocked, tt.errFiles, diags)
			}
			if !tt.blocked && slices.Contains(FileErrors(diags), "teams/a/db.yaml") {
				t.Errorf("the admitted copy's file counts as unreadable: %v", FileErrors(diags))
			}
		})
	}
	// Without an admission every duplicate blocks, as before.
	_, diags := Assemble(append(inst("teams/a/db.yaml", "small", ""), inst("teams/b/db.yaml", "large", "")...), DefaultConfig())
	dups := 0
	for _, d := range diags.Errors() {
		if d.Ref == ref && strings.Contains(d.Message, "duplicate") {
			dups++
		}
	}
	if dups != 2 {
		t.Errorf("without admission: %v, want a duplicate error at each copy", diags)
	}
}
