package main

import (
	"fmt"
	"io"
	"os"

	"github.com/osbgit/osbgit/reconciler"
)

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
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// printSyncSummary prints one line per resource acted on and the counts.
func printSyncSummary(w io.Writer, res *reconciler.SyncResult) {
	if res.Exec == nil {
		return
	}
	for _, o := range res.Exec.Outcomes {
		status := "ok"
		switch {
		case o.Err != nil:
			status = "FAILED: " + o.Err.Error()
		case o.InProgress:
			status = "in progress"
		}
		fmt.Fprintf(w, "%-16s %s: %s\n", o.Action, o.Ref, status)
	}
	c := res.Exec.Counts
	fmt.Fprintf(w, "Sync: %d created, %d updated, %d deleted, %d in progress, %d failed.", c.Created, c.Updated, c.Deleted, c.InProgress, c.Failed)
	if res.Commit != "" {
		fmt.Fprintf(w, " Status committed: %s.", short(res.Commit))
	} else {
		fmt.Fprint(w, " No status change to commit.")
	}
	fmt.Fprintln(w)
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
