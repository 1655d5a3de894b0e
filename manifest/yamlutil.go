package manifest

import (
	"regexp"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// typeOf returns the apiVersion and kind scalars of a document's top-level
// mapping ("" when absent or not strings).
func typeOf(root *yaml.Node) (apiVersion, kind string) {
	if root == nil || root.Kind != yaml.MappingNode {
		return "", ""
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			continue
		}
		switch k.Value {
		case "apiVersion":
			if apiVersion == "" {
				apiVersion = v.Value
			}
		case "kind":
			if kind == "" {
				kind = v.Value
			}
		}
	}
	return apiVersion, kind
}

// invalidUTF8Line returns the 1-based line of the first invalid UTF-8 byte.
func invalidUTF8Line(data []byte) (int, bool) {
	if utf8.Valid(data) {
		return 0, false
	}
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return line, true
		}
		if data[i] == '\n' {
			line++
		}
		i += size
	}
	return line, true
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlErrorText renders a yaml.v3 error as "line: message" (or " message"
// when it has no line) so it can follow "file:".
func yamlErrorText(err error) string {
	msg := err.Error()
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		return m[1] + ": " + m[2]
	}
	return " " + strings.TrimPrefix(msg, "yaml: ")
}
