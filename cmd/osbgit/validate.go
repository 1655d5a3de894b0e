package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/manifest/gitrepo"
	"github.com/osbgit/osbgit/reconciler/policy"
)

// manifestTree is the seam between commands that read manifests and where
// the manifests come from. The default (openLocalTree) reads a local working
// directory; the Git layer replaces it (e.g. from an init function) to read a
// branch head of a local or remote repository as an fs.FS. close releases
// whatever the tree holds (a temporary clone, say) and may be nil.
var manifestTree = openLocalTree

// openLocalTree returns the local directory --repo as a tree.
func openLocalTree(g *globalOptions) (fsys fs.FS, close func() error, err error) {
	repo := g.Repo
	if repo == "" {
		repo = "."
	}
	if looksLikeURL(repo) {
		return nil, nil, fmt.Errorf("--repo %s: remote repositories are not supported by this build; clone it and pass the local path", redactURL(repo))
	}
	st, err := os.Stat(repo)
	if err != nil {
		return nil, nil, fmt.Errorf("--repo: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("--repo %s: not a directory", repo)
	}
	return os.DirFS(repo), nil, nil
}

// looksLikeURL reports whether --repo names a remote repository rather than
// a local path: scheme://… or scp-like user@host:path.
func looksLikeURL(s string) bool {
	if strings.Contains(s, "://") {
		return true
	}
	at, colon := strings.Index(s, "@"), strings.Index(s, ":")
	return at > 0 && colon > at && !strings.Contains(s[:at], "/")
}

// redactURL hides a password in a URL for messages.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok || strings.Contains(userinfo, "/") {
		return s
	}
	user, _, hasPass := strings.Cut(userinfo, ":")
	if !hasPass {
		return s
	}
	return scheme + "://" + user + ":REDACTED@" + host
}

// exitInvalid is validate's exit code for invalid manifests (same value as
// exitChanges, named for what it means here).
const exitInvalid = exitChanges

func init() {
	subcommands = append(subcommands, newValidateCommand)
}

func newValidateCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the manifests of a repository (offline)",
		Long: `validate loads every manifest under --path (default: osbgit.yaml's path, else
the repository root) and checks it without calling any broker: YAML and field
names, required fields, names, references between objects, broker settings,
secretTransforms. When .osbgit/catalog holds cached catalogs, classes, plans
and parameters are also checked against them. With --policy, every manifest
is checked against the operator's tenancy policy too (its paths, namespaces,
classes and plans).

Every problem is printed as file:line: field: message (warnings prefixed with
"warning: "). Exit code: 0 valid (warnings allowed), 1 invalid, 2 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runValidate(g, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

// runValidate implements `osbgit validate`.
func runValidate(g *globalOptions, stdout, stderr io.Writer) error {
	fsys, closeTree, err := manifestTree(g)
	if err != nil {
		return withExitCode(exitError, err)
	}
	if closeTree != nil {
		defer closeTree()
	}
	cfg, _ := manifest.LoadConfig(fsys) // its diagnostics come again from Load
	dir := g.Path
	if dir == "" {
		dir = cfg.Path
	}
	dir = path.Clean(strings.TrimPrefix(dir, "./"))
	if fs.ValidPath(dir) {
		st, err := fs.Stat(fsys, dir)
		switch {
		case err != nil:
			return withExitCode(exitError, fmt.Errorf("manifest path %q: %w", dir, err))
		case !st.IsDir():
			return withExitCode(exitError, fmt.Errorf("manifest path %q: not a directory", dir))
		}
	}
	pol, err := g.tenancyPolicy()
	if err != nil {
		return withExitCode(exitError, err)
	}
	set, diags := manifest.Load(fsys, g.Path, manifest.WithAdmission(pol.Admission()))
	diags = append(diags, manifest.CheckBrokerAuthNamespaces(set, g.brokerAuthNamespaces())...)
	diags.Sort()
	if g.ClusterID != "" {
		if err := gitrepo.CheckClusterID(g.ClusterID); err != nil {
			return withExitCode(exitError, fmt.Errorf("--cluster-id: %w", err))
		}
	}
	// The cached catalogs of this deployment (--cluster-id) check the plans.
	records, rerr := manifest.RecordRoot(gitrepo.RecordsDir(g.ClusterID)).LoadRecords(fsys)
	if rerr != nil {
		// Broken records matter to sync, not to the manifests: report and go
		// on with whatever loaded.
		for _, line := range strings.Split(rerr.Error(), "\n") {
			fmt.Fprintf(stderr, "warning: %s\n", line)
		}
	}
	checkedCatalogs := 0
	var catalogs manifest.Catalogs
	if records != nil && len(records.Catalogs) > 0 {
		checkedCatalogs = len(records.Catalogs)
		catalogs = records.CatalogsByKey()
		diags = append(diags, manifest.ValidateWithCatalogs(set, catalogs, manifest.WithRecords(records))...)
	}
	diags = append(diags, policy.Check(set, pol, catalogs)...)
	diags.Sort()
	for _, d := range diags {
		fmt.Fprintln(stdout, d.String())
	}
	nErr, nWarn := len(diags.Errors()), len(diags.Warnings())
	summary := fmt.Sprintf("%d brokers, %d instances, %d bindings", len(set.ClusterServiceBrokers)+len(set.ServiceBrokers), len(set.Instances), len(set.Bindings))
	if checkedCatalogs > 0 {
		summary += fmt.Sprintf(", checked against %d cached catalogs", checkedCatalogs)
	}
	if nErr > 0 {
		fmt.Fprintf(stderr, "invalid: %d errors, %d warnings (%s)\n", nErr, nWarn, summary)
		return withExitCode(exitInvalid, nil)
	}
	fmt.Fprintf(stderr, "valid: %d warnings (%s)\n", nWarn, summary)
	return nil
}
