package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// trickyStrings are strings whose YAML form needs care: values that
// resolve to other types, indicators, quotes, spaces, comments, document
// markers, non-ASCII and control characters.
var trickyStrings = []string{
	"", " ", "a", "db-00001", "True", "true", "FALSE", "yes", "no", "on", "off", "y", "N", "null", "Null", "~",
	"0", "-0", "01", "007", "0x1F", "0o17", "0b101", "-0b1", "1_000", "1e3", "1E+3", ".5", "5.", "-.5", "+1",
	".inf", "-.Inf", ".nan", "<<", "2024-05-01", "2024-05-01T12:00:00Z", "2024-5-1 12:00:00", "1234-5",
	"651539d4-275a-4d0f-a1b7-567e0b225d17", "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
	"12345678", "123e4567-e89b-12d3-a456-426614174000", "1e400", "12345678901234567890123",
	"-", "--", "---", "--- x", "...", "-a", "- a", "?", "?a", "? a", ":", ":a", ": a", "a:", "a:b", "a: b", "a :b",
	"#a", "a#b", "a #b", "a# b", ",a", "a,b", "[a]", "a[b]", "{a}", "a}", "&a", "*a", "!a", "a!", "|", ">", "'",
	"a'b", "'a'", "\"", "a\"b", "\"a\"", "%a", "@a", "`a", "a b", " a", "a ", "a  b", "a\tb", "a\nb", "a\n",
	"\\", "a\\b", "https://x.example/instances/1?a=b&c=d", "ID reserved; the provision is not confirmed by the broker yet",
	"é", "naïve café", "\u2028", "\ufeff", "\x7f", "\x01", "<html>", "a&b", strings.Repeat("x", 200),
	strings.Repeat("word ", 40), "it's", "don''t",
}

// randomJSON returns a random JSON value of nested objects and arrays with
// tricky keys and strings.
func randomJSON(r *rand.Rand, depth int) any {
	pick := r.IntN(10)
	if depth > 4 {
		pick = 5 + r.IntN(5)
	}
	switch pick {
	case 0, 1, 2:
		n := r.IntN(4)
		m := map[string]any{}
		for range n {
			key := "k" + fmt.Sprint(r.IntN(20))
			if r.IntN(5) == 0 {
				key = trickyStrings[r.IntN(len(trickyStrings))]
			}
			m[key] = randomJSON(r, depth+1)
		}
		return m
	case 3, 4:
		n := r.IntN(4)
		a := make([]any, 0, n)
		for range n {
			a = append(a, randomJSON(r, depth+1))
		}
		return a
	case 5, 6:
		return trickyStrings[r.IntN(len(trickyStrings))]
	case 7:
		return []any{json.Number("0"), json.Number("-12"), json.Number("3.25"), json.Number("1e3"), json.Number("12345678901234567890"),
			json.Number("123456789012345678901234567890"), json.Number("1e400"), json.Number("-0.0")}[r.IntN(8)]
	case 8:
		return r.IntN(2) == 0
	}
	return nil
}

// fastSamples are JSON objects covering the record format.
func fastSamples(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	add := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	add(sampleStatus())
	for _, s := range trickyStrings {
		rec := sampleStatus()
		rec.Conditions[0].Message = s
		rec.ExternalID = s
		rec.SecretRef = &SecretRef{Name: s, Keys: []string{s, "a"}}
		add(rec)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		m := map[string]any{"apiVersion": ConfigAPIVersion}
		for range 1 + r.IntN(5) {
			m["f"+fmt.Sprint(r.IntN(10))] = randomJSON(r, 0)
		}
		add(m)
	}
	add(map[string]any{})
	add(map[string]any{"a": map[string]any{}, "b": []any{}, "c": []any{map[string]any{}, []any{}, []any{1}}})
	return out
}

// TestFastJSONToYAMLMatchesYAMLv3: whenever the fast renderer accepts a
// document, its output is byte-identical to yaml.v3's.
func TestFastJSONToYAMLMatchesYAMLv3(t *testing.T) {
	accepted := 0
	samples := fastSamples(t)
	for _, data := range samples {
		want, err := jsonToYAMLv3(data)
		got, ok := fastJSONToYAML(data)
		if !ok {
			continue
		}
		accepted++
		if err != nil {
			t.Fatalf("fast path accepted what yaml.v3 refuses (%v):\n%s", err, data)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("fast path differs for %s:\n--- yaml.v3\n%s--- fast\n%s", data, want, got)
		}
	}
	if accepted < len(samples)/4 {
		t.Errorf("fast path accepted only %d of %d documents", accepted, len(samples))
	}
	b, _ := json.Marshal(sampleRecordPlain())
	if _, ok := fastJSONToYAML(b); !ok {
		t.Errorf("fast path refused a typical record:\n%s", b)
	}
}

// sampleRecordPlain is a record as a pass writes it (no multi-line text).
func sampleRecordPlain() *StatusRecord {
	r := sampleStatus()
	for i := range r.Conditions {
		r.Conditions[i].Message = "ID reserved; the provision is not confirmed by the broker yet"
	}
	r.SecretRef = &SecretRef{Namespace: "apps", Name: "db-credentials", Keys: []string{"DATABASE_URL", "password"}}
	r.normalize()
	return r
}

// nodeDiff compares the parts of two node trees the decoder uses.
func nodeDiff(a, b *yaml.Node, path string) string {
	if a.Kind != b.Kind || a.ShortTag() != b.ShortTag() || a.Value != b.Value || a.Line != b.Line || len(a.Content) != len(b.Content) {
		return fmt.Sprintf("%s: kind %v/%v tag %s/%s value %q/%q line %d/%d children %d/%d", path,
			a.Kind, b.Kind, a.ShortTag(), b.ShortTag(), a.Value, b.Value, a.Line, b.Line, len(a.Content), len(b.Content))
	}
	for i := range a.Content {
		if d := nodeDiff(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// trickyYAML are hand-edited documents the fast parser must either refuse
// or read as yaml.v3 does.
var trickyYAML = []string{
	"a: 1\n", "a: b\nc: d\n", "a:\n  b: c\n", "a:\n    b: c\n  d: e\n", "a:\n- b\n", "a:\n  - b\n  - c\n",
	"a:\n  - b: c\n    d: e\n  - f\n", "a: b # c\n", "# c\na: b\n", "a: b\n\nc: d\n", "a: 'b''c'\n", "a: \"b\\\"c\"\n",
	"a: \"b\\x41\"\n", "a: \"\\u00e9\"\n", "a: |\n  x\n", "a: >-\n  x\n", "a: &x b\nc: *x\n", "a: !!str 1\n", "a: [1, 2]\n",
	"a: {b: c}\n", "a: []\n", "a: {}\n", "a:\n", "a: ~\n", "a: null\n", "a: b\n  c\n", "a: b\n c: d\n", "a: 'b\n  c'\n",
	"- a\n", "a: b\na: c\n", "a: b\r\n", "a:\tb\n", "a: b", "--- \na: b\n", "a: b\n---\nc: d\n", "a: b\n...\n",
	"\"a\": b\n", "? a\n: b\n", "a: - b\n", "a: -b\n", "a: b:\n", "a: b: c\n", "a: :b\n", "a: 2024-05-01\n",
	"a: 0x10\n", "a: 1_0\n", "a: .5\n", "a: yes\n", "a: True\n", "a: \"\"\n", "a: ''\n", "a:  b\n", "a: b \n",
	"a:\n  - - b\n", "a:\n  -\n", "a:\n  - \n", "a:\n  -  b\n", "a:\n  - b:\n      - c\n", "a:\n  - b:\n    c: d\n",
	"%YAML 1.2\n---\na: b\n", "a: b\n  # c\n", "a: 'x' y\n", "a: \"x\" y\n", "a: \"x\\\n  y\"\n", "a: é\n", "k-1: v\nk.2: v\nk/3: v\n",
	"-k: v\n", ".k: v\n", "1: v\n", "true: v\n", "a:\n  b:\n    c:\n      d: e\n",
}

// TestFastParseRecordMatchesYAMLv3: whenever the fast parser accepts a
// document, it returns the node tree yaml.v3 returns.
func TestFastParseRecordMatchesYAMLv3(t *testing.T) {
	var docs [][]byte
	for _, y := range trickyYAML {
		docs = append(docs, []byte(y))
	}
	for _, data := range fastSamples(t) {
		y, err := jsonToYAMLv3(data)
		if err == nil {
			docs = append(docs, y)
		}
	}
	accepted := 0
	for _, doc := range docs {
		got, ok := fastParseRecord(doc, new([]yaml.Node))
		if !ok {
			continue
		}
		accepted++
		var n yaml.Node
		err := yaml.Unmarshal(doc, &n)
		if err != nil || n.Kind != yaml.DocumentNode || len(n.Content) != 1 {
			t.Fatalf("fast parser accepted what yaml.v3 refuses (%v):\n%s", err, doc)
		}
		if d := nodeDiff(n.Content[0], got, ""); d != "" {
			t.Fatalf("fast parser differs: %s\n%s", d, doc)
		}
	}
	if accepted < len(docs)/4 {
		t.Errorf("fast parser accepted only %d of %d documents", accepted, len(docs))
	}
	b, err := MarshalRecord(sampleRecordPlain())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fastParseRecord(b, new([]yaml.Node)); !ok {
		t.Errorf("fast parser refused a typical record:\n%s", b)
	}
}

// TestRecordFastPathRoundTrip: records decoded through the fast parser
// equal those decoded through yaml.v3, errors included.
func TestRecordFastPathRoundTrip(t *testing.T) {
	rec := sampleRecordPlain()
	rec.LastOperation.StartTime = metav1.NewTime(t0.Add(time.Hour))
	b, err := MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalRecord(pathOf(t, rec), b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := MarshalRecord(back)
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip differs:\n%s\n---\n%s", b, b2)
	}
	// An unknown field and a duplicate key still fail with file:line.
	bad := append(append([]byte(nil), b...), "bogus: 1\n"...)
	if _, err := UnmarshalRecord(pathOf(t, rec), bad); err == nil || !strings.Contains(err.Error(), "unknown field \"bogus\"") {
		t.Errorf("unknown field: %v", err)
	}
	dup := append(append([]byte(nil), b...), "phase: Ready\n"...)
	if _, err := UnmarshalRecord(pathOf(t, rec), dup); err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Errorf("duplicate key: %v", err)
	}
}

func BenchmarkMarshalRecord(b *testing.B) {
	rec := sampleRecordPlain()
	for b.Loop() {
		if _, err := MarshalRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalRecord(b *testing.B) {
	data, err := MarshalRecord(sampleRecordPlain())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := UnmarshalRecord(".osbgit/status/default/serviceinstance/db.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFastDecodeMatchesConverter: records (and near-records with wrong
// types, unknown or miscased fields, duplicates) decode to the same value
// or the same error with and without the fast paths.
func TestFastDecodeMatchesConverter(t *testing.T) {
	var docs [][]byte
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		rec := sampleRecordPlain()
		s := func() string { return trickyStrings[r.IntN(len(trickyStrings))] }
		switch i % 6 {
		case 0:
			rec.ExternalID, rec.Phase = s(), Phase(s())
		case 1:
			rec.Conditions[0].Message, rec.Conditions[0].Reason = s(), s()
		case 2:
			rec.SecretRef.Keys = []string{s(), s()}
		case 3:
			rec.DashboardURL, rec.ObservedRevision = s(), s()
		case 4:
			rec.Error = &RecordError{Message: s()}
		case 5:
			rec.UpdateRequests = r.Int64()
		}
		b, err := MarshalRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	base, _ := MarshalRecord(sampleRecordPlain())
	for _, edit := range []struct{ from, to string }{
		{"phase: Updating", "phase: 12"}, {"phase: Updating", "Phase: Updating"}, {"phase: Updating", "PHASE: Updating"},
		{"phase: Updating", "phase: true"}, {"phase: Updating", "phase: null"}, {"phase: Updating", "phase: ~"},
		{"provisioned: true", "provisioned: \"true\""}, {"provisioned: true", "provisioned: yes"}, {"provisioned: true", "provisioned: True"},
		{"updateRequests: 1", "updateRequests: 0x10"}, {"updateRequests: 1", "updateRequests: 1.5"}, {"updateRequests: 1", "updateRequests: 99999999999999999999"},
		{"updateRequests: 1", "updateRequests: \"1\""}, {"startTime: \"2024-05-01T12:00:00Z\"", "startTime: 2024-05-01T12:00:00Z"},
		{"startTime: \"2024-05-01T12:00:00Z\"", "startTime: \"yesterday\""}, {"startTime: \"2024-05-01T12:00:00Z\"", "startTime: {}"},
		{"ref:\n", "ref: x\nold:\n"}, {"kind: StatusRecord", "kind: StatusRecord\nbogus: 1"}, {"kind: StatusRecord", "kind: StatusRecord\nphase: Ready"},
		{"conditions:\n", "conditions: []\nx:\n"}, {"keys:\n", "keys: {}\nx:\n"}, {"  name: db\n", "  name: [db]\n"},
		{"apiVersion: osbgit.dev/v1alpha1", "apiVersion: v1"}, {"kind: StatusRecord", "kind: Other"},
		{"specHash: \"123\"", "specHash: 123"}, {"specHash: \"123\"", "specHash: &a x\nobservedRevision: *a"},
	} {
		if !bytes.Contains(base, []byte(edit.from)) {
			t.Fatalf("sample lacks %q:\n%s", edit.from, base)
		}
		docs = append(docs, bytes.Replace(base, []byte(edit.from), []byte(edit.to), 1))
	}
	fastUsed, directUsed := 0, 0
	for _, doc := range docs {
		if !fastAgreesWithGeneral(t, doc) {
			continue
		}
		if root, ok := fastParseRecord(doc, new([]yaml.Node)); ok && fastDecodeInto(root, &StatusRecord{}) {
			fastUsed++
			// The direct decoder, when it takes a record, gives what
			// fastDecodeInto gives (times included, to the location).
			direct, viaJSON := &StatusRecord{}, &StatusRecord{}
			fastDecodeInto(root, viaJSON)
			if decodeStatusDirect(root, direct) {
				directUsed++
				if !reflect.DeepEqual(direct, viaJSON) {
					t.Fatalf("direct decoding differs:\n%#v\n%#v\n%s", direct, viaJSON, doc)
				}
			}
		}
	}
	if fastUsed < len(docs)/2 || directUsed < fastUsed*9/10 {
		t.Errorf("fast path used for only %d of %d records, direct decoding for %d", fastUsed, len(docs), directUsed)
	}
}

// fastAgreesWithGeneral fails t unless decoding doc with the fast paths
// gives the record or the error the general path gives; it reports whether
// doc is a valid record.
func fastAgreesWithGeneral(t *testing.T, doc []byte) bool {
	t.Helper()
	const file = ".osbgit/status/default/serviceinstance/db.yaml"
	want, werr := unmarshalRecord(file, doc, false)
	got, gerr := unmarshalRecord(file, doc, true)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("errors differ: general %v, fast %v\n%s", werr, gerr, doc)
	}
	if werr != nil {
		return false
	}
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	if !bytes.Equal(wb, gb) {
		t.Fatalf("records differ:\n%s\n%s\n%s", wb, gb, doc)
	}
	return true
}

// TestDirectDecoderTakesEveryField guards the direct decoder against a
// record field it does not know, which silently sends every record down
// the general path (a new brokerURL field once cost the no-op pass 20% of
// its CPU): a record with every field set must decode directly.
func TestDirectDecoderTakesEveryField(t *testing.T) {
	rec := sampleRecordPlain()
	rec.PredecessorExternalID, rec.BrokerURL, rec.DashboardURL = "pred-1", "https://broker.example.com", "https://dash.example.com/db"
	rec.InstanceName, rec.InstanceExternalID, rec.DeletionPolicy = "db", "inst-1", DeletionPolicyRetain
	rec.Error = &RecordError{Message: "bad"}
	rec.InProgress = &Properties{PlanExternalName: "large", UpdateRequests: 2}
	v := reflect.ValueOf(rec).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Type().Field(i); f.IsExported() && v.Field(i).IsZero() {
			t.Fatalf("sample leaves field %s unset: set it here", f.Name)
		}
	}
	doc, err := MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	root, ok := fastParseRecord(doc, new([]yaml.Node))
	if !ok || !decodeStatusDirect(root, &StatusRecord{}) {
		t.Fatalf("a record with every field is not decoded directly:\n%s", doc)
	}
}
