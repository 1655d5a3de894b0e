package bench

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/manifest/gitrepo/gittest"
	"github.com/osbgit/osbgit/osbclient/osbtest"
	"github.com/osbgit/osbgit/reconciler"
	"github.com/osbgit/osbgit/reconciler/integrity"
	"github.com/osbgit/osbgit/reconciler/secrets"
	"github.com/osbgit/osbgit/reconciler/secretstore"
)

// Environment variables of the figures (see the package doc).
const (
	envScale   = "OSBGIT_BENCH_SCALE"
	envFigures = "OSBGIT_BENCH_FIGURES"
	envReps    = "OSBGIT_BENCH_REPS"
	envTmp     = "OSBGIT_BENCH_TMP"
	// envSlowdown scales every ratio (see slowdownFactor).
	envSlowdown = "OSBGIT_BENCH_SLOWDOWN"
	// envLimits replaces figures' limits (see limitOverrides).
	envLimits = "OSBGIT_BENCH_LIMITS"
	// envChild makes the test binary run one measurement as a child
	// process (see child_test.go) instead of the tests.
	envChild = "OSBGIT_BENCH_CHILD"
)

// Broker credentials and where the manifests reference them.
const (
	brokerUser = "bench-broker"
	brokerPass = "bench-broker-pass"
	authNS     = "osbgit-system"
	authName   = "broker-auth"
)

// TestMain runs a child measurement when envChild is set, else the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// settings are the figures' knobs, from the environment.
type settings struct {
	scale   float64
	reps    int
	figures map[string]bool
}

func loadSettings(t *testing.T) (settings, bool) {
	v := os.Getenv(envScale)
	if v == "" {
		return settings{}, false
	}
	s := settings{}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 10 {
		t.Fatalf("%s=%q: want a number in (0, 10]", envScale, v)
	}
	s.scale = f
	if r := os.Getenv(envReps); r != "" {
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive integer", envReps, r)
		}
		s.reps = n
	}
	if names := os.Getenv(envFigures); names != "" {
		s.figures = map[string]bool{}
		for _, n := range strings.Split(names, ",") {
			s.figures[strings.TrimSpace(n)] = true
		}
	}
	return s, true
}

// n scales a full-scale count (at least 1).
func (s settings) n(full int) int {
	return max(1, int(math.Round(float64(full)*s.scale)))
}

// repsOr is the number of measured repetitions: OSBGIT_BENCH_REPS, else def.
func (s settings) repsOr(def int) int {
	if s.reps > 0 {
		return s.reps
	}
	return def
}

func (s settings) want(name string) bool { return s.figures == nil || s.figures[name] }

// figure is one line of the report.
type figure struct {
	name  string
	ratio float64
	limit float64
	// raw holds the measured numbers behind the ratio.
	raw string
	// failures are conditions other than the ratio that were not met.
	failures []string
}

func (f figure) ok() bool { return f.ratio <= f.limit && len(f.failures) == 0 }

func (f figure) line() string {
	s := fmt.Sprintf("%s: ratio %.2f (limit %s)  %s", f.name, f.ratio, strconv.FormatFloat(f.limit, 'f', -1, 64), f.raw)
	if len(f.failures) > 0 {
		s += "  FAILED: " + strings.Join(f.failures, "; ")
	}
	return s
}

// TestFigures measures every selected figure and prints one line per
// figure at the end; it fails when a figure is over its limit.
func TestFigures(t *testing.T) {
	s, ok := loadSettings(t)
	if !ok {
		t.Skipf("set %s (make bench, make bench-short) to measure the figures", envScale)
	}
	tmp := benchTmp()
	t.Setenv("TMPDIR", tmp)
	logf("scale %g, GOMAXPROCS %d, %d CPUs, load average %s, repositories and secret stores under %s",
		s.scale, runtime.GOMAXPROCS(0), runtime.NumCPU(), loadAvg(), tmp)
	defer func() {
		logf("done; load average %s (other processes compete for the CPUs: compare medians and spreads)", loadAvg())
	}()
	var figs []figure
	one := func(run func(*testing.T, settings) figure) func(*testing.T, settings) []figure {
		return func(t *testing.T, s settings) []figure { return []figure{run(t, s)} }
	}
	for _, f := range []struct {
		// names are the figures run makes: it runs when one is wanted,
		// and names each figure it returns.
		names []string
		run   func(*testing.T, settings) []figure
	}{
		{[]string{"noop-pass", "status"}, noopPass},
		{[]string{"converge"}, one(converge)},
		{[]string{"async"}, one(asyncConverge)},
		{[]string{"incremental"}, one(incremental)},
		{[]string{"scale"}, one(scaleFigure)},
	} {
		if !slices.ContainsFunc(f.names, s.want) || (f.names[0] == "scale" && s.scale >= 1 && !s.figures["scale"]) {
			// At full scale the headroom figure runs only when named (its
			// setup converges 200,000 resources); the short variant runs
			// it at 1/10.
			continue
		}
		t.Run(f.names[0], func(t *testing.T) {
			got := f.run(t, s)
			if len(got) == 1 && got[0].name == "" {
				got[0].name = f.names[0]
			}
			figs = append(figs, got...)
		})
		// Each figure starts from a small heap, and with the last one's
		// writes on disk: its writeback (10,000s of files) made the
		// secret store's fsyncs in the next figure up to 2x slower.
		runtime.GC()
		debug.FreeOSMemory()
		syscall.Sync()
	}
	slowdown := slowdownFactor(t)
	limits := limitOverrides(t)
	fmt.Println()
	for _, f := range figs {
		if l, ok := limits[f.name]; ok {
			f.raw = fmt.Sprintf("(limit set by %s; the figure's own is %g) %s", envLimits, f.limit, f.raw)
			f.limit = l
		}
		if slowdown != 1 {
			f.ratio *= slowdown
			f.raw = fmt.Sprintf("(ratio x %g, %s) %s", slowdown, envSlowdown, f.raw)
		}
		fmt.Println(f.line())
		if !f.ok() {
			t.Errorf("%s over its limit", f.name)
		}
	}
}

// limitOverrides reads OSBGIT_BENCH_LIMITS, "name=limit,...": limits
// that replace figures' own. CI holds a figure that misses its limit at
// the level it has reached (a regression gate, printed on its line)
// instead of ignoring it.
func limitOverrides(t *testing.T) map[string]float64 {
	out := map[string]float64{}
	v := os.Getenv(envLimits)
	if v == "" {
		return out
	}
	for _, kv := range strings.Split(v, ",") {
		name, l, ok := strings.Cut(strings.TrimSpace(kv), "=")
		f, err := strconv.ParseFloat(l, 64)
		if !ok || err != nil || f <= 0 {
			t.Fatalf("%s=%q: want name=limit,...", envLimits, v)
		}
		out[name] = f
	}
	return out
}

// slowdownFactor is OSBGIT_BENCH_SLOWDOWN (default 1): every ratio is
// multiplied by it before it is checked, as if osbgit's side of each
// figure were that much slower. It tells whether the gate catches a
// regression of that size: CI's repetitions were chosen so that 10 runs
// in a row pass and 10 runs with 1.25 fail every figure within 25% of
// its limit.
func slowdownFactor(t *testing.T) float64 {
	v := os.Getenv(envSlowdown)
	if v == "" {
		return 1
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		t.Fatalf("%s=%q: want a positive number", envSlowdown, v)
	}
	return f
}

// benchTmp is where repositories and secret stores go: OSBGIT_BENCH_TMP,
// else /dev/shm when it is a writable directory (tmpfs), else the default
// temporary directory. The figures measure osbgit's work, not the disk: on
// a shared disk the directory secret store's fsyncs (several per Secret)
// and Git's object files would dominate and vary with the neighbours.
func benchTmp() string {
	if d := os.Getenv(envTmp); d != "" {
		return d
	}
	if f, err := os.CreateTemp("/dev/shm", "osbgit-bench-probe-*"); err == nil {
		f.Close()
		os.Remove(f.Name())
		return "/dev/shm"
	}
	return os.TempDir()
}

// loadAvg is the 1, 5 and 15 minute load average ("?" when unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

var benchStart = time.Now()

// logf prints progress on stderr (the figures go to stdout).
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %6.1fs: %s\n", time.Since(benchStart).Seconds(), fmt.Sprintf(format, args...))
}

// world is a broker on loopback and a directory secret store holding its
// credentials.
type world struct {
	broker   *osbtest.Broker
	srv      *httptest.Server
	storeDir string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	b, srv := osbtest.NewServer(t, osbtest.Config{Username: brokerUser, Password: brokerPass, RequireRequestIdentity: true})
	w := &world{broker: b, srv: srv}
	w.storeDir = newStore(t)
	return w
}

// newStore creates a directory secret store holding the broker credentials
// and returns its path.
func newStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secrets")
	store, err := secretstore.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(context.Background(), authNS, authName, secrets.Secret{Data: map[string][]byte{
		"username": []byte(brokerUser), "password": []byte(brokerPass)}}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// perNamespace is how many instances share a namespace (and a directory).
const perNamespace = 100

// manifests returns the files of a manifest repo: osbgit.yaml, the broker
// and n instances of plan (with a binding each when bindings is set),
// perNamespace to a namespace, one file per resource.
func manifests(brokerURL string, n int, bindings bool, plan string) map[string]string {
	files := map[string]string{
		"osbgit.yaml": "apiVersion: osbgit.dev/v1alpha1\nkind: Config\nclusterID: bench\n",
		"brokers/osbtest.yaml": fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ClusterServiceBroker
metadata:
  name: osbtest
spec:
  url: %s
  authInfo:
    basic:
      secretRef:
        namespace: %s
        name: %s
`, brokerURL, authNS, authName),
	}
	for i := range n {
		ns := fmt.Sprintf("team-%03d", i/perNamespace)
		name := fmt.Sprintf("db-%05d", i)
		inst := fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceInstance
metadata:
  name: %s
  namespace: %s
  labels:
    app: app-%05d
spec:
  clusterServiceClassExternalName: osbtest-db
  clusterServicePlanExternalName: %s
`, name, ns, i, plan)
		if plan == "small" {
			inst += fmt.Sprintf("  parameters:\n    size: %d\n    region: region-%d\n", 1+i%50, i%4)
		}
		files[fmt.Sprintf("apps/%s/%s.yaml", ns, name)] = inst
		if !bindings {
			continue
		}
		files[fmt.Sprintf("apps/%s/%s-bind.yaml", ns, name)] = fmt.Sprintf(`apiVersion: servicecatalog.k8s.io/v1beta1
kind: ServiceBinding
metadata:
  name: %s-bind
  namespace: %s
spec:
  instanceRef:
    name: %s
  secretName: %s-credentials
  secretTransforms:
  - renameKey:
      from: uri
      to: DATABASE_URL
`, name, ns, name, name)
	}
	return files
}

// newRepo creates the bare repository (branch main) with files as its
// first commit, pushed with the git CLI.
//
// receive.autogc is turned off: osbgit's pushes to a local repository run
// git-receive-pack, whose automatic "git gc --auto" (detached) fires once
// more than gc.auto (6,700) loose objects exist — and osbgit's own write
// leaves one loose object per record written. The gc packs and deletes
// them while the pass still holds go-git's old pack index, and the status
// commit then fails with "base commit …: object not found" (seen with the
// 20,000 records of the no-op figure's setup). That is a gitrepo bug, not
// what these figures measure, and a background gc would also disturb the
// timings.
func newRepo(t *testing.T, files map[string]string) *gittest.Repo {
	t.Helper()
	repo := gittest.New(t, files)
	gittest.Git(t, repo.Bare, "config", "receive.autogc", "false")
	return repo
}

// openReconciler builds a reconciler as a fresh `osbgit sync` process would:
// the local repository opened in place, the directory secret store, no
// state from earlier passes.
func openReconciler(bare, storeDir string, opts reconciler.Options) (*reconciler.Reconciler, func(), error) {
	repo, err := gitrepo.Open(context.Background(), gitrepo.Options{URL: bare, Branch: "main"})
	if err != nil {
		return nil, nil, err
	}
	store, err := secretstore.NewDir(storeDir)
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	r := &reconciler.Reconciler{
		Source:  repo,
		Secrets: store,
		Keys:    integrity.NewKeeper(store, authNS),
		Clients: &reconciler.BrokerClients{Secrets: store},
		Options: opts,
	}
	return r, func() { repo.Close() }, nil
}

// copyRepo copies a bare repository (a fresh remote for each repetition).
func copyRepo(t *testing.T, bare string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo.git")
	if out, err := exec.Command("cp", "-a", bare, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy repo: %v\n%s", err, out)
	}
	return dst
}

// commitCount is the number of commits on main of a bare repository.
func commitCount(t *testing.T, bare string) int {
	t.Helper()
	out, err := exec.Command("git", "-C", bare, "rev-list", "--count", "main").Output()
	if err != nil {
		t.Fatalf("git rev-list: %v", err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// stats summarise repeated measurements.
type stats struct{ vals []float64 }

func (s *stats) add(v float64) { s.vals = append(s.vals, v) }

func (s stats) sorted() []float64 {
	v := slices.Clone(s.vals)
	slices.Sort(v)
	return v
}

func (s stats) best() float64 { return s.sorted()[0] }

func (s stats) median() float64 {
	v := s.sorted()
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// spread is (max-min)/min: the noise of the repetitions.
func (s stats) spread() float64 {
	v := s.sorted()
	return (v[len(v)-1] - v[0]) / v[0]
}

// dur formats seconds for the report.
func dur(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
