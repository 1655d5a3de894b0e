package manifest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unique"

	yaml "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// How line numbers are kept: sigs.k8s.io/yaml converts YAML to JSON and loses
// positions, so documents are parsed into go.yaml.in/yaml/v3 nodes (which
// carry line numbers) and walked against the target Go type's JSON field
// names. The walk reports unknown fields, type mismatches and bad values at
// the node's line, records the line of every field path in a fieldLines
// table (used later by validation, e.g. for spec.parameters.size found by a
// JSON Schema), and produces a JSON-compatible value that encoding/json then
// decodes into the typed struct (numbers as json.Number, so they stay exact).

// Limits against hostile input.
const (
	// MaxFileSize is the largest manifest or record file decoded.
	MaxFileSize = 8 << 20
	// MaxDepth is the deepest nesting of mappings/sequences in a document.
	MaxDepth = 64
	// MaxNodes caps the YAML nodes visited per document (aliases expanded),
	// which stops "billion laughs" style alias bombs.
	MaxNodes = 200000
	// MaxRecordSize and maxRecordNodes are the larger limits for records,
	// which osbgit writes itself and which may hold big broker catalogs.
	MaxRecordSize  = 64 << 20
	maxRecordNodes = 8000000
)

// fieldLines maps field paths to 1-based lines. It is filled in a map while
// decoding, then frozen: every object of a pass keeps one for its
// diagnostics, and documents written from one template have the same
// paths, so a frozen table keeps its sorted paths as one string shared by
// all documents of the same shape (a unique.Handle: the handle, not the
// string it gives, keeps the shared copy in unique's map, so documents
// decoded after a garbage collection still find it) and only its lines of
// its own. 20,000 small maps held a tenth of a no-op pass's live heap, a
// sorted slice of (path, line) pairs per object 8% of a long-running
// process's at 200,000 resources (make bench, the scale line).
type fieldLines struct {
	m map[string]int
	// paths is the sorted paths, each followed by pathEnd (the zero
	// Handle when the table is in m or sorted); lines[i] is the line of
	// the i-th.
	paths unique.Handle[string]
	lines []int32
	// sorted holds the paths of a large table (more than
	// linearLookupMax), searched in O(log n).
	sorted []string
}

// pathEnd ends each path of a frozen table. A key may hold it (a
// double-quoted "\0"): a table with such a path is kept as a slice.
const pathEnd = "\x00"

// linearLookupMax is the size up to which a frozen table is searched by
// scanning its paths: ordinary manifests have a few dozen; a hostile one
// with many thousands, each in a diagnostic, must not make lookups
// quadratic.
const linearLookupMax = 256

func (f *fieldLines) set(path string, line int) {
	if f.m == nil {
		f.m = map[string]int{}
	}
	if _, ok := f.m[path]; !ok {
		f.m[path] = line
	}
}

// freeze moves the map into the frozen form; set must not be called after.
func (f *fieldLines) freeze() *fieldLines {
	paths := make([]string, 0, len(f.m))
	for p := range f.m {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	f.lines = make([]int32, len(paths))
	for i, p := range paths {
		f.lines[i] = int32(min(f.m[p], math.MaxInt32))
	}
	if len(paths) > linearLookupMax || slices.ContainsFunc(paths, func(p string) bool { return strings.Contains(p, pathEnd) }) {
		f.sorted = paths
	} else {
		var b strings.Builder
		for _, p := range paths {
			b.WriteString(p)
			b.WriteString(pathEnd)
		}
		f.paths = unique.Make(b.String())
	}
	f.m = nil
	return f
}

func (f *fieldLines) get(path string) (int, bool) {
	if f.m != nil {
		l, ok := f.m[path]
		return l, ok
	}
	if f.sorted != nil {
		if i, ok := slices.BinarySearch(f.sorted, path); ok {
			return int(f.lines[i]), true
		}
		return 0, false
	}
	if f.paths == (unique.Handle[string]{}) {
		return 0, false
	}
	rest := f.paths.Value()
	for i := 0; rest != ""; i++ {
		p, after, _ := strings.Cut(rest, pathEnd)
		if p == path {
			return int(f.lines[i]), true
		}
		rest = after
	}
	return 0, false
}

// has reports whether path was set.
func (f *fieldLines) has(path string) bool {
	_, ok := f.get(path)
	return ok
}

// lookup returns the line of path, or of its nearest ancestor, or 0.
func (f *fieldLines) lookup(path string) int {
	for {
		if l, ok := f.get(path); ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

// parentPath strips the last segment: "a.b[2]" -> "a.b", "a.b" -> "a",
// `a["x.y"]` -> "a".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		// find the matching '[' outside quotes: scan from the end.
		if i := strings.LastIndex(p, "[\""); i >= 0 && strings.HasSuffix(p, "\"]") {
			return p[:i]
		}
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

var simpleKey = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$-]*$`)

// joinField appends a mapping key to a field path: identifiers with a dot,
// anything else quoted in brackets (spec.parameters["a.b"]).
func joinField(path, key string) string {
	if !simpleKey.MatchString(key) {
		return internPath(path + "[" + strconv.Quote(key) + "]")
	}
	if path == "" {
		return internPath(key)
	}
	return internPath(path + "." + key)
}

// joinIndex appends a sequence index to a field path.
func joinIndex(path string, i int) string { return internPath(path + "[" + strconv.Itoa(i) + "]") }

// internPath keeps one copy of each field path: every object of a pass
// keeps its field lines, nearly all under the same few paths
// (metadata.name, spec.parameters.size ...), and a copy per object was a
// tenth of the no-op pass's live heap (make bench, noop-pass peak RSS).
func internPath(p string) string { return unique.Make(p).Value() }

// converter walks yaml nodes against Go types (see the comment at the top).
type converter struct {
	sink    *diagSink
	lines   *fieldLines
	ignore  map[reflect.Type]map[string]bool
	nodes   int
	aborted bool
	// maxNodes overrides MaxNodes when set.
	maxNodes int
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	rawMessageType      = reflect.TypeFor[json.RawMessage]()
	durationType        = reflect.TypeFor[metav1.Duration]()
	timeType            = reflect.TypeFor[metav1.Time]()
	jsonNumberRe        = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
)

func nodeDesc(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		}
		return "a string"
	}
	return "an unsupported node"
}

// enter resolves aliases and enforces the depth and node budgets. It returns
// nil when the walk must stop.
func (c *converter) enter(n *yaml.Node, path string, depth int) *yaml.Node {
	if c.aborted {
		return nil
	}
	for hops := 0; n != nil && n.Kind == yaml.AliasNode; hops++ {
		if hops > MaxDepth {
			c.sink.errorf(n.Line, path, "alias chain too long")
			c.aborted = true
			return nil
		}
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	c.nodes++
	limit := MaxNodes
	if c.maxNodes > 0 {
		limit = c.maxNodes
	}
	if c.nodes > limit {
		c.sink.errorf(n.Line, shortPath(path), "document too large: more than %d YAML nodes (aliases expanded)", limit)
		c.aborted = true
		return nil
	}
	if depth > MaxDepth {
		c.sink.errorf(n.Line, shortPath(path), "nested more than %d levels deep", MaxDepth)
		c.aborted = true
		return nil
	}
	if c.lines != nil {
		c.lines.set(path, n.Line)
	}
	return n
}

// shortPath keeps field paths in messages readable for absurdly deep input.
func shortPath(p string) string {
	if len(p) > 80 {
		return p[:80] + "…"
	}
	return p
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// value converts n for Go type t. ok is false when an error was reported for
// n itself (the caller then leaves the field out).
func (c *converter) value(n *yaml.Node, t reflect.Type, path string, depth int) (any, bool) {
	n = c.enter(n, path, depth)
	if n == nil {
		return nil, false
	}
	if t.Kind() == reflect.Pointer {
		if isNull(n) {
			return nil, true
		}
		t = t.Elem()
	}
	if t == rawMessageType || t.Kind() == reflect.Interface {
		return c.genericAt(n, path, depth)
	}
	switch t {
	case durationType:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			c.sink.errorf(n.Line, path, "expected a duration such as \"15m\" or \"1h30m\", got %s", nodeDesc(n))
			return nil, false
		}
	case timeType:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!timestamp" && n.ShortTag() != "!!null") {
			c.sink.errorf(n.Line, path, "expected an RFC 3339 time such as \"2024-05-01T12:00:00Z\", got %s", nodeDesc(n))
			return nil, false
		}
	}
	if t != rawMessageType && reflect.PointerTo(t).Implements(jsonUnmarshalerType) {
		v, ok := c.genericAt(n, path, depth)
		if !ok {
			return nil, false
		}
		b, err := json.Marshal(v)
		if err == nil {
			err = json.Unmarshal(b, reflect.New(t).Interface())
		}
		if err != nil {
			c.sink.errorf(n.Line, path, "invalid value: %s", cleanJSONError(err))
			return nil, false
		}
		return v, true
	}
	switch t.Kind() {
	case reflect.Struct:
		return c.structValue(n, t, path, depth)
	case reflect.Map:
		if isNull(n) {
			return nil, true
		}
		if n.Kind != yaml.MappingNode {
			c.sink.errorf(n.Line, path, "expected a mapping (JSON object), got %s", nodeDesc(n))
			return nil, false
		}
		if t.Key().Kind() != reflect.String {
			c.sink.errorf(n.Line, path, "internal error: unsupported map key type %s", t.Key())
			return nil, false
		}
		out := map[string]any{}
		c.eachKey(n, path, func(key string, kn, vn *yaml.Node, p string) {
			if v, ok := c.value(vn, t.Elem(), p, depth+1); ok {
				out[key] = v
			}
		})
		return out, true
	case reflect.Slice:
		if isNull(n) {
			return nil, true
		}
		if t.Elem().Kind() == reflect.Uint8 {
			if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!binary") {
				c.sink.errorf(n.Line, path, "expected base64 data, got %s", nodeDesc(n))
				return nil, false
			}
			if _, err := base64.StdEncoding.DecodeString(stripSpace(n.Value)); err != nil {
				c.sink.errorf(n.Line, path, "invalid base64: %v", err)
				return nil, false
			}
			return stripSpace(n.Value), true
		}
		if n.Kind != yaml.SequenceNode {
			c.sink.errorf(n.Line, path, "expected a list, got %s", nodeDesc(n))
			return nil, false
		}
		out := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			v, ok := c.value(e, t.Elem(), joinIndex(path, i), depth+1)
			if !ok {
				v = nil
			}
			out = append(out, v)
		}
		return out, true
	case reflect.String:
		if isNull(n) {
			return nil, true
		}
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!timestamp") {
			c.sink.errorf(n.Line, path, "expected a string, got %s (quote it)", nodeDesc(n))
			return nil, false
		}
		return n.Value, true
	case reflect.Bool:
		if isNull(n) {
			return nil, true
		}
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			c.sink.errorf(n.Line, path, "expected a boolean (true or false), got %s", nodeDesc(n))
			return nil, false
		}
		return b, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if isNull(n) {
			return nil, true
		}
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			c.sink.errorf(n.Line, path, "expected an integer, got %s", nodeDesc(n))
			return nil, false
		}
		if err := n.Decode(&i); err != nil || reflect.Zero(t).OverflowInt(i) {
			c.sink.errorf(n.Line, path, "integer %s out of range", n.Value)
			return nil, false
		}
		return i, true
	case reflect.Float32, reflect.Float64:
		if isNull(n) {
			return nil, true
		}
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&f) != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			c.sink.errorf(n.Line, path, "expected a number, got %s", nodeDesc(n))
			return nil, false
		}
		return f, true
	}
	c.sink.errorf(n.Line, path, "internal error: unsupported type %s", t)
	return nil, false
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\n', '\r', '\t':
			return -1
		}
		return r
	}, s)
}

// cleanJSONError turns encoding/json errors about our own marshalled value
// into something a manifest author understands.
func cleanJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("expected %s, got a %s", te.Type, te.Value)
	}
	return err.Error()
}

// eachKey iterates a mapping's keys, reporting non-string keys, merge keys
// and duplicates.
func (c *converter) eachKey(n *yaml.Node, path string, f func(key string, kn, vn *yaml.Node, p string)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		for kn.Kind == yaml.AliasNode && kn.Alias != nil {
			kn = kn.Alias
		}
		if kn.Kind != yaml.ScalarNode {
			c.sink.errorf(kn.Line, path, "mapping keys must be strings, got %s", nodeDesc(kn))
			continue
		}
		if kn.ShortTag() == "!!merge" {
			c.sink.errorf(kn.Line, path, "YAML merge keys (<<) are not supported")
			continue
		}
		key := kn.Value
		p := joinField(path, key)
		if first, dup := seen[key]; dup {
			c.sink.errorf(kn.Line, p, "duplicate key %q (first at line %d)", key, first)
			continue
		}
		seen[key] = kn.Line
		if c.lines != nil {
			c.lines.set(p, kn.Line) // a field's line is its key's line
		}
		f(key, kn, vn, p)
	}
}

// genericAt converts any node into a JSON-compatible value (map[string]any,
// []any, string, json.Number, bool, nil).
func (c *converter) genericAt(n *yaml.Node, path string, depth int) (any, bool) {
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		okAll := true
		c.eachKey(n, path, func(key string, kn, vn *yaml.Node, p string) {
			vn = c.enter(vn, p, depth+1)
			if vn == nil {
				okAll = false
				return
			}
			if v, ok := c.genericAt(vn, p, depth+1); ok {
				out[key] = v
			} else {
				okAll = false
			}
		})
		return out, okAll && !c.aborted
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		okAll := true
		for i, e := range n.Content {
			p := joinIndex(path, i)
			e = c.enter(e, p, depth+1)
			if e == nil {
				return nil, false
			}
			v, ok := c.genericAt(e, p, depth+1)
			if !ok {
				okAll = false
			}
			out = append(out, v)
		}
		return out, okAll && !c.aborted
	case yaml.ScalarNode:
		return c.scalar(n, path)
	}
	c.sink.errorf(n.Line, path, "unsupported YAML node")
	return nil, false
}

// scalar converts a scalar node by its resolved tag. Numbers keep their
// literal text when it is valid JSON, so 1.10 and 12345678901234567890
// survive exactly.
func (c *converter) scalar(n *yaml.Node, path string) (any, bool) {
	switch n.ShortTag() {
	case "!!null":
		return nil, true
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			c.sink.errorf(n.Line, path, "invalid boolean %q", n.Value)
			return nil, false
		}
		return b, true
	case "!!int", "!!float":
		if jsonNumberRe.MatchString(n.Value) {
			return json.Number(n.Value), true
		}
		if n.ShortTag() == "!!int" {
			var i int64
			if err := n.Decode(&i); err == nil {
				return json.Number(strconv.FormatInt(i, 10)), true
			}
			var u uint64
			if err := n.Decode(&u); err == nil {
				return json.Number(strconv.FormatUint(u, 10)), true
			}
		}
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			c.sink.errorf(n.Line, path, "number %q cannot be represented in JSON", n.Value)
			return nil, false
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), true
	}
	return n.Value, true
}

// structField is one JSON-visible field of a struct, inline embeddings
// flattened.
type structField struct {
	name string
	typ  reflect.Type
}

var structFieldsCache sync.Map // reflect.Type -> map[string]structField

func jsonFields(t reflect.Type) map[string]structField {
	if v, ok := structFieldsCache.Load(t); ok {
		return v.(map[string]structField)
	}
	m := map[string]structField{}
	collectFields(t, m)
	structFieldsCache.Store(t, m)
	return m
}

func collectFields(t reflect.Type, m map[string]structField) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, m)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = structField{name: name, typ: f.Type}
	}
}

func (c *converter) structValue(n *yaml.Node, t reflect.Type, path string, depth int) (any, bool) {
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		c.sink.errorf(n.Line, path, "expected a mapping, got %s", nodeDesc(n))
		return nil, false
	}
	fields := jsonFields(t)
	ign := c.ignore[t]
	out := make(map[string]any, len(n.Content)/2)
	c.eachKey(n, path, func(key string, kn, vn *yaml.Node, p string) {
		f, ok := fields[key]
		if !ok {
			if ign[key] {
				return
			}
			msg := fmt.Sprintf("unknown field %q", key)
			if s := suggest(key, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			c.sink.errorf(kn.Line, p, "%s", msg)
			return
		}
		if v, ok := c.value(vn, f.typ, p, depth+1); ok && v != nil {
			out[key] = v
		}
	})
	return out, true
}

// suggest returns the known field closest to key (edit distance <= 3, or a
// case-insensitive match), for "did you mean" hints.
func suggest(key string, fields map[string]structField) string {
	best, bestD := "", 4
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if strings.EqualFold(k, key) {
			return k
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(k), bestD); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, giving up (returning max) once it
// exceeds max.
func editDistance(a, b string, max int) int {
	if len(a) > 200 || len(b) > 200 {
		return max
	}
	if d := len(a) - len(b); d > max || -d > max {
		return max
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= max {
			return max
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// decodeInto converts root for the type of target (a pointer) and decodes the
// result into target. Returns false when nothing could be decoded.
func (c *converter) decodeInto(root *yaml.Node, target any) bool {
	t := reflect.TypeOf(target).Elem()
	v, ok := c.value(root, t, "", 0)
	if !ok || c.aborted {
		return false
	}
	// Without HTML escaping, JSON blobs (json.RawMessage) keep the text
	// of the document.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		c.sink.errorf(root.Line, "", "internal error: %v", err)
		return false
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	if err := dec.Decode(target); err != nil {
		c.sink.errorf(root.Line, "", "%s", cleanJSONError(err))
		return false
	}
	return true
}
