package secrets_test

import (
	"context"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/redact"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// TestLearner: asking about a binding learns its own Secret, asking about
// an instance learns its bindings' Secrets, a Secret that cannot be read is
// reported and learnt once it can be.
func TestLearner(t *testing.T) {
	ctx := context.Background()
	store := storeWith(t, map[string]map[string][]byte{
		"apps/db-creds":    {"password": []byte("db-password-1f3a")},
		"other/cache-auth": {"token": []byte("cache-token-9b2c")},
	})
	bind := func(name, instance, secretNS, secretName string) (manifest.Ref, *manifest.StatusRecord) {
		ref := manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: name}
		rec := manifest.NewStatusRecord(ref)
		rec.InstanceName = instance
		rec.SecretRef = &manifest.SecretRef{Namespace: secretNS, Name: secretName}
		return ref, rec
	}
	records := map[manifest.Ref]*manifest.StatusRecord{}
	dbBinding, rec := bind("db-binding", "db", "", "db-creds") // namespace defaults to the binding's
	records[dbBinding] = rec
	cacheBinding, rec := bind("cache-binding", "cache", "other", "cache-auth")
	records[cacheBinding] = rec
	lateBinding, rec := bind("late-binding", "cache", "apps", "late")
	records[lateBinding] = rec
	cache := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "cache"}

	set := redact.New()
	l := secrets.NewLearner(set, store, records)
	known := func(v string) bool { return set.Scrub("x "+v) != "x "+v }

	if err := l.Learn(ctx, dbBinding); err != nil {
		t.Fatal(err)
	}
	if !known("db-password-1f3a") || known("cache-token-9b2c") {
		t.Fatal("a binding must teach its own Secret, and only that")
	}
	err := l.Learn(ctx, cache)
	if err == nil || !strings.Contains(err.Error(), "apps/late") {
		t.Fatalf("Learn(instance) = %v, want an error naming the unreadable Secret apps/late", err)
	}
	if !known("cache-token-9b2c") {
		t.Fatal("an instance must teach its bindings' Secrets, even when one cannot be read")
	}
	if err := store.Put(ctx, "apps", "late", secrets.Secret{Data: map[string][]byte{"k": []byte("late-value-77aa")}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Learn(ctx, cache); err != nil || !known("late-value-77aa") {
		t.Fatalf("a Secret unreadable before is read again: %v", err)
	}

	// A nil set or reader learns nothing and fails nothing.
	if err := secrets.NewLearner(nil, store, records).Learn(ctx, dbBinding); err != nil {
		t.Error(err)
	}
	if err := secrets.NewLearner(redact.New(), nil, records).Learn(ctx, dbBinding); err != nil {
		t.Error(err)
	}
}
