package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "osbgit ") {
		t.Fatalf("output %q", out.String())
	}
}

func TestUnknownCommandExitsWithError(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"no-such-command"}, &out, &errb); code != exitError {
		t.Fatalf("exit %d, want %d", code, exitError)
	}
}

func TestEnvTwinAppliesUnlessFlagGiven(t *testing.T) {
	t.Setenv("OSBGIT_LOG_FORMAT", "bogus")
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != exitError {
		t.Fatalf("bogus env log format: exit %d, want %d", code, exitError)
	}
	if !strings.Contains(errb.String(), "OSBGIT_LOG_FORMAT") && !strings.Contains(errb.String(), "log-format") {
		t.Fatalf("error does not name the setting: %q", errb.String())
	}
	errb.Reset()
	if code := run([]string{"--log-format", "json", "version"}, &out, &errb); code != exitOK {
		t.Fatalf("flag should win over env: exit %d %q", code, errb.String())
	}
}
