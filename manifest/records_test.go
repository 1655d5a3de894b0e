package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func sampleStatus() *StatusRecord {
	r := NewStatusRecord(Ref{Kind: KindServiceInstance, Namespace: "default", Name: "db"})
	r.Phase = PhaseUpdating
	r.ExternalID = "3f1c9a2e-0a8b-4b47-9d52-1d2c1b7c2a10"
	r.Broker = Ref{Kind: KindClusterServiceBroker, Name: "ups-broker"}
	r.Properties = Properties{ClassExternalName: "user-provided-service", ClassExternalID: "4f6e6cf6-ffdd-425f-a2c7-3c9258ad2468",
		PlanExternalName: "default", PlanExternalID: "86064792-7ea2-467b-af93-ac9694d96d52", ParameterChecksum: strings.Repeat("ab", 32), UpdateRequests: 1}
	r.InProgress = &Properties{PlanExternalName: "premium", PlanExternalID: "cc0d7529-18e8-416d-8946-6f7456acd589"}
	r.Provisioned = true
	r.AsyncOpInProgress = true
	r.DashboardURL = "https://dash.example.com/db?x=1&y=2"
	r.LastOperation = &LastOperation{Type: OperationUpdate, State: OperationInProgress, Operation: "op-1: \"quoted\"", StartTime: metav1.NewTime(t0.Add(123 * time.Millisecond)),
		ServiceID: "4f6e6cf6-ffdd-425f-a2c7-3c9258ad2468", PlanID: "86064792-7ea2-467b-af93-ac9694d96d52"}
	r.Conditions = SetCondition(nil, Condition{Type: ConditionReady, Status: ConditionFalse, Reason: "UpdatingInstance", Message: "multi\nline: message"}, t0)
	r.Conditions = SetCondition(r.Conditions, Condition{Type: ConditionFailed, Status: ConditionFalse}, t0)
	r.SpecHash = "123"
	r.ObservedRevision = "0123456789abcdef0123456789abcdef01234567"
	return r
}

func TestStatusRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
	}{
		{"instance", sampleStatus()},
		{"empty", NewStatusRecord(Ref{Kind: KindServiceBinding, Namespace: "ns", Name: "b"})},
		{"binding", func() Record {
			r := NewStatusRecord(Ref{Kind: KindServiceBinding, Namespace: "ns", Name: "b"})
			r.Phase = PhaseReady
			r.InstanceName, r.InstanceExternalID = "db", "iid"
			r.SecretRef = &SecretRef{Namespace: "ns", Name: "b", Keys: []string{"uri", "password", "host"}}
			r.Error = &RecordError{Message: "spec.instanceRef.name: required"}
			return r
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b1, err := MarshalRecord(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(b1, []byte("\n")) || bytes.HasSuffix(b1, []byte("\n\n")) {
				t.Errorf("want exactly one trailing newline:\n%s", b1)
			}
			back, err := UnmarshalRecord(pathOf(t, tt.rec), b1)
			if err != nil {
				t.Fatalf("unmarshal: %v\n%s", err, b1)
			}
			b2, err := MarshalRecord(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b1, b2) {
				t.Errorf("not byte-identical:\n%s\n---\n%s", b1, b2)
			}
		})
	}
}

func TestSetConditionKeepsTransitionTime(t *testing.T) {
	c := SetCondition(nil, Condition{Type: ConditionReady, Status: ConditionTrue, Reason: "A"}, t0)
	r1 := NewStatusRecord(Ref{Kind: KindServiceInstance, Namespace: "d", Name: "x"})
	r1.Conditions = c
	b1, _ := MarshalRecord(r1)
	r1.Conditions = SetCondition(r1.Conditions, Condition{Type: ConditionReady, Status: ConditionTrue, Reason: "A"}, t0.Add(time.Hour))
	b2, _ := MarshalRecord(r1)
	if !bytes.Equal(b1, b2) {
		t.Errorf("unchanged condition changed bytes:\n%s\n%s", b1, b2)
	}
	r1.Conditions = SetCondition(r1.Conditions, Condition{Type: ConditionReady, Status: ConditionFalse, Reason: "B"}, t0.Add(time.Hour))
	if got := FindCondition(r1.Conditions, ConditionReady).LastTransitionTime.Time; !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("transition time = %v, want %v", got, t0.Add(time.Hour))
	}
}

func TestPaths(t *testing.T) {
	tests := []struct {
		ref        Ref
		status     string
		catalog    string
		catalogKey string
	}{
		{Ref{Kind: KindServiceInstance, Namespace: "default", Name: "db"}, ".osbgit/status/default/serviceinstance/db.yaml", "", ""},
		{Ref{Kind: KindServiceBinding, Namespace: "prod", Name: "db-b"}, ".osbgit/status/prod/servicebinding/db-b.yaml", "", ""},
		{Ref{Kind: KindClusterServiceBroker, Name: "ups"}, ".osbgit/status/_cluster/clusterservicebroker/ups.yaml", ".osbgit/catalog/ups.yaml", "ups"},
		{Ref{Kind: KindServiceBroker, Namespace: "team", Name: "ups"}, ".osbgit/status/team/servicebroker/ups.yaml", ".osbgit/catalog/team/ups.yaml", "team/ups"},
	}
	for _, tt := range tests {
		if got, err := StatusPath(tt.ref); got != tt.status || err != nil {
			t.Errorf("StatusPath(%v) = %q, %v, want %q", tt.ref, got, err, tt.status)
		}
		if tt.catalog != "" {
			if got, err := CatalogPath(tt.ref); got != tt.catalog || err != nil {
				t.Errorf("CatalogPath(%v) = %q, %v, want %q", tt.ref, got, err, tt.catalog)
			}
			if got := CatalogKey(tt.ref); got != tt.catalogKey {
				t.Errorf("CatalogKey(%v) = %q, want %q", tt.ref, got, tt.catalogKey)
			}
		}
	}
}

func TestCatalogRecordRedactsAndRoundTrips(t *testing.T) {
	var cat osbwire.Catalog
	raw := `{"services":[{"name":"mongo","id":"svc-1","description":"d","bindable":true,
	  "dashboard_client":{"id":"dc","secret":"s3cr3t","redirect_uri":"https://x"},
	  "metadata":{"z":1,"a":{"y":1.50,"b":[1,2]}},
	  "plans":[{"id":"p1","name":"small","description":"s","free":false,
	    "schemas":{"service_instance":{"create":{"parameters":{"type":"object","properties":{"size":{"type":"integer","maximum":10}}}}}}}]}]}`
	if err := json.Unmarshal([]byte(raw), &cat); err != nil {
		t.Fatal(err)
	}
	rec, err := NewCatalogRecord(Ref{Kind: KindClusterServiceBroker, Name: "mini-mongo"}, cat, t0.Add(500*time.Millisecond), "spechash", 2)
	if err != nil {
		t.Fatal(err)
	}
	if cat.Services[0].DashboardClient.Secret != "s3cr3t" {
		t.Error("input catalog was modified")
	}
	b1, err := MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b1, []byte("s3cr3t")) {
		t.Fatalf("secret leaked into record:\n%s", b1)
	}
	back, err := UnmarshalCatalogRecord(pathOf(t, rec), b1)
	if err != nil {
		t.Fatalf("%v\n%s", err, b1)
	}
	b2, _ := MarshalRecord(back)
	if !bytes.Equal(b1, b2) {
		t.Errorf("not byte-identical:\n%s\n---\n%s", b1, b2)
	}
	if h, _ := CatalogHash(back.Catalog); h != rec.Hash {
		t.Errorf("hash after round trip %s != %s", h, rec.Hash)
	}
	if !rec.Equivalent(back) {
		t.Error("round-tripped record not Equivalent")
	}
}

func TestParameterChecksum(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{`{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, true},
		{`{"a":1.0}`, `{"a":1}`, false},
		{`{"a":12345678901234567890}`, `{"a":12345678901234567891}`, false},
		{`{}`, `null`, true},
		{`{"a":"<&>"}`, `{"a":"<&>"}`, true},
	}
	for _, tt := range tests {
		pa, pb := decodeParams(t, tt.a), decodeParams(t, tt.b)
		ca, err := ParameterChecksum(pa)
		if err != nil {
			t.Fatal(err)
		}
		cb, _ := ParameterChecksum(pb)
		if (ca == cb) != tt.same {
			t.Errorf("%s vs %s: same=%v, want %v", tt.a, tt.b, ca == cb, tt.same)
		}
	}
}

func decodeParams(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUnmarshalRecordStrict(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown field", "apiVersion: osbgit.dev/v1alpha1\nkind: StatusRecord\nref: {kind: ServiceInstance, name: x}\nphse: Ready\n", `r.yaml:4: phse: unknown field "phse" (did you mean "phase"?)`},
		{"wrong kind", "apiVersion: osbgit.dev/v1alpha1\nkind: Nope\n", "kind"},
		{"two docs", "apiVersion: osbgit.dev/v1alpha1\nkind: StatusRecord\n---\na: 1\n", "exactly one"},
		{"bad type", "apiVersion: osbgit.dev/v1alpha1\nkind: StatusRecord\nref: {kind: ServiceInstance, name: x}\nprovisioned: maybe\n", "r.yaml:4: provisioned: expected a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := UnmarshalRecord("r.yaml", []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestRefString(t *testing.T) {
	if got := (Ref{Kind: KindServiceInstance, Namespace: "ns", Name: "a"}).String(); got != "ServiceInstance ns/a" {
		t.Error(got)
	}
	if got := (Ref{Kind: KindClusterServiceBroker, Name: "b"}).String(); got != "ClusterServiceBroker b" {
		t.Error(got)
	}
}

// TestLargeCatalogRecord makes sure a big catalog (more YAML nodes than a
// manifest document may have) still round-trips as a record.
func TestLargeCatalogRecord(t *testing.T) {
	var cat osbwire.Catalog
	schema := json.RawMessage(`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer","minimum":1},"c":{"type":"array","items":{"type":"string"}}}}`)
	for i := 0; i < 300; i++ {
		svc := osbwire.Service{Name: fmt.Sprintf("svc-%d", i), ID: fmt.Sprintf("id-%d", i), Description: "d", Bindable: true,
			Metadata: json.RawMessage(`{"displayName":"x","tags":["a","b"]}`)}
		for j := 0; j < 20; j++ {
			svc.Plans = append(svc.Plans, osbwire.Plan{ID: fmt.Sprintf("p-%d-%d", i, j), Name: fmt.Sprintf("plan-%d", j), Description: "p",
				Schemas: &osbwire.Schemas{ServiceInstance: &osbwire.ServiceInstanceSchema{Create: &osbwire.InputParametersSchema{Parameters: schema}}}})
		}
		cat.Services = append(cat.Services, svc)
	}
	rec, err := NewCatalogRecord(Ref{Kind: KindClusterServiceBroker, Name: "big"}, cat, t0, "h", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalCatalogRecord(pathOf(t, rec), b)
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := MarshalRecord(back); !bytes.Equal(b, b2) {
		t.Error("large catalog record not byte-identical after a round trip")
	}
}
