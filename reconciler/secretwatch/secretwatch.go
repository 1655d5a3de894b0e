// Package secretwatch tells `osbgit run` when a Secret its manifests
// depend on may have changed without a commit (a rotated parametersFrom or
// broker auth Secret, a binding Secret deleted or edited), so that it runs a
// pass: Kube watches the Secrets through the Kubernetes API, Poll asks on an
// interval (the directory store, which has no events). Neither decides
// anything: the pass compares the Secrets with the checksums it kept
// (reconciler.PassState.Secrets) and ends early when nothing changed.
//
// The watches are as narrow as the Secrets allow: osbgit's binding Secrets
// by their managed-by label, a namespace's few referenced Secrets each by
// name (which RBAC can grant by resourceNames), a whole namespace only when
// it holds many referenced Secrets. Watched objects are kept without their
// data: a watch never holds a credential.
package secretwatch

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

// Name is a Secret's namespace and name.
type Name struct {
	Namespace, Name string
}

// Set is what to watch: Referenced are the Secrets the manifests name
// (parametersFrom, broker auth), Bindings those osbgit wrote (labelled
// app.kubernetes.io/managed-by=osbgit).
type Set struct {
	Referenced, Bindings []Name
}

// maxNamedWatches is how many referenced Secrets of one namespace are
// watched one by one (a field selector on the name each); more are watched
// with one watch on the namespace.
const maxNamedWatches = 4

// Watch is one watch: a namespace, narrowed by a label or field selector.
type Watch struct {
	Namespace     string
	LabelSelector string
	FieldSelector string
}

// Watches are the watches that cover set, in a stable order.
func Watches(set Set) []Watch {
	refs := map[string][]string{}
	for _, n := range set.Referenced {
		refs[n.Namespace] = append(refs[n.Namespace], n.Name)
	}
	bindings := map[string]bool{}
	for _, n := range set.Bindings {
		bindings[n.Namespace] = true
	}
	namespaces := map[string]bool{}
	for ns := range refs {
		namespaces[ns] = true
	}
	maps.Copy(namespaces, bindings)
	var out []Watch
	for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
		names := slices.Compact(slices.Sorted(slices.Values(refs[ns])))
		if len(names) > maxNamedWatches {
			out = append(out, Watch{Namespace: ns})
			continue
		}
		if bindings[ns] {
			out = append(out, Watch{Namespace: ns, LabelSelector: secrets.LabelManagedBy + "=" + secrets.ManagedByValue})
		}
		for _, name := range names {
			out = append(out, Watch{Namespace: ns, FieldSelector: "metadata.name=" + name})
		}
	}
	return out
}

// Kube watches Secrets through the Kubernetes API and calls Changed on
// every change (added, updated, deleted) of one in the Set. Create it with
// its fields set, call Run once, and Update after each pass.
type Kube struct {
	Client kubernetes.Interface
	// Changed is called from the watches' goroutines; it must not block
	// (daemon.Daemon.Request does not).
	Changed func()
	Log     logrus.FieldLogger

	mu      sync.Mutex
	ctx     context.Context
	names   map[Name]bool
	running map[Watch]context.CancelFunc
	pending *Set
}

// Run keeps the watches until ctx ends.
func (k *Kube) Run(ctx context.Context) {
	k.mu.Lock()
	k.ctx = ctx
	pending := k.pending
	k.pending = nil
	k.mu.Unlock()
	if pending != nil {
		k.Update(*pending)
	}
	<-ctx.Done()
	k.mu.Lock()
	defer k.mu.Unlock()
	for w, stop := range k.running {
		stop()
		delete(k.running, w)
	}
}

// Update watches set: the watches it needs are started, those it no
// longer needs stopped.
func (k *Kube) Update(set Set) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx == nil {
		k.pending = &set
		return
	}
	if k.ctx.Err() != nil {
		return
	}
	names := map[Name]bool{}
	for _, n := range append(slices.Clone(set.Referenced), set.Bindings...) {
		names[n] = true
	}
	k.names = names
	want := map[Watch]bool{}
	for _, w := range Watches(set) {
		want[w] = true
	}
	if k.running == nil {
		k.running = map[Watch]context.CancelFunc{}
	}
	for w, stop := range k.running {
		if !want[w] {
			stop()
			delete(k.running, w)
		}
	}
	for w := range want {
		if _, ok := k.running[w]; ok {
			continue
		}
		ctx, stop := context.WithCancel(k.ctx)
		k.running[w] = stop
		go k.run(ctx, w)
	}
}

// watched reports whether a Secret is in the Set (a namespace-wide or
// label-selected watch also sees others).
func (k *Kube) watched(obj any) bool {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.names[Name{Namespace: m.GetNamespace(), Name: m.GetName()}]
}

// run keeps one watch (an informer that holds no Secret data) until ctx
// ends; the informer lists, watches and re-lists after errors itself.
func (k *Kube) run(ctx context.Context, w Watch) {
	secretsAPI := k.Client.CoreV1().Secrets(w.Namespace)
	narrow := func(o *metav1.ListOptions) {
		o.LabelSelector, o.FieldSelector = w.LabelSelector, w.FieldSelector
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			narrow(&o)
			return secretsAPI.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			narrow(&o)
			return secretsAPI.Watch(ctx, o)
		},
	}
	// The wrapper lets a client without watch-list support (client-go's
	// fake) list and watch instead.
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, k.Client), &corev1.Secret{}, 0, cache.Indexers{})
	if err := inf.SetTransform(dropData); err != nil {
		k.logf(w, err)
		return
	}
	changed := func(obj any) {
		if k.watched(obj) {
			k.Changed()
		}
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if !initial {
				changed(obj)
			}
		},
		UpdateFunc: func(_, obj any) { changed(obj) },
		DeleteFunc: changed,
	})
	if err != nil {
		k.logf(w, err)
		return
	}
	inf.RunWithContext(ctx)
}

func (k *Kube) logf(w Watch, err error) {
	if k.Log != nil {
		k.Log.WithError(err).WithField("namespace", w.Namespace).Warn("cannot watch Secrets")
	}
}

// dropData keeps only a Secret's metadata in the informer's cache.
func dropData(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name, ResourceVersion: s.ResourceVersion}}, nil
}

// Poll calls changed every interval until ctx ends: the directory store
// has no events, so the pass re-reads its Secrets on this schedule.
func Poll(ctx context.Context, interval time.Duration, changed func()) error {
	if interval <= 0 {
		return fmt.Errorf("secret check interval %s: must be positive", interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			changed()
		}
	}
}
