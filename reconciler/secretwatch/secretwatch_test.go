package secretwatch

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

const managed = secrets.LabelManagedBy + "=" + secrets.ManagedByValue

func TestWatches(t *testing.T) {
	tests := []struct {
		name string
		set  Set
		want []Watch
	}{
		{name: "nothing", set: Set{}, want: nil},
		{name: "binding Secrets: by label, one watch per namespace",
			set:  Set{Bindings: []Name{{"apps", "a"}, {"apps", "b"}, {"web", "c"}}},
			want: []Watch{{Namespace: "apps", LabelSelector: managed}, {Namespace: "web", LabelSelector: managed}}},
		{name: "a broker auth Secret: by name",
			set:  Set{Referenced: []Name{{"osbgit-system", "broker-auth"}}},
			want: []Watch{{Namespace: "osbgit-system", FieldSelector: "metadata.name=broker-auth"}}},
		{name: "binding and a few referenced Secrets in one namespace",
			set: Set{Bindings: []Name{{"apps", "a"}}, Referenced: []Name{{"apps", "p2"}, {"apps", "p1"}, {"apps", "p1"}}},
			want: []Watch{{Namespace: "apps", LabelSelector: managed},
				{Namespace: "apps", FieldSelector: "metadata.name=p1"}, {Namespace: "apps", FieldSelector: "metadata.name=p2"}}},
		{name: "many referenced Secrets: the namespace",
			set: Set{Bindings: []Name{{"apps", "a"}},
				Referenced: []Name{{"apps", "p1"}, {"apps", "p2"}, {"apps", "p3"}, {"apps", "p4"}, {"apps", "p5"}}},
			want: []Watch{{Namespace: "apps"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Watches(tt.set); !slices.Equal(got, tt.want) {
				t.Errorf("Watches = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func secret(ns, name string, managedBy bool, value string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"k": []byte(value)}}
	if managedBy {
		s.Labels = map[string]string{secrets.LabelManagedBy: secrets.ManagedByValue}
	}
	return s
}

// TestKubeCallsChangedForWatchedSecrets: with client-go's fake clientset, a
// change to a watched Secret (updated, deleted) calls Changed, a change to
// another Secret of the namespace does not, and the watches carry their
// selectors. synctest's fake clock: no sleeps.
func TestKubeCallsChangedForWatchedSecrets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset(
			secret("apps", "db-creds", true, "v1"),
			secret("apps", "db-params", false, "p1"),
			secret("apps", "unrelated", false, "u1"),
			secret("osbgit-system", "broker-auth", false, "a1"),
		)
		var changed atomic.Int32
		k := &Kube{Client: cs, Changed: func() { changed.Add(1) }}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { k.Run(ctx); close(done) }()
		k.Update(Set{
			Referenced: []Name{{"apps", "db-params"}, {"osbgit-system", "broker-auth"}},
			Bindings:   []Name{{"apps", "db-creds"}},
		})
		synctest.Wait()
		if n := changed.Load(); n != 0 {
			t.Fatalf("Changed called %d times for the initial list", n)
		}
		var restrictions []string
		for _, a := range cs.Actions() {
			if w, ok := a.(k8stesting.WatchAction); ok {
				r := w.GetWatchRestrictions()
				restrictions = append(restrictions, w.GetNamespace()+" "+r.Labels.String()+" "+r.Fields.String())
			}
		}
		slices.Sort(restrictions)
		want := []string{"apps  metadata.name=db-params", "apps " + managed + " ", "osbgit-system  metadata.name=broker-auth"}
		if !slices.Equal(restrictions, want) {
			t.Errorf("watches %q, want %q", restrictions, want)
		}

		secretsAPI := cs.CoreV1().Secrets
		steps := []struct {
			name   string
			do     func() error
			called bool
		}{
			{"unrelated Secret updated", func() error {
				_, err := secretsAPI("apps").Update(ctx, secret("apps", "unrelated", false, "u2"), metav1.UpdateOptions{})
				return err
			}, false},
			{"parametersFrom Secret rotated", func() error {
				_, err := secretsAPI("apps").Update(ctx, secret("apps", "db-params", false, "p2"), metav1.UpdateOptions{})
				return err
			}, true},
			{"broker auth Secret rotated", func() error {
				_, err := secretsAPI("osbgit-system").Update(ctx, secret("osbgit-system", "broker-auth", false, "a2"), metav1.UpdateOptions{})
				return err
			}, true},
			{"binding Secret deleted", func() error {
				return secretsAPI("apps").Delete(ctx, "db-creds", metav1.DeleteOptions{})
			}, true},
			{"binding Secret created again", func() error {
				_, err := secretsAPI("apps").Create(ctx, secret("apps", "db-creds", true, "v1"), metav1.CreateOptions{})
				return err
			}, true},
		}
		for _, s := range steps {
			changed.Store(0)
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			synctest.Wait()
			if got := changed.Load() > 0; got != s.called {
				t.Errorf("%s: Changed called %v, want %v", s.name, got, s.called)
			}
		}

		// Once the binding is gone from the set, its Secret is no longer
		// watched.
		k.Update(Set{Referenced: []Name{{"osbgit-system", "broker-auth"}}})
		synctest.Wait()
		changed.Store(0)
		if err := secretsAPI("apps").Delete(ctx, "db-creds", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := changed.Load(); n != 0 {
			t.Errorf("Changed called %d times for a Secret no longer watched", n)
		}
		cancel()
		<-done
	})
}

// TestPollEveryInterval: Poll asks once per interval (fake clock).
func TestPollEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- Poll(ctx, time.Minute, func() { n.Add(1) }) }()
		time.Sleep(3*time.Minute + time.Second)
		synctest.Wait()
		if got := n.Load(); got != 3 {
			t.Errorf("%d checks in 3 minutes at 1m, want 3", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	if err := Poll(context.Background(), 0, func() {}); err == nil {
		t.Error("Poll accepted a zero interval")
	}
}
