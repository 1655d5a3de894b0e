// Package reconciler runs osbgit's pass: read the manifests of a revision
// and the records under .osbgit/, fetch catalogs that are due, plan (package
// plan), push the write-ahead records (one journal file, manifest/journal.go),
// execute (package exec) and commit the resulting records back.
//
// The Git repository and the secret store are adapters behind small
// interfaces declared by their users: Source here, secrets.Reader and
// secrets.Store in package secrets (shared with the executor). cmd/osbgit
// wires the real ones (manifest/gitrepo, reconciler/secretstore) and tests
// wire real ones too, over a local bare repository and a directory.
package reconciler
