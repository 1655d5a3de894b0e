// Package parallel runs independent pieces of work on a fixed number of
// goroutines: the CPU-bound parts of a pass (hashing, rendering records) on
// all cores, and the benchmarks' call loops at a set concurrency.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// For calls f(i) for every i in [0, n) on up to GOMAXPROCS goroutines and
// returns when all calls have returned. f must be safe for concurrent use
// with distinct i; results go to per-index slots the caller provides.
func For(n int, f func(i int)) {
	ForN(runtime.GOMAXPROCS(0), n, f)
}

// ForN is For on up to workers goroutines, each taking the next index as
// it finishes one (indexes start in order).
func ForN(workers, n int, f func(i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}
