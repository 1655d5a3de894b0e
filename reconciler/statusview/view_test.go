package statusview

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/goldentest"
	"github.com/osbgit/osbgit/reconciler"
)

var (
	t0      = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	now     = t0.Add(26 * time.Hour)
	broker  = manifest.Ref{Kind: manifest.KindClusterServiceBroker, Name: "demo"}
	db      = manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"}
	cache   = manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "cache"}
	queue   = manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "jobs", Name: "queue"}
	dbBind  = manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "db-binding"}
	qBind   = manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "jobs", Name: "queue-binding"}
	hostile = manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "evil", Name: "x"}
	added   = manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "planted"}
)

func at(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }

func cond(t manifest.ConditionType, s manifest.ConditionStatus, reason, msg string, d time.Duration) manifest.Condition {
	return manifest.Condition{Type: t, Status: s, Reason: reason, Message: msg, LastTransitionTime: at(d)}
}

// records is a repository's worth of records in every state status
// tells apart.
func records() *manifest.Records {
	props := func(plan string) manifest.Properties {
		return manifest.Properties{ClassExternalName: "postgres", ClassExternalID: "svc-pg", PlanExternalName: plan, PlanExternalID: "plan-" + plan,
			ParameterChecksum: "sha256:1f2e"}
	}
	rec := func(ref manifest.Ref) *manifest.StatusRecord {
		r := manifest.NewStatusRecord(ref)
		if ref.Kind != manifest.KindClusterServiceBroker {
			r.Broker = broker
		}
		return r
	}
	ready := rec(db)
	ready.Phase, ready.ExternalID, ready.Properties, ready.Provisioned = manifest.PhaseReady, "id-db", props("small"), true
	ready.DashboardURL = "https://dash.example/db"
	ready.LastOperation = &manifest.LastOperation{Type: manifest.OperationProvision, State: manifest.OperationSucceeded, StartTime: at(0), ServiceID: "svc-pg", PlanID: "plan-small"}
	ready.Conditions = []manifest.Condition{cond(manifest.ConditionReady, manifest.ConditionTrue, "ProvisionedSuccessfully", "The instance was provisioned successfully", time.Minute)}
	ready.ObservedRevision = "0123456789abcdef0123456789abcdef01234567"

	failed := rec(cache)
	failed.Phase, failed.ExternalID, failed.Properties, failed.Provisioned = manifest.PhaseFailed, "id-cache", props("small"), true
	failed.LastOperation = &manifest.LastOperation{Type: manifest.OperationUpdate, State: manifest.OperationFailed, StartTime: at(2 * time.Hour), PlanID: "plan-small"}
	failed.Conditions = []manifest.Condition{
		cond(manifest.ConditionFailed, manifest.ConditionTrue, "UpdateFailed", "update refused by the broker: 400 Bad Request: plan large is not available", 2*time.Hour),
		cond(manifest.ConditionReady, manifest.ConditionTrue, "ProvisionedSuccessfully", "The instance was provisioned successfully", time.Minute),
	}

	polling := rec(queue)
	polling.Phase, polling.ExternalID, polling.AsyncOpInProgress = manifest.PhaseProvisioning, "id-queue", true
	polling.InProgress = &manifest.Properties{ClassExternalName: "rabbit", PlanExternalName: "tiny"}
	polling.Provisioned = true
	polling.LastOperation = &manifest.LastOperation{Type: manifest.OperationProvision, State: manifest.OperationInProgress, Operation: "op-7", StartTime: at(25 * time.Hour), PlanID: "plan-tiny"}
	polling.Conditions = []manifest.Condition{cond(manifest.ConditionReady, manifest.ConditionFalse, "Provisioning", "The broker is provisioning the instance", 25*time.Hour)}

	bound := rec(dbBind)
	bound.Phase, bound.ExternalID, bound.InstanceName, bound.InstanceExternalID = manifest.PhaseReady, "id-bind", "db", "id-db"
	bound.Properties = props("small")
	bound.Provisioned = true
	bound.SecretRef = &manifest.SecretRef{Namespace: "apps", Name: "db-credentials", Keys: []string{"DATABASE_URL", "password", "username"}}
	bound.LastOperation = &manifest.LastOperation{Type: manifest.OperationBind, State: manifest.OperationSucceeded, StartTime: at(3 * time.Minute)}
	bound.Conditions = []manifest.Condition{cond(manifest.ConditionReady, manifest.ConditionTrue, "InjectedBindResult", "Injected bind result", 3*time.Minute)}

	retrying := rec(qBind)
	retrying.Phase, retrying.ExternalID, retrying.InstanceName = manifest.PhasePending, "id-qbind", "queue"
	retrying.Retry = &manifest.Retry{Since: at(25 * time.Hour), At: at(25*time.Hour + 10*time.Minute)}
	retrying.Conditions = []manifest.Condition{cond(manifest.ConditionReady, manifest.ConditionFalse, "BindCallFailed", "the broker answered 503", 25*time.Hour)}

	evil := rec(hostile)
	evil.Phase = manifest.PhaseReady
	evil.Properties = manifest.Properties{ClassExternalName: "pg\x1b]0;owned\x07", PlanExternalName: "small\u202egnp.exe"}
	evil.Conditions = []manifest.Condition{cond(manifest.ConditionReady, manifest.ConditionTrue, "Ok\x1b[2J", "line one\nline two \x1b[31mred\x1b[0m \u009b1m", time.Hour)}

	brokerRec := rec(broker)
	brokerRec.Error = &manifest.RecordError{Message: "broker auth Secret other/creds is outside --broker-auth-namespaces"}

	return &manifest.Records{Status: map[manifest.Ref]*manifest.StatusRecord{
		db: ready, cache: failed, queue: polling, dbBind: bound, qBind: retrying, hostile: evil, broker: brokerRec,
	}}
}

const (
	recordsHead = "feedfacefeedfacefeedfacefeedfacefeedface"
	statusHead  = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff"
)

// scenarios are the golden cases: records verified with edits on the
// status branch, read without a key, and a records ref that does not
// verify.
func scenarios() map[string]*reconciler.RecordsReport {
	mallory := gitrepo.Person{Name: "Mallory", Email: "mallory@example.com"}
	return map[string]*reconciler.RecordsReport{
		"verified": {StatusBranch: "main", RecordsRef: "refs/osbgit/records/main", Revision: recordsHead, Trust: reconciler.RecordsVerified, Records: records(),
			Diverged: []reconciler.DivergedRecord{
				{Path: ".osbgit/status/apps/servicebinding/db-binding.yaml", Change: "edited", Commit: "badc0debadc0debadc0debadc0debadc0debadc0", Author: mallory},
				{Path: ".osbgit/status/apps/servicebinding/planted.yaml", Change: "added", Commit: "badc0debadc0debadc0debadc0debadc0debadc0", Author: mallory},
				{Path: ".osbgit/catalog/demo.yaml", Change: "deleted"},
			},
			Err: errors.New("records at c0ffeec0ffee: .osbgit/status/apps/serviceinstance/broken.yaml:3: formatVersion: 99 is newer than this osbgit knows (1)")},
		"unverified": {StatusBranch: "status", RecordsRef: "refs/osbgit/records/status", Revision: statusHead, Trust: reconciler.RecordsUnverified,
			Reason: "no access to osbgit's records key", Records: records()},
		"tampered": {StatusBranch: "main", RecordsRef: "refs/osbgit/records/main", Revision: statusHead, Trust: reconciler.RecordsTampered,
			Reason:  "osbgit's records ref refs/osbgit/records/main was moved back to records commit 3 of 5 (c0ffeec0ffee): someone pushed an older records commit; review .osbgit/ and run `osbgit trust`",
			Records: records()},
	}
}

// golden compares got with testdata/name (-update rewrites it).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldentest.Compare(t, filepath.Join("testdata", name), got)
}

// render runs one renderer into a buffer.
func render(t *testing.T, f func(*bytes.Buffer) error) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	for name, rep := range scenarios() {
		t.Run(name, func(t *testing.T) {
			v := Build(rep, Filter{})
			golden(t, name+"/status.txt", render(t, func(b *bytes.Buffer) error { return Table(b, v, TextOptions{Now: now}) }))
			golden(t, name+"/status.json", render(t, func(b *bytes.Buffer) error { return JSON(b, v) }))
			golden(t, name+"/status.yaml", render(t, func(b *bytes.Buffer) error { return YAML(b, v) }))
			for _, ref := range []manifest.Ref{cache, dbBind, hostile} {
				d, ok := Describe(rep, ref)
				if !ok {
					t.Fatalf("Describe(%s) found nothing", ref)
				}
				base := name + "/describe-" + ref.Namespace + "-" + ref.Name
				golden(t, base+".txt", render(t, func(b *bytes.Buffer) error { return Text(b, d, TextOptions{Now: now}) }))
				golden(t, base+".json", render(t, func(b *bytes.Buffer) error { return JSON(b, d) }))
				golden(t, base+".yaml", render(t, func(b *bytes.Buffer) error { return YAML(b, d) }))
			}
		})
	}
}

// TestNoEscapesReachTheTerminal: the people's views of a record holding
// terminal escapes, bidirectional overrides and line breaks show them
// escaped, and the JSON view keeps them intact but encoded.
func TestNoEscapesReachTheTerminal(t *testing.T) {
	rep := scenarios()["unverified"]
	d, _ := Describe(rep, hostile)
	for name, out := range map[string][]byte{
		"table":    render(t, func(b *bytes.Buffer) error { return Table(b, Build(rep, Filter{}), TextOptions{Now: now}) }),
		"describe": render(t, func(b *bytes.Buffer) error { return Text(b, d, TextOptions{Now: now}) }),
		"json":     render(t, func(b *bytes.Buffer) error { return JSON(b, d) }),
		"yaml":     render(t, func(b *bytes.Buffer) error { return YAML(b, d) }),
	} {
		s := string(out)
		for _, bad := range []string{"\x1b", "\x07", "\u202e", "\u009b", "line one\nline two"} {
			if bad == "\u202e" && (name == "json" || name == "yaml") {
				// Programs' views keep bidirectional controls (doc.go).
				continue
			}
			if strings.Contains(s, bad) {
				t.Errorf("%s view holds %q raw:\n%s", name, bad, s)
			}
		}
	}
	var back Detail
	if err := json.Unmarshal(render(t, func(b *bytes.Buffer) error { return JSON(b, d) }), &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Record.Conditions[0].Message; got != "line one\nline two \x1b[31mred\x1b[0m \u009b1m" {
		t.Errorf("JSON round trip changed the message: %q", got)
	}
}

func TestSafe(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text, ünïcode ✓", "plain text, ünïcode ✓"},
		{"\x1b[31mred", `\x1b[31mred`},
		{"a\tb\nc\rd", `a\x09b\x0ac\x0dd`},
		{"del\x7f", `del\x7f`},
		{"csi\u009b1m", `csi\u009b1m`},
		{"abc\u202edef\u2066", `abc\u202edef\u2066`},
		{"bad\xffutf8", `bad\xffutf8`},
	} {
		if got := Safe(c.in); got != c.want {
			t.Errorf("Safe(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFilterAndExit(t *testing.T) {
	rep := scenarios()["unverified"]
	names := func(v *View) []string {
		var out []string
		for _, r := range v.Resources {
			out = append(out, r.Ref.String())
		}
		return out
	}
	for _, c := range []struct {
		name      string
		f         Filter
		want      []string
		unhealthy bool
	}{
		{"all", Filter{}, []string{"ClusterServiceBroker demo", "ServiceInstance apps/cache", "ServiceInstance apps/db", "ServiceInstance evil/x",
			"ServiceInstance jobs/queue", "ServiceBinding apps/db-binding", "ServiceBinding jobs/queue-binding"}, true},
		{"namespace", Filter{Namespace: "jobs"}, []string{"ServiceInstance jobs/queue", "ServiceBinding jobs/queue-binding"}, false},
		{"kind", Filter{Kind: manifest.KindServiceBinding}, []string{"ServiceBinding apps/db-binding", "ServiceBinding jobs/queue-binding"}, false},
		{"failed", Filter{Failed: true}, []string{"ClusterServiceBroker demo", "ServiceInstance apps/cache"}, true},
		{"failed in a healthy namespace", Filter{Failed: true, Namespace: "jobs"}, nil, false},
	} {
		v := Build(rep, c.f)
		if got := names(v); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: rows %q, want %q", c.name, got, c.want)
		}
		if v.Unhealthy() != c.unhealthy {
			t.Errorf("%s: unhealthy %v, want %v", c.name, v.Unhealthy(), c.unhealthy)
		}
	}
	// Tampered as a whole: unhealthy whatever the rows.
	if v := Build(scenarios()["tampered"], Filter{Namespace: "jobs"}); !v.Unhealthy() {
		t.Error("records tampered as a whole: healthy")
	}
	// An edit on the status branch makes that row tampered, and the
	// file added there a row of its own.
	v := Build(scenarios()["verified"], Filter{Kind: manifest.KindServiceBinding, Namespace: "apps"})
	if len(v.Resources) != 2 || v.Resources[0].Ref != dbBind || v.Resources[0].Records != reconciler.RecordsTampered ||
		v.Resources[1].Ref != added || v.Resources[1].Records != reconciler.RecordsTampered || !v.Unhealthy() {
		t.Errorf("status-branch edits: %+v", v.Resources)
	}
	if d, ok := Describe(scenarios()["verified"], added); !ok || d.Record != nil || !d.Unhealthy() {
		t.Errorf("describe a record added on the status branch: %+v, %v", d, ok)
	}
	if _, ok := Describe(rep, added); ok {
		t.Error("describe found a resource that has no record")
	}
}

func TestParseKind(t *testing.T) {
	if k, err := ParseKind("serviceinstance"); err != nil || k != manifest.KindServiceInstance {
		t.Errorf("ParseKind(serviceinstance) = %q, %v", k, err)
	}
	if _, err := ParseKind("Config"); err == nil || !strings.Contains(err.Error(), "ServiceBinding") {
		t.Errorf("ParseKind(Config): %v", err)
	}
}
