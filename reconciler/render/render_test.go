package render

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
)

var (
	broker = manifest.Ref{Kind: manifest.KindClusterServiceBroker, Name: "demo"}
	inst   = manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"}
	bind   = manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "db-binding"}
)

func TestSymbol(t *testing.T) {
	for _, c := range []struct {
		s    plan.Step
		want string
	}{
		{plan.Step{Action: plan.Create}, "+ create"},
		{plan.Step{Action: plan.Update}, "~ update"},
		{plan.Step{Action: plan.Delete}, "- delete"},
		{plan.Step{Action: plan.Poll}, "<= poll"},
		{plan.Step{Action: plan.OrphanMitigate}, "! orphan-mitigate"},
		{plan.Step{Action: plan.Adopt}, "= adopt"},
		{plan.Step{Action: plan.Forget}, "# forget"},
		{plan.Step{Action: plan.None, Error: "bad"}, "x error"},
		{plan.Step{Action: plan.None}, ". none"},
	} {
		if got := Symbol(&c.s); got != c.want {
			t.Errorf("Symbol(%s) = %q, want %q", c.s.Action, got, c.want)
		}
	}
}

func TestChangeText(t *testing.T) {
	for _, c := range []struct {
		c    plan.Change
		want string
	}{
		{plan.Change{Path: "plan", Op: plan.ChangeModify, Old: "small", New: "large"}, "plan: small -> large"},
		{plan.Change{Path: "parameters.size", Op: plan.ChangeAdd, New: "10"}, "parameters.size: 10"},
		{plan.Change{Path: "parameters.size", Op: plan.ChangeSet, New: "20"}, "parameters.size: (unknown) -> 20"},
		{plan.Change{Path: "parameters.gone", Op: plan.ChangeRemove}, "parameters.gone"},
		{plan.Change{Path: "parameters.pw", Op: plan.ChangeAdd, New: "leak", Sensitive: true}, "parameters.pw: (sensitive)"},
		{plan.Change{Path: "parameters.s", Op: plan.ChangeAdd, New: ""}, `parameters.s: ""`},
	} {
		if got := changeText(c.c); got != c.want {
			t.Errorf("changeText(%+v) = %q, want %q", c.c, got, c.want)
		}
	}
}

func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) < n {
		return lines
	}
	return lines[len(lines)-n:]
}

func TestTextClosingLines(t *testing.T) {
	cases := []struct {
		name string
		p    plan.Plan
		want []string
	}{
		{"empty", plan.Plan{}, []string{"No changes. Brokers match the manifests."}},
		{"in sync", plan.Plan{Steps: []plan.Step{{Ref: inst, Action: plan.None, Reason: "in sync"}}},
			[]string{"", "No changes. Brokers match the manifests."}},
		{"creates and deletes", plan.Plan{Steps: []plan.Step{
			{Ref: inst, Action: plan.Create}, {Ref: bind, Action: plan.Delete}, {Ref: broker, Action: plan.None},
			{Ref: manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "a", Name: "om"}, Action: plan.OrphanMitigate},
		}}, []string{"Plan: 1 to create, 0 to update, 2 to delete."}},
		{"polls, adopts, forgets", plan.Plan{Steps: []plan.Step{{Ref: inst, Action: plan.Poll}, {Ref: bind, Action: plan.Forget}}},
			[]string{"Plan: 0 to create, 0 to update, 0 to delete.", "Also: 1 to poll, 1 to forget."}},
		{"errors only", plan.Plan{Steps: []plan.Step{{Ref: inst, Action: plan.None, Error: "x"}, {Ref: bind, Action: plan.None, Error: "y"}}},
			[]string{"Plan: 0 to create, 0 to update, 0 to delete.", "2 resources have errors."}},
		{"refused", plan.Plan{Refused: "3 deletions exceed maxDeletions 2; raise --max-deletions or restore manifests",
			Steps: []plan.Step{{Ref: inst, Action: plan.None}}},
			[]string{"Refused: 3 deletions exceed maxDeletions 2; raise --max-deletions or restore manifests (nothing runs)", "Plan: 0 to create, 0 to update, 0 to delete."}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Text(&b, &c.p, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			got := lastLines(b.String(), len(c.want))
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("closing lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

func samplePlan() *plan.Plan {
	start := metav1.NewTime(time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC))
	return &plan.Plan{
		Revision: "abc123",
		Steps: []plan.Step{
			{Ref: broker, Action: plan.None, Reason: "in sync", Target: plan.Target{Broker: broker}},
			{Ref: inst, Action: plan.Update, Reason: "plan changed", ExternalID: "i-1",
				Target:   plan.Target{Broker: broker, ServiceID: "s", PlanID: "p2", ClassExternalName: "postgres", PlanExternalName: "large"},
				Previous: &plan.Target{Broker: broker, ServiceID: "s", PlanID: "p1", PlanExternalName: "small"},
				Changes:  []plan.Change{{Path: "plan", Op: plan.ChangeModify, Old: "small", New: "large"}},
				Source:   &manifest.Source{File: "apps/db.yaml", Line: 1}},
			{Ref: bind, Action: plan.Poll, Reason: "bind in progress", ExternalID: "b-1", InstanceExternalID: "i-1",
				Operation:    &manifest.LastOperation{Type: manifest.OperationBind, Operation: "op", StartTime: start, PlanID: "p1"},
				PollDeadline: start.Add(time.Hour), SecretNamespace: "apps", SecretName: "creds",
				DependsOn: []manifest.Ref{inst}, Warnings: []string{"w"}},
		},
		Diagnostics: manifest.Diagnostics{{File: "apps/x.yaml", Line: 3, Field: "spec", Severity: manifest.SeverityWarning, Message: "hmm", Ref: inst}},
	}
}

func TestTextBody(t *testing.T) {
	var b bytes.Buffer
	if err := Text(&b, samplePlan(), TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"osbgit plan for revision abc123\n",
		"  ~ update ServiceInstance apps/db (apps/db.yaml:1)\n      plan changed\n      id: i-1\n      at ClusterServiceBroker demo: postgres/large\n      ~ plan: small -> large\n",
		"  <= poll ServiceBinding apps/db-binding\n",
		`operation: bind "op", plan_id p1, deadline 2026-01-01T12:00:00Z`,
		"after: ServiceInstance apps/db",
		"warning: w",
		"Diagnostics:\n  warning: apps/x.yaml:3: spec: hmm\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ClusterServiceBroker demo\n      in sync") {
		t.Errorf("in-sync resource shown without ShowUnchanged:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colors without Color")
	}
	b.Reset()
	if err := Text(&b, samplePlan(), TextOptions{Color: true, ShowUnchanged: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\x1b[33m~ update\x1b[0m") || !strings.Contains(b.String(), ". none\x1b[0m ClusterServiceBroker demo") {
		t.Errorf("color/ShowUnchanged output:\n%q", b.String())
	}
}

// TestJSONSchema pins the documented field set: adding a field is fine
// (update this test and doc.go), removing or renaming one is not.
func TestJSONSchema(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, samplePlan()); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		sort.Strings(k)
		return strings.Join(k, ",")
	}
	want := map[string]string{
		"document":   "diagnostics,format_version,has_changes,refused,resources,revision,summary",
		"summary":    "adopt,create,delete,errors,forget,poll,update,warnings",
		"resource":   "action,broker,changes,class,depends_on,error,external_id,instance_external_id,new_id,operation,plan,poll_deadline,predecessor_binding_id,previous_plan,reason,ref,secret,source,warnings,write_ahead",
		"ref":        "kind,name,namespace",
		"change":     "new,old,op,path,sensitive",
		"operation":  "operation,orphan_mitigation,plan_id,start_time,type",
		"diagnostic": "field,file,line,message,ref,severity",
	}
	res := doc["resources"].([]any)
	got := map[string]string{
		"document":   keys(doc),
		"summary":    keys(doc["summary"].(map[string]any)),
		"resource":   keys(res[0].(map[string]any)),
		"ref":        keys(res[0].(map[string]any)["ref"].(map[string]any)),
		"change":     keys(res[1].(map[string]any)["changes"].([]any)[0].(map[string]any)),
		"operation":  keys(res[2].(map[string]any)["operation"].(map[string]any)),
		"diagnostic": keys(doc["diagnostics"].([]any)[0].(map[string]any)),
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s keys = %s, want %s", k, got[k], w)
		}
	}
	if doc["format_version"] != "1" || doc["has_changes"] != true {
		t.Errorf("header: %v", doc)
	}
	r1 := res[1].(map[string]any)
	if r1["previous_plan"] != "small" || r1["plan"] != "large" || r1["broker"].(map[string]any)["name"] != "demo" {
		t.Errorf("update resource: %v", r1)
	}
	if res[0].(map[string]any)["broker"] != nil {
		t.Errorf("a broker's own step has broker %v", res[0].(map[string]any)["broker"])
	}
	// Lists are [] not null, even for an empty plan.
	b.Reset()
	if err := JSON(&b, &plan.Plan{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"resources": []`) || !strings.Contains(b.String(), `"diagnostics": []`) {
		t.Errorf("empty plan JSON:\n%s", b.String())
	}
}

// TestScrub: a secret-derived value that slipped into a message is
// replaced in both views.
func TestScrub(t *testing.T) {
	p := &plan.Plan{Steps: []plan.Step{{
		Ref: inst, Action: plan.Create, Reason: "oops: pa55word-xyz in a reason",
		Parameters:          map[string]any{"password": "pa55word-xyz", "nested": map[string]any{"k": []any{"deep-secret"}}, "pin": "12", "size": "visible"},
		SecretParameterKeys: []string{"password", "nested", "pin"},
		Warnings:            []string{"deep-secret"},
		Changes:             []plan.Change{{Path: "parameters.size", Op: plan.ChangeAdd, New: "visible"}},
	}}}
	for name, out := range views(t, p) {
		if strings.Contains(out, "pa55word") || strings.Contains(out, "deep-secret") {
			t.Errorf("%s leaks:\n%s", name, out)
		}
		if !strings.Contains(out, "oops: (sensitive) in a reason") || !strings.Contains(out, "visible") {
			t.Errorf("%s over- or under-scrubbed:\n%s", name, out)
		}
	}
}

// TestScrubPassSecrets: values the pass knows (a broker echo in a reason,
// a warning, an error, a diagnostic, the refusal, an operation key), in
// any encoding, are scrubbed from both views' free text; a parameter
// change that happens to equal one is shown as written.
func TestScrubPassSecrets(t *testing.T) {
	const echoed = `bind-cred "x"/y+z`
	set := redact.New()
	set.Add(echoed, "large")
	forms := redact.Forms(echoed)
	p := &plan.Plan{
		Refused: "refused: " + forms[1],
		Steps: []plan.Step{{
			Ref: inst, Action: plan.Poll, Reason: "retrying after: broker said " + forms[0],
			Warnings:  []string{"warn " + forms[len(forms)-1]},
			Error:     "broker: " + forms[2],
			Operation: &manifest.LastOperation{Type: manifest.OperationProvision, Operation: "op-" + forms[3]},
			Changes:   []plan.Change{{Path: "plan", Op: plan.ChangeModify, Old: "small", New: "large"}},
		}},
		Diagnostics: manifest.Diagnostics{{File: "apps/db.yaml", Line: 3, Severity: manifest.SeverityError, Message: "echo " + forms[4]}},
	}
	var txt, js bytes.Buffer
	if err := Text(&txt, p, TextOptions{Redact: set}); err != nil {
		t.Fatal(err)
	}
	if err := JSON(&js, p, JSONOptions{Redact: set}); err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if err := Text(&plain, p, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain.String(), echoed) {
		t.Fatalf("the test plan does not carry the value:\n%s", plain.String())
	}
	for name, out := range map[string]string{"text": txt.String(), "json": js.String()} {
		for _, f := range forms {
			if strings.Contains(out, f) {
				t.Errorf("%s shows form %q:\n%s", name, f, out)
			}
		}
		if strings.Count(out, redact.Placeholder) < 6 {
			t.Errorf("%s: fewer placeholders than scrubbed fields:\n%s", name, out)
		}
		if !strings.Contains(out, "large") {
			t.Errorf("%s scrubbed the plan change:\n%s", name, out)
		}
	}
}

// TestNewIDsHidden: an ID the plan generated (a fresh one every run) is
// never printed, so the views are the same on every run; a reserved ID
// (an earlier pass's record, spec.externalID) is shown as it is.
func TestNewIDsHidden(t *testing.T) {
	const fresh, freshBind, reserved = "8c1f0a52-9d1e-4f6a-b0f3-000000000001", "8c1f0a52-9d1e-4f6a-b0f3-000000000002", "reserved-instance-7"
	p := &plan.Plan{Steps: []plan.Step{
		{Ref: inst, Action: plan.Create, Reason: "new instance (would use " + fresh + ")", ExternalID: fresh, NewID: true, WriteAhead: true},
		{Ref: bind, Action: plan.Create, Reason: "new binding", ExternalID: freshBind, NewID: true, InstanceExternalID: fresh, WriteAhead: true},
		{Ref: manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "kept"}, Action: plan.Create,
			Reason: "repeating the create reserved by an earlier pass", ExternalID: reserved, WriteAhead: true},
	}}
	out := views(t, p)
	for name, out := range out {
		if strings.Contains(out, "8c1f0a52") {
			t.Errorf("%s shows a generated ID:\n%s", name, out)
		}
		if !strings.Contains(out, reserved) {
			t.Errorf("%s hides the reserved ID:\n%s", name, out)
		}
	}
	for _, want := range []string{
		"id: " + NewIDLabel + "\n",
		"id: " + NewIDLabel + "; instance id: the instance's new ID\n",
		"id: " + reserved + " (recorded before the call)\n",
		"new instance (would use " + NewIDPlaceholder + ")",
	} {
		if !strings.Contains(out["text"], want) || !strings.Contains(out["markdown"], strings.TrimSpace(want)) {
			t.Errorf("text or markdown lacks %q:\n%s\n%s", want, out["text"], out["markdown"])
		}
	}
	doc := NewDocument(p)
	if r := doc.Resources[1]; !r.NewID || r.ExternalID != "" || r.InstanceExternalID != "" {
		t.Errorf("JSON binding on a new instance: %+v", r)
	}
	if r := doc.Resources[2]; r.NewID || r.ExternalID != reserved {
		t.Errorf("JSON reserved create: %+v", r)
	}
}

// views renders p in every format, keyed by name.
func views(t *testing.T, p *plan.Plan) map[string]string {
	t.Helper()
	var txt, js, md bytes.Buffer
	if err := Text(&txt, p, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := JSON(&js, p); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, p, MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"text": txt.String(), "json": js.String(), "markdown": md.String()}
}
