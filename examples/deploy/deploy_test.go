package deploy_test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	systemNamespace  = "osbgit-system"
	serviceAccount   = "osbgit"
	cacheDir         = "/var/cache/osbgit"
	gitSecret        = "git-credentials"
	stateConfigMap   = "osbgit-state"
	placeholderValue = "REPLACE_ME"
)

// clusterScoped are the cluster-scoped kinds a manifest here could hold.
var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"PersistentVolume": true, "StorageClass": true, "PriorityClass": true,
}

// workload is a pod template found in a manifest.
type workload struct {
	object
	Namespace string
	Labels    map[string]string
	Spec      *corev1.PodSpec
}

func workloads(t *testing.T, objs []object) []workload {
	t.Helper()
	var out []workload
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *batchv1.CronJob:
			tpl := &v.Spec.JobTemplate.Spec.Template
			out = append(out, workload{o, v.Namespace, tpl.Labels, &tpl.Spec})
		case *batchv1.Job:
			out = append(out, workload{o, v.Namespace, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *appsv1.Deployment:
			out = append(out, workload{o, v.Namespace, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			out = append(out, workload{o, v.Namespace, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *appsv1.DaemonSet:
			out = append(out, workload{o, v.Namespace, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *corev1.Pod:
			out = append(out, workload{o, v.Namespace, v.Labels, &v.Spec})
		}
	}
	if len(out) == 0 {
		t.Fatal("no workload (CronJob, Deployment, ...) found")
	}
	return out
}

func find[T runtime.Object](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func allContainers(s *corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(s.InitContainers), s.Containers...)
}

// TestManifestsDecodeStrictly: every document of every YAML file here is a
// Kubernetes object client-go knows, with no unknown or duplicate field.
func TestManifestsDecodeStrictly(t *testing.T) {
	objs := loadObjects(t)
	seen := map[string]string{}
	for _, o := range objs {
		m := o.Obj.(interface {
			GetName() string
			GetNamespace() string
		})
		if m.GetName() == "" {
			t.Errorf("%s: no metadata.name", o)
		}
		key := o.GVK.Kind + "/" + m.GetNamespace() + "/" + m.GetName()
		if prev, dup := seen[key]; dup {
			t.Errorf("%s: %s also defined in %s", o, key, prev)
		}
		seen[key] = o.String()
		// Everything osbgit owns lives in osbgit-system; only the target
		// namespaces' RBAC (and the namespaces themselves) live elsewhere.
		ns := m.GetNamespace()
		switch {
		case clusterScoped[o.GVK.Kind]:
		case ns == "":
			t.Errorf("%s: namespaced object without metadata.namespace (kubectl would use the current context's)", o)
		case ns != systemNamespace && !kindIs(o, "Role", "RoleBinding"):
			t.Errorf("%s: in namespace %q, want %s", o, ns, systemNamespace)
		}
	}
}

// TestStrictDecoderRejectsUnknownFields proves the decoder above is strict:
// a misspelt field must fail, not be dropped silently.
func TestStrictDecoderRejectsUnknownFields(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\nspec:\n  schedule: '* * * * *'\n  concurencyPolicy: Forbid\n",
		"duplicate":     "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nmetadata: {name: y}\n",
		"unknown kind":  "apiVersion: v1\nkind: Bogus\nmetadata: {name: x}\n",
	} {
		if _, _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// TestKustomizationListsEveryManifest: kubectl apply -k installs exactly the
// manifests here, minus the *.example.yaml files (placeholders the user
// replaces: applying them would overwrite real Secrets).
func TestKustomizationListsEveryManifest(t *testing.T) {
	k := loadKustomization(t)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: apiVersion/kind %q/%q", k.APIVersion, k.Kind)
	}
	listed := map[string]bool{}
	for _, r := range k.Resources {
		if listed[r] {
			t.Errorf("kustomization.yaml lists %s twice", r)
		}
		listed[r] = true
		if _, err := os.Stat(r); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
		if strings.Contains(r, ".example.") {
			t.Errorf("kustomization.yaml lists %s: example files hold placeholders and must not be applied", r)
		}
	}
	for _, f := range manifestFiles(t) {
		if !listed[f] && !strings.Contains(f, ".example.") {
			t.Errorf("%s is not listed in kustomization.yaml", f)
		}
	}
}

// TestWorkloadSecurity: every pod runs as a non-root user, with a read-only
// root filesystem, no privilege escalation, no capabilities, the runtime's
// seccomp profile, resource requests and limits, osbgit's ServiceAccount, and
// writable volumes exactly where osbgit writes (cache dir, /tmp).
func TestWorkloadSecurity(t *testing.T) {
	for _, w := range workloads(t, loadObjects(t)) {
		s := w.Spec
		if s.ServiceAccountName != serviceAccount {
			t.Errorf("%s: serviceAccountName %q, want %q", w, s.ServiceAccountName, serviceAccount)
		}
		if s.AutomountServiceAccountToken != nil && !*s.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken false: --secret-store kube and --leader-elect need the token", w)
		}
		if s.HostNetwork || s.HostPID || s.HostIPC {
			t.Errorf("%s: uses a host namespace", w)
		}
		psc := s.SecurityContext
		if psc == nil {
			t.Errorf("%s: no pod securityContext", w)
			psc = &corev1.PodSecurityContext{}
		}
		if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod seccompProfile is not RuntimeDefault", w)
		}
		if psc.RunAsUser != nil && *psc.RunAsUser == 0 {
			t.Errorf("%s: pod runAsUser 0", w)
		}
		for _, v := range s.Volumes {
			if v.HostPath != nil {
				t.Errorf("%s: hostPath volume %q", w, v.Name)
			}
		}
		if len(s.Containers) == 0 {
			t.Errorf("%s: no containers", w)
		}
		for _, c := range allContainers(s) {
			where := w.String() + " container " + c.Name
			csc := c.SecurityContext
			if csc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			nonRoot := (csc.RunAsNonRoot != nil && *csc.RunAsNonRoot) ||
				(csc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
			if !nonRoot {
				t.Errorf("%s: runAsNonRoot is not true", where)
			}
			if csc.RunAsUser != nil && *csc.RunAsUser == 0 {
				t.Errorf("%s: runAsUser 0", where)
			}
			if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			}
			if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			if csc.Privileged != nil && *csc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			if csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s: capabilities.drop is not [ALL]", where)
			} else if len(csc.Capabilities.Add) > 0 {
				t.Errorf("%s: adds capabilities %v", where, csc.Capabilities.Add)
			}
			if csc.SeccompProfile != nil && csc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: container seccompProfile overrides RuntimeDefault", where)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
					t.Errorf("%s: no %s request", where, r)
				}
			}
			if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.Cmp(resource.MustParse("64Mi")) < 0 {
				t.Errorf("%s: memory limit missing or below 64Mi", where)
			}
			for r, lim := range c.Resources.Limits {
				if req, ok := c.Resources.Requests[r]; ok && req.Cmp(lim) > 0 {
					t.Errorf("%s: %s request %s above limit %s", where, r, req.String(), lim.String())
				}
			}
			// osbgit writes its cache and temporary files; with a read-only
			// root both must be volumes.
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m.Name
			}
			for _, dir := range []string{cacheDir, "/tmp"} {
				if _, ok := mounts[dir]; !ok {
					t.Errorf("%s: nothing mounted at %s (the root filesystem is read-only)", where, dir)
				}
			}
		}
	}
}

// TestWorkloadArgs: the args are osbgit commands and flags that exist,
// OSBGIT_* variables are twins of real flags, every file a flag names is
// inside a mounted volume, and --cache-dir is the cache volume.
func TestWorkloadArgs(t *testing.T) {
	objs := loadObjects(t)
	configEnv := map[string]map[string]string{} // ConfigMap name -> data
	for _, cm := range find[*corev1.ConfigMap](objs) {
		configEnv[cm.Name] = cm.Data
	}
	for _, w := range workloads(t, objs) {
		for _, c := range allContainers(w.Spec) {
			where := w.String() + " container " + c.Name
			if len(c.Command) > 0 {
				t.Errorf("%s: command %v overrides the image's ENTRYPOINT /osbgit; use args", where, c.Command)
			}
			p, err := parseArgs(c.Args)
			if err != nil {
				t.Errorf("%s: args %q: %v", where, c.Args, err)
				continue
			}
			// Environment: explicit env, then every envFrom ConfigMap.
			env := map[string]bool{}
			for _, e := range c.Env {
				env[e.Name] = true
				if e.Value != "" && strings.Contains(strings.ToLower(e.Name), "password") {
					t.Errorf("%s: env %s has a literal value; take it from a Secret", where, e.Name)
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef == nil {
					continue
				}
				data, ok := configEnv[ef.ConfigMapRef.Name]
				if !ok {
					t.Errorf("%s: envFrom ConfigMap %q is not defined here", where, ef.ConfigMapRef.Name)
				}
				for k := range data {
					env[ef.Prefix+k] = true
				}
			}
			for name := range env {
				if strings.HasPrefix(name, "OSBGIT_") && !knownEnv(p.Command, name) {
					t.Errorf("%s: %s is not the env twin of any `osbgit %s` flag", where, name, p.Command)
				}
			}
			if p.Flags["cache-dir"] != cacheDir {
				t.Errorf("%s: --cache-dir %q, want %s (the cache volume)", where, p.Flags["cache-dir"], cacheDir)
			}
			has := func(flag string) bool {
				_, ok := p.Flags[flag]
				return ok || env[envTwin(flag)]
			}
			if !has("repo") {
				t.Errorf("%s: no --repo / OSBGIT_REPO: the default %q makes no sense in a pod", where, ".")
			}
			if p.Command != "version" && p.Command != "validate" {
				if !has("secret-store") {
					t.Errorf("%s: no --secret-store / OSBGIT_SECRET_STORE", where)
				}
			}
			if !has("git-username") || !has("git-password-file") {
				t.Errorf("%s: Git credentials not configured (want OSBGIT_GIT_USERNAME and --git-password-file)", where)
			}
			// Files named by flags must come from a mounted volume.
			for flag, v := range p.Flags {
				if !strings.HasSuffix(flag, "-file") && flag != "git-ssh-key" && flag != "git-known-hosts" {
					continue
				}
				if !underMount(c.VolumeMounts, v) {
					t.Errorf("%s: --%s=%s is not inside a volume mount", where, flag, v)
				}
			}
		}
	}
}

func underMount(mounts []corev1.VolumeMount, file string) bool {
	for _, m := range mounts {
		if strings.HasPrefix(path.Clean(file), path.Clean(m.MountPath)+"/") {
			return true
		}
	}
	return false
}

// TestGitCredentialsWiring: the workloads take Git credentials from the
// git-credentials Secret (files through a secret volume, the username through
// a secretKeyRef), and use keys the example Secret defines.
func TestGitCredentialsWiring(t *testing.T) {
	objs := loadObjects(t)
	var example *corev1.Secret
	for _, s := range find[*corev1.Secret](objs) {
		if s.Name == gitSecret {
			example = s
		}
	}
	if example == nil {
		t.Fatalf("no example Secret %s", gitSecret)
	}
	keys := map[string]bool{}
	for k := range example.StringData {
		keys[k] = true
	}
	for _, w := range workloads(t, objs) {
		for _, c := range allContainers(w.Spec) {
			where := w.String() + " container " + c.Name
			p, err := parseArgs(c.Args)
			if err != nil {
				continue // reported by TestWorkloadArgs
			}
			pw := p.Flags["git-password-file"]
			var vol *corev1.Volume
			for _, m := range c.VolumeMounts {
				if strings.HasPrefix(pw, path.Clean(m.MountPath)+"/") {
					for i := range w.Spec.Volumes {
						if w.Spec.Volumes[i].Name == m.Name {
							vol = &w.Spec.Volumes[i]
						}
					}
					if !m.ReadOnly {
						t.Errorf("%s: credentials mount %s is not readOnly", where, m.MountPath)
					}
					if key := strings.TrimPrefix(pw, path.Clean(m.MountPath)+"/"); !keys[key] {
						t.Errorf("%s: --git-password-file reads key %q, not in the example Secret", where, key)
					}
				}
			}
			switch {
			case vol == nil:
				t.Errorf("%s: --git-password-file %q: no volume", where, pw)
			case vol.Secret == nil || vol.Secret.SecretName != gitSecret:
				t.Errorf("%s: --git-password-file is not in the %s Secret volume", where, gitSecret)
			case vol.Secret.DefaultMode == nil || *vol.Secret.DefaultMode&0o007 != 0:
				t.Errorf("%s: %s volume readable by others (defaultMode)", where, gitSecret)
			case *vol.Secret.DefaultMode != 0o440:
				t.Errorf("%s: %s volume defaultMode %o, want 0440 (owner and fsGroup read)", where, gitSecret, *vol.Secret.DefaultMode)
			}
			ok := false
			for _, e := range c.Env {
				if e.Name == "OSBGIT_GIT_USERNAME" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef
					ok = ref.Name == gitSecret && keys[ref.Key]
				}
			}
			if !ok {
				t.Errorf("%s: OSBGIT_GIT_USERNAME does not come from %s with a key the example defines", where, gitSecret)
			}
		}
	}
}

// TestExampleSecretsArePlaceholders: a Secret shipped here holds only
// placeholders, never anything that looks like a real credential, and is kept
// out of the kustomization.
func TestExampleSecretsArePlaceholders(t *testing.T) {
	objs := loadObjects(t)
	secrets := 0
	for _, o := range objs {
		s, ok := o.Obj.(*corev1.Secret)
		if !ok {
			continue
		}
		secrets++
		if !strings.Contains(o.File, ".example.") {
			t.Errorf("%s: Secret in a file kubectl apply -k would apply; name it *.example.yaml", o)
		}
		if len(s.Data) > 0 {
			t.Errorf("%s: has data (base64); use stringData placeholders", o)
		}
		for k, v := range s.StringData {
			if v != placeholderValue {
				t.Errorf("%s: key %s = %q, want the placeholder %s", o, k, v, placeholderValue)
			}
		}
	}
	if secrets == 0 {
		t.Error("no example git-credentials Secret")
	}
}

// TestCronJob: one sync pass every 5 minutes, never two at once, bounded in
// time and retries.
func TestCronJob(t *testing.T) {
	cjs := find[*batchv1.CronJob](loadObjects(t))
	if len(cjs) != 1 {
		t.Fatalf("%d CronJobs, want 1", len(cjs))
	}
	cj := cjs[0]
	if cj.Spec.Schedule != "*/5 * * * *" {
		t.Errorf("schedule %q, want every 5 minutes", cj.Spec.Schedule)
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	if d := cj.Spec.StartingDeadlineSeconds; d == nil || *d <= 0 || *d >= 300 {
		t.Errorf("startingDeadlineSeconds %v: want set and shorter than the 5-minute period", d)
	}
	js := cj.Spec.JobTemplate.Spec
	if js.BackoffLimit == nil || *js.BackoffLimit > 3 {
		t.Errorf("backoffLimit %v: want set, at most 3", js.BackoffLimit)
	}
	if js.ActiveDeadlineSeconds == nil || *js.ActiveDeadlineSeconds <= 0 {
		t.Errorf("activeDeadlineSeconds not set")
	}
	if rp := js.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
		t.Errorf("restartPolicy %q", rp)
	}
	if js.PodFailurePolicy != nil && js.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("podFailurePolicy needs restartPolicy Never")
	}
	for _, c := range js.Template.Spec.Containers {
		if p, err := parseArgs(c.Args); err == nil && p.Command != "sync" {
			t.Errorf("CronJob runs %q, want sync", p.Command)
		}
	}
	if js.PodFailurePolicy != nil {
		names := map[string]bool{}
		for _, c := range js.Template.Spec.Containers {
			names[c.Name] = true
		}
		for _, r := range js.PodFailurePolicy.Rules {
			if r.OnExitCodes != nil && r.OnExitCodes.ContainerName != nil && !names[*r.OnExitCodes.ContainerName] {
				t.Errorf("podFailurePolicy names container %q, which does not exist", *r.OnExitCodes.ContainerName)
			}
		}
	}
	for _, v := range js.Template.Spec.Volumes {
		if v.Name == "cache" && v.EmptyDir == nil && v.PersistentVolumeClaim == nil {
			t.Errorf("cache volume is neither an emptyDir nor a PVC")
		}
	}
}

// TestCronJobStateConfigMap: a CronJob pod starts with an empty cache, so
// its pass state lives in a ConfigMap (--state-configmap) that the
// manifests create in osbgit's namespace and that the Role lets osbgit get
// and update (see checkSystemRole).
func TestCronJobStateConfigMap(t *testing.T) {
	objs := loadObjects(t)
	var ref string
	for _, cj := range find[*batchv1.CronJob](objs) {
		for _, c := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers {
			if p, err := parseArgs(c.Args); err == nil {
				ref = p.Flags["state-configmap"]
			}
		}
	}
	if ref != systemNamespace+"/"+stateConfigMap {
		t.Fatalf("CronJob --state-configmap %q, want %s/%s", ref, systemNamespace, stateConfigMap)
	}
	for _, cm := range find[*corev1.ConfigMap](objs) {
		if cm.Namespace == systemNamespace && cm.Name == stateConfigMap {
			if len(cm.Data) > 0 || len(cm.BinaryData) > 0 {
				t.Errorf("ConfigMap %s has data; osbgit writes it", ref)
			}
			return
		}
	}
	t.Errorf("no ConfigMap %s in the manifests; the Role lets osbgit update it, not create it", ref)
}

// TestDeploymentAndService: `osbgit run` with leader election on two
// replicas, probes on the metrics port, and a Service that reaches the
// webhook and metrics ports of exactly these pods.
func TestDeploymentAndService(t *testing.T) {
	objs := loadObjects(t)
	ds := find[*appsv1.Deployment](objs)
	if len(ds) != 1 {
		t.Fatalf("%d Deployments, want 1", len(ds))
	}
	d := ds[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Deployment selector does not match its pod template")
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	p, err := parseArgs(c.Args)
	if err != nil {
		t.Fatalf("args: %v", err)
	}
	want := map[string]string{"leader-elect": "true", "webhook-addr": ":8080", "metrics-addr": ":9090"}
	if p.Command != "run" {
		t.Errorf("Deployment runs %q, want run", p.Command)
	}
	for f, v := range want {
		if p.Flags[f] != v {
			t.Errorf("--%s=%q, want %q", f, p.Flags[f], v)
		}
	}
	ports := map[string]int32{}
	for _, cp := range c.Ports {
		ports[cp.Name] = cp.ContainerPort
	}
	if ports["webhook"] != 8080 || ports["metrics"] != 9090 {
		t.Errorf("container ports %v, want webhook 8080, metrics 9090 (as the flags say)", ports)
	}
	probePort := func(what string, pr *corev1.Probe, wantPath string) {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s: no httpGet probe", what)
			return
		}
		if pr.HTTPGet.Path != wantPath {
			t.Errorf("%s: path %q, want %q", what, pr.HTTPGet.Path, wantPath)
		}
		if resolvePort(pr.HTTPGet.Port, ports) != 9090 {
			t.Errorf("%s: port %s is not the metrics port 9090", what, pr.HTTPGet.Port.String())
		}
	}
	probePort("livenessProbe", c.LivenessProbe, "/healthz")
	probePort("readinessProbe", c.ReadinessProbe, "/readyz")

	svcs := find[*corev1.Service](objs)
	if len(svcs) != 1 {
		t.Fatalf("%d Services, want 1", len(svcs))
	}
	svc := svcs[0]
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the Deployment's pods", svc.Spec.Selector)
	}
	for _, cj := range find[*batchv1.CronJob](objs) {
		if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(cj.Spec.JobTemplate.Spec.Template.Labels)) {
			t.Errorf("Service selector %v also selects the CronJob's pods, which serve nothing", svc.Spec.Selector)
		}
	}
	got := map[string]int32{}
	for _, sp := range svc.Spec.Ports {
		got[sp.Name] = resolvePort(sp.TargetPort, ports)
	}
	if !reflect.DeepEqual(got, map[string]int32{"webhook": 8080, "metrics": 9090}) {
		t.Errorf("Service ports reach %v, want webhook->8080, metrics->9090", got)
	}
}

func resolvePort(p intstr.IntOrString, named map[string]int32) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	return named[p.StrVal]
}

// TestRBAC: least privilege. No ClusterRole or ClusterRoleBinding at all
// (so no cluster-wide Secret access), no wildcard, Secrets only in the target
// namespaces, the system namespace limited to named Secrets and Leases, and
// every Role bound to osbgit's ServiceAccount only.
func TestRBAC(t *testing.T) {
	objs := loadObjects(t)
	for _, o := range objs {
		if kindIs(o, "ClusterRole", "ClusterRoleBinding") {
			t.Errorf("%s: cluster-scoped RBAC; osbgit needs none", o)
		}
	}
	namespaces := map[string]bool{"default": true}
	for _, ns := range find[*corev1.Namespace](objs) {
		namespaces[ns.Name] = true
	}
	roles := map[string]*rbacv1.Role{}
	var targets []string
	for _, r := range find[*rbacv1.Role](objs) {
		roles[r.Namespace+"/"+r.Name] = r
		if !namespaces[r.Namespace] {
			t.Errorf("Role %s/%s: namespace %q is not created here", r.Namespace, r.Name, r.Namespace)
		}
		for i, rule := range r.Rules {
			where := fmt.Sprintf("%s/%s rule %d", r.Namespace, r.Name, i)
			for _, list := range [][]string{rule.Verbs, rule.Resources, rule.APIGroups, rule.ResourceNames} {
				for _, v := range list {
					if strings.Contains(v, "*") {
						t.Errorf("Role %s: wildcard %q", where, v)
					}
				}
			}
			if len(rule.NonResourceURLs) > 0 {
				t.Errorf("Role %s: nonResourceURLs", where)
			}
			for _, res := range rule.Resources {
				if strings.Contains(res, "/") {
					t.Errorf("Role %s: subresource %q", where, res)
				}
			}
			if slices.ContainsFunc(rule.Verbs, func(v string) bool { return v == "escalate" || v == "bind" || v == "impersonate" }) {
				t.Errorf("Role %s: escalation verb in %v", where, rule.Verbs)
			}
		}
		if r.Namespace == systemNamespace {
			checkSystemRole(t, r)
		} else {
			targets = append(targets, r.Namespace)
			want := []rbacv1.PolicyRule{{
				APIGroups: []string{""},
				Resources: []string{"secrets"},
				Verbs:     []string{"get", "list", "watch", "create", "update", "patch", "delete"},
			}}
			if !reflect.DeepEqual(r.Rules, want) {
				t.Errorf("Role %s/%s in a target namespace: rules %+v, want exactly Secret access %+v", r.Namespace, r.Name, r.Rules, want)
			}
		}
	}
	sort.Strings(targets)
	for _, ns := range []string{"apps", "default"} {
		if !slices.Contains(targets, ns) {
			t.Errorf("no target-namespace Role in %q (targets: %v)", ns, targets)
		}
	}
	if _, ok := roles[systemNamespace+"/osbgit"]; !ok {
		t.Errorf("no Role %s/osbgit", systemNamespace)
	}
	bound := map[string]bool{}
	for _, rb := range find[*rbacv1.RoleBinding](objs) {
		where := rb.Namespace + "/" + rb.Name
		if rb.RoleRef.Kind != "Role" || rb.RoleRef.APIGroup != rbacv1.GroupName {
			t.Errorf("RoleBinding %s: roleRef %+v, want a Role", where, rb.RoleRef)
			continue
		}
		if _, ok := roles[rb.Namespace+"/"+rb.RoleRef.Name]; !ok {
			t.Errorf("RoleBinding %s: Role %s not defined in its namespace", where, rb.RoleRef.Name)
		}
		bound[rb.Namespace+"/"+rb.RoleRef.Name] = true
		want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: systemNamespace}}
		if !reflect.DeepEqual(rb.Subjects, want) {
			t.Errorf("RoleBinding %s: subjects %+v, want only %s/%s", where, rb.Subjects, systemNamespace, serviceAccount)
		}
	}
	for k := range roles {
		if !bound[k] {
			t.Errorf("Role %s is bound by no RoleBinding", k)
		}
	}
	sas := find[*corev1.ServiceAccount](objs)
	if len(sas) != 1 || sas[0].Name != serviceAccount || sas[0].Namespace != systemNamespace {
		t.Errorf("want exactly one ServiceAccount %s/%s", systemNamespace, serviceAccount)
	}
}

// checkSystemRole: in osbgit-system, Leases for leader election, named
// Secrets read-only (git credentials; broker auth, also listed and watched
// by name so `run` notices a rotation), and the records key
// and sequence: create (which cannot be limited to a name), get both by
// name, update only the sequence.
func checkSystemRole(t *testing.T, r *rbacv1.Role) {
	t.Helper()
	var leases, secrets, brokerAuth bool
	for _, rule := range r.Rules {
		switch {
		case slices.Equal(rule.APIGroups, []string{"coordination.k8s.io"}) && slices.Equal(rule.Resources, []string{"leases"}):
			leases = true
			if !slices.Equal(rule.Verbs, []string{"get", "create", "update"}) {
				t.Errorf("Role %s/%s: lease verbs %v, want get, create, update", r.Namespace, r.Name, rule.Verbs)
			}
		case slices.Equal(rule.APIGroups, []string{""}) && slices.Equal(rule.Resources, []string{"configmaps"}):
			if !slices.Equal(rule.Verbs, []string{"get", "update"}) || !slices.Equal(rule.ResourceNames, []string{stateConfigMap}) {
				t.Errorf("Role %s/%s: configmaps rule %+v, want only get and update of %s", r.Namespace, r.Name, rule, stateConfigMap)
			}
		case slices.Equal(rule.APIGroups, []string{""}) && slices.Equal(rule.Resources, []string{"secrets"}):
			switch {
			case slices.Equal(rule.Verbs, []string{"create"}) && len(rule.ResourceNames) == 0:
			case slices.Equal(rule.Verbs, []string{"update"}) && slices.Equal(rule.ResourceNames, []string{"osbgit-records-sequence"}):
			case slices.Equal(rule.Verbs, []string{"get"}) && slices.Equal(rule.ResourceNames, []string{gitSecret}):
				secrets = true
			case slices.Equal(rule.Verbs, []string{"get", "list", "watch"}) && len(rule.ResourceNames) > 0 &&
				!slices.ContainsFunc(rule.ResourceNames, func(n string) bool { return n == gitSecret || strings.HasPrefix(n, "osbgit-records-") }):
				brokerAuth = true
			case slices.Equal(rule.Verbs, []string{"get"}) && slices.Equal(rule.ResourceNames, []string{"osbgit-records-key", "osbgit-records-sequence"}):
			default:
				t.Errorf("Role %s/%s: secrets rule %+v: want get by name (git credentials, records key and sequence), get, list and watch by name (broker auth), create, or update of the records sequence", r.Namespace, r.Name, rule)
			}
		default:
			t.Errorf("Role %s/%s: unexpected rule %+v", r.Namespace, r.Name, rule)
		}
	}
	if !leases || !secrets || !brokerAuth {
		t.Errorf("Role %s/%s: leases rule %v, git credentials rule %v, broker auth rule %v; want all", r.Namespace, r.Name, leases, secrets, brokerAuth)
	}
}

// TestImageConsistent: every container runs the same osbgit image, the one
// kustomization.yaml's images entry retags, pinned to a version (not latest).
func TestImageConsistent(t *testing.T) {
	objs := loadObjects(t)
	images := map[string][]string{}
	for _, w := range workloads(t, objs) {
		for _, c := range allContainers(w.Spec) {
			images[c.Image] = append(images[c.Image], w.String()+"/"+c.Name)
			if c.ImagePullPolicy == corev1.PullAlways {
				t.Errorf("%s/%s: imagePullPolicy Always with a pinned tag", w, c.Name)
			}
		}
	}
	if len(images) != 1 {
		t.Fatalf("containers use %d images, want 1: %v", len(images), images)
	}
	var image string
	for image = range images {
	}
	name, tag, ok := strings.Cut(image, ":")
	if !ok || tag == "" || tag == "latest" || strings.Contains(name, "@") {
		t.Errorf("image %q: want name:tag with a version tag", image)
	}
	if !strings.HasSuffix(name, "/osbgit") {
		t.Errorf("image %q is not an osbgit image", image)
	}
	k := loadKustomization(t)
	if len(k.Images) != 1 || k.Images[0].Name != name || k.Images[0].NewTag != tag {
		t.Errorf("kustomization images %+v: want one entry for %s with newTag %s (so `kustomize edit set image` retags every workload)", k.Images, name, tag)
	}
}

// TestNamespacePodSecurity: osbgit-system enforces the restricted Pod
// Security Standard, which the workloads above satisfy.
func TestNamespacePodSecurity(t *testing.T) {
	for _, ns := range find[*corev1.Namespace](loadObjects(t)) {
		if ns.Name == systemNamespace && ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("namespace %s does not enforce the restricted Pod Security Standard", ns.Name)
		}
	}
}

// TestNoStrayFiles: everything here is a manifest, the kustomization, a Go
// test or a script; a README-like file belongs in examples/README.md.
func TestNoStrayFiles(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".go" && ext != ".sh") {
			t.Errorf("unexpected entry %s in examples/deploy", e.Name())
		}
	}
}

// TestInstallStepsCreateEveryKey (issue 19): the `kubectl create secret
// generic git-credentials` of examples/README.md's install steps gives
// every key of that Secret the workloads read, as a file flag under its
// mount (--git-password-file, --webhook-secret-file, ...) or through a
// secretKeyRef. The webhook-secret key was missing: the Deployment then
// failed to start.
func TestInstallStepsCreateEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "create secret generic "+gitSecret)
	if i < 0 {
		t.Fatalf("examples/README.md has no `kubectl create secret generic %s`", gitSecret)
	}
	end := strings.Index(text[i:], "```")
	cmd := text[i : i+end]
	given := func(key string) bool {
		return strings.Contains(cmd, "--from-literal="+key+"=") || strings.Contains(cmd, "--from-file="+key+"=")
	}
	objs := loadObjects(t)
	for _, w := range workloads(t, objs) {
		for _, c := range allContainers(w.Spec) {
			var mounts []string
			for _, m := range c.VolumeMounts {
				for _, v := range w.Spec.Volumes {
					if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == gitSecret {
						mounts = append(mounts, path.Clean(m.MountPath)+"/")
					}
				}
			}
			for _, a := range c.Args {
				name, val, ok := strings.Cut(a, "=")
				if !ok || !strings.HasPrefix(name, "--") || !strings.HasSuffix(name, "-file") {
					continue
				}
				for _, m := range mounts {
					if key, ok := strings.CutPrefix(val, m); ok && !given(key) {
						t.Errorf("%s container %s reads key %q of %s (%s); the install steps do not create it", w, c.Name, key, gitSecret, a)
					}
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == gitSecret && !given(e.ValueFrom.SecretKeyRef.Key) {
					t.Errorf("%s container %s reads key %q of %s (env %s); the install steps do not create it", w, c.Name, e.ValueFrom.SecretKeyRef.Key, gitSecret, e.Name)
				}
			}
		}
	}
}

// TestMemoryLimitLeavesHeadroom: every osbgit container sets GOMEMLIMIT
// (the Go runtime's soft limit) to 80-95% of its memory limit, so the GC
// works harder before the container is OOM-killed, while the rest of the
// process (stacks, the binary) still fits.
func TestMemoryLimitLeavesHeadroom(t *testing.T) {
	for _, w := range workloads(t, loadObjects(t)) {
		for _, c := range allContainers(w.Spec) {
			limit, ok := c.Resources.Limits[corev1.ResourceMemory]
			if !ok {
				t.Errorf("%s: container %s has no memory limit", w, c.Name)
				continue
			}
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
			if i < 0 {
				t.Errorf("%s: container %s does not set GOMEMLIMIT", w, c.Name)
				continue
			}
			soft, err := resource.ParseQuantity(strings.TrimSuffix(c.Env[i].Value, "B"))
			if err != nil {
				t.Errorf("%s: container %s: GOMEMLIMIT %q: %v", w, c.Name, c.Env[i].Value, err)
				continue
			}
			if r := float64(soft.Value()) / float64(limit.Value()); r < 0.8 || r > 0.95 {
				t.Errorf("%s: container %s: GOMEMLIMIT %s is %.0f%% of the memory limit %s, want 80-95%%",
					w, c.Name, c.Env[i].Value, 100*r, limit.String())
			}
		}
	}
}
