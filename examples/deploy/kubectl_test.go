package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The tests below run kubectl when it is on PATH and skip otherwise. On
// Debian: apt-get install kubernetes-client (kubectl 1.20 in bookworm; newer
// kubectl builds work too).
//
// `kubectl apply --dry-run=client` needs an API server for discovery (to
// map kinds to resources) even though it sends no write. fakeAPIServer
// answers discovery for the kinds used here, 404 for every object (so apply
// plans a create), and fails the test on any other request: a dry run must
// never write.

func kubectlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH (Debian: apt-get install kubernetes-client)")
	}
	return p
}

type fakeResource struct {
	group, version, kind, resource string
	namespaced                     bool
}

var fakeResources = []fakeResource{
	{"", "v1", "Namespace", "namespaces", false},
	{"", "v1", "ServiceAccount", "serviceaccounts", true},
	{"", "v1", "Secret", "secrets", true},
	{"", "v1", "ConfigMap", "configmaps", true},
	{"", "v1", "Service", "services", true},
	{"", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true},
	{"apps", "v1", "Deployment", "deployments", true},
	{"batch", "v1", "CronJob", "cronjobs", true},
	{"batch", "v1", "Job", "jobs", true},
	{"policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true},
	{"rbac.authorization.k8s.io", "v1", "Role", "roles", true},
	{"rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true},
	{"rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false},
	{"rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false},
	{"coordination.k8s.io", "v1", "Lease", "leases", true},
}

type fakeAPIServer struct {
	*httptest.Server
	mu   sync.Mutex
	gets []string // object GETs (apply reads before it plans a create)
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{}
	groups := map[string][]fakeResource{} // "g/v" or "v1" -> resources
	var groupOrder []string
	for _, r := range fakeResources {
		gv := r.version
		if r.group != "" {
			gv = r.group + "/" + r.version
		}
		if _, ok := groups[gv]; !ok {
			groupOrder = append(groupOrder, gv)
		}
		groups[gv] = append(groups[gv], r)
	}
	write := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	resourceList := func(gv string) metav1.APIResourceList {
		l := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv}
		for _, r := range groups[gv] {
			l.APIResources = append(l.APIResources, metav1.APIResource{
				Name: r.resource, Namespaced: r.namespaced, Kind: r.kind,
				Verbs: metav1.Verbs{"get", "list", "watch", "create", "update", "patch", "delete"},
			})
		}
		return l
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("kubectl dry run sent %s %s", r.Method, r.URL.Path)
			write(w, http.StatusMethodNotAllowed, metav1.Status{Status: metav1.StatusFailure, Code: 405})
			return
		}
		p := strings.Trim(r.URL.Path, "/")
		parts := strings.Split(p, "/")
		switch {
		case p == "version":
			write(w, 200, map[string]string{"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"})
		case p == "api":
			write(w, 200, metav1.APIVersions{
				TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
				Versions: []string{"v1"},
				ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
					{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host},
				},
			})
		case p == "apis":
			l := metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
			for _, gv := range groupOrder {
				g, v, ok := strings.Cut(gv, "/")
				if !ok {
					continue
				}
				gvd := metav1.GroupVersionForDiscovery{GroupVersion: gv, Version: v}
				l.Groups = append(l.Groups, metav1.APIGroup{Name: g, Versions: []metav1.GroupVersionForDiscovery{gvd}, PreferredVersion: gvd})
			}
			write(w, 200, l)
		case p == "api/v1":
			write(w, 200, resourceList("v1"))
		case len(parts) == 3 && parts[0] == "apis" && groups[parts[1]+"/"+parts[2]] != nil:
			write(w, 200, resourceList(parts[1]+"/"+parts[2]))
		case strings.HasPrefix(p, "openapi/"):
			write(w, 404, metav1.Status{Status: metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound})
		default:
			f.mu.Lock()
			f.gets = append(f.gets, p)
			f.mu.Unlock()
			write(w, 404, metav1.Status{
				TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status:   metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound,
				Message: p + " not found",
			})
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// runKubectl runs kubectl against server (nil: no server configured) with a
// private HOME, so no user config or discovery cache is read or written.
func runKubectl(t *testing.T, kubectl string, server *fakeAPIServer, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	kubeconfig := filepath.Join(home, "kubeconfig")
	url := "http://127.0.0.1:1" // nothing listens: a call would fail fast
	if server != nil {
		url = server.URL
	}
	cfg := "apiVersion: v1\nkind: Config\n" +
		"clusters:\n- name: fake\n  cluster:\n    server: " + url + "\n" +
		"users:\n- name: fake\n  user:\n    token: fake-token-for-a-fake-server\n" +
		"contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n" +
		"current-context: fake\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG="+kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), &kubectlError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type kubectlError struct {
	err    error
	stderr string
}

func (e *kubectlError) Error() string { return e.err.Error() + ": " + e.stderr }

// appliedObjects is "kind/namespace/name" of every object the kustomization
// installs, from the manifests decoded in Go.
func appliedObjects(t *testing.T) []string {
	t.Helper()
	k := loadKustomization(t)
	var out []string
	for _, o := range loadObjects(t) {
		if !slices.Contains(k.Resources, o.File) {
			continue
		}
		m := o.Obj.(metav1.Object)
		out = append(out, strings.ToLower(o.GVK.Kind)+"/"+m.GetNamespace()+"/"+m.GetName())
	}
	sort.Strings(out)
	return out
}

// TestKubectlKustomize: kubectl's built-in kustomize builds the directory;
// its output decodes strictly, holds exactly the listed manifests' objects,
// and every container runs the image the kustomization pins.
func TestKubectlKustomize(t *testing.T) {
	kubectl := kubectlPath(t)
	out, err := runKubectl(t, kubectl, nil, "kustomize", ".")
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	objs, err := decodeAll("kubectl kustomize output", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		m := o.Obj.(metav1.Object)
		got = append(got, strings.ToLower(o.GVK.Kind)+"/"+m.GetNamespace()+"/"+m.GetName())
	}
	sort.Strings(got)
	if want := appliedObjects(t); !slices.Equal(got, want) {
		t.Errorf("kustomize built\n  %v\nwant\n  %v", got, want)
	}
	k := loadKustomization(t)
	wantImage := k.Images[0].Name + ":" + k.Images[0].NewTag
	for _, w := range workloads(t, objs) {
		for _, c := range allContainers(w.Spec) {
			if c.Image != wantImage {
				t.Errorf("%s/%s: image %q after kustomize, want %q", w, c.Name, c.Image, wantImage)
			}
		}
	}
}

// TestKubectlApplyDryRun: `kubectl apply --dry-run=client` accepts every
// file, both through the kustomization and one by one (the example Secret
// included), and sends no write.
func TestKubectlApplyDryRun(t *testing.T) {
	kubectl := kubectlPath(t)
	server := newFakeAPIServer(t)
	// --validate=false: client-side schema validation needs the cluster's
	// OpenAPI document, which a fake server cannot honestly provide; the
	// strict decoding in TestManifestsDecodeStrictly does that job.
	out, err := runKubectl(t, kubectl, server, "apply", "--dry-run=client", "--validate=false", "-o", "name", "-k", ".")
	if err != nil {
		t.Fatalf("kubectl apply -k: %v", err)
	}
	t.Logf("kubectl apply -k --dry-run=client:\n%s", out)
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		got = append(got, strings.Fields(l)[0])
	}
	for _, want := range appliedObjects(t) {
		kind, name := want[:strings.Index(want, "/")], want[strings.LastIndex(want, "/")+1:]
		if !slices.ContainsFunc(got, func(g string) bool {
			// kubectl prints kind[.group]/name
			gk, gn, _ := strings.Cut(g, "/")
			return gn == name && (gk == kind || strings.HasPrefix(gk, kind+"."))
		}) {
			t.Errorf("kubectl apply -k did not report %s; output:\n%s", want, out)
		}
	}
	server.mu.Lock()
	gets := len(server.gets)
	server.mu.Unlock()
	if gets == 0 {
		t.Errorf("kubectl read no object from the fake server: the dry run did not plan against it")
	}
	for _, f := range manifestFiles(t) {
		if _, err := runKubectl(t, kubectl, server, "apply", "--dry-run=client", "--validate=false", "-o", "name", "-f", f); err != nil {
			t.Errorf("kubectl apply -f %s: %v", f, err)
		}
	}
}
