package integrity

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// Both stores satisfy what the Keeper needs.
var (
	_ SecretStore = (*secretstore.Dir)(nil)
	_ SecretStore = (*secretstore.Kube)(nil)
)

const testNamespace = "osbgit-system"

// newDirStore returns a directory store at root; two calls with one root
// are two processes' views of one store (each has its own in-process
// locks, so only the file locks serialise them).
func newDirStore(t *testing.T, root string) *secretstore.Dir {
	t.Helper()
	d, err := secretstore.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestKeeperKeyIsCreatedOnceAndKept(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	store := newDirStore(t, root)
	key, err := NewKeeper(store, testNamespace).Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 || bytes.Equal(key, make([]byte, 32)) {
		t.Fatalf("key = %d bytes, want 32 random bytes", len(key))
	}
	stored, err := store.Get(ctx, testNamespace, KeySecretName)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]byte{"key": key}, stored); diff != "" {
		t.Errorf("key Secret (-want +got):\n%s", diff)
	}
	// Another process's Keeper, on the same store, reads the same key.
	again, err := NewKeeper(newDirStore(t, root), testNamespace).Key(ctx)
	if err != nil || !bytes.Equal(again, key) {
		t.Errorf("second Keeper's key differs (err %v)", err)
	}
	// The slice returned is the caller's: changing it changes nothing.
	k := NewKeeper(store, testNamespace)
	first, _ := k.Key(ctx)
	first[0] ^= 0xff
	if second, _ := k.Key(ctx); !bytes.Equal(second, key) {
		t.Error("changing a returned key changed the Keeper's")
	}
}

// Two Keepers on one store, each of a process of its own, asking for the
// key at the same time before it exists, get the same key: the one
// CreateOnce let win. Rounds repeat the race on fresh stores.
func TestKeeperConcurrentKeyFromTwoKeepersYieldsOneKey(t *testing.T) {
	ctx := context.Background()
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for round := range rounds {
		root := filepath.Join(t.TempDir(), "store")
		keepers := []*Keeper{NewKeeper(newDirStore(t, root), testNamespace), NewKeeper(newDirStore(t, root), testNamespace)}
		keys := make([][]byte, 2*len(keepers))
		errs := make([]error, len(keys))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				keys[i], errs[i] = keepers[i%len(keepers)].Key(ctx)
			}()
		}
		close(start)
		wg.Wait()
		stored, err := newDirStore(t, root).Get(ctx, testNamespace, KeySecretName)
		if err != nil {
			t.Fatal(err)
		}
		for i := range keys {
			if errs[i] != nil {
				t.Fatalf("round %d, caller %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], stored["key"]) {
				t.Fatalf("round %d, caller %d: its key is not the stored one", round, i)
			}
		}
	}
}

// The Keeper's Secrets are written as osbgit's, like every Secret it
// writes.
func TestKeeperSecretsAreMarkedAsOsbgits(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	k := NewKeeper(secretstore.NewKube(cs), testNamespace)
	if _, err := k.Key(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Raise(ctx, "status", 1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{KeySecretName, SequenceSecretName} {
		s, err := cs.CoreV1().Secrets(testNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Labels[secrets.LabelManagedBy]; got != secrets.ManagedByValue {
			t.Errorf("%s: label %s = %q, want %q", name, secrets.LabelManagedBy, got, secrets.ManagedByValue)
		}
		if s.Annotations[annotationDescription] == "" {
			t.Errorf("%s: no description", name)
		}
	}
}

// A key Secret that is there but holds too short a key (edited by hand)
// is an error that names the Secret and never shows the value.
func TestKeeperRefusesAShortKey(t *testing.T) {
	ctx := context.Background()
	store := newDirStore(t, filepath.Join(t.TempDir(), "store"))
	const value = "hunter2-short-key"
	if err := store.Put(ctx, testNamespace, KeySecretName, secrets.Secret{Data: map[string][]byte{"key": []byte(value)}}); err != nil {
		t.Fatal(err)
	}
	_, err := NewKeeper(store, testNamespace).Key(ctx)
	if err == nil {
		t.Fatal("a 17-byte key was accepted")
	}
	if !strings.Contains(err.Error(), testNamespace+"/"+KeySecretName) || strings.Contains(err.Error(), value) {
		t.Errorf("err = %q, want it to name the Secret and not show the key", err)
	}
}

func TestKeeperHighestAndRaise(t *testing.T) {
	type raise struct {
		branch string
		seq    uint64
	}
	tests := []struct {
		name   string
		raises []raise
		want   map[string]uint64 // Highest per branch afterwards
	}{
		{name: "none recorded", want: map[string]uint64{"status": 0, "main": 0}},
		{name: "raised", raises: []raise{{"status", 1}, {"status", 2}, {"status", 5}}, want: map[string]uint64{"status": 5}},
		{name: "never lowered", raises: []raise{{"status", 9}, {"status", 3}, {"status", 0}, {"status", 9}}, want: map[string]uint64{"status": 9}},
		{name: "branches apart", raises: []raise{{"status", 4}, {"team-a/status", 7}, {"status", 5}}, want: map[string]uint64{"status": 5, "team-a/status": 7, "main": 0}},
		{name: "largest sequence", raises: []raise{{"status", 1<<64 - 1}}, want: map[string]uint64{"status": 1<<64 - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			root := filepath.Join(t.TempDir(), "store")
			k := NewKeeper(newDirStore(t, root), testNamespace)
			for _, r := range tt.raises {
				if err := k.Raise(ctx, r.branch, r.seq); err != nil {
					t.Fatalf("Raise(%q, %d): %v", r.branch, r.seq, err)
				}
			}
			// Read back by another process's Keeper: it is in the store.
			next := NewKeeper(newDirStore(t, root), testNamespace)
			for branch, want := range tt.want {
				if got, err := next.Highest(ctx, branch); err != nil || got != want {
					t.Errorf("Highest(%q) = %d, %v; want %d", branch, got, err, want)
				}
			}
		})
	}
}

// The sequence Secret holds one decimal per branch, under "seq-" and 16
// hex digits of the branch's SHA-256.
func TestKeeperSequenceSecretLayout(t *testing.T) {
	ctx := context.Background()
	store := newDirStore(t, filepath.Join(t.TempDir(), "store"))
	k := NewKeeper(store, testNamespace)
	for branch, seq := range map[string]uint64{"status": 12, "a/b": 3} {
		if err := k.Raise(ctx, branch, seq); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.Get(ctx, testNamespace, SequenceSecretName)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"seq-" + "073c1634c496cdb6": []byte("12"), // sha256("status")
		"seq-" + "c14cddc033f64b9d": []byte("3"),  // sha256("a/b")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sequence Secret (-want +got):\n%s", diff)
	}
}

// Raises from many goroutines of one Keeper, for several branches, lose
// nothing: each branch ends at the highest raised.
func TestKeeperConcurrentRaisesOfOneKeeper(t *testing.T) {
	ctx := context.Background()
	k := NewKeeper(newDirStore(t, filepath.Join(t.TempDir(), "store")), testNamespace)
	branches := []string{"b0", "b1", "b2"}
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- k.Raise(ctx, branches[i%len(branches)], uint64(i+1))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range branches {
		want := uint64(30 - len(branches) + i + 1)
		if got, err := k.Highest(ctx, b); err != nil || got != want {
			t.Errorf("Highest(%s) = %d, %v; want %d", b, got, err, want)
		}
	}
}

// A sequence edited into something that is not a number is an error
// naming the Secret and the branch, from Highest and from Raise: osbgit
// does not guess a rollback baseline.
func TestKeeperRefusesAMalformedSequence(t *testing.T) {
	ctx := context.Background()
	store := newDirStore(t, filepath.Join(t.TempDir(), "store"))
	k := NewKeeper(store, testNamespace)
	if err := k.Raise(ctx, "status", 4); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, testNamespace, SequenceSecretName, secrets.Secret{Data: map[string][]byte{sequenceKey("status"): []byte("four")}}); err != nil {
		t.Fatal(err)
	}
	_, errHighest := k.Highest(ctx, "status")
	errRaise := k.Raise(ctx, "status", 5)
	for op, err := range map[string]error{"Highest": errHighest, "Raise": errRaise} {
		if err == nil || !strings.Contains(err.Error(), SequenceSecretName) || !strings.Contains(err.Error(), `"status"`) {
			t.Errorf("%s: err = %v, want an error naming the Secret and the branch", op, err)
		}
	}
	if got, _ := store.Get(ctx, testNamespace, SequenceSecretName); string(got[sequenceKey("status")]) != "four" {
		t.Errorf("Raise overwrote a malformed sequence: %q", got)
	}
	// Other branches still work.
	if err := k.Raise(ctx, "other", 2); err != nil {
		t.Errorf("Raise of another branch: %v", err)
	}
}

// A store that fails is reported with the Keeper's context, and a failed
// Key is not cached: once the store works, the key is made.
func TestKeeperStoreErrors(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	if err := os.WriteFile(root, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := NewKeeper(newDirStore(t, root), testNamespace)
	if _, err := k.Key(ctx); err == nil || !strings.Contains(err.Error(), "records signing key") {
		t.Errorf("Key: err = %v", err)
	}
	if _, err := k.Highest(ctx, "status"); err == nil || !strings.Contains(err.Error(), "records sequence") {
		t.Errorf("Highest: err = %v", err)
	}
	if err := k.Raise(ctx, "status", 1); err == nil {
		t.Error("Raise: no error")
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if key, err := k.Key(ctx); err != nil || len(key) != 32 {
		t.Errorf("Key after the store recovered: %d bytes, %v", len(key), err)
	}
}
