// Package kubestate keeps osbgit's pass state in a Kubernetes ConfigMap, so
// that a CronJob whose pods start with an empty cache volume still ends a
// pass with nothing to do after one ref lookup, and still relists catalogs
// only when due.
//
// The state is an optimisation: a ConfigMap that is missing, unreadable or
// not writable only costs full passes, and the reconciler logs why.
package kubestate

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/osbgit/osbgit/reconciler"
)

// maxUpdateAttempts bounds the retries of an update that lost a race with
// another writer of the same ConfigMap (another repository's state).
const maxUpdateAttempts = 3

// ConfigMap is a reconciler.StateStore in one key of a ConfigMap. One
// ConfigMap can hold the state of several repositories, a key each.
type ConfigMap struct {
	Client    corev1client.ConfigMapsGetter
	Namespace string
	Name      string
	// Key is this repository's data key ([-._a-zA-Z0-9]+).
	Key string
	// Labels are set on a ConfigMap this store creates.
	Labels map[string]string
}

var _ reconciler.StateStore = (*ConfigMap)(nil)

func (c *ConfigMap) String() string { return "ConfigMap " + c.Namespace + "/" + c.Name }

// LoadState reads the state; a missing ConfigMap or key gives an empty
// state, corrupt data too.
func (c *ConfigMap) LoadState(ctx context.Context) (*reconciler.PassState, error) {
	cm, err := c.Client.ConfigMaps(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &reconciler.PassState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pass state from %s: %w", c, err)
	}
	data, ok := cm.Data[c.Key]
	if !ok {
		return &reconciler.PassState{}, nil
	}
	return reconciler.DecodePassState([]byte(data)), nil
}

// SaveState writes the state into the key, creating the ConfigMap when it
// is missing. The update carries the resourceVersion it read, so a
// concurrent writer's keys are never overwritten: a lost race reads again.
func (c *ConfigMap) SaveState(ctx context.Context, s *reconciler.PassState) error {
	b, err := s.Encode()
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := c.save(ctx, string(b))
		if (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < maxUpdateAttempts {
			continue
		}
		if err != nil {
			return fmt.Errorf("save pass state to %s: %w", c, err)
		}
		return nil
	}
}

// save is one read-modify-write of the key.
func (c *ConfigMap) save(ctx context.Context, data string) error {
	cms := c.Client.ConfigMaps(c.Namespace)
	cm, err := cms.Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace, Labels: c.Labels},
			Data:       map[string]string{c.Key: data},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil || cm.Data[c.Key] == data {
		return err
	}
	cm = cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[c.Key] = data
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}
