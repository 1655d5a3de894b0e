package secretstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateRefAndKey(t *testing.T) {
	tests := []struct {
		ns, name string
		ok       bool
	}{
		{"default", "db-creds", true},
		{"a", "a.b.c", true},
		{"ns", strings.Repeat("a", 253), true},
		{"ns", strings.Repeat("a", 254), false},
		{strings.Repeat("a", 64), "s", false},
		{"a.b", "s", false}, // namespaces are labels: no dots
		{"..", "s", false},
		{"ns", "..", false},
		{"ns", ".", false},
		{"ns", "a/b", false},
		{"ns", "/abs", false},
		{"ns", "", false},
		{"", "s", false},
	}
	for _, tt := range tests {
		err := validateRef(tt.ns, tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("validateRef(%q, %q) = %v, want ok=%v", tt.ns, tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("validateRef error %v is not ErrInvalidName", err)
		}
	}
	keys := []struct {
		key string
		ok  bool
	}{
		{"password", true}, {"DB_URL", true}, {".dockerconfigjson", true}, {"a-b.c_d", true},
		{"", false}, {".", false}, {"..", false}, {"..data", false}, {"a/b", false}, {"a b", false},
		{"a\x00", false}, {strings.Repeat("k", 254), false}, {"ключ", false},
	}
	for _, tt := range keys {
		if err := validateKey(tt.key); (err == nil) != tt.ok {
			t.Errorf("validateKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
	}
}

func TestMergeOwned(t *testing.T) {
	tests := []struct {
		name        string
		cur, want   map[string]string
		wantResult  map[string]string
		wantChanged bool
	}{
		{name: "nil to set", cur: nil, want: map[string]string{"a": "1"}, wantResult: map[string]string{"a": "1"}, wantChanged: true},
		{name: "same", cur: map[string]string{"a": "1"}, want: map[string]string{"a": "1"}, wantResult: map[string]string{"a": "1"}},
		{name: "foreign kept", cur: map[string]string{"x": "y"}, want: nil, wantResult: map[string]string{"x": "y"}},
		{name: "own stale dropped", cur: map[string]string{"osbgit.dev/old": "1", "x": "y"}, want: map[string]string{"a": "1"}, wantResult: map[string]string{"a": "1", "x": "y"}, wantChanged: true},
		{name: "nil stays nil", cur: nil, want: nil, wantResult: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := tt.cur
			if got := mergeOwned(&cur, tt.want); got != tt.wantChanged {
				t.Errorf("changed = %v", got)
			}
			if diff := cmp.Diff(tt.wantResult, cur); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
