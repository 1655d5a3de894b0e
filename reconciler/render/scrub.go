package render

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/osbgit/osbgit/reconciler/plan"
)

// minScrubLen is the shortest secret value scrubbed from output: shorter
// strings would garble ordinary text and are not worth hiding by search.
const minScrubLen = 4

// scrubber replaces secret-derived values in strings. The plan never puts
// them in the strings it shows; this is a second line of defence against a
// message that quotes one by mistake.
type scrubber struct {
	r *strings.Replacer
}

// newScrubber collects the string leaves of every step's secret-derived
// parameters (Step.SecretParameterKeys of Step.Parameters).
func newScrubber(p *plan.Plan) scrubber {
	if p == nil {
		return scrubber{}
	}
	seen := map[string]bool{}
	var vals []string
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case string:
			if len(t) >= minScrubLen && !seen[t] {
				seen[t] = true
				vals = append(vals, t)
			}
		case json.Number:
			walk(t.String())
		case map[string]any:
			for _, sub := range t {
				walk(sub)
			}
		case []any:
			for _, sub := range t {
				walk(sub)
			}
		}
	}
	for _, s := range p.Steps {
		for _, k := range s.SecretParameterKeys {
			if v, ok := s.Parameters[k]; ok {
				walk(v)
			}
		}
	}
	if len(vals) == 0 {
		return scrubber{}
	}
	// Longest first, so a value containing another is replaced whole.
	sort.Slice(vals, func(i, j int) bool {
		if len(vals[i]) != len(vals[j]) {
			return len(vals[i]) > len(vals[j])
		}
		return vals[i] < vals[j]
	})
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, plan.SensitiveValue)
	}
	return scrubber{r: strings.NewReplacer(pairs...)}
}

// s returns str with secret values replaced.
func (sc scrubber) s(str string) string {
	if sc.r == nil || str == "" {
		return str
	}
	return sc.r.Replace(str)
}
