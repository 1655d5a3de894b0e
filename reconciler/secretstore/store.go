// Package secretstore is where osbgit keeps Secrets: the credentials a
// broker returns for a binding, and the Secrets it reads for broker
// authentication, parametersFrom and addKeysFrom.
//
// Two backends implement secrets.Store, the interface the reconciler
// declares: Kube (a Kubernetes Secret per binding, through client-go) and
// Dir (a directory per Secret and a file per key under a local path, the
// layout of a mounted Secret volume). Parse turns the --secret-store flag
// into one of them. They only store: what a binding's Secret holds
// (secretTransforms, labels) is decided in package secrets. Both also
// offer CreateOnce, for a Secret that must be made once however many
// processes start together (the key that signs osbgit's records, see
// reconciler/integrity).
//
// Nothing in this package logs, and no error it returns contains a secret
// value: errors name the namespace, the Secret, the key and the operation,
// never the bytes. Callers may put these errors in logs, status records and
// Git.
package secretstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

// ownedPrefix marks the label and annotation keys osbgit owns (those of
// secrets.BindingSecret): on update, keys with this prefix that the new
// Secret does not carry are removed, while other tools' labels are left
// alone.
const ownedPrefix = "osbgit.dev/"

// ErrNotFound is returned (wrapped; test with errors.Is) by Get when the
// Secret does not exist. It is secrets.ErrNotFound, which the reconciler
// tests for without knowing the store.
var ErrNotFound = secrets.ErrNotFound

// ErrInvalidName is returned (wrapped) when a namespace, Secret name or key
// is not valid: namespaces must be DNS-1123 labels, Secret names DNS-1123
// subdomains, keys match [-._a-zA-Z0-9]+ (the Kubernetes Secret key rule).
// Validation also keeps hostile names out of the Dir backend's paths.
var ErrInvalidName = errors.New("invalid name")

// NotManagedError is returned (wrapped; use errors.As, or errors.Is with
// secrets.ErrNotManaged) by Put and Delete when the target Secret exists
// but does not carry the label app.kubernetes.io/managed-by=osbgit: osbgit
// never overwrites or deletes a Secret it did not create.
type NotManagedError struct {
	// Namespace and Name identify the Secret that was left alone.
	Namespace, Name string
}

// Error names the Secret and says why it was not modified.
func (e *NotManagedError) Error() string {
	return fmt.Sprintf("secret %s/%s exists but is not managed by osbgit (no label %s=%s); refusing to overwrite or delete it",
		e.Namespace, e.Name, secrets.LabelManagedBy, secrets.ManagedByValue)
}

// Is makes the error match secrets.ErrNotManaged.
func (e *NotManagedError) Is(target error) bool { return target == secrets.ErrNotManaged }

// isManaged reports whether labels mark an object as osbgit's.
func isManaged(labels map[string]string) bool {
	return labels[secrets.LabelManagedBy] == secrets.ManagedByValue
}

// desiredLabels returns s's labels plus the managed-by label.
func desiredLabels(s secrets.Secret) map[string]string {
	l := make(map[string]string, len(s.Labels)+1)
	maps.Copy(l, s.Labels)
	l[secrets.LabelManagedBy] = secrets.ManagedByValue
	return l
}

// mergeOwned updates cur in place to carry every entry of want, and drops
// entries with osbgit's prefix that want does not have; other keys (another
// tool's labels) are kept. It reports whether anything changed.
func mergeOwned(cur *map[string]string, want map[string]string) bool {
	changed := false
	if *cur == nil && len(want) > 0 {
		*cur = make(map[string]string, len(want))
	}
	for k, v := range want {
		if old, ok := (*cur)[k]; !ok || old != v {
			(*cur)[k] = v
			changed = true
		}
	}
	for k := range *cur {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, ownedPrefix) {
			delete(*cur, k)
			changed = true
		}
	}
	return changed
}

// copyData returns a deep copy of data, never nil.
func copyData(data map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(data))
	for k, v := range data {
		out[k] = append([]byte(nil), v...)
	}
	return out
}

// equalData reports whether a and b hold the same keys and values; a nil
// and an empty value are equal (the API server does not distinguish them).
func equalData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok || string(av) != string(bv) {
			return false
		}
	}
	return true
}

// validateRef checks a namespace and Secret name.
func validateRef(namespace, name string) error {
	if err := validateNamespace(namespace); err != nil {
		return err
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return fmt.Errorf("%w: secret name %q: %s", ErrInvalidName, name, strings.Join(msgs, "; "))
	}
	return nil
}

// validateNamespace checks a namespace name (a DNS label).
func validateNamespace(namespace string) error {
	if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
		return fmt.Errorf("%w: namespace %q: %s", ErrInvalidName, namespace, strings.Join(msgs, "; "))
	}
	return nil
}

// validateKey checks a Secret key: [-._a-zA-Z0-9]+, at most 253
// characters, not "." or "..", not starting with "..".
func validateKey(key string) error {
	if msgs := validation.IsConfigMapKey(key); len(msgs) > 0 {
		return fmt.Errorf("%w: key %q: %s", ErrInvalidName, key, strings.Join(msgs, "; "))
	}
	return nil
}

// validateKeys checks every key of data, in a stable order so the error
// is reproducible.
func validateKeys(data map[string][]byte, check func(string) error) error {
	for _, k := range sortedKeys(data) {
		if err := check(k); err != nil {
			return err
		}
	}
	return nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
