package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler/redact"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// Planted values of the security sweep: none may ever show outside the
// secret store and the broker, in any form (redact.Forms: raw,
// JSON-escaped, URL-encoded, base64, ...). Some have characters every
// encoding changes.
const (
	sweepBrokerPass  = `sweep-broker-pass/+"Q7f3k`
	sweepBearerToken = "sweep-bearer-token-Zr8Lp2"
	sweepParamSecret = `sweep-param "secret"/Hx4+Mw9 &`
	sweepGitPass     = "sweep-git-pass-Vb6Tn1"
	sweepGitUser     = "sweep-git-user"
)

// sweepGitServer serves the directory holding bare over smart HTTP (git
// http-backend) behind basic auth with sweepGitUser/sweepGitPass, and
// returns the repository's URL.
func sweepGitServer(t *testing.T, bare string) string {
	t.Helper()
	gittest.Git(t, bare, "config", "http.receivepack", "true")
	backend := &cgi.Handler{
		Path:   gittest.HTTPBackend(t),
		Env:    []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
		Stderr: io.Discard,
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != sweepGitUser || p != sweepGitPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Header.Set("Remote-User", u)
		backend.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(bare)
}

// sweep is the security sweep's world: two brokers (basic auth and bearer
// token), a repo served over HTTP with basic auth, a dir secret store, and
// everything osbgit printed or wrote, to be searched for planted values.
type sweep struct {
	t       *testing.T
	basic   *osbtest.Broker
	bearer  *osbtest.Broker
	basicU  string
	bearerU string
	repo    *gittest.Repo
	url     string
	store   string
	cache   string
	pwFile  string
	format  string
	// seen is everything collected: outputs, logs, errors.
	seen []string
	// planted are the values that must not be in seen.
	planted map[string]string
}

func newSweep(t *testing.T, format string) *sweep {
	t.Helper()
	s := &sweep{t: t, format: format, store: filepath.Join(t.TempDir(), "secrets"), cache: t.TempDir(),
		planted: map[string]string{"broker password": sweepBrokerPass, "bearer token": sweepBearerToken,
			"parametersFrom value": sweepParamSecret, "git password": sweepGitPass}}
	var srv1, srv2 *httptest.Server
	// Both brokers echo everything they received, and the credentials
	// they handed out, in every error and last_operation description and
	// in dashboard URLs.
	s.basic, srv1 = osbtest.NewServer(t, osbtest.Config{Username: "u", Password: sweepBrokerPass, Echo: true})
	s.bearer, srv2 = osbtest.NewServer(t, osbtest.Config{BearerToken: sweepBearerToken, Echo: true})
	s.basicU, s.bearerU = srv1.URL, srv2.URL
	st, err := secretstore.NewDir(s.store)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, data := range map[string]map[string][]byte{
		"basic-auth":  {"username": []byte("u"), "password": []byte(sweepBrokerPass)},
		"bearer-auth": {"token": []byte(sweepBearerToken)},
	} {
		if err := st.Put(ctx, "osbgit-system", name, secrets.Secret{Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	s.putParams(sweepParamSecret)
	s.repo = gittest.New(t, s.files(true, "small", true))
	s.url = sweepGitServer(t, s.repo.Bare)
	s.pwFile = filepath.Join(t.TempDir(), "git-password")
	if err := os.WriteFile(s.pwFile, []byte(sweepGitPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// putParams writes the parametersFrom Secret apps/db-params (a hand-made
// Secret, as a person would create it) with adminPassword set to password.
func (s *sweep) putParams(password string) {
	s.t.Helper()
	value, err := json.Marshal(password)
	if err != nil {
		s.t.Fatal(err)
	}
	dir := filepath.Join(s.store, "apps", "db-params")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "params"), []byte(`{"adminPassword": `+string(value)+`}`), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// files renders the repo: both brokers, instance db (plan) on the basic
// broker with parametersFrom, cache on the bearer broker, and (if bind)
// bindings of both.
func (s *sweep) files(withDB bool, plan string, bind bool) map[string]string {
	out := map[string]string{
		"osbgit.yaml": "apiVersion: osbgit.dev/v1alpha1\nkind: Config\nclusterID: sweep\nprune: true\n",
		"brokers.yaml": fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata: {name: basic}
spec:
  url: %s
  authInfo: {basic: {secretRef: {namespace: osbgit-system, name: basic-auth}}}
---
apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata: {name: bearer}
spec:
  url: %s
  authInfo: {bearer: {secretRef: {namespace: osbgit-system, name: bearer-auth}}}
`, s.basicU, s.bearerU),
		"apps/cache.yaml": `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata: {name: cache, namespace: apps}
spec:
  clusterServiceBrokerName: bearer
  clusterServiceClassExternalName: osbtest-db
  clusterServicePlanExternalName: large
`,
	}
	if withDB {
		out["apps/db.yaml"] = `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata: {name: db, namespace: apps}
spec:
  clusterServiceBrokerName: basic
  clusterServiceClassExternalName: osbtest-db
  clusterServicePlanExternalName: ` + plan + `
  parameters: {size: 2}
  parametersFrom:
  - secretKeyRef: {name: db-params, key: params}
`
	}
	if bind && withDB {
		out["apps/db-bind.yaml"] = `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata: {name: db-bind, namespace: apps}
spec:
  instanceRef: {name: db}
  secretTransforms:
  - renameKey: {from: uri, to: DATABASE_URL}
`
	}
	if bind {
		out["apps/cache-bind.yaml"] = `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata: {name: cache-bind, namespace: apps}
spec:
  instanceRef: {name: cache}
`
	}
	return out
}

// push commits the repo state, removing files no longer rendered.
func (s *sweep) push(msg string, files map[string]string) {
	s.t.Helper()
	var remove []string
	for _, f := range []string{"apps/db.yaml", "apps/db-bind.yaml", "apps/cache-bind.yaml"} {
		if _, ok := files[f]; !ok && s.repo.Show(f) != "" {
			remove = append(remove, f)
		}
	}
	s.repo.Push(msg, files, remove)
}

// run runs an osbgit command against the HTTP remote with the sweep's log
// format at debug level, collects its output and returns its exit code.
// The git password comes from a file, or (urlCreds) from the URL.
func (s *sweep) run(urlCreds bool, args ...string) int {
	s.t.Helper()
	repo := s.url
	base := []string{"--secret-store", "dir:" + s.store, "--cache-dir", s.cache,
		"--log-format", s.format, "--log-level", "debug"}
	if urlCreds {
		repo = strings.Replace(repo, "http://", "http://"+sweepGitUser+":"+sweepGitPass+"@", 1)
	} else {
		base = append(base, "--git-username", sweepGitUser, "--git-password-file", s.pwFile)
	}
	var out, errb bytes.Buffer
	code := run(append(append([]string{args[0], "--repo", repo}, base...), args[1:]...), &out, &errb)
	s.seen = append(s.seen, fmt.Sprintf("$ osbgit %s (exit %d)\n%s\n%s", strings.Join(args, " "), code, out.String(), errb.String()))
	return code
}

// plantCredentials adds the binding credentials the brokers hold now.
func (s *sweep) plantCredentials() {
	for _, b := range []*osbtest.Broker{s.basic, s.bearer} {
		for id, bn := range b.Bindings() {
			for _, k := range []string{"password", "uri"} {
				if v, ok := bn.Credentials[k].(string); ok {
					s.planted["binding "+id+" "+k] = v
				}
			}
		}
	}
}

// check searches everything collected, every file osbgit wrote outside
// the secret store (its cache: pass state, decoded manifests) and the
// whole Git history for the planted values, in every form redact.Forms
// lists (raw, JSON-escaped, Go-quoted, URL-encoded, base64).
func (s *sweep) check() {
	s.t.Helper()
	hay := append([]string{}, s.seen...)
	hay = append(hay, gittest.Git(s.t, s.repo.Bare, "log", "-p", "--all", "--format=%H %an <%ae>%n%B"))
	filepath.WalkDir(s.cache, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, string(filepath.Separator)+"objects"+string(filepath.Separator)) {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil {
			hay = append(hay, "file "+path+"\n"+string(b))
		}
		return nil
	})
	all := strings.Join(hay, "\n")
	if len(s.planted) < 8 {
		s.t.Fatalf("only %d planted values: the scenario did not bind", len(s.planted))
	}
	for what, v := range s.planted {
		for _, f := range redact.Forms(v) {
			if i := strings.Index(all, f); i >= 0 {
				lo := max(0, strings.LastIndex(all[:i], "\n"))
				s.t.Errorf("the %s shows up as %q: %q", what, f, strings.TrimSpace(all[lo:min(len(all), i+len(f)+80)]))
			}
		}
	}
	if !strings.Contains(all, redact.Placeholder) || !strings.Contains(all, "REDACTED@dashboard.osbtest.invalid") {
		s.t.Errorf("nothing was scrubbed: the brokers' echo never reached osbgit")
	}
}

// TestSecurityNoCredentialAnywhere runs a full scenario through the CLI —
// validate, diff (text and JSON), sync creating instances and bindings
// (credentials, parametersFrom), catalog, an update, a failing broker call,
// a failing drift check, a failing unbind, unbind, deprovision — once with
// JSON logs and once with text logs, at debug level, against a Git remote
// over HTTP with basic auth (password from a file, then in the URL) and
// brokers that echo everything they received and the credentials they
// handed out (osbtest Config.Echo: raw, JSON-escaped, URL-encoded and
// base64, in error and last_operation descriptions and dashboard URLs).
// It collects every output and log line, every error, the pass state and
// cache files, every record and the whole Git history, and finds none of
// the planted values in any of their forms: broker password, bearer
// token, binding credentials (password, uri), the parametersFrom value,
// the Git password.
func TestSecurityNoCredentialAnywhere(t *testing.T) {
	// The scenario's syncs run back to back: a call the broker gave no
	// verdict on is repeated by the next one.
	t.Setenv("OSBGIT_MIN_RETRY_DELAY", "1ns")
	t.Setenv("OSBGIT_MAX_RETRY_DELAY", "1ns")
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			if testing.Short() && format == "text" {
				t.Skip("-short: the json sweep runs the same scenario; make test runs both")
			}
			// The two sweeps share nothing but the environment set
			// above (the CLI builds its logger per run).
			t.Parallel()
			s := newSweep(t, format)
			s.run(false, "validate")
			if code := s.run(false, "diff"); code != exitChanges {
				t.Fatalf("diff before the first sync exited %d:\n%s", code, s.seen[len(s.seen)-1])
			}
			s.run(false, "diff", "-o", "json")
			if code := s.run(false, "sync"); code != exitOK {
				t.Fatalf("first sync exited %d:\n%s", code, s.seen[len(s.seen)-1])
			}
			s.plantCredentials()
			if len(s.basic.Bindings()) != 1 || len(s.bearer.Bindings()) != 1 {
				t.Fatalf("bindings: %d basic, %d bearer:\n%s", len(s.basic.Bindings()), len(s.bearer.Bindings()), strings.Join(s.seen, "\n"))
			}
			s.run(true, "catalog", "-o", "json")
			s.run(true, "diff", "--offline")

			// A drift check the broker refuses, quoting everything.
			s.basic.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointGetInstance, Status: 500, Times: 1})
			s.bearer.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointGetInstance, Status: 500, Times: 1})
			s.run(false, "diff", "--drift")
			s.run(true, "diff", "--drift", "-o", "json")

			// Update: plan and the parametersFrom value change.
			s.putParams(sweepParamSecret + "-2")
			s.planted["parametersFrom value (updated)"] = sweepParamSecret + "-2"
			s.push("db large", s.files(true, "large", true))
			s.run(false, "diff")
			s.run(false, "diff", "-o", "json")
			if code := s.run(false, "sync"); code != exitOK {
				t.Fatalf("update sync exited %d:\n%s", code, s.seen[len(s.seen)-1])
			}

			// A failing broker call: the answer quotes the request.
			s.basic.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUpdate, Status: 500, Times: 1,
				Body: []byte(`{"error":"Boom","description":"failed; Authorization: Basic ` + base64.StdEncoding.EncodeToString([]byte("u:"+sweepBrokerPass)) + `"}`)})
			s.planted["broker basic credentials (base64)"] = base64.StdEncoding.EncodeToString([]byte("u:" + sweepBrokerPass))
			s.push("db small", s.files(true, "small", true))
			if code := s.run(false, "sync"); code != exitChanges {
				t.Errorf("sync with a failing update exited %d, want %d", code, exitChanges)
			}
			s.run(false, "sync", "--no-state")

			// Unbind, refused once with the credentials quoted, then
			// deprovision.
			s.push("unbind", s.files(true, "small", false))
			s.run(true, "diff")
			s.basic.AddFault(osbtest.Fault{Endpoint: osbtest.EndpointUnbind, Status: 500, Times: 1})
			if code := s.run(false, "sync", "--no-state"); code != exitChanges {
				t.Errorf("sync with a failing unbind exited %d, want %d", code, exitChanges)
			}
			if code := s.run(true, "sync"); code != exitOK {
				t.Fatalf("unbind sync exited %d:\n%s", code, s.seen[len(s.seen)-1])
			}
			s.push("deprovision", s.files(false, "small", false))
			s.run(false, "diff", "-o", "json")
			if code := s.run(false, "sync"); code != exitOK {
				t.Fatalf("deprovision sync exited %d:\n%s", code, s.seen[len(s.seen)-1])
			}
			// A wrong Git password: the error must not show the right one
			// nor the wrong one.
			wrong := filepath.Join(t.TempDir(), "wrong")
			os.WriteFile(wrong, []byte("wrong-git-pass-Yp0\n"), 0o600)
			s.planted["wrong git password"] = "wrong-git-pass-Yp0"
			var out, errb bytes.Buffer
			code := run([]string{"sync", "--repo", s.url, "--secret-store", "dir:" + s.store, "--cache-dir", t.TempDir(),
				"--log-format", format, "--log-level", "debug", "--git-username", sweepGitUser, "--git-password-file", wrong}, &out, &errb)
			s.seen = append(s.seen, out.String(), errb.String())
			if code != exitError || !strings.Contains(errb.String(), "authentication") {
				t.Errorf("sync with a wrong Git password: exit %d, stderr %s", code, errb.String())
			}
			if len(s.basic.Instances()) != 0 || len(s.bearer.Bindings()) != 0 {
				t.Fatalf("scenario did not end empty: %d instances, %d bindings", len(s.basic.Instances()), len(s.bearer.Bindings()))
			}
			s.check()
		})
	}
}

// TestBrokerTLSVerifiedByDefault: a broker behind a self-signed certificate
// is refused unless the manifest trusts it (caBundle) or opts out
// (insecureSkipTLSVerify): without either, the pass says why (a TLS
// error naming the broker) and no request reaches the broker.
func TestBrokerTLSVerifiedByDefault(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// spec is added to the broker's spec (caBundle or skip).
		spec   func(srv *httptest.Server) string
		secure bool // the pass must work
	}{
		{name: "no caBundle", spec: func(*httptest.Server) string { return "" }},
		{name: "wrong caBundle", spec: func(*httptest.Server) string { return "  caBundle: " + otherCA(t) + "\n" }},
		{name: "caBundle", spec: func(srv *httptest.Server) string { return "  caBundle: " + caBundle(srv) + "\n" }, secure: true},
		{name: "insecureSkipTLSVerify", spec: func(*httptest.Server) string { return "  insecureSkipTLSVerify: true\n" }, secure: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, srv := osbtest.NewTLSServer(t, osbtest.Config{})
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			repo := gittest.New(t, map[string]string{
				"broker.yaml": "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ClusterServiceBroker\nmetadata: {name: tls}\nspec:\n  url: " + srv.URL + "\n" + tc.spec(srv),
				"apps/db.yaml": "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata: {name: db, namespace: apps}\n" +
					"spec: {clusterServiceClassExternalName: osbtest-db, clusterServicePlanExternalName: small}\n",
			})
			store := filepath.Join(t.TempDir(), "secrets")
			var out, errb bytes.Buffer
			code := run([]string{"sync", "--repo", repo.Bare, "--secret-store", "dir:" + store, "--cache-dir", t.TempDir(), "--no-state"}, &out, &errb)
			if tc.secure {
				if code != exitOK || len(b.Instances()) != 1 {
					t.Fatalf("sync exit %d, %d instances:\n%s\n%s", code, len(b.Instances()), out.String(), errb.String())
				}
				return
			}
			if n := len(b.Calls()); n != 0 || len(b.Instances()) != 0 {
				t.Fatalf("%d requests reached the broker, %d instances", n, len(b.Instances()))
			}
			msg := errb.String()
			if !strings.Contains(msg, "tls") || !strings.Contains(msg, "certificate") || !strings.Contains(msg, "broker") {
				t.Errorf("the output does not say the broker's certificate was refused:\n%s\n%s", out.String(), msg)
			}
			p, _ := manifest.StatusPath(manifest.Ref{Kind: manifest.KindServiceInstance, Namespace: "apps", Name: "db"})
			rec := repo.Show(p)
			if strings.Contains(rec, "phase: Ready") {
				t.Errorf("instance recorded Ready through an unverified broker:\n%s", rec)
			}
		})
	}
}

// otherCA is a caBundle of a freshly made self-signed CA for 127.0.0.1
// (httptest servers all share one certificate, so another httptest server's
// would be trusted).
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// caBundle is the manifest's caBundle for srv: its certificate as base64 PEM.
func caBundle(srv *httptest.Server) string {
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return base64.StdEncoding.EncodeToString(p)
}

// TestDirStorePermissions: after syncs that create, rotate and delete
// credentials, every directory of the dir store is 0700 and every file
// 0600, whatever the umask.
func TestDirStorePermissions(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	f.repo.Push("bind", map[string]string{"apps/db-bind.yaml": `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata: {name: db-bind, namespace: apps}
spec:
  instanceRef: {name: db}
`, "apps/other-bind.yaml": `apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata: {name: other-bind, namespace: apps}
spec:
  instanceRef: {name: db}
  secretTransforms:
  - addKey: {key: extra, stringValue: x}
`}, nil)
	if code, out, errs := f.run(t, "sync", "--no-state"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	f.repo.Push("unbind other", nil, []string{"apps/other-bind.yaml"})
	if code, out, errs := f.run(t, "sync", "--no-state"); code != exitOK {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	var seen []string
	err := filepath.WalkDir(f.store, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.store, path)
		seen = append(seen, rel)
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700 | fs.ModeDir
		}
		if info.Mode() != want {
			t.Errorf("%s: mode %v, want %v", rel, info.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(seen)
	if !contains(seen, filepath.Join("apps", "db-bind", "password")) || contains(seen, filepath.Join("apps", "other-bind")) {
		t.Fatalf("store content: %v", seen)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestHostileManifestsStayInStore syncs manifests whose Secret names and
// keys try to leave the dir store (secretName ../../etc, renameKey to
// ../x, addKey .., parametersFrom and addKeysFrom of ../ Secrets) next to a
// sound instance and binding: the sound ones converge, the hostile ones
// get records with a file:line error, and nothing appears or changes
// anywhere around the store.
func TestHostileManifestsStayInStore(t *testing.T) {
	t.Parallel()
	f := newCLIFixture(t)
	sandbox := t.TempDir()
	f.store = filepath.Join(sandbox, "a", "b", "store")
	st, _ := secretstore.NewDir(f.store)
	if err := st.Put(context.Background(), "osbgit-system", "broker-auth", secrets.Secret{Data: map[string][]byte{
		"username": []byte("u"), "password": []byte(cliBrokerPass)}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sandbox, "a", "b", "x"), []byte("original\n"), 0o644)
	bind := func(name, extra string) string {
		return "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceBinding\nmetadata: {name: " + name + ", namespace: apps}\nspec:\n  instanceRef: {name: db}\n" + extra
	}
	hostile := map[string]string{
		"apps/h1.yaml": bind("h1", "  secretName: ../../etc\n"),
		"apps/h2.yaml": bind("h2", "  secretTransforms:\n  - renameKey: {from: uri, to: ../x}\n"),
		"apps/h3.yaml": bind("h3", "  secretTransforms:\n  - addKey: {key: .., stringValue: pwned}\n"),
		"apps/h4.yaml": bind("h4", "  secretTransforms:\n  - addKeysFrom: {secretRef: {name: ../../../x}}\n"),
		"apps/h5.yaml": bind("h5", "  parametersFrom:\n  - secretKeyRef: {name: ../x, key: params}\n"),
		"apps/h6.yaml": bind("h6", "  secretName: ..\n"),
		"apps/h7.yaml": "apiVersion: servicecatalog.k8s.io/v1beta1\nkind: ServiceInstance\nmetadata: {name: h7, namespace: apps}\nspec:\n" +
			"  clusterServiceClassExternalName: osbtest-db\n  clusterServicePlanExternalName: small\n  parametersFrom:\n  - secretKeyRef: {name: osbgit-system, key: ../broker-auth/password}\n",
		"apps/good-bind.yaml": bind("good-bind", ""),
	}
	f.repo.Push("hostile", hostile, nil)
	before := snapshot(t, sandbox, f.store)
	code, out, errs := f.run(t, "sync", "--no-state")
	if code == exitError {
		t.Fatalf("sync exit %d\n%s\n%s", code, out, errs)
	}
	f.run(t, "sync", "--no-state")
	after := snapshot(t, sandbox, f.store)
	for p, v := range after {
		if before[p] != v {
			t.Errorf("outside the store: %s changed (%s -> %s)", p, before[p], v)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("outside the store: %s removed", p)
		}
	}
	if _, err := os.Stat(filepath.Join(f.store, "apps", "good-bind", "password")); err != nil {
		t.Errorf("the sound binding's Secret: %v", err)
	}
	if len(f.broker.Instances()) != 1 || len(f.broker.Bindings()) != 1 {
		t.Errorf("broker holds %d instances and %d bindings, want the sound ones only", len(f.broker.Instances()), len(f.broker.Bindings()))
	}
	for name := range hostile {
		n := strings.TrimSuffix(filepath.Base(name), ".yaml")
		if n == "good-bind" {
			continue
		}
		kind := manifest.KindServiceBinding
		if n == "h7" {
			kind = manifest.KindServiceInstance
		}
		p, _ := manifest.StatusPath(manifest.Ref{Kind: kind, Namespace: "apps", Name: n})
		rec := f.repo.Show(p)
		if !strings.Contains(rec, name+":") {
			t.Errorf("record of %s does not name the file and line of the error:\n%s", n, rec)
		}
	}
	if !strings.Contains(out+errs, "h1.yaml") {
		t.Errorf("sync output does not mention the hostile manifests:\n%s\n%s", out, errs)
	}
}

// snapshot maps every path under root, except inside skip, to its mode,
// size and content digest.
func snapshot(t *testing.T, root, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if path == skip {
			return filepath.SkipDir
		}
		info, _ := d.Info()
		sum := ""
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(path)
			sum = fmt.Sprintf("%x", b)
		}
		out[path] = fmt.Sprintf("%v %d %s", info.Mode(), info.Size(), sum)
		return nil
	})
	return out
}

// TestGitCredentialsLearnt: the Git password and token (files or
// environment) and the password of a --repo URL are in the process's
// redact set with the user:password pairs and Authorization values made
// of them, so any text quoting them, in any form, is scrubbed.
func TestGitCredentialsLearnt(t *testing.T) {
	dir := t.TempDir()
	pwFile, tokFile := filepath.Join(dir, "pw"), filepath.Join(dir, "tok")
	os.WriteFile(pwFile, []byte("file-git-pass-1\n"), 0o600)
	os.WriteFile(tokFile, []byte("file-git-token-2\n"), 0o600)
	t.Setenv("OSBGIT_GIT_PASSWORD", "")
	t.Setenv("OSBGIT_GIT_TOKEN", "")
	cases := []struct {
		name string
		g    globalOptions
		want []string
	}{
		{"files", globalOptions{Repo: "https://git.example/r.git", GitUsername: "u", GitPasswordFile: pwFile, GitTokenFile: tokFile},
			[]string{"file-git-pass-1", "u:file-git-pass-1", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:file-git-pass-1")),
				"file-git-token-2", "Bearer file-git-token-2"}},
		{"URL", globalOptions{Repo: "https://url-user:url%2Fpass-3@git.example/r.git"},
			[]string{"url/pass-3", "url-user:url/pass-3", "url-user:url%2Fpass-3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			g.secrets = redact.New()
			if _, err := g.gitAuth(); err != nil {
				t.Fatal(err)
			}
			for _, v := range tc.want {
				for _, f := range redact.Forms(v) {
					if got := g.secrets.Scrub("<" + f + ">"); got != "<"+redact.Placeholder+">" {
						t.Errorf("%q (a form of %q) scrubbed to %q", f, v, got)
					}
				}
			}
		})
	}
}
