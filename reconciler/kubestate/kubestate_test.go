package kubestate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/osbgit/osbgit/reconciler"
)

func sampleState() *reconciler.PassState {
	at := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	return &reconciler.PassState{
		ObservedHead: "0123456789abcdef0123456789abcdef01234567",
		LastRelist:   map[string]time.Time{"ClusterServiceBroker//db": at},
		NextRelist:   at.Add(15 * time.Minute),
	}
}

func newStore(cs *fake.Clientset, key string) *ConfigMap {
	return &ConfigMap{Client: cs.CoreV1(), Namespace: "osbgit-system", Name: "osbgit-state", Key: key,
		Labels: map[string]string{"app.kubernetes.io/name": "osbgit"}}
}

func TestSaveCreatesThenLoads(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	s := newStore(cs, "a.json")
	st, err := s.LoadState(ctx)
	if err != nil || !cmp.Equal(st, &reconciler.PassState{}) {
		t.Fatalf("missing ConfigMap: got %+v, %v; want an empty state", st, err)
	}
	if err := s.SaveState(ctx, sampleState()); err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("osbgit-system").Get(ctx, "osbgit-state", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ConfigMap not created: %v", err)
	}
	if cm.Labels["app.kubernetes.io/name"] != "osbgit" {
		t.Errorf("labels %v", cm.Labels)
	}
	got, err := s.LoadState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(sampleState(), got); d != "" {
		t.Errorf("state read back (-saved +loaded):\n%s", d)
	}
}

// Two repositories share the ConfigMap, a key each; saving one keeps the
// other, and an unchanged state is not written again.
func TestSaveKeepsOtherKeys(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "osbgit-state", Namespace: "osbgit-system"},
		Data:       map[string]string{"other.json": `{"observedHead":"x"}`},
	})
	s := newStore(cs, "a.json")
	if err := s.SaveState(ctx, sampleState()); err != nil {
		t.Fatal(err)
	}
	other, err := newStore(cs, "other.json").LoadState(ctx)
	if err != nil || other.ObservedHead != "x" {
		t.Fatalf("other key: %+v, %v", other, err)
	}
	cs.ClearActions()
	if err := s.SaveState(ctx, sampleState()); err != nil {
		t.Fatal(err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("unchanged state: unexpected %s", a.GetVerb())
		}
	}
}

// An update that loses a race with another writer reads again and retries.
func TestSaveRetriesConflict(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "osbgit-state", Namespace: "osbgit-system"}})
	conflicts := 1
	cs.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "osbgit-state", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	s := newStore(cs, "a.json")
	if err := s.SaveState(ctx, sampleState()); err != nil {
		t.Fatal(err)
	}
	if conflicts != 0 {
		t.Fatal("the update was never refused")
	}
	got, err := s.LoadState(ctx)
	if err != nil || got.ObservedHead != sampleState().ObservedHead {
		t.Fatalf("after a conflict: %+v, %v", got, err)
	}
}

func TestErrorsNameTheConfigMap(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	cs.PrependReactor("*", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "osbgit-state", errors.New("RBAC"))
	})
	s := newStore(cs, "a.json")
	if _, err := s.LoadState(ctx); err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ConfigMap osbgit-system/osbgit-state") {
		t.Errorf("load: %v", err)
	}
	if err := s.SaveState(ctx, sampleState()); err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ConfigMap osbgit-system/osbgit-state") {
		t.Errorf("save: %v", err)
	}
}

// Corrupt data (a hand edit) costs a full pass, not an error.
func TestCorruptStateIsEmpty(t *testing.T) {
	cs := fake.NewClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "osbgit-state", Namespace: "osbgit-system"},
		Data:       map[string]string{"a.json": "{not json"},
	})
	st, err := newStore(cs, "a.json").LoadState(context.Background())
	if err != nil || !cmp.Equal(st, &reconciler.PassState{}) {
		t.Fatalf("corrupt: %+v, %v", st, err)
	}
}
