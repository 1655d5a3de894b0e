package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newRecordsCommand) }

func newRecordsCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "records",
		Short: "Manage where osbgit keeps its records",
	}
	cmd.AddCommand(newRecordsMoveCommand(g))
	return cmd
}

func newRecordsMoveCommand(g *globalOptions) *cobra.Command {
	var (
		statusBranch string
		dryRun       bool
	)
	cmd := &cobra.Command{
		Use:   "move --cluster-id ID",
		Short: "Give a repository's only deployment a cluster ID: move its records to .osbgit/clusters/ID/ (exit 0 done, 2 error)",
		Long: `A deployment without --cluster-id keeps its records in .osbgit/ and
refs/osbgit/records/<status branch>. Before a second deployment (another
cluster) shares the repository, give the first one a cluster ID with this
command, run once with that deployment's flags (its secret store holds the
records key) while it is stopped, then start it with the same --cluster-id.

The records are moved as osbgit signed them (never the status branch's
copy), into .osbgit/clusters/ID/ and refs/osbgit/clusters/ID/records/<status
branch>, signed for the cluster, in one push that deletes the old records
ref: nothing is provisioned again, and a deployment still running without
the cluster ID refuses instead of starting over. It refuses when the
cluster already has records or the old ones do not verify. It calls no
broker. --dry-run lists what would be moved.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if g.ClusterID == "" {
				return withExitCode(exitError, errors.New("records move: give the cluster ID to move the records to (--cluster-id or OSBGIT_CLUSTER_ID)"))
			}
			r, repo, err := writingReconciler(ctx, cmd, g, statusBranch, "records move signs records with the key in the secret store")
			if err != nil {
				return withExitCode(exitError, err)
			}
			defer repo.Close()
			res, err := r.MoveRecords(ctx, dryRun)
			if err != nil {
				return withExitCode(exitError, err)
			}
			out := cmd.OutOrStdout()
			for _, f := range res.Files {
				fmt.Fprintf(out, "moved %s\n", f)
			}
			if dryRun {
				fmt.Fprintf(out, "Would move %d file(s) to %s/ (dry run).\n", len(res.Files), repo.RecordsDir())
				return nil
			}
			fmt.Fprintf(out, "Moved %d file(s) to %s/: records commit %s on %s. Run this deployment with --cluster-id %s from now on.\n",
				len(res.Files), repo.RecordsDir(), res.Commit[:12], repo.RecordsRef(), g.ClusterID)
			return nil
		},
	}
	cmd.Flags().StringVar(&statusBranch, "status-branch", "", "branch holding the records (default: the trusted branch's osbgit.yaml statusBranch, else the trusted branch)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be moved; write nothing")
	return cmd
}
