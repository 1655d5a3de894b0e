package manifest

import (
	"fmt"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// RecordFormatVersion is the format version of the records this osbgit
// writes, in their formatVersion field. Records written before records
// had one (osbgit before issue 17) lack the field and are version 0.
//
// The version is a field of its own, not a new apiVersion: apiVersion
// osbgit.dev/v1alpha1 is shared with the Config kind that people write,
// while the record format is osbgit's own and changes on osbgit's
// schedule; a plain integer also orders versions without parsing.
//
// How a later change bumps it. A change that alters what a record holds
// or means — renames, removes or re-encodes a field, changes a field's
// meaning, or adds one an older osbgit must not ignore — must:
//
//  1. append to recordUpgrades a function that rewrites a record of the
//     previous version into the new one, and raise RecordFormatVersion by
//     one (TestRecordUpgrades checks they agree);
//  2. check in testdata/records/v<previous version>/ records written by
//     osbgit before the change, each beside the JSON of the value it must
//     load to, as testdata/records/v0 is for version 0, and add a test
//     that they load to it (see TestRecordsWrittenBeforeVersioning).
//
// UnmarshalRecord applies the upgrades from a record's version up to
// RecordFormatVersion, so osbgit reads every record any earlier osbgit
// wrote; a pass writes a record back only when its content changes, and
// then in the current format. A record of a later version than this
// osbgit knows (written by a newer osbgit) is an error: misreading it
// could make osbgit forget or repeat a broker operation, so the pass
// stops until osbgit is upgraded.
const RecordFormatVersion = 1

// recordUpgrades[v] rewrites the top-level mapping of a record of format
// version v, as parsed, into one of version v+1, before it is decoded
// into its Go type; it works on the YAML tree so that a field an upgrade
// renames or drops never has to exist in the Go types, and line numbers
// survive for messages.
var recordUpgrades = []func(root *yaml.Node) error{
	// 0 → 1: version 1 only adds the formatVersion field.
	func(*yaml.Node) error { return nil },
}

// formatVersionOf reads the formatVersion of a record's top-level mapping
// (0 when absent) and refuses a version newer than latest.
func formatVersionOf(file string, root *yaml.Node, latest int) (int, error) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value != "formatVersion" {
			continue
		}
		n, err := strconv.Atoi(v.Value)
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || err != nil || n < 0 {
			return 0, fmt.Errorf("%s:%d: formatVersion: want a record format version (0 to %d), got %q", file, v.Line, latest, v.Value)
		}
		if n > latest {
			return 0, fmt.Errorf("%s:%d: formatVersion: %d is newer than this osbgit reads (%d): a newer osbgit wrote this record; upgrade osbgit", file, v.Line, n, latest)
		}
		return n, nil
	}
	return 0, nil
}

// upgradeRecord applies upgrades[from:] to root, in order.
func upgradeRecord(file string, root *yaml.Node, from int, upgrades []func(*yaml.Node) error) error {
	for v := from; v < len(upgrades); v++ {
		if err := upgrades[v](root); err != nil {
			return fmt.Errorf("%s: upgrade from record format version %d: %w", file, v, err)
		}
	}
	return nil
}
