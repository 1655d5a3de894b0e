package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "osbgit ") {
		t.Fatalf("output %q", out.String())
	}
}

func TestUnknownCommandExitsWithError(t *testing.T) {
	t.Parallel()
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

// TestStateFlagsRefuseBadConfigMap: --state-configmap must be NAMESPACE/NAME
// of valid names and cannot be combined with --no-state; the error names
// the flag and the value.
func TestStateFlagsRefuseBadConfigMap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flags stateFlags
		want  string
	}{
		{stateFlags{configMap: "osbgit-state"}, `--state-configmap "osbgit-state": want NAMESPACE/NAME`},
		{stateFlags{configMap: "/osbgit-state"}, "want NAMESPACE/NAME"},
		{stateFlags{configMap: "osbgit-system/"}, "want NAMESPACE/NAME"},
		{stateFlags{configMap: "a/b/c"}, "want NAMESPACE/NAME"},
		{stateFlags{configMap: "Osbgit/state"}, `--state-configmap "Osbgit/state": a lowercase RFC 1123 label`},
		{stateFlags{configMap: "osbgit-system/State_1"}, `--state-configmap "osbgit-system/State_1": a lowercase RFC 1123 subdomain`},
		{stateFlags{configMap: "osbgit-system/osbgit-state", noState: true}, "--no-state and --state-configmap exclude each other"},
	} {
		_, err := tc.flags.store(&globalOptions{}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.flags, err, tc.want)
		}
	}
}
