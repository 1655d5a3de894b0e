package secretstore

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

// fieldManager is the name osbgit's writes are recorded under in
// managedFields.
const fieldManager = "osbgit"

// Kube stores each Secret as a Kubernetes Secret of type Opaque in its own
// namespace, through client-go. Updates happen in place (one Update call,
// retried on conflict), so pods that mount the Secret see rotated
// credentials without the Secret ever disappearing.
type Kube struct {
	client kubernetes.Interface
}

// NewKube returns a Kube store using client. Tests pass
// k8s.io/client-go/kubernetes/fake's clientset.
func NewKube(client kubernetes.Interface) *Kube {
	return &Kube{client: client}
}

// Client is the Kubernetes client the store uses (`osbgit run` watches
// Secrets with it).
func (k *Kube) Client() kubernetes.Interface { return k.client }

// NewKubeFromKubeconfig builds a Kube store from NewKubeClient(kubeconfig).
func NewKubeFromKubeconfig(kubeconfig string) (*Kube, error) {
	client, err := NewKubeClient(kubeconfig)
	if err != nil {
		return nil, err
	}
	return NewKube(client), nil
}

// NewKubeClient builds a Kubernetes client for LoadKubeConfig(kubeconfig):
// the one osbgit's commands share for Secrets, the leader-election Lease
// and the pass-state ConfigMap.
func NewKubeClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := LoadKubeConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return client, nil
}

// LoadKubeConfig finds the cluster to talk to, in the usual order: an
// explicit kubeconfig path when given (--kubeconfig); otherwise the
// in-cluster service account when running in a pod; otherwise clientcmd's
// default loading rules ($KUBECONFIG, then ~/.kube/config). It sets a
// user agent and, when unset, a client rate limit (20 QPS, burst 50) that
// suits a pass writing many Secrets; callers may adjust the result.
func LoadKubeConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := loadKubeConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "osbgit"
	}
	if cfg.QPS == 0 {
		cfg.QPS = 20
	}
	if cfg.Burst == 0 {
		cfg.Burst = 50
	}
	return cfg, nil
}

func loadKubeConfig(kubeconfig string) (*rest.Config, error) {
	overrides := &clientcmd.ConfigOverrides{}
	if kubeconfig != "" {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err == nil {
		return cfg, nil
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("in-cluster kubernetes config: %w", err)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, errors.New("no kubernetes configuration: not running in a cluster, $KUBECONFIG is unset and ~/.kube/config is missing; pass --kubeconfig or use --secret-store dir:PATH")
	}
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

// Get returns the data of Secret namespace/name.
func (k *Kube) Get(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	if err := validateRef(namespace, name); err != nil {
		return nil, fmt.Errorf("get secret %s/%s: %w", namespace, name, err)
	}
	sec, err := k.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get secret %s/%s: %w", namespace, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get secret %s/%s: %w", namespace, name, err)
	}
	return copyData(sec.Data), nil
}

// ListManaged returns the data of every Secret in namespace that osbgit
// manages (labelled secrets.LabelManagedBy), by name: one LIST, in pages,
// where reading them one by one is a GET each. A sweep of the binding
// Secrets (reconciler/secretcheck.go) reads them this way.
func (k *Kube) ListManaged(ctx context.Context, namespace string) (map[string]map[string][]byte, error) {
	if err := validateNamespace(namespace); err != nil {
		return nil, fmt.Errorf("list secrets in %s: %w", namespace, err)
	}
	out := map[string]map[string][]byte{}
	opts := metav1.ListOptions{LabelSelector: secrets.LabelManagedBy + "=" + secrets.ManagedByValue, Limit: listPageSize}
	for {
		list, err := k.client.CoreV1().Secrets(namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list secrets in %s: %w", namespace, err)
		}
		for i := range list.Items {
			out[list.Items[i].Name] = copyData(list.Items[i].Data)
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// listPageSize bounds the Secrets one LIST response holds.
const listPageSize = 500

// Put creates or updates Secret namespace/name (see secrets.Store.Put). An existing
// Secret is updated in place: its data replaced by s.Data, osbgit's labels
// and annotations set, other tools' labels and annotations kept. A write
// that lost a race is retried from a fresh read.
func (k *Kube) Put(ctx context.Context, namespace, name string, s secrets.Secret) error {
	if err := k.put(ctx, namespace, name, s); err != nil {
		return fmt.Errorf("put secret %s/%s: %w", namespace, name, err)
	}
	return nil
}

func (k *Kube) put(ctx context.Context, namespace, name string, s secrets.Secret) error {
	if err := validateRef(namespace, name); err != nil {
		return err
	}
	if err := validateKeys(s.Data, validateKey); err != nil {
		return err
	}
	labels := desiredLabels(s)
	secrets := k.client.CoreV1().Secrets(namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = secrets.Create(ctx, newSecretObject(namespace, name, s), metav1.CreateOptions{FieldManager: fieldManager})
			if apierrors.IsAlreadyExists(err) {
				// Created between our Get and Create: retry as an
				// update (the managed-by check runs again).
				return apierrors.NewConflict(corev1.Resource("secrets"), name, errors.New("created concurrently"))
			}
			return err
		}
		if err != nil {
			return err
		}
		if !isManaged(cur.Labels) {
			return &NotManagedError{Namespace: namespace, Name: name}
		}
		upd := cur.DeepCopy()
		changed := mergeOwned(&upd.Labels, labels)
		if mergeOwned(&upd.Annotations, s.Annotations) {
			changed = true
		}
		if !equalData(upd.Data, s.Data) || len(upd.StringData) > 0 {
			upd.Data = copyData(s.Data)
			upd.StringData = nil
			changed = true
		}
		if !changed {
			return nil
		}
		_, err = secrets.Update(ctx, upd, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
}

// newSecretObject is the Opaque Secret namespace/name holding s, marked as
// osbgit's.
func newSecretObject(namespace, name string, s secrets.Secret) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   namespace,
			Labels:      desiredLabels(s),
			Annotations: copyStrings(s.Annotations),
		},
		Type: corev1.SecretTypeOpaque,
		Data: copyData(s.Data),
	}
}

// createOnceAttempts bounds CreateOnce's Create-then-Get rounds: each
// round after the first needs the Secret deleted between a Create that
// found it and the Get that followed.
const createOnceAttempts = 3

// CreateOnce creates Secret namespace/name holding s when it does not
// exist, and returns the data of the Secret there afterwards: a copy of
// s.Data when this call created it, the existing Secret's data otherwise.
// The API server's Create is the arbiter: of several callers at once, in
// any number of processes, one Create succeeds and the others get
// AlreadyExists and read the winner's Secret. A Secret osbgit does not
// manage is left untouched, with an error matching secrets.ErrNotManaged.
func (k *Kube) CreateOnce(ctx context.Context, namespace, name string, s secrets.Secret) (map[string][]byte, error) {
	data, err := k.createOnce(ctx, namespace, name, s)
	if err != nil {
		return nil, fmt.Errorf("create secret %s/%s once: %w", namespace, name, err)
	}
	return data, nil
}

func (k *Kube) createOnce(ctx context.Context, namespace, name string, s secrets.Secret) (map[string][]byte, error) {
	if err := validateRef(namespace, name); err != nil {
		return nil, err
	}
	if err := validateKeys(s.Data, validateKey); err != nil {
		return nil, err
	}
	secrets := k.client.CoreV1().Secrets(namespace)
	for range createOnceAttempts {
		_, err := secrets.Create(ctx, newSecretObject(namespace, name, s), metav1.CreateOptions{FieldManager: fieldManager})
		if err == nil {
			return copyData(s.Data), nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // deleted since our Create: create it again
		}
		if err != nil {
			return nil, err
		}
		if !isManaged(cur.Labels) {
			return nil, &NotManagedError{Namespace: namespace, Name: name}
		}
		return copyData(cur.Data), nil
	}
	return nil, fmt.Errorf("the Secret existed at each of %d Creates and was gone at the Get after it", createOnceAttempts)
}

// Delete removes Secret namespace/name if it exists and is osbgit's. The
// delete is conditional on the UID and resourceVersion just read, so a
// Secret replaced in between is not deleted by mistake.
func (k *Kube) Delete(ctx context.Context, namespace, name string) error {
	if err := k.delete(ctx, namespace, name); err != nil {
		return fmt.Errorf("delete secret %s/%s: %w", namespace, name, err)
	}
	return nil
}

func (k *Kube) delete(ctx context.Context, namespace, name string) error {
	if err := validateRef(namespace, name); err != nil {
		return err
	}
	secrets := k.client.CoreV1().Secrets(namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if !isManaged(cur.Labels) {
			return &NotManagedError{Namespace: namespace, Name: name}
		}
		var opts metav1.DeleteOptions
		if cur.UID != "" {
			opts.Preconditions = &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion}
		}
		err = secrets.Delete(ctx, name, opts)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

// copyStrings returns a copy of m (nil for an empty map).
func copyStrings(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
