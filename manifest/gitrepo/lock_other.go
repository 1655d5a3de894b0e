//go:build !unix

package gitrepo

import "context"

// lockFile is a no-op where flock is unavailable: sharing one cache
// directory between processes is then unsupported.
func lockFile(ctx context.Context, path string) (func(), error) {
	return func() {}, nil
}
