package manifest

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// Resolved is the broker, service and plan an instance's plan reference
// designates.
type Resolved struct {
	// BrokerRef is the ClusterServiceBroker or ServiceBroker offering it.
	BrokerRef Ref
	// Service is the catalog entry of the class (restrictions applied: its
	// Plans are the allowed ones).
	Service osbwire.Service
	// Plan is the selected plan.
	Plan osbwire.Plan
}

// ResolveError is a resolution failure, with the spec field it concerns.
type ResolveError struct {
	// Field is the spec field path to blame (e.g.
	// "spec.clusterServicePlanExternalName").
	Field string
	// Message says what went wrong.
	Message string
	// MissingCatalogs lists candidate brokers that had no catalog: a "not
	// found" may then just mean "not fetched yet".
	MissingCatalogs []Ref
}

// Error implements error.
func (e *ResolveError) Error() string { return e.Field + ": " + e.Message }

// Resolve finds the broker, service and plan of inst among brokers, using
// their catalogs (keyed by CatalogKey) with each broker's catalog
// restrictions applied. The class is looked up by the form the instance uses:
//
//   - …ExternalName: the catalog service "name" / plan "name"
//   - …ExternalID: the service "id" / plan "id"
//   - …Name (Service Catalog's Kubernetes name): the id, or
//     K8sNameForExternalID(id), since Service Catalog named ClusterServiceClass
//     and ClusterServicePlan objects after their external IDs.
//
// Cluster forms search ClusterServiceBrokers, namespaced forms the
// ServiceBrokers of the instance's namespace; clusterServiceBrokerName /
// serviceBrokerName narrow the search to one broker. A class offered by two
// brokers is an error naming both, unless pinned. The plan may be omitted
// when the class has exactly one (allowed) plan. Errors are *ResolveError.
func Resolve(inst *ServiceInstance, brokers []Broker, catalogs Catalogs) (Resolved, error) {
	forms := planFormsUsed(&inst.Spec.PlanReference)
	if len(forms) != 1 || forms[0].class(&inst.Spec.PlanReference) == "" {
		return Resolved{}, &ResolveError{Field: "spec", Message: "invalid plan reference (use exactly one form, with its class field)"}
	}
	form := forms[0]
	classVal := form.class(&inst.Spec.PlanReference)
	planVal := form.planValue(&inst.Spec.PlanReference)
	classField, planField := "spec."+form.classField, "spec."+form.planField

	pin, pinned := inst.PinnedBroker()
	var candidates []Broker
	for _, b := range brokers {
		r := b.GetRef()
		switch {
		case pinned:
			if r == pin {
				candidates = append(candidates, b)
			}
		case form.cluster:
			if r.Kind == KindClusterServiceBroker {
				candidates = append(candidates, b)
			}
		default:
			if r.Kind == KindServiceBroker && r.Namespace == inst.Namespace {
				candidates = append(candidates, b)
			}
		}
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].GetRef().Less(candidates[j].GetRef()) })
	if len(candidates) == 0 {
		if pinned {
			f := "spec.clusterServiceBrokerName"
			if pin.Kind == KindServiceBroker {
				f = "spec.serviceBrokerName"
			}
			if pin.Kind == KindClusterServiceBroker && !form.cluster || pin.Kind == KindServiceBroker && form.cluster {
				return Resolved{}, &ResolveError{Field: f, Message: "the pinned broker's scope does not match the plan-reference form"}
			}
			return Resolved{}, &ResolveError{Field: f, Message: fmt.Sprintf("no %s", pin)}
		}
		if form.cluster {
			return Resolved{}, &ResolveError{Field: classField, Message: "no ClusterServiceBroker to provide this class"}
		}
		return Resolved{}, &ResolveError{Field: classField, Message: fmt.Sprintf("no ServiceBroker in namespace %q to provide this class", inst.Namespace)}
	}

	type match struct {
		broker Ref
		svc    osbwire.Service
	}
	var matches []match
	var missing, restricted, searched []Ref
	for _, b := range candidates {
		ref := b.GetRef()
		cat := catalogs[CatalogKey(ref)]
		if cat == nil {
			missing = append(missing, ref)
			continue
		}
		searched = append(searched, ref)
		filtered, err := FilterCatalog(cat, b.GetBrokerSpec().CatalogRestrictions)
		if err != nil {
			return Resolved{}, &ResolveError{Field: classField, Message: fmt.Sprintf("%s has invalid catalogRestrictions: %v", ref, err)}
		}
		found := false
		for _, svc := range filtered.Services {
			if classMatches(form.by, svc.ID, svc.Name, classVal) {
				matches = append(matches, match{ref, svc})
				found = true
			}
		}
		if !found && filtered != cat {
			for _, svc := range cat.Services {
				if classMatches(form.by, svc.ID, svc.Name, classVal) {
					restricted = append(restricted, ref)
					break
				}
			}
		}
	}
	switch {
	case len(matches) == 0:
		msg := fmt.Sprintf("class %q (by %s) not found", classVal, form.by)
		if len(searched) > 0 {
			msg += " in the catalog of " + refList(searched)
		}
		if len(restricted) > 0 {
			msg += "; excluded by the catalogRestrictions of " + refList(restricted)
		}
		if len(missing) > 0 {
			msg += "; no catalog yet for " + refList(missing)
		}
		return Resolved{}, &ResolveError{Field: classField, Message: msg, MissingCatalogs: missing}
	case len(matches) > 1:
		var where []Ref
		for _, m := range matches {
			where = append(where, m.broker)
		}
		if where[0] == where[len(where)-1] {
			return Resolved{}, &ResolveError{Field: classField, Message: fmt.Sprintf("class %q (by %s) matches %d services in the catalog of %s", classVal, form.by, len(matches), where[0])}
		}
		pinField := "clusterServiceBrokerName"
		if !form.cluster {
			pinField = "serviceBrokerName"
		}
		return Resolved{}, &ResolveError{Field: classField, Message: fmt.Sprintf("class %q is offered by %s: pin one with spec.%s", classVal, refList(where), pinField)}
	}
	m := matches[0]
	res := Resolved{BrokerRef: m.broker, Service: m.svc}
	if planVal == "" {
		if len(m.svc.Plans) != 1 {
			return Resolved{}, &ResolveError{Field: planField, Message: fmt.Sprintf("required: class %q has %d plans (%s)", classVal, len(m.svc.Plans), planNames(m.svc))}
		}
		res.Plan = m.svc.Plans[0]
		return res, nil
	}
	for _, p := range m.svc.Plans {
		if classMatches(form.by, p.ID, p.Name, planVal) {
			res.Plan = p
			return res, nil
		}
	}
	msg := fmt.Sprintf("plan %q (by %s) not found in class %q of %s; available: %s", planVal, form.by, m.svc.Name, m.broker, planNames(m.svc))
	if cat := catalogs[CatalogKey(m.broker)]; cat != nil {
		for _, svc := range cat.Services {
			if svc.ID != m.svc.ID {
				continue
			}
			for _, p := range svc.Plans {
				if classMatches(form.by, p.ID, p.Name, planVal) {
					msg = fmt.Sprintf("plan %q of class %q is excluded by the catalogRestrictions of %s; available: %s", planVal, m.svc.Name, m.broker, planNames(m.svc))
				}
			}
		}
	}
	return Resolved{}, &ResolveError{Field: planField, Message: msg}
}

func classMatches(by, id, name, want string) bool {
	switch by {
	case "external name":
		return name == want
	case "external ID":
		return id == want
	default:
		return id == want || K8sNameForExternalID(id) == want
	}
}

func refList(refs []Ref) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	if len(s) == 2 {
		return s[0] + " and " + s[1]
	}
	return strings.Join(s, ", ")
}

func planNames(svc osbwire.Service) string {
	var n []string
	for _, p := range svc.Plans {
		n = append(n, p.Name)
	}
	return describeList(n, 10)
}

// ResolveBinding resolves the instance of binding b in set and checks that
// its plan is bindable.
func ResolveBinding(b *ServiceBinding, set *Set, catalogs Catalogs) (*ServiceInstance, Resolved, error) {
	inst := set.Instance(b.Namespace, b.Spec.InstanceRef.Name)
	if inst == nil {
		return nil, Resolved{}, &ResolveError{Field: "spec.instanceRef.name", Message: fmt.Sprintf("no ServiceInstance %q in namespace %q", b.Spec.InstanceRef.Name, b.Namespace)}
	}
	res, err := Resolve(inst, set.Brokers(), catalogs)
	if err != nil {
		var re *ResolveError
		msg := err.Error()
		if errors.As(err, &re) {
			msg = re.Message
		}
		return inst, Resolved{}, &ResolveError{Field: "spec.instanceRef.name", Message: fmt.Sprintf("instance %q does not resolve: %s", inst.Name, msg)}
	}
	if !res.Service.IsBindable(res.Plan) {
		return inst, res, &ResolveError{Field: "spec.instanceRef.name", Message: fmt.Sprintf("plan %q of class %q is not bindable", res.Plan.Name, res.Service.Name)}
	}
	return inst, res, nil
}
