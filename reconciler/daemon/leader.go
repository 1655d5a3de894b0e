package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"time"

	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Leader election defaults: controller-runtime's timings, which fail over
// faster than client-go's example (60s/15s/5s) at a modest API cost.
const (
	DefaultLeaseName          = "osbgit"
	DefaultLeaseDuration      = 15 * time.Second
	DefaultLeaseRenewDeadline = 10 * time.Second
	DefaultLeaseRetryPeriod   = 2 * time.Second
)

// LeaderElection configures the election of the replica that runs passes
// on a coordination.k8s.io/v1 Lease. The ServiceAccount needs get, create
// and update on leases in Namespace.
//
// The Lease does not fence writers: two replicas may both believe they lead
// for a moment. The rejected Git push is the real compare-and-set (see the
// package documentation).
type LeaderElection struct {
	// Client reaches the Lease API, e.g. kubernetes.Interface.CoordinationV1().
	Client coordinationv1client.LeasesGetter
	// Namespace holds the Lease; DefaultLeaseNamespace() when empty.
	Namespace string
	// Name is the Lease's name; DefaultLeaseName when empty.
	Name string
	// Identity names this replica in the Lease; DefaultIdentity() when empty.
	// It must differ between replicas.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's timings;
	// the Default* constants when zero. A clean stop releases the Lease, so
	// a standby takes over within RetryPeriod; a crashed leader is replaced
	// after LeaseDuration.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

func (le *LeaderElection) withDefaults() (*LeaderElection, error) {
	c := *le
	if c.Client == nil {
		return nil, errors.New("leader election: no Kubernetes client")
	}
	if c.Namespace == "" {
		c.Namespace = DefaultLeaseNamespace()
	}
	if c.Name == "" {
		c.Name = DefaultLeaseName
	}
	if c.Identity == "" {
		id, err := DefaultIdentity()
		if err != nil {
			return nil, err
		}
		c.Identity = id
	}
	if c.LeaseDuration <= 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline <= 0 {
		c.RenewDeadline = DefaultLeaseRenewDeadline
	}
	if c.RetryPeriod <= 0 {
		c.RetryPeriod = DefaultLeaseRetryPeriod
	}
	return &c, nil
}

// DefaultLeaseNamespace is the pod's namespace from POD_NAMESPACE (the
// downward API), else "default".
func DefaultLeaseNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "default"
}

// DefaultIdentity is POD_NAME (the downward API; unique among a
// Deployment's replicas), else the hostname plus a random suffix so that two
// processes on one host never share an identity.
func DefaultIdentity() (string, error) {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader election identity: %w", err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("leader election identity: %w", err)
	}
	return host + "_" + hex.EncodeToString(b[:]), nil
}

// runElection campaigns for the Lease and, once leading, runs the pass loop
// until ctx ends (clean stop: the Lease is released after the running pass
// finished) or the Lease is lost (ErrLeadershipLost).
func (d *Daemon) runElection(ctx context.Context) error {
	le := d.cfg.LeaderElection
	log := d.log.WithFields(logrus.Fields{"lease": le.Namespace + "/" + le.Name, "identity": le.Identity})
	elected := make(chan context.Context, 1)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.Name},
			Client:     le.Client,
			LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
		},
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			// The loop runs on Run's goroutine, not in this callback, so
			// that Run knows for sure whether a pass may still be running.
			OnStartedLeading: func(lctx context.Context) { elected <- lctx },
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != le.Identity {
					log.WithField("leader", id).Info("another replica leads; standing by")
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	// The elector outlives ctx: the Lease is released only after the
	// running pass is over.
	elCtx, elCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer elCancel()
	elDone := make(chan struct{})
	go func() {
		defer close(elDone)
		elector.Run(elCtx)
	}()
	log.Info("campaigning for leadership")

	select {
	case <-ctx.Done():
		elCancel()
		<-elDone
		return nil
	case <-elDone:
		// Run returns before leading only when elCtx ends, which it does
		// not here.
		return errors.New("leader election ended before this replica led")
	case leCtx := <-elected:
		log.Info("became leader: running passes")
		d.setLeading(true)
		loopCtx, cancel := context.WithCancel(leCtx)
		stop := context.AfterFunc(ctx, cancel)
		err := d.loop(loopCtx, TriggerElected)
		stop()
		cancel()
		lost := leCtx.Err() != nil && ctx.Err() == nil
		d.setLeading(false)
		elCancel()
		<-elDone // the Lease is released here
		if err != nil {
			return err
		}
		if lost {
			log.Error("lost the lease: stopped starting passes")
			return ErrLeadershipLost
		}
		log.Info("released the lease")
		return nil
	}
}
