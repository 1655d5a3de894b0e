package reconciler

import (
	"context"
	"fmt"
	"github.com/osbgit/osbgit/reconciler/integrity"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

func git(t testing.TB, dir string, args ...string) string { return gittest.Git(t, dir, args...) }

// fixture is a repo, a broker, a secret store and a reconciler factory.
type fixture struct {
	t      testing.TB
	repo   *gittest.Repo
	broker *osbtest.Broker
	url    string
	store  *secretstore.Dir
	ids    atomic.Int64
	// transport wraps broker calls (crash injection).
	transport http.RoundTripper
}

const (
	brokerUser = "broker-user"
	brokerPass = "broker-pass-s3cr3t"
)

func newFixture(t testing.TB, manifests func(brokerURL string) map[string]string) *fixture {
	t.Helper()
	b, srv := osbtest.NewServer(t, osbtest.Config{Username: brokerUser, Password: brokerPass, RequireRequestIdentity: true})
	f := &fixture{t: t, broker: b, url: srv.URL}
	store, err := secretstore.NewDir(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	f.store = store
	ctx := context.Background()
	if err := store.Put(ctx, "osbgit-system", "broker-auth", secrets.Secret{Data: map[string][]byte{
		"username": []byte(brokerUser), "password": []byte(brokerPass)}}); err != nil {
		t.Fatal(err)
	}
	f.repo = gittest.New(t, manifests(srv.URL))
	return f
}

// reconciler returns a fresh reconciler, as a new process would build it
// (no in-memory state), reading the same repo, broker and store.
func (f *fixture) reconciler(opts Options) *Reconciler {
	f.t.Helper()
	return f.reconcilerAs("", opts)
}

// reconcilerAs is reconciler for the deployment with cluster ID clusterID
// ("" for a repository's only deployment).
func (f *fixture) reconcilerAs(clusterID string, opts Options) *Reconciler {
	f.t.Helper()
	repo, err := gitrepo.Open(context.Background(), gitrepo.Options{URL: f.repo.Bare, Branch: "main", ClusterID: clusterID},
		gitrepo.WithBackoff(5*time.Millisecond, 20*time.Millisecond))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { repo.Close() })
	clients := &BrokerClients{Secrets: f.store}
	if f.transport != nil {
		clients.HTTPClient = &http.Client{Transport: f.transport}
	}
	if opts.MinRetryDelay == 0 {
		// The fixtures' passes run back to back: a call the broker gave
		// no verdict on is due again on the next one (retry_test.go
		// checks the real backoff).
		opts.MinRetryDelay, opts.MaxRetryDelay = time.Nanosecond, time.Nanosecond
	}
	r := &Reconciler{
		Source:  repo,
		Secrets: f.store,
		Keys:    integrity.NewKeeper(f.store, recordKeyNamespace),
		Clients: clients,
		Options: opts,
		NewID:   func() string { return fmt.Sprintf("id-%04d", f.ids.Add(1)) },
	}
	if unsealed {
		r.Keys = nil
	}
	return r
}

// recordKeyNamespace is where the fixtures keep osbgit's records key.
const recordKeyNamespace = "osbgit-system"

// unsealed runs the fixtures without a records key (records read from
// the status branch, as before issue 18), to see the attacks of
// integrity_test.go succeed: OSBGIT_TEST_UNSEALED=1 go test -run ....
var unsealed = os.Getenv("OSBGIT_TEST_UNSEALED") != ""

func (f *fixture) sync(r *Reconciler) *SyncResult {
	f.t.Helper()
	res, err := r.Sync(context.Background())
	if err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	return res
}

// crashTransport lets the first n broker calls through and then
// "crashes": every later call fails without reaching the broker, and crashed
// reports true so the test's source can refuse further Git writes (a dead
// process writes nothing).
type crashTransport struct {
	mu      sync.Mutex
	allowed int
	seen    int
	crashed bool
	base    http.RoundTripper
}

func (c *crashTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.seen >= c.allowed {
		c.crashed = true
	}
	c.seen++
	crashed := c.crashed
	c.mu.Unlock()
	if crashed {
		return nil, fmt.Errorf("process crashed before this call")
	}
	return c.base.RoundTrip(req)
}

func (c *crashTransport) isCrashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

// crashingSource refuses every Git write once the transport crashed.
type crashingSource struct {
	Source
	crash *crashTransport
}

func (s crashingSource) WriteIntent(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	if s.crash.isCrashed() {
		return gitrepo.WriteResult{}, fmt.Errorf("process crashed")
	}
	return s.Source.WriteIntent(ctx, cs)
}

func (s crashingSource) WriteStatus(ctx context.Context, cs gitrepo.ChangeSet) (gitrepo.WriteResult, error) {
	if s.crash.isCrashed() {
		return gitrepo.WriteResult{}, fmt.Errorf("process crashed")
	}
	return s.Source.WriteStatus(ctx, cs)
}

// skipWhenShort skips a suite that takes seconds (fault matrices, a crash
// at every call) under go test -short, the inner loop (make test-short);
// make test and CI run it.
func skipWhenShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow suite: run by make test, skipped by -short")
	}
}
