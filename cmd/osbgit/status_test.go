package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/integrity"
	"github.com/osbgit/osbgit/reconciler/statusview"
)

const dbRecord = ".osbgit/status/apps/serviceinstance/db.yaml"

// syncedFixture is the CLI fixture after a real sync: apps/db provisioned
// at the osbtest broker, its record sealed on the records ref.
func syncedFixture(t *testing.T) *cliFixture {
	t.Helper()
	f := newCLIFixture(t)
	if code, out, errs := f.run(t, "sync"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	return f
}

// status runs osbgit status with store as --secret-store ("" for none).
func (f *cliFixture) status(t *testing.T, store string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	base := []string{"status", "--repo", f.repo.Bare, "--cache-dir", f.cache}
	if store != "" {
		base = append(base, "--secret-store", "dir:"+store)
	}
	code := run(append(base, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// statusJSON runs status -o json and decodes it.
func (f *cliFixture) statusJSON(t *testing.T, store string, args ...string) (int, statusview.View) {
	t.Helper()
	code, out, errs := f.status(t, store, append(args, "-o", "json")...)
	var v statusview.View
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("status -o json: exit %d, %v\n%s\n%s", code, err, out, errs)
	}
	return code, v
}

// TestStatusAfterSync: after a real sync, status lists the instance as
// Ready and verified, describes it, and exits 0; no broker is called.
func TestStatusAfterSync(t *testing.T) {
	t.Parallel()
	f := syncedFixture(t)
	f.broker.ResetCalls()
	code, out, errs := f.status(t, f.store)
	if code != exitOK || !strings.Contains(out, "Records: verified") ||
		!regexpLine(out, `ServiceInstance +apps/db +test +osbtest-db/small +Ready +provision succeeded +\d+s +verified`) {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errs)
	}
	code, v := f.statusJSON(t, f.store, "--kind", "serviceinstance")
	if code != exitOK || v.Records != "verified" || v.Summary.Resources != 1 || v.Resources[0].Phase != "Ready" || v.Resources[0].Failed {
		t.Fatalf("status -o json: exit %d, %+v", code, v)
	}
	code, out, errs = f.status(t, f.store, "ServiceInstance/apps/db")
	if code != exitOK || !strings.Contains(out, "External ID:") || !strings.Contains(out, "Conditions:") ||
		!strings.Contains(out, "Ready  True") || !strings.Contains(out, "git log -p refs/osbgit/records/main -- "+dbRecord) {
		t.Fatalf("status ServiceInstance/apps/db: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs := f.status(t, f.store, "ServiceInstance/apps/nope"); code != exitError || !strings.Contains(errs, "has no record") {
		t.Errorf("describing a resource without a record: exit %d\n%s", code, errs)
	}
	if calls := f.broker.Calls(); len(calls) != 0 {
		t.Errorf("status called the broker %d times", len(calls))
	}
}

// TestStatusFailedExit1: a resource whose update the broker refused makes
// status exit 1; --failed lists it; a namespace without failures exits 0.
func TestStatusFailedExit1(t *testing.T) {
	t.Parallel()
	f := syncedFixture(t)
	f.repo.Push("large", map[string]string{"apps/db.yaml": dbManifest("large")}, nil)
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 400, Times: 1,
		Body: []byte(`{"error":"BadRequest","description":"plan large is sold out"}`)})
	if code, out, errs := f.run(t, "sync"); code != exitChanges {
		t.Fatalf("sync with an update refused: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs := f.status(t, f.store)
	if code != exitUnhealthy || !regexpLine(out, `ServiceInstance +apps/db .* Failed +update failed .* verified +osb broker "test": UpdateInstance`) ||
		!strings.Contains(out, "1 resource: 1 failed, 0 tampered, 0 unverified.") {
		t.Fatalf("status with a failed update: exit %d, want %d\n%s\n%s", code, exitUnhealthy, out, errs)
	}
	code, v := f.statusJSON(t, f.store, "--failed")
	if code != exitUnhealthy || len(v.Resources) != 1 || !v.Resources[0].Failed || v.Resources[0].Ref.Name != "db" {
		t.Fatalf("status --failed: exit %d, %+v", code, v)
	}
	if code, out, _ := f.status(t, f.store, "--namespace", "other"); code != exitOK || !strings.Contains(out, "0 resources") {
		t.Errorf("status --namespace other: exit %d, want 0\n%s", code, out)
	}
	if code, out, _ := f.status(t, f.store, "ServiceInstance/apps/db"); code != exitUnhealthy || !strings.Contains(out, "UpdateFailed") || !strings.Contains(out, "sold out") {
		t.Errorf("describing the failed instance: exit %d, want %d\n%s", code, exitUnhealthy, out)
	}
}

// TestStatusTampered: a record edited on the status branch shows
// "tampered" (osbgit's own version is shown) and exits 1; a records key
// other than the one that sealed the records makes them all tampered.
func TestStatusTampered(t *testing.T) {
	t.Parallel()
	f := syncedFixture(t)
	rec := f.repo.Show(dbRecord)
	edited := strings.Replace(rec, `"phase": "Ready"`, `"phase": "Failed"`, 1)
	if edited == rec {
		t.Fatalf("record has no Ready phase:\n%s", rec)
	}
	f.repo.Push("hand edit", map[string]string{dbRecord: edited}, nil)
	code, out, errs := f.status(t, f.store)
	if code != exitUnhealthy || !regexpLine(out, `ServiceInstance +apps/db .* Ready .* tampered +edited on main outside osbgit \(commit [0-9a-f]{12} by Test Author <author@example.com>\)`) {
		t.Fatalf("status after a record edit: exit %d, want %d\n%s\n%s", code, exitUnhealthy, out, errs)
	}

	// Another key: the seal does not verify.
	keyFile := filepath.Join(f.store, "osbgit-system", integrity.KeySecretName, "key")
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte("k"), 32), 0o600); err != nil {
		t.Fatal(err)
	}
	code, v := f.statusJSON(t, f.store)
	if code != exitUnhealthy || v.Records != "tampered" || !strings.Contains(v.Reason, "does not verify") ||
		len(v.Resources) == 0 || v.Resources[0].Records != "tampered" {
		t.Fatalf("status with a key that did not seal the records: exit %d, %+v", code, v)
	}
}

// TestStatusWithoutKey: without the records key (no secret store, or a
// store that has none) records are read from the status branch and shown
// unverified, with exit 0; status creates no key.
func TestStatusWithoutKey(t *testing.T) {
	t.Parallel()
	f := syncedFixture(t)
	empty := t.TempDir()
	for name, store := range map[string]string{"no store": "", "store without a key": empty} {
		code, out, errs := f.status(t, store)
		if code != exitOK || !strings.Contains(out, "Records: unverified, read from status branch main") ||
			!regexpLine(out, `ServiceInstance +apps/db .* Ready .* unverified`) || !strings.Contains(out, "1 resource: 0 failed, 0 tampered, 1 unverified.") {
			t.Errorf("%s: exit %d, want 0\n%s\n%s", name, code, out, errs)
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("status wrote into the secret store: %v", entries)
	}
}

// TestStatusUnreadableRecord: a record that does not decode (here on the
// status branch, read without a key) is named, the others are still
// listed, and status exits 2: the check is incomplete.
func TestStatusUnreadableRecord(t *testing.T) {
	t.Parallel()
	f := syncedFixture(t)
	f.repo.Push("garbage", map[string]string{".osbgit/status/apps/serviceinstance/other.yaml": "{not: [a record"}, nil)
	code, out, errs := f.status(t, "")
	if code != exitError || !regexpLine(out, `ServiceInstance +apps/db .* Ready .* unverified`) ||
		!strings.Contains(out, "Unreadable: ") || !strings.Contains(out, "other.yaml") || !strings.Contains(errs, "other.yaml") {
		t.Fatalf("status with an unreadable record: exit %d, want %d\n%s\n%s", code, exitError, out, errs)
	}
}

// TestStatusFlags: bad flags and arguments are errors (exit 2).
func TestStatusFlags(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	for _, args := range [][]string{{"-o", "markdown"}, {"--kind", "Pod"}, {"Pod/apps/db"}, {"ServiceInstance/db"}} {
		if code, _, errs := f.status(t, f.store, args...); code != exitError || errs == "" {
			t.Errorf("status %v: exit %d, want %d with a message\n%s", args, code, exitError, errs)
		}
	}
}

// regexpLine reports whether a line of out matches pattern.
func regexpLine(out, pattern string) bool {
	return regexp.MustCompile(`(?m)^` + pattern).MatchString(out)
}
