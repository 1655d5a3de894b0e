package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
)

// secret has characters that every encoding changes: a quote, a
// backslash, a slash, a plus, a space, an ampersand, HTML brackets and a
// non-ASCII letter.
const secret = `pa"ss\wo/rd+1 &<é>`

func TestFormsEachEncoding(t *testing.T) {
	want := map[string]string{
		"raw":            secret,
		"JSON":           `pa\"ss\\wo/rd+1 \u0026\u003cé\u003e`,
		"JSON, no HTML":  `pa\"ss\\wo/rd+1 &<é>`,
		"Go-quoted":      `pa\"ss\\wo/rd+1 &<é>`,
		"query-escaped":  "pa%22ss%5Cwo%2Frd%2B1+%26%3C%C3%A9%3E",
		"path-escaped":   "pa%22ss%5Cwo%2Frd+1%20&%3C%C3%A9%3E",
		"base64 std":     "cGEic3Ncd28vcmQrMSAmPMOpPg==",
		"base64 URL":     "cGEic3Ncd28vcmQrMSAmPMOpPg==",
		"base64 raw std": "cGEic3Ncd28vcmQrMSAmPMOpPg",
		"base64 raw URL": "cGEic3Ncd28vcmQrMSAmPMOpPg",
	}
	forms := Forms(secret)
	for name, f := range want {
		if !slices.Contains(forms, f) {
			t.Errorf("%s form %q missing from %q", name, f, forms)
		}
	}
	// A value whose base64 differs between the alphabets.
	if f := Forms("\xfb\xff\xbf?>"); !slices.Contains(f, "+/+/Pz4=") || !slices.Contains(f, "-_-_Pz4=") || !slices.Contains(f, "-_-_Pz4") {
		t.Errorf("base64 forms of a value with 62/63 digits: %q", f)
	}
	seen := map[string]bool{}
	for _, f := range forms {
		if seen[f] {
			t.Errorf("form %q listed twice", f)
		}
		seen[f] = true
	}
}

func TestScrubEveryForm(t *testing.T) {
	s := New()
	s.Add(secret)
	for _, f := range Forms(secret) {
		in := "broker said: <" + f + "> twice <" + f + ">"
		got := s.Scrub(in)
		if want := "broker said: <" + Placeholder + "> twice <" + Placeholder + ">"; got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrubCases(t *testing.T) {
	cases := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{"nothing known", nil, "a password here", "a password here"},
		{"short values ignored", []string{"abc", ""}, "abc abc", "abc abc"},
		{"minimum length", []string{"abcd"}, "xabcdx", "x[REDACTED]x"},
		{"at both ends", []string{"s3cr3t"}, "s3cr3t mid s3cr3t", "[REDACTED] mid [REDACTED]"},
		{"longest first: a value containing another", []string{"pass", "password-123"}, "is password-123.", "is [REDACTED]."},
		{"longest first, either order", []string{"password-123", "pass"}, "pass / password-123", "[REDACTED] / [REDACTED]"},
		{"overlapping values hidden whole", []string{"abcdef", "defghi"}, "<abcdefghi>", "<[REDACTED]>"},
		{"value inside another, later start", []string{"xx-secret-yy", "secret"}, "1 xx-secret-yy 2 secret", "1 [REDACTED] 2 [REDACTED]"},
		{"adjacent values merge", []string{"aaaa", "bbbb"}, "aaaabbbb", "[REDACTED]"},
		{"near miss", []string{"hunter22"}, "hunter2 hunter2", "hunter2 hunter2"},
		{"long and short share a prefix", []string{"tokn", "tokn-long-value"}, "tokn-long-valu tokn-long-value", "[REDACTED]-long-valu [REDACTED]"},
		{"text shorter than the minimum", []string{"abcd"}, "abc", "abc"},
		{"multi-line value", []string{"line1\nline2"}, "x line1\nline2 y", "x [REDACTED] y"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			s.Add(tc.values...)
			if got := s.Scrub(tc.in); got != tc.want {
				t.Errorf("Scrub(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNilAndZeroSets(t *testing.T) {
	var nilSet *Set
	nilSet.Add("ignored-value")
	nilSet.AddLeaves(map[string]any{"k": "ignored-value"})
	nilSet.AddJSON([]byte(`{"k":"ignored-value"}`))
	if nilSet.Len() != 0 || nilSet.Scrub("ignored-value") != "ignored-value" {
		t.Error("a nil set is not empty")
	}
	var zero Set
	zero.Add("zero-value")
	if got := zero.Scrub("a zero-value"); got != "a "+Placeholder {
		t.Errorf("zero set: %q", got)
	}
	custom := &Set{Placeholder: "(sensitive)"}
	custom.Add("custom-value")
	if got := custom.Scrub("custom-value"); got != "(sensitive)" {
		t.Errorf("custom placeholder: %q", got)
	}
}

func TestAddLeavesAndJSON(t *testing.T) {
	s := New()
	s.AddLeaves(map[string]any{
		"password":            "leaf-password",
		"nested":              map[string]any{"list": []any{"leaf-in-list", 5432.0, true}},
		"number":              json.Number("987654321"),
		"key-is-not-a-secret": "x",
	})
	s.AddJSON([]byte(`{"adminPassword": "from-json-1", "n": {"deep": "from-json-2"}}`))
	s.AddJSON([]byte(`not json but secret`))
	s.AddJSON([]byte(`"a json string"`))
	in := "leaf-password leaf-in-list 987654321 from-json-1 from-json-2 not json but secret a json string 5432 key-is-not-a-secret"
	want := strings.Repeat(Placeholder+" ", 7) + "5432 key-is-not-a-secret"
	if got := s.Scrub(in); got != want {
		t.Errorf("Scrub = %q\nwant    %q", got, want)
	}
}

func TestScrubError(t *testing.T) {
	s := New()
	base := errors.New("broker said tok-12345")
	wrapped := fmt.Errorf("bind: %w", base)
	if s.ScrubError(wrapped) != wrapped {
		t.Error("an error with nothing known was replaced")
	}
	s.Add("tok-12345")
	got := s.ScrubError(wrapped)
	if got.Error() != "bind: broker said "+Placeholder || !errors.Is(got, base) {
		t.Errorf("ScrubError = %v (is base: %v)", got, errors.Is(got, base))
	}
	if s.ScrubError(nil) != nil {
		t.Error("ScrubError(nil) != nil")
	}
}

func TestWriter(t *testing.T) {
	s := New()
	var buf bytes.Buffer
	w := s.Writer(&buf)
	fmt.Fprintln(w, "before any-secret is known")
	s.Add("any-secret")
	n, err := fmt.Fprintln(w, "error: any-secret leaked")
	if err != nil || n != len("error: any-secret leaked\n") {
		t.Errorf("Write = %d, %v", n, err)
	}
	if want := "before any-secret is known\nerror: " + Placeholder + " leaked\n"; buf.String() != want {
		t.Errorf("wrote %q, want %q", buf.String(), want)
	}
}

func TestFormatter(t *testing.T) {
	for _, next := range []logrus.Formatter{&logrus.JSONFormatter{}, &logrus.TextFormatter{DisableTimestamp: true}} {
		t.Run(fmt.Sprintf("%T", next), func(t *testing.T) {
			s := New()
			s.Add(secret)
			var buf bytes.Buffer
			l := logrus.New()
			l.SetOutput(&buf)
			l.SetFormatter(&Formatter{Set: s, Next: next})
			for _, f := range Forms(secret) {
				l.WithError(errors.New("broker: "+f)).WithField("desc", f).WithField("n", 3).Error("failed: " + f)
			}
			out := buf.String()
			if strings.Count(out, "\n") != len(Forms(secret)) {
				t.Fatalf("log lines: %q", out)
			}
			for _, f := range Forms(secret) {
				if strings.Contains(out, f) {
					t.Errorf("form %q logged:\n%s", f, out)
				}
			}
			if !strings.Contains(out, Placeholder) || !strings.Contains(out, "n=3") && !strings.Contains(out, `"n":3`) {
				t.Errorf("log lost its fields:\n%s", out)
			}
		})
	}
}

// TestFormatterDoubleEscaped: a broker quoted the JSON-escaped form, which
// the JSON log format escapes once more; scrubbing before formatting still
// finds it.
func TestFormatterDoubleEscaped(t *testing.T) {
	s := New()
	s.Add(`a"b\c-secret`)
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetFormatter(&Formatter{Set: s, Next: &logrus.JSONFormatter{}})
	l.Error(`broker echoed a\"b\\c-secret`)
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("logged: %s", buf.String())
	}
}

func TestURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"https://dash.example/i/1", "https://dash.example/i/1"},
		{"https://user:pw@dash.example/i/1", "https://REDACTED@dash.example/i/1"},
		{"https://tok@dash.example/", "https://REDACTED@dash.example/"},
		{"https://dash.example/i?token=abc&view=full", "https://dash.example/i?token=REDACTED&view=REDACTED"},
		{"https://dash.example/i?bare-token&k=", "https://dash.example/i?REDACTED&k=REDACTED"},
		{"https://dash.example/i#access_token=abc", "https://dash.example/i#REDACTED"},
		{"https://u:p@dash.example:8443/i?t=1#f", "https://REDACTED@dash.example:8443/i?t=REDACTED#REDACTED"},
		{"mailto:someone-secret@example.com", "mailto:REDACTED"},
		{"http://[::1:bad", URLPlaceholder},
	}
	for _, tc := range cases {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestConcurrentAddAndScrub runs adds and scrubs at once (meaningful under
// -race) and checks every value added before a scrub is scrubbed by it.
func TestConcurrentAddAndScrub(t *testing.T) {
	s := New()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				v := fmt.Sprintf("cred-%d-%03d", g, i)
				s.Add(v)
				if got := s.Scrub("x " + v + " y"); got != "x "+Placeholder+" y" {
					t.Errorf("Scrub right after Add(%q) = %q", v, got)
					return
				}
				_ = s.Len()
			}
		}()
	}
	wg.Wait()
	if got := s.Scrub("cred-3-199"); got != Placeholder {
		t.Errorf("after all adds: %q", got)
	}
}

// BenchmarkScrub measures Scrub of a 200-byte message with 10,000 known
// values (a pass with thousands of binding credentials), with and
// without a match.
func BenchmarkScrub(b *testing.B) {
	s := New()
	for i := 0; i < 10000; i++ {
		s.Add(fmt.Sprintf("postgres://u-%06d:%032x@db.example:5432/db_%06d", i, i*7919, i), fmt.Sprintf("%032x", i*104729))
	}
	clean := strings.Repeat("osb broker \"demo\": provision PUT /v2/service_instances/1: HTTP 500: ", 3)[:200]
	hit := clean[:120] + fmt.Sprintf("%032x", 5000*104729) + clean[152:]
	// A URI sharing its first bytes with every known one, but unknown.
	near := clean[:100] + "postgres://u-999999:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz@db.example:5432/db_999999" + clean[178:]
	b.Logf("%d forms known", s.Len())
	for _, bc := range []struct {
		name, msg string
	}{{"no match", clean}, {"one match", hit}, {"shared prefix, no match", near}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Scrub(bc.msg)
			}
		})
	}
	b.Run("empty set", func(b *testing.B) {
		e := New()
		for b.Loop() {
			_ = e.Scrub(clean)
		}
	})
}

// BenchmarkAdd measures learning one binding's credentials in a set that
// already knows 10,000 values.
func BenchmarkAdd(b *testing.B) {
	s := New()
	for i := 0; i < 10000; i++ {
		s.Add(fmt.Sprintf("%032x", i*104729))
	}
	i := 0
	for b.Loop() {
		i++
		s.Add(fmt.Sprintf("new-cred-%09d", i), fmt.Sprintf("postgres://u:%09d@h/db", i))
	}
}

// TestFormsHasEveryEncoding: Forms holds each encoding of v, computed here
// the long way (both JSON escapings, every base64 alphabet with and
// without padding), whichever shortcut Forms takes.
func TestFormsHasEveryEncoding(t *testing.T) {
	for _, v := range []string{"plain-value", "a<b>&c\"d\\e", "x", "xy", "xyz", "p@ss:w/rd?&=", "ünï\u2028cødé"} {
		var want []string
		b, _ := json.Marshal(v)
		want = append(want, string(b[1:len(b)-1]))
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(v)
		nb := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		want = append(want, string(nb[1:len(nb)-1]))
		q := strconv.Quote(v)
		want = append(want, q[1:len(q)-1], url.QueryEscape(v), url.PathEscape(v))
		for _, e := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			want = append(want, e.EncodeToString([]byte(v)))
		}
		got := Forms(v)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("Forms(%q) = %q: missing %q", v, got, w)
			}
		}
	}
}
