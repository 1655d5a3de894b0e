package render

import (
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
)

// scrubber hides secret values in what the views print. It has two sets:
//   - the plan's own secret-derived parameter values (the string leaves of
//     Step.Parameters under Step.SecretParameterKeys), replaced by
//     plan.SensitiveValue in every string printed. The plan never puts
//     them in the strings it shows; this is a second line of defence
//     against a message that quotes one by mistake.
//   - the pass's set (Options.Redact: broker auth, Git credentials,
//     parametersFrom values, binding credentials), replaced by
//     redact.Placeholder in free text only — reasons, warnings, errors,
//     diagnostics, the refusal, operation keys — which may quote a
//     broker's answer or an error. Parameter values a person wrote
//     (changes) are not scrubbed of it: a parametersFrom value that
//     happens to equal a plan name must not garble the plan change.
//
// It also knows the IDs the plan generated (Step.NewID): a fresh one on
// every run, so the views show NewIDLabel instead (see id), and, as a
// second line of defence, any string quoting one reads NewIDPlaceholder.
// That keeps every view byte-identical across runs on the same inputs.
type scrubber struct {
	params *redact.Set
	pass   *redact.Set
	newIDs *redact.Set
	fresh  map[string]bool
}

// NewIDLabel is what the text and Markdown views show for an ID the plan
// generated (Step.NewID): a sync generates its own and records it before
// the first call, so the plan's value is never the one used.
const NewIDLabel = "new ID, recorded before the first call"

// NewIDPlaceholder replaces a generated ID quoted in free text.
const NewIDPlaceholder = "(new ID)"

// newScrubber collects the plan's secret-derived parameter values.
func newScrubber(p *plan.Plan, pass *redact.Set) scrubber {
	sc := scrubber{pass: pass}
	if p == nil {
		return sc
	}
	for _, s := range p.Steps {
		if s.NewID && s.ExternalID != "" {
			if sc.newIDs == nil {
				sc.newIDs = &redact.Set{Placeholder: NewIDPlaceholder}
				sc.fresh = map[string]bool{}
			}
			sc.newIDs.Add(s.ExternalID)
			sc.fresh[s.ExternalID] = true
		}
		for _, k := range s.SecretParameterKeys {
			if v, ok := s.Parameters[k]; ok {
				if sc.params == nil {
					sc.params = &redact.Set{Placeholder: plan.SensitiveValue}
				}
				sc.params.AddLeaves(v)
			}
		}
	}
	return sc
}

// s returns str with the plan's secret parameter values replaced: for
// every string shown.
func (sc scrubber) s(str string) string { return sc.newIDs.Scrub(sc.params.Scrub(str)) }

// text returns free text (a reason, a message) with every secret value
// known replaced: the pass's and the plan's.
func (sc scrubber) text(str string) string { return sc.s(sc.pass.Scrub(str)) }

// isNew reports whether id is one the plan generated.
func (sc scrubber) isNew(id string) bool { return sc.fresh[id] }

// id is how the views show an instance_id or binding_id: NewIDLabel for
// one the plan generated, else the ID.
func (sc scrubber) id(id string) string {
	if sc.isNew(id) {
		return NewIDLabel
	}
	return id
}
