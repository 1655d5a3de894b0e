package secretstore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

// secretValue is the credential every failing path below handles; it must
// never show up in an error string.
const secretValue = "S3CRET-value-7f1c"

// TestErrorsNeverContainValues drives every failing path that touches a
// secret value and checks the error names what failed but never the value.
func TestErrorsNeverContainValues(t *testing.T) {
	ctx := context.Background()
	secretData := map[string][]byte{"password": []byte(secretValue)}

	newDir := func(t *testing.T) (*Dir, string) { return newTestDir(t) }

	tests := []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"kube: put over unmanaged secret", func(t *testing.T) error {
			s := unmanagedSecret("ns", "theirs")
			s.Data["password"] = []byte(secretValue)
			return NewKube(fake.NewClientset(s)).Put(ctx, "ns", "theirs", secrets.Secret{Data: secretData})
		}},
		{"kube: delete unmanaged secret", func(t *testing.T) error {
			s := unmanagedSecret("ns", "theirs")
			s.Data["password"] = []byte(secretValue)
			return NewKube(fake.NewClientset(s)).Delete(ctx, "ns", "theirs")
		}},
		{"kube: create once over unmanaged secret", func(t *testing.T) error {
			s := unmanagedSecret("ns", "theirs")
			s.Data["password"] = []byte(secretValue)
			_, err := NewKube(fake.NewClientset(s)).CreateOnce(ctx, "ns", "theirs", secrets.Secret{Data: secretData})
			return err
		}},
		{"kube: put with invalid key", func(t *testing.T) error {
			return NewKube(fake.NewClientset()).Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"../k": []byte(secretValue)}})
		}},
		{"dir: put over unmanaged secret", func(t *testing.T) error {
			d, root := newDir(t)
			mustWrite(t, filepath.Join(root, "ns", "s", "password"), secretValue)
			return d.Put(ctx, "ns", "s", secrets.Secret{Data: secretData})
		}},
		{"dir: create once over unmanaged secret", func(t *testing.T) error {
			d, root := newDir(t)
			mustWrite(t, filepath.Join(root, "ns", "s", "password"), secretValue)
			_, err := d.CreateOnce(ctx, "ns", "s", secrets.Secret{Data: secretData})
			return err
		}},
		{"dir: put with reserved key", func(t *testing.T) error {
			d, _ := newDir(t)
			return d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{metaFile: []byte(secretValue)}})
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
			return d.Put(ctx, "ns", "s", secrets.Secret{Data: secretData})
		}},
		{"dir: put into a read-only secret directory", func(t *testing.T) error {
			if os.Geteuid() == 0 {
				// root ignores permissions; use a file where a directory belongs instead
				d, root := newDir(t)
				mustWrite(t, filepath.Join(root, "ns", "s"), secretValue)
				return d.Put(ctx, "ns", "s", secrets.Secret{Data: secretData})
			}
			d, root := newDir(t)
			if err := d.Put(ctx, "ns", "s", secrets.Secret{Data: map[string][]byte{"a": []byte("1")}}); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "ns", "s")
			if err := os.Chmod(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
			return d.Put(ctx, "ns", "s", secrets.Secret{Data: secretData})
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
