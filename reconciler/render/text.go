package render

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
)

// TextOptions tune the human view.
type TextOptions struct {
	// Color adds ANSI colors. Callers set it only when writing to a
	// terminal (and NO_COLOR is unset).
	Color bool
	// ShowUnchanged also lists resources that are in sync.
	ShowUnchanged bool
	// Redact, when set, holds the secret values the pass knows (the
	// Reconciler's set): they are scrubbed from the view's free text —
	// reasons, warnings, errors, diagnostics, the refusal, operation
	// keys — which may quote a broker's answer.
	Redact *redact.Set
}

// ANSI color codes.
const (
	ansiReset   = "\x1b[0m"
	ansiBold    = "\x1b[1m"
	ansiRed     = "\x1b[31m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiBlue    = "\x1b[34m"
	ansiMagenta = "\x1b[35m"
	ansiCyan    = "\x1b[36m"
	ansiDim     = "\x1b[2m"
)

// Symbol returns the text view's marker and label of a step: "+ create",
// "~ update", "- delete", "<= poll", "! orphan-mitigate", "= adopt",
// "# forget", "x error" (a blocked step) or ". none".
func Symbol(s *plan.Step) string {
	if s.Error != "" && s.Action == plan.None {
		return "x error"
	}
	switch s.Action {
	case plan.Create:
		return "+ create"
	case plan.Update:
		return "~ update"
	case plan.Delete:
		return "- delete"
	case plan.Poll:
		return "<= poll"
	case plan.OrphanMitigate:
		return "! orphan-mitigate"
	case plan.Adopt:
		return "= adopt"
	case plan.Forget:
		return "# forget"
	}
	return ". none"
}

func symbolColor(s *plan.Step) string {
	if s.Error != "" && s.Action == plan.None {
		return ansiRed + ansiBold
	}
	switch s.Action {
	case plan.Create:
		return ansiGreen
	case plan.Update:
		return ansiYellow
	case plan.Delete:
		return ansiRed
	case plan.Poll:
		return ansiCyan
	case plan.OrphanMitigate:
		return ansiMagenta
	case plan.Adopt:
		return ansiBlue
	}
	return ansiDim
}

func changeSymbol(op plan.ChangeOp) string {
	switch op {
	case plan.ChangeAdd:
		return "+"
	case plan.ChangeRemove:
		return "-"
	}
	return "~"
}

// shown reports whether the text view lists a step.
func shown(s *plan.Step, all bool) bool {
	return all || s.Action != plan.None || s.Error != "" || len(s.Warnings) > 0 || s.Reason != "in sync"
}

// textWriter accumulates output and remembers the first write error.
type textWriter struct {
	w     *bufio.Writer
	color bool
	sc    scrubber
	// body is the indent of a step's lines under its head (6 in the text
	// view; 0 in the Markdown view's details).
	body int
}

func (t *textWriter) line(indent int, s string) {
	t.w.WriteString(strings.Repeat(" ", indent))
	t.w.WriteString(t.sc.s(s))
	t.w.WriteByte('\n')
}

func (t *textWriter) paint(code, s string) string {
	if !t.color || code == "" {
		return s
	}
	return code + s + ansiReset
}

// Text writes the human view of p to w (see the package doc for the shape).
func Text(w io.Writer, p *plan.Plan, opts TextOptions) error {
	t := &textWriter{w: bufio.NewWriter(w), color: opts.Color, sc: newScrubber(p, opts.Redact), body: 6}
	if p == nil {
		p = &plan.Plan{}
	}
	if p.Revision != "" {
		t.line(0, "osbgit plan for revision "+p.Revision)
	} else {
		t.line(0, "osbgit plan for the working tree")
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		if !shown(s, opts.ShowUnchanged) {
			continue
		}
		t.line(0, "")
		t.step(s)
	}
	if len(p.Diagnostics) > 0 {
		t.line(0, "")
		t.line(0, "Diagnostics:")
		for _, d := range p.Diagnostics {
			msg := t.sc.text(d.String())
			if d.Severity == manifest.SeverityError {
				msg = t.paint(ansiRed, "error: ") + msg
			}
			t.line(2, msg)
		}
	}
	t.line(0, "")
	if p.Refused != "" {
		t.line(0, t.paint(ansiRed+ansiBold, "Refused: ")+t.sc.text(p.Refused)+" (nothing runs)")
	}
	for _, l := range closingLines(p) {
		t.line(0, l)
	}
	if err := t.w.Flush(); err != nil {
		return fmt.Errorf("render plan: %w", err)
	}
	return nil
}

// closingLines are the counts that end the text and Markdown views: "No
// changes. Brokers match the manifests.", or "Plan: N to create, N to
// update, N to delete." followed by the polls, adopts, forgets and errors
// when there are any.
func closingLines(p *plan.Plan) []string {
	c := p.Counts()
	sum := summarize(p)
	if !p.HasChanges() && c.Error == 0 && p.Refused == "" {
		return []string{"No changes. Brokers match the manifests."}
	}
	out := []string{fmt.Sprintf("Plan: %d to create, %d to update, %d to delete.", c.Create, c.Update, c.Delete)}
	var also []string
	if sum.Poll > 0 {
		also = append(also, fmt.Sprintf("%d to poll", sum.Poll))
	}
	if sum.Adopt > 0 {
		also = append(also, fmt.Sprintf("%d to adopt", sum.Adopt))
	}
	if sum.Forget > 0 {
		also = append(also, fmt.Sprintf("%d to forget", sum.Forget))
	}
	if len(also) > 0 {
		out = append(out, "Also: "+strings.Join(also, ", ")+".")
	}
	switch {
	case c.Error == 1:
		out = append(out, "1 resource has errors.")
	case c.Error > 1:
		out = append(out, fmt.Sprintf("%d resources have errors.", c.Error))
	}
	return out
}

// step writes one resource block: its head, then its body.
func (t *textWriter) step(s *plan.Step) {
	head := t.paint(symbolColor(s), Symbol(s)) + " " + s.Ref.String()
	if s.Source != nil {
		head += " (" + s.Source.String() + ")"
	}
	t.line(2, head)
	t.stepBody(s)
}

// stepBody writes what a step does, indented by t.body: the reason, ids,
// target, Secret, operation, changes, dependencies, warnings and error.
func (t *textWriter) stepBody(s *plan.Step) {
	if s.Reason != "" {
		t.line(t.body, t.sc.text(s.Reason))
	}
	if s.ExternalID != "" && s.Action != plan.None && s.Action != plan.Forget {
		id := "id: " + t.sc.id(s.ExternalID)
		if s.InstanceExternalID != "" {
			if t.sc.isNew(s.InstanceExternalID) {
				id += "; instance id: the instance's new ID"
			} else {
				id += "; instance id: " + s.InstanceExternalID
			}
		}
		if s.PredecessorBindingID != "" {
			id += "; replaces: " + s.PredecessorBindingID
		}
		if s.WriteAhead && !s.NewID {
			id += " (recorded before the call)"
		}
		t.line(t.body, id)
	}
	if s.Action != plan.None && s.Action != plan.Forget && s.Target.Broker.Kind != "" && s.Target.Broker != s.Ref {
		where := "at " + s.Target.Broker.String()
		if s.Target.ClassExternalName != "" || s.Target.PlanID != "" {
			where += ": " + s.Target.ClassExternalName + "/" + targetPlan(s.Target)
		}
		t.line(t.body, where)
	}
	if s.SecretName != "" {
		switch s.Action {
		case plan.Create, plan.Update:
			t.line(t.body, "credentials to Secret "+s.SecretNamespace+"/"+s.SecretName)
		case plan.Delete:
			t.line(t.body, "credentials Secret "+s.SecretNamespace+"/"+s.SecretName+" is deleted")
		}
	}
	if op := s.Operation; op != nil {
		o := "operation: " + string(op.Type)
		if op.Operation != "" {
			o += fmt.Sprintf(" %q", t.sc.text(op.Operation))
		}
		if op.PlanID != "" {
			o += ", plan_id " + op.PlanID
		}
		if !s.PollDeadline.IsZero() {
			o += ", deadline " + timeString(s.PollDeadline)
		}
		t.line(t.body, o)
	}
	for _, c := range s.Changes {
		t.line(t.body, t.paint(changeColor(c.Op), changeSymbol(c.Op))+" "+changeText(c))
	}
	if len(s.DependsOn) > 0 {
		var deps []string
		for _, d := range s.DependsOn {
			deps = append(deps, d.String())
		}
		t.line(t.body, "after: "+strings.Join(deps, ", "))
	}
	for _, w := range s.Warnings {
		t.line(t.body, t.paint(ansiYellow, "warning: ")+t.sc.text(w))
	}
	if s.Error != "" {
		t.line(t.body, t.paint(ansiRed, "error: ")+t.sc.text(s.Error))
	}
}

func changeColor(op plan.ChangeOp) string {
	switch op {
	case plan.ChangeAdd:
		return ansiGreen
	case plan.ChangeRemove:
		return ansiRed
	}
	return ansiYellow
}

// changeText renders a change after its symbol.
func changeText(c plan.Change) string {
	val := func(v string) string {
		if c.Sensitive {
			return plan.SensitiveValue
		}
		if v == "" {
			return `""`
		}
		return v
	}
	switch c.Op {
	case plan.ChangeAdd:
		return c.Path + ": " + val(c.New)
	case plan.ChangeRemove:
		if c.Old == "" {
			return c.Path
		}
		return c.Path + ": " + val(c.Old)
	case plan.ChangeSet:
		return c.Path + ": (unknown) -> " + val(c.New)
	}
	return c.Path + ": " + val(c.Old) + " -> " + val(c.New)
}
