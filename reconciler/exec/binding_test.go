package exec

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

func strp(s string) *string { return &s }

// writeHandSecret creates an unmanaged Secret in the directory store (as a
// mounted Secret would be), for addKeysFrom.
func writeHandSecret(t *testing.T, e *env, name string, data map[string]string) {
	t.Helper()
	dir := filepath.Join(e.store.Path(), ns, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBindingLifecycleSync binds (credentials to the dir store with
// transforms, keys recorded, no value anywhere else) and unbinds (Secret and
// record removed), checking the broker's state.
func TestBindingLifecycleSync(t *testing.T) {
	e := newEnv(t)
	iref, bref := instRef("db"), bindRef("app")
	wantStatus(t, e.pass(createInstance("db", "i-1", osbtest.PlanDBSmall, nil)), iref, StatusSucceeded)
	writeHandSecret(t, e, "extra", map[string]string{"region": "eu-1"})

	step := createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)
	step.Parameters, step.SendParameters = map[string]any{"role": "rw"}, true
	step.SecretTransforms = []manifest.SecretTransform{
		{RenameKey: &manifest.RenameKeyTransform{From: "uri", To: "DATABASE_URL"}},
		{AddKey: &manifest.AddKeyTransform{Key: "endpoint", JSONPathExpression: strp("{.host}:{.port}")}},
		{AddKey: &manifest.AddKeyTransform{Key: "static", StringValue: strp("fixed")}},
		{AddKeysFrom: &manifest.AddKeysFromTransform{SecretRef: &manifest.ObjectReference{Name: "extra"}}},
		{RemoveKey: &manifest.RemoveKeyTransform{Key: "hosts"}},
	}
	res := e.pass(step)
	wantStatus(t, res, bref, StatusSucceeded)
	bn, ok := e.b.Binding("b-1")
	if !ok || bn.InstanceID != "i-1" || bn.Parameters["role"] != "rw" || bn.Context.InstanceName != "db" {
		t.Fatalf("broker binding %+v", bn)
	}
	rec := e.rec(bref)
	if rec.Phase != manifest.PhaseReady || rec.InstanceName != "db" || rec.InstanceExternalID != "i-1" || rec.ExternalID != "b-1" {
		t.Fatalf("record %+v", rec)
	}
	wantCond(t, rec, manifest.ConditionReady, manifest.ConditionTrue, ReasonBoundSuccessfully)
	wantKeys := []string{"DATABASE_URL", "database", "endpoint", "host", "options", "password", "port", "region", "ssl", "static", "username"}
	if rec.SecretRef == nil || rec.SecretRef.Namespace != ns || rec.SecretRef.Name != "app-creds" || !slices.Equal(rec.SecretRef.Keys, wantKeys) {
		t.Fatalf("secretRef %+v, want keys %v", rec.SecretRef, wantKeys)
	}
	data, err := e.store.Get(t.Context(), ns, "app-creds")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"DATABASE_URL": bn.Credentials["uri"].(string), "password": bn.Credentials["password"].(string),
		"port": "5432", "ssl": "true", "options": `{"sslmode":"require"}`, "endpoint": "db.osbtest.invalid:5432",
		"static": "fixed", "region": "eu-1",
	}
	for k, v := range want {
		if string(data[k]) != v {
			t.Errorf("secret key %s = %q, want %q", k, data[k], v)
		}
	}
	if _, ok := data["hosts"]; ok {
		t.Error("removeKey hosts not applied")
	}
	// The credential values are nowhere in the record file (also checked
	// for every pass by env.pass, with the log).
	b, _ := manifest.MarshalRecord(cloneRecord(rec))
	for _, v := range []string{bn.Credentials["password"].(string), bn.Credentials["uri"].(string)} {
		if strings.Contains(string(b), v) {
			t.Fatal("credential in the record")
		}
	}

	res = e.pass(deleteBinding("app", "b-1", "i-1", osbtest.PlanDBSmall))
	wantStatus(t, res, bref, StatusSucceeded)
	if r, ok := res.Records[bref]; !ok || r != nil {
		t.Fatal("binding record not removed")
	}
	if _, ok := e.b.Binding("b-1"); ok {
		t.Fatal("broker still holds the binding")
	}
	if _, err := e.store.Get(t.Context(), ns, "app-creds"); !errors.Is(err, secretstore.ErrNotFound) {
		t.Fatalf("Secret not deleted: %v", err)
	}
	if _, err := e.store.Get(t.Context(), ns, "extra"); err != nil {
		t.Fatalf("the addKeysFrom Secret was touched: %v", err)
	}
	// Unbinding again is a 410: success.
	e.records[bref] = rec
	res = e.pass(deleteBinding("app", "b-1", "i-1", osbtest.PlanDBSmall))
	wantStatus(t, res, bref, StatusSucceeded)
	if c := mustLast(t, e.b, osbtest.EndpointUnbind); c.Status != 410 {
		t.Fatalf("unbind answered %d", c.Status)
	}
}

// TestAsyncBindFetchesCredentials: an async bind's credentials come from GET
// binding once last_operation succeeded.
func TestAsyncBindFetchesCredentials(t *testing.T) {
	e := newEnv(t)
	e.ex.InlinePoll = 0
	e.b.PutInstance(osbtest.Instance{ID: "i-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBAsync, OrganizationGUID: "o", SpaceGUID: "s"})
	ref := bindRef("app")
	res := e.pass(createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBAsync))
	wantStatus(t, res, ref, StatusInProgress)
	rec := e.rec(ref)
	if rec.Phase != manifest.PhaseProvisioning || !rec.AsyncOpInProgress || rec.SecretRef != nil {
		t.Fatalf("record %+v", rec)
	}
	e.ex.InlinePoll = 5 * time.Second
	res = e.pass(pollStep(rec))
	wantStatus(t, res, ref, StatusSucceeded)
	rec = e.rec(ref)
	if rec.Phase != manifest.PhaseReady || rec.SecretRef == nil || len(rec.SecretRef.Keys) == 0 {
		t.Fatalf("record %+v", rec)
	}
	if e.count(osbtest.EndpointGetBinding) != 1 {
		t.Fatalf("%d GET binding calls", e.count(osbtest.EndpointGetBinding))
	}
	bn, _ := e.b.Binding("b-1")
	data, err := e.store.Get(t.Context(), ns, "app-creds")
	if err != nil || string(data["password"]) != bn.Credentials["password"] {
		t.Fatalf("secret %v err %v", len(data), err)
	}
}

// TestBindingRotation: a new binding ID with predecessor_binding_id is
// bound, the Secret rewritten with the new credentials, then the
// predecessor unbound.
func TestBindingRotation(t *testing.T) {
	e := newEnv(t)
	ref := bindRef("app")
	wantStatus(t, e.pass(createInstance("db", "i-1", osbtest.PlanDBSmall, nil)), instRef("db"), StatusSucceeded)
	wantStatus(t, e.pass(createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)), ref, StatusSucceeded)
	old, _ := e.store.Get(t.Context(), ns, "app-creds")

	step := createBinding("app", "b-2", "db", "i-1", osbtest.PlanDBSmall)
	step.Action, step.PredecessorBindingID = plan.Update, "b-1"
	prev := target(osbtest.PlanDBSmall)
	step.Previous = &prev
	step.Parameters, step.SendParameters = map[string]any{"role": "ro"}, true
	res := e.pass(step)
	o := wantStatus(t, res, ref, StatusSucceeded)
	if res.Counts.Updated != 1 || !strings.Contains(o.Summary, "b-1") {
		t.Fatalf("outcome %+v counts %+v", o, res.Counts)
	}
	nb, ok := e.b.Binding("b-2")
	if !ok || nb.PredecessorBindingID != "b-1" {
		t.Fatalf("new binding %+v", nb)
	}
	if _, ok := e.b.Binding("b-1"); ok {
		t.Fatal("predecessor still bound")
	}
	rec := e.rec(ref)
	if rec.ExternalID != "b-2" || rec.Phase != manifest.PhaseReady {
		t.Fatalf("record %+v", rec)
	}
	cur, _ := e.store.Get(t.Context(), ns, "app-creds")
	if string(cur["password"]) != nb.Credentials["password"] || string(cur["password"]) == string(old["password"]) {
		t.Fatal("Secret does not hold the new credentials")
	}
	// Order: bind b-2 before unbind b-1.
	var order []string
	for _, c := range e.b.MutatingCalls() {
		order = append(order, c.Endpoint.String()+":"+c.BindingID)
	}
	if i, j := slices.Index(order, "Bind:b-2"), slices.Index(order, "Unbind:b-1"); i < 0 || j < i {
		t.Fatalf("call order %v", order)
	}
}

// TestRotationPredecessorUnbindRetried: when the predecessor's unbind
// fails, the new binding stays Ready and the record keeps the predecessor;
// the planner's PredecessorOnly step then unbinds it (no bind again) and
// clears it.
func TestRotationPredecessorUnbindRetried(t *testing.T) {
	e := newEnv(t)
	ref := bindRef("app")
	wantStatus(t, e.pass(createInstance("db", "i-1", osbtest.PlanDBSmall, nil)), instRef("db"), StatusSucceeded)
	wantStatus(t, e.pass(createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)), ref, StatusSucceeded)
	e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUnbind, BindingID: "b-1", Times: 1, Status: http.StatusInternalServerError})

	step := createBinding("app", "b-2", "db", "i-1", osbtest.PlanDBSmall)
	step.Action, step.PredecessorBindingID = plan.Update, "b-1"
	step.Parameters, step.SendParameters = map[string]any{"role": "ro"}, true
	wantStatus(t, e.pass(step), ref, StatusFailed)
	rec := e.rec(ref)
	if rec.ExternalID != "b-2" || rec.PredecessorExternalID != "b-1" || rec.Phase != manifest.PhaseReady {
		t.Fatalf("record after the failed unbind: %+v", rec)
	}
	if _, ok := e.b.Binding("b-1"); !ok {
		t.Fatal("predecessor gone although its unbind failed")
	}

	binds := len(e.b.CallsTo(osbtest.EndpointBind))
	finish := plan.Step{Ref: ref, Action: plan.Update, ExternalID: "b-2", PredecessorBindingID: "b-1", PredecessorOnly: true,
		InstanceExternalID: "i-1", Target: target(osbtest.PlanDBSmall)}
	wantStatus(t, e.pass(finish), ref, StatusSucceeded)
	rec = e.rec(ref)
	if rec.PredecessorExternalID != "" || rec.Phase != manifest.PhaseReady || manifest.FindCondition(rec.Conditions, manifest.ConditionFailed) != nil {
		t.Fatalf("record after the rotation finished: %+v", rec)
	}
	if _, ok := e.b.Binding("b-1"); ok {
		t.Fatal("predecessor still bound")
	}
	if got := len(e.b.CallsTo(osbtest.EndpointBind)); got != binds {
		t.Fatalf("finishing the rotation sent %d bind(s); it must only unbind", got-binds)
	}
}

// TestRebindSameID: a binding whose parameters changed on a plan without
// rotation is unbound, then bound again with the same ID.
func TestRebindSameID(t *testing.T) {
	e := newEnv(t)
	ref := bindRef("app")
	e.b.PutInstance(osbtest.Instance{ID: "q-1", ServiceID: osbtest.ServiceQueue, PlanID: osbtest.PlanQueueStandard, OrganizationGUID: "o", SpaceGUID: "s"})
	wantStatus(t, e.pass(createBinding("app", "qb-1", "queue", "q-1", osbtest.PlanQueueStandard)), ref, StatusSucceeded)
	step := createBinding("app", "qb-1", "queue", "q-1", osbtest.PlanQueueStandard)
	step.Action, step.WriteAhead = plan.Update, false
	step.Parameters, step.SendParameters = map[string]any{"durable": true}, true
	res := e.pass(step)
	wantStatus(t, res, ref, StatusSucceeded)
	bn, ok := e.b.Binding("qb-1")
	if !ok || bn.Parameters["durable"] != true {
		t.Fatalf("binding %+v", bn)
	}
	rec := e.rec(ref)
	if rec.Phase != manifest.PhaseReady || rec.SecretRef == nil || rec.ParameterChecksum != "bsum-app" {
		t.Fatalf("record %+v", rec)
	}
	if _, err := e.store.Get(t.Context(), ns, "app-creds"); err != nil {
		t.Fatal(err)
	}
	if e.count(osbtest.EndpointUnbind) != 1 || e.count(osbtest.EndpointBind) != 2 || res.Counts.Updated != 1 {
		t.Fatalf("unbinds %d binds %d counts %+v", e.count(osbtest.EndpointUnbind), e.count(osbtest.EndpointBind), res.Counts)
	}
}

// TestSecretValuesEncoded checks the stored Secret for non-string values
// (JSON) against the broker's credentials.
func TestSecretValuesEncoded(t *testing.T) {
	e := newEnv(t)
	e.b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Credentials: map[string]any{
		"password": "s3cr3t-password", "nested": map[string]any{"b": 1, "a": []any{"x"}}, "n": 1.5,
	}}, osbtest.OpBind)
	e.b.PutInstance(osbtest.Instance{ID: "i-1", ServiceID: osbtest.ServiceDB, PlanID: osbtest.PlanDBSmall, OrganizationGUID: "o", SpaceGUID: "s"})
	wantStatus(t, e.pass(createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)), bindRef("app"), StatusSucceeded)
	data, err := e.store.Get(t.Context(), ns, "app-creds")
	if err != nil {
		t.Fatal(err)
	}
	var nested map[string]any
	if err := json.Unmarshal(data["nested"], &nested); err != nil || string(data["n"]) != "1.5" || string(data["password"]) != "s3cr3t-password" {
		t.Fatalf("data %q %v", data["nested"], err)
	}
	if rec := e.rec(bindRef("app")); !slices.Equal(rec.SecretRef.Keys, []string{"n", "nested", "password"}) {
		t.Fatalf("keys %v", rec.SecretRef.Keys)
	}
}

// TestRotationPredecessorUnbindConcurrencyError: a broker that answers the
// repeated unbind of a predecessor (its async unbind still running) with
// 422 ConcurrencyError has not failed anything: the rotation waits, the
// step is retried later (not failed, no Failed condition), and once the
// broker accepts the unbind the rotation completes.
func TestRotationPredecessorUnbindConcurrencyError(t *testing.T) {
	e := newEnv(t)
	ref := bindRef("app")
	wantStatus(t, e.pass(createInstance("db", "i-1", osbtest.PlanDBSmall, nil)), instRef("db"), StatusSucceeded)
	wantStatus(t, e.pass(createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)), ref, StatusSucceeded)
	step := createBinding("app", "b-2", "db", "i-1", osbtest.PlanDBSmall)
	step.Action, step.PredecessorBindingID = plan.Update, "b-1"
	step.Parameters, step.SendParameters = map[string]any{"role": "ro"}, true
	e.b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUnbind, BindingID: "b-1", Times: 1, Status: http.StatusUnprocessableEntity,
		Body: []byte(`{"error":"ConcurrencyError","description":"an unbind is in progress"}`)})
	res := e.pass(step)
	o := wantStatus(t, res, ref, StatusRetryLater)
	if o.NextPoll.IsZero() {
		t.Error("no retry time for the predecessor's unbind")
	}
	rec := e.rec(ref)
	if rec.ExternalID != "b-2" || rec.PredecessorExternalID != "b-1" || rec.Phase != manifest.PhaseReady {
		t.Fatalf("record after the 422: %+v", rec)
	}
	if c := manifest.FindCondition(rec.Conditions, manifest.ConditionFailed); c != nil {
		t.Errorf("Failed condition after a 422 ConcurrencyError: %+v", c)
	}
	if res.Failed() {
		t.Errorf("the pass failed: %+v", res.Counts)
	}

	finish := plan.Step{Ref: ref, Action: plan.Update, ExternalID: "b-2", PredecessorBindingID: "b-1", PredecessorOnly: true,
		InstanceExternalID: "i-1", Target: target(osbtest.PlanDBSmall)}
	wantStatus(t, e.pass(finish), ref, StatusSucceeded)
	rec = e.rec(ref)
	if rec.PredecessorExternalID != "" {
		t.Fatalf("record after the rotation finished: %+v", rec)
	}
	if c := manifest.FindCondition(rec.Conditions, manifest.ConditionReady); c == nil || c.Status != manifest.ConditionTrue || c.Reason == ReasonConcurrencyError {
		t.Errorf("Ready after the rotation finished: %+v", c)
	}
	if _, ok := e.b.Binding("b-1"); ok {
		t.Fatal("predecessor still bound")
	}
}

// TestRotationAsyncPredecessorUnbindIsPolled (issue 19): an asynchronous
// unbind of a rotated binding's predecessor is recorded and polled by the
// next passes; it was sent again on every pass instead.
func TestRotationAsyncPredecessorUnbindIsPolled(t *testing.T) {
	e := newEnv(t)
	e.ex.InlinePoll = 0
	ref := bindRef("app")
	wantStatus(t, e.pass(createInstance("db", "i-1", osbtest.PlanDBSmall, nil)), instRef("db"), StatusSucceeded)
	wantStatus(t, e.pass(createBinding("app", "b-1", "db", "i-1", osbtest.PlanDBSmall)), ref, StatusSucceeded)
	e.b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Async: true, Polls: 2}, osbtest.OpUnbind)

	step := createBinding("app", "b-2", "db", "i-1", osbtest.PlanDBSmall)
	step.Action, step.PredecessorBindingID = plan.Update, "b-1"
	step.Parameters, step.SendParameters = map[string]any{"role": "ro"}, true
	e.pass(step)
	if rec := e.rec(ref); rec.PredecessorExternalID != "b-1" || rec.PredecessorOperation == nil {
		t.Fatalf("record after the async unbind started: %+v", rec)
	}
	finish := plan.Step{Ref: ref, Action: plan.Update, ExternalID: "b-2", PredecessorBindingID: "b-1", PredecessorOnly: true,
		InstanceExternalID: "i-1", Target: target(osbtest.PlanDBSmall)}
	for i := 0; i < 5 && e.rec(ref).PredecessorExternalID != ""; i++ {
		e.pass(finish)
	}
	if rec := e.rec(ref); rec.PredecessorExternalID != "" || rec.PredecessorOperation != nil {
		t.Fatalf("rotation not finished: %+v", rec)
	}
	if n := e.count(osbtest.EndpointUnbind); n != 1 {
		t.Errorf("%d unbinds of the predecessor, want 1 (then polls)", n)
	}
	if n := e.count(osbtest.EndpointBindingLastOperation); n == 0 {
		t.Error("the predecessor's unbind was never polled")
	}
	if _, ok := e.b.Binding("b-1"); ok {
		t.Error("predecessor still bound")
	}
}
