// Package deploy_test validates the in-cluster deployment artefacts in this
// directory (Kubernetes manifests, kustomization) and the repository's
// Dockerfile. It has no non-test code: examples/deploy is YAML.
package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// repoRoot is the module root, two levels up from examples/deploy.
const repoRoot = "../.."

// strictDeserializer decodes YAML or JSON into client-go's typed objects and
// fails on unknown or duplicate fields, as server-side field validation
// (kubectl --validate=strict) would.
var strictDeserializer = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// object is one decoded document of a manifest file.
type object struct {
	File string // base name, e.g. cronjob.yaml
	Doc  int    // 1-based document index within File
	GVK  schema.GroupVersionKind
	Obj  runtime.Object
	Raw  []byte
}

func (o object) String() string {
	return fmt.Sprintf("%s#%d (%s)", o.File, o.Doc, o.GVK.Kind)
}

// splitDocuments returns the non-empty YAML documents of r (comment-only
// documents are dropped).
func splitDocuments(r io.Reader) ([][]byte, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		d, err := yr.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(d)
		if err != nil {
			return nil, err
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || string(t) == "null" {
			continue
		}
		docs = append(docs, d)
	}
}

// decodeStrict decodes one document into its typed Kubernetes object.
func decodeStrict(doc []byte) (runtime.Object, *schema.GroupVersionKind, error) {
	obj, gvk, err := strictDeserializer.Decode(doc, nil, nil)
	if err != nil {
		return nil, gvk, err
	}
	return obj, gvk, nil
}

// decodeAll decodes every document of data, naming file in errors.
func decodeAll(file string, data []byte) ([]object, error) {
	docs, err := splitDocuments(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []object
	for i, d := range docs {
		obj, gvk, err := decodeStrict(d)
		if err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", file, i+1, err)
		}
		out = append(out, object{File: file, Doc: i + 1, GVK: *gvk, Obj: obj, Raw: d})
	}
	return out, nil
}

// manifestFiles lists the Kubernetes manifests here: every *.yaml/*.yml but
// kustomization.yaml.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	var out []string
	for _, f := range files {
		if f == "kustomization.yaml" || f == "kustomization.yml" {
			continue
		}
		out = append(out, f)
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatal("no manifests found in examples/deploy")
	}
	return out
}

// loadObjects decodes every manifest file here, failing the test on the
// first error.
func loadObjects(t *testing.T) []object {
	t.Helper()
	var all []object
	for _, f := range manifestFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(f, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s: no Kubernetes object in it", f)
		}
		all = append(all, objs...)
	}
	return all
}

// kustomization is the subset of kustomize's Kustomization this directory
// uses; decoding it strictly catches a field we did not mean.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images"`
}

func loadKustomization(t *testing.T) kustomization {
	t.Helper()
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	return k
}

func kindIs(o object, kinds ...string) bool {
	for _, k := range kinds {
		if strings.EqualFold(o.GVK.Kind, k) {
			return true
		}
	}
	return false
}
