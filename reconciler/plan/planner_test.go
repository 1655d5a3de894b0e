package plan_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
	"github.com/osbgit/osbgit/reconciler/plan"
)

const brokerYAML = `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata:
  name: demo
spec:
  url: https://broker.example.com
`

var (
	demo      = manifest.Ref{Kind: manifest.KindClusterServiceBroker, Name: "demo"}
	dbRef     = manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"}
	bindRef   = manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "db-binding"}
	cacheRef  = manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "cache"}
	t0        = time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)
	emptySum  = mustSum(nil)
	dbParams  = map[string]any{"size": json.Number("10"), "version": "16"}
	dbSum     = mustSum(dbParams)
	otherSum  = "0d0f0e5c8a9b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
	smallProp = manifest.Properties{ClassExternalName: "postgres", ClassExternalID: "svc-postgres", PlanExternalName: "small", PlanExternalID: "plan-pg-small", ParameterChecksum: dbSum}
)

func mustSum(p map[string]any) string {
	s, err := manifest.ParameterChecksum(p)
	if err != nil {
		panic(err)
	}
	return s
}

// instYAML is a postgres instance apps/<name> with the db parameters.
func instYAML(name, class, planName, extra string) string {
	return `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata:
  name: ` + name + `
  namespace: apps
spec:
  clusterServiceClassExternalName: ` + class + `
  clusterServicePlanExternalName: ` + planName + `
` + extra
}

const dbParamsYAML = "  parameters:\n    size: 10\n    version: \"16\"\n"

var dbYAML = instYAML("db", "postgres", "small", dbParamsYAML)

func bindYAML(name, inst, extra string) string {
	return `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata:
  name: ` + name + `
  namespace: apps
spec:
  instanceRef:
    name: ` + inst + `
  secretName: ` + name + `-secret
` + extra
}

var dbBindYAML = bindYAML("db-binding", "db", "")

// loadSet assembles manifests from YAML documents (no catalog validation:
// these tests exercise the planner's own checks).
func loadSet(t *testing.T, docs ...string) (*manifest.Set, manifest.Diagnostics) {
	t.Helper()
	var objs []manifest.Object
	var diags manifest.Diagnostics
	for i, d := range docs {
		o, ds := manifest.DecodeFile("m"+string(rune('a'+i))+".yaml", []byte(d))
		objs = append(objs, o...)
		diags = append(diags, ds...)
	}
	set, ds := manifest.Assemble(objs, nil)
	diags = append(diags, ds...)
	diags.Sort()
	return set, diags
}

func catalogs(t *testing.T) manifest.Catalogs {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "catalogs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c manifest.Catalogs
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// rec builds a record for ref at demo.
func rec(ref manifest.Ref, phase manifest.Phase, props manifest.Properties, mods ...func(*manifest.StatusRecord)) *manifest.StatusRecord {
	r := manifest.NewStatusRecord(ref)
	r.Phase = phase
	r.ExternalID = "ext-" + ref.Name
	r.Broker = demo
	r.Properties = props
	r.Provisioned = true
	for _, m := range mods {
		m(r)
	}
	return r
}

func ready(ref manifest.Ref, props manifest.Properties, mods ...func(*manifest.StatusRecord)) *manifest.StatusRecord {
	return rec(ref, manifest.PhaseReady, props, mods...)
}

func bindRec(props manifest.Properties, mods ...func(*manifest.StatusRecord)) *manifest.StatusRecord {
	return ready(bindRef, props, append([]func(*manifest.StatusRecord){func(r *manifest.StatusRecord) {
		r.InstanceName = "db"
		r.InstanceExternalID = "ext-db"
		r.ParameterChecksum = emptySum
	}}, mods...)...)
}

func withProps(p manifest.Properties, f func(*manifest.Properties)) manifest.Properties {
	f(&p)
	return p
}

// pc is one planner table case.
type pc struct {
	name    string
	docs    []string
	records []*manifest.StatusRecord
	obs     map[manifest.Ref]plan.Observation
	secrets map[string]string
	opts    func(*plan.Options)
	in      func(*plan.Input)
	check   func(t *testing.T, p *plan.Plan)
}

func (c pc) input(t *testing.T) plan.Input {
	set, diags := loadSet(t, c.docs...)
	recs := map[manifest.Ref]*manifest.StatusRecord{}
	for _, r := range c.records {
		recs[r.Ref] = r
	}
	in := plan.Input{
		Set: set, Diagnostics: diags, Records: recs, Catalogs: catalogs(t), Observations: c.obs,
		Secrets: readSecrets(set, mapSecrets(c.secrets)), NewID: seqIDs(),
		Options: plan.Options{MaxDeletions: 10, ClusterID: "test-cluster", Revision: "rev1",
			Now: t0.Add(time.Hour), DefaultMaxPollingDuration: 24 * time.Hour},
	}
	if c.opts != nil {
		c.opts(&in.Options)
	}
	if c.in != nil {
		c.in(&in)
	}
	return in
}

func stepOf(t *testing.T, p *plan.Plan, ref manifest.Ref) *plan.Step {
	t.Helper()
	for i := range p.Steps {
		if p.Steps[i].Ref == ref {
			return &p.Steps[i]
		}
	}
	t.Fatalf("no step for %s", ref)
	return nil
}

func indexOf(p *plan.Plan, ref manifest.Ref) int {
	for i := range p.Steps {
		if p.Steps[i].Ref == ref {
			return i
		}
	}
	return -1
}

func want[T comparable](t *testing.T, what string, got, wantV T) {
	t.Helper()
	if got != wantV {
		t.Errorf("%s = %v, want %v", what, got, wantV)
	}
}

func wantContains(t *testing.T, what, got, sub string) {
	t.Helper()
	if !strings.Contains(got, sub) {
		t.Errorf("%s = %q, want it to contain %q", what, got, sub)
	}
}

func anyContains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func asyncOp(typ manifest.OperationType, planID string, start time.Time) func(*manifest.StatusRecord) {
	return func(r *manifest.StatusRecord) {
		r.AsyncOpInProgress = true
		r.LastOperation = &manifest.LastOperation{Type: typ, State: manifest.OperationInProgress, Operation: "op-1",
			StartTime: metav1.NewTime(start), ServiceID: "svc-postgres", PlanID: planID}
	}
}

func TestBuildInstances(t *testing.T) {
	large := withProps(smallProp, func(p *manifest.Properties) { p.PlanExternalName, p.PlanExternalID = "large", "plan-pg-large" })
	cases := []pc{
		{
			name: "new instance: create with every field the executor needs",
			docs: []string{brokerYAML, dbYAML},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Create)
				want(t, "externalID", s.ExternalID, "00000000-0000-4000-8000-000000000001")
				want(t, "writeAhead", s.WriteAhead, true)
				want(t, "desired", *s.Desired, smallProp)
				want(t, "target", s.Target, plan.Target{Broker: demo, ServiceID: "svc-postgres", PlanID: "plan-pg-small", ClassExternalName: "postgres", PlanExternalName: "small", BrokerURL: "https://broker.example.com"})
				want(t, "sendParameters", s.SendParameters, true)
				want(t, "parameters.size", s.Parameters["size"], any(json.Number("10")))
				want(t, "context", s.Context.Platform+"|"+s.Context.Namespace+"|"+s.Context.ClusterID+"|"+s.Context.InstanceName, "kubernetes|apps|test-cluster|db")
				want(t, "maintenance", s.MaintenanceInfo.Version, "1.2.0")
				want(t, "maxPolling", s.MaxPollingDuration, time.Hour)
				if s.SpecHash == "" {
					t.Error("no SpecHash")
				}
				want(t, "reason", s.Reason, "new instance")
			},
		},
		{
			name: "spec.externalID is used; no parameters are not sent",
			docs: []string{brokerYAML, instYAML("db", "postgres", "large", "  externalID: my-db\n")},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "externalID", s.ExternalID, "my-db")
				want(t, "sendParameters", s.SendParameters, false)
				want(t, "parameters nil", s.Parameters == nil, true)
				want(t, "maxPolling (default)", s.MaxPollingDuration, 24*time.Hour)
			},
		},
		{
			name:    "pending: same ExternalID, no new write-ahead",
			docs:    []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhasePending, manifest.Properties{}, func(r *manifest.StatusRecord) { c := smallProp; r.InProgress = &c })},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Create)
				want(t, "externalID", s.ExternalID, "ext-db")
				want(t, "writeAhead", s.WriteAhead, false)
			},
		},
		{
			name: "pending with a changed manifest: same ID, new write-ahead, warning",
			docs: []string{brokerYAML, instYAML("db", "postgres", "large", dbParamsYAML)},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhasePending, manifest.Properties{}, func(r *manifest.StatusRecord) {
				c := smallProp
				r.InProgress = &c
			})},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "externalID", s.ExternalID, "ext-db")
				want(t, "writeAhead", s.WriteAhead, true)
				want(t, "warned", anyContains(s.Warnings, "409"), true)
			},
		},
		{
			name:    "plan change: update with the pre-update plan as Previous",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "large", dbParamsYAML)},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "sendPlan", s.SendPlan, true)
				want(t, "sendParameters", s.SendParameters, false)
				want(t, "previous", s.Previous.PlanID, "plan-pg-small")
				want(t, "target", s.Target.PlanID, "plan-pg-large")
				want(t, "writeAhead", s.WriteAhead, false)
				want(t, "change", s.Changes[0], plan.Change{Path: "plan", Op: plan.ChangeModify, Old: "small", New: "large"})
				want(t, "context", s.Context.InstanceName, "db")
			},
		},
		{
			name: "plan not updateable: error on the resource only",
			docs: []string{brokerYAML, instYAML("cache", "redis", "premium", ""), dbYAML},
			records: []*manifest.StatusRecord{ready(cacheRef, manifest.Properties{ClassExternalName: "redis", ClassExternalID: "svc-redis",
				PlanExternalName: "standard", PlanExternalID: "plan-redis-standard", ParameterChecksum: emptySum})},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, cacheRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "error", s.Error, `plan "standard" is not updateable to "premium"`)
				want(t, "other proceeds", stepOf(t, p, dbRef).Action, plan.Create)
			},
		},
		{
			name:    "parameter change: only parameters sent, values listed as set",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "small", "  parameters:\n    size: 20\n    version: \"16\"\n")},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "sendPlan", s.SendPlan, false)
				want(t, "sendParameters", s.SendParameters, true)
				want(t, "size", s.Parameters["size"], any(json.Number("20")))
				want(t, "changes", len(s.Changes), 2)
				want(t, "change", s.Changes[0], plan.Change{Path: "parameters.size", Op: plan.ChangeSet, New: "20"})
				want(t, "desired checksum", s.Desired.ParameterChecksum, mustSum(map[string]any{"size": json.Number("20"), "version": "16"}))
			},
		},
		{
			name: "parametersFrom content change: update, secret values sensitive",
			docs: []string{brokerYAML, instYAML("db", "postgres", "small", "  parametersFrom:\n  - secretKeyRef:\n      name: s\n      key: k\n")},
			records: []*manifest.StatusRecord{ready(dbRef, withProps(smallProp, func(p *manifest.Properties) {
				p.ParameterChecksum = mustSum(map[string]any{"password": "old"})
			}))},
			secrets: map[string]string{"apps/s/k": `{"password":"new-secret-value"}`},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "sendParameters", s.SendParameters, true)
				want(t, "secret keys", strings.Join(s.SecretParameterKeys, ","), "password")
				want(t, "change", s.Changes[0], plan.Change{Path: "parameters.password", Op: plan.ChangeSet, New: plan.SensitiveValue, Sensitive: true})
			},
		},
		{
			name:    "missing parametersFrom secret: error, no value",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "small", "  parametersFrom:\n  - secretKeyRef:\n      name: s\n      key: k\n")},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "error", s.Error, "Secret apps/s")
			},
		},
		{
			name:    "updateRequests bump: update sending neither plan nor parameters",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "small", dbParamsYAML+"  updateRequests: 3\n")},
			records: []*manifest.StatusRecord{ready(dbRef, withProps(smallProp, func(p *manifest.Properties) { p.UpdateRequests = 2 }))},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "sendPlan", s.SendPlan, false)
				want(t, "sendParameters", s.SendParameters, false)
				want(t, "desired.updateRequests", s.Desired.UpdateRequests, int64(3))
				want(t, "change", s.Changes[0], plan.Change{Path: "updateRequests", Op: plan.ChangeModify, Old: "2", New: "3"})
			},
		},
		{
			name: "async update in flight: poll with the pre-update plan_id; the new change waits",
			docs: []string{brokerYAML, instYAML("db", "postgres", "large", "  parameters:\n    size: 99\n")},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseUpdating, smallProp, asyncOp(manifest.OperationUpdate, "plan-pg-small", t0), func(r *manifest.StatusRecord) {
				c := large
				r.InProgress = &c
			})},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Poll)
				want(t, "operation plan", s.Operation.PlanID, "plan-pg-small")
				want(t, "target plan", s.Target.PlanID, "plan-pg-small")
				want(t, "desired", *s.Desired, large)
				want(t, "deadline (default: large has no maximum)", s.PollDeadline, t0.Add(24*time.Hour))
				want(t, "queued change warned", anyContains(s.Warnings, "planned once the operation in flight ends"), true)
			},
		},
		{
			name:    "async provision: deadline from the plan's maximum_polling_duration",
			docs:    []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseProvisioning, manifest.Properties{}, asyncOp(manifest.OperationProvision, "plan-pg-small", t0), func(r *manifest.StatusRecord) { c := smallProp; r.InProgress = &c })},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Poll)
				want(t, "deadline", s.PollDeadline, t0.Add(time.Hour))
				want(t, "no warning", len(s.Warnings), 0)
			},
		},
		{
			name:    "no polling limit at all: zero deadline",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "large", "")},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseProvisioning, manifest.Properties{}, asyncOp(manifest.OperationProvision, "plan-pg-large", t0))},
			opts:    func(o *plan.Options) { o.DefaultMaxPollingDuration = 0 },
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "deadline", stepOf(t, p, dbRef).PollDeadline.IsZero(), true)
			},
		},
		{
			name: "invalid manifest still polls its operation in flight",
			docs: []string{brokerYAML, dbYAML},
			in: func(in *plan.Input) {
				in.Diagnostics = append(in.Diagnostics, manifest.Diagnostic{File: "x.yaml", Line: 3, Severity: manifest.SeverityError, Message: "broken", Ref: dbRef})
			},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseProvisioning, manifest.Properties{}, asyncOp(manifest.OperationProvision, "plan-pg-small", t0))},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Poll)
				want(t, "error", s.Error, "")
				want(t, "warned", anyContains(s.Warnings, "x.yaml:3: broken"), true)
			},
		},
		{
			name: "orphan mitigation: DELETE with the in-progress ids",
			docs: []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseOrphanMitigation, manifest.Properties{}, func(r *manifest.StatusRecord) {
				c := smallProp
				r.InProgress = &c
			})},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.OrphanMitigate)
				want(t, "service", s.Target.ServiceID, "svc-postgres")
				want(t, "plan", s.Target.PlanID, "plan-pg-small")
				want(t, "counted as delete", p.Counts().Delete, 1)
			},
		},
		{
			name: "failed provision, unchanged: left alone",
			docs: []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseFailed, manifest.Properties{}, func(r *manifest.StatusRecord) {
				c := smallProp
				r.InProgress = &c
				r.Provisioned = false
			})},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				want(t, "has changes", p.HasChanges(), false)
			},
		},
		{
			name: "failed provision, parametersFrom content changed (same SpecHash): retried with the same ID",
			docs: []string{brokerYAML, instYAML("db", "postgres", "small", "  parametersFrom:\n  - secretKeyRef:\n      name: s\n      key: k\n")},
			in: func(in *plan.Input) {
				h, _ := manifest.SpecHash(in.Set.Instances[0])
				r := in.Records[dbRef]
				r.SpecHash = h
			},
			secrets: map[string]string{"apps/s/k": `{"size": 3}`},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseFailed, manifest.Properties{}, func(r *manifest.StatusRecord) {
				c := withProps(smallProp, func(p *manifest.Properties) { p.ParameterChecksum = otherSum })
				r.InProgress = &c
				r.Provisioned = false
			})},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Create)
				want(t, "externalID", s.ExternalID, "ext-db")
				want(t, "writeAhead", s.WriteAhead, true)
			},
		},
		{
			name:    "failed update, unchanged: no retry, never orphan mitigation",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "large", dbParamsYAML)},
			in:      func(in *plan.Input) { in.Records[dbRef].SpecHash, _ = manifest.SpecHash(in.Set.Instances[0]) },
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseFailed, smallProp, func(r *manifest.StatusRecord) { c := large; r.InProgress = &c })},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "reason", s.Reason, "failed; retried when the manifest changes")
			},
		},
		{
			name:    "class change: error",
			docs:    []string{brokerYAML, instYAML("db", "redis", "standard", "")},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			check: func(t *testing.T, p *plan.Plan) {
				wantContains(t, "error", stepOf(t, p, dbRef).Error, "class of an existing instance cannot change")
			},
		},
		{
			name:    "in sync",
			docs:    []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				want(t, "reason", s.Reason, "in sync")
				want(t, "has changes", p.HasChanges(), false)
			},
		},
		{
			name:    "deletion-policy annotation added: adopt records it",
			docs:    []string{brokerYAML, strings.Replace(dbYAML, "  namespace: apps\n", "  namespace: apps\n  annotations:\n    osbgit.dev/deletion-policy: Retain\n", 1)},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Adopt)
				want(t, "policy", s.DeletionPolicy, manifest.DeletionPolicyRetain)
			},
		},
		{
			name:    "drift: broker reports another plan",
			docs:    []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			obs:     map[manifest.Ref]plan.Observation{dbRef: {Instance: &osbwire.GetInstanceResponse{ServiceID: "svc-postgres", PlanID: "plan-pg-large"}}},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "sendPlan", s.SendPlan, true)
				want(t, "previous", s.Previous.PlanID, "plan-pg-large")
				wantContains(t, "reason", s.Reason, `drift: broker reports plan "large"`)
			},
		},
		{
			name:    "drift: broker already holds what the manifest asks (stale record): adopt",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "large", dbParamsYAML)},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			obs:     map[manifest.Ref]plan.Observation{dbRef: {Instance: &osbwire.GetInstanceResponse{PlanID: "plan-pg-large"}}},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Adopt)
				want(t, "desired", s.Desired.PlanExternalID, "plan-pg-large")
			},
		},
		{
			name:    "drift check ignores parameters the broker adds (defaults)",
			docs:    []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			obs: map[manifest.Ref]plan.Observation{dbRef: {Instance: &osbwire.GetInstanceResponse{PlanID: "plan-pg-small",
				Parameters: map[string]any{"size": 10.0, "version": "16", "tier": "default"}}}},
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "action", stepOf(t, p, dbRef).Action, plan.None)
			},
		},
		{
			name:    "broker lost the instance: provision again with the same ID",
			docs:    []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			obs:     map[manifest.Ref]plan.Observation{dbRef: {NotFound: true}},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Create)
				want(t, "externalID", s.ExternalID, "ext-db")
				want(t, "writeAhead", s.WriteAhead, true)
			},
		},
		{
			name: "adopt: externalID set, broker holds it with the desired plan",
			docs: []string{brokerYAML, instYAML("db", "postgres", "small", "  externalID: ext-1\n")},
			obs:  map[manifest.Ref]plan.Observation{dbRef: {Instance: &osbwire.GetInstanceResponse{ServiceID: "svc-postgres", PlanID: "plan-pg-small"}}},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Adopt)
				want(t, "externalID", s.ExternalID, "ext-1")
				want(t, "desired plan", s.Desired.PlanExternalID, "plan-pg-small")
			},
		},
		{
			name: "adopt refused: broker holds it with another plan",
			docs: []string{brokerYAML, instYAML("db", "postgres", "small", "  externalID: ext-1\n")},
			obs:  map[manifest.Ref]plan.Observation{dbRef: {Instance: &osbwire.GetInstanceResponse{PlanID: "plan-pg-large"}}},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "error", s.Error, "already exists")
			},
		},
		{
			name: "externalID set, GET 404: plain create",
			docs: []string{brokerYAML, instYAML("db", "postgres", "small", "  externalID: ext-1\n")},
			obs:  map[manifest.Ref]plan.Observation{dbRef: {NotFound: true}},
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "action", stepOf(t, p, dbRef).Action, plan.Create)
			},
		},
		{
			name:    "plan gone from the catalog, manifest unchanged: left alone with a warning",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "tiny", dbParamsYAML)},
			records: []*manifest.StatusRecord{ready(dbRef, withProps(smallProp, func(p *manifest.Properties) { p.PlanExternalName, p.PlanExternalID = "tiny", "plan-pg-tiny" }))},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				want(t, "error", s.Error, "")
				want(t, "warned", anyContains(s.Warnings, "no longer in the catalog"), true)
			},
		},
		{
			name:    "plan gone from the catalog, parameters changed: error",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "tiny", "  parameters:\n    size: 1\n")},
			records: []*manifest.StatusRecord{ready(dbRef, withProps(smallProp, func(p *manifest.Properties) { p.PlanExternalName, p.PlanExternalID = "tiny", "plan-pg-tiny" }))},
			check: func(t *testing.T, p *plan.Plan) {
				wantContains(t, "error", stepOf(t, p, dbRef).Error, `plan "tiny"`)
			},
		},
		{
			name:    "plan gone, manifest moves to a plan the catalog has: update (service-level plan_updateable)",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "large", dbParamsYAML)},
			records: []*manifest.StatusRecord{ready(dbRef, withProps(smallProp, func(p *manifest.Properties) { p.PlanExternalName, p.PlanExternalID = "tiny", "plan-pg-tiny" }))},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "previous", s.Previous.PlanID, "plan-pg-tiny")
			},
		},
		{
			name: "no catalog yet: new instance waits with a warning",
			docs: []string{brokerYAML, dbYAML},
			in:   func(in *plan.Input) { in.Catalogs = nil },
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				want(t, "error", s.Error, "")
				wantContains(t, "reason", s.Reason, "waiting for the catalog")
				want(t, "broker warned", anyContains(stepOf(t, p, demo).Warnings, "no catalog yet"), true)
			},
		},
		{
			name: "broker with errors: its instances wait",
			docs: []string{brokerYAML, dbYAML},
			in: func(in *plan.Input) {
				in.Diagnostics = append(in.Diagnostics, manifest.Diagnostic{Severity: manifest.SeverityError, Message: "bad url", Ref: demo})
			},
			check: func(t *testing.T, p *plan.Plan) {
				wantContains(t, "broker error", stepOf(t, p, demo).Error, "bad url")
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "reason", s.Reason, "has errors")
			},
		},
	}
	runCases(t, cases)
}

func runCases(t *testing.T, cases []pc) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := plan.Build(c.input(t))
			c.check(t, p)
			if again := plan.Build(c.input(t)); !samePlan(p, again) {
				t.Error("not deterministic")
			}
		})
	}
}

func TestBuildBindings(t *testing.T) {
	bprops := withProps(smallProp, func(p *manifest.Properties) { p.ParameterChecksum = emptySum })
	cases := []pc{
		{
			name:    "new binding of a ready instance",
			docs:    []string{brokerYAML, dbYAML, bindYAML("db-binding", "db", "  secretTransforms:\n  - removeKey:\n      key: uri\n")},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Create)
				want(t, "externalID", s.ExternalID, "00000000-0000-4000-8000-000000000001")
				want(t, "instanceExternalID", s.InstanceExternalID, "ext-db")
				want(t, "instanceName", s.InstanceName, "db")
				want(t, "secret", s.SecretNamespace+"/"+s.SecretName, "apps/db-binding-secret")
				want(t, "transforms", len(s.SecretTransforms), 1)
				want(t, "writeAhead", s.WriteAhead, true)
				want(t, "dependsOn", len(s.DependsOn), 0)
				want(t, "target", s.Target.PlanID, "plan-pg-small")
				want(t, "desired", *s.Desired, bprops)
				want(t, "context", s.Context.InstanceName, "db")
				want(t, "no maintenance on bind", s.MaintenanceInfo == nil, true)
			},
		},
		{
			name: "new binding of a new instance depends on it and comes after it",
			docs: []string{brokerYAML, dbBindYAML, dbYAML},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Create)
				want(t, "depends", len(s.DependsOn) == 1 && s.DependsOn[0] == dbRef, true)
				want(t, "instanceExternalID", s.InstanceExternalID, stepOf(t, p, dbRef).ExternalID)
				want(t, "order", indexOf(p, dbRef) < indexOf(p, bindRef), true)
			},
		},
		{
			name:    "binding waits for an instance being provisioned",
			docs:    []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseProvisioning, manifest.Properties{}, asyncOp(manifest.OperationProvision, "plan-pg-small", t0))},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "reason", s.Reason, "waiting for instance apps/db to be ready")
			},
		},
		{
			name:    "binding waits for a blocked instance",
			docs:    []string{brokerYAML, instYAML("db", "postgres", "nope", ""), dbBindYAML},
			records: []*manifest.StatusRecord{},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.None)
				want(t, "error", s.Error, "")
				wantContains(t, "reason", s.Reason, "waiting for instance apps/db")
			},
		},
		{
			name: "binding of a non-bindable plan: error",
			docs: []string{brokerYAML, instYAML("db", "queue", "basic", ""), dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, manifest.Properties{ClassExternalName: "queue", ClassExternalID: "svc-queue",
				PlanExternalName: "basic", PlanExternalID: "plan-queue-basic", ParameterChecksum: emptySum})},
			check: func(t *testing.T, p *plan.Plan) {
				wantContains(t, "error", stepOf(t, p, bindRef).Error, "not bindable")
			},
		},
		{
			name:    "binding in sync",
			docs:    []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops)},
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "action", stepOf(t, p, bindRef).Action, plan.None)
				want(t, "has changes", p.HasChanges(), false)
			},
		},
		{
			name:    "binding parameters changed: re-bind with the same ID",
			docs:    []string{brokerYAML, dbYAML, bindYAML("db-binding", "db", "  parameters:\n    role: ro\n")},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops)},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "externalID", s.ExternalID, "ext-db-binding")
				want(t, "predecessor", s.PredecessorBindingID, "")
				want(t, "sendParameters", s.SendParameters, true)
				want(t, "writeAhead", s.WriteAhead, false)
			},
		},
		{
			name: "binding parameters changed on a rotatable plan: rotation",
			docs: []string{brokerYAML, instYAML("db", "vault", "secure", ""), bindYAML("db-binding", "db", "  parameters:\n    ttl: 1h\n")},
			records: []*manifest.StatusRecord{
				ready(dbRef, manifest.Properties{ClassExternalName: "vault", ClassExternalID: "svc-vault", PlanExternalName: "secure", PlanExternalID: "plan-vault-secure", ParameterChecksum: emptySum}),
				bindRec(manifest.Properties{ClassExternalName: "vault", ClassExternalID: "svc-vault", PlanExternalName: "secure", PlanExternalID: "plan-vault-secure", ParameterChecksum: emptySum}),
			},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "externalID", s.ExternalID, "00000000-0000-4000-8000-000000000001")
				want(t, "predecessor", s.PredecessorBindingID, "ext-db-binding")
				want(t, "writeAhead", s.WriteAhead, true)
			},
		},
		{
			name:    "instance provisioned again: binding bound again after it",
			docs:    []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops)},
			obs:     map[manifest.Ref]plan.Observation{dbRef: {NotFound: true}},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Create)
				want(t, "externalID", s.ExternalID, "ext-db-binding")
				want(t, "depends", len(s.DependsOn), 1)
			},
		},
		{
			name:    "instanceRef changed: error",
			docs:    []string{brokerYAML, dbYAML, instYAML("cache", "postgres", "small", dbParamsYAML), bindYAML("db-binding", "cache", "")},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops)},
			check: func(t *testing.T, p *plan.Plan) {
				wantContains(t, "error", stepOf(t, p, bindRef).Error, "instanceRef.name cannot change")
			},
		},
		{
			name:    "poll of an unbind in flight after the manifest was removed",
			docs:    []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops, asyncOp(manifest.OperationUnbind, "plan-pg-small", t0), func(r *manifest.StatusRecord) { r.Phase = manifest.PhaseDeprovisioning })},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Poll)
				want(t, "operation", s.Operation.Type, manifest.OperationUnbind)
				want(t, "instanceExternalID", s.InstanceExternalID, "ext-db")
			},
		},
		{
			name: "rotation interrupted after its write-ahead: the bind is repeated with its predecessor",
			docs: []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops, func(r *manifest.StatusRecord) {
				r.ExternalID, r.PredecessorExternalID = "ext-new", "ext-db-binding"
				r.Phase = manifest.PhasePending
			})},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Create)
				want(t, "externalID", s.ExternalID, "ext-new")
				want(t, "predecessor", s.PredecessorBindingID, "ext-db-binding")
				want(t, "predecessorOnly", s.PredecessorOnly, false)
			},
		},
		{
			name: "poll of a rotation's async bind carries the predecessor",
			docs: []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops, asyncOp(manifest.OperationBind, "plan-pg-small", t0), func(r *manifest.StatusRecord) {
				r.ExternalID, r.PredecessorExternalID = "ext-new", "ext-db-binding"
				r.Phase = manifest.PhaseProvisioning
			})},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Poll)
				want(t, "predecessor", s.PredecessorBindingID, "ext-db-binding")
			},
		},
		{
			name:    "rotation bound but its predecessor not unbound: only the unbind is left",
			docs:    []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops, func(r *manifest.StatusRecord) { r.ExternalID, r.PredecessorExternalID = "ext-new", "ext-db-binding" })},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "externalID", s.ExternalID, "ext-new")
				want(t, "predecessor", s.PredecessorBindingID, "ext-db-binding")
				want(t, "predecessorOnly", s.PredecessorOnly, true)
				want(t, "writeAhead", s.WriteAhead, false)
				want(t, "target broker", s.Target.Broker.Name != "", true)
			},
		},
		{
			name: "manifest removed during a rotation: the predecessor is unbound first",
			docs: []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops, func(r *manifest.StatusRecord) {
				r.ExternalID, r.PredecessorExternalID = "ext-new", "ext-db-binding"
				r.Phase = manifest.PhaseFailed
				r.Provisioned = false
			})},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "predecessorOnly", s.PredecessorOnly, true)
				want(t, "predecessor", s.PredecessorBindingID, "ext-db-binding")
			},
		},
	}
	runCases(t, cases)
}

// TestBuildRestoresBindingSecrets: a bound binding whose Secret was
// deleted or edited (Input.SecretDrift) gets its credentials back from the
// broker: fetched where the service's bindings are retrievable, else by
// binding again (a rotation on a rotatable plan, unbind and bind otherwise);
// a binding with no drift stays in sync, and one whose instance is not
// ready waits.
func TestBuildRestoresBindingSecrets(t *testing.T) {
	bprops := withProps(smallProp, func(p *manifest.Properties) { p.ParameterChecksum = emptySum })
	vault := manifest.Properties{ClassExternalName: "vault", ClassExternalID: "svc-vault", PlanExternalName: "secure", PlanExternalID: "plan-vault-secure", ParameterChecksum: emptySum}
	redis := manifest.Properties{ClassExternalName: "redis", ClassExternalID: "svc-redis", PlanExternalName: "standard", PlanExternalID: "plan-redis-standard", ParameterChecksum: emptySum}
	drift := func(d plan.SecretDrift) func(*plan.Input) {
		return func(in *plan.Input) { in.SecretDrift = map[manifest.Ref]plan.SecretDrift{bindRef: d} }
	}
	withSecret := func(r *manifest.StatusRecord) {
		r.SecretRef = &manifest.SecretRef{Namespace: "apps", Name: "db-creds", Keys: []string{"uri"}}
	}
	cases := []pc{
		{
			name:    "deleted Secret, retrievable bindings: fetched from the broker",
			docs:    []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops, withSecret)},
			in:      drift(plan.SecretDeleted),
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Adopt)
				want(t, "restore", s.RestoreSecret, true)
				want(t, "externalID", s.ExternalID, "ext-db-binding")
				want(t, "instance", s.InstanceExternalID, "ext-db")
				want(t, "reason", s.Reason, "Secret apps/db-creds was deleted: restored from the broker (fetch binding)")
				want(t, "mutating", s.Action.Mutating(), false)
				want(t, "has changes", p.HasChanges(), true)
			},
		},
		{
			name:    "edited Secret, retrievable bindings: fetched from the broker",
			docs:    []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops, withSecret)},
			in:      drift(plan.SecretEdited),
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Adopt)
				wantContains(t, "reason", s.Reason, "Secret apps/db-creds no longer holds what osbgit wrote")
			},
		},
		{
			name:    "deleted Secret, bindings not retrievable, rotatable plan: rotation",
			docs:    []string{brokerYAML, instYAML("db", "vault", "secure", ""), dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, vault), bindRec(vault, withSecret)},
			in:      drift(plan.SecretDeleted),
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "predecessor", s.PredecessorBindingID, "ext-db-binding")
				want(t, "new ID", s.ExternalID != "ext-db-binding", true)
				want(t, "writeAhead", s.WriteAhead, true)
				wantContains(t, "reason", s.Reason, "Secret apps/db-creds was deleted: restored from the broker by binding again")
			},
		},
		{
			name:    "edited Secret, bindings not retrievable, plan not rotatable: unbind and bind",
			docs:    []string{brokerYAML, instYAML("db", "redis", "standard", ""), dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, redis), bindRec(redis, withSecret)},
			in:      drift(plan.SecretEdited),
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.Update)
				want(t, "predecessor", s.PredecessorBindingID, "")
				want(t, "same ID", s.ExternalID, "ext-db-binding")
				wantContains(t, "reason", s.Reason, "re-binding: unbind, then bind again")
			},
		},
		{
			name:    "deleted Secret while the instance is being updated: waits",
			docs:    []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseProvisioning, smallProp, asyncOp(manifest.OperationUpdate, "plan-pg-small", t0)), bindRec(bprops, withSecret)},
			in:      drift(plan.SecretDeleted),
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, bindRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "reason", s.Reason, "Secret apps/db-creds was deleted; waiting for instance apps/db")
			},
		},
		{
			name:    "no drift: in sync",
			docs:    []string{brokerYAML, dbYAML, dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops, withSecret)},
			in:      func(in *plan.Input) { in.SecretDrift = map[manifest.Ref]plan.SecretDrift{} },
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "action", stepOf(t, p, bindRef).Action, plan.None)
				want(t, "has changes", p.HasChanges(), false)
			},
		},
	}
	runCases(t, cases)
}

func TestBuildRemovals(t *testing.T) {
	bprops := withProps(smallProp, func(p *manifest.Properties) { p.ParameterChecksum = emptySum })
	prune := func(o *plan.Options) { o.Prune = true }
	cases := []pc{
		{
			name:    "prune off: kept, warned",
			docs:    []string{brokerYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				want(t, "warned", anyContains(s.Warnings, "prune is off"), true)
			},
		},
		{
			name:    "prune on: unbind before deprovision",
			docs:    []string{brokerYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops)},
			opts:    prune,
			check: func(t *testing.T, p *plan.Plan) {
				i, b := stepOf(t, p, dbRef), stepOf(t, p, bindRef)
				want(t, "instance", i.Action, plan.Delete)
				want(t, "binding", b.Action, plan.Delete)
				want(t, "depends", len(i.DependsOn) == 1 && i.DependsOn[0] == bindRef, true)
				want(t, "order", indexOf(p, bindRef) < indexOf(p, dbRef), true)
				want(t, "target", i.Target.PlanID, "plan-pg-small")
				want(t, "binding target", b.Target.ServiceID, "svc-postgres")
				want(t, "binding instance", b.InstanceExternalID, "ext-db")
				want(t, "maxPolling", i.MaxPollingDuration, time.Hour)
				want(t, "counts", p.Counts().Delete, 2)
			},
		},
		{
			name:    "deletes come after creates and updates",
			docs:    []string{brokerYAML, instYAML("zz", "redis", "standard", "")},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			opts:    prune,
			check: func(t *testing.T, p *plan.Plan) {
				zz := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "zz"}
				want(t, "order", indexOf(p, zz) < indexOf(p, dbRef), true)
				want(t, "broker first", indexOf(p, demo), 0)
			},
		},
		{
			name:    "Retain from the record: forget",
			docs:    []string{brokerYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp, func(r *manifest.StatusRecord) { r.DeletionPolicy = manifest.DeletionPolicyRetain })},
			opts:    prune,
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "action", stepOf(t, p, dbRef).Action, plan.Forget)
			},
		},
		{
			name:    "never provisioned: forget even without prune",
			docs:    []string{brokerYAML},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseFailed, manifest.Properties{}, func(r *manifest.StatusRecord) { r.Provisioned = false })},
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "action", stepOf(t, p, dbRef).Action, plan.Forget)
			},
		},
		{
			name:    "pending (the create may have been made): delete",
			docs:    []string{brokerYAML},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhasePending, manifest.Properties{}, func(r *manifest.StatusRecord) { c := smallProp; r.InProgress = &c })},
			opts:    prune,
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Delete)
				want(t, "target", s.Target.PlanID, "plan-pg-small")
			},
		},
		{
			name:    "maxDeletions 0 forbids any delete: refused",
			docs:    []string{brokerYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			opts:    func(o *plan.Options) { o.Prune, o.MaxDeletions = true, 0 },
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "refused", p.Refused, "1 deletion exceeds maxDeletions 0; raise --max-deletions or restore manifests")
				want(t, "action", stepOf(t, p, dbRef).Action, plan.None)
			},
		},
		{
			name:    "negative maxDeletions: unlimited",
			docs:    []string{brokerYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), ready(cacheRef, smallProp)},
			opts:    func(o *plan.Options) { o.Prune, o.MaxDeletions = true, -1 },
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "refused", p.Refused, "")
				want(t, "deletes", p.Counts().Delete, 2)
			},
		},
		{
			name: "retries of deletes in flight do not count",
			docs: []string{brokerYAML},
			records: []*manifest.StatusRecord{
				rec(dbRef, manifest.PhaseDeprovisioning, smallProp),
				ready(cacheRef, smallProp),
			},
			opts: func(o *plan.Options) { o.Prune, o.MaxDeletions = true, 1 },
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "refused", p.Refused, "")
				wantContains(t, "reason", stepOf(t, p, dbRef).Reason, "retrying")
			},
		},
		{
			name:    "binding manifest still present: instance delete is an error",
			docs:    []string{brokerYAML, dbBindYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops)},
			opts:    prune,
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "error", s.Error, "ServiceBinding apps/db-binding")
			},
		},
		{
			name: "unbind in flight: deprovision waits",
			docs: []string{brokerYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp), bindRec(bprops, asyncOp(manifest.OperationUnbind, "plan-pg-small", t0),
				func(r *manifest.StatusRecord) { r.Phase = manifest.PhaseDeprovisioning })},
			opts: prune,
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "reason", s.Reason, "waiting for ServiceBinding apps/db-binding to be unbound first")
			},
		},
		{
			name:    "broker removed while resources remain: error on the broker, nothing called",
			docs:    []string{},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			opts:    prune,
			check: func(t *testing.T, p *plan.Plan) {
				b := stepOf(t, p, demo)
				wantContains(t, "broker error", b.Error, "ServiceInstance apps/db")
				want(t, "instance", stepOf(t, p, dbRef).Action, plan.None)
				want(t, "has changes", p.HasChanges(), false)
			},
		},
		{
			name: "broker removed, only its own record left: forget it last",
			docs: []string{},
			records: []*manifest.StatusRecord{func() *manifest.StatusRecord {
				r := manifest.NewStatusRecord(demo)
				r.Phase = manifest.PhaseReady
				return r
			}(), ready(dbRef, smallProp, func(r *manifest.StatusRecord) { r.DeletionPolicy = manifest.DeletionPolicyRetain })},
			check: func(t *testing.T, p *plan.Plan) {
				want(t, "broker", stepOf(t, p, demo).Action, plan.Forget)
				want(t, "last", indexOf(p, demo), len(p.Steps)-1)
			},
		},
		{
			name:    "unreadable manifest files: nothing counts as removed",
			docs:    []string{brokerYAML},
			records: []*manifest.StatusRecord{ready(dbRef, smallProp)},
			opts:    prune,
			in:      func(in *plan.Input) { in.Set.UnreadableFiles = []string{"broken.yaml"} },
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.None)
				wantContains(t, "reason", s.Reason, "broken.yaml")
			},
		},
		{
			name:    "manifest restored while a deprovision was pending: finish it first",
			docs:    []string{brokerYAML, dbYAML},
			records: []*manifest.StatusRecord{rec(dbRef, manifest.PhaseDeprovisioning, smallProp)},
			check: func(t *testing.T, p *plan.Plan) {
				s := stepOf(t, p, dbRef)
				want(t, "action", s.Action, plan.Delete)
				want(t, "refused", p.Refused, "")
			},
		},
	}
	runCases(t, cases)
}

func TestBuildEdgeInputs(t *testing.T) {
	t.Run("empty input", func(t *testing.T) {
		p := plan.Build(plan.Input{})
		if p == nil || len(p.Steps) != 0 || p.HasChanges() || p.Refused != "" {
			t.Fatalf("empty input planned %+v", p)
		}
	})
	t.Run("nil NewID: deterministic IDs", func(t *testing.T) {
		set, diags := loadSet(t, brokerYAML, dbYAML)
		in := plan.Input{Set: set, Diagnostics: diags, Catalogs: catalogs(t), Options: plan.Options{ClusterID: "c", Revision: "r"}}
		a, b := plan.Build(in), plan.Build(in)
		id := stepOf(t, a, dbRef).ExternalID
		want(t, "stable", id, stepOf(t, b, dbRef).ExternalID)
		want(t, "value", id, plan.DeterministicID("c", "r", dbRef, 1))
		want(t, "uuid shape", len(id) == 36 && id[14] == '5', true)
	})
	t.Run("invalid manifest blocks only itself", func(t *testing.T) {
		set, diags := loadSet(t, brokerYAML, dbYAML, instYAML("cache", "redis", "standard", ""))
		diags = append(diags, manifest.Diagnostic{File: "mb.yaml", Line: 2, Field: "spec", Severity: manifest.SeverityError, Message: "bad", Ref: dbRef})
		p := plan.Build(plan.Input{Set: set, Diagnostics: diags, Catalogs: catalogs(t), NewID: seqIDs()})
		s := stepOf(t, p, dbRef)
		want(t, "action", s.Action, plan.None)
		want(t, "error", s.Error, "mb.yaml:2: spec: bad")
		want(t, "other", stepOf(t, p, cacheRef).Action, plan.Create)
		want(t, "diagnostics kept", len(p.Diagnostics), len(diags))
	})
}

// BenchmarkBuild plans a repo of n instances with a binding each, all in
// sync (the common pass), to keep planning linear in the repo size.
func BenchmarkBuild(b *testing.B) {
	const n = 2000
	var docs []string
	recs := map[manifest.Ref]*manifest.StatusRecord{}
	docs = append(docs, brokerYAML)
	for i := 0; i < n; i++ {
		name := "db" + strconv.Itoa(i)
		docs = append(docs, instYAML(name, "postgres", "small", dbParamsYAML), bindYAML(name+"-b", name, ""))
		ir := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: name}
		br := manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: name + "-b"}
		recs[ir] = ready(ir, smallProp)
		recs[br] = ready(br, withProps(smallProp, func(p *manifest.Properties) { p.ParameterChecksum = emptySum }), func(r *manifest.StatusRecord) { r.InstanceName = name })
	}
	t := &testing.T{}
	set, diags := loadSet(t, strings.Join(docs, "\n---\n"))
	in := plan.Input{Set: set, Diagnostics: diags, Records: recs, Catalogs: catalogs(t), NewID: seqIDs(), Options: plan.Options{Prune: true, MaxDeletions: 10}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := plan.Build(in)
		if p.HasChanges() {
			b.Fatal("changes in an in-sync repo")
		}
	}
}
