package reconciler

import (
	"context"
	"sync"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient"
	"github.com/osbgit/osbgit/osbclient/osbwire"
	"github.com/osbgit/osbgit/reconciler/internal/parallel"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/secrets"
)

// observer is what live checks need from a broker client.
type observer interface {
	GetInstance(ctx context.Context, r *osbwire.GetInstanceRequest) (*osbwire.GetInstanceResponse, error)
	GetBinding(ctx context.Context, r *osbwire.GetBindingRequest) (*osbwire.GetBindingResponse, error)
}

// probe is one live GET to make.
type probe struct {
	ref      manifest.Ref
	broker   manifest.Broker
	instance string // instance_id
	binding  string // binding_id (bindings only)
	service  string
}

// observe makes the live GETs the planner can use (only GETs, at most 8 at a
// time per pass):
//   - adoption: an instance with spec.externalID and no record, at a broker
//     whose service is instances_retrievable — does the broker hold it?
//   - drift (when drift is set): every Ready instance (binding) whose
//     service is instances_retrievable (bindings_retrievable), to compare
//     the broker's plan and parameters with the record;
//   - a moved broker: the same, for resources recorded at another URL of
//     their broker, so that the new URL's answer is known before anything
//     is sent there.
//
// Brokers in gate are not called. Each broker is asked by at most
// concurrency calls at a time (its per-broker call limit).
func (r *Reconciler) observe(ctx context.Context, set *manifest.Set, records map[manifest.Ref]*manifest.StatusRecord,
	catalogs manifest.Catalogs, drift bool, gate notContacted, concurrency int) map[manifest.Ref]plan.Observation {
	var probes []probe
	service := func(broker manifest.Ref, serviceID string) (osbwire.Service, bool) {
		cat := catalogs[manifest.CatalogKey(broker)]
		if cat == nil {
			return osbwire.Service{}, false
		}
		for _, s := range cat.Services {
			if s.ID == serviceID {
				return s, true
			}
		}
		return osbwire.Service{}, false
	}
	for _, inst := range set.Instances {
		ref := inst.GetRef()
		rec := records[ref]
		switch {
		case rec == nil && inst.Spec.ExternalID != "":
			res, err := manifest.Resolve(inst, set.Brokers(), catalogs)
			if err != nil || !res.Service.InstancesRetrievable {
				continue
			}
			probes = append(probes, probe{ref: ref, broker: set.Broker(res.BrokerRef), instance: inst.Spec.ExternalID,
				service: res.Service.ID})
		case (drift || movedBroker(set, rec)) && rec != nil && rec.Phase == manifest.PhaseReady && !rec.AsyncOpInProgress:
			svc, ok := service(rec.Broker, rec.ClassExternalID)
			if !ok || !svc.InstancesRetrievable {
				continue
			}
			probes = append(probes, probe{ref: ref, broker: set.Broker(rec.Broker), instance: rec.ExternalID,
				service: rec.ClassExternalID})
		}
	}
	for _, b := range set.Bindings {
		ref := b.GetRef()
		rec := records[ref]
		if rec == nil || rec.Phase != manifest.PhaseReady || rec.AsyncOpInProgress || !(drift || movedBroker(set, rec)) {
			continue
		}
		svc, ok := service(rec.Broker, rec.ClassExternalID)
		if !ok || !svc.BindingsRetrievable {
			continue
		}
		probes = append(probes, probe{ref: ref, broker: set.Broker(rec.Broker), instance: rec.InstanceExternalID,
			binding: rec.ExternalID, service: rec.ClassExternalID})
	}
	out := map[manifest.Ref]plan.Observation{}
	if len(probes) == 0 {
		return out
	}
	// A broker answering about a resource may quote its stored
	// credentials: learn them first (each Secret once).
	learner := secrets.NewLearner(r.Redact, r.Secrets, records)
	// Each broker's probes run on its call limit (concurrency), on that
	// many goroutines: a goroutine per probe peaked at 2,035 for 4,800
	// resources (issue 19).
	byBroker := map[manifest.Ref][]probe{}
	for _, pr := range probes {
		if pr.broker == nil || gate[pr.broker.GetRef()] != "" {
			continue
		}
		byBroker[pr.broker.GetRef()] = append(byBroker[pr.broker.GetRef()], pr)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, group := range byBroker {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parallel.ForN(concurrency, len(group), func(i int) {
				pr := group[i]
				_ = learner.Learn(ctx, pr.ref) // unreadable: the probe goes on
				obs := r.probe(ctx, pr)
				mu.Lock()
				out[pr.ref] = obs
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	return out
}

// movedBroker reports whether rec was recorded at another URL of its broker.
func movedBroker(set *manifest.Set, rec *manifest.StatusRecord) bool {
	if rec == nil || rec.BrokerURL == "" {
		return false
	}
	b := set.Broker(rec.Broker)
	return b != nil && b.GetBrokerSpec().URL != rec.BrokerURL
}

func (r *Reconciler) probe(ctx context.Context, pr probe) plan.Observation {
	c, err := r.Clients.Client(ctx, pr.broker)
	if err != nil {
		return plan.Observation{Err: err.Error()}
	}
	var o observer = c
	if pr.binding != "" {
		resp, err := o.GetBinding(ctx, &osbwire.GetBindingRequest{InstanceID: pr.instance, BindingID: pr.binding, ServiceID: pr.service})
		switch {
		case osbclient.IsNotFound(err):
			return plan.Observation{NotFound: true}
		case err != nil:
			return plan.Observation{Err: err.Error()}
		}
		// Only what drift needs: the credentials stay out of the plan
		// (and are scrubbed wherever a broker quotes them).
		r.Redact.AddLeaves(resp.Credentials)
		return plan.Observation{Binding: &osbwire.GetBindingResponse{Parameters: resp.Parameters}}
	}
	// plan_id is optional and left out: the point is to learn the plan
	// the broker holds, and a strict broker refuses a mismatching one.
	resp, err := o.GetInstance(ctx, &osbwire.GetInstanceRequest{InstanceID: pr.instance, ServiceID: pr.service})
	switch {
	case osbclient.IsNotFound(err):
		return plan.Observation{NotFound: true}
	case err != nil:
		return plan.Observation{Err: err.Error()}
	}
	return plan.Observation{Instance: resp}
}
