//go:build unix

package secretstore

import (
	"context"
	"os"

	"golang.org/x/sys/unix"
)

// writeNewFiles creates the files of a directory this process has just
// made (a new Secret's hidden directory), each synced, then syncs the
// directory.
//
// It works on the directory's descriptor with openat(2) rather than through
// os.Root: a converge writes thousands of Secrets of several keys, and
// os.Root's per-open path walk and poller registration cost half the time
// of a Put. It is as safe: names are single, validated path components, and
// O_CREAT|O_EXCL|O_NOFOLLOW never follows or reuses an existing entry.
func writeNewFiles(parent *os.Root, dir string, files []namedData) error {
	d, err := parent.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	fd := int(d.Fd())
	for _, f := range files {
		if err := writeNewAt(fd, f.name, f.data); err != nil {
			unix.Unlinkat(fd, f.name, 0)
			return f.wrap(err)
		}
	}
	return d.Sync()
}

func writeNewAt(dirfd int, name string, data []byte) error {
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(filePerm))
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	err = unix.Fchmod(fd, uint32(filePerm)) // exact, whatever the umask
	for len(data) > 0 && err == nil {
		var n int
		n, err = unix.Write(fd, data)
		if err == unix.EINTR {
			err = nil
		}
		data = data[max(n, 0):]
	}
	if err == nil {
		err = unix.Fsync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: name, Err: err}
	}
	return nil
}

// lockFile takes an flock on f, exclusive or shared, waiting until it is
// granted or ctx ends, and returns its release, which closes f. On error f
// is closed (once a wait given up on ends). The kernel releases the lock
// when the holder dies, so a killed process never blocks the next one.
//
// The wait is a blocking flock in a goroutine, woken by the kernel the
// moment the lock is free (polling, as the Git cache's lock does, would
// add its interval to every contended Put).
func lockFile(ctx context.Context, f *os.File, exclusive bool) (func(), error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	fd := int(f.Fd())
	release := func() { f.Close() } // closing drops the lock
	err := flock(fd, how|unix.LOCK_NB)
	if err == nil {
		return release, nil
	}
	if err != unix.EWOULDBLOCK {
		f.Close()
		return nil, err
	}
	granted := make(chan error, 1)
	go func() { granted <- flock(fd, how) }()
	select {
	case err := <-granted:
		if err != nil {
			f.Close()
			return nil, err
		}
		return release, nil
	case <-ctx.Done():
		go func() {
			<-granted
			f.Close()
		}()
		return nil, ctx.Err()
	}
}

// flock is unix.Flock, retried when a signal interrupts it.
func flock(fd, how int) error {
	for {
		if err := unix.Flock(fd, how); err != unix.EINTR {
			return err
		}
	}
}
