package manifest

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// canonicalFast is CanonicalJSON without building Go values: it scans the
// document once, copying numbers and plain strings as they are and sorting
// object members by key. Spec hashes and parameter checksums of every
// manifest are computed on each pass, and the decode and re-encode through
// `any` was most of a large plan's time.
//
// It gives exactly CanonicalJSON's bytes or reports false, and the caller
// then takes the reference path (which also produces its errors): anything
// it does not handle as encoding/json does — invalid JSON, duplicate keys,
// escapes it would have to reproduce, deep nesting — is left to it.
// FuzzCanonicalJSON checks the two agree.
func canonicalFast(data []byte) ([]byte, bool) {
	c := canonicalizer{in: data, out: make([]byte, 0, len(data))}
	c.ws()
	if !c.value(0) {
		return nil, false
	}
	c.ws()
	if c.pos != len(c.in) {
		return nil, false
	}
	return c.out, true
}

// canonicalMaxDepth bounds the recursion; deeper documents take the
// reference path.
const canonicalMaxDepth = 200

type canonicalizer struct {
	in  []byte
	pos int
	out []byte
}

func (c *canonicalizer) ws() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canonicalizer) value(depth int) bool {
	if depth > canonicalMaxDepth || c.pos >= len(c.in) {
		return false
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		return c.object(depth)
	case b == '[':
		return c.array(depth)
	case b == '"':
		_, ok := c.str()
		return ok
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	default:
		return c.number()
	}
}

func (c *canonicalizer) literal(lit string) bool {
	if !bytes.HasPrefix(c.in[c.pos:], []byte(lit)) {
		return false
	}
	c.pos += len(lit)
	c.out = append(c.out, lit...)
	return true
}

// number copies a JSON number as written (CanonicalJSON decodes with
// UseNumber, and json.Number is encoded verbatim).
func (c *canonicalizer) number() bool {
	start := c.pos
	i := c.pos
	if i < len(c.in) && c.in[i] == '-' {
		i++
	}
	// digits skips the digits from i; ok is false when there are none.
	digits := func(i int) (int, bool) {
		d := i
		for i < len(c.in) && c.in[i] >= '0' && c.in[i] <= '9' {
			i++
		}
		return i, i > d
	}
	var ok bool
	switch {
	case i < len(c.in) && c.in[i] == '0':
		i++
	case i < len(c.in) && c.in[i] >= '1' && c.in[i] <= '9':
		i, _ = digits(i)
	default:
		return false
	}
	if i < len(c.in) && c.in[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return false
		}
	}
	if i < len(c.in) && (c.in[i] == 'e' || c.in[i] == 'E') {
		i++
		if i < len(c.in) && (c.in[i] == '+' || c.in[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return false
		}
	}
	c.pos = i
	c.out = append(c.out, c.in[start:i]...)
	return true
}

// str copies a string and returns its value. Strings encoding/json would
// write differently (escapes, control characters, invalid UTF-8, U+2028
// and U+2029) are decoded and encoded again as it does, with HTML
// characters left unescaped.
func (c *canonicalizer) str() (string, bool) {
	start := c.pos
	i := c.pos + 1
	plain := true
	for ; i < len(c.in); i++ {
		b := c.in[i]
		if b == '"' {
			break
		}
		if b == '\\' {
			plain = false
			i++ // skip the escaped byte; validated by the decoder below
			continue
		}
		if b < 0x20 {
			return "", false // invalid in JSON
		}
		if b >= utf8.RuneSelf {
			plain = false
		}
	}
	if i >= len(c.in) {
		return "", false
	}
	c.pos = i + 1
	token := c.in[start:c.pos]
	if plain {
		c.out = append(c.out, token...)
		return string(token[1 : len(token)-1]), true
	}
	var s string
	if err := json.Unmarshal(token, &s); err != nil {
		return "", false
	}
	c.out = appendCanonicalString(c.out, s)
	return s, true
}

// appendCanonicalString encodes s as encoding/json does with HTML
// escaping off.
func appendCanonicalString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\':
				out = append(out, '\\', b)
			case b == '\n':
				out = append(out, '\\', 'n')
			case b == '\r':
				out = append(out, '\\', 'r')
			case b == '\t':
				out = append(out, '\\', 't')
			case b == '\b':
				out = append(out, '\\', 'b')
			case b == '\f':
				out = append(out, '\\', 'f')
			case b < 0x20:
				out = append(out, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			default:
				out = append(out, b)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			out = append(out, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return append(out, '"')
}

func (c *canonicalizer) array(depth int) bool {
	c.pos++ // '['
	c.out = append(c.out, '[')
	c.ws()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		return true
	}
	for {
		c.ws()
		if !c.value(depth + 1) {
			return false
		}
		c.ws()
		if c.pos >= len(c.in) {
			return false
		}
		switch c.in[c.pos] {
		case ',':
			c.pos++
			c.out = append(c.out, ',')
		case ']':
			c.pos++
			c.out = append(c.out, ']')
			return true
		default:
			return false
		}
	}
}

// member is an object member already written to out[start:end] as
// "key":value.
type member struct {
	key        string
	start, end int
}

func (c *canonicalizer) object(depth int) bool {
	c.pos++ // '{'
	open := len(c.out)
	c.out = append(c.out, '{')
	c.ws()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, '}')
		return true
	}
	var members []member
	for {
		c.ws()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return false
		}
		start := len(c.out)
		key, ok := c.str()
		if !ok {
			return false
		}
		c.ws()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return false
		}
		c.pos++
		c.out = append(c.out, ':')
		c.ws()
		if !c.value(depth + 1) {
			return false
		}
		members = append(members, member{key: key, start: start, end: len(c.out)})
		c.ws()
		if c.pos >= len(c.in) {
			return false
		}
		if c.in[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.in[c.pos] != '}' {
			return false
		}
		c.pos++
		break
	}
	byKey := func(a, b member) int { return strings.Compare(a.key, b.key) }
	if !slices.IsSortedFunc(members, byKey) {
		slices.SortFunc(members, byKey)
	}
	for i := 1; i < len(members); i++ {
		if members[i].key == members[i-1].key {
			return false // duplicate: decoding keeps the last; not worth reproducing
		}
	}
	body := make([]byte, 0, len(c.out)-open+len(members))
	for i, m := range members {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, c.out[m.start:m.end]...)
	}
	c.out = append(append(c.out[:open+1], body...), '}')
	return true
}
