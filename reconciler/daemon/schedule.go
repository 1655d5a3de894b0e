package daemon

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// DefaultSchedule is the pass schedule of `osbgit run` (DESIGN.md, CLI).
const DefaultSchedule = "@every 1m"

// ParseSchedule parses a pass schedule: a standard five-field cron
// expression ("*/5 * * * *"), a descriptor ("@hourly") or "@every
// <duration>" (robfig/cron/v3 ParseStandard; "@every" rounds to whole
// seconds, minimum 1s). Times are in the process's local time zone unless the
// spec starts with CRON_TZ=<zone>.
func ParseSchedule(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", spec, err)
	}
	return s, nil
}

// period is the schedule's interval around now: the gap between its next
// two activations (0 when it has none, e.g. a Feb 30 spec).
func period(s cron.Schedule, now time.Time) time.Duration {
	n1 := s.Next(now)
	if n1.IsZero() {
		return 0
	}
	n2 := s.Next(n1)
	if n2.IsZero() {
		return 0
	}
	return n2.Sub(n1)
}

// wakeAt is when a pass asked to run again (next), clamped to
// [min, max] from now; max <= 0 means no upper bound. A zero next means the
// pass asked for nothing, and so does the zero result.
func wakeAt(next, now time.Time, min, max time.Duration) time.Time {
	if next.IsZero() {
		return time.Time{}
	}
	d := next.Sub(now)
	if max > 0 && d > max {
		d = max
	}
	if d < min {
		d = min
	}
	return now.Add(d)
}
