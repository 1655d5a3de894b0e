package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/osbgit/osbgit/reconciler/redact"
)

// Exit codes shared by every command. diff follows kubectl/flux: 0 in sync,
// 1 changes pending, 2 error. validate: 0 valid, 1 invalid, 2 error. sync: 0
// converged or in progress, 1 a resource failed, 2 error.
const (
	exitOK      = 0
	exitChanges = 1
	exitError   = 2
)

// exitError wraps an error with the exit code a command wants. A command that
// returns a plain error exits with exitError; never with 1 by accident.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitCodeError) Unwrap() error { return e.err }

// withExitCode returns an error that makes run exit with code. A nil err
// means "exit quietly with code" (e.g. diff found changes).
func withExitCode(code int, err error) error { return &exitCodeError{code: code, err: err} }

// globalOptions are the flags every command takes (DESIGN.md, CLI).
type globalOptions struct {
	Repo          string
	Branch        string
	TrustedBranch string
	// BrokerAuthNamespaces are the namespaces broker auth Secrets may come
	// from (see brokerAuthNamespaces for the default).
	BrokerAuthNamespaces []string
	// PolicyFile is the operator's tenancy policy (--policy; see
	// tenancyPolicy).
	PolicyFile string
	Path       string
	// ClusterID is the deployment's identity (--cluster-id): sent as
	// context.clusterid and, when set, the key of its own records
	// (.osbgit/clusters/<id>/, gitrepo.Options.ClusterID).
	ClusterID   string
	SecretStore string
	Kubeconfig  string
	LogFormat   string
	LogLevel    string

	GitUsername            string
	GitPasswordFile        string
	GitTokenFile           string
	GitCAFile              string
	GitSSHKey              string
	GitKnownHosts          string
	GitInsecureHTTP        bool
	GitInsecureSkipHostKey bool
	CacheDir               string

	log *logrus.Logger
	// secrets is every secret value this process knows (Git credentials,
	// broker auth, parametersFrom values, binding credentials): shared by
	// the logger, the reconciler and everything the commands print, so a
	// broker that quotes one in an answer is scrubbed everywhere.
	secrets *redact.Set
}

// command constructors register here from their own files' init functions, so
// adding a command touches only its file.
var subcommands []func(*globalOptions) *cobra.Command

func newRootCommand(stdout, stderr io.Writer) (*cobra.Command, *globalOptions) {
	g := &globalOptions{secrets: redact.New()}
	root := &cobra.Command{
		Use:           "osbgit",
		Short:         "GitOps reconciler for the Open Service Broker API",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd); err != nil {
				return err
			}
			g.LogFormat = resolveLogFormat(g.LogFormat, os.Getenv)
			l, err := newLogger(stderr, g.LogFormat, g.LogLevel)
			if err != nil {
				return err
			}
			// Whatever the format, no entry shows a secret this process
			// knows.
			l.SetFormatter(&redact.Formatter{Set: g.secrets, Next: l.Formatter})
			g.log = l
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.Repo, "repo", ".", "manifest repository: a local working copy, a bare repo, or a URL")
	pf.StringVar(&g.Branch, "branch", "", "branch to read (default: the repo's HEAD branch; sync and run: the trusted branch)")
	pf.StringVar(&g.TrustedBranch, "trusted-branch", "", "the branch the operator trusts: what sync and run reconcile, whose broker manifests say where broker credentials may go, and whose records a diff of any other branch reads (default: --branch for sync and run, else the remote's default branch)")
	pf.StringSliceVar(&g.BrokerAuthNamespaces, "broker-auth-namespaces", nil, "namespaces broker auth Secrets may come from (default: osbgit's own namespace in a cluster, else osbgit-system)")
	pf.StringVar(&g.PolicyFile, "policy", "", "tenancy policy file set by the operator (in a cluster, a mounted ConfigMap): which repo paths may declare which namespaces, which classes and plans a namespace may use, caps on creates and deletes per pass (default: none)")
	pf.StringVar(&g.Path, "path", "", "directory inside the repo holding manifests (default: osbgit.yaml's path, else the root)")
	pf.StringVar(&g.ClusterID, "cluster-id", "", "this deployment's identity, set by the operator: sent to brokers as context.clusterid, and, when several deployments share the repository, the key of its own records (.osbgit/clusters/ID/; a DNS label). Without it records live in .osbgit/ and context.clusterid is osbgit.yaml's clusterID")
	pf.StringVar(&g.SecretStore, "secret-store", "", "where credentials and auth secrets live: kube or dir:PATH")
	pf.StringVar(&g.Kubeconfig, "kubeconfig", "", "kubeconfig for --secret-store kube (default: in-cluster, then $KUBECONFIG)")
	pf.StringVar(&g.LogFormat, "log-format", "auto", "log format: text, json, or auto (json inside a Kubernetes pod, else text)")
	pf.StringVar(&g.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.GitUsername, "git-username", "", "username for Git over HTTPS")
	pf.StringVar(&g.GitPasswordFile, "git-password-file", "", "file holding the Git password (or env OSBGIT_GIT_PASSWORD)")
	pf.StringVar(&g.GitTokenFile, "git-token-file", "", "file holding a Git bearer token (or env OSBGIT_GIT_TOKEN)")
	pf.StringVar(&g.GitCAFile, "git-ca-file", "", "PEM CA bundle for Git over HTTPS")
	pf.StringVar(&g.GitSSHKey, "git-ssh-key", "", "private key file for Git over SSH")
	pf.StringVar(&g.GitKnownHosts, "git-known-hosts", "", "known_hosts file for Git over SSH")
	pf.BoolVar(&g.GitInsecureHTTP, "git-insecure-http", false, "allow sending Git credentials over plain http:// to a non-loopback host")
	pf.BoolVar(&g.GitInsecureSkipHostKey, "git-insecure-skip-host-key-check", false, "do not verify SSH host keys (unsafe)")
	pf.StringVar(&g.CacheDir, "cache-dir", "", "directory for the Git clone and decoded-manifest cache (default: $XDG_CACHE_HOME/osbgit)")
	for _, mk := range subcommands {
		root.AddCommand(mk(g))
	}
	return root, g
}

// run executes the CLI and returns the process exit code. The error it
// prints is scrubbed of every secret value the command learnt.
func run(args []string, stdout, stderr io.Writer) int {
	root, g := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		if ec.err != nil {
			fmt.Fprintln(stderr, "error:", g.secrets.Scrub(ec.err.Error()))
		}
		return ec.code
	}
	fmt.Fprintln(stderr, "error:", g.secrets.Scrub(err.Error()))
	return exitError
}

// envName is the OSBGIT_* twin of a flag: --max-deletions -> OSBGIT_MAX_DELETIONS.
func envName(flag string) string {
	return "OSBGIT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its OSBGIT_*
// environment twin, so flags always win over the environment.
func applyEnv(cmd *cobra.Command) error {
	var firstErr error
	visit := func(f *pflag.Flag) {
		if f.Changed || firstErr != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				firstErr = fmt.Errorf("environment %s: %w", envName(f.Name), err)
			}
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	return firstErr
}

// resolveLogFormat turns "auto" into json inside a Kubernetes pod (where
// logs are collected and parsed) and text elsewhere.
func resolveLogFormat(format string, getenv func(string) string) string {
	if format != "auto" {
		return format
	}
	if getenv("KUBERNETES_SERVICE_HOST") != "" {
		return "json"
	}
	return "text"
}

func newLogger(w io.Writer, format, level string) (*logrus.Logger, error) {
	l := logrus.New()
	l.SetOutput(w)
	switch format {
	case "text", "":
		l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: false, FullTimestamp: true})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("--log-format %q: want text, json or auto", format)
	}
	lv, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	l.SetLevel(lv)
	return l, nil
}
