package bench

import (
	"fmt"
	"testing"
	"time"
)

// Targets of the headroom figure (issue 21): one process holds 100,000
// instances and 100,000 bindings in at most 1.5 GB and passes over them,
// with nothing to do, in at most 15 s.
const (
	scaleFull      = 100000
	scaleTimeLimit = 15 * time.Second
	scaleRSSLimit  = 1536 << 20
)

// scaleFigure is the headroom figure: the repository of noopPass at ten
// times its size (100,000 instances + 100,000 bindings at scale 1),
// generated, converged once at a local osbtest broker, held by one
// long-running process (childRunPass): "headroom in one process" is about
// what `osbgit run` holds and how long its periodic full pass (every
// relistDuration) takes when nothing is to do. The process's first pass,
// which decodes everything, is reported beside it. It reports the full
// pass's wall and CPU time, the process's peak RSS, and the model the
// README's scaling section is built on: both divided by the number of
// resources. Its ratio is the full pass's time over 15 s; a peak RSS over
// 1.5 GB fails it too. At full scale it runs only when named
// (OSBGIT_BENCH_FIGURES=scale), as its setup alone converges 200,000
// resources; the short variant runs it at 1/10.
func scaleFigure(t *testing.T, s settings) figure {
	n := s.n(scaleFull)
	w, repo, setup := convergedRepo(t, "scale", n)
	w.broker.ResetCalls()
	// The process runs as the example Deployment runs it: GOMEMLIMIT at
	// 90% of its memory limit (examples/deploy), the limit being the
	// figure's.
	env := []string{envChildRepo + "=" + repo.Bare, envChildStore + "=" + w.storeDir,
		fmt.Sprintf("GOMEMLIMIT=%dMiB", scaleRSSLimit*9/10>>20)}
	var first, pass, cpu stats
	var rss int64
	var failures []string
	reps := s.repsOr(3)
	for i := range reps {
		p, err := spawn(modeRunPass, env...)
		if err != nil {
			t.Fatal(err)
		}
		if p.Objects != 2*n+1 || p.Mutating != 0 || p.Failed != 0 || p.Commit != "" {
			failures = append(failures, fmt.Sprintf("run %d: %d steps, %d not none, %d failed, commit %q",
				i+1, p.Objects, p.Mutating, p.Failed, p.Commit))
		}
		first.add(p.Seconds)
		pass.add(p.FullSeconds)
		cpu.add(p.FullCPU)
		rss = max(rss, p.MaxRSS)
		logf("scale %d/%d: first pass %s; full pass %s (cpu %s); peak RSS %d MB; %s; load average %s",
			i+1, reps, dur(p.Seconds), dur(p.FullSeconds), dur(p.FullCPU), p.MaxRSS>>20, p.Mem, loadAvg())
	}
	if m := len(w.broker.MutatingCalls()); m != 0 {
		failures = append(failures, fmt.Sprintf("%d mutating calls", m))
	}
	if rss > scaleRSSLimit {
		failures = append(failures, fmt.Sprintf("peak RSS %d MB over %d MB", rss>>20, scaleRSSLimit>>20))
	}
	resources := float64(2 * n)
	return figure{
		ratio: pass.median() / scaleTimeLimit.Seconds(),
		limit: 1,
		raw: fmt.Sprintf("full pass %s median of %d (best %s, cpu %s; limit %s), first pass %s, peak RSS %d MB (limit %d MB); "+
			"model: %.0f µs and %.1f KB per resource; %d+%d resources, setup converge %s",
			dur(pass.median()), reps, dur(pass.best()), dur(cpu.best()), scaleTimeLimit, dur(first.median()), rss>>20, scaleRSSLimit>>20,
			1e6*pass.median()/resources, float64(rss)/1024/resources, n, n, setup.Round(100*time.Millisecond)),
		failures: failures,
	}
}
