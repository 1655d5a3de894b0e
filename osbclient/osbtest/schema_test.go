package osbtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

func TestParameterSchemas(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		name   string
		do     func(h *harness) response
		status int
		want   string
	}{
		{"provision valid", func(h *harness) response {
			return h.provision("i1", PlanDBSmall, map[string]any{"size": 3, "region": "eu", "extra": true})
		}, http.StatusCreated, ""},
		{"provision wrong type", func(h *harness) response {
			return h.provision("i2", PlanDBSmall, map[string]any{"size": "big"})
		}, http.StatusBadRequest, "parameters do not match the service_instance create schema of plan osbtest-db-small: at /size: got string, want integer"},
		{"provision two violations", func(h *harness) response {
			return h.provision("i2", PlanDBSmall, map[string]any{"size": 1.5, "region": 7})
		}, http.StatusBadRequest, "at /region: got number, want string; at /size: got number, want integer"},
		{"update valid", func(h *harness) response {
			return h.do(http.MethodPatch, instPath("i1"), map[string]any{"service_id": ServiceDB, "parameters": map[string]any{"size": 4}})
		}, http.StatusOK, ""},
		{"update wrong type", func(h *harness) response {
			return h.do(http.MethodPatch, instPath("i1"), map[string]any{"service_id": ServiceDB, "parameters": map[string]any{"size": "x"}})
		}, http.StatusBadRequest, "service_instance update schema"},
		{"bind wrong type", func(h *harness) response {
			return h.do(http.MethodPut, bindPath("i1", "b1"), bindBody(ServiceDB, PlanDBSmall, map[string]any{"role": []any{"a"}}))
		}, http.StatusBadRequest, "service_binding create schema of plan osbtest-db-small: at /role: got array, want string"},
		{"bind valid", func(h *harness) response {
			return h.do(http.MethodPut, bindPath("i1", "b1"), bindBody(ServiceDB, PlanDBSmall, map[string]any{"role": "ro"}))
		}, http.StatusCreated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, tt.do(h.with(t)), tt.status, tt.want)
		})
	}
	if _, ok := h.b.Instance("i2"); ok {
		t.Fatal("invalid parameters provisioned an instance")
	}
	if in, _ := h.b.Instance("i1"); in.Parameters["size"] != 4.0 {
		t.Fatalf("parameters %v", in.Parameters)
	}
}

func TestParameterSchemaRequiredAndBroken(t *testing.T) {
	c := osbwire.Catalog{Services: []osbwire.Service{{
		ID: "s", Name: "s", Description: "d", Bindable: true,
		Plans: []osbwire.Plan{
			{ID: "req", Name: "req", Description: "d", Schemas: &osbwire.Schemas{ServiceInstance: &osbwire.ServiceInstanceSchema{
				Create: &osbwire.InputParametersSchema{Parameters: json.RawMessage(`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","required":["name"],"additionalProperties":false,"properties":{"name":{"type":"string","pattern":"^[a-z]+$"}}}`)},
			}}},
			{ID: "broken", Name: "broken", Description: "d", Schemas: &osbwire.Schemas{ServiceInstance: &osbwire.ServiceInstanceSchema{
				Create: &osbwire.InputParametersSchema{Parameters: json.RawMessage(`{"type": 5}`)},
			}}},
			{ID: "extref", Name: "extref", Description: "d", Schemas: &osbwire.Schemas{ServiceInstance: &osbwire.ServiceInstanceSchema{
				Create: &osbwire.InputParametersSchema{Parameters: json.RawMessage(`{"$ref": "http://example.invalid/s.json"}`)},
			}}},
		},
	}}}
	h := newHarness(t, Config{Catalog: &c})
	body := func(plan string, params map[string]any) map[string]any {
		m := provisionBody("s", plan, params)
		return m
	}
	expect(t, h.do(http.MethodPut, instPath("a"), body("req", nil)), http.StatusBadRequest, "missing property 'name'")
	expect(t, h.do(http.MethodPut, instPath("a"), body("req", map[string]any{"name": "x", "other": 1})), http.StatusBadRequest, "additional")
	r := h.do(http.MethodPut, instPath("a"), body("req", map[string]any{"name": "S3cret-Value"}))
	expect(t, r, http.StatusBadRequest, "at /name: <redacted> does not match pattern")
	if strings.Contains(string(r.Body), "S3cret") {
		t.Fatalf("parameter value in the description: %s", r.Body)
	}
	expect(t, h.do(http.MethodPut, instPath("a"), body("req", map[string]any{"name": "x"})), http.StatusCreated, "")
	expect(t, h.do(http.MethodPut, instPath("b"), body("broken", nil)), http.StatusInternalServerError, "does not compile")
	expect(t, h.do(http.MethodPut, instPath("b"), body("extref", nil)), http.StatusInternalServerError, "not allowed")

	h2 := newHarness(t, Config{Catalog: &c, IgnoreParameterSchemas: true})
	expect(t, h2.do(http.MethodPut, instPath("a"), body("req", nil)), http.StatusCreated, "")
	expect(t, h2.do(http.MethodPut, instPath("b"), body("broken", nil)), http.StatusCreated, "")
}

func TestUnencodableCatalogPanics(t *testing.T) {
	c := osbwire.Catalog{Services: []osbwire.Service{{ID: "s", Metadata: json.RawMessage(`{`)}}}
	defer func() {
		if recover() == nil {
			t.Fatal("SetCatalog accepted a catalog that cannot be served")
		}
	}()
	New(Config{}).SetCatalog(c)
}
