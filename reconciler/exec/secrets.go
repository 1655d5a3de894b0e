package exec

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// secretTarget is where the step's binding credentials go: the step's
// SecretNamespace/SecretName, defaulting to the binding's namespace and
// name.
func (r *stepRun) secretTarget() (namespace, name string) {
	namespace, name = r.s.SecretNamespace, r.s.SecretName
	if namespace == "" {
		namespace = r.s.Ref.Namespace
	}
	if name == "" {
		name = r.s.Ref.Name
	}
	return namespace, name
}

// writeSecret turns credentials into Secret data (secretTransforms applied,
// addKeysFrom read from the store, one key per credential, non-strings as
// JSON) and writes it, labelled and annotated with the binding. It returns
// the reference to record: namespace, name and sorted keys, never a value.
func (r *stepRun) writeSecret(ctx context.Context, creds map[string]any) (*manifest.SecretRef, error) {
	if r.e.Secrets == nil {
		return nil, errors.New("no secret store configured")
	}
	ns, name := r.secretTarget()
	data, err := secrets.BindingData(ctx, creds, r.s.SecretTransforms, learningReader{r.e.Secrets, r.e.Redact}, ns)
	if err != nil {
		return nil, fmt.Errorf("credentials for Secret %s/%s: %w", ns, name, err)
	}
	sec := secrets.BindingSecret(data, r.s.Ref.Namespace, r.s.Ref.Name, r.externalID())
	if err := r.e.Secrets.Put(ctx, ns, name, sec); err != nil {
		return nil, fmt.Errorf("write Secret %s/%s: %w", ns, name, err)
	}
	if r.e.SecretWritten != nil {
		r.e.SecretWritten(ns, name, data)
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return &manifest.SecretRef{Namespace: ns, Name: name, Keys: keys}, nil
}

// deleteSecret removes the binding's Secret: the recorded SecretRef, else
// the step's target when the step names one. A Secret that is missing, or
// not osbgit's (secrets.ErrNotManaged), is left alone without error.
func (r *stepRun) deleteSecret(ctx context.Context) error {
	var ns, name string
	switch {
	case r.rec != nil && r.rec.SecretRef != nil:
		ns, name = r.rec.SecretRef.Namespace, r.rec.SecretRef.Name
		if ns == "" {
			ns = r.s.Ref.Namespace
		}
	case r.s.SecretName != "":
		ns, name = r.secretTarget()
	default:
		return nil
	}
	if r.e.Secrets == nil {
		return errors.New("no secret store configured")
	}
	err := r.e.Secrets.Delete(ctx, ns, name)
	if errors.Is(err, secrets.ErrNotManaged) {
		r.logger().WithField("secret", ns+"/"+name).Warn("Secret is not managed by osbgit; left in place")
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete Secret %s/%s: %w", ns, name, err)
	}
	return nil
}

// learningReader reads addKeysFrom Secrets, teaching set every value
// read: they end up beside the credentials.
type learningReader struct {
	secrets.Reader
	set *redact.Set
}

// Get implements secrets.Reader.
func (l learningReader) Get(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	data, err := l.Reader.Get(ctx, namespace, name)
	l.set.AddSecretData(data)
	return data, err
}

// newLearner indexes the recorded Secrets of p's bindings (nil when there
// is no set or no store).
func newLearner(e *Executor, p *plan.Plan) *secrets.Learner {
	if e.Redact == nil || e.Secrets == nil {
		return nil
	}
	recs := map[manifest.Ref]*manifest.StatusRecord{}
	for i := range p.Steps {
		if s := &p.Steps[i]; s.Record != nil {
			recs[s.Ref] = s.Record
		}
	}
	return secrets.NewLearner(e.Redact, e.Secrets, recs)
}

// learnStoredCredentials teaches Executor.Redact, before the step calls
// the broker, the stored credentials the broker may quote: a binding's
// own, or those of an instance's bindings. A Secret that cannot be read is
// skipped (the call's own failure, if any, says more).
func (r *stepRun) learnStoredCredentials(ctx context.Context) {
	if err := r.learner().Learn(ctx, r.s.Ref); err != nil {
		r.logger().WithError(err).Debug("binding Secret not read; its values are not scrubbed from broker answers")
	}
}

func metaNow(t time.Time) metav1.Time { return metav1.NewTime(t.UTC().Truncate(time.Second)) }
