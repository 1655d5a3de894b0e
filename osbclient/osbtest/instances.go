package osbtest

import (
	"encoding/json"
	"net/http"

	"github.com/osbgit/osbgit/osbclient/osbwire"
)

// operation is an asynchronous operation on an instance or binding.
type operation struct {
	op          Op
	id          string // "" when the 202 carried no operation
	behavior    Behavior
	pollsLeft   int
	state       osbwire.LastOperationState
	description string
	// prePlanID is the instance's plan when the operation started: what an
	// update poll must send as plan_id.
	prePlanID string
	// key identifies the request's attributes, so that a re-sent identical
	// request is answered 202 with the same operation.
	key string

	inst *instance
	bind *binding

	// Pending update, applied on success.
	newPlanID    string
	newParams    map[string]any
	newContext   *osbwire.Context
	newMaint     *osbwire.MaintenanceInfo
	newDashboard string
}

func (op *operation) inProgress() bool { return op.state == osbwire.StateInProgress }

type instance struct {
	id, serviceID, planID string
	org, space            string
	params                map[string]any
	context               *osbwire.Context
	maint                 *osbwire.MaintenanceInfo
	dashboard             string
	state                 State
	lastOp                *operation
}

func (in *instance) export() Instance {
	out := Instance{
		ID: in.id, ServiceID: in.serviceID, PlanID: in.planID,
		OrganizationGUID: in.org, SpaceGUID: in.space,
		Parameters: copyMap(in.params), Context: cloneContext(in.context),
		MaintenanceInfo: cloneMaint(in.maint), DashboardURL: in.dashboard, State: in.state,
	}
	if in.lastOp != nil {
		out.Operation, out.LastOperation = in.lastOp.id, in.lastOp.op
	}
	return out
}

// busy reports why a new operation on the instance must wait ("" if none).
func (b *Broker) busy(in *instance) string {
	if in.lastOp != nil && in.lastOp.inProgress() {
		return "operation " + opName(in.lastOp) + " is in progress on instance " + in.id
	}
	for _, bn := range b.bindings {
		if bn.instanceID == in.id && bn.lastOp != nil && bn.lastOp.inProgress() {
			return "operation " + opName(bn.lastOp) + " is in progress on binding " + bn.id + " of instance " + in.id
		}
	}
	return ""
}

// lastOpKind names an operation's kind for messages ("operation" if none).
func lastOpKind(op *operation) string {
	if op == nil {
		return "operation"
	}
	return string(op.op)
}

func opName(op *operation) string {
	if op.id == "" {
		return string(op.op) + " (no operation ID)"
	}
	return op.id
}

// startOp creates an asynchronous operation. Call with b.mu held.
func (b *Broker) startOp(kind Op, bh Behavior) *operation {
	op := &operation{op: kind, behavior: bh, pollsLeft: bh.Polls, state: osbwire.StateInProgress}
	if op.pollsLeft < -1 {
		op.pollsLeft = -1
	}
	if !bh.OmitOperation {
		op.id = b.nextOpID(kind)
	}
	return op
}

// complete ends an operation: succeeded, or failed when its behaviour says
// so. Call with b.mu held.
func (b *Broker) complete(op *operation) {
	fail := op.behavior.Fail
	if fail {
		op.state = osbwire.StateFailed
		op.description = op.behavior.FailDescription
		if op.description == "" {
			op.description = string(op.op) + " failed (osbtest Behavior.Fail)"
		}
	} else {
		op.state = osbwire.StateSucceeded
		op.description = string(op.op) + " succeeded"
	}
	switch op.op {
	case OpProvision:
		op.inst.state = StateReady
		if fail {
			op.inst.state = StateFailed
		}
	case OpUpdate:
		in := op.inst
		in.state = StateReady
		if !fail {
			in.applyUpdate(op)
		}
	case OpDeprovision:
		if fail {
			op.inst.state = StateFailed
		} else if b.instances[op.inst.id] == op.inst {
			delete(b.instances, op.inst.id)
		}
	case OpBind:
		op.bind.state = StateReady
		if fail {
			op.bind.state = StateFailed
		}
	case OpUnbind:
		if fail {
			op.bind.state = StateFailed
		} else if b.bindings[op.bind.id] == op.bind {
			delete(b.bindings, op.bind.id)
		}
	}
}

func (in *instance) applyUpdate(op *operation) {
	if op.newPlanID != "" {
		in.planID = op.newPlanID
	}
	if op.newParams != nil {
		in.params = op.newParams
	}
	if op.newContext != nil {
		in.context = op.newContext
	}
	if op.newMaint != nil {
		in.maint = op.newMaint
	}
	if op.newDashboard != "" {
		in.dashboard = op.newDashboard
	}
}

// pollAnswer advances op by one poll and answers its state.
func (b *Broker) pollAnswer(op *operation, res *result) {
	if op.inProgress() {
		if op.pollsLeft == 0 {
			b.complete(op)
		} else {
			if op.pollsLeft > 0 {
				op.pollsLeft--
			}
			if op.behavior.RetryAfter > 0 {
				res.header.Set("Retry-After", retryAfterSeconds(op.behavior.RetryAfter))
			}
			res.json(http.StatusOK, osbwire.LastOperationResponse{
				State: osbwire.StateInProgress, Description: string(op.op) + " in progress",
			})
			return
		}
	}
	res.json(http.StatusOK, osbwire.LastOperationResponse{State: op.state, Description: op.description})
}

// checkOperationParam enforces the operation query parameter of a poll.
func checkOperationParam(rq *request, op *operation, res *result) bool {
	vs, given := rq.query["operation"]
	switch {
	case given && (len(vs) != 1 || vs[0] == ""):
		res.fail(http.StatusBadRequest, "", "operation query parameter must be a single non-empty string")
	case op.id != "" && !given:
		res.fail(http.StatusBadRequest, "", "missing operation query parameter: the broker issued operation %q and requires it back", op.id)
	case op.id == "" && given:
		res.fail(http.StatusBadRequest, "", "operation %q was never issued: the last %s answered without an operation, so none may be sent", vs[0], op.op)
	case given && vs[0] != op.id:
		res.fail(http.StatusBadRequest, "", "operation %q does not match the last operation %q", vs[0], op.id)
	default:
		return true
	}
	return false
}

// syncFailure answers a synchronous Behavior.Fail.
func syncFailure(kind Op, bh Behavior, res *result) {
	desc := bh.FailDescription
	if desc == "" {
		desc = string(kind) + " failed (osbtest Behavior.Fail)"
	}
	res.fail(http.StatusInternalServerError, "", "%s", desc)
}

func asyncRequired(kind Op, planID string, res *result) {
	res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeAsyncRequired,
		"%s for plan %s is asynchronous only: the request must include accepts_incomplete=true", kind, planID)
}

func maintVersion(m *osbwire.MaintenanceInfo) string {
	if m == nil {
		return ""
	}
	return m.Version
}

// checkMaintenance refuses a maintenance_info that does not match the plan's.
func checkMaintenance(req *osbwire.MaintenanceInfo, plan *osbwire.Plan, res *result) bool {
	if req == nil {
		return true
	}
	if plan.MaintenanceInfo == nil {
		res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeMaintenanceInfoConflict,
			"maintenance_info.version %q was sent but plan %s declares no maintenance_info", req.Version, plan.ID)
		return false
	}
	if req.Version != plan.MaintenanceInfo.Version {
		res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeMaintenanceInfoConflict,
			"maintenance_info.version %q does not match plan %s's version %q", req.Version, plan.ID, plan.MaintenanceInfo.Version)
		return false
	}
	return true
}

// lookupPlan resolves service and plan IDs against the catalog (400 if
// unknown or mismatched).
func (b *Broker) lookupPlan(serviceID, planID string, res *result) (*osbwire.Service, *osbwire.Plan, bool) {
	svc, plan := b.findPlan(serviceID, planID)
	switch {
	case svc == nil:
		res.fail(http.StatusBadRequest, "", "service_id %q is not in the catalog", serviceID)
	case plan == nil:
		if owner := b.planOwner(planID); owner != "" {
			res.fail(http.StatusBadRequest, "", "plan_id %q belongs to service %q, not to service_id %q", planID, owner, serviceID)
		} else {
			res.fail(http.StatusBadRequest, "", "plan_id %q is not a plan of service %q", planID, serviceID)
		}
	default:
		return svc, plan, true
	}
	return nil, nil, false
}

func (b *Broker) planOwner(planID string) string {
	for _, s := range b.catalog.Services {
		for _, p := range s.Plans {
			if p.ID == planID {
				return s.ID
			}
		}
	}
	return ""
}

// objectDiff names the keys in which two objects differ, without their
// values: parameters may hold secrets (parametersFrom), and a broker's error
// description travels into platform logs and records.
func objectDiff(name string, have, got map[string]any) []string {
	var keys []string
	for k, v := range have {
		if g, ok := got[k]; !ok || canonical(g) != canonical(v) {
			keys = append(keys, k)
		}
	}
	for k := range got {
		if _, ok := have[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return []string{name + " (keys differ: " + joinIDs(keys) + ")"}
}

// contextMap renders a context as a generic object for objectDiff.
func contextMap(c *osbwire.Context) map[string]any {
	if c == nil {
		return nil
	}
	m := map[string]any{}
	_ = json.Unmarshal([]byte(canonical(c)), &m)
	return m
}

// provisionDiff lists the attributes in which req differs from in.
func provisionDiff(in *instance, req *osbwire.ProvisionRequest) []string {
	var d []string
	add := func(name, have, got string) {
		if have != got {
			d = append(d, name+" (have "+have+", got "+got+")")
		}
	}
	add("service_id", in.serviceID, req.ServiceID)
	add("plan_id", in.planID, req.PlanID)
	add("organization_guid", in.org, req.OrganizationGUID)
	add("space_guid", in.space, req.SpaceGUID)
	d = append(d, objectDiff("parameters", in.params, req.Parameters)...)
	d = append(d, objectDiff("context", contextMap(in.context), contextMap(req.Context))...)
	add("maintenance_info.version", maintVersion(in.maint), maintVersion(req.MaintenanceInfo))
	return d
}

func (b *Broker) provision(rq *request, res *result) {
	ai, ok := acceptsIncomplete(rq, res)
	if !ok {
		return
	}
	var req osbwire.ProvisionRequest
	if !decodeBody(rq, &req, res) {
		return
	}
	if missingFields(res, "field(s) in provision body",
		[2]string{"service_id", req.ServiceID}, [2]string{"plan_id", req.PlanID},
		[2]string{"organization_guid", req.OrganizationGUID}, [2]string{"space_guid", req.SpaceGUID}) {
		return
	}
	if !checkContext(rq, req.Context, res) {
		return
	}
	_, plan, ok := b.lookupPlan(req.ServiceID, req.PlanID, res)
	if !ok || !checkMaintenance(req.MaintenanceInfo, plan, res) {
		return
	}
	id := rq.rt.instanceID
	req.Parameters = normalizeMap(req.Parameters)
	if !b.checkParams("service_instance create", plan.ID, instanceSchema(plan, false), req.Parameters, res) {
		return
	}
	if in := b.instances[id]; in != nil {
		b.reprovision(in, &req, ai, res)
		return
	}
	bh := b.behaviorFor(req.PlanID, OpProvision)
	if bh.Async && !ai {
		asyncRequired(OpProvision, req.PlanID, res)
		return
	}
	if !bh.Async && bh.Fail {
		syncFailure(OpProvision, bh, res)
		return
	}
	in := &instance{
		id: id, serviceID: req.ServiceID, planID: req.PlanID,
		org: req.OrganizationGUID, space: req.SpaceGUID,
		params: req.Parameters, context: cloneContext(req.Context), maint: cloneMaint(req.MaintenanceInfo),
		dashboard: expand(bh.DashboardURL, id, ""), state: StateReady,
	}
	b.instances[id] = in
	delete(b.aborted, "i/"+id)
	if !bh.Async {
		res.json(http.StatusCreated, osbwire.ProvisionResponse{DashboardURL: in.dashboard})
		return
	}
	op := b.startOp(OpProvision, bh)
	op.inst, op.prePlanID = in, in.planID
	in.state, in.lastOp = StateCreating, op
	res.json(http.StatusAccepted, osbwire.ProvisionResponse{DashboardURL: in.dashboard, Operation: op.id})
}

// reprovision answers a PUT for an instance that already exists.
func (b *Broker) reprovision(in *instance, req *osbwire.ProvisionRequest, ai bool, res *result) {
	op := in.lastOp
	if op != nil && op.inProgress() && op.op != OpProvision {
		res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "%s", b.busy(in))
		return
	}
	if in.state == StateFailed {
		res.fail(http.StatusConflict, "", "instance %s exists but its last %s failed; deprovision it first", in.id, lastOpKind(op))
		return
	}
	if d := provisionDiff(in, req); len(d) > 0 {
		res.fail(http.StatusConflict, "", "instance %s already exists with different attributes: %s", in.id, joinList(d))
		return
	}
	switch in.state {
	case StateCreating:
		if !ai {
			asyncRequired(OpProvision, in.planID, res)
			return
		}
		res.json(http.StatusAccepted, osbwire.ProvisionResponse{DashboardURL: in.dashboard, Operation: op.id})
	default:
		res.json(http.StatusOK, osbwire.ProvisionResponse{DashboardURL: in.dashboard})
	}
}

func joinList(items []string) string {
	out := ""
	for i, s := range items {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}

func (b *Broker) update(rq *request, res *result) {
	ai, ok := acceptsIncomplete(rq, res)
	if !ok {
		return
	}
	var req osbwire.UpdateInstanceRequest
	if !decodeBody(rq, &req, res) {
		return
	}
	if missingFields(res, "field(s) in update body", [2]string{"service_id", req.ServiceID}) {
		return
	}
	if !checkContext(rq, req.Context, res) {
		return
	}
	id := rq.rt.instanceID
	in := b.instances[id]
	if in == nil {
		res.fail(http.StatusNotFound, "", "instance %s does not exist", id)
		return
	}
	if req.ServiceID != in.serviceID {
		res.fail(http.StatusBadRequest, "", "service_id %q does not match instance %s's service %q", req.ServiceID, id, in.serviceID)
		return
	}
	req.Parameters = normalizeMap(req.Parameters)
	key := canonical(map[string]any{"plan_id": req.PlanID, "parameters": req.Parameters, "context": req.Context, "maintenance_info": req.MaintenanceInfo})
	if op := in.lastOp; op != nil && op.inProgress() && op.op == OpUpdate && op.key == key {
		// A re-sent identical PATCH while the update runs: 202, same operation.
		if !ai {
			asyncRequired(OpUpdate, op.newPlanOr(in.planID), res)
			return
		}
		res.json(http.StatusAccepted, osbwire.UpdateInstanceResponse{DashboardURL: op.newDashboard, Operation: op.id})
		return
	}
	if why := b.busy(in); why != "" {
		res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "%s", why)
		return
	}
	if in.state == StateFailed {
		res.fail(http.StatusUnprocessableEntity, "", "instance %s cannot be updated: its last %s failed", id, lastOpKind(in.lastOp))
		return
	}
	if pv := req.PreviousValues; pv != nil {
		if pv.PlanID != "" && pv.PlanID != in.planID {
			res.fail(http.StatusBadRequest, "", "previous_values.plan_id %q is not instance %s's current plan %q", pv.PlanID, id, in.planID)
			return
		}
		if pv.ServiceID != "" && pv.ServiceID != in.serviceID {
			res.fail(http.StatusBadRequest, "", "previous_values.service_id %q is not instance %s's service %q", pv.ServiceID, id, in.serviceID)
			return
		}
	}
	target := in.planID
	if req.PlanID != "" {
		svc, plan, ok := b.lookupPlan(in.serviceID, req.PlanID, res)
		if !ok {
			return
		}
		if req.PlanID != in.planID {
			_, cur := b.findPlan(in.serviceID, in.planID)
			if cur == nil {
				res.fail(http.StatusBadRequest, "", "instance %s's plan %q is no longer in the catalog; its plan cannot change", id, in.planID)
				return
			}
			if !svc.IsPlanUpdateable(*cur) {
				res.fail(http.StatusBadRequest, "", "plan change from %s to %s refused: plan %s is not plan_updateable", in.planID, plan.ID, in.planID)
				return
			}
		}
		target = req.PlanID
	}
	_, targetPlan := b.findPlan(in.serviceID, target)
	if req.MaintenanceInfo != nil {
		if targetPlan == nil {
			res.fail(http.StatusBadRequest, "", "plan %q of instance %s is no longer in the catalog", target, id)
			return
		}
		if !checkMaintenance(req.MaintenanceInfo, targetPlan, res) {
			return
		}
	}
	if req.Parameters != nil && !b.checkParams("service_instance update", target, instanceSchema(targetPlan, true), req.Parameters, res) {
		return
	}
	bh := b.behaviorFor(target, OpUpdate)
	if bh.Async && !ai {
		asyncRequired(OpUpdate, target, res)
		return
	}
	if !bh.Async && bh.Fail {
		syncFailure(OpUpdate, bh, res)
		return
	}
	op := &operation{op: OpUpdate, inst: in, prePlanID: in.planID, key: key,
		newContext: cloneContext(req.Context), newMaint: cloneMaint(req.MaintenanceInfo),
		newDashboard: expand(bh.DashboardURL, id, "")}
	if target != in.planID {
		op.newPlanID = target
	}
	if req.Parameters != nil {
		op.newParams = mergeParams(in.params, req.Parameters)
	}
	if !bh.Async {
		in.applyUpdate(op)
		res.json(http.StatusOK, osbwire.UpdateInstanceResponse{DashboardURL: op.newDashboard})
		return
	}
	async := b.startOp(OpUpdate, bh)
	async.inst, async.prePlanID, async.key = in, in.planID, key
	async.newPlanID, async.newParams, async.newContext, async.newMaint, async.newDashboard =
		op.newPlanID, op.newParams, op.newContext, op.newMaint, op.newDashboard
	in.state, in.lastOp = StateUpdating, async
	res.json(http.StatusAccepted, osbwire.UpdateInstanceResponse{DashboardURL: async.newDashboard, Operation: async.id})
}

func (op *operation) newPlanOr(plan string) string {
	if op.newPlanID != "" {
		return op.newPlanID
	}
	return plan
}

// mergeParams merges update parameters into the current ones (shallow: a key
// in upd replaces the current value; a null value removes the key).
func mergeParams(cur, upd map[string]any) map[string]any {
	out := copyMap(cur)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range upd {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = copyValue(v)
	}
	return out
}

func (b *Broker) deprovision(rq *request, res *result) {
	ai, ok := acceptsIncomplete(rq, res)
	if !ok {
		return
	}
	sid, pid := rq.query.Get("service_id"), rq.query.Get("plan_id")
	if missingFields(res, "query parameter(s) on deprovision", [2]string{"service_id", sid}, [2]string{"plan_id", pid}) {
		return
	}
	id := rq.rt.instanceID
	in := b.instances[id]
	if in == nil {
		res.description = "instance " + id + " does not exist"
		res.json(http.StatusGone, struct{}{})
		return
	}
	if sid != in.serviceID || pid != in.planID {
		res.fail(http.StatusBadRequest, "", "service_id/plan_id %s/%s do not match instance %s (%s/%s)", sid, pid, id, in.serviceID, in.planID)
		return
	}
	var bound []string
	for bid, bn := range b.bindings {
		if bn.instanceID == id {
			bound = append(bound, bid)
		}
	}
	if len(bound) > 0 {
		res.fail(http.StatusUnprocessableEntity, "", "instance %s still has %d binding(s) (%s): unbind them before deprovisioning", id, len(bound), joinIDs(bound))
		return
	}
	var abort *operation
	if op := in.lastOp; op != nil && op.inProgress() {
		switch op.op {
		case OpDeprovision:
			if !ai {
				asyncRequired(OpDeprovision, in.planID, res)
				return
			}
			res.json(http.StatusAccepted, osbwire.DeprovisionResponse{Operation: op.id})
			return
		case OpProvision:
			abort = op // the spec: a delete during provisioning halts it
		default:
			res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "%s", b.busy(in))
			return
		}
	}
	bh := b.behaviorFor(in.planID, OpDeprovision)
	if bh.Async && !ai {
		asyncRequired(OpDeprovision, in.planID, res)
		return
	}
	if !bh.Async && bh.Fail {
		syncFailure(OpDeprovision, bh, res)
		return
	}
	if abort != nil {
		abort.state = osbwire.StateFailed
		abort.description = "provision aborted by a deprovision request"
	}
	if !bh.Async {
		delete(b.instances, id)
		if abort != nil && abort.id != "" {
			b.aborted["i/"+id] = abort.id
		}
		res.json(http.StatusOK, struct{}{})
		return
	}
	op := b.startOp(OpDeprovision, bh)
	op.inst, op.prePlanID = in, in.planID
	in.state, in.lastOp = StateDeleting, op
	res.json(http.StatusAccepted, osbwire.DeprovisionResponse{Operation: op.id})
}

// checkIDQuery checks optional service_id/plan_id query parameters against
// the expected values; wantPlans lists the acceptable plan IDs.
func checkIDQuery(rq *request, what, serviceID string, wantPlans []string, res *result) bool {
	if sid, ok := rq.query["service_id"]; ok && (len(sid) != 1 || sid[0] != serviceID) {
		res.fail(http.StatusBadRequest, "", "service_id %q does not match %s's service %q", rq.query.Get("service_id"), what, serviceID)
		return false
	}
	if pid, ok := rq.query["plan_id"]; ok {
		for _, w := range wantPlans {
			if len(pid) == 1 && pid[0] == w {
				return true
			}
		}
		res.fail(http.StatusBadRequest, "", "plan_id %q does not match %s's plan %q", rq.query.Get("plan_id"), what, wantPlans[0])
		return false
	}
	return true
}

func (b *Broker) getInstance(rq *request, res *result) {
	id := rq.rt.instanceID
	in := b.instances[id]
	if in == nil {
		if sid := rq.query.Get("service_id"); sid != "" {
			if svc, _ := b.findPlan(sid, ""); svc != nil && !svc.InstancesRetrievable {
				res.fail(http.StatusBadRequest, "", "service %s does not declare instances_retrievable: fetching an instance is not supported", sid)
				return
			}
		}
		res.fail(http.StatusNotFound, "", "instance %s does not exist", id)
		return
	}
	if svc, _ := b.findPlan(in.serviceID, ""); svc == nil || !svc.InstancesRetrievable {
		res.fail(http.StatusBadRequest, "", "service %s does not declare instances_retrievable: fetching an instance is not supported", in.serviceID)
		return
	}
	if !checkIDQuery(rq, "instance "+id, in.serviceID, []string{in.planID}, res) {
		return
	}
	switch {
	case in.state == StateCreating:
		res.fail(http.StatusNotFound, "", "instance %s is still being provisioned", id)
		return
	case in.state == StateFailed && in.lastOp != nil && in.lastOp.op == OpProvision:
		res.fail(http.StatusNotFound, "", "instance %s failed to provision", id)
		return
	case in.state == StateUpdating:
		res.fail(http.StatusUnprocessableEntity, osbwire.ErrorCodeConcurrencyError, "instance %s is being updated and cannot be fetched now", id)
		return
	}
	res.json(http.StatusOK, osbwire.GetInstanceResponse{
		ServiceID: in.serviceID, PlanID: in.planID, DashboardURL: in.dashboard,
		Parameters: in.params, MaintenanceInfo: in.maint,
	})
}

func (b *Broker) lastOperation(rq *request, res *result) {
	id := rq.rt.instanceID
	in := b.instances[id]
	if in == nil {
		if opID := b.aborted["i/"+id]; opID != "" && rq.query.Get("operation") == opID {
			res.json(http.StatusOK, osbwire.LastOperationResponse{State: osbwire.StateFailed, Description: "provision aborted by a deprovision request"})
			return
		}
		res.description = "instance " + id + " does not exist (gone)"
		res.json(http.StatusGone, struct{}{})
		return
	}
	op := in.lastOp
	if op == nil {
		res.fail(http.StatusBadRequest, "", "no asynchronous operation was started for instance %s", id)
		return
	}
	if !checkOperationParam(rq, op, res) {
		return
	}
	if pid, ok := rq.query["plan_id"]; ok && op.op == OpUpdate && (len(pid) != 1 || pid[0] != op.prePlanID) {
		res.fail(http.StatusBadRequest, "", "plan_id %q on a poll of update %s must be the plan before the update, %q", rq.query.Get("plan_id"), opName(op), op.prePlanID)
		return
	}
	// Other operations may name the plan they started with or, if a later
	// synchronous update changed it, the current one.
	if !checkIDQuery(rq, "instance "+id, in.serviceID, []string{op.prePlanID, in.planID}, res) {
		return
	}
	b.pollAnswer(op, res)
}
