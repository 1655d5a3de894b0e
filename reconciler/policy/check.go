package policy

import (
	"fmt"
	"slices"

	"github.com/osbgit/osbgit/manifest"
)

// Check returns an error diagnostic for each object of set that the policy
// does not allow, at the object's file:line and the field to blame:
//
//   - metadata.namespace of an object whose file may not declare its
//     namespace (kind, for a cluster-scoped object its file may not
//     declare);
//   - the class or plan field of an instance using a class or plan its
//     namespace may not use (by catalog external name: the instance's own
//     when it gives them, else resolved through catalogs, which may be nil);
//   - spec.instanceRef.name of a binding whose instance is blocked by the
//     policy: a binding inherits its instance's rules.
//
// A resource with such an error is blocked like an invalid one: it is not
// created, changed or deleted, and the others proceed. A nil policy allows
// everything. Check is pure.
func Check(set *manifest.Set, p *Policy, catalogs manifest.Catalogs) manifest.Diagnostics {
	if p == nil || set == nil {
		return nil
	}
	var out manifest.Diagnostics
	blocked := map[manifest.Ref]bool{}
	add := func(d *manifest.Diagnostic) {
		if d != nil {
			out = append(out, *d)
			blocked[d.Ref] = true
		}
	}
	for _, b := range set.Brokers() {
		add(p.checkPath(b))
	}
	brokers := set.Brokers()
	for _, i := range set.Instances {
		if d := p.checkPath(i); d != nil {
			add(d)
			continue
		}
		add(p.checkPlan(i, brokers, catalogs))
	}
	for _, b := range set.Bindings {
		if d := p.checkPath(b); d != nil {
			add(d)
			continue
		}
		inst := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: b.Namespace, Name: b.Spec.InstanceRef.Name}
		if blocked[inst] {
			add(diag(b, "spec.instanceRef.name", fmt.Sprintf("instance %s/%s is blocked by the tenancy policy, and a binding inherits its instance's rules", inst.Namespace, inst.Name)))
		}
	}
	out.Sort()
	return out
}

// CheckBrokers is Check for the brokers only, without catalogs: a pass
// asks it before fetching any catalog, so a broker the policy does not
// allow is never called.
func CheckBrokers(set *manifest.Set, p *Policy) manifest.Diagnostics {
	if p == nil || set == nil {
		return nil
	}
	var out manifest.Diagnostics
	for _, b := range set.Brokers() {
		if d := p.checkPath(b); d != nil {
			out = append(out, *d)
		}
	}
	return out
}

// Admission is the path rules, for manifest.WithAdmission: Assemble then
// ignores a duplicate's copies that their files may not declare when
// another copy's may. Nil when there are none.
func (p *Policy) Admission() manifest.Admission {
	if p == nil || len(p.Paths) == 0 {
		return nil
	}
	return p.checkPath
}

// checkPath checks the path rules for o (nil: allowed).
func (p *Policy) checkPath(o manifest.Object) *manifest.Diagnostic {
	if len(p.Paths) == 0 {
		return nil
	}
	file := o.GetSource().File
	ref := o.GetRef()
	i, rule := p.pathRule(file)
	if rule == nil {
		field := "metadata.namespace"
		if ref.Kind.ClusterScoped() {
			field = "kind"
		}
		return diag(o, field, fmt.Sprintf("no rule of the tenancy policy (%s) covers %s: it may declare nothing", p.file, file))
	}
	at := p.where(fmt.Sprintf("paths[%d]", i))
	if ref.Kind.ClusterScoped() {
		if rule.ClusterScoped {
			return nil
		}
		return diag(o, "kind", fmt.Sprintf("%s is cluster-scoped, and the tenancy policy (%s) does not let files under %q declare cluster-scoped objects", ref.Kind, at, rule.Path))
	}
	if matchAny(rule.Namespaces, ref.Namespace) {
		return nil
	}
	ns := fmt.Sprintf("%q", ref.Namespace)
	if o.GetMetadata().Namespace == "" {
		ns += " (the default namespace)"
	}
	return diag(o, "metadata.namespace", fmt.Sprintf("namespace %s may not be declared in %s: the tenancy policy (%s) allows files under %q namespace(s) %s",
		ns, file, at, rule.Path, manifest.QuotedList(rule.Namespaces)))
}

// pathRule is the first path rule matching file.
func (p *Policy) pathRule(file string) (int, *PathRule) {
	for i := range p.Paths {
		if matchPath(p.Paths[i].Path, file) {
			return i, &p.Paths[i]
		}
	}
	return -1, nil
}

// planRule is the first plan rule naming namespace.
func (p *Policy) planRule(namespace string) (int, *PlanRule) {
	for i := range p.Plans {
		if matchAny(p.Plans[i].Namespaces, namespace) {
			return i, &p.Plans[i]
		}
	}
	return -1, nil
}

// allowsAll reports whether the rule allows every class and plan.
func (r *PlanRule) allowsAll() bool {
	for _, a := range r.Allow {
		if a.Class == "*" && slices.Contains(a.Plans, "*") {
			return true
		}
	}
	return false
}

// checkPlan checks the plan rules for an instance (nil: allowed).
func (p *Policy) checkPlan(inst *manifest.ServiceInstance, brokers []manifest.Broker, catalogs manifest.Catalogs) *manifest.Diagnostic {
	if len(p.Plans) == 0 {
		return nil
	}
	ns := inst.Namespace
	form, ok := inst.Spec.Fields()
	if !ok {
		return nil // no valid plan reference: Validate reports it
	}
	i, rule := p.planRule(ns)
	if rule == nil {
		return diag(inst, "spec."+form.ClassField, fmt.Sprintf("the tenancy policy (%s) allows no class in namespace %q", p.file, ns))
	}
	if rule.allowsAll() {
		return nil
	}
	at := p.where(fmt.Sprintf("plans[%d]", i))
	class, plan := form.Class, form.Plan
	if !form.ExternalName || plan == "" {
		res, err := manifest.Resolve(inst, brokers, catalogs)
		if err != nil {
			// Fail closed: what cannot be named cannot be allowed.
			return diag(inst, "spec."+form.ClassField, fmt.Sprintf("cannot be checked against the tenancy policy (%s): its class and plan are not known by external name (%v)", at, err))
		}
		class, plan = res.Service.Name, res.Plan.Name
	}
	var plans []string
	classAllowed := false
	for _, a := range rule.Allow {
		if matchName(a.Class, class) {
			classAllowed = true
			plans = append(plans, a.Plans...)
			if matchAny(a.Plans, plan) {
				return nil
			}
		}
	}
	if !classAllowed {
		return diag(inst, "spec."+form.ClassField, fmt.Sprintf("class %q is not allowed in namespace %q by the tenancy policy (%s)", class, ns, at))
	}
	return diag(inst, "spec."+form.PlanField, fmt.Sprintf("plan %q of class %q is not allowed in namespace %q by the tenancy policy (%s); allowed: %s", plan, class, ns, at, manifest.QuotedList(plans)))
}

// diag is an error about o at field.
func diag(o manifest.Object, field, msg string) *manifest.Diagnostic {
	return &manifest.Diagnostic{File: o.GetSource().File, Line: o.FieldLine(field), Field: field,
		Severity: manifest.SeverityError, Message: msg, Ref: o.GetRef()}
}
