package exec

import (
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
)

// WriteAheadRecords returns the records to commit and push before Run, one
// per step with WriteAhead (create, or update with a new InProgress target
// or a new binding ID); nil when there is none. The caller passes the same
// map to Run, which starts those steps from these records and refuses a
// WriteAhead step whose record is missing.
//
// A create's record (also a binding update that switches to a new binding
// ID) is Pending: the ExternalID and broker, the InProgress target, for
// bindings the instance's name and ID, Provisioned true (after a crash the
// broker may hold the resource: deleting it then needs a DELETE), a
// LastOperation naming the create with the service_id/plan_id it will use,
// and Ready False/Pending. An instance update's record keeps its phase and
// gains the InProgress target and a LastOperation with the pre-update
// plan_id. Other fields are copied from Step.Record.
func WriteAheadRecords(p *plan.Plan, now time.Time) map[manifest.Ref]*manifest.StatusRecord {
	if p == nil || p.Refused != "" {
		return nil
	}
	var out map[manifest.Ref]*manifest.StatusRecord
	for i := range p.Steps {
		s := &p.Steps[i]
		if !needsWriteAhead(s) {
			continue
		}
		rec := cloneRecord(s.Record)
		if rec == nil {
			rec = manifest.NewStatusRecord(s.Ref)
		}
		applyStepFacts(rec, s, p.Revision)
		rec.InProgress = cloneProps(s.Desired)
		binding := s.Ref.Kind == manifest.KindServiceBinding
		newBinding := binding && s.Action == plan.Update && s.Record != nil && s.Record.ExternalID != s.ExternalID
		if s.Action == plan.Create || newBinding {
			t := manifest.OperationProvision
			if binding {
				t = manifest.OperationBind
			}
			rec.Phase = manifest.PhasePending
			rec.Provisioned = true
			rec.AsyncOpInProgress = false
			rec.Lost = nil // provisioned again: the Pending phase keeps the next pass due
			rec.LastOperation = &manifest.LastOperation{
				Type: t, StartTime: metaNow(now), ServiceID: s.Target.ServiceID, PlanID: s.Target.PlanID,
			}
			rec.Conditions = manifest.SetCondition(rec.Conditions, manifest.Condition{
				Type: manifest.ConditionReady, Status: manifest.ConditionFalse, Reason: ReasonPending,
				Message: "ID reserved; the " + string(t) + " is not confirmed by the broker yet",
			}, now)
		} else if !binding {
			prev := rec.PlanExternalID
			if s.Previous != nil && s.Previous.PlanID != "" {
				prev = s.Previous.PlanID
			}
			rec.LastOperation = &manifest.LastOperation{
				Type: manifest.OperationUpdate, StartTime: metaNow(now), ServiceID: s.Target.ServiceID, PlanID: prev,
			}
		}
		if out == nil {
			out = map[manifest.Ref]*manifest.StatusRecord{}
		}
		out[s.Ref] = rec
	}
	return out
}
