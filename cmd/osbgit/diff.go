package main

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/reconciler"
	"github.com/osbgit/osbgit/reconciler/plan"
	"github.com/osbgit/osbgit/reconciler/render"
)

func init() { subcommands = append(subcommands, newDiffCommand) }

func newDiffCommand(g *globalOptions) *cobra.Command {
	var (
		pf      passFlags
		offline bool
		refresh bool
		drift   bool
		output  string
		color   string
	)
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show what a sync would do (no mutating call; exit 0 in sync, 1 changes pending, 2 error)",
		Long: `diff plans a pass and prints it like terraform plan. It never makes a
mutating broker call and never writes to Git or a secret store: only
GET /v2/catalog for catalogs that are due (none with --offline, which uses the
cached catalogs under .osbgit/catalog).

On a local working copy it reads the files on disk, uncommitted edits
included, so you see the effect before committing.

-o markdown writes a pull-request comment (see examples/ci): a summary, a
table of changed resources and a collapsible detail per resource, under
GitHub's comment size limit, with every value from the repo escaped.
Every format prints the same bytes for the same inputs: an ID a sync
would generate shows as "new ID, recorded before the first call".

Exit codes (kubectl diff / flux diff convention), whatever the format: 0 in
sync, 1 changes pending, 2 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" && output != "markdown" {
				return withExitCode(exitError, fmt.Errorf("-o %q: want text, json or markdown", output))
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			r, repo, err := newReconciler(ctx, cmd, g, &pf)
			if err != nil {
				return withExitCode(exitError, err)
			}
			defer repo.Close()
			r.Keys = recordKeys(r.Secrets, true)
			var wt fs.FS
			if repo.IsWorkTree() && !cmd.Flags().Changed("branch") {
				if wt, err = repo.WorkTreeFS(); err != nil {
					return withExitCode(exitError, err)
				}
			}
			res, err := r.Diff(ctx, reconciler.DiffOptions{WorkTree: wt, Offline: offline, Refresh: refresh, Drift: drift})
			if err != nil {
				return withExitCode(exitError, err)
			}
			for _, e := range res.CatalogErrors {
				g.log.WithError(e).Warn("catalog not refreshed")
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				err = render.JSON(out, res.Plan, render.JSONOptions{Redact: g.secrets})
			case "markdown":
				err = render.Markdown(out, res.Plan, render.MarkdownOptions{Redact: g.secrets})
			default:
				err = render.Text(out, res.Plan, render.TextOptions{Color: useColor(color, out), Redact: g.secrets})
			}
			if err != nil {
				return withExitCode(exitError, err)
			}
			if planHasErrors(res.Plan) {
				return withExitCode(exitError, nil)
			}
			if res.Plan.HasChanges() {
				return withExitCode(exitChanges, nil)
			}
			return nil
		},
	}
	pf.register(cmd, false)
	cmd.Flags().BoolVar(&offline, "offline", false, "make no broker call at all: use the cached catalogs and the records")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "fetch every broker's catalog, not only those due")
	cmd.Flags().BoolVar(&drift, "drift", false, "also compare live state (GET instance/binding, where the broker allows it) with the records")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or markdown (a pull-request comment)")
	cmd.Flags().StringVar(&color, "color", "auto", "color the text output: auto, always or never")
	return cmd
}

// planHasErrors decides diff's exit code 2: the plan refuses to run, a
// resource is blocked (its step carries an error), or a problem is not tied
// to any resource (an unreadable file, a broken osbgit.yaml). A diagnostic
// the planner turned into a warning on its resource (e.g. a plan that left
// the catalog under an instance that asks for nothing new) does not count.
func planHasErrors(p *plan.Plan) bool {
	if p.Refused != "" {
		return true
	}
	for _, s := range p.Steps {
		if s.Error != "" {
			return true
		}
	}
	for _, d := range p.Diagnostics {
		if d.Severity == manifest.SeverityError && d.Ref.Kind == "" {
			return true
		}
	}
	return false
}
