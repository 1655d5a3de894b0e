// Package secretstore is where osbgit keeps secret material: the
// credentials a broker returns for a binding, and the Secrets it reads for
// broker authentication and parametersFrom.
//
// Two backends implement the same small Store interface: Kube (a
// Kubernetes Secret per binding, through client-go) and Dir (a directory per
// Secret and a file per key under a local path, the layout of a mounted
// Secret volume). Parse turns the --secret-store flag into one of them.
//
// Nothing in this package logs, and no error it returns contains a secret
// value: errors name the namespace, the Secret, the key and the operation,
// never the bytes. Callers may put these errors in logs, status records and
// Git.
package secretstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels and annotations osbgit puts on the Secrets it writes. The managed-by
// label is what marks a Secret as osbgit's: Put and Delete refuse to touch a
// Secret without it, so a Secret created by hand or by another tool is never
// overwritten or deleted.
const (
	// LabelManagedBy is the well-known Kubernetes label naming the tool
	// that manages an object.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy on osbgit's Secrets.
	ManagedByValue = "osbgit"
	// LabelBindingName names the ServiceBinding whose credentials the
	// Secret holds (set only when the name fits a label value, 63
	// characters; AnnotationBindingName always carries it).
	LabelBindingName = "osbgit.dev/binding-name"
	// LabelBindingNamespace is the namespace of that ServiceBinding, so
	// `kubectl get secrets -l` can select a namespace's bindings.
	LabelBindingNamespace = "osbgit.dev/binding-namespace"
	// AnnotationBindingName carries the full ServiceBinding name, which
	// may be longer than a label value allows.
	AnnotationBindingName = "osbgit.dev/binding-name"
	// AnnotationBindingExternalID is the OSB binding_id the credentials
	// were issued for, so an operator can match a Secret with the broker.
	AnnotationBindingExternalID = "osbgit.dev/binding-external-id"

	// ownedPrefix marks the label and annotation keys osbgit owns: on
	// update, keys with this prefix that the new Secret does not carry
	// are removed, while other tools' labels are left alone.
	ownedPrefix = "osbgit.dev/"
)

// ErrNotFound is returned (wrapped; test with errors.Is) by Get when the
// Secret does not exist, and by GetKey when the Secret or the key does not.
var ErrNotFound = errors.New("not found")

// ErrInvalidName is returned (wrapped) when a namespace, Secret name or key
// is not valid: namespaces must be DNS-1123 labels, Secret names DNS-1123
// subdomains, keys match [-._a-zA-Z0-9]+ (the Kubernetes Secret key rule).
// Validation also keeps hostile names out of the Dir backend's paths.
var ErrInvalidName = errors.New("invalid name")

// NotManagedError is returned (wrapped; use errors.As) by Put and Delete
// when the target Secret exists but does not carry the label
// app.kubernetes.io/managed-by=osbgit: osbgit never overwrites or deletes a
// Secret it did not create.
type NotManagedError struct {
	// Namespace and Name identify the Secret that was left alone.
	Namespace, Name string
}

// Error names the Secret and says why it was not modified.
func (e *NotManagedError) Error() string {
	return fmt.Sprintf("secret %s/%s exists but is not managed by osbgit (no label %s=%s); refusing to overwrite or delete it",
		e.Namespace, e.Name, LabelManagedBy, ManagedByValue)
}

// Reader is the read-only part of a Store. diff and catalog only read
// (broker auth, parametersFrom), so they take a Reader.
type Reader interface {
	// Get returns the data of Secret namespace/name, one entry per key.
	// The returned map is the caller's to modify. A missing Secret is
	// an error wrapping ErrNotFound.
	Get(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// Store is where binding credentials are written and secrets are read. Put
// and Delete only ever touch Secrets labelled as managed by osbgit (see
// NotManagedError).
type Store interface {
	Reader
	// Put creates Secret namespace/name or updates it in place so that
	// its data is exactly s.Data (keys not in s.Data are removed) and
	// its osbgit labels and annotations are those of s. Put adds the
	// managed-by label itself. When nothing differs, Put writes nothing.
	Put(ctx context.Context, namespace, name string, s Secret) error
	// Delete removes Secret namespace/name. A missing Secret is not an
	// error.
	Delete(ctx context.Context, namespace, name string) error
}

// Secret is what Put writes: the data plus the labels and annotations that
// point back at the binding (see BindingSecret).
type Secret struct {
	// Data maps each key to its value.
	Data map[string][]byte
	// Labels to set; LabelManagedBy is always added by Put.
	Labels map[string]string
	// Annotations to set.
	Annotations map[string]string
}

// BindingSecret builds the Secret for a ServiceBinding's credentials, with
// the labels and annotations that point at the binding: its namespace, its
// name, and the OSB binding_id (externalID; omitted when empty).
func BindingSecret(data map[string][]byte, bindingNamespace, bindingName, externalID string) Secret {
	s := Secret{
		Data: data,
		Labels: map[string]string{
			LabelManagedBy:        ManagedByValue,
			LabelBindingNamespace: bindingNamespace,
		},
		Annotations: map[string]string{
			AnnotationBindingName: bindingName,
		},
	}
	if len(validation.IsValidLabelValue(bindingName)) == 0 {
		s.Labels[LabelBindingName] = bindingName
	}
	if externalID != "" {
		s.Annotations[AnnotationBindingExternalID] = externalID
	}
	return s
}

// GetKey returns one key of Secret namespace/name. A missing Secret or key
// is an error wrapping ErrNotFound that names namespace, name and key (never
// the value). It is how broker auth (username, password, token) and
// parametersFrom secretKeyRefs are resolved.
func GetKey(ctx context.Context, r Reader, namespace, name, key string) ([]byte, error) {
	data, err := r.Get(ctx, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("read key %q of secret %s/%s: %w", key, namespace, name, err)
	}
	v, ok := data[key]
	if !ok {
		return nil, fmt.Errorf("read key %q of secret %s/%s: key %w", key, namespace, name, ErrNotFound)
	}
	return v, nil
}

// ReadFunc adapts a Reader to the readSecret argument of ApplyTransforms
// and BindingData, binding ctx.
func ReadFunc(ctx context.Context, r Reader) func(namespace, name string) (map[string][]byte, error) {
	return func(namespace, name string) (map[string][]byte, error) {
		return r.Get(ctx, namespace, name)
	}
}

// isManaged reports whether labels mark an object as osbgit's.
func isManaged(labels map[string]string) bool {
	return labels[LabelManagedBy] == ManagedByValue
}

// desiredLabels returns s's labels plus the managed-by label.
func desiredLabels(s Secret) map[string]string {
	l := make(map[string]string, len(s.Labels)+1)
	maps.Copy(l, s.Labels)
	l[LabelManagedBy] = ManagedByValue
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
	if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
		return fmt.Errorf("%w: namespace %q: %s", ErrInvalidName, namespace, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return fmt.Errorf("%w: secret name %q: %s", ErrInvalidName, name, strings.Join(msgs, "; "))
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
