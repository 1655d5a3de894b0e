package deploy_test

import (
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
)

// The sample manifests repo in examples/repo (`make demo` turns it into a
// local bare repo) must load with no diagnostic at all, use only the demo
// catalog of examples/broker, and show the features the README points at.

const sampleRepo = "../repo"

// demoCatalog is the catalog examples/broker serves, as the sample repo
// needs it: service name -> plan name -> bindable.
var demoCatalog = map[string]map[string]bool{
	"postgres": {"small": true, "large": true},
	"redis":    {"standard": true},
	"queue":    {"basic": false},
}

// demoSecrets are the Secrets the demo must create before a sync (with
// --secret-store dir:PATH: one file per key under PATH/<namespace>/<name>/),
// namespace/name -> keys.
var demoSecrets = map[string][]string{
	"osbgit-system/demo-broker-auth": {"password", "username"},
	"apps/analytics-db-params":       {"parameters"},
}

func loadSampleRepo(t *testing.T) *manifest.Set {
	t.Helper()
	set, diags := manifest.Load(os.DirFS(sampleRepo), "")
	for _, d := range diags {
		t.Errorf("examples/repo: %s", d)
	}
	if set == nil {
		t.Fatal("examples/repo: no set loaded")
	}
	return set
}

func TestSampleRepoLoads(t *testing.T) {
	set := loadSampleRepo(t)
	c := set.Config
	if c.ClusterID != "demo" || !c.Prune || c.MaxDeletions != 10 {
		t.Errorf("osbgit.yaml: clusterID %q prune %v maxDeletions %d, want demo, true, 10", c.ClusterID, c.Prune, c.MaxDeletions)
	}
	if len(set.ClusterServiceBrokers) != 1 || len(set.ServiceBrokers) != 0 {
		t.Fatalf("%d cluster and %d namespaced brokers, want one ClusterServiceBroker", len(set.ClusterServiceBrokers), len(set.ServiceBrokers))
	}
	b := set.ClusterServiceBrokers[0]
	if b.Name != "demo-broker" || b.Spec.URL != "http://127.0.0.1:8085" {
		t.Errorf("broker %s at %s, want demo-broker at http://127.0.0.1:8085 (make demo rewrites the URL)", b.Name, b.Spec.URL)
	}
	if b.Spec.AuthInfo == nil || b.Spec.AuthInfo.Basic == nil || b.Spec.AuthInfo.Basic.SecretRef == nil ||
		*b.Spec.AuthInfo.Basic.SecretRef != (manifest.ObjectReference{Namespace: "osbgit-system", Name: "demo-broker-auth"}) {
		t.Errorf("broker authInfo %+v, want basic secretRef osbgit-system/demo-broker-auth", b.Spec.AuthInfo)
	}
}

// TestSampleRepoUsesDemoCatalog: every instance names a class and plan of
// the demo catalog in namespace apps, and only bindable plans are bound.
func TestSampleRepoUsesDemoCatalog(t *testing.T) {
	set := loadSampleRepo(t)
	used := map[string]bool{}
	for _, i := range set.Instances {
		p := i.Spec.PlanReference
		class, plan := p.ClusterServiceClassExternalName, p.ClusterServicePlanExternalName
		bindable, ok := demoCatalog[class][plan]
		if !ok {
			t.Errorf("instance %s: class/plan %q/%q not in the demo catalog", i.Name, class, plan)
		}
		used[class+"/"+plan] = true
		if i.Namespace != "apps" {
			t.Errorf("instance %s in namespace %q, want apps", i.Name, i.Namespace)
		}
		if bs := set.BindingsOf(i.GetRef()); len(bs) > 0 && !bindable {
			t.Errorf("instance %s (plan %s/%s, not bindable) has bindings", i.Name, class, plan)
		}
	}
	for class, plans := range demoCatalog {
		for plan := range plans {
			if !used[class+"/"+plan] {
				t.Errorf("no instance uses %s/%s", class, plan)
			}
		}
	}
	for _, b := range set.Bindings {
		if set.Instance(b.Namespace, b.Spec.InstanceRef.Name) == nil {
			t.Errorf("binding %s: instance %s not in the repo", b.Name, b.Spec.InstanceRef.Name)
		}
	}
}

// TestSampleRepoShowsFeatures: parameters, parametersFrom, secretTransforms
// (renameKey and addKey), deletion-policy Retain and an unrelated kind.
func TestSampleRepoShowsFeatures(t *testing.T) {
	set := loadSampleRepo(t)
	var params, paramsFrom, retain, rename, addKey bool
	secrets := map[string][]string{}
	addSecret := func(ns, name, key string) {
		k := ns + "/" + name
		if !slices.Contains(secrets[k], key) {
			secrets[k] = append(secrets[k], key)
			sort.Strings(secrets[k])
		}
	}
	for _, b := range set.ClusterServiceBrokers {
		if ai := b.Spec.AuthInfo; ai != nil && ai.Basic != nil && ai.Basic.SecretRef != nil {
			r := ai.Basic.SecretRef
			addSecret(r.Namespace, r.Name, manifest.BasicAuthUsernameKey)
			addSecret(r.Namespace, r.Name, manifest.BasicAuthPasswordKey)
		}
	}
	for _, i := range set.Instances {
		if len(i.Spec.Parameters) > 0 {
			params = true
		}
		for _, pf := range i.Spec.ParametersFrom {
			paramsFrom = true
			addSecret(i.Namespace, pf.SecretKeyRef.Name, pf.SecretKeyRef.Key)
		}
		if manifest.DeletionPolicy(i) == manifest.DeletionPolicyRetain {
			retain = true
		}
	}
	for _, b := range set.Bindings {
		for _, pf := range b.Spec.ParametersFrom {
			addSecret(b.Namespace, pf.SecretKeyRef.Name, pf.SecretKeyRef.Key)
		}
		for _, tr := range b.Spec.SecretTransforms {
			rename = rename || tr.RenameKey != nil
			addKey = addKey || (tr.AddKey != nil && tr.AddKey.StringValue != nil)
		}
	}
	for what, ok := range map[string]bool{"parameters": params, "parametersFrom": paramsFrom,
		"deletion-policy Retain": retain, "secretTransforms renameKey": rename, "secretTransforms addKey stringValue": addKey} {
		if !ok {
			t.Errorf("the sample repo shows no %s", what)
		}
	}
	if len(secrets) != len(demoSecrets) {
		t.Errorf("the repo references Secrets %v, want %v (the demo creates those)", secrets, demoSecrets)
	}
	for k, keys := range demoSecrets {
		if !slices.Equal(secrets[k], keys) {
			t.Errorf("Secret %s: repo uses keys %v, want %v", k, secrets[k], keys)
		}
	}
}

// TestSampleRepoOtherKindsAreKubernetes: the documents osbgit ignores are
// real Kubernetes objects (strictly decoded), and there is at least one.
func TestSampleRepoOtherKindsAreKubernetes(t *testing.T) {
	others := 0
	err := fs.WalkDir(os.DirFS(sampleRepo), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return err
		}
		data, err := fs.ReadFile(os.DirFS(sampleRepo), p)
		if err != nil {
			return err
		}
		docs, err := splitDocuments(strings.NewReader(string(data)))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		for i, d := range docs {
			s := string(d)
			if strings.Contains(s, "apiVersion: servicecatalog.k8s.io/") || strings.Contains(s, "apiVersion: osbgit.dev/") {
				continue
			}
			others++
			if _, _, err := decodeStrict(d); err != nil {
				t.Errorf("%s document %d: %v", p, i+1, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if others == 0 {
		t.Error("the sample repo has no document of another kind (to show they are ignored)")
	}
}
