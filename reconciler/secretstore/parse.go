package secretstore

import (
	"fmt"
	"strings"

	"k8s.io/client-go/kubernetes"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

// Options configure Parse.
type Options struct {
	// Kubeconfig is the --kubeconfig path for the kube store; empty
	// means in-cluster, then clientcmd's default loading rules (see
	// LoadKubeConfig).
	Kubeconfig string
	// NewKubeClient builds the Kubernetes client for the kube store from
	// Kubeconfig. Nil means NewKubeClient; tests inject a fake clientset
	// here.
	NewKubeClient func(kubeconfig string) (kubernetes.Interface, error)
}

// Parse turns the --secret-store flag into a secrets.Store: "kube" (Kubernetes
// Secrets through client-go) or "dir:PATH" (a directory tree under PATH).
// Anything else is an error that says what is accepted.
func Parse(spec string, opts Options) (secrets.Store, error) {
	switch {
	case spec == "kube":
		newClient := opts.NewKubeClient
		if newClient == nil {
			newClient = NewKubeClient
		}
		client, err := newClient(opts.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("secret store kube: %w", err)
		}
		return NewKube(client), nil
	case strings.HasPrefix(spec, "dir:"):
		path := strings.TrimPrefix(spec, "dir:")
		if path == "" {
			return nil, fmt.Errorf("invalid secret store %q: dir: needs a path, as in dir:/var/lib/osbgit/secrets", spec)
		}
		d, err := NewDir(path)
		if err != nil {
			return nil, fmt.Errorf("secret store %q: %w", spec, err)
		}
		return d, nil
	default:
		return nil, fmt.Errorf("invalid secret store %q: want \"kube\" or \"dir:PATH\"", spec)
	}
}
