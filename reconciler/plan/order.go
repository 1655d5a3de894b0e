package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/osbgit/osbgit/manifest"
)

// callsBroker reports whether an action calls the broker.
func callsBroker(a Action) bool {
	switch a {
	case Create, Update, Delete, Poll, OrphanMitigate:
		return true
	}
	return false
}

// verb names an action for a resource kind in messages.
func verb(a Action, k manifest.Kind) string {
	bind := k == manifest.KindServiceBinding
	switch a {
	case Create:
		if bind {
			return "bind"
		}
		return "provision"
	case Update:
		if bind {
			return "re-bind"
		}
		return "update"
	case Delete:
		if bind {
			return "unbind"
		}
		return "deprovision"
	}
	return string(a)
}

// blockOnBrokers turns steps whose broker cannot be called into waits: the
// broker manifest is gone (a removed broker is never a silent orphan: its
// own step carries the error) or has errors.
func (p *planner) blockOnBrokers(refs []manifest.Ref) {
	for _, ref := range refs {
		s := p.steps[ref]
		if !callsBroker(s.Action) || s.Target.Broker.Kind == "" {
			continue
		}
		br := s.Target.Broker
		var why string
		switch {
		case p.set.Broker(br) == nil:
			if len(p.set.UnreadableFiles) > 0 {
				why = fmt.Sprintf("cannot %s: %s is not in the manifests (some files could not be read)", verb(s.Action, ref.Kind), br)
			} else {
				why = fmt.Sprintf("cannot %s: %s was removed from the manifests; restore it", verb(s.Action, ref.Kind), br)
			}
		case p.errRefs[br]:
			why = fmt.Sprintf("cannot %s: the manifest of %s has errors", verb(s.Action, ref.Kind), br)
		default:
			continue
		}
		s.Warnings = append(s.Warnings, "planned: "+s.Action.String()+" ("+s.Reason+")")
		s.Action = None
		s.Reason = why
		s.WriteAhead = false
		s.DependsOn = nil
	}
}

// orderDeletes makes every instance deprovision depend on the unbinds of
// the bindings recorded for it, and makes it wait while one of them cannot
// be unbound in this plan.
func (p *planner) orderDeletes(insts, binds []manifest.Ref) {
	recorded := map[manifest.Ref][]manifest.Ref{}
	for _, bref := range binds {
		if brec := p.in.Records[bref]; brec != nil && brec.InstanceName != "" {
			iref := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: bref.Namespace, Name: brec.InstanceName}
			recorded[iref] = append(recorded[iref], bref)
		}
	}
	for _, iref := range insts {
		s := p.steps[iref]
		if s.Action != Delete {
			continue
		}
		var waitFor []string
		var waitRefs []manifest.Ref
		for _, bref := range recorded[iref] {
			bs := p.steps[bref]
			switch bs.Action {
			case Delete, OrphanMitigate:
				s.DependsOn = append(s.DependsOn, bref)
			case Forget:
			default:
				waitFor = append(waitFor, bref.String())
				waitRefs = append(waitRefs, bref)
			}
		}
		if len(waitFor) > 0 {
			s.Warnings = append(s.Warnings, "planned: delete ("+s.Reason+")")
			s.Action = None
			s.DependsOn = nil
			s.WaitsFor = waitRefs
			s.Reason = "waiting for " + strings.Join(waitFor, ", ") + " to be unbound first"
		}
	}
}

// brokers plans the broker steps: one per broker manifest, plus one per
// removed broker that records still point at (an error while resources
// remain there, else forgetting its record). It returns their refs, sorted.
func (p *planner) brokers(resources []manifest.Ref) []manifest.Ref {
	var out []manifest.Ref
	for _, b := range p.set.Brokers() {
		ref := b.GetRef()
		s := newStep(ref, b, p.in.Records[ref])
		s.Target = Target{Broker: ref}
		s.Reason = "in sync"
		acc := p.in.Brokers[ref]
		switch e := p.diagErrors(ref); {
		case e != "":
			s.Reason = "invalid manifest"
			s.Error = e
		case !p.hasCatalog(ref):
			waiting := p.waitingForCatalog(ref)
			if why := acc.unavailable(); why != "" && waiting > 0 {
				// Nothing decides what its resources need: say so, never
				// "in sync".
				s.Reason = "its resources cannot be planned"
				s.Error = fmt.Sprintf("%s; no cached catalog, so the plan of %d resource(s) cannot be decided", why, waiting)
			} else {
				s.Warnings = append(s.Warnings, "no catalog yet: instances of this broker wait for it")
			}
		default:
			// Offline, the cached catalog is what was asked for.
			if why := acc.unavailable(); why != "" && !acc.Offline {
				at := ""
				if !acc.CatalogFetchedAt.IsZero() {
					at = " (fetched " + acc.CatalogFetchedAt.UTC().Format(time.RFC3339) + ")"
				}
				s.Warnings = append(s.Warnings, why+"; planned from the cached catalog"+at)
			}
		}
		p.steps[ref] = &s
		out = append(out, ref)
	}
	gone := map[manifest.Ref][]string{}
	var goneRefs []manifest.Ref
	note := func(br manifest.Ref) bool {
		if br.Kind == "" || p.set.Broker(br) != nil {
			return false
		}
		if _, ok := gone[br]; !ok {
			gone[br] = nil
			goneRefs = append(goneRefs, br)
		}
		return true
	}
	for _, ref := range resources {
		s := p.steps[ref]
		rec := p.in.Records[ref]
		if rec == nil || s.Action == Forget {
			continue
		}
		if note(rec.Broker) {
			gone[rec.Broker] = append(gone[rec.Broker], ref.String())
		}
	}
	for ref := range p.in.Records {
		if ref.Kind == manifest.KindClusterServiceBroker || ref.Kind == manifest.KindServiceBroker {
			note(ref)
		}
	}
	sortRefs(goneRefs)
	for _, br := range goneRefs {
		rec := p.in.Records[br]
		s := newStep(br, nil, rec)
		s.Target = Target{Broker: br}
		deps := gone[br]
		switch {
		case len(p.set.UnreadableFiles) > 0:
			s.Reason = "manifest not found, but some manifest files could not be read (" + strings.Join(p.set.UnreadableFiles, ", ") + "): not treated as removed"
		case len(deps) > 0:
			s.Reason = "broker manifest removed while resources remain at it"
			s.Error = fmt.Sprintf("the broker manifest was removed while %d resources recorded at it remain (%s): restore it; to retire the broker, delete them first (prune) or annotate them %s: %s, and remove the broker afterwards",
				len(deps), strings.Join(deps, ", "), manifest.AnnotationDeletionPolicy, manifest.DeletionPolicyRetain)
		case rec != nil:
			s.Action = Forget
			s.Reason = "manifest removed; no resources remain at it"
		default:
			continue
		}
		p.steps[br] = &s
		out = append(out, br)
	}
	sortRefs(out)
	return out
}

// waitingForCatalog counts the resources whose plan waits for broker's
// catalog.
func (p *planner) waitingForCatalog(broker manifest.Ref) int {
	n := 0
	for _, s := range p.steps {
		if slices.Contains(s.WaitsFor, broker) {
			n++
		}
	}
	return n
}

// limitDeletions enforces Options.MaxDeletions: past it, every delete step
// becomes None with the refusal as reason and the refusal is returned (the
// whole plan is refused then).
func (p *planner) limitDeletions(refs []manifest.Ref) string {
	max := p.in.Options.MaxDeletions
	if max < 0 {
		return ""
	}
	n := 0
	for _, ref := range refs {
		s := p.steps[ref]
		if s.Action == Delete && !isDeleteRetry(s.Record) {
			n++
		}
	}
	if n <= max {
		return ""
	}
	msg := fmt.Sprintf("%d deletions exceed maxDeletions %d; raise --max-deletions or restore manifests", n, max)
	if n == 1 {
		msg = fmt.Sprintf("1 deletion exceeds maxDeletions %d; raise --max-deletions or restore manifests", max)
	}
	for _, ref := range refs {
		s := p.steps[ref]
		if s.Action == Delete {
			s.Warnings = append(s.Warnings, "planned: delete ("+s.Reason+")")
			s.Action = None
			s.Reason = "refused: " + msg
		}
	}
	return msg
}
