package osbtest

import (
	"net/http"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

type binding struct {
	id, instanceID, serviceID, planID string
	appGUID                           string
	bindResource                      *osbwire.BindResource
	params                            map[string]any
	context                           *osbwire.Context
	predecessor                       string
	creds                             map[string]any
	endpoints                         []osbwire.Endpoint
	state                             State
	lastOp                            *operation
}

func (bn *binding) export() Binding {
	out := Binding{
		ID: bn.id, InstanceID: bn.instanceID, ServiceID: bn.serviceID, PlanID: bn.planID,
		AppGUID: bn.appGUID, BindResource: cloneBindResource(bn.bindResource),
		Parameters: copyMap(bn.params), Context: cloneContext(bn.context),
		PredecessorBindingID: bn.predecessor, Credentials: copyMap(bn.creds), State: bn.state,
	}
	if bn.lastOp != nil {
		out.Operation, out.LastOperation = bn.lastOp.id, bn.lastOp.op
	}
	return out
}

// bindDiff lists the attributes in which req differs from bn.
func bindDiff(bn *binding, req *osbwire.BindRequest) []string {
	var d []string
	add := func(name, have, got string) {
		if have != got {
			d = append(d, name+" (have "+have+", got "+got+")")
		}
	}
	add("service_id", bn.serviceID, req.ServiceID)
	add("plan_id", bn.planID, req.PlanID)
	add("app_guid", bn.appGUID, req.AppGUID)
	add("bind_resource", canonical(bn.bindResource), canonical(req.BindResource))
	d = append(d, objectDiff("parameters", bn.params, req.Parameters)...)
	d = append(d, objectDiff("context", contextMap(bn.context), contextMap(req.Context))...)
	add("predecessor_binding_id", bn.predecessor, req.PredecessorBindingID)
	return d
}

func (b *Broker) bind(rq *request, res *result) {
	ai, ok := acceptsIncomplete(rq, res)
	if !ok {
		return
	}
	var req osbwire.BindRequest
	if !decodeBody(rq, &req, res) {
		return
	}
	if missingFields(res, "field(s) in bind body", [2]string{"service_id", req.ServiceID}, [2]string{"plan_id", req.PlanID}) {
		return
	}
	if !checkContext(rq, req.Context, res) {
		return
	}
	iid, bid := rq.rt.instanceID, rq.rt.bindingID
	in := b.instances[iid]
	if in == nil {
		res.fail(http.StatusNotFound, "", "instance %s does not exist", iid)
		return
	}
	if req.ServiceID != in.serviceID || req.PlanID != in.planID {
		res.fail(http.StatusBadRequest, "", "service_id/plan_id %s/%s do not match instance %s (%s/%s)", req.ServiceID, req.PlanID, iid, in.serviceID, in.planID)
		return
	}
	svc, plan, ok := b.lookupPlan(in.serviceID, in.planID, res)
	if !ok {
		return
	}
	if !svc.IsBindable(*plan) {
		res.fail(http.StatusBadRequest, "", "plan %s of service %s is not bindable", plan.ID, svc.ID)
		return
	}
	req.Parameters = normalizeMap(req.Parameters)
	if !b.checkParams("service_binding create", plan.ID, bindingSchema(plan), req.Parameters, res) {
		return
	}
	if bn := b.bindings[bid]; bn != nil {
		b.rebind(bn, iid, &req, ai, res)
		return
	}
	if in.lastOp != nil && in.lastOp.inProgress() {
		res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "%s", b.busy(in))
		return
	}
	if in.state != StateReady {
		res.fail(http.StatusUnprocessableEntity, "", "instance %s cannot be bound in state %s", iid, in.state)
		return
	}
	if p := req.PredecessorBindingID; p != "" {
		if !plan.IsBindingRotatable() {
			res.fail(http.StatusBadRequest, "", "predecessor_binding_id given but plan %s is not binding_rotatable", plan.ID)
			return
		}
		pre := b.bindings[p]
		if pre == nil || pre.instanceID != iid || pre.state != StateReady {
			res.fail(http.StatusBadRequest, "", "predecessor_binding_id %q is not an existing binding of instance %s", p, iid)
			return
		}
	}
	bh := b.behaviorFor(in.planID, OpBind)
	if bh.RequiresApp && req.AppGUID == "" && (req.BindResource == nil || req.BindResource.AppGUID == "") {
		res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeRequiresApp, "plan %s requires an app GUID (bind_resource.app_guid)", in.planID)
		return
	}
	if bh.Async && !ai {
		asyncRequired(OpBind, in.planID, res)
		return
	}
	if !bh.Async && bh.Fail {
		syncFailure(OpBind, bh, res)
		return
	}
	bn := &binding{
		id: bid, instanceID: iid, serviceID: in.serviceID, planID: in.planID,
		appGUID: req.AppGUID, bindResource: cloneBindResource(req.BindResource),
		params: req.Parameters, context: cloneContext(req.Context),
		predecessor: req.PredecessorBindingID, state: StateReady,
	}
	if bh.Credentials != nil {
		bn.creds, _ = expandAll(copyMap(bh.Credentials), iid, bid).(map[string]any)
	} else {
		bn.creds = DefaultCredentials(b.cfg.CredentialSeed, iid, bid)
		bn.endpoints = []osbwire.Endpoint{{Host: "db.osbtest.invalid", Ports: []string{"5432"}, Protocol: "tcp"}}
	}
	b.bindings[bid] = bn
	delete(b.aborted, "b/"+bid)
	if !bh.Async {
		res.json(http.StatusCreated, osbwire.BindResponse{Credentials: bn.creds, Endpoints: bn.endpoints})
		return
	}
	op := b.startOp(OpBind, bh)
	op.bind, op.prePlanID = bn, in.planID
	bn.state, bn.lastOp = StateCreating, op
	res.json(http.StatusAccepted, osbwire.BindResponse{Operation: op.id})
}

// rebind answers a PUT for a binding ID that already exists.
func (b *Broker) rebind(bn *binding, iid string, req *osbwire.BindRequest, ai bool, res *result) {
	if bn.instanceID != iid {
		res.fail(http.StatusConflict, "", "binding %s already exists for instance %s", bn.id, bn.instanceID)
		return
	}
	op := bn.lastOp
	if op != nil && op.inProgress() && op.op != OpBind {
		res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "operation %s is in progress on binding %s", opName(op), bn.id)
		return
	}
	if bn.state == StateFailed {
		res.fail(http.StatusConflict, "", "binding %s exists but its last %s failed; unbind it first", bn.id, lastOpKind(op))
		return
	}
	if d := bindDiff(bn, req); len(d) > 0 {
		res.fail(http.StatusConflict, "", "binding %s already exists with different attributes: %s", bn.id, joinList(d))
		return
	}
	switch bn.state {
	case StateCreating:
		if !ai {
			asyncRequired(OpBind, bn.planID, res)
			return
		}
		res.json(http.StatusAccepted, osbwire.BindResponse{Operation: op.id})
	default:
		res.json(http.StatusOK, osbwire.BindResponse{Credentials: bn.creds, Endpoints: bn.endpoints})
	}
}

func (b *Broker) unbind(rq *request, res *result) {
	ai, ok := acceptsIncomplete(rq, res)
	if !ok {
		return
	}
	sid, pid := rq.query.Get("service_id"), rq.query.Get("plan_id")
	if missingFields(res, "query parameter(s) on unbind", [2]string{"service_id", sid}, [2]string{"plan_id", pid}) {
		return
	}
	iid, bid := rq.rt.instanceID, rq.rt.bindingID
	bn := b.bindings[bid]
	if bn == nil || bn.instanceID != iid {
		res.description = "binding " + bid + " of instance " + iid + " does not exist"
		res.json(http.StatusGone, struct{}{})
		return
	}
	plans := []string{bn.planID}
	if in := b.instances[iid]; in != nil && in.planID != bn.planID {
		plans = append(plans, in.planID)
	}
	if sid != bn.serviceID || !contains(plans, pid) {
		res.fail(http.StatusBadRequest, "", "service_id/plan_id %s/%s do not match binding %s (%s/%s)", sid, pid, bid, bn.serviceID, bn.planID)
		return
	}
	var abort *operation
	if op := bn.lastOp; op != nil && op.inProgress() {
		if op.op == OpUnbind {
			if !ai {
				asyncRequired(OpUnbind, bn.planID, res)
				return
			}
			res.json(http.StatusAccepted, osbwire.UnbindResponse{Operation: op.id})
			return
		}
		abort = op // the spec: an unbind during binding halts it
	}
	bh := b.behaviorFor(plans[len(plans)-1], OpUnbind)
	if bh.Async && !ai {
		asyncRequired(OpUnbind, bn.planID, res)
		return
	}
	if !bh.Async && bh.Fail {
		syncFailure(OpUnbind, bh, res)
		return
	}
	if abort != nil {
		abort.state = osbwire.StateFailed
		abort.description = "bind aborted by an unbind request"
	}
	if !bh.Async {
		delete(b.bindings, bid)
		if abort != nil && abort.id != "" {
			b.aborted["b/"+bid] = abort.id
		}
		res.json(http.StatusOK, struct{}{})
		return
	}
	op := b.startOp(OpUnbind, bh)
	op.bind, op.prePlanID = bn, bn.planID
	bn.state, bn.lastOp = StateDeleting, op
	res.json(http.StatusAccepted, osbwire.UnbindResponse{Operation: op.id})
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func (b *Broker) getBinding(rq *request, res *result) {
	iid, bid := rq.rt.instanceID, rq.rt.bindingID
	serviceID := rq.query.Get("service_id")
	if in := b.instances[iid]; in != nil {
		serviceID = in.serviceID
	}
	if svc, _ := b.findPlan(serviceID, ""); svc != nil && !svc.BindingsRetrievable {
		res.fail(http.StatusBadRequest, "", "service %s does not declare bindings_retrievable: fetching a binding is not supported", svc.ID)
		return
	}
	bn := b.bindings[bid]
	if bn == nil || bn.instanceID != iid {
		res.fail(http.StatusNotFound, "", "binding %s of instance %s does not exist", bid, iid)
		return
	}
	if !checkIDQuery(rq, "binding "+bid, bn.serviceID, b.bindingPlans(bn), res) {
		return
	}
	switch bn.state {
	case StateCreating:
		res.fail(http.StatusNotFound, "", "binding %s is still being created", bid)
		return
	case StateFailed:
		if bn.lastOp != nil && bn.lastOp.op == OpBind {
			res.fail(http.StatusNotFound, "", "binding %s failed to be created", bid)
			return
		}
	}
	res.json(http.StatusOK, osbwire.GetBindingResponse{Credentials: bn.creds, Endpoints: bn.endpoints, Parameters: bn.params})
}

// bindingPlans lists the plan IDs a request may name for bn: the plan it was
// created with and the instance's current plan.
func (b *Broker) bindingPlans(bn *binding) []string {
	plans := []string{bn.planID}
	if in := b.instances[bn.instanceID]; in != nil && in.planID != bn.planID {
		plans = append(plans, in.planID)
	}
	return plans
}

func (b *Broker) bindingLastOperation(rq *request, res *result) {
	iid, bid := rq.rt.instanceID, rq.rt.bindingID
	bn := b.bindings[bid]
	if bn == nil || bn.instanceID != iid {
		if opID := b.aborted["b/"+bid]; opID != "" && rq.query.Get("operation") == opID {
			res.json(http.StatusOK, osbwire.LastOperationResponse{State: osbwire.StateFailed, Description: "bind aborted by an unbind request"})
			return
		}
		res.description = "binding " + bid + " of instance " + iid + " does not exist (gone)"
		res.json(http.StatusGone, struct{}{})
		return
	}
	op := bn.lastOp
	if op == nil {
		res.fail(http.StatusBadRequest, "", "no asynchronous operation was started for binding %s", bid)
		return
	}
	if !checkOperationParam(rq, op, res) {
		return
	}
	if !checkIDQuery(rq, "binding "+bid, bn.serviceID, b.bindingPlans(bn), res) {
		return
	}
	b.pollAnswer(op, res)
}
