package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

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

// statusLine is a terminal's last line, kept for progress: log entries
// written through it clear that line first and draw it again after, so
// logs and progress do not garble each other. Every event is still logged
// once; the line only says where the pass stands.
type statusLine struct {
	mu   sync.Mutex
	w    io.Writer
	line string
	// drawn is when the line was last drawn (redraws are throttled).
	drawn time.Time
	now   func() time.Time
}

func newStatusLine(w io.Writer) *statusLine { return &statusLine{w: w, now: time.Now} }

// Write implements io.Writer for the logger.
func (s *statusLine) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.line != "" {
		fmt.Fprint(s.w, "\r\033[K")
	}
	n, err := s.w.Write(p)
	if s.line != "" {
		fmt.Fprint(s.w, s.line)
	}
	return n, err
}

// set draws line; unless force, at most ten times a second.
func (s *statusLine) set(line string, force bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !force && now.Sub(s.drawn) < 100*time.Millisecond {
		s.line = line
		return
	}
	s.line, s.drawn = line, now
	fmt.Fprint(s.w, "\r\033[K"+line)
}

// clear removes the line.
func (s *statusLine) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.line != "" {
		fmt.Fprint(s.w, "\r\033[K")
	}
	s.line = ""
}

// progressLine shows a sync's progress on a terminal's status line:
// "[12/40 resources, 3 calls in flight]".
func progressLine(s *statusLine) func(exec.Progress) {
	return func(p exec.Progress) {
		if p.Done >= p.Total {
			s.clear()
			return
		}
		s.set(fmt.Sprintf("[%d/%d resources, %d calls in flight]", p.Done, p.Total, p.CallsInFlight), p.Ended != nil)
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

// printSyncSummary prints the pass's counts, the resources still failed
// from earlier passes and the status commit. What each step did was
// logged as it ended (once); it is not repeated here. Reasons quote
// brokers, so they are scrubbed of secrets.
func printSyncSummary(w io.Writer, res *reconciler.SyncResult, secrets *redact.Set) {
	if res.Exec == nil {
		return
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
	fmt.Fprintf(w, "Sync: %s, %d still failed from earlier passes.", c, len(earlier))
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
