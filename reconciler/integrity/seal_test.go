package integrity

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	testKey   = []byte("0123456789abcdef0123456789abcdef")
	otherKey  = []byte("fedcba9876543210fedcba9876543210")
	testTree  = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	otherTree = "9d1dcfdaf1a6857c5f83dc27019c7600e1ffaff8"
)

func TestSignValid(t *testing.T) {
	good := Sign(testKey, "status", 7, testTree)
	tests := []struct {
		name string
		seal Seal
		key  []byte
		want bool
	}{
		{"as signed", good, testKey, true},
		{"SHA-256 tree", Sign(testKey, "status", 1, strings.Repeat("ab", 32)), testKey, true},
		{"wrong key", good, otherKey, false},
		{"no key", Sign(nil, "status", 7, testTree), nil, false},
		{"branch changed", with(good, func(s *Seal) { s.Branch = "main" }), testKey, false},
		{"sequence changed", with(good, func(s *Seal) { s.Sequence = 8 }), testKey, false},
		{"tree changed", with(good, func(s *Seal) { s.Tree = otherTree }), testKey, false},
		{"MAC truncated", with(good, func(s *Seal) { s.MAC = s.MAC[:62] }), testKey, false},
		{"MAC empty", with(good, func(s *Seal) { s.MAC = "" }), testKey, false},
		{"MAC upper case", with(good, func(s *Seal) { s.MAC = strings.ToUpper(s.MAC) }), testKey, false},
		{"MAC of another seal", with(good, func(s *Seal) { s.MAC = Sign(testKey, "status", 6, testTree).MAC }), testKey, false},
		// Without length prefixes these would be one input: "ab"+"c" = "a"+"bc".
		{"bytes moved from branch to tree", with(Sign(testKey, "statu", 7, "s"+testTree), func(s *Seal) { s.Branch, s.Tree = "status", testTree }), testKey, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.seal.Valid(tt.key); got != tt.want {
				t.Errorf("Valid = %v, want %v (seal %+v)", got, tt.want, tt.seal)
			}
		})
	}
	if again := Sign(testKey, "status", 7, testTree); again != good {
		t.Errorf("Sign is not deterministic: %+v, then %+v", good, again)
	}
	if len(good.MAC) != 64 || strings.Trim(good.MAC, "0123456789abcdef") != "" {
		t.Errorf("MAC = %q, want 64 lowercase hex digits", good.MAC)
	}
}

func with(s Seal, change func(*Seal)) Seal {
	change(&s)
	return s
}

// The MAC input differs for every (branch, seq, tree) that differs, even
// where concatenating the fields would not.
func TestMACInputUnambiguous(t *testing.T) {
	inputs := map[string]string{}
	for _, c := range []struct {
		branch string
		seq    uint64
		tree   string
	}{
		{"ab", 1, "c"}, {"a", 1, "bc"}, {"", 1, "abc"}, {"abc", 1, ""},
		{"a", 0x0101, "b"}, {"a\x00\x00\x00\x00\x00\x00\x00\x01", 1, "b"},
		{"a", 1, "\x00\x00\x00\x00\x00\x00\x01\x01b"},
	} {
		in := string(macInput(c.branch, c.seq, c.tree))
		if prev, dup := inputs[in]; dup {
			t.Errorf("%+v and %s give the same MAC input", c, prev)
		}
		inputs[in] = strings.Join([]string{c.branch, c.tree}, "|")
	}
}

func TestTrailerParseMessageRoundTrip(t *testing.T) {
	s := Sign(testKey, "osbgit-status", 42, testTree)
	tests := []struct {
		name string
		msg  string
	}{
		{"trailer alone", s.Trailer()},
		{"after subject and body", "osbgit: records after pass 42\n\nRestored team-a/ServiceInstance/db: edited by alice in 1a2b3c.\n\n" + s.Trailer()},
		{"among other trailers", "subject\n\nSigned-off-by: osbgit <osbgit@example.com>\n" + s.Trailer() + "Co-authored-by: x <x@example.com>\n"},
		{"then [skip ci]", "subject\n\n" + s.Trailer() + "\n[skip ci]\n"},
		{"a seal quoted earlier", "subject\n\nundid a commit that carried\n" + Sign(otherKey, "other", 3, otherTree).Trailer() + "\n" + s.Trailer()},
		{"CRLF line ends", strings.ReplaceAll("subject\n\n"+s.Trailer(), "\n", "\r\n")},
		{"no final newline", "subject\n\n" + strings.TrimSuffix(s.Trailer(), "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessage(tt.msg)
			if err != nil {
				t.Fatalf("ParseMessage: %v\n%s", err, tt.msg)
			}
			if diff := cmp.Diff(s, got); diff != "" {
				t.Errorf("seal (-want +got):\n%s", diff)
			}
			if !got.Valid(testKey) {
				t.Error("parsed seal not valid")
			}
		})
	}
	if want := "Osbgit-Seal-Branch: osbgit-status\nOsbgit-Seal-Sequence: 42\nOsbgit-Seal-Tree: " + testTree + "\nOsbgit-Seal-MAC: " + s.MAC + "\n"; s.Trailer() != want {
		t.Errorf("Trailer =\n%s\nwant\n%s", s.Trailer(), want)
	}
}

func TestParseMessageErrors(t *testing.T) {
	s := Sign(testKey, "status", 3, testTree)
	lines := strings.Split(strings.TrimSuffix(s.Trailer(), "\n"), "\n")
	msg := func(ls ...string) string { return "subject\n\n" + strings.Join(ls, "\n") + "\n" }
	replace := func(i int, line string) string {
		ls := slices.Clone(lines)
		ls[i] = line
		return msg(ls...)
	}
	plus := func(ls []string, extra ...string) string { return msg(slices.Concat(ls, extra)...) }
	tests := []struct {
		name string
		msg  string
		want []string // substrings of the error; nil: ErrNoSeal
	}{
		{"empty message", "", nil},
		{"no seal", "subject\n\nbody\n\nSigned-off-by: a <a@b>\n", nil},
		{"lower-case keys are not ours", strings.ToLower(s.Trailer()), nil},
		{"missing MAC", msg(lines[:3]...), []string{"lines 3-5", "Osbgit-Seal-MAC missing"}},
		{"missing branch", msg(lines[1:]...), []string{"Osbgit-Seal-Branch missing"}},
		{"fields split over paragraphs", msg(lines[0], lines[1], "", lines[2], lines[3]), []string{"Osbgit-Seal-Branch missing"}},
		{"duplicate sequence", plus(lines, "Osbgit-Seal-Sequence: 4"), []string{"line 7", "Osbgit-Seal-Sequence repeated (first on line 4)"}},
		{"unknown field", plus(lines, "Osbgit-Seal-Key: 00"), []string{"line 7", "Osbgit-Seal-Key", "unknown field"}},
		{"non-hex MAC", replace(3, "Osbgit-Seal-MAC: "+strings.Repeat("zz", 32)), []string{"line 6", "Osbgit-Seal-MAC", "not 64 lowercase hex"}},
		{"short MAC", replace(3, "Osbgit-Seal-MAC: "+s.MAC[:63]), []string{"Osbgit-Seal-MAC", "not 64 lowercase hex"}},
		{"upper-case tree", replace(2, "Osbgit-Seal-Tree: "+strings.ToUpper(testTree)), []string{"line 5", "Osbgit-Seal-Tree", "not 40 or 64"}},
		{"tree of 41 digits", replace(2, "Osbgit-Seal-Tree: "+testTree+"0"), []string{"Osbgit-Seal-Tree"}},
		{"huge sequence", replace(1, "Osbgit-Seal-Sequence: 18446744073709551616"), []string{"line 4", "Osbgit-Seal-Sequence", "larger than 18446744073709551615"}},
		{"sequence 0", replace(1, "Osbgit-Seal-Sequence: 0"), []string{"Osbgit-Seal-Sequence", "not a decimal number from 1"}},
		{"sequence with leading zero", replace(1, "Osbgit-Seal-Sequence: 03"), []string{"not a decimal number from 1"}},
		{"negative sequence", replace(1, "Osbgit-Seal-Sequence: -3"), []string{"not a decimal number"}},
		{"sequence in hex", replace(1, "Osbgit-Seal-Sequence: 0x3"), []string{"not a decimal number"}},
		{"empty branch", replace(0, "Osbgit-Seal-Branch: "), []string{"line 3", "Osbgit-Seal-Branch", "empty"}},
		{"branch with a control character", replace(0, "Osbgit-Seal-Branch: a\x1bb"), []string{"control character"}},
		{"huge branch", replace(0, "Osbgit-Seal-Branch: "+strings.Repeat("b", 5000)), []string{"longer than 1024"}},
		{"seal line without colon", plus(lines[:3], "Osbgit-Seal-MAC"), []string{"Osbgit-Seal-MAC missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessage(tt.msg)
			if tt.want == nil {
				if !errors.Is(err, ErrNoSeal) {
					t.Fatalf("err = %v, want ErrNoSeal", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; parsed %+v", got)
			}
			if errors.Is(err, ErrNoSeal) {
				t.Errorf("err = %v, must not be ErrNoSeal: a seal is there", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
			if got != (Seal{}) {
				t.Errorf("a seal returned with the error: %+v", got)
			}
		})
	}
}

// FuzzParseMessage: ParseMessage never panics, and a seal it accepts has
// well-formed fields and comes back unchanged from its own Trailer.
func FuzzParseMessage(f *testing.F) {
	s := Sign(testKey, "status", 3, testTree)
	f.Add(s.Trailer())
	f.Add("subject\n\nbody\n\n" + s.Trailer() + "\n[skip ci]\n")
	f.Add("Osbgit-Seal-Sequence: 99999999999999999999\n")
	f.Fuzz(func(t *testing.T, msg string) {
		got, err := ParseMessage(msg)
		if err != nil {
			if got != (Seal{}) {
				t.Fatalf("seal %+v returned with error %v", got, err)
			}
			return
		}
		if got.Branch == "" || got.Sequence == 0 || (len(got.Tree) != 40 && len(got.Tree) != 64) || len(got.MAC) != 64 {
			t.Fatalf("accepted a malformed seal %+v", got)
		}
		again, err := ParseMessage(got.Trailer())
		if err != nil || again != got {
			t.Fatalf("round trip of %+v: %+v, %v", got, again, err)
		}
	})
}
