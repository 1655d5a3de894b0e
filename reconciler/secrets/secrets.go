// Package secrets is how osbgit uses Secrets, whatever stores them: the
// one interface for reading them (Reader: broker auth, parametersFrom,
// addKeysFrom, and binding credentials learnt for scrubbing) and the one
// for writing them (Store: binding credentials), the Secret a binding's
// credentials become (BindingData applies its secretTransforms,
// BindingSecret adds the labels that point back at the binding), and the
// Learner that teaches a redact.Set the credentials a broker may quote.
//
// The storage adapters (reconciler/secretstore: Kubernetes Secrets or a
// directory) implement Store; nothing here knows how a Secret is kept.
// Errors never contain a secret value.
package secrets

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Reader reads Secrets. Get returns the data of Secret namespace/name, one
// entry per key; the map is the caller's to modify. A missing Secret is an
// error; no error holds a value.
type Reader interface {
	Get(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// Store is where binding credentials are written, and Secrets read.
type Store interface {
	Reader
	// Put creates Secret namespace/name or updates it in place so that
	// its data is exactly s.Data and its osbgit labels and annotations
	// are those of s (others' are kept); the store marks it as managed
	// by osbgit (LabelManagedBy). A Secret that exists without that mark
	// is left untouched and Put returns an error matching ErrNotManaged.
	// When nothing differs, Put writes nothing.
	Put(ctx context.Context, namespace, name string, s Secret) error
	// Delete removes Secret namespace/name. A missing Secret is not an
	// error; one osbgit does not manage is left alone with an error
	// matching ErrNotManaged.
	Delete(ctx context.Context, namespace, name string) error
}

// ErrNotFound matches (errors.Is) the error of Reader.Get for a Secret
// that does not exist.
var ErrNotFound = errors.New("not found")

// ErrNotManaged matches (errors.Is) the error of Store.Put and
// Store.Delete on a Secret that exists but was not created by osbgit:
// osbgit never overwrites or deletes such a Secret.
var ErrNotManaged = errors.New("secret not managed by osbgit")

// Labels and annotations of the Secrets osbgit writes. The managed-by
// label is what marks a Secret as osbgit's (see ErrNotManaged); the others
// point at the binding whose credentials it holds.
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
)

// Secret is what Store.Put writes: the data plus the labels and
// annotations that point back at the binding (see BindingSecret).
type Secret struct {
	// Data maps each key to its value.
	Data map[string][]byte
	// Labels to set; the store always adds LabelManagedBy.
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
