package manifest

import "testing"

func TestEmptyParameterChecksum(t *testing.T) {
	for _, params := range []map[string]any{nil, {}} {
		if sum, err := hashJSON(map[string]any{}); err != nil || sum != emptyParameterChecksum {
			t.Fatalf("hashJSON({}) = %q, %v; want %q", sum, err, emptyParameterChecksum)
		}
		if sum, err := ParameterChecksum(params); err != nil || sum != emptyParameterChecksum {
			t.Fatalf("ParameterChecksum(%v) = %q, %v", params, sum, err)
		}
	}
}

// TestSpecHashKept checks that the spec hash an object keeps (taken when
// decoded, again when Assemble defaults a copy) is the hash of the object
// as assembled.
func TestSpecHashKept(t *testing.T) {
	src := "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata: {name: db}\nspec: {clusterServiceClassExternalName: c, clusterServicePlanExternalName: p, parameters: {size: 1}}\n" +
		"---\napiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceBinding\nmetadata: {name: b, namespace: team}\nspec: {instanceRef: {name: db}}\n" +
		"---\napiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceBinding\nmetadata: {name: c, namespace: team}\nspec: {instanceRef: {name: db}, secretName: s}\n" +
		"---\napiVersion: servicecatalog.k8s.io/v1beta1\nkind: ClusterServiceBroker\nmetadata: {name: br}\nspec: {url: 'https://x'}\n"
	objs, diags := DecodeFile("f.yaml", []byte(src))
	if diags.HasErrors() || len(objs) != 4 {
		t.Fatalf("decode: %v", diags)
	}
	set, _ := Assemble(objs, DefaultConfig())
	for _, o := range set.Objects() {
		kept, err := SpecHash(o)
		fresh, err2 := specHash(o)
		if err != nil || err2 != nil || kept == "" || kept != fresh {
			t.Errorf("%s: kept %q (%v), computed %q (%v)", o.GetRef(), kept, err, fresh, err2)
		}
	}
}
