package redact

import (
	"strings"
	"testing"
)

// referenceScrub is the plain definition Scrub's index implements: every
// byte inside an occurrence of a form of a value is hidden, each maximal
// run of hidden bytes by one placeholder.
func referenceScrub(values []string, text string) string {
	hidden := make([]bool, len(text))
	for _, v := range values {
		if len(v) < MinLen {
			continue
		}
		for _, f := range Forms(v) {
			for i := 0; i+len(f) <= len(text); i++ {
				if strings.HasPrefix(text[i:], f) {
					for j := i; j < i+len(f); j++ {
						hidden[j] = true
					}
				}
			}
		}
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		if !hidden[i] {
			b.WriteByte(text[i])
			continue
		}
		b.WriteString(Placeholder)
		for i+1 < len(text) && hidden[i+1] {
			i++
		}
	}
	return b.String()
}

// FuzzScrub checks Scrub's hand-written index (chosen because a
// strings.Replacer over 20,000 values took 103 ms to build and 1.8 ms per
// message, where Scrub takes 2-3 µs and never rebuilds) against the plain
// definition.
func FuzzScrub(f *testing.F) {
	f.Add("hunter22", "s3cr3t/+&=", "auth failed for hunter22 with czNjcjN0Lys mJj0= and s3cr3t%2F%2B%26%3D")
	f.Add("abcdabcd", "cdab", "xxabcdabcdabyy")
	f.Add("pass", "password", "the password is pass")
	f.Fuzz(func(t *testing.T, v1, v2, text string) {
		s := New()
		s.Add(v1, v2)
		got, want := s.Scrub(text), referenceScrub([]string{v1, v2}, text)
		if got != want {
			t.Fatalf("Scrub(%q) with %q, %q = %q, want %q", text, v1, v2, got, want)
		}
	})
}
