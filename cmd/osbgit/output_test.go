package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/osbgit/osbgit/reconciler/exec"
)

// TestStatusLineKeepsLogsReadable: on a terminal, a log entry written
// while progress is shown clears the progress line first and draws it
// again after; call events redraw at most ten times a second, a step's end
// always; the line is gone when every step ended.
func TestStatusLineKeepsLogsReadable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	line := newStatusLine(&out)
	line.now = func() time.Time { return clock }
	log := logrus.New()
	log.SetOutput(line)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	show := progressLine(line)

	show(exec.Progress{Done: 0, Total: 3, CallsInFlight: 1})
	show(exec.Progress{Done: 0, Total: 3, CallsInFlight: 2}) // throttled
	show(exec.Progress{Done: 1, Total: 3, CallsInFlight: 1, Ended: &exec.Outcome{}})
	log.Info("provisioned")
	clock = clock.Add(time.Second)
	show(exec.Progress{Done: 1, Total: 3, CallsInFlight: 0})
	show(exec.Progress{Done: 3, Total: 3, Ended: &exec.Outcome{}})

	const clearLine = "\r\033[K"
	want := clearLine + "[0/3 resources, 1 calls in flight]" +
		clearLine + "[1/3 resources, 1 calls in flight]" +
		clearLine + "level=info msg=provisioned\n" + "[1/3 resources, 1 calls in flight]" +
		clearLine + "[1/3 resources, 0 calls in flight]" +
		clearLine
	if got := out.String(); got != want {
		t.Errorf("terminal output\n got %q\nwant %q", got, want)
	}
	if strings.Count(out.String(), "provisioned") != 1 {
		t.Error("the log entry is not written exactly once")
	}
}

// TestLogFormatAuto: JSON inside a Kubernetes pod, text elsewhere; an
// explicit format wins.
func TestLogFormatAuto(t *testing.T) {
	t.Parallel()
	inPod := func(k string) string {
		if k == "KUBERNETES_SERVICE_HOST" {
			return "10.0.0.1"
		}
		return ""
	}
	none := func(string) string { return "" }
	for _, tc := range []struct {
		format string
		env    func(string) string
		want   string
	}{{"auto", inPod, "json"}, {"auto", none, "text"}, {"text", inPod, "text"}, {"json", none, "json"}} {
		if got := resolveLogFormat(tc.format, tc.env); got != tc.want {
			t.Errorf("resolveLogFormat(%q) = %q, want %q", tc.format, got, tc.want)
		}
	}
}
