package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler"
	"github.com/osbgit/osbgit/reconciler/exec"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/redact"
)

// isTerminal reports whether w is a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressReporter shows a sync's progress: on a terminal one rewritten
// status line ("[12/40] create ServiceInstance apps/db: succeeded"), else
// one structured log entry per resource acted on.
func progressReporter(w io.Writer, log logrus.FieldLogger, terminal bool) func(done, total int, o exec.Outcome) {
	var mu sync.Mutex
	return func(done, total int, o exec.Outcome) {
		mu.Lock()
		defer mu.Unlock()
		if terminal {
			fmt.Fprintf(w, "\r\033[K[%d/%d] %s %s: %s", done, total, o.Action, o.Ref, o.Status)
			if done == total {
				fmt.Fprintln(w)
			}
			return
		}
		if o.Status == exec.StatusUnchanged {
			return
		}
		e := log.WithFields(logrus.Fields{"resource": o.Ref.String(), "action": string(o.Action), "status": string(o.Status),
			"external_id": o.ExternalID, "step": done, "steps": total})
		if o.Err != nil {
			e.WithError(o.Err).Warn(o.Summary)
			return
		}
		e.Info(o.Summary)
	}
}

// useColor decides whether text output is colored: "always", "never", or
// "auto" (a terminal, and NO_COLOR unset).
func useColor(mode string, w io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	return isTerminal(w)
}

// printSyncSummary prints one line per resource acted on and the counts;
// failures quote brokers, so they are scrubbed of secrets.
func printSyncSummary(w io.Writer, res *reconciler.SyncResult, secrets *redact.Set) {
	if res.Exec == nil {
		return
	}
	for _, o := range res.Exec.Outcomes {
		status := "ok"
		switch {
		case o.Status == exec.StatusFailed:
			status = "FAILED: " + secrets.Scrub(errText(o.Err, o.Summary))
		case o.Status == exec.StatusRetryLater:
			status = "retried later: " + secrets.Scrub(errText(o.Err, o.Summary))
		case o.InProgress:
			status = "in progress"
		}
		fmt.Fprintf(w, "%-16s %s: %s\n", o.Action, o.Ref, status)
	}
	// Resources that failed in an earlier pass and wait for a manifest
	// change (or osbgit retry): listed, not counted as this pass's
	// failures, so a CronJob does not fail every minute for one old verdict.
	var earlier []string
	if res.Plan != nil {
		for _, s := range res.Plan.Steps {
			if s.Action == plan.None && s.Record != nil && s.Record.Phase == manifest.PhaseFailed {
				earlier = append(earlier, fmt.Sprintf("%s (%s)", s.Ref, secrets.Scrub(s.Reason)))
			}
		}
	}
	for _, e := range earlier {
		fmt.Fprintf(w, "still failed     %s\n", e)
	}
	c := res.Exec.Counts
	fmt.Fprintf(w, "Sync: %d created, %d updated, %d deleted, %d in progress, %d failed, %d retried later, %d still failed from earlier passes.",
		c.Created, c.Updated, c.Deleted, c.InProgress, c.Failed, c.RetryLater, len(earlier))
	if res.Commit != "" {
		fmt.Fprintf(w, " Status committed: %s.", short(res.Commit))
	} else {
		fmt.Fprint(w, " No status change to commit.")
	}
	fmt.Fprintln(w)
}

// errText is err's message, else summary.
func errText(err error, summary string) string {
	if err != nil {
		return err.Error()
	}
	return summary
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
