package plan

import (
	"fmt"
	"strings"

	"github.com/osbgit/osbgit/manifest"
)

// instanceState is what a binding needs from its instance in this plan.
type instanceState struct {
	ref manifest.Ref
	// target is the instance's broker, service and plan once the
	// binding's call is made.
	target Target
	// externalID is the instance_id.
	externalID string
	// depends: the instance has a step in this plan the bind must follow.
	depends bool
	// recreated: the instance is provisioned again in this plan (the
	// broker lost it), so its bindings are gone too.
	recreated bool
	// wait, when set, says why the binding cannot be bound now.
	wait string
}

// usable reports whether a recorded instance can be bound.
func usable(rec *manifest.StatusRecord) bool {
	return ClaimsResource(rec) && rec.PlanExternalID != ""
}

// ClaimsResource reports whether rec says its broker holds the resource
// and no operation on it is in flight: Ready, or a failed update or
// re-bind (which leave the resource in place). A failed create claims
// nothing certain. These are the records drift checks cover.
func ClaimsResource(rec *manifest.StatusRecord) bool {
	if rec == nil || !rec.Provisioned || rec.AsyncOpInProgress {
		return false
	}
	switch rec.Phase {
	case manifest.PhaseReady:
		return true
	case manifest.PhaseFailed:
		lo := rec.LastOperation
		return lo != nil && (lo.Type == manifest.OperationUpdate || lo.Type == manifest.OperationUnbind)
	}
	return false
}

// instanceFor returns the state of a binding's instance (planned before
// the bindings).
func (p *planner) instanceFor(ref manifest.Ref) instanceState {
	st := instanceState{ref: ref}
	is := p.steps[ref]
	rec := p.in.Records[ref]
	switch {
	case is == nil:
		st.wait = "waiting for instance " + ref.Namespace + "/" + ref.Name
		return st
	case p.errRefs[ref]:
		st.wait = fmt.Sprintf("waiting for instance %s/%s: its manifest has errors", ref.Namespace, ref.Name)
		return st
	case is.Error != "":
		st.wait = fmt.Sprintf("waiting for instance %s/%s: it is blocked (%s)", ref.Namespace, ref.Name, is.Error)
		return st
	}
	switch is.Action {
	case Create:
		st.target, st.externalID, st.depends = is.Target, is.ExternalID, true
		st.recreated = rec != nil && (rec.Lost != nil || usable(rec))
	case Update, Adopt:
		st.target, st.externalID, st.depends = is.Target, is.ExternalID, true
	case None:
		if !usable(rec) {
			st.wait = fmt.Sprintf("waiting for instance %s/%s to be ready", ref.Namespace, ref.Name)
			if rec != nil && rec.Phase != "" {
				st.wait += " (phase " + string(rec.Phase) + ")"
			} else if is.Reason != "" {
				st.wait += " (" + is.Reason + ")"
			}
			return st
		}
		st.target, st.externalID = recordTarget(rec), rec.ExternalID
	default:
		st.wait = fmt.Sprintf("waiting for instance %s/%s to be ready", ref.Namespace, ref.Name)
		if rec != nil && rec.Phase != "" {
			st.wait += fmt.Sprintf(" (phase %s; this pass: %s)", rec.Phase, is.Action)
		} else {
			st.wait += fmt.Sprintf(" (this pass: %s)", is.Action)
		}
	}
	return st
}

// binding plans one ServiceBinding (b and/or rec may be nil, not both).
func (p *planner) binding(ref manifest.Ref, b *manifest.ServiceBinding, rec *manifest.StatusRecord) Step {
	var obj manifest.Object
	merr := ""
	if b != nil {
		obj = b
		merr = p.diagErrors(ref)
	}
	s := newStep(ref, obj, rec)
	if p.inFlight(&s, rec, merr) {
		if s.Action == Poll && s.Operation.Type == manifest.OperationBind {
			// A rotation's bind: once it is done, its predecessor is
			// unbound.
			s.PredecessorBindingID = predecessorOf(rec)
		}
		if b != nil && s.Action == Poll && s.Operation.Type == manifest.OperationBind {
			// The bind's credentials are written when the poll finds it
			// done: they go where the manifest says, as for a
			// synchronous bind.
			s.SecretTransforms = b.Spec.SecretTransforms
			if rec.SecretRef == nil {
				s.SecretNamespace, s.SecretName = b.Namespace, b.Spec.SecretName
			}
		}
		return s
	}
	if pred := predecessorOf(rec); pred != "" && (rec.Phase == manifest.PhaseReady || b == nil) {
		// The rotation's new binding is bound (or the manifest is gone
		// and both bindings must go): unbind the predecessor first.
		s.Action = Update
		s.PredecessorBindingID = pred
		s.PredecessorOnly = true
		s.Reason = "finishing a binding rotation: unbinding predecessor " + pred
		if rec.Phase == manifest.PhaseReady {
			s.Reason += " (the new binding " + rec.ExternalID + " is bound)"
		}
		return s
	}
	if b == nil {
		p.removed(&s, rec)
		return s
	}
	if rec != nil && rec.Phase == manifest.PhaseDeprovisioning {
		retryDelete(&s)
		return s
	}
	if merr != "" {
		s.Reason = "invalid manifest"
		s.Error = merr
		return s
	}
	s.SecretNamespace = b.Namespace
	s.SecretName = b.Spec.SecretName
	s.SecretTransforms = b.Spec.SecretTransforms
	var d desiredState
	p.resolveParams(&d, b, b.Spec.Parameters, b.Spec.ParametersFrom)
	if d.paramErr != nil {
		s.Reason = "parameters do not resolve"
		s.Error = d.paramErr.Error()
		return s
	}
	p.notCompared(&s, &d, rec)
	s.SpecHash = d.specHash
	if rec != nil && rec.Provisioned && rec.InstanceName != "" && rec.InstanceName != b.Spec.InstanceRef.Name {
		s.Reason = "spec.instanceRef cannot change"
		s.Error = fmt.Sprintf("spec.instanceRef.name cannot change: the binding is bound to instance %q; create a new binding instead", rec.InstanceName)
		return s
	}
	instRef := b.InstanceRef()
	if p.set.Instance(instRef.Namespace, instRef.Name) == nil {
		s.Reason = "no such instance"
		s.Error = fmt.Sprintf("spec.instanceRef.name: no ServiceInstance %q in namespace %q", instRef.Name, instRef.Namespace)
		return s
	}
	st := p.instanceFor(instRef)
	switch {
	case rec == nil:
		p.createBinding(&s, b, st, d, "", "new binding")
	case rec.Phase == manifest.PhasePending || rec.Phase == manifest.PhaseProvisioning || (rec.Phase == "" && !rec.Provisioned):
		id := rec.ExternalID
		p.createBinding(&s, b, st, d, id, "repeating the bind reserved by an earlier pass (same binding_id; the broker answers 200 if it was made)")
		if pred := predecessorOf(rec); pred != "" && s.Action == Create {
			s.PredecessorBindingID = pred
			s.Reason += "; a rotation of " + pred
		}
		if s.Action == Create {
			s.WriteAhead = id == "" || rec.InProgress == nil || *rec.InProgress != *s.Desired || rec.InstanceExternalID != st.externalID
		}
	case rec.Phase == manifest.PhaseFailed && !rec.Provisioned:
		if due, wait := p.retryWait(rec); !due && !specChanged(rec, bindingDesired(d, st)) && !st.recreated {
			s.Reason = "bind failed; retried when the manifest changes"
			if wait != "" {
				s.Reason = "bind failed: " + wait
			}
			s.Warnings = append(s.Warnings, "bind failed: "+failureMessage(rec))
			return s
		}
		id := b.Spec.ExternalID
		if id == "" {
			id = rec.ExternalID
		}
		p.createBinding(&s, b, st, d, id, "retrying the failed bind: the manifest changed since ("+failureMessage(rec)+")")
		if pred := predecessorOf(rec); pred != "" && pred != id && s.Action == Create {
			s.PredecessorBindingID = pred
			s.Reason += "; a rotation of " + pred
		}
	default:
		p.existingBinding(&s, b, rec, st, d)
	}
	return s
}

// predecessorOf is the binding an unfinished rotation replaces ("" when
// none): the record keeps it until the predecessor is unbound.
func predecessorOf(rec *manifest.StatusRecord) string {
	if rec == nil || rec.PredecessorExternalID == rec.ExternalID {
		return ""
	}
	return rec.PredecessorExternalID
}

// bindingDesired fills d.props for a binding of the instance state.
func bindingDesired(d desiredState, st instanceState) desiredState {
	d.props = manifest.Properties{
		ClassExternalName: st.target.ClassExternalName,
		ClassExternalID:   st.target.ServiceID,
		PlanExternalName:  st.target.PlanExternalName,
		PlanExternalID:    st.target.PlanID,
		ParameterChecksum: d.checksum,
	}
	return d
}

// checkBindable blocks the step when the instance's plan is not bindable.
func (p *planner) checkBindable(s *Step, st instanceState) bool {
	svc, pl, ok := p.catalogPlan(st.target.Broker, st.target.ServiceID, st.target.PlanID)
	if !ok {
		s.Warnings = append(s.Warnings, fmt.Sprintf("cannot check that plan %s is bindable: it is not in the catalog of %s", planLabel(st.target), st.target.Broker))
		return true
	}
	if !svc.IsBindable(pl) {
		s.Reason = "the instance's plan is not bindable"
		s.Error = fmt.Sprintf("plan %q of class %q is not bindable", pl.Name, svc.Name)
		return false
	}
	return true
}

// fillBind fills the call part of a bind (create or re-bind) step.
func (p *planner) fillBind(s *Step, b *manifest.ServiceBinding, st instanceState, d desiredState) {
	s.InstanceExternalID = st.externalID
	s.Target = st.target
	props := bindingDesired(d, st).props
	s.Desired = &props
	s.SendParameters = len(d.params) > 0
	if s.SendParameters {
		s.Parameters = d.params
		s.SecretParameterKeys = d.secretKeys
	}
	s.Context = p.kubeContext(b.Namespace, b.Spec.InstanceRef.Name)
	if st.depends {
		s.DependsOn = append(s.DependsOn, st.ref)
	}
}

// createBinding plans a bind with id (a new one when empty), or a wait.
func (p *planner) createBinding(s *Step, b *manifest.ServiceBinding, st instanceState, d desiredState, id, reason string) {
	if st.wait != "" {
		s.Reason = st.wait
		s.WaitsFor = []manifest.Ref{st.ref}
		return
	}
	if !p.checkBindable(s, st) {
		return
	}
	if id == "" {
		id = b.Spec.ExternalID
	}
	if id == "" {
		id = p.newID(s.Ref)
	}
	s.Action = Create
	s.ExternalID = id
	s.WriteAhead = true
	s.Reason = reason
	p.fillBind(s, b, st, d)
	s.Changes = append([]Change{
		{Path: "instance", Op: ChangeAdd, New: b.Spec.InstanceRef.Name},
		{Path: "secret", Op: ChangeAdd, New: b.Namespace + "/" + b.Spec.SecretName},
	}, paramChanges(d.params, d.secretKeys, ChangeAdd)...)
}

// existingBinding plans a bound binding: nothing, bind again (lost, or the
// instance was provisioned again), or re-bind (parameters changed).
func (p *planner) existingBinding(s *Step, b *manifest.ServiceBinding, rec *manifest.StatusRecord, st instanceState, d desiredState) {
	obs, hasObs := p.in.Observations[s.Ref]
	if hasObs && obs.Err != "" {
		s.Warnings = append(s.Warnings, "drift check failed: "+obs.Err)
	}
	if sr := rec.SecretRef; sr != nil && (sr.Name != b.Spec.SecretName || (sr.Namespace != "" && sr.Namespace != b.Namespace)) {
		s.Warnings = append(s.Warnings, fmt.Sprintf("secretName changed (%s -> %s): the credentials are written to the new Secret the next time the binding is bound (change its parameters, or recreate it)", sr.Name, b.Spec.SecretName))
	}
	paramsChanged := d.checksum != rec.ParameterChecksum
	secretDrift := p.in.SecretDrift[s.Ref]
	lostHow := lostBy(rec, obs, hasObs)
	lost := lostHow != ""
	var live map[string]any
	driftParams := false
	if hasObs && obs.Binding != nil && obs.Binding.Parameters != nil {
		live = obs.Binding.Parameters
		driftParams = !paramsChanged && paramsDrifted(live, d.params)
	}
	if due, wait := p.retryWait(rec); rec.Phase == manifest.PhaseFailed && !due && !specChanged(rec, bindingDesired(d, st)) && !lost && !st.recreated {
		s.Reason = "re-bind failed; retried when the manifest changes"
		if wait != "" {
			s.Reason = "re-bind failed: " + wait
		}
		s.Warnings = append(s.Warnings, "re-bind failed: "+failureMessage(rec))
		return
	}
	switch {
	case st.recreated:
		p.createBinding(s, b, st, d, rec.ExternalID, fmt.Sprintf("instance %s is provisioned again: binding again with the same binding_id", b.Spec.InstanceRef.Name))
		return
	case lost:
		if p.lostAtMovedBroker(s, rec) {
			return
		}
		p.createBinding(s, b, st, d, rec.ExternalID, "broker lost the binding ("+lostHow+" answered 404): binding again with the same binding_id")
		return
	case !paramsChanged && !driftParams && secretDrift == "":
		s.Reason = "in sync"
		if s.DeletionPolicy != rec.DeletionPolicy {
			s.Action = Adopt
			props := rec.Properties
			s.Desired = &props
			s.Reason = policyReason(s.DeletionPolicy)
		}
		return
	}
	var why []string
	if secretDrift != "" {
		why = append(why, secretDriftReason(rec, b, secretDrift))
	}
	if st.wait != "" {
		s.Reason = strings.Join(append(why, st.wait), "; ")
		s.WaitsFor = []manifest.Ref{st.ref}
		return
	}
	if !p.checkBindable(s, st) {
		return
	}
	svc, pl, _ := p.catalogPlan(st.target.Broker, st.target.ServiceID, st.target.PlanID)
	if !paramsChanged && !driftParams && svc.BindingsRetrievable {
		// Only the Secret is wrong: the broker still holds the binding
		// and can tell its credentials again, without a mutating call.
		s.Action = Adopt
		s.RestoreSecret = true
		s.ExternalID = rec.ExternalID
		s.InstanceExternalID = st.externalID
		s.Target = recordTarget(rec)
		props := rec.Properties
		s.Desired = &props
		s.Reason = why[0] + ": restored from the broker (fetch binding)"
		s.Changes = []Change{{Path: "secret", Op: ChangeModify, New: s.SecretNamespace + "/" + s.SecretName}}
		return
	}
	s.Action = Update
	prev := recordTarget(rec)
	s.Previous = &prev
	switch {
	case paramsChanged:
		why = append(why, "parameters changed")
	case driftParams:
		why = append(why, "drift: broker reports different parameters")
	default:
		why[0] += ": restored from the broker by binding again (its bindings are not retrievable)"
	}
	if pl.IsBindingRotatable() && b.Spec.ExternalID == "" {
		s.ExternalID = p.newID(s.Ref)
		s.PredecessorBindingID = rec.ExternalID
		s.WriteAhead = true
		why = append(why, "rotating the binding (new binding_id, predecessor "+rec.ExternalID+")")
	} else {
		s.ExternalID = rec.ExternalID
		why = append(why, "re-binding: unbind, then bind again with the same binding_id")
	}
	s.Reason = strings.Join(why, "; ")
	p.fillBind(s, b, st, d)
	s.Changes = p.paramUpdateChanges(s.Ref, live, d, paramsChanged)
	if secretDrift != "" {
		s.Changes = append(s.Changes, Change{Path: "secret", Op: ChangeModify, New: s.SecretNamespace + "/" + s.SecretName})
	}
}

// secretDriftReason says what became of the binding's Secret: "Secret
// apps/db-creds was deleted". It names the Secret osbgit wrote (the
// record's), else the one the manifest names.
func secretDriftReason(rec *manifest.StatusRecord, b *manifest.ServiceBinding, drift SecretDrift) string {
	ns, name := b.Namespace, b.Spec.SecretName
	if sr := rec.SecretRef; sr != nil {
		name = sr.Name
		if sr.Namespace != "" {
			ns = sr.Namespace
		}
	}
	what := "was deleted"
	if drift == SecretEdited {
		what = "no longer holds what osbgit wrote"
	}
	return fmt.Sprintf("Secret %s/%s %s", ns, name, what)
}
