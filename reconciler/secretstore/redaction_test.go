package secretstore

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/jsonpath"

	"github.com/osbgit/osbgit/manifest"
)

// secretValue is the credential every failing path below handles; it must
// never show up in an error string.
const secretValue = "S3CRET-value-7f1c"

// TestErrorsNeverContainValues drives every failing path that touches a
// secret value and checks the error names what failed but never the value.
func TestErrorsNeverContainValues(t *testing.T) {
	ctx := context.Background()
	str := func(s string) *string { return &s }
	creds := map[string]any{"password": secretValue, "nested": map[string]any{"pw": secretValue}}
	secretData := map[string][]byte{"password": []byte(secretValue)}

	newDir := func(t *testing.T) (*Dir, string) { return newTestDir(t) }

	tests := []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"credentials: invalid key", func(t *testing.T) error {
			_, err := CredentialsToData(map[string]any{"bad key": secretValue})
			return err
		}},
		{"credentials: unencodable value next to a secret", func(t *testing.T) error {
			_, err := CredentialsToData(map[string]any{"obj": map[string]any{"pw": secretValue, "n": math.Inf(1)}})
			return err
		}},
		{"transform: jsonPath missing field", func(t *testing.T) error {
			_, err := BindingData(creds, []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "K", JSONPathExpression: str("{.nope}")}}}, nil, "ns")
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
			_, err := BindingData(creds, []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "K", JSONPathExpression: str(expr)}}}, nil, "ns")
			return err
		}},
		{"transform: jsonPath index into a nested secret", func(t *testing.T) error {
			_, err := BindingData(creds, []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "K", JSONPathExpression: str("{.nested.pw[3]}")}}}, nil, "ns")
			return err
		}},
		{"transform: renameKey to invalid key", func(t *testing.T) error {
			_, err := BindingData(creds, []manifest.SecretTransform{{RenameKey: &manifest.RenameKeyTransform{From: "password", To: "a/b"}}}, nil, "ns")
			return err
		}},
		{"transform: addKey with invalid key and a secret value", func(t *testing.T) error {
			_, err := BindingData(creds, []manifest.SecretTransform{{AddKey: &manifest.AddKeyTransform{Key: "a b", StringValue: str(secretValue)}}}, nil, "ns")
			return err
		}},
		{"transform: addKeysFrom merges a secret whose key is then invalid for CredentialsToData", func(t *testing.T) error {
			read := secrets{"ns/src": {"ok": []byte(secretValue)}}.read
			_, err := BindingData(map[string]any{"x y": secretValue}, []manifest.SecretTransform{{AddKeysFrom: &manifest.AddKeysFromTransform{SecretRef: &manifest.ObjectReference{Name: "src"}}}}, read, "ns")
			return err
		}},
		{"kube: put over unmanaged secret", func(t *testing.T) error {
			s := unmanagedSecret("ns", "theirs")
			s.Data["password"] = []byte(secretValue)
			return NewKube(fake.NewClientset(s)).Put(ctx, "ns", "theirs", Secret{Data: secretData})
		}},
		{"kube: delete unmanaged secret", func(t *testing.T) error {
			s := unmanagedSecret("ns", "theirs")
			s.Data["password"] = []byte(secretValue)
			return NewKube(fake.NewClientset(s)).Delete(ctx, "ns", "theirs")
		}},
		{"kube: put with invalid key", func(t *testing.T) error {
			return NewKube(fake.NewClientset()).Put(ctx, "ns", "s", Secret{Data: map[string][]byte{"../k": []byte(secretValue)}})
		}},
		{"kube: GetKey of a missing key", func(t *testing.T) error {
			k := NewKube(fake.NewClientset())
			if err := k.Put(ctx, "ns", "s", Secret{Data: secretData}); err != nil {
				t.Fatal(err)
			}
			_, err := GetKey(ctx, k, "ns", "s", "other")
			return err
		}},
		{"dir: put over unmanaged secret", func(t *testing.T) error {
			d, root := newDir(t)
			mustWrite(t, filepath.Join(root, "ns", "s", "password"), secretValue)
			return d.Put(ctx, "ns", "s", Secret{Data: secretData})
		}},
		{"dir: put with reserved key", func(t *testing.T) error {
			d, _ := newDir(t)
			return d.Put(ctx, "ns", "s", Secret{Data: map[string][]byte{metaFile: []byte(secretValue)}})
		}},
		{"dir: get with a symlinked key", func(t *testing.T) error {
			d, root := newDir(t)
			mustWrite(t, filepath.Join(root, "target"), secretValue)
			mustSymlink(t, filepath.Join(root, "target"), filepath.Join(root, "ns", "s", "password"))
			_, err := d.Get(ctx, "ns", "s")
			return err
		}},
		{"dir: get with an oversized value", func(t *testing.T) error {
			d, root := newDir(t)
			mustWrite(t, filepath.Join(root, "ns", "s", "big"), secretValue+strings.Repeat("x", maxValueSize))
			_, err := d.Get(ctx, "ns", "s")
			return err
		}},
		{"dir: put with corrupt metadata next to secret values", func(t *testing.T) error {
			d, root := newDir(t)
			mustWrite(t, filepath.Join(root, "ns", "s", "password"), secretValue)
			mustWrite(t, filepath.Join(root, "ns", "s", metaFile), `{"labels":`)
			return d.Put(ctx, "ns", "s", Secret{Data: secretData})
		}},
		{"dir: put into a read-only secret directory", func(t *testing.T) error {
			if os.Geteuid() == 0 {
				// root ignores permissions; use a file where a directory belongs instead
				d, root := newDir(t)
				mustWrite(t, filepath.Join(root, "ns", "s"), secretValue)
				return d.Put(ctx, "ns", "s", Secret{Data: secretData})
			}
			d, root := newDir(t)
			if err := d.Put(ctx, "ns", "s", Secret{Data: map[string][]byte{"a": []byte("1")}}); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "ns", "s")
			if err := os.Chmod(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
			return d.Put(ctx, "ns", "s", Secret{Data: secretData})
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
