package plan

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestJoinPath(t *testing.T) {
	for _, c := range []struct{ prefix, key, want string }{
		{"parameters", "size", "parameters.size"},
		{"parameters", "max-conn_2", "parameters.max-conn_2"},
		{"parameters", "a.b", `parameters["a.b"]`},
		{"parameters", "with space", `parameters["with space"]`},
		{"parameters", "", `parameters[""]`},
	} {
		if got := joinPath(c.prefix, c.key); got != c.want {
			t.Errorf("joinPath(%q, %q) = %q, want %q", c.prefix, c.key, got, c.want)
		}
	}
}

func TestParamChanges(t *testing.T) {
	params := map[string]any{
		"size":    json.Number("10"),
		"version": "16",
		"network": map[string]any{"cidr": "10.0.0.0/8", "ports": []any{json.Number("80")}},
		"empty":   map[string]any{},
		"token":   map[string]any{"value": "s3cr3t"},
	}
	got := paramChanges(params, []string{"token"}, ChangeAdd)
	want := []Change{
		{Path: "parameters.empty", Op: ChangeAdd, New: "{}"},
		{Path: "parameters.network.cidr", Op: ChangeAdd, New: `"10.0.0.0/8"`},
		{Path: "parameters.network.ports", Op: ChangeAdd, New: "[80]"},
		{Path: "parameters.size", Op: ChangeAdd, New: "10"},
		{Path: "parameters.token", Op: ChangeAdd, New: SensitiveValue, Sensitive: true},
		{Path: "parameters.version", Op: ChangeAdd, New: `"16"`},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("paramChanges (-want +got):\n%s", d)
	}
}

func TestParamDiff(t *testing.T) {
	cases := []struct {
		name         string
		old, new     map[string]any
		secret       []string
		withRemovals bool
		fromManifest bool
		want         []Change
	}{
		{
			name: "modify, add, remove without the old value",
			old:  map[string]any{"size": 50.0, "gone": "x", "same": "y"},
			new:  map[string]any{"size": json.Number("10"), "added": true, "same": "y"},
			want: []Change{
				{Path: "parameters.added", Op: ChangeAdd, New: "true"},
				{Path: "parameters.gone", Op: ChangeRemove},
				{Path: "parameters.size", Op: ChangeModify, Old: "50", New: "10"},
			},
			withRemovals: true,
		},
		{
			name: "removals skipped for drift (broker defaults)",
			old:  map[string]any{"tier": "default", "size": 10.0},
			new:  map[string]any{"size": json.Number("10")},
		},
		{
			name:   "secret key changed: both sides hidden",
			old:    map[string]any{"password": "old-pass"},
			new:    map[string]any{"password": "new-pass"},
			secret: []string{"password"},
			want:   []Change{{Path: "parameters.password", Op: ChangeModify, Old: SensitiveValue, New: SensitiveValue, Sensitive: true}},
		},
		{
			name:   "secret key unchanged: nothing",
			old:    map[string]any{"password": "same"},
			new:    map[string]any{"password": "same"},
			secret: []string{"password"},
		},
		{
			name:   "nested secret structure not shown",
			old:    map[string]any{"creds": map[string]any{"user": "a"}},
			new:    map[string]any{"creds": map[string]any{"user": "b"}},
			secret: []string{"creds"},
			want:   []Change{{Path: "parameters.creds", Op: ChangeModify, Old: SensitiveValue, New: SensitiveValue, Sensitive: true}},
		},
		{
			name:         "old from the manifest last applied: removals show their value, secrets stay hidden",
			old:          map[string]any{"tier": "gold", "password": "old-pass", "size": 10.0},
			new:          map[string]any{"size": json.Number("20")},
			secret:       []string{"password"},
			fromManifest: true,
			want: []Change{
				{Path: "parameters.password", Op: ChangeRemove, Old: SensitiveValue, Sensitive: true},
				{Path: "parameters.size", Op: ChangeModify, Old: "10", New: "20"},
				{Path: "parameters.tier", Op: ChangeRemove, Old: `"gold"`},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := paramDiff(c.old, c.new, c.secret, c.withRemovals, c.fromManifest)
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("paramDiff (-want +got):\n%s", d)
			}
		})
	}
}

func TestParamsDrifted(t *testing.T) {
	desired := map[string]any{"size": json.Number("10"), "tags": []any{"a"}}
	for _, c := range []struct {
		name     string
		observed map[string]any
		want     bool
	}{
		{"equal with extra defaults", map[string]any{"size": 10.0, "tags": []any{"a"}, "tier": "x"}, false},
		{"value differs", map[string]any{"size": 11.0, "tags": []any{"a"}}, true},
		{"key missing", map[string]any{"size": 10.0}, true},
		{"array differs", map[string]any{"size": 10.0, "tags": []any{"a", "b"}}, true},
	} {
		if got := paramsDrifted(c.observed, desired); got != c.want {
			t.Errorf("%s: paramsDrifted = %v, want %v", c.name, got, c.want)
		}
	}
}
