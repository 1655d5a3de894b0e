package manifest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writtenStatusRecords are the status records of testdata/records/v0 as
// this osbgit writes them: decoded, upgraded and marshalled again.
func writtenStatusRecords(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/records/v0/status-*.yaml")
	if err != nil || len(files) < 10 {
		t.Fatalf("want the v0 status records, got %d (%v)", len(files), err)
	}
	out := map[string][]byte{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		r, err := UnmarshalRecord(file, data)
		if err != nil {
			t.Fatal(err)
		}
		written, err := MarshalRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(file), ".yaml")] = written
	}
	return out
}

// TestWrittenStatusRecordsDecodeAsTheYAMLPathDoes: a status record as
// osbgit writes it takes encoding/json's path, and decodes to exactly what
// the YAML path makes of the same bytes.
func TestWrittenStatusRecordsDecodeAsTheYAMLPathDoes(t *testing.T) {
	for name, data := range writtenStatusRecords(t) {
		t.Run(name, func(t *testing.T) {
			fast, ok := decodeWrittenStatusRecord(data)
			if !ok {
				t.Fatalf("a record as MarshalRecord writes it did not take the JSON path:\n%s", data)
			}
			slow, err := unmarshalRecordYAML(name, data, recordUpgrades)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(slow, Record(fast), compactRaw); d != "" {
				t.Errorf("the JSON path decodes differently (-yaml +json):\n%s", d)
			}
		})
	}
}

// TestUnwrittenRecordsTakeTheYAMLPath: a file that is not byte for byte
// what osbgit writes — a key in another case or given twice, an unknown
// field, an older format version, YAML, a second document — never takes
// the JSON path (which would accept some of them silently), so it is
// decoded or refused exactly as before, with file, line and field.
func TestUnwrittenRecordsTakeTheYAMLPath(t *testing.T) {
	base := writtenStatusRecords(t)["status-servicebinding-ready-rotation"]
	edit := func(old, new string) []byte {
		if !bytes.Contains(base, []byte(old)) {
			t.Fatalf("fixture lacks %q", old)
		}
		return bytes.Replace(base, []byte(old), []byte(new), 1)
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		wantErr string // empty: decodes, to what the YAML path makes of it
	}{
		{"key in another case", edit(`"phase"`, `"Phase"`), `unknown field "Phase"`},
		{"key given twice", edit(`"phase": "Ready",`, `"phase": "Ready", "phase": "Failed",`), `duplicate key "phase"`},
		{"unknown field", edit(`"phase"`, `"stage": "x", "phase"`), `unknown field "stage"`},
		{"format version 0", edit("  \"formatVersion\": 1,\n", ""), ""},
		{"newer format version", edit(`"formatVersion": 1`, `"formatVersion": 2`), "newer than this osbgit reads"},
		{"second document", append(append([]byte{}, base...), []byte("---\n{}\n")...), "exactly one YAML document"},
		{"not normalized", edit(`"type": "Failed"`, `"type": "Failed" `), ""},
		{"a field's type", edit(`"provisioned": true`, `"provisioned": "yes"`), "provisioned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := decodeWrittenStatusRecord(tc.data); ok {
				t.Fatal("took the JSON path")
			}
			got, err := UnmarshalRecord("r.yaml", tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "r.yaml:") {
					t.Fatalf("got error %v, want one naming r.yaml and containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := unmarshalRecordYAML("r.yaml", tc.data, recordUpgrades)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got, compactRaw); d != "" {
				t.Errorf("(-yaml +got):\n%s", d)
			}
		})
	}
}

// FuzzWrittenStatusRecord: whatever bytes take the JSON path, the YAML
// path accepts too and decodes to the same record.
func FuzzWrittenStatusRecord(f *testing.F) {
	for _, data := range writtenStatusRecords(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeWrittenStatusRecord(data)
		if !ok {
			return
		}
		slow, err := unmarshalRecordYAML("r.yaml", data, recordUpgrades)
		if err != nil {
			t.Fatalf("the JSON path accepted what the YAML path refuses (%v):\n%s", err, data)
		}
		if d := cmp.Diff(slow, Record(fast), compactRaw); d != "" {
			t.Errorf("the JSON path decodes differently (-yaml +json):\n%s", d)
		}
	})
}

// BenchmarkRecordDecode compares the two paths on one record as osbgit
// writes it (the figures decodeWrittenStatusRecord's comment quotes).
func BenchmarkRecordDecode(b *testing.B) {
	data := writtenStatusRecords(b)["status-servicebinding-ready-rotation"]
	b.Run("written-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := UnmarshalRecord("r.yaml", data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("yaml", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := unmarshalRecordYAML("r.yaml", data, recordUpgrades); err != nil {
				b.Fatal(err)
			}
		}
	})
}
