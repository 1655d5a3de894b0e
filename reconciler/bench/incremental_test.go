package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// incrementalRatioLimit is the incremental figure's limit (issue 21).
const incrementalRatioLimit = 0.10

// envBin names a built osbgit binary for the incremental figure; without
// it the figure builds one.
const envBin = "OSBGIT_BENCH_BIN"

// envLogLevel is the --log-level of the incremental figure's syncs
// (default warn); at debug their output is shown, with what the scoped
// load read.
const envLogLevel = "OSBGIT_BENCH_LOGLEVEL"

// incremental is the figure of issue 21 item 4: a one-shot `osbgit sync`
// process, as a CronJob runs it, after a one-file change in the 10,000 +
// 10,000 repo, with the cache dir its earlier runs left, over the same
// process from an empty cache dir; both from process start to exit, both
// making the same one update call and status commit.
//
// Setup: the generated repo is converged by one `osbgit sync` with the
// cache dir (which leaves the pass state and the scope index there), then
// one instance's parameters change in one commit. Each repetition restores
// the repository, the secret store and the cache dir at the same paths
// (the state is keyed by the repository's path) and runs the warm sync,
// then restores them again and runs the cold one. The ratio is the median
// of the paired ratios (3 pairs, after one discarded).
//
// The repo is full size at every OSBGIT_BENCH_SCALE, so the short variant
// (CI) checks the same thing: at 1/10 the fixed costs of a process (start,
// opening the repository and its pack index, writing the commit) are most
// of both runs and the ratio was about 0.3, whatever grows with the
// change. Its whole run (generate, converge, 4 pairs of runs and the
// restores between them) takes about 1.5 minutes. With
// OSBGIT_BENCH_CPUPROFILE set, each warm sync writes a CPU profile of its
// process to <value>-incremental-<n>.prof (n 0: the discarded pair).
func incremental(t *testing.T, s settings) figure {
	const n = 10000
	bin := osbgitBinary(t)
	w := newWorld(t)
	logf("incremental: generating %d instances + %d bindings", n, n)
	repo := newRepo(t, manifests(w.srv.URL, n, true, "small"))
	cache := filepath.Join(t.TempDir(), "cache")
	start := time.Now()
	if out, err := osbgitSync(bin, repo.Bare, w.storeDir, cache); err != nil {
		t.Fatalf("converge: %v\n%s", err, out)
	}
	logf("incremental: converged %d resources with one osbgit sync in %s", 2*n, time.Since(start).Round(time.Millisecond))
	changed := "apps/team-000/db-00000.yaml"
	edited := strings.Replace(manifests(w.srv.URL, 1, false, "small")[changed], "size: 1\n", "size: 2\n", 1)
	repo.Push("resize db-00000", map[string]string{changed: edited}, nil)

	// Pristine copies, restored before every run.
	saved := t.TempDir()
	pristine := map[string]string{repo.Bare: filepath.Join(saved, "repo.git"), w.storeDir: filepath.Join(saved, "store"), cache: filepath.Join(saved, "cache")}
	for live, copy := range pristine {
		restoreDir(t, live, copy)
	}
	run := func(warm bool, rep int) float64 {
		for live, copy := range pristine {
			restoreDir(t, copy, live)
		}
		dir := cache
		if !warm {
			os.RemoveAll(cache)
		}
		w.broker.ResetCalls()
		begin := time.Now()
		var env []string
		if prefix := os.Getenv(envCPUProfile); prefix != "" && warm {
			env = append(env, fmt.Sprintf("OSBGIT_CPUPROFILE=%s-incremental-%d.prof", prefix, rep))
		}
		out, err := osbgitSync(bin, repo.Bare, w.storeDir, dir, env...)
		sec := time.Since(begin).Seconds()
		if os.Getenv(envLogLevel) == "debug" {
			logf("%s", out)
		}
		if err != nil {
			t.Fatalf("sync (warm cache %v): %v\n%s", warm, err, out)
		}
		if m := len(w.broker.MutatingCalls()); m != 1 || !strings.Contains(out, "1 updated") {
			t.Fatalf("sync (warm cache %v): %d mutating calls, want the one update\n%s", warm, m, out)
		}
		return sec
	}
	var warmT, coldT, pairs stats
	reps := s.repsOr(3)
	for i := -1; i < reps; i++ { // i == -1: warm-up, discarded
		wt := run(true, i+1)
		ct := run(false, i+1)
		if i < 0 {
			continue
		}
		warmT.add(wt)
		coldT.add(ct)
		pairs.add(wt / ct)
		logf("incremental %d/%d: warm cache %s, empty cache %s; load average %s", i+1, reps, dur(wt), dur(ct), loadAvg())
	}
	return figure{
		ratio: pairs.median(),
		limit: incrementalRatioLimit,
		raw: fmt.Sprintf("median of %d paired runs: osbgit sync after a one-file change with a warm cache dir %s vs from an empty cache dir %s (medians; bests %s / %s; spread %.0f%% / %.0f%%); %d+%d resources",
			reps, dur(warmT.median()), dur(coldT.median()), dur(warmT.best()), dur(coldT.best()), 100*warmT.spread(), 100*coldT.spread(), n, n),
	}
}

// osbgitBinary is OSBGIT_BENCH_BIN, else osbgit built into a temporary
// directory.
func osbgitBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv(envBin); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "osbgit")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/osbgit/osbgit/cmd/osbgit").CombinedOutput(); err != nil {
		t.Fatalf("build osbgit: %v\n%s", err, out)
	}
	return bin
}

// osbgitSync runs `osbgit sync` on a local repository as a CronJob would:
// a fresh process, the directory secret store, the cache dir; env is added
// to its environment.
func osbgitSync(bin, bare, store, cache string, env ...string) (string, error) {
	level := os.Getenv(envLogLevel)
	if level == "" {
		level = "warn"
	}
	cmd := exec.Command(bin, "sync", "--repo", bare, "--secret-store", "dir:"+store, "--cache-dir", cache, "--log-level", level, "--log-format", "text")
	cmd.Env = append(append(os.Environ(), "OSBGIT_CONCURRENCY=8"), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// restoreDir replaces dst with a copy of src (dst removed when src does
// not exist).
func restoreDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src); err != nil {
		return
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v\n%s", src, err, out)
	}
}
