//go:build !unix

package secretstore

import (
	"context"
	"os"
)

// writeNewFiles creates the files of a directory this process has just
// made (a new Secret's hidden directory), each synced, then syncs the
// directory.
func writeNewFiles(parent *os.Root, dir string, files []namedData) error {
	d, err := parent.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	for _, f := range files {
		if err := writeNew(d, f.name, f.data); err != nil {
			return f.wrap(err)
		}
	}
	return syncDir(d)
}

// lockFile is a no-op where flock is unavailable: only the in-process
// locks remain, and sharing a store between processes is unsupported. The
// release closes f.
func lockFile(ctx context.Context, f *os.File, exclusive bool) (func(), error) {
	return func() { f.Close() }, nil
}
