package deploy_test

import (
	"fmt"
	"strings"
)

// The osbgit CLI as DESIGN.md specifies it (section CLI), plus the global
// flags cmd/osbgit/root.go registers. The workloads' args and OSBGIT_* env
// vars are checked against it, so a typo in a manifest fails here rather than
// in a CrashLoopBackOff. flagKind: "string", "int" or "bool".
type flagKind string

const (
	strFlag  flagKind = "string"
	intFlag  flagKind = "int"
	boolFlag flagKind = "bool"
)

var globalFlags = map[string]flagKind{
	"repo":                             strFlag,
	"branch":                           strFlag,
	"path":                             strFlag,
	"secret-store":                     strFlag,
	"kubeconfig":                       strFlag,
	"log-format":                       strFlag,
	"log-level":                        strFlag,
	"git-username":                     strFlag,
	"git-password-file":                strFlag,
	"git-token-file":                   strFlag,
	"git-ca-file":                      strFlag,
	"git-ssh-key":                      strFlag,
	"git-known-hosts":                  strFlag,
	"git-insecure-http":                boolFlag,
	"git-insecure-skip-host-key-check": boolFlag,
	"cache-dir":                        strFlag,
	"cluster-id":                       strFlag,
}

// passFlagSet are the flags of every command that plans a pass.
var passFlagSet = map[string]flagKind{
	"status-branch": strFlag,
	"prune":         boolFlag,
	"max-deletions": intFlag,
}

var syncFlags = merge(passFlagSet, map[string]flagKind{
	"concurrency":     intFlag,
	"inline-poll":     strFlag,
	"no-state":        boolFlag,
	"state-configmap": strFlag,
})

// commandFlags: per command, the flags it takes besides the global ones.
// `run … [--schedule …]` takes sync's flags too.
var commandFlags = map[string]map[string]flagKind{
	"validate": {},
	"diff":     merge(passFlagSet, map[string]flagKind{"offline": boolFlag, "refresh": boolFlag, "drift": boolFlag, "color": strFlag, "output": strFlag, "o": strFlag}),
	"sync":     syncFlags,
	"run": merge(syncFlags, map[string]flagKind{
		"schedule":                  strFlag,
		"webhook-addr":              strFlag,
		"webhook-secret-file":       strFlag,
		"webhook-insecure-no-auth":  boolFlag,
		"metrics-addr":              strFlag,
		"leader-elect":              boolFlag,
		"leader-election-id":        strFlag,
		"leader-election-namespace": strFlag,
		"shutdown-grace":            strFlag,
		"poll-interval":             strFlag,
	}),
	"catalog": {"broker": strFlag, "refresh": boolFlag, "output": strFlag, "o": strFlag},
	"version": {},
}

// envOnly are OSBGIT_* variables that are not flag twins (DESIGN.md: the
// password and token may come from the environment instead of a file).
var envOnly = map[string]bool{
	"OSBGIT_GIT_PASSWORD":   true,
	"OSBGIT_GIT_TOKEN":      true,
	"OSBGIT_WEBHOOK_SECRET": true,
}

func merge(ms ...map[string]flagKind) map[string]flagKind {
	out := map[string]flagKind{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// envTwin is the OSBGIT_* twin of a flag, as cmd/osbgit derives it.
func envTwin(flag string) string {
	return "OSBGIT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// knownEnv reports whether name is an OSBGIT_* variable osbgit reads for
// command cmd.
func knownEnv(cmd, name string) bool {
	if envOnly[name] {
		return true
	}
	for f := range globalFlags {
		if envTwin(f) == name {
			return true
		}
	}
	for f := range commandFlags[cmd] {
		if len(f) > 1 && envTwin(f) == name {
			return true
		}
	}
	return false
}

// parsedArgs is a workload's command line, checked against the spec.
type parsedArgs struct {
	Command string
	Flags   map[string]string // flag name -> value ("true" for a bare bool)
}

// parseArgs checks args (the container's args; the image's ENTRYPOINT is
// /osbgit) against the CLI spec: a known command first, then only flags that
// command takes, each with a value of the right form. osbgit takes no
// positional arguments.
func parseArgs(args []string) (parsedArgs, error) {
	p := parsedArgs{Flags: map[string]string{}}
	if len(args) == 0 {
		return p, fmt.Errorf("no command in args")
	}
	p.Command = args[0]
	own, ok := commandFlags[p.Command]
	if !ok {
		return p, fmt.Errorf("unknown osbgit command %q", p.Command)
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			return p, fmt.Errorf("%s: unexpected positional argument %q", p.Command, a)
		}
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "--") != (len(strings.SplitN(name, "=", 2)[0]) > 1) {
			return p, fmt.Errorf("%s: %q: long flags take --, one-letter flags -", p.Command, a)
		}
		value, hasValue := "", false
		if n, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = n, v, true
		}
		kind, ok := own[name]
		if !ok {
			kind, ok = globalFlags[name]
		}
		if !ok {
			return p, fmt.Errorf("%s: unknown flag %q", p.Command, a)
		}
		if _, dup := p.Flags[name]; dup {
			return p, fmt.Errorf("%s: flag --%s given twice", p.Command, name)
		}
		if !hasValue {
			if kind == boolFlag {
				value = "true"
			} else {
				if i+1 >= len(args) {
					return p, fmt.Errorf("%s: flag --%s needs a value", p.Command, name)
				}
				i++
				value = args[i]
			}
		}
		switch kind {
		case boolFlag:
			if value != "true" && value != "false" {
				return p, fmt.Errorf("%s: --%s=%q: want true or false", p.Command, name, value)
			}
		case intFlag:
			var n int
			if _, err := fmt.Sscanf(value, "%d", &n); err != nil || fmt.Sprint(n) != value {
				return p, fmt.Errorf("%s: --%s=%q: want an integer", p.Command, name, value)
			}
		case strFlag:
			if value == "" || strings.HasPrefix(value, "--") {
				return p, fmt.Errorf("%s: --%s has no value (next is %q)", p.Command, name, value)
			}
		}
		p.Flags[name] = value
	}
	return p, nil
}
