package secretstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBindingSecret(t *testing.T) {
	long := strings.Repeat("b", 64) // a valid binding name, too long for a label value
	tests := []struct {
		name, ns, binding, id string
		wantLabels            map[string]string
		wantAnnots            map[string]string
	}{
		{
			name: "short name", ns: "ns", binding: "db", id: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
			wantLabels: map[string]string{LabelManagedBy: ManagedByValue, LabelBindingNamespace: "ns", LabelBindingName: "db"},
			wantAnnots: map[string]string{AnnotationBindingName: "db", AnnotationBindingExternalID: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"},
		},
		{
			name: "name too long for a label", ns: "ns", binding: long,
			wantLabels: map[string]string{LabelManagedBy: ManagedByValue, LabelBindingNamespace: "ns"},
			wantAnnots: map[string]string{AnnotationBindingName: long},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := BindingSecret(nil, tt.ns, tt.binding, tt.id)
			if diff := cmp.Diff(tt.wantLabels, s.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantAnnots, s.Annotations); diff != "" {
				t.Errorf("annotations (-want +got):\n%s", diff)
			}
		})
	}
}

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

// mapReader is a Reader over a fixed map, keyed "namespace/name".
type mapReader map[string]map[string][]byte

func (m mapReader) Get(_ context.Context, ns, name string) (map[string][]byte, error) {
	d, ok := m[ns+"/"+name]
	if !ok {
		return nil, ErrNotFound
	}
	return d, nil
}

func TestGetKey(t *testing.T) {
	r := mapReader{"ns/auth": {"username": []byte("admin")}}
	tests := []struct {
		name, secret, key string
		want              string
		wantErr           string
	}{
		{name: "present", secret: "auth", key: "username", want: "admin"},
		{name: "missing key", secret: "auth", key: "password", wantErr: `read key "password" of secret ns/auth: key not found`},
		{name: "missing secret", secret: "none", key: "token", wantErr: `read key "token" of secret ns/none: not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := GetKey(context.Background(), r, "ns", tt.secret, tt.key)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrNotFound) {
					t.Fatalf("err = %v, want %q wrapping ErrNotFound", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(v) != tt.want {
				t.Errorf("GetKey = %q, %v", v, err)
			}
		})
	}
	if d, err := ReadFunc(context.Background(), r)("ns", "auth"); err != nil || string(d["username"]) != "admin" {
		t.Errorf("ReadFunc = %v, %v", d, err)
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
