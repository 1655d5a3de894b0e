package render

import (
	"bufio"
	"bytes"
	"fmt"
	"html"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
)

// MarkdownMarker is the Markdown view's first line, an HTML comment that
// does not render: CI jobs find the comment they posted earlier by it and
// update that one instead of adding another.
const MarkdownMarker = "<!-- osbgit-plan -->"

// DefaultMarkdownLimit is the Markdown view's default size bound, in
// bytes: a margin under GitHub's 65,536-character comment limit (bytes
// are never fewer than characters).
const DefaultMarkdownLimit = 64000

// markdownMessageLimit bounds one message (an error, a warning, a
// diagnostic) in the Markdown view, so that one broker's long answer
// cannot crowd out the rest of the plan.
const markdownMessageLimit = 1000

// MarkdownOptions tune the Markdown view.
type MarkdownOptions struct {
	// Redact, when set, is scrubbed from the view's free text (see
	// TextOptions.Redact).
	Redact *redact.Set
	// Limit bounds the output in bytes; 0 means DefaultMarkdownLimit.
	// Details, then table rows, then top-section entries are dropped from
	// the end to fit, and a closing note says how many are not shown.
	Limit int
}

// Markdown writes the Markdown view of p (see the package doc) to w: a
// pull-request comment.
func Markdown(w io.Writer, p *plan.Plan, opts MarkdownOptions) error {
	if p == nil {
		p = &plan.Plan{}
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultMarkdownLimit
	}
	m := &markdownView{sc: newScrubber(p, opts.Redact)}
	m.build(p)
	if _, err := io.WriteString(w, m.render(limit)); err != nil {
		return fmt.Errorf("render plan as Markdown: %w", err)
	}
	return nil
}

// markdownView holds the parts of the Markdown view, each a run of
// complete lines, so that render can drop entries from the end of a part
// to fit the size limit.
type markdownView struct {
	sc scrubber
	// head: the marker and the title.
	head string
	// top: refusal, blocked resources, warnings and diagnostics, one
	// entry per list item (each section's heading is part of its first
	// entry).
	top []string
	// summary: the Plan line and what follows it.
	summary string
	// tableHead and rows: the table of changed resources.
	tableHead string
	rows      []string
	// details: one collapsible block per changed resource.
	details []string
}

// changed reports whether the Markdown view lists a step in its table.
func changed(s *plan.Step) bool { return s.Action != plan.None }

func (m *markdownView) build(p *plan.Plan) {
	var b strings.Builder
	b.WriteString(MarkdownMarker + "\n")
	if p.Revision != "" {
		b.WriteString("### osbgit plan for revision " + mdCode(m.sc.s(p.Revision), false) + "\n\n")
	} else {
		b.WriteString("### osbgit plan for the working tree\n\n")
	}
	m.head = b.String()

	if p.Refused != "" {
		m.top = append(m.top, "**Refused:** "+m.message(p.Refused)+" (nothing runs)\n\n")
	}
	section := func(heading string, items []string) {
		for i, it := range items {
			if i == 0 {
				it = heading + "\n\n" + it
			}
			if i == len(items)-1 {
				it += "\n"
			}
			m.top = append(m.top, it)
		}
	}
	var blocked, warnings, diags []string
	blockedRefs := map[manifest.Ref]bool{}
	for i := range p.Steps {
		s := &p.Steps[i]
		if s.Error != "" {
			blockedRefs[s.Ref] = true
			blocked = append(blocked, "- "+m.ref(s.Ref, s.Source)+": "+m.message(s.Error)+"\n")
		}
		for _, w := range s.Warnings {
			warnings = append(warnings, "- "+m.ref(s.Ref, s.Source)+": "+m.message(w)+"\n")
		}
	}
	for _, d := range p.Diagnostics {
		if d.Ref.Kind != "" && blockedRefs[d.Ref] {
			continue // the resource's error says it
		}
		diags = append(diags, "- "+m.message(d.String())+"\n")
	}
	section(fmt.Sprintf("**Blocked** (%s; not changed until fixed):", plural(len(blocked), "resource", "resources")), blocked)
	section("**Warnings:**", warnings)
	section("**Diagnostics:**", diags)

	lines := closingLines(p)
	m.summary = "**" + lines[0] + "**"
	if len(lines) > 1 {
		m.summary += " " + strings.Join(lines[1:], " ")
	}
	m.summary += "\n\n"

	m.tableHead = "| Action | Kind | Namespace/Name | Broker | Class/Plan |\n| --- | --- | --- | --- | --- |\n"
	for i := range p.Steps {
		s := &p.Steps[i]
		if !changed(s) {
			continue
		}
		m.rows = append(m.rows, m.row(s))
		m.details = append(m.details, m.detail(s))
	}
}

// message is free text (a reason quoting a broker, an error) as an inline
// code span: scrubbed, bounded, and inert.
func (m *markdownView) message(s string) string {
	return mdCode(truncateRunes(m.sc.text(s), markdownMessageLimit), false)
}

// row is a table row of a changed step.
func (m *markdownView) row(s *plan.Step) string {
	broker := "—"
	if b := s.Target.Broker; b.Kind != "" && b != s.Ref {
		broker = mdCode(m.sc.s(nsName(b)), true)
	}
	target := "—"
	if s.Target.ClassExternalName != "" || s.Target.PlanID != "" {
		target = mdCode(m.sc.s(s.Target.ClassExternalName+"/"+targetPlan(s.Target)), true)
		if s.Previous != nil && targetPlan(*s.Previous) != targetPlan(s.Target) {
			target = mdCode(m.sc.s(s.Target.ClassExternalName+"/"+targetPlan(*s.Previous)), true) + " → " + target
		}
	}
	return "| " + mdCode(Symbol(s), true) + " | " + mdKind(s.Ref.Kind) + " | " + mdCode(m.sc.s(nsName(s.Ref)), true) +
		" | " + broker + " | " + target + " |\n"
}

// detail is the collapsible block of a changed step: the text view's
// lines about it, in a fenced code block no value can close.
func (m *markdownView) detail(s *plan.Step) string {
	var buf bytes.Buffer
	t := &textWriter{w: bufio.NewWriter(&buf), sc: m.sc}
	t.stepBody(s)
	t.w.Flush() // writes to a bytes.Buffer do not fail
	body := mdFenceSafe(buf.String())
	fence := strings.Repeat("`", max(3, longestRun(body, '`')+1))
	esc := func(s string) string { return html.EscapeString(mdInline(m.sc.s(s))) }
	summary := "<code>" + esc(Symbol(s)) + "</code> " + esc(string(s.Ref.Kind)) + " <code>" + esc(nsName(s.Ref)) + "</code>"
	if s.Source != nil {
		summary += " (<code>" + esc(s.Source.String()) + "</code>)"
	}
	return "<details><summary>" + summary + "</summary>\n\n" + fence + "diff\n" + body + fence + "\n\n</details>\n\n"
}

// render joins the parts, dropping details, then rows, then top entries
// from the end until the result fits in limit bytes.
func (m *markdownView) render(limit int) string {
	size := func(parts []string) int {
		n := 0
		for _, p := range parts {
			n += len(p)
		}
		return n
	}
	fixed := len(m.head) + len(m.summary)
	tableSize := 0
	if len(m.rows) > 0 {
		tableSize = len(m.tableHead) + 1 // the blank line after the table
	}
	top, rows, details := size(m.top), size(m.rows), size(m.details)
	nTop, nRows, nDetails := len(m.top), len(m.rows), len(m.details)
	if fixed+top+tableSize+rows+details > limit {
		// Room for the truncation note (its numbers included).
		budget := limit - fixed - 300
		nDetails = fit(m.details, budget-top-tableSize-rows)
		if nDetails == 0 {
			nRows = fit(m.rows, budget-top-tableSize)
			if nRows == 0 {
				tableSize = 0
				nTop = fit(m.top, budget)
			}
		}
	}
	var b strings.Builder
	b.WriteString(m.head)
	for _, t := range m.top[:nTop] {
		b.WriteString(t)
	}
	if nTop < len(m.top) {
		b.WriteString("\n")
	}
	b.WriteString(m.summary)
	if nRows > 0 {
		b.WriteString(m.tableHead)
		for _, r := range m.rows[:nRows] {
			b.WriteString(r)
		}
		b.WriteString("\n")
	}
	for _, d := range m.details[:nDetails] {
		b.WriteString(d)
	}
	var notes []string
	if n := len(m.top) - nTop; n > 0 {
		notes = append(notes, fmt.Sprintf("%s not shown", plural(n, "more warning or error", "more warnings and errors")))
	}
	if n := len(m.rows) - nRows; n > 0 {
		notes = append(notes, fmt.Sprintf("%s not shown", plural(n, "more resource", "more resources")))
	} else if n := len(m.details) - nDetails; n > 0 {
		notes = append(notes, fmt.Sprintf("details of %s not shown", plural(n, "more resource", "more resources")))
	}
	if len(notes) > 0 {
		b.WriteString("… " + strings.Join(notes, "; ") + "; run `osbgit diff` for the full plan.\n")
	}
	return b.String()
}

// fit is how many of parts, from the start, fit in budget bytes.
func fit(parts []string, budget int) int {
	for i, p := range parts {
		budget -= len(p)
		if budget < 0 {
			return i
		}
	}
	return len(parts)
}

// plural is "1 resource" or "N resources".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// nsName is a ref's namespace/name (name alone when cluster-scoped).
func nsName(r manifest.Ref) string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// ref is a resource for a list item: kind, `namespace/name` and
// (`file:line`).
func (m *markdownView) ref(r manifest.Ref, src *manifest.Source) string {
	out := mdKind(r.Kind) + " " + mdCode(m.sc.s(nsName(r)), false)
	if src != nil {
		out += " (" + mdCode(m.sc.s(src.String()), false) + ")"
	}
	return out
}

// mdKind is a kind as plain text when it is letters only (every kind
// osbgit knows), else as a code span.
func mdKind(k manifest.Kind) string {
	for _, r := range k {
		if r > unicode.MaxASCII || !unicode.IsLetter(r) {
			return mdCode(string(k), true)
		}
	}
	if k == "" {
		return "—"
	}
	return string(k)
}

// mdInline is s on one line: every control character (newlines, tabs,
// escapes) and Unicode line or paragraph separator becomes a space.
func mdInline(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
}

// mdCode returns s as an inline code span, in which Markdown, HTML,
// entities, mentions and autolinks are inert: the delimiter is one
// backtick longer than any run of backticks in s, and s is padded with a
// space when it starts or ends with a backtick or space (CommonMark strips
// one space from each side). In a table cell (inTable) every pipe is
// escaped as GFM requires even inside code spans, and a backslash before
// one becomes "∖" so that no parser can read the pair as an escaped
// backslash followed by a cell boundary. "" gives "".
func mdCode(s string, inTable bool) string {
	s = mdInline(s)
	if s == "" {
		return ""
	}
	if inTable {
		s = strings.ReplaceAll(s, "\\|", "∖|")
		s = strings.ReplaceAll(s, "|", "\\|")
	}
	delim := strings.Repeat("`", longestRun(s, '`')+1)
	if s[0] == '`' || s[0] == ' ' || s[len(s)-1] == '`' || s[len(s)-1] == ' ' {
		s = " " + s + " "
	}
	return delim + s + delim
}

// mdFenceSafe makes the body of a fenced code block printable: control
// characters other than newlines become U+FFFD and the body ends with a
// newline. (Only a backtick run as long as the fence could end the
// block; the caller's fence is longer than any in the body.)
func mdFenceSafe(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		if r != '\n' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029') {
			return '\uFFFD'
		}
		return r
	}, s)
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// longestRun is the length of the longest run of c in s.
func longestRun(s string, c byte) int {
	best, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// truncateRunes cuts s to at most n bytes on a rune boundary, marking the
// cut with "…".
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
