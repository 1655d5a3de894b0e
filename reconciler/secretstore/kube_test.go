package secretstore

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

// mutatingVerbs returns the verbs of the fake's recorded actions other than
// get/list/watch, in order.
func mutatingVerbs(cs *fake.Clientset) []string {
	var verbs []string
	for _, a := range cs.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
		default:
			verbs = append(verbs, a.GetVerb())
		}
	}
	return verbs
}

func getSecret(t *testing.T, cs *fake.Clientset, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := cs.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
	return s
}

func unmanagedSecret(ns, name string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "other"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte("hand-made")},
	}
}

func TestKubePutCreatesLabelledOpaqueSecret(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	k := NewKube(cs)
	data := map[string][]byte{"username": []byte("u"), "port": []byte("5432")}
	if err := k.Put(ctx, "team-a", "db-creds", secrets.BindingSecret(data, "team-a", "db-binding", "b-123")); err != nil {
		t.Fatal(err)
	}
	s := getSecret(t, cs, "team-a", "db-creds")
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("type = %q, want Opaque", s.Type)
	}
	if diff := cmp.Diff(data, s.Data); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	wantLabels := map[string]string{
		secrets.LabelManagedBy:        secrets.ManagedByValue,
		secrets.LabelBindingName:      "db-binding",
		secrets.LabelBindingNamespace: "team-a",
	}
	if diff := cmp.Diff(wantLabels, s.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	wantAnn := map[string]string{secrets.AnnotationBindingName: "db-binding", secrets.AnnotationBindingExternalID: "b-123"}
	if diff := cmp.Diff(wantAnn, s.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if got, want := mutatingVerbs(cs), []string{"create"}; !cmp.Equal(got, want) {
		t.Errorf("mutating calls = %v, want %v", got, want)
	}
	got, err := k.Get(ctx, "team-a", "db-creds")
	if err != nil || !cmp.Equal(got, data) {
		t.Errorf("Get = %v, %v; want the data back", got, err)
	}
}

func TestKubePutAddsManagedByEvenWithoutLabels(t *testing.T) {
	cs := fake.NewClientset()
	if err := NewKube(cs).Put(context.Background(), "ns", "s", secrets.Secret{Data: map[string][]byte{"k": nil}}); err != nil {
		t.Fatal(err)
	}
	if got := getSecret(t, cs, "ns", "s").Labels[secrets.LabelManagedBy]; got != secrets.ManagedByValue {
		t.Errorf("managed-by label = %q", got)
	}
}

func TestKubePutUpdates(t *testing.T) {
	base := map[string][]byte{"username": []byte("u1"), "password": []byte("p1"), "host": []byte("h")}
	tests := []struct {
		name        string
		next        secrets.Secret
		wantVerbs   []string
		wantData    map[string][]byte
		wantLabels  map[string]string
		wantAnnots  map[string]string
		preexisting func(*corev1.Secret)
	}{
		{
			name:      "identical put writes nothing",
			next:      secrets.BindingSecret(maps.Clone(base), "ns", "b", "id1"),
			wantVerbs: nil,
			wantData:  base,
		},
		{
			name:      "changed key",
			next:      secrets.BindingSecret(map[string][]byte{"username": []byte("u1"), "password": []byte("p2"), "host": []byte("h")}, "ns", "b", "id1"),
			wantVerbs: []string{"update"},
			wantData:  map[string][]byte{"username": []byte("u1"), "password": []byte("p2"), "host": []byte("h")},
		},
		{
			name:      "removed and added keys",
			next:      secrets.BindingSecret(map[string][]byte{"username": []byte("u1"), "uri": []byte("x://")}, "ns", "b", "id1"),
			wantVerbs: []string{"update"},
			wantData:  map[string][]byte{"username": []byte("u1"), "uri": []byte("x://")},
		},
		{
			name:       "rotation changes the external id annotation only",
			next:       secrets.BindingSecret(maps.Clone(base), "ns", "b", "id2"),
			wantVerbs:  []string{"update"},
			wantData:   base,
			wantAnnots: map[string]string{secrets.AnnotationBindingName: "b", secrets.AnnotationBindingExternalID: "id2"},
		},
		{
			name: "other tools' labels and annotations are kept, stale osbgit ones dropped",
			preexisting: func(s *corev1.Secret) {
				s.Labels["team"] = "payments"
				s.Labels["osbgit.dev/stale"] = "x"
				s.Annotations["reflector/allowed"] = "true"
			},
			next:       secrets.BindingSecret(maps.Clone(base), "ns", "b", "id1"),
			wantVerbs:  []string{"update"},
			wantData:   base,
			wantLabels: map[string]string{secrets.LabelManagedBy: secrets.ManagedByValue, secrets.LabelBindingName: "b", secrets.LabelBindingNamespace: "ns", "team": "payments"},
			wantAnnots: map[string]string{secrets.AnnotationBindingName: "b", secrets.AnnotationBindingExternalID: "id1", "reflector/allowed": "true"},
		},
		{
			name:      "to empty data",
			next:      secrets.BindingSecret(nil, "ns", "b", "id1"),
			wantVerbs: []string{"update"},
			wantData:  map[string][]byte{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cs := fake.NewClientset()
			k := NewKube(cs)
			if err := k.Put(ctx, "ns", "s", secrets.BindingSecret(maps.Clone(base), "ns", "b", "id1")); err != nil {
				t.Fatal(err)
			}
			if tt.preexisting != nil {
				s := getSecret(t, cs, "ns", "s")
				tt.preexisting(s)
				if _, err := cs.CoreV1().Secrets("ns").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			cs.ClearActions()
			if err := k.Put(ctx, "ns", "s", tt.next); err != nil {
				t.Fatal(err)
			}
			if got := mutatingVerbs(cs); !cmp.Equal(got, tt.wantVerbs) {
				t.Errorf("mutating calls = %v, want %v", got, tt.wantVerbs)
			}
			s := getSecret(t, cs, "ns", "s")
			if diff := cmp.Diff(tt.wantData, s.Data, cmpEmptyData); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
			if tt.wantLabels != nil {
				if diff := cmp.Diff(tt.wantLabels, s.Labels); diff != "" {
					t.Errorf("labels (-want +got):\n%s", diff)
				}
			}
			if tt.wantAnnots != nil {
				if diff := cmp.Diff(tt.wantAnnots, s.Annotations); diff != "" {
					t.Errorf("annotations (-want +got):\n%s", diff)
				}
			}
			// A second identical Put is always a no-op.
			cs.ClearActions()
			if err := k.Put(ctx, "ns", "s", tt.next); err != nil {
				t.Fatal(err)
			}
			if got := mutatingVerbs(cs); len(got) != 0 {
				t.Errorf("repeated Put made mutating calls %v", got)
			}
		})
	}
}

// cmpEmptyData treats nil and empty data maps as equal.
var cmpEmptyData = cmp.Comparer(func(a, b map[string][]byte) bool { return equalData(a, b) })

func TestKubeRefusesUnmanagedSecret(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(unmanagedSecret("ns", "theirs"))
	k := NewKube(cs)
	cs.ClearActions()

	for name, op := range map[string]func() error{
		"put": func() error {
			return k.Put(ctx, "ns", "theirs", secrets.Secret{Data: map[string][]byte{"password": []byte("mine")}})
		},
		"delete": func() error { return k.Delete(ctx, "ns", "theirs") },
	} {
		t.Run(name, func(t *testing.T) {
			err := op()
			var nm *NotManagedError
			if !errors.As(err, &nm) || nm.Namespace != "ns" || nm.Name != "theirs" || !errors.Is(err, secrets.ErrNotManaged) {
				t.Fatalf("err = %v, want NotManagedError for ns/theirs matching secrets.ErrNotManaged", err)
			}
		})
	}
	if got := mutatingVerbs(cs); len(got) != 0 {
		t.Errorf("mutating calls on an unmanaged secret: %v", got)
	}
	if got := string(getSecret(t, cs, "ns", "theirs").Data["password"]); got != "hand-made" {
		t.Errorf("unmanaged secret modified")
	}
	// Reading it is fine (broker auth secrets are made by hand).
	if data, err := k.Get(ctx, "ns", "theirs"); err != nil || string(data["password"]) != "hand-made" {
		t.Errorf("Get = %q, %v", data, err)
	}
}

func TestKubeDelete(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	k := NewKube(cs)
	if err := k.Put(ctx, "ns", "s", secrets.BindingSecret(map[string][]byte{"a": []byte("1")}, "ns", "b", "")); err != nil {
		t.Fatal(err)
	}
	if err := k.Delete(ctx, "ns", "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Get(ctx, "ns", "s"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	cs.ClearActions()
	if err := k.Delete(ctx, "ns", "s"); err != nil {
		t.Errorf("Delete of a missing secret = %v, want nil", err)
	}
	if got := mutatingVerbs(cs); len(got) != 0 {
		t.Errorf("Delete of a missing secret made calls %v", got)
	}
}

func TestKubeGetNotFound(t *testing.T) {
	_, err := NewKube(fake.NewClientset()).Get(context.Background(), "ns", "missing")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if want := "get secret ns/missing: not found"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestKubeUpdateRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	k := NewKube(cs)
	if err := k.Put(ctx, "ns", "s", secrets.BindingSecret(map[string][]byte{"a": []byte("1")}, "ns", "b", "")); err != nil {
		t.Fatal(err)
	}
	conflicts := 2
	cs.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(corev1.Resource("secrets"), "s", errors.New("stale resourceVersion"))
		}
		return false, nil, nil
	})
	cs.ClearActions()
	if err := k.Put(ctx, "ns", "s", secrets.BindingSecret(map[string][]byte{"a": []byte("2")}, "ns", "b", "")); err != nil {
		t.Fatal(err)
	}
	if got, want := mutatingVerbs(cs), []string{"update", "update", "update"}; !cmp.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if got := string(getSecret(t, cs, "ns", "s").Data["a"]); got != "2" {
		t.Errorf("a = %q after retries", got)
	}
}

func TestKubeCreateRaceBecomesUpdate(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	k := NewKube(cs)
	// The first create fails as if another writer created the Secret
	// (managed) between our Get and Create.
	raced := false
	cs.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if raced {
			return false, nil, nil
		}
		raced = true
		other := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Labels: map[string]string{secrets.LabelManagedBy: secrets.ManagedByValue}},
			Data:       map[string][]byte{"a": []byte("other")},
		}
		if err := cs.Tracker().Add(other); err != nil {
			t.Fatal(err)
		}
		return true, nil, apierrors.NewAlreadyExists(corev1.Resource("secrets"), "s")
	})
	if err := k.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"a": []byte("mine")}}); err != nil {
		t.Fatal(err)
	}
	if got := string(getSecret(t, cs, "ns", "s").Data["a"]); got != "mine" {
		t.Errorf("a = %q, want mine", got)
	}
	if got, want := mutatingVerbs(cs), []string{"create", "update"}; !cmp.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestKubePutWrapsAPIErrors(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("secrets"), "s", errors.New("rbac"))
	})
	k := NewKube(cs)
	err := k.Put(context.Background(), "ns", "s", secrets.Secret{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("err = %v, want a wrapped Forbidden", err)
	}
	_, err = k.Get(context.Background(), "ns", "s")
	if !apierrors.IsForbidden(err) || errors.Is(err, ErrNotFound) {
		t.Errorf("Get err = %v, want Forbidden and not ErrNotFound", err)
	}
}

func TestKubeRejectsInvalidNamesWithoutCalls(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	k := NewKube(cs)
	for _, c := range []struct{ ns, name, key string }{
		{"../x", "s", "k"},
		{"ns", "A_B", "k"},
		{"ns", "s", "bad key"},
		{"ns", "s", ".."},
	} {
		err := k.Put(ctx, c.ns, c.name, secrets.Secret{Data: map[string][]byte{c.key: []byte("v")}})
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("Put(%q, %q, key %q) = %v, want ErrInvalidName", c.ns, c.name, c.key, err)
		}
	}
	if len(cs.Actions()) != 0 {
		t.Errorf("calls made for invalid names: %v", cs.Actions())
	}
}

// TestKubeListManaged: one LIST returns the data of the Secrets osbgit
// manages in the namespace, and nothing of anyone else's or of another
// namespace.
func TestKubeListManaged(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(unmanagedSecret("apps", "theirs"))
	k := NewKube(cs)
	for _, ref := range [][2]string{{"apps", "a"}, {"apps", "b"}, {"other", "c"}} {
		if err := k.Put(ctx, ref[0], ref[1], secrets.Secret{Data: map[string][]byte{"password": []byte("pw-" + ref[1])}}); err != nil {
			t.Fatal(err)
		}
	}
	cs.ClearActions()
	got, err := k.ListManaged(ctx, "apps")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string][]byte{"a": {"password": []byte("pw-a")}, "b": {"password": []byte("pw-b")}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("listed (-want +got):\n%s", d)
	}
	if n := len(cs.Actions()); n != 1 || cs.Actions()[0].GetVerb() != "list" {
		t.Fatalf("actions %v, want one list", cs.Actions())
	}
	cs.ClearActions()
	if _, err := k.ListManaged(ctx, "Not/A/Namespace"); !errors.Is(err, ErrInvalidName) || len(cs.Actions()) != 0 {
		t.Fatalf("invalid namespace: err %v, %d calls", err, len(cs.Actions()))
	}
}
