package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/osbgit/osbgit/manifest/gitrepo"
)

func init() { subcommands = append(subcommands, newTrustCommand) }

func newTrustCommand(g *globalOptions) *cobra.Command {
	var (
		statusBranch string
		dryRun       bool
	)
	cmd := &cobra.Command{
		Use:   "trust [PATH...]",
		Short: "Adopt the status branch's .osbgit/ records as osbgit's own, after review (exit 0 done, 2 error)",
		Long: `osbgit reads its records from its own signed records commits
(refs/osbgit/records/<status branch>), not from the status branch, whose
.osbgit/ is a copy for people that every sync puts back when someone edits
it. trust makes osbgit adopt what the status branch holds there now, as it
is: every file, or only the files under the given paths.

Run it once when upgrading from an osbgit that did not sign its records, or
after a sync refused the records ref (pushed, moved back or deleted by
someone else) — in each case after a person reviewed .osbgit/ on the
status branch. It calls no broker. --dry-run lists what would be adopted.`,
		RunE: func(cmd *cobra.Command, paths []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			r, repo, err := writingReconciler(ctx, cmd, g, statusBranch, "trust signs records with the key in the secret store")
			if err != nil {
				return withExitCode(exitError, err)
			}
			defer repo.Close()
			res, err := r.Trust(ctx, paths, dryRun)
			if err != nil {
				return withExitCode(exitError, err)
			}
			out := cmd.OutOrStdout()
			what := map[gitrepo.ChangeAction]string{gitrepo.Added: "added", gitrepo.Deleted: "deleted", gitrepo.Modified: "changed"}
			for _, c := range res.Adopted {
				fmt.Fprintf(out, "%-8s %s\n", what[c.Action], c.Path)
			}
			switch {
			case dryRun:
				fmt.Fprintf(out, "Would adopt %d file(s) (dry run).\n", len(res.Adopted))
			case res.Commit == "":
				fmt.Fprintln(out, "Nothing to adopt: osbgit's records are the status branch's.")
			default:
				fmt.Fprintf(out, "Adopted %d file(s): records commit %s.\n", len(res.Adopted), res.Commit[:12])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&statusBranch, "status-branch", "", "branch holding .osbgit/ records (default: the trusted branch's osbgit.yaml statusBranch, else the trusted branch)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be adopted; write nothing")
	return cmd
}
