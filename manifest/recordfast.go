package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	yaml "go.yaml.in/yaml/v3"
)

// Fast paths for the record format.
//
// Records are written by osbgit (MarshalRecord: JSON rendered as block YAML
// by go.yaml.in/yaml/v3) and read back on every pass; a repository with
// 20,000 resources holds 20,000 of them, and yaml.v3's general parser and
// emitter dominated the cost of a pass. The functions here handle only the
// plain subset of YAML that MarshalRecord writes — block mappings and
// sequences indented by two, flow "[]" and "{}" for empty collections,
// single-line plain, single-quoted and double-quoted scalars — and report
// ok=false for anything else, in which case the callers use yaml.v3 as
// before. When they succeed, the result is the one yaml.v3 gives: the same
// bytes (fastJSONToYAML) or the same node tree (fastParseRecord: kinds,
// resolved tags, values and lines), checked by differential tests against
// yaml.v3 on generated documents.

// nodeSlabs recycles the nodes of parsed records: a tree lives only while
// its record is decoded (see unmarshalRecord).
var nodeSlabs = sync.Pool{New: func() any { return new([]yaml.Node) }}

// fastParseRecord parses a document in the record subset into the mapping
// node yaml.v3 would return as the document's content. Nodes are taken from
// *slab when it is large enough (else a new slab replaces it), and *slab's
// length says how many were used.
func fastParseRecord(data []byte, slab *[]yaml.Node) (*yaml.Node, bool) {
	if len(data) == 0 || data[len(data)-1] != '\n' || bytes.IndexByte(data, '\r') >= 0 || bytes.IndexByte(data, '\t') >= 0 {
		return nil, false
	}
	// Control characters (tabs included) are left to yaml.v3, as are NEL,
	// LS and PS (YAML line breaks), the BOM and other C1 controls.
	for i, c := range data {
		if (c < 0x20 && c != '\n') || c == 0x7f || (c == 0xc2 && i+1 < len(data) && data[i+1] >= 0x80 && data[i+1] <= 0x9f) {
			return nil, false
		}
	}
	for _, r := range []string{"\u0085", "\u2028", "\u2029", "\ufeff"} {
		if bytes.Contains(data, []byte(r)) {
			return nil, false
		}
	}
	lines := bytes.Count(data, []byte{'\n'})
	p := &fastParser{lines: make([]fastLine, 0, lines)}
	// A line holds at most three nodes ("- key: value").
	if need := 3*lines + 1; cap(*slab) >= need {
		p.slab = (*slab)[:0]
	} else {
		p.slab = make([]yaml.Node, 0, need)
	}
	defer func() { *slab = p.slab }()
	text := string(data[:len(data)-1])
	for n := 1; ; n++ {
		line, rest, more := strings.Cut(text, "\n")
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		body := line[indent:]
		if body == "" || body[0] == '#' || strings.HasPrefix(line, "---") || strings.HasPrefix(line, "...") || strings.HasPrefix(line, "%") {
			return nil, false
		}
		p.lines = append(p.lines, fastLine{indent: indent, text: body, num: n})
		if !more {
			break
		}
		text = rest
	}
	if p.lines[0].indent != 0 {
		return nil, false
	}
	root := p.mapping(0)
	if p.failed || p.pos != len(p.lines) {
		return nil, false
	}
	return root, true
}

type fastLine struct {
	indent int
	text   string
	num    int
}

type fastParser struct {
	lines  []fastLine
	pos    int
	depth  int
	failed bool
	slab   []yaml.Node
}

// newNode returns the next node of the slab, which is sized for the
// document.
func (p *fastParser) newNode() *yaml.Node {
	p.slab = p.slab[:len(p.slab)+1]
	return &p.slab[len(p.slab)-1]
}

func (p *fastParser) fail() *yaml.Node {
	p.failed = true
	return nil
}

func isSeqEntry(text string) bool {
	return text == "-" || strings.HasPrefix(text, "- ")
}

// splitKey splits "key: value" or "key:" with a plain key of letters,
// digits and _ . / - (not starting with - or .).
func splitKey(text string) (key, rest string, ok bool) {
	i := strings.IndexByte(text, ':')
	if i <= 0 || i >= 1024 {
		// YAML limits implicit keys to 1024 characters (yaml.v3 refuses
		// longer ones): those are left to yaml.v3's error.
		return "", "", false
	}
	key, rest = text[:i], text[i+1:]
	if rest != "" && rest[0] != ' ' {
		return "", "", false
	}
	for j := 0; j < len(key); j++ {
		c := key[j]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '-' || c == '.' || c == '/') && j > 0:
		default:
			return "", "", false
		}
	}
	return key, rest, true
}

// mapping parses the block mapping whose keys start at column indent.
func (p *fastParser) mapping(indent int) *yaml.Node {
	if p.depth++; p.depth > MaxDepth {
		return p.fail()
	}
	defer func() { p.depth-- }()
	first := p.lines[p.pos]
	n := p.newNode()
	*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: first.num, Column: indent + 1}
	for !p.failed && p.pos < len(p.lines) && p.lines[p.pos].indent == indent {
		l := p.lines[p.pos]
		if isSeqEntry(l.text) {
			return p.fail()
		}
		key, rest, ok := splitKey(l.text)
		if !ok {
			return p.fail()
		}
		// Duplicate keys are kept, as yaml.v3 keeps them; the decoders
		// refuse them.
		kn := p.newNode()
		*kn = yaml.Node{Kind: yaml.ScalarNode, Tag: resolvedTag(key), Value: key, Line: l.num, Column: indent + 1}
		var vn *yaml.Node
		if rest == "" {
			p.pos++
			if p.pos >= len(p.lines) || p.lines[p.pos].indent <= indent {
				return p.fail() // "key:" alone is null; left to yaml.v3
			}
			next := p.lines[p.pos]
			if isSeqEntry(next.text) {
				vn = p.sequence(next.indent)
			} else {
				vn = p.mapping(next.indent)
			}
		} else {
			value := rest[1:]
			vn = p.scalar(value, l.num, indent+len(key)+3)
			p.pos++
		}
		if p.failed {
			return nil
		}
		n.Content = append(n.Content, kn, vn)
	}
	if p.pos < len(p.lines) && p.lines[p.pos].indent > indent {
		return p.fail()
	}
	return n
}

// sequence parses the block sequence whose "- " entries start at column
// indent.
func (p *fastParser) sequence(indent int) *yaml.Node {
	if p.depth++; p.depth > MaxDepth {
		return p.fail()
	}
	defer func() { p.depth-- }()
	first := p.lines[p.pos]
	n := p.newNode()
	*n = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: first.num, Column: indent + 1}
	for !p.failed && p.pos < len(p.lines) && p.lines[p.pos].indent == indent && isSeqEntry(p.lines[p.pos].text) {
		l := p.lines[p.pos]
		if l.text == "-" {
			return p.fail()
		}
		rest := l.text[2:]
		if rest == "" || rest[0] == ' ' || isSeqEntry(rest) {
			return p.fail()
		}
		var item *yaml.Node
		if _, _, ok := splitKey(rest); ok {
			// "- key: value": a mapping whose keys are at indent+2.
			p.lines[p.pos] = fastLine{indent: indent + 2, text: rest, num: l.num}
			item = p.mapping(indent + 2)
		} else {
			item = p.scalar(rest, l.num, indent+3)
			p.pos++
		}
		if p.failed {
			return nil
		}
		n.Content = append(n.Content, item)
	}
	if p.pos < len(p.lines) && p.lines[p.pos].indent > indent {
		return p.fail()
	}
	return n
}

// scalar parses a single-line scalar (or an empty flow collection) that
// starts at column col.
func (p *fastParser) scalar(s string, line, col int) *yaml.Node {
	n := p.newNode()
	*n = yaml.Node{Kind: yaml.ScalarNode, Line: line, Column: col}
	switch {
	case s == "":
		return p.fail()
	case s == "[]":
		return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle, Line: line, Column: col}
	case s == "{}":
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle, Line: line, Column: col}
	case s[0] == '"':
		v, ok := unquoteDouble(s)
		if !ok {
			return p.fail()
		}
		n.Tag, n.Style, n.Value = "!!str", yaml.DoubleQuotedStyle, v
		return n
	case s[0] == '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return p.fail()
		}
		inner := s[1 : len(s)-1]
		if strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
			return p.fail()
		}
		n.Tag, n.Style, n.Value = "!!str", yaml.SingleQuotedStyle, strings.ReplaceAll(inner, "''", "'")
		return n
	}
	if !plainScalarOK(s) {
		return p.fail()
	}
	n.Value = s
	n.Tag = resolvedTag(s)
	return n
}

// plainScalarOK reports whether s is read back by a YAML parser as exactly
// the plain scalar s in block context, on one line.
func plainScalarOK(s string) bool {
	switch s[0] {
	case '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '?', ':', ' ':
		return false
	case '-':
		if len(s) == 1 || s[1] == ' ' {
			return false
		}
	}
	if s == "<<" || s[len(s)-1] == ' ' || s[len(s)-1] == ':' || strings.Contains(s, ": ") || strings.Contains(s, " #") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// unquoteDouble decodes a one-line double-quoted scalar that uses only the
// escapes JSON has (the ones yaml.v3 writes for ASCII text).
func unquoteDouble(s string) (string, bool) {
	if len(s) < 2 || s[len(s)-1] != '"' {
		return "", false
	}
	inner := s[1 : len(s)-1]
	if !strings.ContainsAny(inner, "\\\"") {
		for i := 0; i < len(inner); i++ {
			if c := inner[i]; c < 0x20 || c == 0x7f {
				return "", false
			}
		}
		return inner, true
	}
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '"' || c < 0x20 || c == 0x7f:
			return "", false
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(inner) {
			return "", false
		}
		i++
		switch inner[i] {
		case '"', '\\', '/':
			b.WriteByte(inner[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if i+4 >= len(inner) {
				return "", false
			}
			v, err := strconv.ParseUint(inner[i+1:i+5], 16, 32)
			if err != nil || (v >= 0xD800 && v <= 0xDFFF) {
				return "", false
			}
			b.WriteRune(rune(v))
			i += 4
		default:
			return "", false
		}
	}
	return b.String(), true
}

// resolvedTag is the tag yaml.v3 resolves a plain scalar to.
func resolvedTag(s string) string {
	if s != "" {
		// yaml.v3 resolves a scalar to !!str at once unless its first
		// character hints at another type (resolve.go's resolveTable).
		switch c := s[0]; {
		case c >= '0' && c <= '9', c == '+', c == '-':
			if !maybeNumberOrTime(s) {
				return "!!str"
			}
		case c == '.':
		case strings.IndexByte("yYnNtTfFoO~", c) >= 0:
			// yaml.v3 only looks these up in its word map.
			switch s {
			case "true", "True", "TRUE", "false", "False", "FALSE":
				return "!!bool"
			case "null", "Null", "NULL", "~":
				return "!!null"
			}
			return "!!str"
		default:
			return "!!str"
		}
	}
	return (&yaml.Node{Kind: yaml.ScalarNode, Value: s}).ShortTag()
}

// maybeNumberOrTime reports whether s (starting with a digit or a sign)
// could resolve to an int, float or timestamp, judged by its characters
// alone: yaml.v3 tries timestamps, ParseInt/ParseUint in base 0, YAML-style
// floats and 0b/0o prefixes, none of which accepts a byte outside digits,
// "_+-.:eETtZ xXoObB" and (after a 0x prefix) hex letters. Signed .inf
// words are left to yaml.v3. A string that fails this test is a !!str;
// one that passes is resolved by yaml.v3. Most IDs fail it (a UUID has a
// hex letter other than b or e and no x, or a letter g–z elsewhere), which
// saves yaml.v3's parse attempts, each an allocation.
func maybeNumberOrTime(s string) bool {
	if len(s) > 1 && s[1] == '.' {
		return true
	}
	hex := strings.ContainsAny(s, "xX")
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', strings.IndexByte("_+-.:eETtZ xXoObB", c) >= 0:
		case hex && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'):
		default:
			return false
		}
	}
	return true
}

// fastDecodeInto decodes root into target (a pointer to a record) without
// the converter's generic value tree: it checks every mapping key against
// the exact JSON field names of the type at that point (encoding/json alone
// would match them case-insensitively), renders the tree as JSON and
// decodes that with unknown fields disallowed. Anything the converter
// treats specially (aliases, timestamps, non-JSON numbers, …) and any
// decoding error report false: the caller then decodes with the converter
// (from a fresh target), which gives the same result or the precise,
// line-numbered error.
func fastDecodeInto(root *yaml.Node, target any) bool {
	bp := jsonBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 { // a big catalog's buffer is not kept
			jsonBufs.Put(bp)
		}
	}()
	w := &jsonOut{buf: (*bp)[:0]}
	ok := w.node(root, reflect.TypeOf(target).Elem(), 0)
	*bp = w.buf
	if !ok {
		return false
	}
	if !w.iface {
		// Every field was checked against the target type above, and no
		// value lands in an interface (where UseNumber matters), so plain
		// Unmarshal decodes the same, without a Decoder's buffers.
		return json.Unmarshal(w.buf, target) == nil
	}
	dec := json.NewDecoder(bytes.NewReader(w.buf))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	return dec.Decode(target) == nil
}

// jsonBufs recycles fastDecodeInto's JSON buffers: a pass decodes tens of
// thousands of records.
var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// jsonOut renders checked YAML nodes as JSON.
type jsonOut struct {
	buf   []byte
	nodes int
	// iface is set when a value is decoded into an interface type.
	iface bool
}

func (w *jsonOut) node(n *yaml.Node, t reflect.Type, depth int) bool {
	if w.nodes++; w.nodes > maxRecordNodes || depth > MaxDepth {
		return false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	free := t == rawMessageType || t.Kind() == reflect.Interface
	if t.Kind() == reflect.Interface {
		w.iface = true
	}
	custom := !free && reflect.PointerTo(t).Implements(jsonUnmarshalerType)
	switch n.Kind {
	case yaml.MappingNode:
		var fields map[string]structField
		switch {
		case free:
		case custom:
			return false
		case t.Kind() == reflect.Struct:
			fields = jsonFields(t)
		case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		default:
			return false
		}
		w.buf = append(w.buf, '{')
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" || seen[k.Value] {
				return false
			}
			seen[k.Value] = true
			vt := t
			switch {
			case free:
			case fields != nil:
				f, ok := fields[k.Value]
				if !ok {
					return false
				}
				vt = f.typ
			default:
				vt = t.Elem()
			}
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.buf = appendJSONString(w.buf, k.Value)
			w.buf = append(w.buf, ':')
			if !w.node(v, vt, depth+1) {
				return false
			}
		}
		w.buf = append(w.buf, '}')
		return true
	case yaml.SequenceNode:
		et := t
		switch {
		case free:
		case custom:
			return false
		case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
			et = t.Elem()
		default:
			return false
		}
		w.buf = append(w.buf, '[')
		for i, e := range n.Content {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if !w.node(e, et, depth+1) {
				return false
			}
		}
		w.buf = append(w.buf, ']')
		return true
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			w.buf = appendJSONString(w.buf, n.Value)
		case "!!int", "!!float":
			if !jsonNumberRe.MatchString(n.Value) {
				return false
			}
			w.buf = append(w.buf, n.Value...)
		case "!!bool":
			switch n.Value {
			case "true", "True", "TRUE":
				w.buf = append(w.buf, "true"...)
			case "false", "False", "FALSE":
				w.buf = append(w.buf, "false"...)
			default:
				return false
			}
		case "!!null":
			w.buf = append(w.buf, "null"...)
		default:
			return false
		}
		return true
	}
	return false
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c < 0x20:
			buf = append(buf, fmt.Sprintf("\\u%04x", c)...)
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}

// fastJSONToYAML renders a JSON object as JSONToYAML does, for documents
// whose strings, keys and numbers all have a simple YAML form; ok is false
// otherwise.
func fastJSONToYAML(data []byte) ([]byte, bool) {
	s := &jsonScan{data: data}
	s.ws()
	if s.pos >= len(data) || data[s.pos] != '{' {
		return nil, false
	}
	w := &yamlOut{buf: make([]byte, 0, len(data)+len(data)/2)}
	if s.emptyAhead('{', '}') {
		s.pos += 2
		w.buf = append(w.buf, "{}\n"...)
	} else if !w.object(s, 0, false, 0) {
		return nil, false
	}
	s.ws()
	if s.pos != len(data) {
		return nil, false
	}
	return w.buf, true
}

// jsonScan reads JSON text.
type jsonScan struct {
	data []byte
	pos  int
}

func (s *jsonScan) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// emptyAhead reports whether the next tokens are open then close.
func (s *jsonScan) emptyAhead(open, close byte) bool {
	if s.pos >= len(s.data) || s.data[s.pos] != open {
		return false
	}
	i := s.pos + 1
	for i < len(s.data) && (s.data[i] == ' ' || s.data[i] == '\t' || s.data[i] == '\n' || s.data[i] == '\r') {
		i++
	}
	if i < len(s.data) && s.data[i] == close {
		s.pos = i - 1 // the caller skips two bytes
		return true
	}
	return false
}

func (s *jsonScan) expect(c byte) bool {
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// str reads a JSON string.
func (s *jsonScan) str() (string, bool) {
	s.ws()
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return "", false
	}
	start := s.pos + 1
	esc := false
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '\\':
			esc = true
			i++
		case c == '"':
			s.pos = i + 1
			if !esc {
				return string(s.data[start:i]), true
			}
			v, ok := unquoteDouble(string(s.data[start-1 : i+1]))
			return v, ok
		case c < 0x20:
			return "", false
		}
	}
	return "", false
}

// yamlOut accumulates YAML text.
type yamlOut struct {
	buf []byte
}

func (w *yamlOut) indent(n int) {
	for range n {
		w.buf = append(w.buf, ' ')
	}
}

// Contexts of a value.
const (
	afterKey  = iota // written "key:"
	afterDash        // written "- "
)

// object writes the members of the (non-empty) object at s as a block
// mapping with keys at column indent; the first key goes on the current
// line when inline is set (a sequence entry).
func (w *yamlOut) object(s *jsonScan, indent int, inline bool, depth int) bool {
	if depth > MaxDepth || !s.expect('{') {
		return false
	}
	for first := true; ; first = false {
		key, ok := s.str()
		if !ok || !plainKey(key) || !s.expect(':') {
			return false
		}
		if !first || !inline {
			w.indent(indent)
		}
		w.buf = append(w.buf, key...)
		w.buf = append(w.buf, ':')
		if !w.value(s, indent, afterKey, depth+1) {
			return false
		}
		if s.expect(',') {
			continue
		}
		return s.expect('}')
	}
}

// array writes the (non-empty) array at s as a block sequence with its
// entries at column indent.
func (w *yamlOut) array(s *jsonScan, indent int, depth int) bool {
	if depth > MaxDepth || !s.expect('[') {
		return false
	}
	for {
		w.indent(indent)
		w.buf = append(w.buf, '-', ' ')
		if !w.value(s, indent, afterDash, depth+1) {
			return false
		}
		if s.expect(',') {
			continue
		}
		return s.expect(']')
	}
}

// value writes the value at s in context ctx of an entry at column indent
// (the mapping's keys, or the sequence's dashes).
func (w *yamlOut) value(s *jsonScan, indent, ctx int, depth int) bool {
	s.ws()
	if s.pos >= len(s.data) {
		return false
	}
	sep := func() {
		if ctx == afterKey {
			w.buf = append(w.buf, ' ')
		}
	}
	switch s.data[s.pos] {
	case '{':
		if s.emptyAhead('{', '}') {
			s.pos += 2
			sep()
			w.buf = append(w.buf, "{}\n"...)
			return true
		}
		if ctx == afterKey {
			w.buf = append(w.buf, '\n')
			return w.object(s, indent+2, false, depth)
		}
		return w.object(s, indent+2, true, depth)
	case '[':
		if s.emptyAhead('[', ']') {
			s.pos += 2
			sep()
			w.buf = append(w.buf, "[]\n"...)
			return true
		}
		if ctx == afterDash {
			return false // "- - x": left to yaml.v3
		}
		w.buf = append(w.buf, '\n')
		return w.array(s, indent+2, depth)
	case '"':
		v, ok := s.str()
		if !ok || !w.appendString(v, sep) {
			return false
		}
		w.buf = append(w.buf, '\n')
		return true
	}
	// A number or a literal.
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		s.pos++
	}
	tok := string(s.data[start:s.pos])
	switch tok {
	case "true", "false", "null":
	default:
		if !jsonNumberRe.MatchString(tok) {
			return false
		}
		want := "!!int"
		if strings.ContainsAny(tok, ".eE") {
			want = "!!float"
		}
		if resolvedTag(tok) != want {
			return false // yaml.v3 would write an explicit tag
		}
	}
	sep()
	w.buf = append(w.buf, tok...)
	w.buf = append(w.buf, '\n')
	return true
}

// appendString writes a string value the way yaml.v3 does for an
// untagged !!str node: plain when it reads back as the same string, double
// quoted when it would read back as another type, else single quoted.
// Strings with line breaks, tabs, other control characters or non-ASCII
// text are left to yaml.v3 (ok false).
func (w *yamlOut) appendString(v string, sep func()) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	sep()
	if resolvedTag(v) != "!!str" {
		w.buf = append(w.buf, '"')
		for i := 0; i < len(v); i++ {
			if v[i] == '"' || v[i] == '\\' {
				w.buf = append(w.buf, '\\')
			}
			w.buf = append(w.buf, v[i])
		}
		w.buf = append(w.buf, '"')
		return true
	}
	if blockPlainAllowed(v) {
		w.buf = append(w.buf, v...)
		return true
	}
	w.buf = append(w.buf, '\'')
	w.buf = append(w.buf, strings.ReplaceAll(v, "'", "''")...)
	w.buf = append(w.buf, '\'')
	return true
}

// plainKey reports whether a mapping key is written plain by yaml.v3: a
// simple key that resolves to a string and needs no quoting.
func plainKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return resolvedTag(k) == "!!str" && blockPlainAllowed(k)
}

// blockPlainAllowed mirrors yaml.v3's scalar analysis
// (yaml_emitter_analyze_scalar) for printable ASCII without line breaks:
// whether the plain style is allowed in block context.
func blockPlainAllowed(v string) bool {
	if v == "" {
		return true
	}
	if v[0] == ' ' || v[len(v)-1] == ' ' {
		return false
	}
	if len(v) >= 3 && (strings.HasPrefix(v, "---") || strings.HasPrefix(v, "...")) {
		return false
	}
	followedBySpace := func(i int) bool { return i+1 >= len(v) || v[i+1] == ' ' }
	switch v[0] {
	case '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return false
	case '?', ':', '-':
		if followedBySpace(0) {
			return false
		}
	}
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case ':':
			if followedBySpace(i) {
				return false
			}
		case '#':
			if v[i-1] == ' ' {
				return false
			}
		}
	}
	return true
}
