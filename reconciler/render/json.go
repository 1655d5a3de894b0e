package render

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
)

// FormatVersion is the format_version of the JSON view.
const FormatVersion = "1"

// Document is the JSON view of a plan (see the package doc for the schema).
// It is a separate type from plan.Plan so that the plan can evolve without
// changing what scripts parse.
type Document struct {
	FormatVersion string       `json:"format_version"`
	Revision      string       `json:"revision"`
	HasChanges    bool         `json:"has_changes"`
	Refused       string       `json:"refused"`
	Summary       Summary      `json:"summary"`
	Resources     []Resource   `json:"resources"`
	Diagnostics   []Diagnostic `json:"diagnostics"`
}

// Summary counts the plan's resources by outcome.
type Summary struct {
	Create int `json:"create"`
	Update int `json:"update"`
	// Delete counts deletes and orphan mitigations.
	Delete   int `json:"delete"`
	Poll     int `json:"poll"`
	Adopt    int `json:"adopt"`
	Forget   int `json:"forget"`
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
}

// Ref identifies a resource; Namespace is "" for cluster-scoped kinds.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Resource is one step of the plan.
type Resource struct {
	Ref                Ref            `json:"ref"`
	Action             string         `json:"action"`
	Reason             string         `json:"reason"`
	ExternalID         string         `json:"external_id"`
	NewID              bool           `json:"new_id"`
	InstanceExternalID string         `json:"instance_external_id"`
	PredecessorID      string         `json:"predecessor_binding_id"`
	Broker             *Ref           `json:"broker"`
	Class              string         `json:"class"`
	Plan               string         `json:"plan"`
	PreviousPlan       string         `json:"previous_plan"`
	WriteAhead         bool           `json:"write_ahead"`
	Changes            []Change       `json:"changes"`
	DependsOn          []Ref          `json:"depends_on"`
	Operation          *Operation     `json:"operation"`
	PollDeadline       string         `json:"poll_deadline"`
	Secret             *SecretRef     `json:"secret"`
	Warnings           []string       `json:"warnings"`
	Error              string         `json:"error"`
	Source             *SourceLocator `json:"source"`
}

// Change is one displayed field change.
type Change struct {
	Path      string `json:"path"`
	Op        string `json:"op"`
	Old       string `json:"old"`
	New       string `json:"new"`
	Sensitive bool   `json:"sensitive"`
}

// Operation is the async operation a poll follows.
type Operation struct {
	Type             string `json:"type"`
	Operation        string `json:"operation"`
	PlanID           string `json:"plan_id"`
	StartTime        string `json:"start_time"`
	OrphanMitigation bool   `json:"orphan_mitigation"`
}

// SecretRef names the Secret receiving a binding's credentials.
type SecretRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// SourceLocator is where a manifest is.
type SourceLocator struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

// Diagnostic is a load or validation problem.
type Diagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Field    string `json:"field"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Ref      *Ref   `json:"ref"`
}

func viewRef(r manifest.Ref) Ref {
	return Ref{Kind: string(r.Kind), Namespace: r.Namespace, Name: r.Name}
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// JSONOptions tune the JSON view.
type JSONOptions struct {
	// Redact, when set, is scrubbed from the view's free text (see
	// TextOptions.Redact).
	Redact *redact.Set
}

// NewDocument builds the JSON view of p, scrubbed of secret values. At most
// one JSONOptions is used (several are a programming error; the first
// wins).
func NewDocument(p *plan.Plan, opts ...JSONOptions) Document {
	var o JSONOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	sc := newScrubber(p, o.Redact)
	doc := Document{FormatVersion: FormatVersion, Resources: []Resource{}, Diagnostics: []Diagnostic{}}
	if p == nil {
		return doc
	}
	doc.Revision = p.Revision
	doc.HasChanges = p.HasChanges()
	doc.Refused = sc.text(p.Refused)
	doc.Summary = summarize(p)
	for i := range p.Steps {
		s := &p.Steps[i]
		r := Resource{
			Ref:                viewRef(s.Ref),
			Action:             string(s.Action),
			Reason:             sc.text(s.Reason),
			ExternalID:         s.ExternalID,
			NewID:              s.NewID,
			InstanceExternalID: s.InstanceExternalID,
			PredecessorID:      s.PredecessorBindingID,
			Class:              s.Target.ClassExternalName,
			Plan:               targetPlan(s.Target),
			WriteAhead:         s.WriteAhead,
			Changes:            []Change{},
			DependsOn:          []Ref{},
			PollDeadline:       timeString(s.PollDeadline),
			Warnings:           []string{},
			Error:              sc.text(s.Error),
		}
		if sc.isNew(r.ExternalID) {
			r.ExternalID = ""
		}
		if sc.isNew(r.InstanceExternalID) {
			r.InstanceExternalID = ""
		}
		if s.Target.Broker.Kind != "" && s.Target.Broker != s.Ref {
			b := viewRef(s.Target.Broker)
			r.Broker = &b
		}
		if s.Previous != nil {
			r.PreviousPlan = targetPlan(*s.Previous)
		}
		for _, c := range s.Changes {
			r.Changes = append(r.Changes, Change{Path: c.Path, Op: string(c.Op), Old: sc.s(c.Old), New: sc.s(c.New), Sensitive: c.Sensitive})
		}
		for _, d := range s.DependsOn {
			r.DependsOn = append(r.DependsOn, viewRef(d))
		}
		if op := s.Operation; op != nil {
			r.Operation = &Operation{Type: string(op.Type), Operation: sc.text(op.Operation), PlanID: op.PlanID,
				StartTime: timeString(op.StartTime.Time), OrphanMitigation: op.OrphanMitigation}
		}
		if s.SecretName != "" {
			r.Secret = &SecretRef{Namespace: s.SecretNamespace, Name: s.SecretName}
		}
		for _, w := range s.Warnings {
			r.Warnings = append(r.Warnings, sc.text(w))
		}
		if s.Source != nil {
			r.Source = &SourceLocator{File: s.Source.File, Line: s.Source.Line}
		}
		doc.Resources = append(doc.Resources, r)
	}
	for _, d := range p.Diagnostics {
		v := Diagnostic{File: d.File, Line: d.Line, Field: d.Field, Severity: string(d.Severity), Message: sc.text(d.Message)}
		if d.Ref.Kind != "" {
			r := viewRef(d.Ref)
			v.Ref = &r
		}
		doc.Diagnostics = append(doc.Diagnostics, v)
	}
	return doc
}

// targetPlan is a target's plan name, else its id.
func targetPlan(t plan.Target) string {
	if t.PlanExternalName != "" {
		return t.PlanExternalName
	}
	return t.PlanID
}

// summarize counts a plan's steps.
func summarize(p *plan.Plan) Summary {
	c := p.Counts()
	s := Summary{Create: c.Create, Update: c.Update, Delete: c.Delete, Poll: c.Poll, Errors: c.Error}
	for _, st := range p.Steps {
		switch st.Action {
		case plan.Adopt:
			s.Adopt++
		case plan.Forget:
			s.Forget++
		}
		if len(st.Warnings) > 0 {
			s.Warnings++
		}
	}
	return s
}

// JSON writes the JSON view of p (schema in the package doc) to w; opts
// as for NewDocument.
func JSON(w io.Writer, p *plan.Plan, opts ...JSONOptions) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(NewDocument(p, opts...)); err != nil {
		return fmt.Errorf("render plan as JSON: %w", err)
	}
	return nil
}
