// Command osbgit is a GitOps reconciler for the Open Service Broker API: it
// reads broker, instance and binding manifests from Git, converges brokers
// towards them and commits status records back.
//
// This package only parses flags, wires packages together and maps outcomes
// to exit codes; the logic lives in the manifest, osbclient and reconciler
// packages.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// envCPUProfile names a file for a CPU profile of the whole process, from
// start to exit (make bench's incremental figure sets it for the syncs it
// times when OSBGIT_BENCH_CPUPROFILE is set; see reconciler/bench).
const envCPUProfile = "OSBGIT_CPUPROFILE"

func main() {
	stop := startCPUProfile(os.Getenv(envCPUProfile))
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// startCPUProfile starts a CPU profile written to path ("" for none) and
// returns what stops it.
func startCPUProfile(path string) (stop func()) {
	stop = func() {}
	if path == "" {
		return stop
	}
	f, err := os.Create(path)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", envCPUProfile, err)
		return stop
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
