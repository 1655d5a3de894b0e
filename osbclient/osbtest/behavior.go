package osbtest

import (
	"strings"
	"time"
)

// Op names the kind of mutating operation a Behavior applies to.
type Op string

// The operations whose behaviour can be programmed.
const (
	OpProvision   Op = "provision"
	OpUpdate      Op = "update"
	OpDeprovision Op = "deprovision"
	OpBind        Op = "bind"
	OpUnbind      Op = "unbind"
)

// AllOps lists every Op, in lifecycle order.
var AllOps = []Op{OpProvision, OpUpdate, OpDeprovision, OpBind, OpUnbind}

// AnyPlan, passed as the plan ID to SetBehavior, sets the behaviour of plans
// that have none of their own.
const AnyPlan = ""

// Behavior programs how the broker performs one kind of operation for a
// plan. The zero Behavior is a synchronous operation that succeeds.
//
// Which plan's behaviour applies: provision — the requested plan; update —
// the plan_id in the request when present (the target plan), else the
// instance's current plan; deprovision, bind and unbind — the instance's
// current plan. Behaviours are looked up as a whole (no field merging), most
// specific first: (plan, op), (plan, all ops), (AnyPlan, op), (AnyPlan, all
// ops). The behaviour is captured when an operation starts, so changing it
// does not affect operations already in flight.
type Behavior struct {
	// Async makes the operation asynchronous: the broker answers 202 with an
	// operation, and 422 AsyncRequired when accepts_incomplete=true is
	// missing. Without Async the broker answers synchronously even when the
	// client accepts incomplete operations (as the spec allows).
	Async bool
	// Polls is how many last_operation polls answer "in progress" before the
	// terminal state; 0 means the first poll already answers the terminal
	// state, -1 means the operation never finishes (see FinishOperation).
	Polls int
	// Fail makes the operation fail: an asynchronous one ends in state
	// "failed" (a failed provision or bind leaves an orphan the platform must
	// delete; a failed update leaves the instance unchanged); a synchronous
	// one is answered 500 with FailDescription and changes nothing.
	Fail bool
	// FailDescription is the description of the failure ("" gives a default).
	FailDescription string
	// RetryAfter, when positive, is sent as a Retry-After header (whole
	// seconds, rounded up) on every "in progress" last_operation answer.
	RetryAfter time.Duration
	// OmitOperation makes a 202 answer carry no operation field; the broker
	// then requires last_operation polls to carry no operation either.
	OmitOperation bool
	// Credentials, for OpBind, replaces the default credentials
	// (DefaultCredentials). String values may contain "{instance_id}" and
	// "{binding_id}", replaced by the IDs of the request.
	Credentials map[string]any
	// DashboardURL, for OpProvision and OpUpdate, is returned as
	// dashboard_url and recorded on the instance; "{instance_id}" is
	// replaced by the instance ID.
	DashboardURL string
	// RequiresApp, for OpBind, refuses a bind without an app GUID (neither
	// app_guid nor bind_resource.app_guid) with 422 RequiresApp.
	RequiresApp bool
}

type behaviorKey struct {
	plan string
	op   Op
}

// SetBehavior sets the behaviour of planID (AnyPlan: every plan without its
// own) for the given operations, or for all operations when none is given.
// It replaces any behaviour set before for the same plan and operation.
//
//	b.SetBehavior(osbtest.PlanDBSmall, osbtest.Behavior{Async: true, Polls: 3}, osbtest.OpProvision, osbtest.OpDeprovision)
func (b *Broker) SetBehavior(planID string, bh Behavior, ops ...Op) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bh.Credentials = normalizeMap(bh.Credentials)
	if len(ops) == 0 {
		// A behaviour for all operations supersedes per-operation ones
		// set earlier for the plan, so the last call wins.
		for _, op := range AllOps {
			delete(b.behaviors, behaviorKey{planID, op})
		}
		b.behaviors[behaviorKey{planID, ""}] = bh
		return
	}
	for _, op := range ops {
		b.behaviors[behaviorKey{planID, op}] = bh
	}
}

// ClearBehaviors removes every programmed behaviour, including the defaults
// New installs for DefaultCatalog: every operation becomes synchronous and
// successful.
func (b *Broker) ClearBehaviors() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.behaviors = map[behaviorKey]Behavior{}
}

// behaviorFor looks up the behaviour of op on planID. Call with b.mu held.
func (b *Broker) behaviorFor(planID string, op Op) Behavior {
	for _, k := range []behaviorKey{{planID, op}, {planID, ""}, {AnyPlan, op}, {AnyPlan, ""}} {
		if bh, ok := b.behaviors[k]; ok {
			return bh
		}
	}
	return Behavior{}
}

// retryAfterSeconds renders d as a Retry-After value (whole seconds, rounded
// up, at least 1).
func retryAfterSeconds(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return itoa(s)
}

// expand replaces the ID placeholders in s.
func expand(s, instanceID, bindingID string) string {
	if !strings.Contains(s, "{") {
		return s
	}
	return strings.NewReplacer("{instance_id}", instanceID, "{binding_id}", bindingID).Replace(s)
}

// expandAll replaces ID placeholders in every string of a JSON-like value.
func expandAll(v any, instanceID, bindingID string) any {
	switch t := v.(type) {
	case string:
		return expand(t, instanceID, bindingID)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = expandAll(e, instanceID, bindingID)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = expandAll(e, instanceID, bindingID)
		}
		return out
	}
	return v
}
