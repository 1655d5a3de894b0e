// Command osbgit is a GitOps reconciler for the Open Service Broker API: it
// reads broker, instance and binding manifests from Git, converges brokers
// towards them and commits status records back.
//
// This package only parses flags, wires packages together and maps outcomes
// to exit codes; the logic lives in the manifest, osbclient and reconciler
// packages.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
