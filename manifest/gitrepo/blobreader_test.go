package gitrepo

import (
	"fmt"
	"sync"
	"testing"
)

// TestBlobReaderReadsBesideTheRepo: a BlobReader reads every blob of a
// local repository and of a remote's memory copy while another goroutine
// reads through the Repo (run with -race), and both get the files' contents.
func TestBlobReaderReadsBesideTheRepo(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("apps/f-%03d.yaml", i)] = fmt.Sprintf("name: f-%03d\nvalue: %d\n", i, i*i)
	}
	tr := newTestRepo(t, files)
	_, _, remote := httpRepo(t, files)
	for name, opts := range map[string]Options{"local": {URL: tr.bare, Branch: "main"}, "remote in memory": remote} {
		t.Run(name, func(t *testing.T) {
			r := mustOpen(t, opts)
			head := mustFetch(t, r).Head
			list, err := r.Files(head, "apps")
			if err != nil || len(list) != len(files) {
				t.Fatalf("files: %d, %v", len(list), err)
			}
			br, err := r.BlobReader()
			if err != nil {
				t.Fatal(err)
			}
			defer br.Close()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, read := range []func(string) ([]byte, error){r.ReadBlob, br.ReadBlob} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, f := range list {
						data, err := read(f.Blob)
						if err == nil && string(data) != files[f.Path] {
							err = fmt.Errorf("%s: read %q, want %q", f.Path, data, files[f.Path])
						}
						if err != nil {
							errs[i] = err
							return
						}
					}
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
