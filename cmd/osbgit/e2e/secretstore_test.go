//go:build e2e

package e2e

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// TestKubeSecretStore drives secretstore.Kube against the real apiserver and
// reads every result back through a separate client: create with the
// binding's keys, labels and annotations; update in place with a changed, a
// removed and an added key while another tool's labels survive; no write
// when nothing changed; refusal to touch a Secret osbgit did not create;
// delete.
func TestKubeSecretStore(t *testing.T) {
	needEnv(t)
	const ns = "e2e-store"
	ensureNamespace(t, ns)
	store := secretstore.NewKube(admin)
	ctx := ctxBG(t)

	// Create.
	data := map[string][]byte{"username": []byte("u-1"), "password": []byte("p-1"), "port": []byte("5432")}
	if err := store.Put(ctx, ns, "db-creds", secrets.BindingSecret(data, ns, "db-binding", "bind-id-1")); err != nil {
		t.Fatal(err)
	}
	s := getSecret(t, ns, "db-creds")
	if s == nil {
		t.Fatal("Put created no Secret")
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("type %q, want Opaque", s.Type)
	}
	wantData := map[string]string{"username": "u-1", "password": "p-1", "port": "5432"}
	if got := stringData(s); !maps.Equal(got, wantData) {
		t.Errorf("data %v, want %v", keysOf(got), keysOf(wantData))
	}
	wantLabels := map[string]string{
		secrets.LabelManagedBy:        "osbgit",
		secrets.LabelBindingNamespace: ns,
		secrets.LabelBindingName:      "db-binding",
	}
	if !maps.Equal(s.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", s.Labels, wantLabels)
	}
	wantAnn := map[string]string{
		secrets.AnnotationBindingName:       "db-binding",
		secrets.AnnotationBindingExternalID: "bind-id-1",
	}
	if !maps.Equal(s.Annotations, wantAnn) {
		t.Errorf("annotations %v, want %v", s.Annotations, wantAnn)
	}
	if !managedBy(s, "osbgit") {
		t.Errorf("managedFields do not name field manager osbgit: %+v", s.ManagedFields)
	}
	uid := s.UID

	// Another tool labels and annotates the Secret; osbgit must keep that.
	s.Labels["team"] = "payments"
	s.Annotations["example.com/owner"] = "alice"
	if _, err := verifier.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Get returns exactly the data.
	got, err := store.Get(ctx, ns, "db-creds")
	if err != nil || len(got) != 3 || string(got["password"]) != "p-1" {
		t.Fatalf("Get: %v, keys %v", err, keysOf(got))
	}

	// Update: password changed, port removed, host added; new binding ID;
	// a binding name too long for a label value.
	long := "a-binding-name-that-is-longer-than-the-sixty-three-characters-a-label-value-allows"
	data = map[string][]byte{"username": []byte("u-1"), "password": []byte("p-2"), "host": []byte("db.example")}
	if err := store.Put(ctx, ns, "db-creds", secrets.BindingSecret(data, ns, long, "bind-id-2")); err != nil {
		t.Fatal(err)
	}
	s = getSecret(t, ns, "db-creds")
	if s == nil || s.UID != uid {
		t.Fatal("update replaced the Secret instead of updating it in place")
	}
	wantData = map[string]string{"username": "u-1", "password": "p-2", "host": "db.example"}
	if got := stringData(s); !maps.Equal(got, wantData) {
		t.Errorf("after update: data keys %v, want %v (password updated: %t)", keysOf(got), keysOf(wantData), got["password"] == "p-2")
	}
	wantLabels = map[string]string{
		secrets.LabelManagedBy:        "osbgit",
		secrets.LabelBindingNamespace: ns,
		"team":                        "payments",
	}
	if !maps.Equal(s.Labels, wantLabels) {
		t.Errorf("after update: labels %v, want %v (binding-name label dropped: name too long)", s.Labels, wantLabels)
	}
	wantAnn = map[string]string{
		secrets.AnnotationBindingName:       long,
		secrets.AnnotationBindingExternalID: "bind-id-2",
		"example.com/owner":                 "alice",
	}
	if !maps.Equal(s.Annotations, wantAnn) {
		t.Errorf("after update: annotations %v, want %v", s.Annotations, wantAnn)
	}

	// The same Put again writes nothing.
	rv := s.ResourceVersion
	if err := store.Put(ctx, ns, "db-creds", secrets.BindingSecret(data, ns, long, "bind-id-2")); err != nil {
		t.Fatal(err)
	}
	if s = getSecret(t, ns, "db-creds"); s.ResourceVersion != rv {
		t.Errorf("an unchanged Put wrote the Secret (resourceVersion %s -> %s)", rv, s.ResourceVersion)
	}

	// A Secret osbgit did not create is neither overwritten nor deleted.
	upsertSecret(t, ns, "hand-made", map[string]string{"password": "keep-me"})
	err = store.Put(ctx, ns, "hand-made", secrets.BindingSecret(map[string][]byte{"password": []byte("x")}, ns, "b", "id"))
	var nm *secretstore.NotManagedError
	if !errors.As(err, &nm) {
		t.Errorf("Put over an unmanaged Secret: %v, want NotManagedError", err)
	}
	err = store.Delete(ctx, ns, "hand-made")
	if !errors.As(err, &nm) {
		t.Errorf("Delete of an unmanaged Secret: %v, want NotManagedError", err)
	}
	hm := getSecret(t, ns, "hand-made")
	if hm == nil || string(hm.Data["password"]) != "keep-me" || hm.Labels[secrets.LabelManagedBy] != "" {
		t.Errorf("the unmanaged Secret was modified or deleted")
	}
	if err != nil && strings.Contains(err.Error(), "keep-me") {
		t.Error("an error carries a secret value")
	}

	// Invalid names are refused before any API call.
	if err := store.Put(ctx, ns, "Bad_Name", secrets.Secret{}); !errors.Is(err, secretstore.ErrInvalidName) {
		t.Errorf("Put with an invalid name: %v", err)
	}

	// Delete, then delete again (not an error); Get reports not found.
	if err := store.Delete(ctx, ns, "db-creds"); err != nil {
		t.Fatal(err)
	}
	if getSecret(t, ns, "db-creds") != nil {
		t.Fatal("Delete left the Secret")
	}
	if err := store.Delete(ctx, ns, "db-creds"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := store.Get(ctx, ns, "db-creds"); !errors.Is(err, secretstore.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
}

// managedBy reports whether a field manager of s is named manager.
func managedBy(s *corev1.Secret, manager string) bool {
	for _, f := range s.ManagedFields {
		if f.Manager == manager {
			return true
		}
	}
	return false
}

// keysOf lists a map's keys, sorted, for messages that must not show values.
func keysOf[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
