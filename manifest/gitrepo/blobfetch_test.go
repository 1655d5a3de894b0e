package gitrepo

import (
	"context"
	"errors"
	"testing"
)

// TestFetchBlobFromAShallowCache: a depth-1 cache holds only the head's
// objects; FetchBlob brings one blob of an older revision (the manifest a
// record says was last applied) with one request for that object (git
// over HTTP serves any object reachable from a ref), and says
// ErrRevisionNotFound for an object the server does not serve.
func TestFetchBlobFromAShallowCache(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		serves bool
	}{{"reachable old blob", true}, {"object the server does not have", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, gs, opts := httpRepo(t, baseFiles)
			old := runGit(t, tr.bare, "rev-parse", "main:manifests/instances/db.yaml")
			if !tc.serves {
				old = "0123456789abcdef0123456789abcdef01234567"
			}
			tr.commit("db changed", map[string]string{"manifests/instances/db.yaml": "kind: ServiceInstance\nname: db\nplan: large\n"})
			r := mustOpen(t, opts, WithCacheDir(t.TempDir()))
			defer r.Close()
			mustFetch(t, r)
			if _, err := r.ReadBlob(old); err == nil {
				t.Fatal("setup: the depth-1 cache already holds the old blob")
			}
			gs.requests()
			data, err := r.FetchBlob(context.Background(), old)
			if !tc.serves {
				if !errors.Is(err, ErrRevisionNotFound) {
					t.Fatalf("FetchBlob from a refusing server: %v, want ErrRevisionNotFound", err)
				}
				return
			}
			if err != nil || string(data) != baseFiles["manifests/instances/db.yaml"] {
				t.Fatalf("FetchBlob = %q, %v; want the old contents", data, err)
			}
			if n := countReq(gs.requests(), "POST /"+tr.name+"/git-upload-pack"); n != 1 {
				t.Errorf("%d upload-pack requests, want 1", n)
			}
			gs.requests()
			if _, err := r.FetchBlob(context.Background(), old); err != nil || len(gs.requests()) != 0 {
				t.Errorf("second FetchBlob: %v, or it asked the server again", err)
			}
		})
	}
}
