package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
)

// TestRecordsWrittenBeforeVersioning: records already in users'
// repositories keep loading as they did. testdata/records/v0 holds files
// written by osbgit before records carried a format version (MarshalRecord
// at commit b8dfa22): status records of every kind and phase, picked from
// those the reconciler's tests write, and three built for the awkward
// cases (YAML 1.1 words such as yes, numbers and dates as strings,
// multi-line text, a redacted catalog of a namespaced broker). Beside each
// <name>.yaml, <name>.json is the record the code of that commit decoded
// from it, as encoding/json writes it (indented: JSON blobs such as
// catalog metadata are compared without their insignificant space). Each file must decode to that same
// Go value, its catalog must still hash to the hash it records, and it must
// survive a rewrite by today's encoder. Never regenerate these files: they
// stand for what osbgit wrote then.
func TestRecordsWrittenBeforeVersioning(t *testing.T) {
	files, err := filepath.Glob("testdata/records/v0/*.yaml")
	if err != nil || len(files) < 20 {
		t.Fatalf("want the v0 records, got %d (%v)", len(files), err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wantJSON, err := os.ReadFile(strings.TrimSuffix(file, ".yaml") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalRecord(file, data)
			if err != nil {
				t.Fatal(err)
			}
			want := emptyLike(got)
			dec := json.NewDecoder(bytes.NewReader(wantJSON))
			dec.DisallowUnknownFields()
			if err := dec.Decode(want); err != nil {
				t.Fatal(err)
			}
			// Upgrading a record of format version 0 only sets its
			// version.
			setFormatVersion(want, RecordFormatVersion)
			if d := cmp.Diff(want, got, compactRaw); d != "" {
				t.Errorf("decoded record differs from what osbgit decoded before (-before +now):\n%s", d)
			}
			if cr, ok := got.(*CatalogRecord); ok {
				if h, err := CatalogHash(cr.Catalog); err != nil || h != cr.Hash {
					t.Errorf("catalog hashes to %s (%v), the record says %s", h, err, cr.Hash)
				}
			}
			out, err := MarshalRecord(got)
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalRecord(file, out)
			if err != nil {
				t.Fatalf("rewritten record does not decode: %v\n%s", err, out)
			}
			if d := cmp.Diff(got, back, compactRaw); d != "" {
				t.Errorf("rewritten record decodes differently (-first +rewritten):\n%s\n%s", d, out)
			}
		})
	}
}

// emptyLike returns a new empty record of r's type.
func emptyLike(r Record) Record {
	if _, ok := r.(*CatalogRecord); ok {
		return &CatalogRecord{}
	}
	return &StatusRecord{}
}

// compactRaw compares JSON blobs without their insignificant space (the
// .json files are indented); every byte of a catalog's blobs is checked by
// its hash.
var compactRaw = cmp.Transformer("compact", func(r json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, r); err != nil {
		return "invalid JSON: " + string(r)
	}
	return b.String()
})

func setFormatVersion(r Record, v int) {
	switch r := r.(type) {
	case *StatusRecord:
		r.FormatVersion = v
	case *CatalogRecord:
		r.FormatVersion = v
	}
}

// TestRecordUpgrades: the format version machinery. The table has one
// entry per version; a record's version is read, checked and upgraded
// from, one step at a time, before it is decoded; a newer or malformed
// version is refused with the file and line; and MarshalRecord writes the
// current version. A two-step table stands for a later issue's bump: its
// version 1 → 2 step renames a field, as an upgrade would.
func TestRecordUpgrades(t *testing.T) {
	if len(recordUpgrades) != RecordFormatVersion {
		t.Fatalf("%d upgrades for format version %d: each version needs the upgrade from the one before", len(recordUpgrades), RecordFormatVersion)
	}
	rec := NewStatusRecord(Ref{Kind: KindServiceInstance, Namespace: "apps", Name: "db"})
	rec.Phase = PhaseReady
	out, err := MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"apiVersion\": \"osbgit.dev/v1alpha1\",\n  \"kind\": \"StatusRecord\",\n  \"formatVersion\": 1,\n  \"ref\": {\n"; !strings.HasPrefix(string(out), want) {
		t.Errorf("record starts\n%s\nwant\n%s", out, want)
	}

	const file = ".osbgit/status/apps/serviceinstance/db.yaml"
	head := "apiVersion: osbgit.dev/v1alpha1\nkind: StatusRecord\n"
	body := "ref:\n  kind: ServiceInstance\n  namespace: apps\n  name: db\n"
	renamed := []func(*yaml.Node) error{
		recordUpgrades[0],
		func(root *yaml.Node) error { // 1 → 2: "stage" became "phase"
			for i := 0; i+1 < len(root.Content); i += 2 {
				if root.Content[i].Value == "stage" {
					root.Content[i].Value = "phase"
				}
			}
			return nil
		},
	}
	tests := []struct {
		name, doc string
		upgrades  []func(*yaml.Node) error
		phase     Phase
		err       string
	}{
		{"version 0 (no field)", head + body + "phase: Ready\n", recordUpgrades, PhaseReady, ""},
		{"version 1", head + "formatVersion: 1\n" + body + "phase: Ready\n", recordUpgrades, PhaseReady, ""},
		{"newer version", head + "formatVersion: 2\n" + body, recordUpgrades, "",
			file + ":3: formatVersion: 2 is newer than this osbgit reads (1): a newer osbgit wrote this record; upgrade osbgit"},
		{"negative version", head + "formatVersion: -1\n" + body, recordUpgrades, "", file + ":3: formatVersion: want a record format version (0 to 1), got \"-1\""},
		{"version as a string", head + "formatVersion: \"1\"\n" + body, recordUpgrades, "", file + ":3: formatVersion: want a record format version"},
		{"version not an integer", head + "formatVersion: 1.0\n" + body, recordUpgrades, "", file + ":3: formatVersion: want a record format version"},
		{"upgraded from 1 to 2", head + "formatVersion: 1\n" + body + "stage: Ready\n", renamed, PhaseReady, ""},
		{"upgraded from 0 to 2", head + body + "stage: Ready\n", renamed, PhaseReady, ""},
		{"version 2 is not upgraded", head + "formatVersion: 2\n" + body + "phase: Ready\n", renamed, PhaseReady, ""},
		{"version 2 has no stage", head + "formatVersion: 2\n" + body + "stage: Ready\n", renamed, "", file + ":8: stage: unknown field \"stage\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unmarshalRecord(file, []byte(tt.doc), tt.upgrades)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sr := got.(*StatusRecord)
			if sr.Phase != tt.phase || sr.FormatVersion != RecordFormatVersion {
				t.Errorf("phase %q, format version %d; want %q, %d", sr.Phase, sr.FormatVersion, tt.phase, RecordFormatVersion)
			}
		})
	}
}

// TestDecodedRecordsMarshalConcurrently: a decoded record is already in
// the form MarshalRecord writes, so normalizing it writes nothing and
// records shared between passes (the reconciler's cache) can be encoded
// from several goroutines; the race detector fails this test otherwise.
func TestDecodedRecordsMarshalConcurrently(t *testing.T) {
	files, _ := filepath.Glob("testdata/records/v0/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := UnmarshalRecord(file, data)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		outs := make([][]byte, 2)
		for i := range outs {
			wg.Go(func() {
				b, err := RecordJSON(rec)
				if err != nil {
					t.Error(err)
				}
				outs[i] = b
			})
		}
		wg.Wait()
		if !bytes.Equal(outs[0], outs[1]) {
			t.Errorf("%s: encodings differ", file)
		}
	}
}
