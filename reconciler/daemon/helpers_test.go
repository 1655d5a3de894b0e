package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
)

func TestMain(m *testing.M) {
	// client-go's leader election logs through klog; keep test output
	// readable.
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// every is a cron.Schedule firing every d (robfig's "@every" rounds to whole
// seconds, too slow for tests).
type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

// never is a schedule whose next tick is far away: passes run only at
// start, on wake-ups and on webhooks.
var never = every(time.Hour)

// fakePasser is a test double for the pass: it records each pass's trigger,
// can hold passes on a gate, and answers with scripted reports.
type fakePasser struct {
	mu       sync.Mutex
	triggers []Trigger
	running  int
	maxRun   int
	ctxErrs  []error // ctx.Err() when each pass returned

	// gate, when non-nil, holds every pass until it is closed (or the
	// pass's context ends, unless ignoreCtx).
	gate      chan struct{}
	ignoreCtx bool
	// started receives each pass's trigger as it starts (buffered).
	started chan Trigger
	// answer, when set, gives pass n's (1-based) report and error.
	answer func(n int) (PassReport, error)
}

func newFakePasser() *fakePasser {
	return &fakePasser{started: make(chan Trigger, 1000)}
}

func (f *fakePasser) Pass(ctx context.Context, t Trigger) (PassReport, error) {
	f.mu.Lock()
	f.triggers = append(f.triggers, t)
	n := len(f.triggers)
	f.running++
	if f.running > f.maxRun {
		f.maxRun = f.running
	}
	gate, ignore, answer := f.gate, f.ignoreCtx, f.answer
	f.mu.Unlock()
	f.started <- t
	defer func() {
		f.mu.Lock()
		f.running--
		f.ctxErrs = append(f.ctxErrs, ctx.Err())
		f.mu.Unlock()
	}()
	if gate != nil {
		if ignore {
			<-gate
		} else {
			select {
			case <-gate:
			case <-ctx.Done():
				return PassReport{}, ctx.Err()
			}
		}
	}
	if answer != nil {
		return answer(n)
	}
	return PassReport{}, nil
}

func (f *fakePasser) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.triggers)
}

func (f *fakePasser) countOf(t Trigger) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, x := range f.triggers {
		if x == t {
			n++
		}
	}
	return n
}

func (f *fakePasser) snapshot() []Trigger {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Trigger(nil), f.triggers...)
}

// waitStarted waits for the next pass to start and returns its trigger.
func (f *fakePasser) waitStarted(t *testing.T) Trigger {
	t.Helper()
	select {
	case tr := <-f.started:
		return tr
	case <-time.After(10 * time.Second):
		t.Fatalf("no pass started; passes so far: %v", f.snapshot())
		return ""
	}
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running is a daemon started by start.
type running struct {
	d      *Daemon
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

// stop cancels the daemon and returns Run's error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // let later calls (Cleanup) see it too
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(buf *syncBuffer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(buf)
	l.SetLevel(logrus.DebugLevel)
	l.SetFormatter(&logrus.JSONFormatter{})
	return l
}

// start builds a daemon from cfg (listening on 127.0.0.1:0 where cfg asks
// for a server) and runs it until the test ends.
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	logs := &syncBuffer{}
	if cfg.Log == nil {
		cfg.Log = testLogger(logs)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := d.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not return at cleanup")
		}
	})
	return r
}

const testSecret = "s3cr3t-hook-key-0123456789"

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// post sends a hook and returns the status code.
func post(t *testing.T, url string, headers map[string]string, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// serveHook hands a hook to the daemon's receiver in memory (no network,
// so it works inside a synctest bubble) and returns the status code.
func serveHook(d *Daemon, method, path string, headers map[string]string, body string) int {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:40000"
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	d.WebhookHandler().ServeHTTP(rec, req)
	return rec.Code
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// refused reports whether nothing accepts connections at addr any more.
func refused(addr string) bool {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err == nil {
		resp.Body.Close()
		return false
	}
	return true
}

var errBoom = errors.New("boom")
