package manifest

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// hostileInstance is a ServiceInstance apps/db whose spec ends with extra
// (indented under spec:).
func hostileInstance(extra string) string {
	return "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata:\n  name: db\n  namespace: apps\nspec:\n" +
		"  clusterServiceClassExternalName: postgres\n  clusterServicePlanExternalName: small\n" + extra
}

// hostileBinding is a ServiceBinding apps/db-bind of instance db whose
// spec ends with extra.
func hostileBinding(extra string) string {
	return "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceBinding\nmetadata:\n  name: db-bind\n  namespace: apps\nspec:\n  instanceRef:\n    name: db\n" + extra
}

// blockNesting is a parameters block nested depth mappings deep.
func blockNesting(depth int) string {
	var b strings.Builder
	b.WriteString("  parameters:\n")
	for i := 0; i < depth; i++ {
		b.WriteString(strings.Repeat(" ", 4+i))
		b.WriteString("a:\n")
	}
	b.WriteString(strings.Repeat(" ", 4+depth) + "x: 1\n")
	return b.String()
}

// laughs is a "billion laughs" alias bomb: levels of 10 aliases each.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("  parameters:\n    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		p := "*l" + strconv.Itoa(i-1)
		b.WriteString("    l" + strconv.Itoa(i) + ": &l" + strconv.Itoa(i) + " [" + strings.TrimSuffix(strings.Repeat(p+", ", 10), ", ") + "]\n")
	}
	return b.String()
}

// TestHostileManifests loads manifests built to hurt a parser or to
// escape the secret store: each must give a clear error naming the file,
// the line and the field (no panic, no hang, bounded memory), while the
// other manifests of the tree still load.
func TestHostileManifests(t *testing.T) {
	huge := "  parameters:\n    blob: \"" + strings.Repeat("x", 8<<20) + "\"\n"
	cases := []struct {
		name string
		file string
		data string
		// want are substrings of one error diagnostic's String()
		// ("file:line: field: message").
		want []string
	}{
		{name: "8 MiB parameters", file: "apps/huge.yaml", data: hostileInstance(huge),
			want: []string{"apps/huge.yaml", "larger than", "byte limit"}},
		// Block style needs one more space per level: 2,000 levels are
		// ~2 MB (10,000 would trip the size limit first).
		{name: "parameters nested 2,000 deep (block)", file: "apps/deep.yaml", data: hostileInstance(blockNesting(2000)),
			want: []string{"apps/deep.yaml:", "spec.parameters", "nested more than"}},
		{name: "parameters nested 10,000 deep (flow)", file: "apps/deep.yaml",
			data: hostileInstance("  parameters: {a: " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}\n"),
			want: []string{"apps/deep.yaml:"}},
		{name: "parameters nested 10,000 deep (mixed)", file: "apps/deep.yaml",
			data: hostileInstance("  parameters:\n    a: " + strings.Repeat("{a: [", 5000) + strings.Repeat("]}", 5000) + "\n"),
			want: []string{"apps/deep.yaml:"}},
		{name: "non-UTF-8 in a value", file: "apps/bin.yaml", data: hostileInstance("  parameters:\n    name: \"caf\xe9\"\n"),
			want: []string{"apps/bin.yaml:", "UTF-8"}},
		{name: "non-UTF-8 in a key", file: "apps/bin.yaml", data: hostileInstance("  parameters:\n    \xff\xfe: 1\n"),
			want: []string{"apps/bin.yaml:", "UTF-8"}},
		{name: "billion laughs", file: "apps/bomb.yaml", data: hostileInstance(laughs(9)),
			want: []string{"apps/bomb.yaml:", "too large"}},
		{name: "secretName traversal", file: "apps/bind.yaml", data: hostileBinding("  secretName: ../../etc\n"),
			want: []string{"apps/bind.yaml:", "spec.secretName"}},
		{name: "secretName absolute", file: "apps/bind.yaml", data: hostileBinding("  secretName: /etc/passwd\n"),
			want: []string{"apps/bind.yaml:", "spec.secretName"}},
		{name: "renameKey traversal", file: "apps/bind.yaml",
			data: hostileBinding("  secretTransforms:\n  - renameKey:\n      from: uri\n      to: ../x\n"),
			want: []string{"apps/bind.yaml:", "spec.secretTransforms[0].renameKey.to"}},
		{name: "addKey dot-dot", file: "apps/bind.yaml",
			data: hostileBinding("  secretTransforms:\n  - addKey:\n      key: ..\n      stringValue: x\n"),
			want: []string{"apps/bind.yaml:", "spec.secretTransforms[0].addKey"}},
		{name: "addKeysFrom traversal", file: "apps/bind.yaml",
			data: hostileBinding("  secretTransforms:\n  - addKeysFrom:\n      secretRef:\n        name: ../../root\n"),
			want: []string{"apps/bind.yaml:", "spec.secretTransforms[0].addKeysFrom.secretRef.name"}},
		{name: "parametersFrom Secret traversal", file: "apps/db.yaml",
			data: hostileInstance("  parametersFrom:\n  - secretKeyRef:\n      name: ../x\n      key: params\n"),
			want: []string{"apps/db.yaml:", "spec.parametersFrom[0].secretKeyRef.name"}},
		{name: "parametersFrom key traversal", file: "apps/db.yaml",
			data: hostileInstance("  parametersFrom:\n  - secretKeyRef:\n      name: creds\n      key: ../../etc/shadow\n"),
			want: []string{"apps/db.yaml:", "spec.parametersFrom[0].secretKeyRef.key"}},
		{name: "namespace traversal", file: "apps/db.yaml",
			data: strings.Replace(hostileInstance(""), "namespace: apps", "namespace: ../..", 1),
			want: []string{"apps/db.yaml:", "metadata.namespace"}},
		{name: "broker auth Secret traversal", file: "brokers/b.yaml",
			data: "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ClusterServiceBroker\nmetadata:\n  name: evil\nspec:\n  url: https://b.example.com\n  authInfo:\n    basic:\n      secretRef:\n        namespace: ../..\n        name: ../etc\n",
			want: []string{"brokers/b.yaml:", "spec.authInfo.basic.secretRef"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				tc.file:          {Data: []byte(tc.data)},
				"apps/good.yaml": {Data: []byte(strings.Replace(hostileInstance(""), "name: db\n", "name: good\n", 1))},
			}
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			set, diags := Load(fsys, "")
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("loading took %v", d)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<30 {
				t.Errorf("loading allocated %d MiB", grew>>20)
			}
			var found bool
			var all []string
			for _, d := range diags {
				s := d.String()
				all = append(all, s)
				if strings.Contains(d.Message, "internal error") {
					t.Fatalf("decoder panicked: %s", s)
				}
				if d.Severity != SeverityError {
					continue
				}
				ok := true
				for _, w := range tc.want {
					ok = ok && strings.Contains(s, w)
				}
				found = found || ok
			}
			if !found {
				t.Fatalf("no error diagnostic with %q among:\n%s", tc.want, strings.Join(all, "\n"))
			}
			if set.Instance("apps", "good") == nil {
				t.Errorf("the good manifest next to the hostile one did not load")
			}
			for _, s := range all {
				if len(s) > 4096 {
					t.Errorf("diagnostic of %d bytes (the hostile input echoed back?): %.200s…", len(s), s)
				}
			}
		})
	}
}
