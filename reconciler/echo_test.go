package reconciler

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/redact"
	"github.com/osbgit/osbgit/reconciler/render"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// Planted values of the echo test: each has characters that JSON, URL and
// base64 encoding change.
const (
	echoBrokerUser = "echo-user"
	echoBrokerPass = `echo-broker-pass/+"Q9`
	echoParamOne   = `echo-param "one"/a+b &c`
	echoParamTwo   = "echo-param-two-Kx7"
)

// logCapture formats every entry twice, as JSON and as text, each through
// redact.Formatter with the reconciler's set — as cmd/osbgit wires its
// logger.
type logCapture struct {
	mu         sync.Mutex
	json, text bytes.Buffer
	jf, tf     logrus.Formatter
}

func newLogCapture(set *redact.Set) (*logCapture, *logrus.Logger) {
	c := &logCapture{
		jf: &redact.Formatter{Set: set, Next: &logrus.JSONFormatter{}},
		tf: &redact.Formatter{Set: set, Next: &logrus.TextFormatter{DisableTimestamp: true}},
	}
	l := logrus.New()
	l.SetLevel(logrus.DebugLevel)
	l.SetFormatter(c.jf)
	l.SetOutput(&c.json)
	l.AddHook(c)
	return c, l
}

func (c *logCapture) Levels() []logrus.Level { return logrus.AllLevels }

func (c *logCapture) Fire(e *logrus.Entry) error {
	out, err := c.tf.Format(e)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.text.Write(out)
	return err
}

// TestBrokerEchoesAreScrubbed: a broker that quotes everything it received
// (auth, parametersFrom values) and the credentials it handed out, raw,
// JSON-escaped, URL-encoded and base64, in error descriptions,
// last_operation descriptions and dashboard URLs (osbtest Config.Echo),
// while provisions, an update, a drift check and an unbind fail. No
// planted value, in any of those forms, shows in any committed record
// (the whole Git history), any log line (JSON and text), or the text and
// JSON diff; a diff and the last pass run in new processes, which never
// saw the binding's credentials but must still hide them. The recorded dashboard
// URL has its userinfo and query values redacted.
func TestBrokerEchoesAreScrubbed(t *testing.T) {
	t.Parallel()
	b, srv := osbtest.NewServer(t, osbtest.Config{Username: echoBrokerUser, Password: echoBrokerPass, Echo: true})
	b.SetBehavior(osbtest.PlanDBPinned, osbtest.Behavior{Fail: true, FailDescription: "pinned provision failed"}, osbtest.OpProvision)
	b.SetBehavior(osbtest.PlanDBAsync, osbtest.Behavior{Async: true, Fail: true, FailDescription: "async provision failed"}, osbtest.OpProvision)
	store, err := secretstore.NewDir(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for ns, byName := range map[string]map[string]map[string][]byte{
		"osbgit-system": {"broker-auth": {"username": []byte(echoBrokerUser), "password": []byte(echoBrokerPass)}},
		"apps":          {"db-params": {"params": []byte(`{"adminPassword": "echo-param \"one\"/a+b &c", "nested": {"token": "` + echoParamTwo + `"}}`)}},
	} {
		for name, data := range byName {
			if err := store.Put(ctx, ns, name, secrets.Secret{Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	}
	withParams := func(name, plan, size string) string {
		return instanceYAML(name, plan, "    size: "+size+"\n") + "  parametersFrom:\n  - secretKeyRef: {name: db-params, key: params}\n"
	}
	files := map[string]string{
		"osbgit.yaml":       osbgitYAML,
		"broker.yaml":       brokerYAML(srv.URL),
		"apps/db.yaml":      withParams("db", "small", "1"),
		"apps/db-bind.yaml": bindingYAML("db-bind", "db"),
		"apps/bad.yaml":     withParams("bad", "pinned", "1"),
		"apps/slow.yaml":    withParams("slow", "async", "1"),
	}
	repo := gittest.New(t, files)
	ids := 0
	newReconciler := func() (*Reconciler, *logCapture) {
		src, err := gitrepo.Open(ctx, gitrepo.Options{URL: repo.Bare, Branch: "main"}, gitrepo.WithBackoff(5*time.Millisecond, 20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		set := redact.New()
		logs, log := newLogCapture(set)
		return &Reconciler{Source: src, Secrets: store, Redact: set, Log: log,
			NewID: func() string { ids++; return "echo-id-" + string(rune('a'+ids)) }}, logs
	}
	var diffs []string
	diff := func(r *Reconciler) {
		t.Helper()
		res, err := r.Diff(ctx, DiffOptions{Drift: true})
		if err != nil {
			t.Fatalf("diff: %v", err)
		}
		var txt, js, md bytes.Buffer
		if err := render.Text(&txt, res.Plan, render.TextOptions{Redact: r.Redact, ShowUnchanged: true}); err != nil {
			t.Fatal(err)
		}
		if err := render.JSON(&js, res.Plan, render.JSONOptions{Redact: r.Redact}); err != nil {
			t.Fatal(err)
		}
		if err := render.Markdown(&md, res.Plan, render.MarkdownOptions{Redact: r.Redact}); err != nil {
			t.Fatal(err)
		}
		diffs = append(diffs, txt.String(), js.String(), md.String())
	}
	sync := func(r *Reconciler) *SyncResult {
		t.Helper()
		res, err := r.Sync(ctx)
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		return res
	}

	// Pass 1: db and its binding are created (the dashboard URL and the
	// credentials come back), bad fails, slow is accepted.
	r1, logs1 := newReconciler()
	sync(r1)
	planted := map[string]string{
		"broker password": echoBrokerPass, "broker user:password": echoBrokerUser + ":" + echoBrokerPass,
		"parametersFrom value": echoParamOne, "nested parametersFrom value": echoParamTwo,
	}
	if len(b.Bindings()) != 1 {
		t.Fatalf("broker holds %d bindings after the first pass", len(b.Bindings()))
	}
	for _, bn := range b.Bindings() {
		for _, k := range []string{"password", "uri"} {
			planted["binding "+k] = bn.Credentials[k].(string)
		}
	}

	// A diff in a new process whose drift checks fail: the broker's
	// errors quote everything, the binding's credentials included, which
	// this process only knows from the secret store.
	b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointGetInstance, Status: 500, Times: 1})
	b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointGetBinding, Status: 500, Times: 1})
	rd, logsd := newReconciler()
	diff(rd)

	// Pass 2, same process: db's update is refused, slow's provision
	// failed (its last_operation says so), bad fails again.
	files["apps/db.yaml"] = withParams("db", "small", "2")
	repo.Push("db size 2", map[string]string{"apps/db.yaml": files["apps/db.yaml"]}, nil)
	b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 400, Times: 1})
	sync(r1)

	// Pass 3, a new process: the binding's unbind fails with a 500 that
	// quotes its credentials.
	repo.Push("unbind", nil, []string{"apps/db-bind.yaml"})
	b.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUnbind, Status: 500, Times: 1})
	r2, logs2 := newReconciler()
	sync(r2)
	diff(r2)

	if n := len(b.Bindings()); n != 1 {
		t.Fatalf("the unbind did not fail: %d bindings", n)
	}
	history := gittest.Git(t, repo.Bare, "log", "-p", "--all", "--format=%H%n%B")
	hay := map[string]string{
		"Git history": history, "JSON logs": logs1.json.String() + logsd.json.String() + logs2.json.String(),
		"text logs": logs1.text.String() + logsd.text.String() + logs2.text.String(), "diffs": strings.Join(diffs, "\n"),
	}
	for where, text := range hay {
		if !strings.Contains(text, redact.Placeholder) {
			t.Errorf("%s hold no %s: the broker's echo did not reach them", where, redact.Placeholder)
		}
		for what, v := range planted {
			for _, f := range redact.Forms(v) {
				if i := strings.Index(text, f); i >= 0 {
					lo := max(0, strings.LastIndex(text[:i], "\n"))
					t.Errorf("%s show the %s as %q: %s", where, what, f, strings.TrimSpace(text[lo:min(len(text), i+len(f)+60)]))
				}
			}
		}
	}
	db := repo.Show(statusPath(t, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"}))
	if !strings.Contains(db, `"dashboardURL": "https://REDACTED@dashboard.osbtest.invalid/instances/`) || !strings.Contains(db, "v0=REDACTED") {
		t.Errorf("db's dashboard URL is not redacted:\n%s", db)
	}
	for _, name := range []string{"bad", "slow"} {
		rec := repo.Show(statusPath(t, manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: name}))
		if !strings.Contains(rec, "provision failed") || !strings.Contains(rec, redact.Placeholder) {
			t.Errorf("%s's record does not say why (scrubbed):\n%s", name, rec)
		}
	}
	bind := repo.Show(statusPath(t, manifest.Ref{Kind: manifest.KindServiceBinding, Namespace: "apps", Name: "db-bind"}))
	if !strings.Contains(bind, "HTTP 500") || !strings.Contains(bind, redact.Placeholder) {
		t.Errorf("db-bind's record does not say the unbind failed (scrubbed):\n%s", bind)
	}
}
