package statusview

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler"
)

// TextOptions set what the table and describe views need besides the
// model.
type TextOptions struct {
	// Now is when ages ("5m") are measured from.
	Now time.Time
}

// maxMessage bounds a message in the table (describe shows all of it).
const maxMessage = 100

// Table writes the list as a table for people: a line saying where the
// records came from and whether they verify, one row per resource, the
// files changed outside osbgit and the unreadable records, then the counts.
// Every string from Git goes through Safe.
func Table(w io.Writer, v *View, o TextOptions) error {
	ew := &errWriter{w: w}
	writeHeader(ew, v.Header)
	if len(v.Resources) > 0 {
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tNAMESPACE/NAME\tBROKER\tCLASS/PLAN\tPHASE\tLAST OPERATION\tSINCE\tRECORDS\tMESSAGE")
		for i := range v.Resources {
			r := &v.Resources[i]
			msg := r.Message
			if r.Tampered != "" {
				msg = strings.TrimSuffix(r.Tampered+"; "+msg, "; ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
				r.Ref.Kind, Safe(refName(r.Ref)), orDash(brokerName(r.Broker)), orDash(classPlan(r.Class, r.Plan)),
				orDash(Safe(string(r.Phase))), orDash(Safe(r.LastOperation)), age(r.since, o.Now), r.Records, Safe(truncate(msg, maxMessage)))
		}
		tw.Flush()
	}
	if v.Records == reconciler.RecordsVerified && v.Summary.Tampered > 0 {
		fmt.Fprintln(ew, "Tampered records: osbgit uses its own version and restores the status branch's copy on the next sync.")
	}
	for _, p := range v.Problems {
		fmt.Fprintf(ew, "Changed outside osbgit: %s\n", Safe(p))
	}
	for _, e := range v.Errors {
		fmt.Fprintf(ew, "Unreadable: %s\n", Safe(e))
	}
	s := v.Summary
	fmt.Fprintf(ew, "%d %s: %d failed, %d tampered, %d unverified.\n", s.Resources, plural(s.Resources, "resource"), s.Failed, s.Tampered, s.Unverified)
	if n := s.DriftUndetectable; n > 0 {
		fmt.Fprintf(ew, "Drift cannot be detected for %d %s (no GET at the broker, or no cached catalog: osbgit status KIND/NAMESPACE/NAME says which).\n", n, plural(n, "resource"))
	}
	return ew.err
}

// Text writes one resource as `kubectl describe` does.
func Text(w io.Writer, d *Detail, o TextOptions) error {
	ew := &errWriter{w: w}
	writeHeader(ew, d.Header)
	r := &d.Resource
	tw := tabwriter.NewWriter(ew, 0, 4, 1, ' ', 0)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", name, Safe(value))
		}
	}
	field("Kind", string(r.Ref.Kind))
	field("Namespace", r.Ref.Namespace)
	field("Name", r.Ref.Name)
	field("Records", string(r.Records))
	if r.Tampered != "" {
		field("Tampered", r.Tampered+": osbgit uses its own record and restores this copy on the next sync")
	}
	field("Failed", yes(r.Failed))
	if r.DriftUndetectable != "" {
		field("Drift", "cannot be detected: "+r.DriftUndetectable)
	}
	rec := d.Record
	if rec == nil {
		tw.Flush()
		fmt.Fprintln(ew, "No record: only the status branch has this file.")
		return ew.err
	}
	field("Phase", string(rec.Phase))
	field("Since", since(r.since, o.Now))
	field("Message", r.Message)
	field("Error", errorText(rec.Error))
	field("Broker", brokerName(r.Broker))
	field("Broker URL", rec.BrokerURL)
	field("Class", idText(rec.ClassExternalName, rec.ClassExternalID))
	field("Plan", idText(rec.PlanExternalName, rec.PlanExternalID))
	field("Parameters", checksumText(rec.ParameterChecksum))
	field("Update requests", nonZero(rec.UpdateRequests))
	if p := rec.InProgress; p != nil {
		field("In progress to", strings.TrimSpace(classPlan(p.ClassExternalName, p.PlanExternalName)+" "+checksumText(p.ParameterChecksum)))
	}
	field("External ID", rec.ExternalID)
	field("Instance", idText(rec.InstanceName, rec.InstanceExternalID))
	field("Predecessor binding", rec.PredecessorExternalID)
	field("Provisioned", yes(rec.Provisioned))
	field("Dashboard URL", rec.DashboardURL)
	if s := rec.SecretRef; s != nil {
		field("Secret", s.Namespace+"/"+s.Name)
		field("Secret keys", strings.Join(s.Keys, ", "))
	}
	field("Last operation", operationDetail(rec.LastOperation, rec.AsyncOpInProgress, o.Now))
	field("Predecessor unbind", operationDetail(rec.PredecessorOperation, false, o.Now))
	if rt := rec.Retry; rt != nil {
		field("Retry", fmt.Sprintf("failing without a verdict since %s; next attempt from %s", stamp(rt.Since.Time), stamp(rt.At.Time)))
	}
	if l := rec.Lost; l != nil {
		field("Lost", fmt.Sprintf("the broker answered 404 to %s at %s: the next sync creates it again", l.Call, stamp(l.At.Time)))
	}
	field("Deletion policy", rec.DeletionPolicy)
	field("Observed revision", rec.ObservedRevision)
	tw.Flush()
	if len(rec.Conditions) > 0 {
		fmt.Fprintln(ew, "Conditions:")
		ct := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(ct, "  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
		for _, c := range rec.Conditions {
			fmt.Fprintf(ct, "  %s\t%s\t%s\t%s\t%s\n", Safe(string(c.Type)), Safe(string(c.Status)), orDash(Safe(c.Reason)),
				age(c.LastTransitionTime.Time, o.Now), Safe(c.Message))
		}
		ct.Flush()
	}
	fmt.Fprintf(ew, "Recent operations: the record keeps only the last; its history: %s\n", Safe(d.History))
	return ew.err
}

// writeHeader says where the records came from and whether they verify.
func writeHeader(w io.Writer, h Header) {
	at := "no records yet"
	if h.Revision != "" {
		at = "at " + shortRev(h.Revision)
	}
	switch h.Records {
	case reconciler.RecordsVerified:
		fmt.Fprintf(w, "Records: verified (osbgit's records ref %s, %s)\n", Safe(h.RecordsRef), at)
	case reconciler.RecordsUnverified:
		fmt.Fprintf(w, "Records: unverified, read from status branch %s %s (%s)\n", Safe(h.StatusBranch), at, Safe(h.Reason))
	default:
		fmt.Fprintf(w, "Records: TAMPERED, read from status branch %s %s: %s\n", Safe(h.StatusBranch), at, Safe(h.Reason))
	}
}

func refName(r manifest.Ref) string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

func brokerName(b *manifest.Ref) string {
	if b == nil {
		return ""
	}
	return Safe(refName(*b))
}

func classPlan(class, plan string) string {
	if class == "" && plan == "" {
		return ""
	}
	return Safe(class + "/" + plan)
}

func idText(name, id string) string {
	switch {
	case id == "":
		return name
	case name == "":
		return id
	}
	return name + " (" + id + ")"
}

func checksumText(sum string) string {
	if sum == "" {
		return ""
	}
	return "checksum " + sum
}

func errorText(e *manifest.RecordError) string {
	if e == nil {
		return ""
	}
	return e.Message
}

func nonZero(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

// operationDetail is an operation with its start and broker key.
func operationDetail(op *manifest.LastOperation, polled bool, now time.Time) string {
	if op == nil {
		return ""
	}
	s := operationText(op) + ", started " + since(op.StartTime.Time, now)
	if op.Operation != "" {
		s += ", operation " + op.Operation
	}
	if op.PlanID != "" {
		s += ", plan_id " + op.PlanID
	}
	if polled {
		s += ", polled by later passes"
	}
	return s
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// since is "2024-05-01T10:00:00Z (5m ago)".
func since(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return stamp(t) + " (" + age(t, now) + " ago)"
}

// age is how long before now t was, as kubectl shows ages: 45s, 12m, 5h,
// 3d; "-" when unknown.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// errWriter keeps the first write error, so renderers check once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
