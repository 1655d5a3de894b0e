package reconciler

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/internal/drain"
)

// provisionWatch counts provision requests and signals the first one.
type provisionWatch struct {
	first  chan struct{}
	once   sync.Once
	sent   atomic.Int32
	closed atomic.Bool
	late   atomic.Int32 // provisions sent after the drain
}

func (w *provisionWatch) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && strings.HasPrefix(req.URL.Path, "/v2/service_instances/") {
		w.sent.Add(1)
		if w.closed.Load() {
			w.late.Add(1)
		}
		w.once.Do(func() { close(w.first) })
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestDrainStartsNoNewCall (issue 19, item 6): SIGTERM in `run` asks the
// running pass to drain. The call in flight finishes and is recorded and
// pushed; no other call starts (before: the pass went on and started
// every remaining call); the next pass converges with the IDs reserved.
func TestDrainStartsNoNewCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(url string) map[string]string {
		files := map[string]string{"osbgit.yaml": osbgitYAML, "brokers/b.yaml": brokerYAML(url)}
		for i := range 5 {
			name := fmt.Sprintf("db%d", i)
			files["apps/"+name+".yaml"] = instanceYAML(name, "small", "")
		}
		return files
	})
	w := &provisionWatch{first: make(chan struct{})}
	f.transport = w
	f.broker.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointProvision, Delay: 300 * time.Millisecond})
	stop := make(chan struct{})
	r := f.reconciler(Options{Concurrency: 1})
	done := make(chan *SyncResult)
	go func() {
		res, err := r.Sync(drain.With(context.Background(), stop))
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	<-w.first
	w.closed.Store(true)
	close(stop)
	res := <-done
	f.broker.ClearFaults()
	if n := w.late.Load(); n != 0 || w.sent.Load() != 1 {
		t.Fatalf("%d provisions sent after the drain, %d in all; want none after, 1 in all", n, w.sent.Load())
	}
	if res.Exec == nil || res.Exec.Failed() || res.Commit == "" || res.Exec.Counts.Created != 1 || res.Exec.Counts.Waiting != 4 {
		t.Fatalf("drained pass: %+v, commit %q", res.Exec, res.Commit)
	}
	ready := 0
	for i := range 5 {
		if rec := recordIn(t, f, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: fmt.Sprintf("db%d", i)}); rec != nil && rec.Phase == manifest.PhaseReady {
			ready++
		}
	}
	if ready != 1 {
		t.Errorf("%d instances recorded Ready after the drain, want the one in flight", ready)
	}
	f.transport = nil
	f.sync(f.reconciler(Options{}))
	if n := len(f.broker.Instances()); n != 5 || f.broker.Count(osbtest.EndpointProvision) != 5 {
		t.Errorf("after the next pass: %d instances, %d provisions; want 5 and 5", n, f.broker.Count(osbtest.EndpointProvision))
	}
}
