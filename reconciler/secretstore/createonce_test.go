package secretstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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

// createOnceStore is what the CreateOnce tests use of a backend.
type createOnceStore interface {
	Get(ctx context.Context, namespace, name string) (map[string][]byte, error)
	CreateOnce(ctx context.Context, namespace, name string, s secrets.Secret) (map[string][]byte, error)
}

// createOnceBackend makes an empty store of one backend, with plant, which
// makes Secret ns/s by hand (carrying labels and data), and labels, which
// reads the labels Secret ns/s has.
type createOnceBackend struct {
	name string
	new  func(t *testing.T) (store createOnceStore, plant func(labels map[string]string, data map[string][]byte), labels func() map[string]string)
}

var createOnceBackends = []createOnceBackend{
	{name: "dir", new: func(t *testing.T) (createOnceStore, func(map[string]string, map[string][]byte), func() map[string]string) {
		d, root := newTestDir(t)
		dir := filepath.Join(root, "ns", "s")
		plant := func(labels map[string]string, data map[string][]byte) {
			for k, v := range data {
				mustWrite(t, filepath.Join(dir, k), string(v))
			}
			raw, err := json.Marshal(dirMeta{Labels: labels})
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(dir, metaFile), string(raw))
		}
		labels := func() map[string]string {
			raw, err := os.ReadFile(filepath.Join(dir, metaFile))
			if err != nil {
				t.Fatal(err)
			}
			var m dirMeta
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			return m.Labels
		}
		return d, plant, labels
	}},
	{name: "kube", new: func(t *testing.T) (createOnceStore, func(map[string]string, map[string][]byte), func() map[string]string) {
		cs := fake.NewClientset()
		plant := func(labels map[string]string, data map[string][]byte) {
			obj := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Labels: labels}, Data: data}
			if err := cs.Tracker().Add(obj); err != nil {
				t.Fatal(err)
			}
		}
		labels := func() map[string]string { return getSecret(t, cs, "ns", "s").Labels }
		return NewKube(cs), plant, labels
	}},
}

// CreateOnce creates a missing Secret, marked as osbgit's; returns an
// existing one of osbgit's as it is, without writing; and leaves one
// osbgit does not manage untouched, with ErrNotManaged.
func TestCreateOnce(t *testing.T) {
	ctx := context.Background()
	mine := secrets.Secret{
		Data:   map[string][]byte{"key": []byte("mine")},
		Labels: map[string]string{secrets.LabelManagedBy: secrets.ManagedByValue, "osbgit.dev/purpose": "test"},
	}
	theirs := map[string][]byte{"key": []byte("theirs"), "other": []byte("x")}
	osbgits := map[string]string{secrets.LabelManagedBy: secrets.ManagedByValue}
	helms := map[string]string{secrets.LabelManagedBy: "helm"}
	tests := []struct {
		name       string
		planted    map[string]string // labels of a Secret planted first; nil: none
		want       map[string][]byte
		wantErr    error
		wantLabels map[string]string
	}{
		{name: "missing: created, marked as osbgit's", want: mine.Data, wantLabels: mine.Labels},
		{name: "osbgit's: returned as it is", planted: osbgits, want: theirs, wantLabels: osbgits},
		{name: "not osbgit's: untouched", planted: helms, wantErr: secrets.ErrNotManaged, wantLabels: helms},
	}
	for _, b := range createOnceBackends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				store, plant, labels := b.new(t)
				if tt.planted != nil {
					plant(tt.planted, theirs)
				}
				got, err := store.CreateOnce(ctx, "ns", "s", mine)
				if tt.wantErr != nil {
					var nm *NotManagedError
					if !errors.Is(err, tt.wantErr) || !errors.As(err, &nm) || nm.Namespace != "ns" || nm.Name != "s" {
						t.Fatalf("err = %v, want NotManagedError for ns/s matching %v", err, tt.wantErr)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("CreateOnce data (-want +got):\n%s", diff)
				}
				stored, err := store.Get(ctx, "ns", "s")
				if err != nil {
					t.Fatal(err)
				}
				wantStored := tt.want
				if tt.planted != nil {
					wantStored = theirs
				}
				if diff := cmp.Diff(wantStored, stored); diff != "" {
					t.Errorf("stored data (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.wantLabels, labels()); diff != "" {
					t.Errorf("labels (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// CreateOnce validates names before any write, like Put.
func TestCreateOnceRejectsInvalidNames(t *testing.T) {
	for _, b := range createOnceBackends {
		store, _, _ := b.new(t)
		for _, c := range []struct{ ns, name, key string }{
			{"../x", "s", "k"},
			{"ns", "A_B", "k"},
			{"ns", "s", "bad key"},
		} {
			_, err := store.CreateOnce(context.Background(), c.ns, c.name, secrets.Secret{Data: map[string][]byte{c.key: []byte("v")}})
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("%s: CreateOnce(%q, %q, key %q) = %v, want ErrInvalidName", b.name, c.ns, c.name, c.key, err)
			}
		}
	}
}

// Many goroutines calling CreateOnce at once, each with its own data, all
// get the data of one of them, the one the store then holds.
func TestCreateOnceConcurrentCallersAgree(t *testing.T) {
	const callers = 16
	for _, b := range createOnceBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			store, _, _ := b.new(t)
			got := make([]map[string][]byte, callers)
			errs := make([]error, callers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					s := secrets.Secret{Data: map[string][]byte{"key": []byte(fmt.Sprintf("caller-%02d", i))}}
					got[i], errs[i] = store.CreateOnce(ctx, "ns", "s", s)
				}()
			}
			close(start)
			wg.Wait()
			stored, err := store.Get(ctx, "ns", "s")
			if err != nil {
				t.Fatal(err)
			}
			for i := range callers {
				if errs[i] != nil {
					t.Errorf("caller %d: %v", i, errs[i])
				} else if !cmp.Equal(got[i], stored) {
					t.Errorf("caller %d got %q, the store holds %q", i, got[i], stored)
				}
			}
		})
	}
}

// A Secret found by Create but gone by the Get after it (deleted in
// between) is created again, not reported missing.
func TestKubeCreateOnceRecreatesASecretDeletedMeanwhile(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	raced := false
	cs.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if raced {
			return false, nil, nil
		}
		raced = true
		return true, nil, apierrors.NewAlreadyExists(corev1.Resource("secrets"), "s")
	})
	mine := secrets.Secret{Data: map[string][]byte{"key": []byte("mine")}}
	got, err := NewKube(cs).CreateOnce(ctx, "ns", "s", mine)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(got, mine.Data) || !cmp.Equal(getSecret(t, cs, "ns", "s").Data, mine.Data) {
		t.Errorf("CreateOnce = %q, stored %q; want both %q", got, getSecret(t, cs, "ns", "s").Data, mine.Data)
	}
	if got, want := mutatingVerbs(cs), []string{"create", "create"}; !cmp.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

// A Secret directory a killed write left (temp files only) is no one's
// Secret: CreateOnce replaces it.
func TestDirCreateOnceReplacesALeftover(t *testing.T) {
	d, root := newTestDir(t)
	mustWrite(t, filepath.Join(root, "ns", "s", tmpPrefix+"X"), "half")
	mine := secrets.Secret{Data: map[string][]byte{"key": []byte("mine")}}
	got, err := d.CreateOnce(context.Background(), "ns", "s", mine)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(got, mine.Data) {
		t.Errorf("CreateOnce = %q, want %q", got, mine.Data)
	}
	assertNoTemps(t, root)
	assertPrivate(t, root)
}
