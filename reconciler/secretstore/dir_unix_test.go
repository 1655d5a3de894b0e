//go:build unix

package secretstore

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/osbgit/osbgit/reconciler/secrets"
)

// TestDirPermissionsIgnoreUmask: the store sets its modes itself, whatever
// the process umask (a Unix notion; hence this file).
func TestDirPermissionsIgnoreUmask(t *testing.T) {
	old := syscall.Umask(0o077 | 0o100) // would strip the owner's x bit
	defer syscall.Umask(old)
	d, root := newTestDir(t)
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(context.Background(), "ns", "s", secrets.Secret{Data: map[string][]byte{"k": []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"ns": "drwx------", "ns/s": "drwx------", "ns/s/k": "-rw-------"} {
		if got := tree(t, root)[rel]; got != want {
			t.Errorf("%s mode = %s, want %s", rel, got, want)
		}
	}
}
