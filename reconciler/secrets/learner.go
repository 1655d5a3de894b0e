package secrets

import (
	"context"
	"errors"
	"sync"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/redact"
)

// Learner teaches a redact.Set the stored credentials a broker may quote
// when osbgit asks it about a resource: a binding's own Secret, and the
// Secrets of an instance's bindings. Learning them before the call means a
// process that did not bind (a later CronJob pass, a diff) still scrubs
// them from the broker's answers. Each Secret is read at most once; safe
// for concurrent use.
type Learner struct {
	set    *redact.Set
	reader Reader
	// stored lists, by the refs a broker answer may quote them for, the
	// Secrets holding recorded binding credentials.
	stored map[manifest.Ref][]manifest.SecretRef
	done   sync.Map // "namespace/name" → struct{}
}

// NewLearner indexes where the credentials of the recorded bindings are
// stored (each binding's SecretRef, under the binding's ref and under its
// instance's). With a nil set or reader, Learn does nothing.
func NewLearner(set *redact.Set, r Reader, records map[manifest.Ref]*manifest.StatusRecord) *Learner {
	stored := map[manifest.Ref][]manifest.SecretRef{}
	for ref, rec := range records {
		if ref.Kind != manifest.KindServiceBinding || rec == nil || rec.SecretRef == nil {
			continue
		}
		sec := *rec.SecretRef
		if sec.Namespace == "" {
			sec.Namespace = ref.Namespace
		}
		stored[ref] = append(stored[ref], sec)
		if rec.InstanceName != "" {
			inst := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: ref.Namespace, Name: rec.InstanceName}
			stored[inst] = append(stored[inst], sec)
		}
	}
	return &Learner{set: set, reader: r, stored: stored}
}

// Learn adds to the set every value of the Secrets stored for ref. A
// Secret that cannot be read is skipped (and tried again next time); the
// error names it. A missing Secret is no reason to fail a call, so callers
// usually only log it.
func (l *Learner) Learn(ctx context.Context, ref manifest.Ref) error {
	if l == nil || l.set == nil || l.reader == nil {
		return nil
	}
	var errs []error
	for _, sec := range l.stored[ref] {
		key := sec.Namespace + "/" + sec.Name
		if _, ok := l.done.Load(key); ok {
			continue
		}
		data, err := l.reader.Get(ctx, sec.Namespace, sec.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l.set.AddSecretData(data)
		l.done.Store(key, struct{}{})
	}
	return errors.Join(errs...)
}
