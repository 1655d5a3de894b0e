package redact

import (
	"context"
	"sync"
)

// SecretLearner teaches a Set the values of Secrets, reading each Secret at
// most once: before osbgit asks a broker about an instance or a binding
// that has credentials in the secret store, the credentials are learnt, so
// that a process that did not bind (a later CronJob pass, a diff) still
// scrubs them when the broker quotes them. Safe for concurrent use.
type SecretLearner struct {
	// Set receives the values (nil: Learn does nothing).
	Set *Set
	// Get reads a Secret's data (nil: Learn does nothing).
	Get func(ctx context.Context, namespace, name string) (map[string][]byte, error)

	done sync.Map // "namespace/name" → struct{}
}

// Learn adds every value of Secret namespace/name to the set, once. An
// error reading it is returned (and the Secret tried again next time); a
// missing Secret is not a reason to fail a call, so callers usually only
// log it.
func (l *SecretLearner) Learn(ctx context.Context, namespace, name string) error {
	if l == nil || l.Set == nil || l.Get == nil || name == "" {
		return nil
	}
	key := namespace + "/" + name
	if _, ok := l.done.Load(key); ok {
		return nil
	}
	data, err := l.Get(ctx, namespace, name)
	if err != nil {
		return err
	}
	l.Set.AddSecretData(data)
	l.done.Store(key, struct{}{})
	return nil
}

// AddSecretData records every value of a Secret's data.
func (s *Set) AddSecretData(data map[string][]byte) {
	if s == nil {
		return
	}
	vals := make([]string, 0, len(data))
	for _, v := range data {
		vals = append(vals, string(v))
	}
	s.Add(vals...)
}
