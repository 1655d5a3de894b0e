package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler"
	"github.com/osbgit/osbgit/reconciler/daemon"
	"github.com/osbgit/osbgit/reconciler/exec"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/secretwatch"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sync/atomic"
	"testing/synctest"
)

func TestRunFlagDefaults(t *testing.T) {
	t.Parallel()
	root, _ := newRootCommand(io.Discard, io.Discard)
	cmd, _, err := root.Find([]string{"run"})
	if err != nil || cmd.Name() != "run" {
		t.Fatalf("no run command: %v", err)
	}
	want := map[string]string{
		"schedule":                  "@every 1m",
		"webhook-addr":              "",
		"webhook-secret-file":       "",
		"webhook-insecure-no-auth":  "false",
		"metrics-addr":              ":9090",
		"leader-elect":              "false",
		"leader-election-id":        "osbgit",
		"leader-election-namespace": "",
		"shutdown-grace":            "25s",
		"inline-poll":               "5s",
		"poll-interval":             "10s",
		// sync's flags
		"prune":         "false",
		"max-deletions": "0",
		"concurrency":   "0",
		"status-branch": "",
	}
	for name, def := range want {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Errorf("run has no --%s", name)
			continue
		}
		if f.DefValue != def {
			t.Errorf("--%s default %q, want %q", name, f.DefValue, def)
		}
	}
}

// TestRunRefusesBadSettingsBeforeGit: configuration errors exit 2 with a
// message naming the setting, before any repository is opened (the --repo
// given does not exist, so getting that far would fail differently).
func TestRunRefusesBadSettingsBeforeGit(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := "dir:" + filepath.Join(dir, "store")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"webhook without secret", nil, []string{"--secret-store", store, "--webhook-addr", "127.0.0.1:0"},
			[]string{"no webhook secret", "--webhook-secret-file", "OSBGIT_WEBHOOK_SECRET", "--webhook-insecure-no-auth"}},
		{"empty secret file", nil, []string{"--secret-store", store, "--webhook-addr", "127.0.0.1:0", "--webhook-secret-file", empty},
			[]string{"--webhook-secret-file", "is empty"}},
		{"empty secret file from the env twin", map[string]string{"OSBGIT_WEBHOOK_SECRET_FILE": empty}, []string{"--secret-store", store, "--webhook-addr", "127.0.0.1:0"},
			[]string{"is empty"}},
		{"missing secret file", nil, []string{"--secret-store", store, "--webhook-secret-file", filepath.Join(dir, "nope")},
			[]string{"--webhook-secret-file"}},
		{"bad schedule", nil, []string{"--secret-store", store, "--schedule", "every minute"},
			[]string{"--schedule", "every minute"}},
		{"no secret store", nil, nil, []string{"--secret-store"}},
		{"zero grace", nil, []string{"--secret-store", store, "--shutdown-grace", "0s"}, []string{"--shutdown-grace"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OSBGIT_WEBHOOK_SECRET", "")
			t.Setenv("OSBGIT_SECRET_STORE", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append([]string{"run", "--repo", filepath.Join(dir, "no-such-repo"), "--metrics-addr", ""}, tc.args...)
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != exitError {
				t.Fatalf("exit %d, want %d; stderr %q", code, exitError, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q lacks %q", errb.String(), w)
				}
			}
			if strings.Contains(errb.String(), "no-such-repo") {
				t.Errorf("the repository was opened before the settings were checked: %q", errb.String())
			}
		})
	}
}

func TestRunWebhookSecretSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string
		env  string
		want string
	}{
		{"none", "", "", ""},
		{"file, trailing newline trimmed", file, "", "from-file"},
		{"env", "", "from-env", "from-env"},
		{"file wins over env", file, "from-env", "from-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(webhookSecretEnv, tc.env)
			rf := runFlags{webhookSecretFile: tc.file}
			got, err := rf.webhookSecret()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("secret %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReconcilerPasser(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	ref := manifest.Ref{Kind: "ServiceInstance", Namespace: "apps", Name: "db"}
	tests := []struct {
		name        string
		res         *reconciler.SyncResult
		err         error
		state       reconciler.PassState
		wantErr     string
		wantSkipped bool
		wantWake    time.Time
		wantInFl    int
		wantActions map[string]map[string]int
	}{
		{
			name:        "skipped, nothing scheduled",
			res:         &reconciler.SyncResult{Skipped: true, Reason: "nothing due"},
			wantSkipped: true,
		},
		{
			name:     "relist due: wake at it",
			res:      &reconciler.SyncResult{Skipped: true},
			state:    reconciler.PassState{NextRelist: now.Add(15 * time.Minute)},
			wantWake: now.Add(15 * time.Minute), wantSkipped: true,
		},
		{
			name:  "operations in flight: poll after the interval",
			state: reconciler.PassState{InFlight: 2, NextRelist: now.Add(time.Hour)},
			res: &reconciler.SyncResult{Exec: &exec.Result{Outcomes: []exec.Outcome{
				{Ref: ref, Action: plan.Create, Status: exec.StatusSucceeded},
				{Ref: ref, Action: plan.Create, Status: exec.StatusSucceeded},
				{Ref: ref, Action: plan.Create, Status: exec.StatusInProgress, InProgress: true},
				{Ref: ref, Action: plan.Update, Status: exec.StatusFailed, Err: errors.New("HTTP 500")},
				{Ref: ref, Action: plan.Delete, Status: exec.StatusRetryLater},
				{Ref: ref, Action: plan.None, Status: exec.StatusUnchanged},
			}}},
			wantWake: now.Add(10 * time.Second),
			wantInFl: 2,
			wantActions: map[string]map[string]int{
				"create": {"succeeded": 2, "in_progress": 1},
				"update": {"failed": 1},
				"delete": {"retry_later": 1},
			},
		},
		{
			name:     "relist sooner than the poll",
			state:    reconciler.PassState{InFlight: 1, NextRelist: now.Add(3 * time.Second)},
			res:      &reconciler.SyncResult{},
			wantWake: now.Add(3 * time.Second),
			wantInFl: 1,
		},
		{
			name:    "refused plan is an error",
			res:     &reconciler.SyncResult{Refused: "would delete 12 resources (maxDeletions 10)"},
			wantErr: "pass refused: would delete 12",
		},
		{
			name:     "sync error keeps the state's numbers",
			err:      errors.New("fetch: connection refused"),
			state:    reconciler.PassState{InFlight: 1},
			wantErr:  "fetch: connection refused",
			wantWake: now.Add(10 * time.Second),
			wantInFl: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.state
			p := &reconcilerPasser{
				sync:         func(context.Context) (*reconciler.SyncResult, error) { return tc.res, tc.err },
				state:        func() *reconciler.PassState { return &st },
				now:          func() time.Time { return now },
				pollInterval: 10 * time.Second,
			}
			rep, err := p.Pass(context.Background(), daemon.TriggerSchedule)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if rep.Skipped != tc.wantSkipped || !rep.NextWake.Equal(tc.wantWake) || rep.InFlight != tc.wantInFl {
				t.Fatalf("report %+v, want skipped=%v wake=%v inflight=%d", rep, tc.wantSkipped, tc.wantWake, tc.wantInFl)
			}
			if tc.wantActions != nil && !equalCounts(rep.Actions, tc.wantActions) {
				t.Fatalf("actions %v, want %v", rep.Actions, tc.wantActions)
			}
		})
	}
}

func equalCounts(a, b map[string]map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv := b[k]
		if len(av) != len(bv) {
			return false
		}
		for r, n := range av {
			if bv[r] != n {
				return false
			}
		}
	}
	return true
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunEndToEnd runs `osbgit run` against a real repo and broker: the
// first pass provisions and makes the process ready, a signed webhook after
// a push makes the next pass update the instance, metrics show both, and
// cancelling (SIGTERM's path) exits 0 with both servers closed and no
// secret in the logs.
func TestRunEndToEnd(t *testing.T) {
	f := newCLIFixture(t)
	const hookSecret = "run-e2e-hook-secret-51c"
	t.Setenv(webhookSecretEnv, hookSecret)
	metricsAddr, hookAddr := freeAddr(t), freeAddr(t)
	args := []string{"run", "--repo", f.repo.Bare, "--secret-store", "dir:" + f.store, "--cache-dir", f.cache,
		"--schedule", "@every 1h", "--metrics-addr", metricsAddr, "--webhook-addr", hookAddr,
		"--log-format", "json", "--shutdown-grace", "10s"}
	var out, errb syncBuf
	root, _ := newRootCommand(&out, &errb)
	root.SetArgs(args)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	waitUntil(t, "ready after the first pass", func() bool {
		code, _ := httpGet(t, "http://"+metricsAddr+"/readyz")
		return code == http.StatusOK
	}, done, &errb)
	if n := len(f.broker.Instances()); n != 1 {
		t.Fatalf("broker has %d instances after the first pass", n)
	}

	f.repo.Push("large", map[string]string{"apps/db.yaml": dbManifest("large")}, nil)
	body := `{"ref":"refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write([]byte(body))
	req, _ := http.NewRequest(http.MethodPost, "http://"+hookAddr+"/hook", strings.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	waitUntil(t, "the update pass", func() bool {
		return len(f.broker.CallsTo(osbtest.EndpointUpdate)) > 0
	}, done, &errb)
	var metrics string
	waitUntil(t, "metrics of both passes", func() bool {
		_, metrics = httpGet(t, "http://"+metricsAddr+"/metrics")
		return strings.Contains(metrics, `osbgit_actions_total{action="update",result="succeeded"} 1`)
	}, done, &errb)
	for _, want := range []string{
		`osbgit_actions_total{action="create",result="succeeded"} 1`,
		`osbgit_pass_duration_seconds_count{result="success"} 2`,
		`osbgit_broker_request_duration_seconds_count{broker="test",code="201",endpoint="Provision"} 1`,
		`osbgit_webhook_requests_total{result="accepted"} 1`,
		`osbgit_leader 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil (exit 0)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
	for _, addr := range []string{metricsAddr, hookAddr} {
		if code, _ := httpGet(t, "http://"+addr+"/healthz"); code != 0 {
			t.Errorf("%s still serving after run returned", addr)
		}
	}
	logs := errb.String()
	for _, secret := range []string{hookSecret, cliBrokerPass} {
		if strings.Contains(logs, secret) || strings.Contains(out.String(), secret) {
			t.Errorf("a secret appears in the output")
		}
	}
	if !strings.Contains(logs, `"msg":"pass finished"`) || !strings.Contains(logs, `"trigger":"webhook"`) {
		t.Errorf("passes not logged with their trigger:\n%s", logs)
	}
}

// waitUntil polls cond for up to 30s, failing early if run returned.
func waitUntil(t *testing.T, what string, cond func() bool, done chan error, logs *syncBuf) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("run returned (%v) while waiting for %s\n%s", err, what, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuf is a goroutine-safe bytes.Buffer for the command's output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKlogLogger: client-go's log lines reach our logger in its format,
// tagged as client-go's, with their names and values; klog's verbose
// levels only show at the matching logrus level.
func TestKlogLogger(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		level       string
		wantVerbose bool
	}{{"info", false}, {"debug", true}} {
		t.Run(tt.level, func(t *testing.T) {
			var buf syncBuf
			l, err := newLogger(&buf, "json", tt.level)
			if err != nil {
				t.Fatal(err)
			}
			log := klogLogger(l).WithName("leaderelection").WithValues("lock", "ns/osbgit")
			log.Info("Attempting to acquire leader lease...")
			log.V(1).Info("verbose: renewed")
			log.V(4).Info("very verbose: dropped")
			log.Error(errors.New("connection refused"), "Error retrieving lease lock", "attempt", 2)
			out := buf.String()
			for _, want := range []string{
				`"component":"client-go"`, `"logger":"leaderelection"`, `"lock":"ns/osbgit"`,
				`"msg":"Attempting to acquire leader lease..."`, `"level":"error"`,
				`"error":"connection refused"`, `"attempt":2`,
			} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %s:\n%s", want, out)
				}
			}
			if got := strings.Contains(out, "verbose: renewed"); got != tt.wantVerbose {
				t.Errorf("klog V(1) logged = %v at level %s:\n%s", got, tt.level, out)
			}
			if strings.Contains(out, "dropped") {
				t.Errorf("klog V(4) logged:\n%s", out)
			}
		})
	}
}

// TestPassWatchesTheStateSecrets: after each pass, run watches the Secrets
// the pass state depends on (kube store), and a change to one of them asks
// for a pass; client-go's fake clientset, synctest's clock.
func TestPassWatchesTheStateSecrets(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset(
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "osbgit-system", Name: "broker-auth"}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "db-creds"}},
		)
		var requested atomic.Int32
		watch := &secretwatch.Kube{Client: cs, Changed: func() { requested.Add(1) }}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go watch.Run(ctx)
		st := reconciler.PassState{Secrets: &reconciler.SecretSums{
			Referenced: map[string]string{"osbgit-system/broker-auth": "sum"},
			Bindings:   map[string]string{"apps/db-creds": "sum"},
		}}
		p := &reconcilerPasser{
			sync:  func(context.Context) (*reconciler.SyncResult, error) { return &reconciler.SyncResult{}, nil },
			state: func() *reconciler.PassState { return &st },
			now:   time.Now,
			watch: watch.Update,
		}
		if _, err := p.Pass(ctx, daemon.TriggerStart); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := cs.CoreV1().Secrets("apps").Delete(ctx, "db-creds", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if requested.Load() == 0 {
			t.Fatal("deleting a binding Secret asked for no pass")
		}
		requested.Store(0)
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "osbgit-system", Name: "broker-auth"}, Data: map[string][]byte{"password": []byte("new")}}
		if _, err := cs.CoreV1().Secrets("osbgit-system").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if requested.Load() == 0 {
			t.Fatal("rotating the broker auth Secret asked for no pass")
		}
		cancel()
		synctest.Wait()
	})
}

// TestPasserSweepsOnSecretTrigger: a pass a Secret trigger asked for (a
// watch event, the dir store's re-read schedule) reads back every binding
// Secret (Reconciler.SyncAfterSecretChange); other triggers sync plainly.
func TestPasserSweepsOnSecretTrigger(t *testing.T) {
	t.Parallel()
	var got []string
	p := &reconcilerPasser{
		sync: func(context.Context) (*reconciler.SyncResult, error) {
			got = append(got, "sync")
			return &reconciler.SyncResult{}, nil
		},
		syncAfterSecretChange: func(context.Context) (*reconciler.SyncResult, error) {
			got = append(got, "sweep")
			return &reconciler.SyncResult{}, nil
		},
		state: func() *reconciler.PassState { return &reconciler.PassState{} },
		now:   time.Now,
	}
	for _, tr := range []daemon.Trigger{daemon.TriggerSchedule, daemon.TriggerSecret, daemon.TriggerWebhook} {
		if _, err := p.Pass(context.Background(), tr); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"sync", "sweep", "sync"}; !slices.Equal(got, want) {
		t.Fatalf("passes %v, want %v", got, want)
	}
}
