package osbwire

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestContextJSON checks that a context encodes as one flat object: the
// known fields (platform always, the others when set) and Extra's, in
// key order, whichever way MarshalJSON builds it; and that it decodes back.
func TestContextJSON(t *testing.T) {
	for _, c := range []Context{
		{},
		{Platform: PlatformKubernetes},
		{Platform: PlatformKubernetes, Namespace: "apps"},
		{Platform: PlatformKubernetes, Namespace: "apps", ClusterID: "c-1", InstanceName: "db<&>"},
		{Platform: PlatformKubernetes, InstanceName: "db"},
		{Platform: PlatformKubernetes, Namespace: "apps", Extra: map[string]any{"instance_annotations": map[string]any{"a": "b"}}},
		{Platform: "cloudfoundry", ClusterID: "c-1", Extra: map[string]any{"organization_guid": "org", "space_guid": "space"}},
	} {
		got, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		// The long way: one map of every field.
		m := map[string]any{"platform": c.Platform}
		for k, v := range c.Extra {
			m[k] = v
		}
		for k, v := range map[string]string{"namespace": c.Namespace, "clusterid": c.ClusterID, "instance_name": c.InstanceName} {
			if v != "" {
				m[k] = v
			}
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%+v encodes as\n%s\nwant\n%s", c, got, want)
		}
		var back Context
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c, back, cmp.Comparer(func(a, b map[string]any) bool {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			return len(a) == len(b) && string(ja) == string(jb)
		})); diff != "" {
			t.Errorf("%+v decodes back with diff (-want +got):\n%s", c, diff)
		}
	}
}
