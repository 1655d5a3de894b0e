package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/reconciler"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/statusview"
)

// Child processes measure one thing each from a fresh process (no state in
// memory, the OS page cache warm from earlier runs), so the floor and the
// pass are timed under the same conditions and the pass's peak RSS is its
// own.
const (
	envChildRepo  = "OSBGIT_BENCH_REPO"
	envChildStore = "OSBGIT_BENCH_STORE"
	// childMarker prefixes the child's JSON result on stdout.
	childMarker = "OSBGIT-BENCH-RESULT "
	// envCPUProfile, when set, makes every child write a CPU profile to
	// <value>-<mode>-<pid>.prof (and the pass child its allocations after
	// the first pass to <value>-pass-<pid>.heap), and the incremental
	// figure's warm syncs theirs (incremental).
	envCPUProfile = "OSBGIT_BENCH_CPUPROFILE"
	// envPeakHeap, when set, makes every child write a heap profile to
	// <value>-<mode>-<pid>.peak each time a collection finds more live heap
	// than any before it: the last one written shows what the peak held.
	envPeakHeap = "OSBGIT_BENCH_PEAKHEAP"
)

// Child modes.
const (
	modeFloor  = "floor"
	modePass   = "pass"
	modeStatus = "status"
	// modeRunPass is a long-running process (`run`): a first pass, then
	// the full pass it makes when a broker's relist is due.
	modeRunPass = "run-pass"
)

// childResult is what a child reports.
type childResult struct {
	// Seconds is the measured wall time.
	Seconds float64
	// Objects is the number of manifests loaded (floor) or plan steps
	// (pass).
	Objects int
	// Records is the number of records decoded (floor).
	Records int
	// Pass only: steps whose action is not none, whether the pass was
	// skipped, the commit it pushed, failed steps, and the second pass of
	// the same process (state in memory: the one-ref-lookup path).
	Mutating    int
	Skipped     bool
	Commit      string
	Failed      int
	SkipSeconds float64
	SkipSkipped bool
	SkipReason  string
	// RunPass only: the wall and CPU seconds of the full pass a
	// long-running process makes when a relist is due, after its first
	// pass (Seconds).
	FullSeconds, FullCPU float64
	// PeakRSS is the child's VmHWM in bytes (0 when unknown).
	PeakRSS int64
	// Mem summarises the Go runtime's memory after the measurement.
	Mem string
	// Err is set when the child failed.
	Err string
}

// runChild runs a child measurement and prints its result; it returns the
// exit code.
func runChild(mode string) int {
	if prefix := os.Getenv(envCPUProfile); prefix != "" {
		f, err := os.Create(fmt.Sprintf("%s-%s-%d.prof", prefix, mode, os.Getpid()))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	if prefix := os.Getenv(envPeakHeap); prefix != "" {
		stop := profilePeakHeap(fmt.Sprintf("%s-%s-%d.peak", prefix, mode, os.Getpid()))
		defer stop()
	}
	var res childResult
	var err error
	switch mode {
	case modeFloor:
		res, err = childFloor(os.Getenv(envChildRepo))
	case modePass:
		res, err = childPass(os.Getenv(envChildRepo), os.Getenv(envChildStore))
	case modeStatus:
		res, err = childStatus(os.Getenv(envChildRepo), os.Getenv(envChildStore))
	case modeRunPass:
		res, err = childRunPass(os.Getenv(envChildRepo), os.Getenv(envChildStore))
	default:
		err = fmt.Errorf("unknown child mode %q", mode)
	}
	if err != nil {
		res.Err = err.Error()
	}
	res.PeakRSS = peakRSS()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.Mem = fmt.Sprintf("sys %d MB, heap sys %d MB, heap inuse %d MB, stack %d MB, %d GCs, total alloc %d MB",
		ms.Sys>>20, ms.HeapSys>>20, ms.HeapInuse>>20, ms.StackSys>>20, ms.NumGC, ms.TotalAlloc>>20)
	b, _ := json.Marshal(res)
	fmt.Println(childMarker + string(b))
	if err != nil {
		return 1
	}
	return 0
}

// childFloor is the unavoidable work of any no-op pass, as issue 17
// restates it: list the files of the branch head, then read and decode
// everything a pass must read — the manifests and the records under
// .osbgit/ — with sigs.k8s.io/yaml, the library the design names, one file
// after another, and assemble the manifests. It includes opening the
// repository, as the pass does.
func childFloor(bare string) (childResult, error) {
	start := time.Now()
	objects, records, err := readAndDecode(bare)
	if err != nil {
		return childResult{}, err
	}
	return childResult{Seconds: time.Since(start).Seconds(), Objects: objects, Records: records}, nil
}

// readAndDecode is the no-op floor's job: it returns the number of
// manifests assembled and of records decoded.
func readAndDecode(bare string) (objects, records int, err error) {
	ctx := context.Background()
	repo, err := gitrepo.Open(ctx, gitrepo.Options{URL: bare, Branch: "main"})
	if err != nil {
		return 0, 0, err
	}
	defer repo.Close()
	fr, err := repo.Fetch(ctx)
	if err != nil {
		return 0, 0, err
	}
	files, err := repo.Files(fr.Head, ".")
	if err != nil {
		return 0, 0, err
	}
	var cfg *manifest.Config
	var objs []manifest.Object
	for _, f := range files {
		_, isStatus, isRecord := manifest.RecordRefOf(f.Path)
		if !isRecord && !isManifest(f.Path) && f.Path != manifest.ConfigFileName {
			continue
		}
		data, err := repo.ReadBlob(f.Blob)
		if err != nil {
			return 0, 0, err
		}
		switch {
		case isRecord:
			var rec manifest.Record = &manifest.CatalogRecord{}
			if isStatus {
				rec = &manifest.StatusRecord{}
			}
			if err := yaml.UnmarshalStrict(data, rec); err != nil {
				return 0, 0, fmt.Errorf("%s: %w", f.Path, err)
			}
			records++
		case f.Path == manifest.ConfigFileName:
			cfg = manifest.DefaultConfig()
			if err := yaml.Unmarshal(data, cfg); err != nil {
				return 0, 0, fmt.Errorf("%s: %w", f.Path, err)
			}
		default:
			obj, err := decodeManifest(data)
			if err != nil {
				return 0, 0, fmt.Errorf("%s: %w", f.Path, err)
			}
			objs = append(objs, obj)
		}
	}
	set, diags := manifest.Assemble(objs, cfg)
	if diags.HasErrors() {
		return 0, 0, diags.Err()
	}
	return len(set.Objects()), records, nil
}

// decodeManifest decodes a one-document manifest into the Go type of its
// kind: sigs.k8s.io/yaml converts it to JSON once, and encoding/json reads
// the kind, then the object.
func decodeManifest(data []byte) (manifest.Object, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, err
	}
	var obj manifest.Object
	switch manifest.Kind(tm.Kind) {
	case manifest.KindClusterServiceBroker:
		obj = &manifest.ClusterServiceBroker{}
	case manifest.KindServiceBroker:
		obj = &manifest.ServiceBroker{}
	case manifest.KindServiceInstance:
		obj = &manifest.ServiceInstance{}
	case manifest.KindServiceBinding:
		obj = &manifest.ServiceBinding{}
	default:
		return nil, fmt.Errorf("unexpected kind %q", tm.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return obj, dec.Decode(obj)
}

// loadManifests opens the repository, lists the manifest files of the
// branch head and reads, decodes and assembles them one after another, and
// returns the number of objects.
func loadManifests(bare string) (int, error) {
	ctx := context.Background()
	repo, err := gitrepo.Open(ctx, gitrepo.Options{URL: bare, Branch: "main"})
	if err != nil {
		return 0, err
	}
	defer repo.Close()
	fr, err := repo.Fetch(ctx)
	if err != nil {
		return 0, err
	}
	fsys, err := repo.TreeFS(fr.Head)
	if err != nil {
		return 0, err
	}
	cfg, _ := manifest.LoadConfig(fsys)
	files, err := repo.Files(fr.Head, ".")
	if err != nil {
		return 0, err
	}
	var objs []manifest.Object
	for _, f := range files {
		if !isManifest(f.Path) {
			continue
		}
		data, err := repo.ReadBlob(f.Blob)
		if err != nil {
			return 0, err
		}
		o, _ := manifest.DecodeFile(f.Path, data)
		objs = append(objs, o...)
	}
	set, diags := manifest.Assemble(objs, cfg)
	if diags.HasErrors() {
		return 0, diags.Err()
	}
	return len(set.Objects()), nil
}

// isManifest selects the manifest files: *.yaml and *.yml outside hidden
// directories, except osbgit.yaml.
func isManifest(p string) bool {
	if p == manifest.ConfigFileName || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	return true
}

// childPass runs one pass as a fresh `osbgit sync` process would (with
// the command line's defaults), then a second pass in the same process
// (its state in memory), which must end after one ref lookup and a read
// of the broker auth Secret (the binding Secrets were just swept).
func childPass(bare, store string) (childResult, error) {
	start := time.Now()
	r, closeRepo, err := openReconciler(bare, store, reconciler.Options{SecretSweepInterval: reconciler.DefaultSecretSweepInterval})
	if err != nil {
		return childResult{}, err
	}
	defer closeRepo()
	ctx := context.Background()
	res, err := r.Sync(ctx)
	if err != nil {
		return childResult{}, err
	}
	out := childResult{Seconds: time.Since(start).Seconds(), Skipped: res.Skipped, Commit: res.Commit}
	if prefix := os.Getenv(envCPUProfile); prefix != "" {
		if f, err := os.Create(fmt.Sprintf("%s-%s-%d.heap", prefix, modePass, os.Getpid())); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	out.tally(res)
	start = time.Now()
	res2, err := r.Sync(ctx)
	if err != nil {
		return out, err
	}
	out.SkipSeconds = time.Since(start).Seconds()
	out.SkipSkipped, out.SkipReason = res2.Skipped, res2.Reason
	return out, nil
}

// childRunPass is what `osbgit run` does with the repository: a first pass
// (decoding everything into its decode cache), then, once a broker's
// relist is due (the clock moved past the default relistDuration, before
// the binding Secret sweep is due again), a pass over everything again:
// the full pass a long-running process makes every relistDuration. Its
// wall and CPU time are FullSeconds and FullCPU; both passes must plan no
// change.
func childRunPass(bare, store string) (childResult, error) {
	relist, err := time.ParseDuration(manifest.DefaultRelistDuration)
	if err != nil {
		return childResult{}, err
	}
	now := time.Now()
	start := now
	r, closeRepo, err := openReconciler(bare, store, reconciler.Options{SecretSweepInterval: 2 * relist})
	if err != nil {
		return childResult{}, err
	}
	defer closeRepo()
	r.Cache = reconciler.NewDecodeCache()
	r.Now = func() time.Time { return now }
	ctx := context.Background()
	var out childResult
	for i := range 2 {
		cpu := cpuSeconds()
		var res *reconciler.SyncResult
		// The label tells the passes apart in a CPU profile
		// (go tool pprof -tagfocus pass=full).
		pprof.Do(ctx, pprof.Labels("pass", []string{"first", "full"}[i]), func(ctx context.Context) {
			res, err = r.Sync(ctx)
		})
		if err != nil {
			return out, err
		}
		if res.Skipped || res.Plan == nil {
			return out, fmt.Errorf("pass %d skipped: %s", i+1, res.Reason)
		}
		out.tally(res)
		if i == 0 {
			out.Seconds = time.Since(start).Seconds()
			now = now.Add(relist + time.Second)
			start = time.Now()
			continue
		}
		out.FullSeconds, out.FullCPU = time.Since(start).Seconds(), cpuSeconds()-cpu
	}
	return out, nil
}

// tally adds what a pass did to out: its steps (Objects, the last pass's),
// those not none, failures and the commit it pushed.
func (out *childResult) tally(res *reconciler.SyncResult) {
	if res.Plan != nil {
		out.Objects = len(res.Plan.Steps)
		for _, s := range res.Plan.Steps {
			if s.Action != plan.None {
				out.Mutating++
			}
		}
	}
	if res.Exec != nil {
		out.Failed += res.Exec.Counts.Failed
	}
	if res.Commit != "" {
		out.Commit = res.Commit
	}
}

// cpuSeconds is the CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return cpuOf(&ru)
}

// childStatus does what one `osbgit status` process does: open the
// repository, read the records (checking their seal and comparing them
// with the status branch), build the view and print the table.
func childStatus(bare, store string) (childResult, error) {
	start := time.Now()
	r, closeRepo, err := openReconciler(bare, store, reconciler.Options{})
	if err != nil {
		return childResult{}, err
	}
	defer closeRepo()
	rep, err := r.ReadRecords(context.Background())
	if err == nil {
		err = rep.Err
	}
	if err != nil {
		return childResult{}, fmt.Errorf("read records: %w", err)
	}
	if rep.Trust != reconciler.RecordsVerified || len(rep.Diverged) != 0 {
		return childResult{}, fmt.Errorf("records %s (%s), %d diverged", rep.Trust, rep.Reason, len(rep.Diverged))
	}
	v := statusview.Build(rep, statusview.Filter{})
	if err := statusview.Table(io.Discard, v, statusview.TextOptions{Now: time.Now()}); err != nil {
		return childResult{}, err
	}
	return childResult{Seconds: time.Since(start).Seconds(), Records: len(v.Resources)}, nil
}

// peakRSS is this process's peak resident set size (VmHWM), or 0 when
// /proc is not available. The wait4 rusage of a child cannot be used for
// this: Go starts children with clone(CLONE_VM|CLONE_VFORK), so the child's
// ru_maxrss starts at the parent's peak RSS at exec time.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// childRun is a finished child: its result and resource usage.
type childRun struct {
	childResult
	// MaxRSS is the child's peak resident set size in bytes (its VmHWM;
	// the rusage value when that is unknown).
	MaxRSS int64
	// CPU is the child's user+system time in seconds (the whole process).
	CPU float64
}

// spawn runs the test binary as a child in mode with env added.
func spawn(mode string, env ...string) (childRun, error) {
	exe, err := os.Executable()
	if err != nil {
		return childRun{}, err
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envChild+"="+mode), env...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	runErr := cmd.Run()
	var out childRun
	found := false
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), childMarker); ok {
			if err := json.Unmarshal([]byte(rest), &out.childResult); err != nil {
				return out, fmt.Errorf("child %s: bad result: %v", mode, err)
			}
			found = true
		}
	}
	if out.Err != "" {
		return out, fmt.Errorf("child %s: %s", mode, out.Err)
	}
	if runErr != nil {
		return out, fmt.Errorf("child %s: %v", mode, runErr)
	}
	if !found {
		return out, errors.New("child " + mode + ": no result")
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		out.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
		out.CPU = cpuOf(ru)
	}
	if out.PeakRSS > 0 {
		out.MaxRSS = out.PeakRSS
	}
	return out, nil
}

// cpuOf is the user plus system CPU seconds in ru.
func cpuOf(ru *syscall.Rusage) float64 { return tv(ru.Utime) + tv(ru.Stime) }

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// profilePeakHeap writes a heap profile to file whenever the live heap
// after a collection is the largest seen, until stop is called.
func profilePeakHeap(file string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if live := sample[0].Value.Uint64(); live > peak {
				peak = live
				if f, err := os.Create(file); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
