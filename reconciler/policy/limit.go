package policy

import (
	"fmt"
	"slices"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
)

// Limit holds back the create and delete steps of pl past the policy's
// per-pass caps: walking the steps in plan order (brokers, instances,
// bindings, then unbinds before deprovisions; by namespace and name within
// each group), the first MaxCreatesPerPass creates and the first
// MaxDeletesPerPass deletes run, and every later one is blocked with an
// error saying so (Action none, no call; the error goes on its record).
// Every create and delete call counts, retries included. A step that
// depends on a held-back step (a bind on its instance's provision, a
// deprovision on its unbinds) is held back too and does not use the cap.
// A later pass starts the next ones, so the caps bound the rate, not the
// total: Limit returns how many steps it held back, which make that pass
// due. A refused plan (maxDeletions) is left as it is: nothing runs.
// A nil policy, or one without caps, changes nothing.
func Limit(pl *plan.Plan, p *Policy) (held int) {
	if p == nil || pl == nil || pl.Refused != "" || (p.MaxCreatesPerPass == nil && p.MaxDeletesPerPass == nil) {
		return 0
	}
	type budget struct {
		field string
		max   *int
		used  int
	}
	creates := &budget{field: "maxCreatesPerPass", max: p.MaxCreatesPerPass}
	deletes := &budget{field: "maxDeletesPerPass", max: p.MaxDeletesPerPass}
	heldBack := map[manifest.Ref]bool{}
	for i := range pl.Steps {
		s := &pl.Steps[i]
		var b *budget
		switch s.Action {
		case plan.Create:
			b = creates
		case plan.Delete:
			b = deletes
		default:
			continue
		}
		if b.max == nil {
			continue
		}
		var why string
		if dep := slices.IndexFunc(s.DependsOn, func(r manifest.Ref) bool { return heldBack[r] }); dep >= 0 {
			why = fmt.Sprintf("held back: %s waits for %s, which the tenancy policy's %s (%s) held back in this pass", s.Action, s.DependsOn[dep], b.field, p.where(b.field))
		} else if b.used >= *b.max {
			why = fmt.Sprintf("held back: the tenancy policy's %s (%s) lets one pass start %d %s(s), and this one comes after them in plan order", b.field, p.where(b.field), *b.max, s.Action)
		} else {
			b.used++
			continue
		}
		heldBack[s.Ref] = true
		s.Warnings = append(s.Warnings, "planned: "+s.Action.String()+" ("+s.Reason+")")
		s.Action = plan.None
		s.Reason = why
		s.Error = why
		s.WriteAhead = false
		s.DependsOn = nil
	}
	return len(heldBack)
}
