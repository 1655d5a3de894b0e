package plan

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/osbgit/osbgit/manifest"
)

// desiredState is what a manifest asks for, resolved against the catalogs
// and the secret store.
type desiredState struct {
	res        manifest.Resolved
	resolveErr error
	desiredParams
	props manifest.Properties
}

// desiredParams is the parameter part of a desiredState, which resolveAll
// computes for every object ahead (kept apart from the catalog entries of
// Resolved, which made the table resolveAll keeps a tenth of a no-op pass's
// live heap).
type desiredParams struct {
	params     map[string]any
	secretKeys []string
	checksum   string
	paramErr   error
	// notCompared (Options.SecretsNotCompared): a parametersFrom Secret
	// could not be read, so the parameters are not compared; why.
	notCompared string
	specHash    string
}

// resolveParams fills the parameter part of d for an object's parameters,
// from what resolveAll computed when it did.
func (p *planner) resolveParams(d *desiredState, o manifest.Object, params map[string]any, from []manifest.ParametersFromSource) {
	if r, ok := p.resolved[o.GetRef()]; ok {
		d.desiredParams = *r
		return
	}
	p.computeParams(&d.desiredParams, o, params, from)
}

// computeParams resolves an object's parameters and computes its spec hash.
// It only reads the planner's input, so it runs concurrently.
func (p *planner) computeParams(d *desiredParams, o manifest.Object, params map[string]any, from []manifest.ParametersFromSource) {
	d.params, d.secretKeys, d.paramErr = manifest.ResolveParameters(o.GetRef().Namespace, params, from, p.in.Secrets)
	if d.paramErr != nil && p.in.Options.SecretsNotCompared && errors.Is(d.paramErr, manifest.ErrSecretUnreadable) {
		d.notCompared, d.paramErr = d.paramErr.Error(), nil
		d.params, d.secretKeys, _ = manifest.ResolveParameters(o.GetRef().Namespace, params, nil, nil)
	}
	if d.paramErr == nil {
		d.checksum, d.paramErr = manifest.ParameterChecksum(d.params)
	}
	if d.paramErr == nil {
		d.specHash, d.paramErr = manifest.SpecHash(o)
	}
}

// desiredInstance resolves an instance manifest.
func (p *planner) desiredInstance(inst *manifest.ServiceInstance) desiredState {
	var d desiredState
	p.resolveParams(&d, inst, inst.Spec.Parameters, inst.Spec.ParametersFrom)
	d.res, d.resolveErr = manifest.Resolve(inst, p.set.Brokers(), p.in.Catalogs)
	if d.resolveErr == nil {
		d.props = manifest.Properties{
			ClassExternalName: d.res.Service.Name,
			ClassExternalID:   d.res.Service.ID,
			PlanExternalName:  d.res.Plan.Name,
			PlanExternalID:    d.res.Plan.ID,
			ParameterChecksum: d.checksum,
			UpdateRequests:    inst.Spec.UpdateRequests,
		}
	}
	return d
}

// notCompared notes parameters that could not be compared (a parametersFrom
// Secret unreadable offline) and takes the recorded parameters as
// unchanged, so the rest of the plan (class, plan, updateRequests) is
// still shown.
func (p *planner) notCompared(s *Step, d *desiredState, rec *manifest.StatusRecord) {
	if d.notCompared == "" {
		return
	}
	s.Warnings = append(s.Warnings, "parameters from Secrets, not compared ("+d.notCompared+")")
	if rec != nil {
		d.checksum = rec.ParameterChecksum
		if d.props.PlanExternalID != "" {
			d.props.ParameterChecksum = rec.ParameterChecksum
		}
	}
}

// unresolved blocks a step whose plan reference does not resolve. A class
// not found while some candidate broker has no catalog yet only waits.
func unresolved(s *Step, err error) {
	var re *manifest.ResolveError
	if errors.As(err, &re) && len(re.MissingCatalogs) > 0 {
		var names []string
		for _, r := range re.MissingCatalogs {
			names = append(names, r.String())
		}
		s.Reason = "waiting for the catalog of " + strings.Join(names, ", ")
		s.Warnings = append(s.Warnings, err.Error())
		s.WaitsFor = append(s.WaitsFor, re.MissingCatalogs...)
		return
	}
	s.Reason = "the plan reference does not resolve"
	s.Error = err.Error()
}

// instance plans one ServiceInstance (inst and/or rec may be nil, not both).
func (p *planner) instance(ref manifest.Ref, inst *manifest.ServiceInstance, rec *manifest.StatusRecord) Step {
	var obj manifest.Object
	merr := ""
	if inst != nil {
		obj = inst
		merr = p.diagErrors(ref)
	}
	s := newStep(ref, obj, rec)
	if p.inFlight(&s, rec, merr) {
		if inst != nil && merr == "" {
			p.noteQueuedChange(&s, inst, rec)
		}
		return s
	}
	if inst == nil {
		p.removed(&s, rec)
		if s.Action == Delete {
			if bs := p.bindingsOf[ref]; len(bs) > 0 {
				var names []string
				for _, b := range bs {
					names = append(names, b.String())
				}
				s.Action = None
				s.Reason = "manifest removed, but bindings still refer to it"
				s.Error = fmt.Sprintf("cannot deprovision: %s still has a manifest; remove it too (bindings are unbound before their instance is deprovisioned)", strings.Join(names, ", "))
			}
		}
		return s
	}
	if rec != nil && rec.Phase == manifest.PhaseDeprovisioning {
		retryDelete(&s)
		return s
	}
	d := p.desiredInstance(inst)
	if merr != "" {
		if p.catalogGoneUnchanged(&s, inst, rec, d) {
			s.Warnings = append(s.Warnings, "manifest errors (the instance is left alone): "+merr)
			return s
		}
		s.Reason = "invalid manifest"
		s.Error = merr
		return s
	}
	if d.paramErr != nil {
		s.Reason = "parameters do not resolve"
		s.Error = d.paramErr.Error()
		return s
	}
	p.notCompared(&s, &d, rec)
	s.SpecHash = d.specHash
	switch {
	case rec == nil:
		p.newInstance(&s, inst, d)
	case rec.Phase == manifest.PhasePending || rec.Phase == manifest.PhaseProvisioning || (rec.Phase == "" && !rec.Provisioned):
		p.pendingInstance(&s, inst, rec, d)
	case rec.Phase == manifest.PhaseFailed && !rec.Provisioned:
		p.failedInstanceCreate(&s, inst, rec, d)
	default:
		p.existingInstance(&s, inst, rec, d)
	}
	return s
}

// createInstance fills a provision step.
func (p *planner) createInstance(s *Step, inst *manifest.ServiceInstance, d desiredState, id string) {
	s.Action = Create
	s.ExternalID = id
	s.WriteAhead = true
	s.Target = resolvedTarget(d.res)
	props := d.props
	s.Desired = &props
	s.SendParameters = len(d.params) > 0
	if s.SendParameters {
		s.Parameters = d.params
		s.SecretParameterKeys = d.secretKeys
	}
	s.Context = p.kubeContext(inst.Namespace, inst.Name)
	if mi := d.res.Plan.MaintenanceInfo; mi != nil {
		c := *mi
		s.MaintenanceInfo = &c
	}
	s.Changes = append([]Change{
		{Path: "class", Op: ChangeAdd, New: d.res.Service.Name},
		{Path: "plan", Op: ChangeAdd, New: d.res.Plan.Name},
	}, paramChanges(d.params, d.secretKeys, ChangeAdd)...)
	if inst.Spec.UpdateRequests != 0 {
		s.Changes = append(s.Changes, Change{Path: "updateRequests", Op: ChangeAdd, New: strconv.FormatInt(inst.Spec.UpdateRequests, 10)})
	}
}

// newInstance plans an instance without a record: create, or adopt what the
// broker already holds under spec.externalID.
func (p *planner) newInstance(s *Step, inst *manifest.ServiceInstance, d desiredState) {
	if d.resolveErr != nil {
		unresolved(s, d.resolveErr)
		return
	}
	obs, hasObs := p.in.Observations[s.Ref]
	if hasObs && obs.Err != "" {
		s.Warnings = append(s.Warnings, "live check failed: "+obs.Err)
	}
	if id := inst.Spec.ExternalID; id != "" && hasObs && obs.Instance != nil && !obs.NotFound {
		live := obs.Instance
		if (live.PlanID != "" && live.PlanID != d.res.Plan.ID) || (live.ServiceID != "" && live.ServiceID != d.res.Service.ID) {
			s.Reason = "spec.externalID names an instance the broker already holds with another plan"
			s.Error = fmt.Sprintf("instance_id %s already exists at %s with service_id %q, plan_id %q (the manifest asks for %q, plan %q): set the manifest's class and plan to what the broker holds to adopt it, or use another externalID",
				id, d.res.BrokerRef, live.ServiceID, live.PlanID, d.res.Service.ID, d.res.Plan.ID)
			return
		}
		s.Action = Adopt
		s.ExternalID = id
		s.Target = resolvedTarget(d.res)
		props := d.props
		if live.Parameters != nil {
			// Record what the broker holds, so that different parameters
			// are sent by the next pass's update.
			if sum, err := manifest.ParameterChecksum(live.Parameters); err == nil && sum != d.checksum {
				props.ParameterChecksum = sum
				s.Warnings = append(s.Warnings, "the broker reports other parameters than the manifest's: they are updated by the next pass")
			}
		}
		s.Desired = &props
		s.Reason = fmt.Sprintf("the broker already holds instance %s with plan %q (live GET): recording it without a call", id, d.res.Plan.Name)
		return
	}
	id := inst.Spec.ExternalID
	if id == "" {
		id = p.newID(s.Ref)
	}
	p.createInstance(s, inst, d, id)
	s.Reason = "new instance"
}

// pendingInstance repeats a create whose ID was reserved by an earlier pass.
func (p *planner) pendingInstance(s *Step, inst *manifest.ServiceInstance, rec *manifest.StatusRecord, d desiredState) {
	if d.resolveErr != nil {
		unresolved(s, d.resolveErr)
		return
	}
	id := rec.ExternalID
	if id == "" {
		id = inst.Spec.ExternalID
	}
	if id == "" {
		id = p.newID(s.Ref)
	}
	if inst.Spec.ExternalID != "" && rec.ExternalID != "" && inst.Spec.ExternalID != rec.ExternalID {
		s.Warnings = append(s.Warnings, fmt.Sprintf("spec.externalID %s differs from the reserved instance_id %s, which the earlier create may have used: keeping %s", inst.Spec.ExternalID, rec.ExternalID, rec.ExternalID))
	}
	p.createInstance(s, inst, d, id)
	s.Reason = "repeating the create reserved by an earlier pass (same instance_id; the broker answers 200 if it was made)"
	s.WriteAhead = rec.ExternalID == "" || rec.InProgress == nil || *rec.InProgress != d.props
	if rec.InProgress != nil && *rec.InProgress != d.props {
		s.Warnings = append(s.Warnings, "the manifest changed since the create was reserved: if the earlier call reached the broker it may answer 409 Conflict")
	}
}

// specChanged reports whether the desired state changed since the record's
// last action: the manifest's SpecHash (when recorded) or the resolved
// parameters' checksum (parametersFrom Secrets can change without the
// manifest), else the whole in-progress target.
func specChanged(rec *manifest.StatusRecord, d desiredState) bool {
	if rec.SpecHash != "" {
		if rec.SpecHash != d.specHash {
			return true
		}
		return rec.InProgress != nil && rec.InProgress.ParameterChecksum != d.checksum
	}
	return rec.InProgress == nil || *rec.InProgress != d.props
}

// failedInstanceCreate retries a failed provision only when the manifest
// changed since (the failure was clean: nothing to mitigate).
func (p *planner) failedInstanceCreate(s *Step, inst *manifest.ServiceInstance, rec *manifest.StatusRecord, d desiredState) {
	msg := failureMessage(rec)
	due, wait := p.retryWait(rec)
	changed := specChanged(rec, d)
	if !changed && !due {
		s.Reason = "create failed; retried when the manifest changes (e.g. bump spec.updateRequests)"
		if wait != "" {
			s.Reason = "create failed: " + wait
		}
		s.Warnings = append(s.Warnings, "create failed: "+msg)
		return
	}
	if d.resolveErr != nil {
		unresolved(s, d.resolveErr)
		return
	}
	id := inst.Spec.ExternalID
	if id == "" {
		id = rec.ExternalID
	}
	if id == "" {
		id = p.newID(s.Ref)
	}
	p.createInstance(s, inst, d, id)
	s.Reason = retryReason(due, changed, "create", msg, "retrying the failed create: the manifest changed since ("+msg+")")
}

// refMatchesRecord reports whether the instance's plan reference designates
// the recorded class and plan, without a catalog.
func refMatchesRecord(inst *manifest.ServiceInstance, props manifest.Properties) bool {
	const (
		byName = iota
		byID
		byK8s
	)
	match := func(val, name, id string, by int) bool {
		if val == "" {
			return true
		}
		switch by {
		case byName:
			return val == name
		case byID:
			return val == id
		}
		return val == id || val == manifest.K8sNameForExternalID(id)
	}
	r := inst.Spec.PlanReference
	c, pl := props, props
	return match(r.ClusterServiceClassExternalName, c.ClassExternalName, c.ClassExternalID, byName) &&
		match(r.ClusterServicePlanExternalName, pl.PlanExternalName, pl.PlanExternalID, byName) &&
		match(r.ServiceClassExternalName, c.ClassExternalName, c.ClassExternalID, byName) &&
		match(r.ServicePlanExternalName, pl.PlanExternalName, pl.PlanExternalID, byName) &&
		match(r.ClusterServiceClassExternalID, c.ClassExternalName, c.ClassExternalID, byID) &&
		match(r.ClusterServicePlanExternalID, pl.PlanExternalName, pl.PlanExternalID, byID) &&
		match(r.ServiceClassExternalID, c.ClassExternalName, c.ClassExternalID, byID) &&
		match(r.ServicePlanExternalID, pl.PlanExternalName, pl.PlanExternalID, byID) &&
		match(r.ClusterServiceClassName, c.ClassExternalName, c.ClassExternalID, byK8s) &&
		match(r.ClusterServicePlanName, pl.PlanExternalName, pl.PlanExternalID, byK8s) &&
		match(r.ServiceClassName, c.ClassExternalName, c.ClassExternalID, byK8s) &&
		match(r.ServicePlanName, pl.PlanExternalName, pl.PlanExternalID, byK8s)
}

// catalogGoneUnchanged handles a provisioned instance whose recorded plan
// (or class) is gone from its broker's catalog while the manifest asks for
// nothing new: it is left alone with a warning. It reports whether it
// planned the step.
func (p *planner) catalogGoneUnchanged(s *Step, inst *manifest.ServiceInstance, rec *manifest.StatusRecord, d desiredState) bool {
	if rec == nil || !rec.Provisioned || rec.PlanExternalID == "" || !p.hasCatalog(rec.Broker) || d.paramErr != nil {
		return false
	}
	if _, _, ok := p.catalogPlan(rec.Broker, rec.ClassExternalID, rec.PlanExternalID); ok {
		return false
	}
	if !refMatchesRecord(inst, rec.Properties) || d.checksum != rec.ParameterChecksum || inst.Spec.UpdateRequests != rec.UpdateRequests {
		return false
	}
	s.Reason = "left alone: its plan is no longer in the catalog"
	s.Warnings = append(s.Warnings, goneWarning(rec))
	return true
}

func goneWarning(rec *manifest.StatusRecord) string {
	return fmt.Sprintf("plan %q (id %s) of class %q is no longer in the catalog of %s: the instance is left alone until the manifest asks for a plan the catalog has",
		rec.PlanExternalName, rec.PlanExternalID, rec.ClassExternalName, rec.Broker)
}

// existingInstance plans an instance the broker holds (Ready, or a failed
// update): update, recreate, adopt a drifted record, or nothing.
func (p *planner) existingInstance(s *Step, inst *manifest.ServiceInstance, rec *manifest.StatusRecord, d desiredState) {
	obs, hasObs := p.in.Observations[s.Ref]
	if hasObs && obs.Err != "" {
		s.Warnings = append(s.Warnings, "drift check failed: "+obs.Err)
	}
	paramsChanged := d.checksum != rec.ParameterChecksum
	urChanged := inst.Spec.UpdateRequests != rec.UpdateRequests
	_, _, inCatalog := p.catalogPlan(rec.Broker, rec.ClassExternalID, rec.PlanExternalID)
	planGone := p.hasCatalog(rec.Broker) && !inCatalog && rec.PlanExternalID != ""
	asksChange := !refMatchesRecord(inst, rec.Properties) || paramsChanged || urChanged
	if planGone && !asksChange {
		s.Reason = "left alone: its plan is no longer in the catalog"
		s.Warnings = append(s.Warnings, goneWarning(rec))
		return
	}
	if d.resolveErr != nil {
		if !asksChange {
			s.Reason = "in sync (as recorded; the plan reference cannot be checked against the catalog)"
			s.Warnings = append(s.Warnings, d.resolveErr.Error())
			return
		}
		unresolved(s, d.resolveErr)
		return
	}
	if planGone {
		s.Warnings = append(s.Warnings, goneWarning(rec))
	}
	switch {
	case rec.ClassExternalID != "" && rec.ClassExternalID != d.res.Service.ID:
		s.Reason = "the class cannot change"
		s.Error = fmt.Sprintf("the class of an existing instance cannot change (provisioned as %q, id %s; the manifest asks for %q): create a new instance instead", rec.ClassExternalName, rec.ClassExternalID, d.res.Service.Name)
		return
	case rec.Broker.Kind != "" && rec.Broker != d.res.BrokerRef:
		s.Reason = "the broker cannot change"
		s.Error = fmt.Sprintf("the instance is provisioned at %s and cannot move to %s: create a new instance instead", rec.Broker, d.res.BrokerRef)
		return
	case inst.Spec.ExternalID != "" && rec.ExternalID != "" && inst.Spec.ExternalID != rec.ExternalID:
		s.Reason = "spec.externalID cannot change"
		s.Error = fmt.Sprintf("spec.externalID cannot change: the instance is provisioned as %s", rec.ExternalID)
		return
	}
	if how := lostBy(rec, obs, hasObs); how != "" {
		if p.lostAtMovedBroker(s, rec) {
			return
		}
		p.createInstance(s, inst, d, rec.ExternalID)
		s.Reason = "broker lost the instance (" + how + " answered 404): provisioning it again with the same instance_id"
		s.Warnings = append(s.Warnings, "the broker no longer holds instance "+rec.ExternalID+": it is provisioned again, its data is not restored")
		return
	}

	brokerPlan := rec.PlanExternalID
	driftPlan, driftParams := false, false
	var live map[string]any
	if hasObs && obs.Instance != nil {
		if id := obs.Instance.PlanID; id != "" && id != rec.PlanExternalID {
			driftPlan, brokerPlan = true, id
		}
		if obs.Instance.Parameters != nil {
			live = obs.Instance.Parameters
			driftParams = !paramsChanged && paramsDrifted(live, d.params)
		}
	}
	planChanged := d.res.Plan.ID != brokerPlan

	if rec.Phase == manifest.PhaseFailed && !specChanged(rec, d) && !driftPlan && !driftParams {
		op := failedOp(rec, "update")
		due, wait := p.retryWait(rec)
		if !due {
			s.Reason = op + " failed; retried when the manifest changes (e.g. bump spec.updateRequests)"
			if wait != "" {
				s.Reason = op + " failed: " + wait
			}
			s.Warnings = append(s.Warnings, op+" failed: "+failureMessage(rec))
			return
		}
	}
	moved := p.movedFrom(rec)
	if moved != "" && !hasObs {
		s.Warnings = append(s.Warnings, fmt.Sprintf("the broker's URL changed (the instance was created at %s); it cannot be checked at the new URL (not retrievable)", moved))
	}
	if !planChanged && !paramsChanged && !urChanged && !driftParams {
		props := d.props
		if moved != "" && hasObs && obs.Instance != nil {
			s.Action = Adopt
			s.Target = resolvedTarget(d.res)
			s.Desired = &props
			s.Reason = "the broker moved from " + moved + " and holds the instance at its new URL: recording it"
			return
		}
		if driftPlan || rec.Properties != props {
			// The broker holds what the manifest asks for but the record
			// says otherwise: record it, no call.
			s.Action = Adopt
			s.Target = resolvedTarget(d.res)
			s.Desired = &props
			s.Reason = fmt.Sprintf("the broker reports plan %q (changed outside osbgit), which the manifest asks for: recording it", d.res.Plan.Name)
			if !driftPlan {
				s.Reason = "the catalog renamed the class or plan: recording the new names"
			}
			return
		}
		if s.DeletionPolicy != rec.DeletionPolicy {
			s.Action = Adopt
			s.Target = resolvedTarget(d.res)
			s.Desired = &props
			s.Reason = policyReason(s.DeletionPolicy)
			return
		}
		s.Reason = "in sync"
		return
	}

	prev := recordTarget(rec)
	if driftPlan {
		prev.PlanID = brokerPlan
		prev.PlanExternalName = ""
		if _, pl, ok := p.catalogPlan(rec.Broker, rec.ClassExternalID, brokerPlan); ok {
			prev.PlanExternalName = pl.Name
		}
	}
	if planChanged {
		svc, cur, ok := p.catalogPlan(rec.Broker, d.res.Service.ID, brokerPlan)
		updateable := d.res.Service.PlanUpdateable
		if ok {
			updateable = svc.IsPlanUpdateable(cur)
		} else {
			s.Warnings = append(s.Warnings, "the current plan is not in the catalog: the service's plan_updateable decides")
		}
		if !updateable {
			s.Reason = "the plan cannot change"
			s.Error = fmt.Sprintf("plan %s is not updateable to %q: plan_updateable is false for class %q", planLabel(prev), d.res.Plan.Name, d.res.Service.Name)
			return
		}
	}

	s.Action = Update
	s.ExternalID = rec.ExternalID
	s.Target = resolvedTarget(d.res)
	s.Previous = &prev
	props := d.props
	s.Desired = &props
	s.SendPlan = planChanged
	s.SendParameters = paramsChanged || driftParams
	if s.SendParameters {
		s.Parameters = d.params
		s.SecretParameterKeys = d.secretKeys
	}
	s.Context = p.kubeContext(inst.Namespace, inst.Name)
	if mi := d.res.Plan.MaintenanceInfo; mi != nil {
		c := *mi
		s.MaintenanceInfo = &c
	}

	var why []string
	switch {
	case driftPlan:
		why = append(why, "drift: broker reports plan "+planLabel(prev))
	case planChanged:
		why = append(why, fmt.Sprintf("plan changed: %s -> %q", planLabel(prev), d.res.Plan.Name))
	}
	if planChanged {
		s.Changes = append(s.Changes, Change{Path: "plan", Op: ChangeModify, Old: planName(prev), New: d.res.Plan.Name})
	}
	if paramsChanged {
		why = append(why, "parameters changed")
	}
	if driftParams {
		why = append(why, "drift: broker reports different parameters")
	}
	if s.SendParameters {
		s.Changes = append(s.Changes, p.paramUpdateChanges(s.Ref, live, d, paramsChanged)...)
	}
	if urChanged {
		why = append(why, fmt.Sprintf("updateRequests changed: %d -> %d", rec.UpdateRequests, inst.Spec.UpdateRequests))
		s.Changes = append(s.Changes, Change{Path: "updateRequests", Op: ChangeModify, Old: strconv.FormatInt(rec.UpdateRequests, 10), New: strconv.FormatInt(inst.Spec.UpdateRequests, 10)})
	}
	s.Reason = strings.Join(why, "; ")
}

// paramUpdateChanges shows a parameter update: a real diff against the
// broker's values when a live GET told them, else against the manifest
// last applied (Input.Applied), else every desired value with op "set"
// (old values unknown).
func (p *planner) paramUpdateChanges(ref manifest.Ref, live map[string]any, d desiredState, withRemovals bool) []Change {
	if live != nil {
		if ch := paramDiff(live, d.params, d.secretKeys, withRemovals, false); len(ch) > 0 {
			return ch
		}
	}
	if old, oldSecretKeys, ok := p.appliedParams(ref); ok {
		// A key from a Secret on either side is redacted on both.
		secretKeys := append(slices.Clone(d.secretKeys), oldSecretKeys...)
		if ch := paramDiff(old, d.params, secretKeys, true, true); len(ch) > 0 {
			return ch
		}
		if len(secretKeys) > 0 {
			// Only values read from Secrets differ.
			return []Change{{Path: "parameters (from Secrets)", Op: ChangeModify, Old: SensitiveValue, New: SensitiveValue, Sensitive: true}}
		}
	}
	if len(d.params) == 0 {
		return []Change{{Path: "parameters", Op: ChangeSet, New: "{}"}}
	}
	return paramChanges(d.params, d.secretKeys, ChangeSet)
}

// appliedParams resolves the parameters of the manifest last applied
// (Input.Applied, or the current manifest when its blob is the one
// applied) and the keys that came from Secrets. parametersFrom Secrets
// are read as they are today: their values are redacted either way, only
// their keys matter.
func (p *planner) appliedParams(ref manifest.Ref) (map[string]any, []string, bool) {
	obj := p.in.Applied[ref]
	if rec := p.in.Records[ref]; obj == nil && rec != nil && rec.Applied != nil && rec.Applied.Blob != "" {
		if cur, ok := p.set.Get(ref); ok && cur.GetSource().Blob == rec.Applied.Blob {
			obj = cur
		}
	}
	var params map[string]any
	var from []manifest.ParametersFromSource
	switch o := obj.(type) {
	case *manifest.ServiceInstance:
		params, from = o.Spec.Parameters, o.Spec.ParametersFrom
	case *manifest.ServiceBinding:
		params, from = o.Spec.Parameters, o.Spec.ParametersFrom
	default:
		return nil, nil, false
	}
	old, keys, err := manifest.ResolveParameters(ref.Namespace, params, from, p.in.Secrets)
	if err != nil {
		old, keys, err = manifest.ResolveParameters(ref.Namespace, params, nil, nil)
	}
	return old, keys, err == nil
}

// planName is a target's plan for display: its name, else its id.
func planName(t Target) string {
	if t.PlanExternalName != "" {
		return t.PlanExternalName
	}
	return t.PlanID
}

// planLabel is planName quoted, with the id when the name is unknown.
func planLabel(t Target) string {
	if t.PlanExternalName != "" {
		return strconv.Quote(t.PlanExternalName)
	}
	return "id " + t.PlanID
}

// policyReason explains an adopt step that only records a changed
// deletion policy.
func policyReason(policy string) string {
	if policy == "" {
		policy = manifest.DeletionPolicyDelete
	}
	return "deletion-policy changed to " + policy + ": recording it (no broker call)"
}

// noteQueuedChange warns on a poll or orphan mitigation when the manifest
// asks for something else than the operation in flight: in-flight
// operations take precedence, the change is planned once they end.
func (p *planner) noteQueuedChange(s *Step, inst *manifest.ServiceInstance, rec *manifest.StatusRecord) {
	d := p.desiredInstance(inst)
	if d.paramErr != nil || d.resolveErr != nil {
		return
	}
	want := rec.InProgress
	if want == nil && rec.Provisioned && rec.PlanExternalID != "" {
		want = &rec.Properties
	}
	if s.Action != Poll {
		return
	}
	switch {
	case s.Operation.Type == manifest.OperationDeprovision && !s.Operation.OrphanMitigation:
		s.Warnings = append(s.Warnings, "the manifest is present: the instance is provisioned again once the deprovision ends")
	case want == nil || *want != d.props:
		s.Warnings = append(s.Warnings, "the manifest asks for a change: it is planned once the operation in flight ends")
	}
}
