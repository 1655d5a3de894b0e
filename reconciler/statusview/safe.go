package statusview

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Safe returns s fit for a terminal: control characters (C0 with tab and
// newline, DEL, C1), the bidirectional controls that reorder what is shown
// ("Trojan Source") and bytes that are not UTF-8 are written as Go
// escapes (\x1b, \u202e). Records come from Git, and the status branch's
// copy and unverified records are anyone's: a name or message must not
// move the cursor, recolour, retitle the terminal or break a table row.
func Safe(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			if r < 0x80 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune: C0, DEL, C1, and the Unicode bidirectional controls.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
