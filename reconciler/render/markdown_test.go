package render

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/goldentest"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
)

// compareGolden compares got with testdata/path (-update rewrites it).
func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	goldentest.Compare(t, filepath.Join("testdata", path), got)
}

func markdown(t testing.TB, p *plan.Plan, opts MarkdownOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := Markdown(&b, p, opts); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// mixedPlan has every kind of entry the Markdown view shows: creates on
// new IDs, an update, a delete, a poll, a blocked resource, warnings, a
// diagnostic and a redacted parameter.
func mixedPlan() *plan.Plan {
	p := samplePlan()
	other := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "cache"}
	gone := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "old", Name: "queue"}
	bad := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "broken"}
	nb := manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "cache-binding"}
	p.Steps = append(p.Steps,
		plan.Step{Ref: other, Action: plan.Create, Reason: "new instance", ExternalID: "9f1c2b3a-0000-4000-8000-00000000000a", NewID: true, WriteAhead: true,
			Target:  plan.Target{Broker: broker, ClassExternalName: "redis", PlanExternalName: "standard"},
			Changes: []plan.Change{{Path: "class", Op: plan.ChangeAdd, New: "redis"}, {Path: "parameters.password", Op: plan.ChangeAdd, New: "x", Sensitive: true}},
			Source:  &manifest.Source{File: "apps/cache.yaml", Line: 1}},
		plan.Step{Ref: nb, Action: plan.Create, Reason: "new binding", ExternalID: "9f1c2b3a-0000-4000-8000-00000000000b", NewID: true,
			InstanceExternalID: "9f1c2b3a-0000-4000-8000-00000000000a", WriteAhead: true, DependsOn: []manifest.Ref{other},
			Target: plan.Target{Broker: broker, ClassExternalName: "redis", PlanExternalName: "standard"}, SecretNamespace: "apps", SecretName: "cache-creds"},
		plan.Step{Ref: bad, Action: plan.None, Reason: "invalid manifest", Error: "apps/broken.yaml:6: spec.clusterServicePlanExternalName: plan \"huge\" is not in the catalog of demo",
			Source: &manifest.Source{File: "apps/broken.yaml", Line: 1}},
		plan.Step{Ref: gone, Action: plan.Delete, Reason: "manifest removed and prune is on", ExternalID: "q-1",
			Target: plan.Target{Broker: broker, ClassExternalName: "queue", PlanExternalName: "basic"}},
	)
	return p
}

// TestMarkdownGolden pins the Markdown view of representative plans.
func TestMarkdownGolden(t *testing.T) {
	refused := mixedPlan()
	refused.Refused = "3 deletions exceed maxDeletions 2; raise --max-deletions or restore manifests"
	for _, c := range []struct {
		name string
		p    *plan.Plan
		opts MarkdownOptions
	}{
		{"empty", &plan.Plan{}, MarkdownOptions{}},
		{"in-sync", &plan.Plan{Revision: "abc123", Steps: []plan.Step{{Ref: inst, Action: plan.None, Reason: "in sync"}}}, MarkdownOptions{}},
		{"mixed", mixedPlan(), MarkdownOptions{}},
		{"refused", refused, MarkdownOptions{}},
		{"truncated-details", generatedPlan(40), MarkdownOptions{Limit: 15000}},
		{"truncated-rows", generatedPlan(40), MarkdownOptions{Limit: 2000}},
		{"hostile", hostilePlan(hostileValues[0], hostileValues[1], hostileValues[2]), MarkdownOptions{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := markdown(t, c.p, c.opts)
			checkMarkdown(t, out)
			compareGolden(t, filepath.Join("markdown", c.name+".md"), []byte(out))
		})
	}
}

// TestMarkdownSummaryMatchesText: the Markdown view's Plan line is the
// text view's.
func TestMarkdownSummaryMatchesText(t *testing.T) {
	for _, p := range []*plan.Plan{{}, mixedPlan(), generatedPlan(7)} {
		var txt bytes.Buffer
		if err := Text(&txt, p, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		md := markdown(t, p, MarkdownOptions{})
		lines := closingLines(p)
		if !strings.Contains(txt.String(), "\n"+lines[0]+"\n") || !strings.Contains(md, "\n**"+lines[0]+"**") {
			t.Errorf("summary %q not in both views:\n%s\n%s", lines[0], txt.String(), md)
		}
	}
}

// generatedPlan has n creates (instances with parameters), n updates and
// n deletes.
func generatedPlan(n int) *plan.Plan {
	p := &plan.Plan{Revision: "0123456789abcdef0123456789abcdef01234567"}
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("team-%03d", i)
		p.Steps = append(p.Steps,
			plan.Step{Ref: manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: ns, Name: "db"}, Action: plan.Create, Reason: "new instance",
				ExternalID: fmt.Sprintf("id-%d", i), NewID: true, WriteAhead: true,
				Target: plan.Target{Broker: broker, ClassExternalName: "postgres", PlanExternalName: "small"},
				Changes: []plan.Change{{Path: "class", Op: plan.ChangeAdd, New: "postgres"}, {Path: "plan", Op: plan.ChangeAdd, New: "small"},
					{Path: "parameters.size", Op: plan.ChangeAdd, New: "10"}}},
			plan.Step{Ref: manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: ns, Name: "cache"}, Action: plan.Update, Reason: "plan changed",
				ExternalID: fmt.Sprintf("cache-%d", i), Target: plan.Target{Broker: broker, ClassExternalName: "redis", PlanExternalName: "large"},
				Previous: &plan.Target{Broker: broker, PlanExternalName: "small"},
				Changes:  []plan.Change{{Path: "plan", Op: plan.ChangeModify, Old: "small", New: "large"}}},
			plan.Step{Ref: manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: ns, Name: "old"}, Action: plan.Delete,
				Reason: "manifest removed and prune is on", ExternalID: fmt.Sprintf("old-%d", i), Target: plan.Target{Broker: broker}},
		)
	}
	return p
}

// TestMarkdownLimit: a plan far over GitHub's comment limit is cut to fit,
// details first, then rows, with a note saying how many are not shown.
func TestMarkdownLimit(t *testing.T) {
	const resources = 3 * 2000
	p := generatedPlan(resources / 3)
	p.Steps[0].Warnings = []string{strings.Repeat("a long warning ", 500)}
	out := markdown(t, p, MarkdownOptions{})
	if len(out) > DefaultMarkdownLimit || len(out) > 65536 {
		t.Fatalf("%d bytes, over the limit", len(out))
	}
	checkMarkdown(t, out)
	rows := strings.Count(out, "\n| `")
	if rows == 0 || rows >= resources {
		t.Fatalf("%d rows shown of %d", rows, resources)
	}
	if strings.Contains(out, "<details>") {
		t.Error("details kept while rows were dropped")
	}
	note := fmt.Sprintf("… %d more resources not shown; run `osbgit diff` for the full plan.\n", resources-rows)
	if !strings.HasSuffix(out, note) {
		t.Errorf("no truncation note %q; ends:\n%s", note, out[len(out)-300:])
	}
	if !strings.Contains(out, "**Plan: 2000 to create, 2000 to update, 2000 to delete.**") {
		t.Error("the summary counts the whole plan")
	}
	// The one long warning is bounded, not dropped.
	if !strings.Contains(out, "a long warning a long warning") || strings.Count(out, "a long warning") > markdownMessageLimit/len("a long warning ")+1 {
		t.Error("the long warning is not bounded")
	}

	// Details go first: with room for every row, only details are cut.
	p = generatedPlan(150)
	out = markdown(t, p, MarkdownOptions{Limit: 60000})
	if len(out) > 60000 {
		t.Fatalf("%d bytes over 60000", len(out))
	}
	shown := strings.Count(out, "<details>")
	if strings.Count(out, "\n| `") != 450 || shown == 0 || shown == 450 ||
		!strings.HasSuffix(out, fmt.Sprintf("… details of %d more resources not shown; run `osbgit diff` for the full plan.\n", 450-shown)) {
		t.Errorf("details truncation: %d details; ends:\n%s", shown, out[len(out)-300:])
	}
	// A plan that fits is not cut.
	if out := markdown(t, generatedPlan(3), MarkdownOptions{}); strings.Contains(out, "not shown") || strings.Count(out, "<details>") != 9 {
		t.Errorf("a small plan was cut:\n%s", out)
	}
}

// hostileValues try to break out of every context the Markdown view
// writes: table cells, code spans, fences, HTML, lists, headings.
var hostileValues = []string{
	"a|b | c",
	"`x` ``y`` ```z``` ````",
	"<script>alert(1)</script><img src=x onerror=alert(1)>",
	"</code></summary></details><details open>",
	"&lt;b&gt; &amp; &#60;",
	"[click](https://evil.example/phish) ![i](https://evil.example/i.png)",
	"line1\nline2\r\n\n| --- | --- |\n| x | y |",
	"# heading",
	"- item\n1. item\n> quote",
	"@org/team please approve",
	"**bold** _em_ ~~strike~~",
	"back\\|slash\\\\|double\\",
	"<!-- osbgit-plan --> -->",
	"```\n</details>\n<script>x</script>\n```",
	"\u2028\u2029\x1b[31mred\x00\t",
	"~~~\n~~~",
	" `leading and trailing` ",
	"\xff\xfe invalid utf-8",
}

// hostilePlan puts v1 in names and namespaces, v2 in parameter values,
// plans and reasons, and v3 in errors, warnings and diagnostics.
func hostilePlan(v1, v2, v3 string) *plan.Plan {
	r := manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: v1, Name: v1 + "-db"}
	b := manifest.Ref{Kind: manifest.KindServiceBroker, Namespace: v1, Name: v2}
	return &plan.Plan{
		Revision: "abc",
		Refused:  "refused: " + v3,
		Steps: []plan.Step{
			{Ref: r, Action: plan.Update, Reason: "changed: " + v2, ExternalID: v2,
				Target:   plan.Target{Broker: b, ClassExternalName: v2, PlanExternalName: v2 + "-large"},
				Previous: &plan.Target{Broker: b, PlanExternalName: v1},
				Changes: []plan.Change{{Path: "parameters." + v1, Op: plan.ChangeModify, Old: v3, New: v2},
					{Path: "parameters.x", Op: plan.ChangeAdd, New: v2}},
				Warnings: []string{v3}, Source: &manifest.Source{File: v1 + ".yaml", Line: 1}},
			{Ref: manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: v1, Name: v2}, Action: plan.None, Reason: v3, Error: v3},
		},
		Diagnostics: manifest.Diagnostics{{File: v1, Line: 2, Field: v2, Severity: manifest.SeverityError, Message: v3}},
	}
}

// TestMarkdownHostileValues: no value from the repo can add Markdown or
// HTML to the view, break a table row or close a fence.
func TestMarkdownHostileValues(t *testing.T) {
	for i, v := range hostileValues {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			for _, p := range []*plan.Plan{hostilePlan(v, v, v), hostilePlan("ok", v, "ok"), hostilePlan("ok", "ok", v)} {
				out := markdown(t, p, MarkdownOptions{})
				checkMarkdown(t, out)
				if t.Failed() {
					t.Logf("value %q:\n%s", v, out)
					return
				}
			}
		})
	}
}

// TestMarkdownScrubs: secret values stay out of the Markdown view as out
// of the others, and redacted changes stay redacted.
func TestMarkdownScrubs(t *testing.T) {
	const echoed = "broker-echo-s3cret"
	set := redact.New()
	set.Add(echoed)
	p := &plan.Plan{Steps: []plan.Step{{
		Ref: inst, Action: plan.Create, Reason: "oops: pa55word-xyz", Error: "",
		Parameters: map[string]any{"password": "pa55word-xyz"}, SecretParameterKeys: []string{"password"},
		Warnings: []string{"broker said " + echoed},
		Changes:  []plan.Change{{Path: "parameters.password", Op: plan.ChangeAdd, New: "pa55word-xyz", Sensitive: true}},
	}}}
	out := markdown(t, p, MarkdownOptions{Redact: set})
	if strings.Contains(out, "pa55word") || strings.Contains(out, echoed) {
		t.Errorf("secret in the Markdown view:\n%s", out)
	}
	if !strings.Contains(out, "+ parameters.password: "+plan.SensitiveValue) || !strings.Contains(out, redact.Placeholder) {
		t.Errorf("not redacted as expected:\n%s", out)
	}
}

func TestMdCode(t *testing.T) {
	for _, c := range []struct {
		in      string
		inTable bool
		want    string
	}{
		{"apps/db", false, "`apps/db`"},
		{"", false, ""},
		{"a`b", false, "``a`b``"},
		{"`x`", false, "`` `x` ``"},
		{"a|b", false, "`a|b`"},
		{"a|b", true, "`a\\|b`"},
		{`a\|b`, true, "`a∖\\|b`"},
		{"x\ny", false, "`x y`"},
		{"<b>&amp;", false, "`<b>&amp;`"},
	} {
		if got := mdCode(c.in, c.inTable); got != c.want {
			t.Errorf("mdCode(%q, %v) = %q, want %q", c.in, c.inTable, got, c.want)
		}
	}
}

// FuzzMarkdown: whatever the repo holds, the Markdown view is well formed
// (see checkMarkdown) and within its limit.
func FuzzMarkdown(f *testing.F) {
	for i := 0; i+2 < len(hostileValues); i += 3 {
		f.Add(hostileValues[i], hostileValues[i+1], hostileValues[i+2], uint16(0))
	}
	f.Fuzz(func(t *testing.T, v1, v2, v3 string, limit uint16) {
		p := hostilePlan(v1, v2, v3)
		opts := MarkdownOptions{}
		if limit > 0 {
			opts.Limit = 1000 + int(limit)
		}
		out := markdown(t, p, opts)
		if l := opts.Limit; l > 0 && len(out) > l {
			t.Fatalf("%d bytes over the limit %d", len(out), l)
		}
		checkMarkdown(t, out)
	})
}

// allowedTag is the HTML the view writes itself.
var allowedTag = regexp.MustCompile(`^(<!-- osbgit-plan -->|</?details>|</?summary>|</?code>)`)

// entity is the HTML escaping of a <summary>'s text.
var entity = regexp.MustCompile(`^&(amp|lt|gt|#34|#39);`)

// fenceLine is a fence the view writes.
var fenceLine = regexp.MustCompile("^(`{3,})(diff)?$")

// checkMarkdown asserts that out, read as GitHub-flavored Markdown, has
// only the structure the view writes: every fence closes with its own
// fence; outside fences and code spans there is no HTML but the view's
// own tags, no entity but the escapes in <summary>, no link, image,
// mention, backslash or stray backtick, and no heading but the title;
// every table row has exactly the five cells of the header.
func checkMarkdown(t testing.TB, out string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	fence := ""
	opened, closed := 0, 0
	for i, line := range lines {
		if fence != "" {
			if strings.TrimLeft(line, " ") != line && strings.Contains(line, fence) {
				t.Errorf("line %d: an indented fence inside a block: %q", i+1, line)
			}
			if line == fence {
				fence = ""
			} else if strings.Contains(line, fence) {
				t.Errorf("line %d closes no fence but holds one: %q", i+1, line)
			}
			continue
		}
		if m := fenceLine.FindStringSubmatch(line); m != nil {
			fence = m[1]
			continue
		}
		if strings.HasPrefix(line, "<details><summary>") {
			opened++
		}
		if line == "</details>" {
			closed++
		}
		if strings.HasPrefix(line, "#") && (i != 1 || !strings.HasPrefix(line, "### osbgit plan for ")) {
			t.Errorf("line %d: a heading: %q", i+1, line)
		}
		if strings.HasPrefix(line, "|") {
			if n := unescapedPipes(line); n != 6 {
				t.Errorf("line %d: table row with %d cell borders, want 6: %q", i+1, n, line)
			}
			if strings.Contains(line, `\\|`) {
				t.Errorf("line %d: an escaped backslash before a pipe: %q", i+1, line)
			}
		}
		text := stripCodeSpans(line)
		if strings.HasPrefix(line, "<details><summary>") {
			text = stripHTMLCode(t, i+1, line)
		}
		for j := 0; j < len(text); j++ {
			switch text[j] {
			case '<':
				if !allowedTag.MatchString(text[j:]) {
					t.Errorf("line %d: raw HTML %q", i+1, text[j:])
				}
			case '&':
				if !entity.MatchString(text[j:]) {
					t.Errorf("line %d: an entity or stray & %q", i+1, text[j:])
				}
			case '[', ']', '@', '`', '\\':
				t.Errorf("line %d: %q outside a code span: %q", i+1, text[j], line)
			}
		}
		if strings.Contains(stripCodeSpans(line), "<summary>") {
			if !strings.HasPrefix(line, "<details><summary>") || !strings.HasSuffix(line, "</summary>") || strings.Count(line, "<summary>") != 1 {
				t.Errorf("line %d: a broken summary: %q", i+1, line)
			}
		}
	}
	if fence != "" {
		t.Errorf("the fence %s never closes", fence)
	}
	if opened != closed {
		t.Errorf("%d <details> opened, %d closed", opened, closed)
	}
}

// stripHTMLCode checks the <code> elements of a <summary> line (raw HTML,
// where Markdown is inert and GitHub neither links nor mentions in code):
// their text must be HTML-escaped; it is removed from what is returned.
func stripHTMLCode(t testing.TB, n int, line string) string {
	t.Helper()
	var b strings.Builder
	for {
		i := strings.Index(line, "<code>")
		if i < 0 {
			b.WriteString(line)
			return b.String()
		}
		j := strings.Index(line[i:], "</code>")
		if j < 0 {
			t.Errorf("line %d: unclosed <code>: %q", n, line)
			return ""
		}
		inner := line[i+len("<code>") : i+j]
		for k := 0; k < len(inner); k++ {
			if inner[k] == '<' || inner[k] == '>' || inner[k] == '\n' || (inner[k] == '&' && !entity.MatchString(inner[k:])) {
				t.Errorf("line %d: unescaped %q in <code>: %q", n, inner[k], line)
			}
		}
		b.WriteString(line[:i])
		line = line[i+j+len("</code>"):]
	}
}

// unescapedPipes counts the pipes of a table row not escaped by a
// backslash (GFM splits cells on them, code spans or not).
func unescapedPipes(line string) int {
	n := 0
	for i := 0; i < len(line); i++ {
		if line[i] == '|' && (i == 0 || line[i-1] != '\\') {
			n++
		}
	}
	return n
}

// stripCodeSpans removes CommonMark code spans from a line: a run of n
// backticks up to the next run of exactly n. An unmatched run is left in.
func stripCodeSpans(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		if line[i] != '`' {
			b.WriteByte(line[i])
			i++
			continue
		}
		n := 0
		for i+n < len(line) && line[i+n] == '`' {
			n++
		}
		end := -1
		for j := i + n; j < len(line); {
			if line[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(line) && line[j+m] == '`' {
				m++
			}
			if m == n {
				end = j + m
				break
			}
			j += m
		}
		if end < 0 {
			b.WriteString(line[i : i+n])
			i += n
			continue
		}
		i = end
	}
	return b.String()
}
