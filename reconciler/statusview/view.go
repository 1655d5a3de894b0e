package statusview

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler"
)

// FormatVersion is the version of the JSON and YAML schemas (doc.go).
const FormatVersion = "1"

// View is the list `osbgit status` shows: one row per record, and what
// could be verified of them.
type View struct {
	FormatVersion string `json:"formatVersion"`
	// Header is where the records came from and how far they are
	// trusted.
	Header
	// Summary counts the rows shown (after Filter).
	Summary Summary `json:"summary"`
	// Resources are the rows, sorted by kind, namespace and name.
	Resources []Row `json:"resources"`
	// Problems are status-branch files changed outside osbgit that are
	// no resource's record (a cached catalog, a stray file): each makes
	// the records tampered. Never filtered.
	Problems []string `json:"problems"`
	// Errors are record files that could not be read or decoded: the
	// check is incomplete. Never filtered.
	Errors []string `json:"errors"`
}

// Header says where records came from and how far they can be trusted.
type Header struct {
	StatusBranch string `json:"statusBranch"`
	// ClusterID is the deployment whose records these are ("" for a
	// repository's only deployment), RecordsRef its records ref.
	ClusterID  string `json:"clusterID"`
	RecordsRef string `json:"recordsRef"`
	// Revision is the commit the records were read from.
	Revision string `json:"revision"`
	// Records is verified, unverified or tampered for the records as a
	// whole; a row may still be tampered when its status-branch copy
	// was changed.
	Records reconciler.RecordsTrust `json:"records"`
	// Reason says why the records are unverified or tampered.
	Reason string `json:"reason"`
}

// Summary counts rows.
type Summary struct {
	Resources  int `json:"resources"`
	Failed     int `json:"failed"`
	Tampered   int `json:"tampered"`
	Unverified int `json:"unverified"`
	// DriftUndetectable counts rows drift checks cannot cover.
	DriftUndetectable int `json:"driftUndetectable"`
}

// Row is one resource's record, summarised.
type Row struct {
	Ref manifest.Ref `json:"ref"`
	// Broker is the broker the resource lives at (null when unknown).
	Broker *manifest.Ref `json:"broker"`
	// Class and Plan are the names the broker holds (the target while a
	// create or update is in flight, or reserved).
	Class string `json:"class"`
	Plan  string `json:"plan"`
	// Phase is the record's phase ("" for a broker's record).
	Phase manifest.Phase `json:"phase"`
	// LastOperation is the last operation and its state, e.g.
	// "provision succeeded" ("" when none was recorded).
	LastOperation string `json:"lastOperation"`
	// Since is when the Ready or Failed condition, or the last operation,
	// last changed (RFC 3339 UTC, "" when unknown).
	Since string `json:"since"`
	// Message is the record's error, else its Failed condition's message,
	// else what the broker's loss or a pending retry says, else the Ready
	// condition's message.
	Message string `json:"message"`
	// Failed: the manifest is invalid, the phase is Failed, or the
	// Failed condition is True.
	Failed bool `json:"failed"`
	// Records is this row's trust: the records' as a whole, or tampered
	// when its status-branch copy was changed outside osbgit.
	Records reconciler.RecordsTrust `json:"records"`
	// Tampered says what was changed outside osbgit ("" when nothing):
	// osbgit uses its own record and restores the status branch's copy on
	// the next sync.
	Tampered string `json:"tampered"`
	// DriftUndetectable says why drift checks (driftCheckInterval, diff
	// --drift) cannot GET this resource at its broker ("" when they can):
	// a broker that lost it is then only noticed by a call answered 404.
	DriftUndetectable string `json:"driftUndetectable"`

	since time.Time
}

// Filter selects rows. Zero values select everything.
type Filter struct {
	Namespace string
	Kind      manifest.Kind
	// Failed keeps only the rows that make status exit 1: failed or
	// tampered.
	Failed bool
}

func (f Filter) keep(r *Row) bool {
	return (f.Namespace == "" || r.Ref.Namespace == f.Namespace) &&
		(f.Kind == "" || r.Ref.Kind == f.Kind) &&
		(!f.Failed || r.Failed || r.Records == reconciler.RecordsTampered)
}

// ParseKind reads a --kind value: a kind that has status records,
// case-insensitive.
func ParseKind(s string) (manifest.Kind, error) {
	kinds := []manifest.Kind{manifest.KindClusterServiceBroker, manifest.KindServiceBroker, manifest.KindServiceInstance, manifest.KindServiceBinding}
	for _, k := range kinds {
		if strings.EqualFold(s, string(k)) {
			return k, nil
		}
	}
	return "", fmt.Errorf("kind %q: want one of %s", s, strings.Trim(fmt.Sprint(kinds), "[]"))
}

// Build makes the list from what reconciler.ReadRecords read: a pure
// function of its input.
func Build(rep *reconciler.RecordsReport, f Filter) *View {
	v := &View{FormatVersion: FormatVersion, Header: header(rep), Resources: []Row{}, Problems: []string{}, Errors: recordErrors(rep)}
	tampered, extra, problems := divergences(rep)
	v.Problems = append(v.Problems, problems...)
	var recs map[manifest.Ref]*manifest.StatusRecord
	var catalogs manifest.Catalogs
	if rep.Records != nil {
		recs, catalogs = rep.Records.Status, rep.Records.CatalogsByKey()
	}
	add := func(r Row) {
		if f.keep(&r) {
			v.Resources = append(v.Resources, r)
		}
	}
	for ref, rec := range recs {
		r := row(rec, rep.Trust, tampered[ref])
		if ref.Kind == manifest.KindServiceInstance || ref.Kind == manifest.KindServiceBinding {
			r.DriftUndetectable = catalogs.DriftUndetectable(rec)
		}
		add(r)
	}
	for _, ref := range extra {
		if _, ok := recs[ref]; !ok {
			add(Row{Ref: ref, Records: reconciler.RecordsTampered, Tampered: tampered[ref]})
		}
	}
	slices.SortFunc(v.Resources, func(a, b Row) int {
		switch {
		case a.Ref.Less(b.Ref):
			return -1
		case b.Ref.Less(a.Ref):
			return 1
		}
		return 0
	})
	for i := range v.Resources {
		r := &v.Resources[i]
		v.Summary.Resources++
		if r.Failed {
			v.Summary.Failed++
		}
		if r.DriftUndetectable != "" {
			v.Summary.DriftUndetectable++
		}
		switch r.Records {
		case reconciler.RecordsTampered:
			v.Summary.Tampered++
		case reconciler.RecordsUnverified:
			v.Summary.Unverified++
		}
	}
	return v
}

// Unhealthy reports whether status exits 1: a row failed or tampered, the
// records tampered as a whole, or a file changed outside osbgit.
func (v *View) Unhealthy() bool {
	return v.Summary.Failed > 0 || v.Summary.Tampered > 0 || v.Records == reconciler.RecordsTampered || len(v.Problems) > 0
}

func header(rep *reconciler.RecordsReport) Header {
	return Header{StatusBranch: rep.StatusBranch, ClusterID: rep.ClusterID, RecordsRef: rep.RecordsRef, Revision: rep.Revision, Records: rep.Trust, Reason: rep.Reason}
}

// recordErrors lists the record files ReadRecords could not read, one
// line each (errors.Join's lines).
func recordErrors(rep *reconciler.RecordsReport) []string {
	if rep.Err == nil {
		return []string{}
	}
	return strings.Split(rep.Err.Error(), "\n")
}

// divergences sorts the status branch's changed files: those that are a
// resource's record (tampered notes by ref; extra are the refs, in
// order, for files added outside osbgit) and the others (problems).
func divergences(rep *reconciler.RecordsReport) (tampered map[manifest.Ref]string, extra []manifest.Ref, problems []string) {
	tampered = map[manifest.Ref]string{}
	for _, d := range rep.Diverged {
		note := d.Change + " on " + rep.StatusBranch + " outside osbgit"
		if d.Commit != "" {
			note += fmt.Sprintf(" (commit %s by %s <%s>)", shortRev(d.Commit), d.Author.Name, d.Author.Email)
		}
		ref, status, ok := recordRoot(rep).RecordRefOf(d.Path)
		if !ok || !status {
			problems = append(problems, d.Path+" "+note)
			continue
		}
		tampered[ref] = note
		extra = append(extra, ref)
	}
	return tampered, extra, problems
}

// row summarises one record.
func row(rec *manifest.StatusRecord, trust reconciler.RecordsTrust, tampered string) Row {
	r := Row{Ref: rec.Ref, Class: rec.ClassExternalName, Plan: rec.PlanExternalName, Phase: rec.Phase, Records: trust, Tampered: tampered}
	if tampered != "" {
		r.Records = reconciler.RecordsTampered
	}
	if rec.Broker != (manifest.Ref{}) {
		b := rec.Broker
		r.Broker = &b
	}
	if r.Class == "" && r.Plan == "" && rec.InProgress != nil {
		r.Class, r.Plan = rec.InProgress.ClassExternalName, rec.InProgress.PlanExternalName
	}
	if op := rec.LastOperation; op != nil {
		r.LastOperation = operationText(op)
		r.since = op.StartTime.Time
	}
	ready := manifest.FindCondition(rec.Conditions, manifest.ConditionReady)
	failed := manifest.FindCondition(rec.Conditions, manifest.ConditionFailed)
	for _, c := range []*manifest.Condition{ready, failed} {
		if c != nil && c.LastTransitionTime.After(r.since) {
			r.since = c.LastTransitionTime.Time
		}
	}
	if !r.since.IsZero() {
		r.Since = r.since.UTC().Format(time.RFC3339)
	}
	failedTrue := failed != nil && failed.Status == manifest.ConditionTrue
	r.Failed = rec.Error != nil || rec.Phase == manifest.PhaseFailed || failedTrue
	switch {
	case rec.Error != nil:
		r.Message = rec.Error.Message
	case failedTrue && failed.Message != "":
		r.Message = failed.Message
	case rec.Lost != nil:
		r.Message = fmt.Sprintf("the broker no longer holds it (404 to %s at %s): the next sync creates it again", rec.Lost.Call, rec.Lost.At.UTC().Format(time.RFC3339))
	case ready != nil:
		r.Message = ready.Message
	}
	if rec.RetryPending() {
		r.Message = strings.TrimSpace(r.Message + fmt.Sprintf(" (retried from %s)", rec.Retry.At.UTC().Format(time.RFC3339)))
	}
	return r
}

// operationText is an operation and its state: "provision succeeded",
// "deprovision (orphan mitigation) in progress".
func operationText(op *manifest.LastOperation) string {
	s := string(op.Type)
	if op.OrphanMitigation {
		s += " (orphan mitigation)"
	}
	if op.State != "" {
		s += " " + string(op.State)
	}
	return s
}

// Detail is one resource as `osbgit status KIND/NAMESPACE/NAME` shows it:
// its row, and the whole record.
type Detail struct {
	FormatVersion string `json:"formatVersion"`
	Header
	Resource Row `json:"resource"`
	// Record is the record (null when only the status branch has it,
	// added outside osbgit).
	Record *manifest.StatusRecord `json:"record"`
	// History is a git command listing the record's past versions: the
	// record keeps only the last operation.
	History string `json:"history"`
}

// Describe finds ref in what ReadRecords read; ok is false when no
// record (nor a status-branch file changed outside osbgit) names it.
func Describe(rep *reconciler.RecordsReport, ref manifest.Ref) (d *Detail, ok bool) {
	v := Build(rep, Filter{Namespace: ref.Namespace, Kind: ref.Kind})
	for _, r := range v.Resources {
		if r.Ref != ref {
			continue
		}
		d = &Detail{FormatVersion: FormatVersion, Header: v.Header, Resource: r}
		if rep.Records != nil {
			d.Record = rep.Records.Status[ref]
		}
		if p, err := recordRoot(rep).StatusPath(ref); err == nil {
			src := rep.StatusBranch
			if rep.Trust == reconciler.RecordsVerified {
				src = rep.RecordsRef
			}
			d.History = "git log -p " + src + " -- " + p
		}
		return d, true
	}
	return nil, false
}

// Unhealthy reports whether status exits 1 for this resource.
func (d *Detail) Unhealthy() bool {
	return d.Resource.Failed || d.Resource.Records == reconciler.RecordsTampered || d.Records == reconciler.RecordsTampered
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// recordRoot is the directory of the report's records (the legacy root
// for a report that names none).
func recordRoot(rep *reconciler.RecordsReport) manifest.RecordRoot {
	if rep.Root == "" {
		return manifest.LegacyRecordRoot
	}
	return rep.Root
}
