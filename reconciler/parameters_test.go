package reconciler

import (
	"context"
	"testing"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler/plan"
)

// TestParametersFromReadBeforePlanning: the pass reads parametersFrom
// Secrets before planning; one that cannot be read blocks only the
// resource naming it, with an error that says which Secret and why, and a
// value read is learnt for scrubbing.
func TestParametersFromReadBeforePlanning(t *testing.T) {
	t.Parallel()
	const want = `spec.parametersFrom[0]: read key "parameters" of Secret apps/db-params: `
	tests := []struct {
		name    string
		secret  []string // key, value pairs of apps/db-params; nil: none
		noStore bool
		wantErr string
		// learnt: the value was read, so it is scrubbed from now on.
		learnt bool
	}{
		{name: "readable", secret: []string{"parameters", `{"password":"params-value-5e1d"}`}, learnt: true},
		{name: "missing Secret", wantErr: want + "secret apps/db-params: get secret apps/db-params: not found"},
		{name: "missing key", secret: []string{"other", "x", "more", "y"}, wantErr: want + `secret apps/db-params has no key "parameters" (keys: more, other)`},
		{name: "no secret store", noStore: true, wantErr: want + "secret apps/db-params: no secret store configured (use --secret-store)"},
		{name: "not an object", secret: []string{"parameters", `["params-value-5e1d"]`}, wantErr: `spec.parametersFrom[0]: key "parameters" of Secret apps/db-params must hold a JSON object`, learnt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(url string) map[string]string {
				return map[string]string{"broker.yaml": brokerYAML(url),
					"db.yaml":    instanceYAML("db", "small", "") + "  parametersFrom:\n  - secretKeyRef: {name: db-params, key: parameters}\n",
					"cache.yaml": instanceYAML("cache", "small", "")}
			})
			if tt.secret != nil {
				if err := f.store.Put(context.Background(), "apps", "db-params", secretOf(tt.secret...)); err != nil {
					t.Fatal(err)
				}
			}
			r := f.reconciler(Options{})
			if tt.noStore {
				r.Secrets = nil // broker auth still comes from r.Clients
			}
			res, err := r.Diff(context.Background(), DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			db := stepOf(t, res.Plan, manifest.KindServiceInstance, "apps", "db")
			if db.Error != tt.wantErr {
				t.Errorf("db error:\n got %q\nwant %q", db.Error, tt.wantErr)
			}
			if wantAction := plan.Create; tt.wantErr != "" && db.Action == wantAction {
				t.Errorf("db: %s despite the error", db.Action)
			}
			if cache := stepOf(t, res.Plan, manifest.KindServiceInstance, "apps", "cache"); cache.Action != plan.Create || cache.Error != "" {
				t.Errorf("cache: %s error %q; one bad resource must not block the others", cache.Action, cache.Error)
			}
			if learnt := r.Redact.Scrub("params-value-5e1d") != "params-value-5e1d"; learnt != tt.learnt {
				t.Errorf("parametersFrom value learnt = %v", learnt)
			}
		})
	}
}
