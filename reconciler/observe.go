package reconciler

import (
	"context"
	"fmt"
	"sort"
	"strings"
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

// observe makes the live GETs the planner can use (only GETs, at most
// concurrency at a time per broker):
//   - adoption: an instance with spec.externalID and no record, at a broker
//     whose service is instances_retrievable — does the broker hold it?
//   - drift (when drift is set): every record that claims a resource at the
//     broker (plan.ClaimsResource: Ready, a failed update or re-bind) whose
//     service is instances_retrievable (bindings_retrievable), to compare
//     the broker's plan and parameters with the record, and to find what
//     the broker lost (404);
//   - a moved broker: the same, for resources recorded at another URL of
//     their broker, so that the new URL's answer is known before anything
//     is sent there.
//
// Brokers in gate are not called. Each broker is asked by at most
// concurrency calls at a time (its per-broker call limit). With drift set,
// the resources whose service offers no GET come back as warnings: drift
// cannot be detected for them.
func (r *Reconciler) observe(ctx context.Context, set *manifest.Set, records map[manifest.Ref]*manifest.StatusRecord,
	catalogs manifest.Catalogs, drift bool, gate notContacted, concurrency int) (map[manifest.Ref]plan.Observation, manifest.Diagnostics) {
	var probes []probe
	blind := undetectable{}
	// checked adds the probe of a recorded resource, or notes why drift
	// cannot be detected for it.
	checked := func(ref manifest.Ref, rec *manifest.StatusRecord, instance, binding string) {
		if !(drift || movedBroker(set, rec)) || !plan.ClaimsResource(rec) || rec.Lost != nil {
			return
		}
		if why := catalogs.DriftUndetectable(rec); why != "" {
			if drift {
				blind.add(ref, rec, why)
			}
			return
		}
		probes = append(probes, probe{ref: ref, broker: set.Broker(rec.Broker), instance: instance, binding: binding,
			service: rec.ClassExternalID})
	}
	for _, inst := range set.Instances {
		ref := inst.GetRef()
		rec := records[ref]
		if rec != nil {
			checked(ref, rec, rec.ExternalID, "")
			continue
		}
		if inst.Spec.ExternalID == "" {
			continue
		}
		res, err := manifest.Resolve(inst, set.Brokers(), catalogs)
		if err != nil || !res.Service.InstancesRetrievable {
			continue
		}
		probes = append(probes, probe{ref: ref, broker: set.Broker(res.BrokerRef), instance: inst.Spec.ExternalID,
			service: res.Service.ID})
	}
	for _, b := range set.Bindings {
		ref := b.GetRef()
		if rec := records[ref]; rec != nil {
			checked(ref, rec, rec.InstanceExternalID, rec.ExternalID)
		}
	}
	return r.probeAll(ctx, records, probes, gate, concurrency), blind.diagnostics()
}

// undetectable groups the resources a drift check cannot cover, by broker,
// class and kind.
type undetectable map[undetectableKey][]string

type undetectableKey struct {
	broker           manifest.Ref
	class, kind, why string
}

func (u undetectable) add(ref manifest.Ref, rec *manifest.StatusRecord, why string) {
	k := undetectableKey{broker: rec.Broker, class: rec.ClassExternalName, kind: string(ref.Kind), why: why}
	u[k] = append(u[k], ref.Namespace+"/"+ref.Name)
}

// diagnostics says, one warning per broker, class and kind, for which
// resources drift cannot be detected and why.
func (u undetectable) diagnostics() manifest.Diagnostics {
	const named = 5
	var out manifest.Diagnostics
	for k, refs := range u {
		sort.Strings(refs)
		list := strings.Join(refs[:min(len(refs), named)], ", ")
		if len(refs) > named {
			list += fmt.Sprintf(" and %d more", len(refs)-named)
		}
		out = append(out, manifest.Diagnostic{File: manifest.RecordDir + "/", Severity: manifest.SeverityWarning,
			Message: fmt.Sprintf("drift cannot be detected for %d %s(s) of class %q at %s (%s): %s",
				len(refs), k.kind, k.class, k.broker, k.why, list)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Message < out[j].Message })
	return out
}

// probeAll makes the probes, each broker's on its call limit.
func (r *Reconciler) probeAll(ctx context.Context, records map[manifest.Ref]*manifest.StatusRecord,
	probes []probe, gate notContacted, concurrency int) map[manifest.Ref]plan.Observation {
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
