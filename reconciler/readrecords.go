package reconciler

import (
	"context"
	"fmt"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
)

// RecordsTrust says how far records read from Git can be trusted.
type RecordsTrust string

// Values of RecordsTrust.
const (
	// RecordsVerified: read from osbgit's records ref, whose seal checks
	// with the records key.
	RecordsVerified RecordsTrust = "verified"
	// RecordsUnverified: there was no key to check them with (a laptop, a
	// CI job without the secret store); read from the status branch.
	RecordsUnverified RecordsTrust = "unverified"
	// RecordsTampered: the records ref's seal is wrong for the key, or
	// the ref is missing or moved back (sync refuses); read from the
	// status branch.
	RecordsTampered RecordsTrust = "tampered"
)

// RecordsReport is osbgit's records as a pass would read them, and what
// could be checked of them (`osbgit status`).
type RecordsReport struct {
	// StatusBranch is the branch the records belong to.
	StatusBranch string
	// RecordsRef is this deployment's records ref, and Root the
	// directory of its records (both depend on its cluster ID).
	RecordsRef string
	Root       manifest.RecordRoot
	// ClusterID is the deployment's cluster ID ("" for none).
	ClusterID string
	// Revision is the commit the records were read from: the records
	// ref's head when verified, else the status branch's head ("" when
	// there are none).
	Revision string
	// Trust is how far the records can be trusted; Reason says why they
	// are not verified.
	Trust  RecordsTrust
	Reason string
	// Diverged are the status branch's .osbgit/ files that differ from
	// verified records (edited, added or deleted outside osbgit): the
	// records are osbgit's own, the branch's copies are not (the next
	// sync restores them).
	Diverged []DivergedRecord
	// Records are the records read. With Err set, those that could be
	// decoded.
	Records *manifest.Records
	// Err says which record files could not be read or decoded.
	Err error
}

// DivergedRecord is one file of the status branch's .osbgit/ changed
// outside osbgit.
type DivergedRecord struct {
	Path string
	// Change is added, edited or deleted.
	Change string
	// Commit and Author are the last commit that changed the file and
	// its author ("" past the first maxBlamed files).
	Commit string
	Author gitrepo.Person
}

// ReadRecords reads the records the way a pass does (viewRecords, read
// only: it never signs, never writes Git, never calls a broker) and says
// whether they verify: verified with a key whose seal checks, unverified
// without a key, tampered when the seal is wrong or the records ref was
// deleted or moved back. An error means Git could not be read.
func (r *Reconciler) ReadRecords(ctx context.Context) (*RecordsReport, error) {
	if err := r.init(ctx); err != nil {
		return nil, err
	}
	fr, err := r.Source.Fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	view, err := r.viewRecords(ctx, fr, false)
	if err != nil {
		return nil, err
	}
	rep := &RecordsReport{StatusBranch: r.Source.StatusBranch(), RecordsRef: r.Source.RecordsRef(), Root: r.recordRoot(), ClusterID: r.Source.ClusterID(),
		Revision: view.rev, Trust: RecordsVerified}
	switch {
	case view.refused != "":
		rep.Trust, rep.Reason = RecordsTampered, view.refused
	case view.sealErr != nil:
		rep.Trust = RecordsTampered
		rep.Reason = view.unverified + ": someone else signed or changed it, or this is not the records key of the osbgit that writes them"
	case view.unverified != "":
		rep.Trust, rep.Reason = RecordsUnverified, view.unverified
	}
	for _, d := range view.diverged {
		rep.Diverged = append(rep.Diverged, DivergedRecord{Path: d.path, Change: d.change(), Commit: d.commit, Author: d.author})
	}
	rep.Records, rep.Err = r.loadRecords(view.rev)
	if rep.Records == nil {
		return nil, rep.Err
	}
	return rep, nil
}
