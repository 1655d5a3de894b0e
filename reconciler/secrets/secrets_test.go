package secrets_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/util/jsonpath"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/secrets"
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
			wantLabels: map[string]string{secrets.LabelManagedBy: secrets.ManagedByValue, secrets.LabelBindingNamespace: "ns", secrets.LabelBindingName: "db"},
			wantAnnots: map[string]string{secrets.AnnotationBindingName: "db", secrets.AnnotationBindingExternalID: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"},
		},
		{
			name: "name too long for a label", ns: "ns", binding: long,
			wantLabels: map[string]string{secrets.LabelManagedBy: secrets.ManagedByValue, secrets.LabelBindingNamespace: "ns"},
			wantAnnots: map[string]string{secrets.AnnotationBindingName: long},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := secrets.BindingSecret(nil, tt.ns, tt.binding, tt.id)
			if diff := cmp.Diff(tt.wantLabels, s.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantAnnots, s.Annotations); diff != "" {
				t.Errorf("annotations (-want +got):\n%s", diff)
			}
		})
	}
}

// secretValue is the credential every failing path below handles; it must
// never show up in an error string.
const secretValue = "S3CRET-value-7f1c"

// TestBindingDataErrorsNeverContainValues drives every failing path of
// turning credentials into a Secret and checks the error names what failed
// but never the value.
func TestBindingDataErrorsNeverContainValues(t *testing.T) {
	str := func(s string) *string { return &s }
	creds := map[string]any{"password": secretValue, "nested": map[string]any{"pw": secretValue}}
	tests := []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"credentials: invalid key", func(t *testing.T) error {
			_, err := secrets.BindingData(t.Context(), map[string]any{"bad key": secretValue}, nil, nil, "ns")
			return err
		}},
		{"credentials: unencodable value next to a secret", func(t *testing.T) error {
			_, err := secrets.BindingData(t.Context(), map[string]any{"obj": map[string]any{"pw": secretValue, "n": math.Inf(1)}}, nil, nil, "ns")
			return err
		}},
		{"transform: jsonPath missing field", func(t *testing.T) error {
			_, err := secrets.BindingData(t.Context(), creds, []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "K", JSONPathExpression: str("{.nope}")}}}, nil, "ns")
			return err
		}},
		{"transform: jsonPath filter over a string value", func(t *testing.T) error {
			expr := `{.password[?(@.x=="y")]}`
			// client-go's own error quotes the value; ours must not.
			j := jsonpath.New("x")
			if err := j.Parse(expr); err != nil {
				t.Fatal(err)
			}
			if rawErr := j.Execute(&bytes.Buffer{}, map[string]any{"password": secretValue}); rawErr == nil || !strings.Contains(rawErr.Error(), secretValue) {
				t.Logf("note: client-go no longer quotes the value (%v)", rawErr)
			}
			_, err := secrets.BindingData(t.Context(), creds, []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "K", JSONPathExpression: str(expr)}}}, nil, "ns")
			return err
		}},
		{"transform: jsonPath index into a nested secret", func(t *testing.T) error {
			_, err := secrets.BindingData(t.Context(), creds, []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "K", JSONPathExpression: str("{.nested.pw[3]}")}}}, nil, "ns")
			return err
		}},
		{"transform: renameKey to invalid key", func(t *testing.T) error {
			_, err := secrets.BindingData(t.Context(), creds, []manifest.SecretTransform{{RenameKey: &manifest.RenameKeyTransform{From: "password", To: "a/b"}}}, nil, "ns")
			return err
		}},
		{"transform: addKey with invalid key and a secret value", func(t *testing.T) error {
			_, err := secrets.BindingData(t.Context(), creds, []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "a b", StringValue: str(secretValue)}}}, nil, "ns")
			return err
		}},
		{"transform: addKeysFrom merges a secret whose key is then invalid", func(t *testing.T) error {
			store := storeWith(t, map[string]map[string][]byte{"ns/src": {"ok": []byte(secretValue)}})
			_, err := secrets.BindingData(t.Context(), map[string]any{"x y": secretValue}, []manifest.SecretTransform{{AddKeysFrom: &manifest.AddKeysFromTransform{SecretRef: &manifest.ObjectReference{Name: "src"}}}}, store, "ns")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(t)
			if err == nil {
				t.Fatal("expected an error")
			}
			if strings.Contains(err.Error(), secretValue) {
				t.Errorf("error contains the secret value: %v", err)
			}
			if strings.Contains(err.Error(), "%!") {
				t.Errorf("malformed error: %v", err)
			}
		})
	}
}
