package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

var brokerRef = manifest.Ref{Kind: manifest.KindClusterServiceBroker, Name: "osbtest"}

const ns = "apps"

func instRef(name string) manifest.Ref {
	return manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: ns, Name: name}
}

func bindRef(name string) manifest.Ref {
	return manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: ns, Name: name}
}

// serviceOf maps the default catalog's plans to their service.
func serviceOf(planID string) string {
	switch planID {
	case osbtest.PlanQueueStandard, osbtest.PlanQueueNoBind:
		return osbtest.ServiceQueue
	case osbtest.PlanDNSZone:
		return osbtest.ServiceDNS
	}
	return osbtest.ServiceDB
}

func props(planID, checksum string) *manifest.Properties {
	return &manifest.Properties{ClassExternalID: serviceOf(planID), PlanExternalID: planID, ParameterChecksum: checksum}
}

func target(planID string) plan.Target {
	return plan.Target{Broker: brokerRef, ServiceID: serviceOf(planID), PlanID: planID}
}

func kubeContext(instance string) *osbwire.Context {
	return &osbwire.Context{Platform: osbwire.PlatformKubernetes, Namespace: ns, ClusterID: "cluster-1", InstanceName: instance}
}

// createInstance is the step the planner makes for a new instance.
func createInstance(name, id, planID string, params map[string]any) plan.Step {
	return plan.Step{
		Ref: instRef(name), Action: plan.Create, ExternalID: id, Target: target(planID),
		Desired: props(planID, "sum-"+name), SendParameters: len(params) > 0, Parameters: params,
		Context: kubeContext(name), WriteAhead: true, SpecHash: "spec-" + name,
		Source: &manifest.Source{},
	}
}

// updateInstance changes plan and/or parameters of an instance recorded on
// fromPlan.
func updateInstance(name, id, fromPlan, toPlan string, params map[string]any) plan.Step {
	prev := target(fromPlan)
	return plan.Step{
		Ref: instRef(name), Action: plan.Update, ExternalID: id, Target: target(toPlan), Previous: &prev,
		Desired: props(toPlan, "sum2-"+name), SendPlan: fromPlan != toPlan,
		SendParameters: params != nil, Parameters: params, Context: kubeContext(name), SpecHash: "spec2-" + name,
		Source: &manifest.Source{},
	}
}

func deleteInstance(name, id, planID string) plan.Step {
	return plan.Step{Ref: instRef(name), Action: plan.Delete, ExternalID: id, Target: target(planID)}
}

// createBinding binds name to instance (instanceID) on planID.
func createBinding(name, id, instance, instanceID, planID string) plan.Step {
	return plan.Step{
		Ref: bindRef(name), Action: plan.Create, ExternalID: id, InstanceExternalID: instanceID, InstanceName: instance,
		Target: target(planID), Desired: props(planID, "bsum-"+name), Context: kubeContext(instance),
		SecretNamespace: ns, SecretName: name + "-creds", WriteAhead: true, SpecHash: "bspec-" + name,
		Source: &manifest.Source{},
	}
}

func deleteBinding(name, id, instanceID, planID string) plan.Step {
	return plan.Step{Ref: bindRef(name), Action: plan.Delete, ExternalID: id, InstanceExternalID: instanceID, Target: target(planID)}
}

// pollStep is what the planner makes for a record with an operation in
// flight.
func pollStep(rec *manifest.StatusRecord) plan.Step {
	op := *rec.LastOperation
	s := plan.Step{
		Ref: rec.Ref, Action: plan.Poll, ExternalID: rec.ExternalID, InstanceExternalID: rec.InstanceExternalID,
		Target:    plan.Target{Broker: rec.Broker, ServiceID: op.ServiceID, PlanID: op.PlanID},
		Operation: &op, SecretNamespace: ns,
	}
	if rec.Ref.Kind == manifest.KindServiceBinding {
		s.SecretName = rec.Ref.Name + "-creds"
	}
	return s
}

// env is one broker over real HTTP, a directory secret store, an executor
// and a simulated repository of records carried from run to run.
type env struct {
	t       testing.TB
	b       *osbtest.Broker
	srv     *httptest.Server
	client  *osbclient.Client
	store   *secretstore.Dir
	ex      *Executor
	logBuf  *syncBuffer
	records map[manifest.Ref]*manifest.StatusRecord
	now     time.Time
	clockMu sync.Mutex
	// inFlight/maxInFlight count concurrent requests at the broker.
	mu                    sync.Mutex
	inFlight, maxInFlight int
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

type envOption func(*osbtest.Config, *osbclient.Config)

func withClientTimeout(d time.Duration) envOption {
	return func(_ *osbtest.Config, c *osbclient.Config) { c.Timeout = d }
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	bcfg := osbtest.Config{Username: "broker-user", Password: "broker-pass-123", RequireRequestIdentity: true}
	ccfg := osbclient.Config{BrokerName: "osbtest", Username: bcfg.Username, Password: bcfg.Password, Timeout: 10 * time.Second}
	for _, o := range opts {
		o(&bcfg, &ccfg)
	}
	e := &env{t: t, records: map[manifest.Ref]*manifest.StatusRecord{}, now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	e.b = osbtest.New(bcfg)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.inFlight++
		e.maxInFlight = max(e.maxInFlight, e.inFlight)
		e.mu.Unlock()
		defer func() {
			e.mu.Lock()
			e.inFlight--
			e.mu.Unlock()
		}()
		e.b.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { e.b.ReleaseDelays(); e.srv.Close() })
	ccfg.URL = e.srv.URL
	c, err := osbclient.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	e.store, err = secretstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.logBuf = &syncBuffer{}
	log := logrus.New()
	log.SetOutput(e.logBuf)
	log.SetLevel(logrus.DebugLevel)
	log.SetFormatter(&logrus.JSONFormatter{})
	e.ex = &Executor{
		Brokers: func(ref manifest.Ref) (BrokerClient, error) {
			if ref != brokerRef {
				return nil, &unknownBroker{ref}
			}
			return e.client, nil
		},
		Secrets:     e.store,
		Now:         e.clock,
		Log:         log,
		Identity:    &osbwire.OriginatingIdentity{Username: "alice@example.com", UID: "alice"},
		InlinePoll:  5 * time.Second,
		PollInitial: 5 * time.Millisecond,
		PollMax:     20 * time.Millisecond,
	}
	return e
}

type unknownBroker struct{ ref manifest.Ref }

func (u *unknownBroker) Error() string { return "unknown broker " + u.ref.String() }

func (e *env) clock() time.Time {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	e.now = e.now.Add(d)
}

// pass runs steps like a pass does: each step without a Record gets the
// repository's, write-ahead records are "committed" first, and the result
// is applied to the repository. It returns the result.
func (e *env) pass(steps ...plan.Step) *Result {
	e.t.Helper()
	p := &plan.Plan{Revision: "rev-1", Steps: steps}
	for i := range p.Steps {
		if p.Steps[i].Record == nil {
			p.Steps[i].Record = cloneRecord(e.records[p.Steps[i].Ref])
		}
	}
	wa := WriteAheadRecords(p, e.clock())
	for ref, rec := range wa {
		e.records[ref] = cloneRecord(rec)
	}
	// As a pass does: the journal's entries go with the records.
	_, e.ex.WriteAheadJSON, _ = manifest.MarshalJournal(slices.Collect(maps.Values(wa)))
	res := e.ex.Run(context.Background(), p, wa)
	e.checkRecordJSON(res)
	for ref, rec := range res.Records {
		if rec == nil {
			delete(e.records, ref)
		} else {
			e.records[ref] = cloneRecord(rec)
		}
	}
	e.checkNoSecrets(res)
	return res
}

// checkRecordJSON checks that res.RecordJSON is what the status commit
// would encode of res.Records, and nothing else.
func (e *env) checkRecordJSON(res *Result) {
	e.t.Helper()
	for ref, rec := range res.Records {
		got, ok := res.RecordJSON[ref]
		if rec == nil {
			if ok {
				e.t.Errorf("%s: RecordJSON of a deleted record", ref)
			}
			continue
		}
		want, err := manifest.RecordJSON(cloneRecord(rec))
		if err != nil || string(got) != string(want) {
			e.t.Errorf("%s: RecordJSON %s, want %s (%v)", ref, got, want, err)
		}
	}
	for ref := range res.RecordJSON {
		if _, ok := res.Records[ref]; !ok {
			e.t.Errorf("%s: RecordJSON of a record that did not change", ref)
		}
	}
}

// rec returns the repository's record of ref (fails when missing).
func (e *env) rec(ref manifest.Ref) *manifest.StatusRecord {
	e.t.Helper()
	r := e.records[ref]
	if r == nil {
		e.t.Fatalf("no record for %s", ref)
	}
	return r
}

// checkNoSecrets fails when a credential value or the broker password
// appears in a record, an outcome or the log.
func (e *env) checkNoSecrets(res *Result) {
	e.t.Helper()
	var hay strings.Builder
	for _, r := range res.Records {
		if r == nil {
			continue
		}
		b, err := manifest.MarshalRecord(cloneRecord(r))
		if err != nil {
			e.t.Fatal(err)
		}
		hay.Write(b)
	}
	for _, o := range res.Outcomes {
		hay.WriteString(o.Summary)
		if o.Err != nil {
			hay.WriteString(o.Err.Error())
		}
	}
	hay.WriteString(e.logBuf.String())
	s := hay.String()
	secrets := []string{"broker-pass-123", "s3cr3t-password", "hunter2-param"}
	for _, bn := range e.b.Bindings() {
		for _, k := range []string{"password", "uri", "username"} {
			if v, ok := bn.Credentials[k].(string); ok {
				secrets = append(secrets, v)
			}
		}
	}
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			e.t.Fatalf("secret value %q leaked into a record, outcome or log", sec)
		}
	}
}

// outcome returns the single outcome for ref.
func outcome(t *testing.T, res *Result, ref manifest.Ref) Outcome {
	t.Helper()
	for _, o := range res.Outcomes {
		if o.Ref == ref {
			return o
		}
	}
	t.Fatalf("no outcome for %s", ref)
	return Outcome{}
}

func wantStatus(t *testing.T, res *Result, ref manifest.Ref, want Status) Outcome {
	t.Helper()
	o := outcome(t, res, ref)
	if o.Status != want {
		t.Fatalf("%s: status %s, want %s (err %v, summary %q)", ref, o.Status, want, o.Err, o.Summary)
	}
	return o
}

func wantCond(t *testing.T, rec *manifest.StatusRecord, ct manifest.ConditionType, st manifest.ConditionStatus, reason string) {
	t.Helper()
	c := manifest.FindCondition(rec.Conditions, ct)
	if c == nil {
		t.Fatalf("%s: no %s condition (have %+v)", rec.Ref, ct, rec.Conditions)
	}
	if (st != "" && c.Status != st) || (reason != "" && c.Reason != reason) {
		t.Fatalf("%s: condition %s = %s/%s (%s), want %s/%s", rec.Ref, ct, c.Status, c.Reason, c.Message, st, reason)
	}
}

// bodyOf decodes a call's JSON body.
func bodyOf(t *testing.T, c osbtest.Call) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(c.Body, &m); err != nil {
		t.Fatalf("body of %s: %v", c.Endpoint, err)
	}
	return m
}

func (e *env) count(ep osbtest.Endpoint) int { return e.b.Count(ep) }
