// Package redact keeps the secret values osbgit learns while it works (broker
// auth, Git credentials, parametersFrom values, binding credentials) and
// scrubs them from text that came from elsewhere — a broker's error
// description, a last_operation description, a dashboard URL, an error
// message — before that text reaches a log line, a diff, an error or a
// status record.
//
// A broker may quote what it received (parameters, the Authorization
// header) or what it handed out (binding credentials) in its answers, raw
// or encoded, so a value is scrubbed in every form it is likely to take in
// text: raw, JSON-string-escaped, Go-quoted, URL-encoded and base64 (see
// Forms). A Set is safe for concurrent use: the executor adds credentials
// while other steps log.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Placeholder replaces a secret value in scrubbed text (Set's default).
const Placeholder = "[REDACTED]"

// MinLen is the shortest value a Set keeps: shorter strings would garble
// ordinary text and are not worth hiding by search.
const MinLen = 4

// Set is a set of secret values and the scrubber built from them. The zero
// value is an empty set that scrubs with Placeholder; a nil *Set is an
// empty set that ignores Add. Values are never removed: text logged by an
// earlier pass may still be quoted later.
//
// Scrub finds, at every position of the text, the longest known form that
// starts there, and replaces each maximal run of overlapping or adjacent
// matches with one placeholder, so a value that contains another (or two
// values that overlap) is hidden whole. Its cost does not grow with the
// number of values (two hash lookups per byte of text that could start
// one), and adding a value never rebuilds anything: a pass that learns
// thousands of binding credentials while it logs stays cheap.
type Set struct {
	// Placeholder, when set, replaces Placeholder; set it before first
	// use (render uses plan.SensitiveValue).
	Placeholder string

	mu sync.RWMutex
	// known holds every form of every value. long and short index it by
	// first bytes: the distinct lengths (longest first) of the forms of 8
	// bytes or more that start with the same 8 bytes, and of the shorter
	// ones that start with the same 4. A position of the text costs a
	// lookup or two there, then one exact lookup in known per length: it
	// does not grow with the number of values, even when thousands share
	// a prefix ("postgres://…").
	known map[string]struct{}
	long  map[uint64][]int
	short map[uint32][]int
	// count is len(known), read without the lock for the empty fast path.
	count atomic.Int64
}

// New returns an empty set scrubbing with Placeholder.
func New() *Set { return &Set{} }

// Len is the number of forms known (every value adds several).
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return int(s.count.Load())
}

// Add records secret values; values shorter than MinLen are ignored.
func (s *Set) Add(values ...string) {
	if s == nil {
		return
	}
	var forms []string
	for _, v := range values {
		if len(v) >= MinLen {
			forms = append(forms, Forms(v)...)
		}
	}
	if len(forms) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known == nil {
		s.known = map[string]struct{}{}
		s.long = map[uint64][]int{}
		s.short = map[uint32][]int{}
	}
	for _, f := range forms {
		if _, ok := s.known[f]; ok {
			continue
		}
		s.known[f] = struct{}{}
		if len(f) >= 8 {
			k := key8(f, 0)
			s.long[k] = addLength(s.long[k], len(f))
		} else {
			k := key4(f, 0)
			s.short[k] = addLength(s.short[k], len(f))
		}
	}
	s.count.Store(int64(len(s.known)))
}

// AddLeaves records every string leaf (and json.Number) of a decoded JSON
// value: binding credentials, a parametersFrom object. Map keys are names,
// not secrets, and are not recorded.
func (s *Set) AddLeaves(v any) {
	if s == nil {
		return
	}
	var vals []string
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case string:
			vals = append(vals, t)
		case json.Number:
			vals = append(vals, t.String())
		case map[string]any:
			for _, e := range t {
				walk(e)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	s.Add(vals...)
}

// AddJSON records a value read from a Secret that is expected to hold JSON
// (a parametersFrom key): its leaves when it decodes, else the whole value.
func (s *Set) AddJSON(raw []byte) {
	if s == nil {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		s.Add(string(raw))
		return
	}
	if str, ok := v.(string); ok || v == nil {
		// A JSON string (or null) at the top: keep the raw bytes too.
		s.Add(string(raw), str)
		return
	}
	s.AddLeaves(v)
}

// addLength adds n to lengths (distinct, longest first).
func addLength(lengths []int, n int) []int {
	i, found := slices.BinarySearchFunc(lengths, n, func(e, n int) int { return n - e })
	if found {
		return lengths
	}
	return slices.Insert(lengths, i, n)
}

// key8 and key4 read the 8 or 4 bytes of s at i as a bucket key.
func key8(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(key4(s, i)) | uint64(key4(s, i+4))<<32
}

func key4(s string, i int) uint32 {
	_ = s[i+3]
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}

// Forms returns the forms of v a Set scrubs, without duplicates: v itself;
// v JSON-string-escaped (with and without HTML escaping) and Go-quoted
// (logrus' text format), each without the quotes; url.QueryEscape and
// url.PathEscape of v; and v in standard, URL-safe, raw standard and raw
// URL-safe base64.
func Forms(v string) []string {
	out := []string{v}
	add := func(f string) {
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if b, err := json.Marshal(v); err == nil {
		add(string(b[1 : len(b)-1]))
	}
	if strings.ContainsAny(v, "<>&") { // the only bytes HTML escaping changes
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if enc.Encode(v) == nil {
			b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
			add(string(b[1 : len(b)-1]))
		}
	}
	q := strconv.Quote(v)
	add(q[1 : len(q)-1])
	add(url.QueryEscape(v))
	add(url.PathEscape(v))
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		padded := e.EncodeToString([]byte(v))
		add(padded)
		add(strings.TrimRight(padded, "=")) // the raw (unpadded) encoding
	}
	return out
}

// Scrub returns str with every known form of every value replaced by the
// placeholder. It returns str itself when nothing matches.
func (s *Set) Scrub(str string) string {
	if s == nil || len(str) < MinLen || s.count.Load() == 0 {
		return str
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ph := s.Placeholder
	if ph == "" {
		ph = Placeholder
	}
	var b strings.Builder
	copied := 0                // str[:copied] is in b (or needs no change)
	runStart, runEnd := -1, -1 // the run of matches being merged
	for i := 0; i+MinLen <= len(str); i++ {
		n := s.longestAt(str, i)
		if n == 0 {
			continue
		}
		if runStart >= 0 && i <= runEnd {
			runEnd = max(runEnd, i+n)
			continue
		}
		if runStart >= 0 {
			b.WriteString(str[copied:runStart])
			b.WriteString(ph)
			copied = runEnd
		}
		runStart, runEnd = i, i+n
	}
	if runStart < 0 {
		return str
	}
	b.WriteString(str[copied:runStart])
	b.WriteString(ph)
	b.WriteString(str[runEnd:])
	return b.String()
}

// longestAt is the length of the longest known form starting at str[i:],
// 0 for none. Call with s.mu held.
func (s *Set) longestAt(str string, i int) int {
	if i+8 <= len(str) {
		for _, n := range s.long[key8(str, i)] {
			if i+n > len(str) {
				continue
			}
			if _, ok := s.known[str[i:i+n]]; ok {
				return n
			}
		}
	}
	for _, n := range s.short[key4(str, i)] {
		if i+n > len(str) {
			continue
		}
		if _, ok := s.known[str[i:i+n]]; ok {
			return n
		}
	}
	return 0
}

// ScrubError returns err with its message scrubbed: err itself when the
// message holds nothing known, else an error that reads scrubbed and
// still unwraps to err (errors.Is/As keep working).
func (s *Set) ScrubError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := s.Scrub(msg); red != msg {
		return &scrubbedError{msg: red, err: err}
	}
	return err
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// Writer returns a writer that scrubs each Write before passing it to w. A
// value split across two writes is not found, so give it whole lines (a
// logger writes one entry per Write; fmt.Fprintf writes once).
func (s *Set) Writer(w io.Writer) io.Writer { return &writer{s: s, w: w} }

type writer struct {
	s *Set
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	if w.s.Len() == 0 {
		return w.w.Write(p)
	}
	red := w.s.Scrub(string(p))
	if _, err := io.WriteString(w.w, red); err != nil {
		return 0, err
	}
	return len(p), nil
}
