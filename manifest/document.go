package manifest

import (
	"bytes"
	"errors"
	"io"

	yaml "go.yaml.in/yaml/v3"
)

// FieldLines gives the line of each field path of a document DecodeDocument
// decoded, so the caller's own checks report file:line too.
type FieldLines struct{ f *fieldLines }

// Line returns the line of path ("paths[1].namespaces[0]"), else of its
// nearest enclosing field, else 0.
func (l FieldLines) Line(path string) int {
	if l.f == nil {
		return 0
	}
	return l.f.lookup(path)
}

// Has reports whether the document set path.
func (l FieldLines) Has(path string) bool { return l.f != nil && l.f.has(path) }

// DecodeDocument decodes file, a single YAML document of apiVersion and
// kind, into target (a pointer to a struct with json tags) the way
// osbgit.yaml is decoded: unknown fields (with a "did you mean"), wrong
// types and bad values are errors at file:line with their field path, and
// size, depth and alias limits hold against hostile input. ok is false
// when target could not be decoded (the diagnostics say why) or data is
// empty (no diagnostic: the caller decides what an empty file means).
// It never panics.
func DecodeDocument(file string, data []byte, apiVersion string, kind Kind, target any) (lines FieldLines, ok bool, diags Diagnostics) {
	sink := &diagSink{file: file}
	fl, ok := decodeSingleDocument(sink, data, apiVersion, kind, target)
	diags = sink.out
	diags.Sort()
	return FieldLines{fl}, ok, diags
}

// decodeSingleDocument is DecodeDocument reporting to sink; it returns the
// field lines of a decoded document.
func decodeSingleDocument(sink *diagSink, data []byte, apiVersion string, kind Kind, target any) (lines *fieldLines, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			lines, ok = nil, false
			sink.errorf(0, "", "internal error decoding %s (please report): %v", kind, p)
		}
	}()
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, false
	}
	if len(data) > MaxFileSize {
		sink.errorf(0, "", "file larger than %d bytes", MaxFileSize)
		return nil, false
	}
	if l, bad := invalidUTF8Line(data); bad {
		sink.errorf(l, "", "file is not valid UTF-8")
		return nil, false
	}
	var root *yaml.Node
	if !eachDocument(sink, data, func(n *yaml.Node) {
		if root != nil {
			sink.errorf(n.Line, "", "%s must hold a single %s document", sink.file, kind)
			return
		}
		root = n
	}) || root == nil {
		return nil, false
	}
	if root.Kind != yaml.MappingNode {
		sink.errorf(root.Line, "", "expected a %s mapping, got %s", kind, nodeDesc(root))
		return nil, false
	}
	if av, k := typeOf(root); av != apiVersion || k != string(kind) {
		sink.errorf(root.Line, "", "want apiVersion %s and kind %s, got %q and %q", apiVersion, kind, av, k)
		return nil, false
	}
	lines = &fieldLines{}
	c := &converter{sink: sink, lines: lines}
	if !c.decodeInto(root, target) {
		return nil, false
	}
	return lines, true
}

// eachDocument calls fn with the root node of each non-empty YAML document
// of data, in order. A syntax error is reported to sink and ends the walk
// (false): the documents before it were given to fn.
func eachDocument(sink *diagSink, data []byte, fn func(root *yaml.Node)) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			line, msg := splitYAMLError(err)
			sink.errorf(line, "", "invalid YAML: %s", msg)
			return false
		}
		if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
			fn(doc.Content[0])
		}
	}
}
