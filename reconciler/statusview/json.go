package statusview

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/osbgit/osbgit/manifest"
)

// JSON writes v (a *View or a *Detail) as indented JSON, the schema of
// doc.go. Strings hold what the records hold, with every character Safe
// escapes written as a JSON escape (encoding/json escapes C0 but not C1
// or the bidirectional controls), so the JSON is safe on a terminal too.
func JSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write status as JSON: %w", err)
	}
	_, err = w.Write(append(escapeJSON(b), '\n'))
	return err
}

// escapeJSON writes the C1 and bidirectional controls of encoded JSON as
// \u escapes. Outside strings JSON holds only ASCII, so every such rune is
// inside a string, where the escape means the same rune.
func escapeJSON(b []byte) []byte {
	unsafe := func(r rune) bool { return r >= 0x80 && unsafeRune(r) }
	if bytes.IndexFunc(b, unsafe) < 0 {
		return b
	}
	var out bytes.Buffer
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if unsafe(r) {
			fmt.Fprintf(&out, `\u%04x`, r)
		} else {
			out.Write(b[i : i+size])
		}
		i += size
	}
	return out.Bytes()
}

// YAML writes v (a *View or a *Detail) as block YAML with the same fields
// as JSON, in the same order.
func YAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("write status as YAML: %w", err)
	}
	y, err := manifest.JSONToYAML(b)
	if err != nil {
		return fmt.Errorf("write status as YAML: %w", err)
	}
	_, err = w.Write(y)
	return err
}
