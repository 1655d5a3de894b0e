package secrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// TestCredentialsToData: without transforms, each credential becomes one
// key of the Secret.
func TestCredentialsToData(t *testing.T) {
	tests := []struct {
		name    string
		creds   map[string]any
		want    map[string][]byte
		wantErr string
	}{
		{name: "nil", creds: nil, want: map[string][]byte{}},
		{
			name: "strings as their bytes, everything else as compact JSON",
			creds: map[string]any{
				"username": "admin",
				"empty":    "",
				"port":     float64(5432),
				"big":      json.Number("12345678901234567890"),
				"ratio":    0.5,
				"tls":      true,
				"nothing":  nil,
				"object":   map[string]any{"b": 1.0, "a": []any{"x", 2.0}},
				"array":    []any{"h1", "h2"},
				"html":     map[string]any{"q": "a<b&c>d"},
				"raw":      []byte{0xff, 0x00},
			},
			want: map[string][]byte{
				"username": []byte("admin"),
				"empty":    []byte(""),
				"port":     []byte("5432"),
				"big":      []byte("12345678901234567890"),
				"ratio":    []byte("0.5"),
				"tls":      []byte("true"),
				"nothing":  []byte("null"),
				"object":   []byte(`{"a":["x",2],"b":1}`),
				"array":    []byte(`["h1","h2"]`),
				"html":     []byte(`{"q":"a<b&c>d"}`),
				"raw":      {0xff, 0x00},
			},
		},
		{name: "key with a space", creds: map[string]any{"my key": "v"}, wantErr: `credential "my key": invalid name: key "my key"`},
		{name: "key with a slash", creds: map[string]any{"a/b": "v"}, wantErr: `credential "a/b"`},
		{name: "dot-dot key", creds: map[string]any{"..": "v"}, wantErr: `credential ".."`},
		{name: "empty key", creds: map[string]any{"": "v"}, wantErr: `credential ""`},
		{name: "NaN", creds: map[string]any{"n": math.NaN()}, wantErr: `credential "n": value of type float64 cannot be encoded as JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secrets.BindingData(t.Context(), tt.creds, nil, nil, "ns")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// storeWith is a directory secret store holding data, keyed
// "namespace/name".
func storeWith(t *testing.T, data map[string]map[string][]byte) *secretstore.Dir {
	t.Helper()
	d, err := secretstore.NewDir(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	for id, kv := range data {
		ns, name, _ := strings.Cut(id, "/")
		if err := d.Put(context.Background(), ns, name, secrets.Secret{Data: kv}); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestApplyTransforms(t *testing.T) {
	str := func(s string) *string { return &s }
	store := storeWith(t, map[string]map[string][]byte{
		"foo/bar":       {"EXTRA": []byte("from-bar"), "USERNAME": []byte("overridden")},
		"app-ns/shared": {"CA_CERT": []byte("-----BEGIN-----")},
	})
	tests := []struct {
		name       string
		creds      map[string]any
		transforms []manifest.SecretTransform
		want       map[string][]byte
		wantErr    string
	}{
		{
			// Service Catalog's RenameKeyTransform doc example.
			name:       "renameKey USERNAME to DB_USER",
			creds:      map[string]any{"USERNAME": "johndoe"},
			transforms: []manifest.SecretTransform{{RenameKey: &manifest.RenameKeyTransform{From: "USERNAME", To: "DB_USER"}}},
			want:       map[string][]byte{"DB_USER": []byte("johndoe")},
		},
		{
			// Service Catalog's AddKeyTransform doc example.
			name:       "addKey stringValue",
			creds:      map[string]any{},
			transforms: []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "CONNECTION_POOL_SIZE", StringValue: str("10")}}},
			want:       map[string][]byte{"CONNECTION_POOL_SIZE": []byte("10")},
		},
		{
			// Service Catalog's jsonPathExpression doc example.
			name:       "addKey jsonPathExpression into an object",
			creds:      map[string]any{"foo": map[string]any{"bar": "foobar"}},
			transforms: []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "FOO_BAR", JSONPathExpression: str("{.foo.bar}")}}},
			want:       map[string][]byte{"foo": []byte(`{"bar":"foobar"}`), "FOO_BAR": []byte("foobar")},
		},
		{
			// Service Catalog's AddKeysFromTransform doc example.
			name:       "addKeysFrom secretRef foo/bar overwrites",
			creds:      map[string]any{"USERNAME": "broker"},
			transforms: []manifest.SecretTransform{{AddKeysFrom: &manifest.AddKeysFromTransform{SecretRef: &manifest.ObjectReference{Namespace: "foo", Name: "bar"}}}},
			want:       map[string][]byte{"USERNAME": []byte("overridden"), "EXTRA": []byte("from-bar")},
		},
		{
			name:       "addKeysFrom defaults to the binding's namespace",
			creds:      map[string]any{},
			transforms: []manifest.SecretTransform{{AddKeysFrom: &manifest.AddKeysFromTransform{SecretRef: &manifest.ObjectReference{Name: "shared"}}}},
			want:       map[string][]byte{"CA_CERT": []byte("-----BEGIN-----")},
		},
		{
			name:       "removeKey",
			creds:      map[string]any{"a": "1", "b": "2"},
			transforms: []manifest.SecretTransform{{RemoveKey: &manifest.RemoveKeyTransform{Key: "b"}}},
			want:       map[string][]byte{"a": []byte("1")},
		},
		{
			name:       "removeKey and renameKey of a missing key are no-ops",
			creds:      map[string]any{"a": "1"},
			transforms: []manifest.SecretTransform{{RemoveKey: &manifest.RemoveKeyTransform{Key: "zz"}}, {RenameKey: &manifest.RenameKeyTransform{From: "zz", To: "yy"}}},
			want:       map[string][]byte{"a": []byte("1")},
		},
		{
			name:  "host:port from numbers; big integers stay exact",
			creds: map[string]any{"host": "db.example", "port": float64(5432), "id": float64(12345678901)},
			transforms: []manifest.SecretTransform{
				{AddKey: &manifest.AddKeyTransform{Key: "ADDR", JSONPathExpression: str("{.host}:{.port}")}},
				{AddKey: &manifest.AddKeyTransform{Key: "ID", JSONPathExpression: str("{.id}")}},
			},
			want: map[string][]byte{"host": []byte("db.example"), "port": []byte("5432"), "id": []byte("12345678901"), "ADDR": []byte("db.example:5432"), "ID": []byte("12345678901")},
		},
		{
			name:  "transforms apply in order: jsonPath sees renamed and added keys",
			creds: map[string]any{"hostname": "h", "secret": "s"},
			transforms: []manifest.SecretTransform{
				{RenameKey: &manifest.RenameKeyTransform{From: "hostname", To: "HOST"}},
				{AddKey: &manifest.AddKeyTransform{Key: "SCHEME", Value: []byte("pg")}},
				{AddKey: &manifest.AddKeyTransform{Key: "URL", JSONPathExpression: str("{.SCHEME}://{.HOST}")}},
				{RemoveKey: &manifest.RemoveKeyTransform{Key: "SCHEME"}},
				{RemoveKey: &manifest.RemoveKeyTransform{Key: "secret"}},
			},
			want: map[string][]byte{"HOST": []byte("h"), "URL": []byte("pg://h")},
		},
		{
			name:  "addKey precedence: jsonPath over stringValue over value",
			creds: map[string]any{"x": "fromPath"},
			transforms: []manifest.SecretTransform{
				{AddKey: &manifest.AddKeyTransform{Key: "A", Value: []byte("v"), StringValue: str("s")}},
				{AddKey: &manifest.AddKeyTransform{Key: "B", Value: []byte("v"), StringValue: str("s"), JSONPathExpression: str("{.x}")}},
				{AddKey: &manifest.AddKeyTransform{Key: "C", Value: []byte{0, 1, 2}}},
			},
			want: map[string][]byte{"x": []byte("fromPath"), "A": []byte("s"), "B": []byte("fromPath"), "C": {0, 1, 2}},
		},
		{
			name:       "renameKey fixes a broker key that is not a valid Secret key",
			creds:      map[string]any{"db url": "u"},
			transforms: []manifest.SecretTransform{{RenameKey: &manifest.RenameKeyTransform{From: "db url", To: "DB_URL"}}},
			want:       map[string][]byte{"DB_URL": []byte("u")},
		},
		{
			name:       "addKey over an object credential replaces it",
			creds:      map[string]any{"cfg": map[string]any{"a": 1.0}},
			transforms: []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "cfg", StringValue: str("flat")}}},
			want:       map[string][]byte{"cfg": []byte("flat")},
		},
		// Errors.
		{
			name:       "no field set",
			creds:      map[string]any{},
			transforms: []manifest.SecretTransform{{}},
			wantErr:    "secretTransforms[0]: exactly one of renameKey, addKey, addKeysFrom, removeKey must be set (found 0)",
		},
		{
			name:  "two fields set",
			creds: map[string]any{},
			transforms: []manifest.SecretTransform{
				{RemoveKey: &manifest.RemoveKeyTransform{Key: "a"}},
				{RemoveKey: &manifest.RemoveKeyTransform{Key: "a"}, RenameKey: &manifest.RenameKeyTransform{From: "a", To: "b"}},
			},
			wantErr: "secretTransforms[1]: exactly one of",
		},
		{
			name:       "renameKey to an invalid key",
			creds:      map[string]any{"a": "1"},
			transforms: []manifest.SecretTransform{{RenameKey: &manifest.RenameKeyTransform{From: "a", To: "../b"}}},
			wantErr:    `secretTransforms[0]: renameKey "a" to "../b": invalid name: key "../b"`,
		},
		{
			name:       "renameKey from empty",
			creds:      map[string]any{},
			transforms: []manifest.SecretTransform{{RenameKey: &manifest.RenameKeyTransform{To: "b"}}},
			wantErr:    "secretTransforms[0]: renameKey: from is empty",
		},
		{
			name:       "addKey with an invalid key",
			creds:      map[string]any{},
			transforms: []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "", StringValue: str("x")}}},
			wantErr:    `secretTransforms[0]: addKey "": invalid name`,
		},
		{
			name:       "jsonPath to a missing field",
			creds:      map[string]any{"host": "h"},
			transforms: []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "ADDR", JSONPathExpression: str("{.host}:{.port}")}}},
			wantErr:    `secretTransforms[0]: addKey "ADDR": jsonPathExpression "{.host}:{.port}" does not evaluate against the credentials`,
		},
		{
			name:       "invalid jsonPath",
			creds:      map[string]any{},
			transforms: []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "K", JSONPathExpression: str("{.a[}")}}},
			wantErr:    `secretTransforms[0]: addKey "K": invalid jsonPathExpression "{.a[}"`,
		},
		{
			name:       "addKeysFrom a missing secret",
			creds:      map[string]any{},
			transforms: []manifest.SecretTransform{{RemoveKey: &manifest.RemoveKeyTransform{Key: "x"}}, {AddKeysFrom: &manifest.AddKeysFromTransform{SecretRef: &manifest.ObjectReference{Name: "nope"}}}},
			wantErr:    "secretTransforms[1]: addKeysFrom secret app-ns/nope: get secret app-ns/nope: not found",
		},
		{
			name:       "addKeysFrom without a name",
			creds:      map[string]any{},
			transforms: []manifest.SecretTransform{{AddKeysFrom: &manifest.AddKeysFromTransform{}}},
			wantErr:    "secretTransforms[0]: addKeysFrom: secretRef.name is empty",
		},
		{
			name:       "removeKey without a key",
			creds:      map[string]any{},
			transforms: []manifest.SecretTransform{{RemoveKey: &manifest.RemoveKeyTransform{}}},
			wantErr:    "secretTransforms[0]: removeKey: key is empty",
		},
		{
			name:    "invalid broker key left as is",
			creds:   map[string]any{"db url": "u"},
			wantErr: `credential "db url"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := fmt.Sprint(tt.creds)
			got, err := secrets.BindingData(t.Context(), tt.creds, tt.transforms, store, "app-ns")
			if fmt.Sprint(tt.creds) != orig {
				t.Errorf("input credentials modified")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyTransformsNilReader(t *testing.T) {
	_, err := secrets.BindingData(t.Context(), nil, []manifest.SecretTransform{{AddKeysFrom: &manifest.AddKeysFromTransform{SecretRef: &manifest.ObjectReference{Namespace: "a", Name: "b"}}}}, nil, "ns")
	if err == nil || !strings.Contains(err.Error(), "addKeysFrom secret a/b: no secret store") {
		t.Errorf("err = %v", err)
	}
}

func TestApplyTransformsAddKeysFromWrapsNotFound(t *testing.T) {
	_, err := secrets.BindingData(t.Context(), nil, []manifest.SecretTransform{{AddKeysFrom: &manifest.AddKeysFromTransform{SecretRef: &manifest.ObjectReference{Name: "b"}}}}, storeWith(t, nil), "ns")
	if !errors.Is(err, secretstore.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}
