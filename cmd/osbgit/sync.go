package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newSyncCommand) }

func newSyncCommand(g *globalOptions) *cobra.Command {
	var (
		pf           passFlags
		inlinePoll   time.Duration
		confirmMoves []string
		state        stateFlags
	)
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Run one pass: converge brokers to the manifests and commit status (exit 0 converged or in progress, 1 a resource failed, 2 error)",
		Long: `sync runs one reconciliation pass against the branch head: it relists
catalogs that are due, provisions, updates, binds, unbinds and deprovisions,
writes binding credentials to the secret store, and commits status records
under .osbgit/ (one commit, none when nothing changed).

Long asynchronous operations are recorded and polled by the next pass; sync
does not wait for them beyond --inline-poll.

Exit codes: 0 converged or operations in progress, 1 a resource failed (its
record says why), 2 error (nothing may have been done).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if g.SecretStore == "" {
				return withExitCode(exitError, errors.New("sync writes binding credentials: set --secret-store kube or dir:PATH"))
			}
			r, repo, err := newReconciler(ctx, cmd, g, &pf)
			if err != nil {
				return withExitCode(exitError, err)
			}
			defer repo.Close()
			if err := repo.CheckWritable(); err != nil {
				return withExitCode(exitError, err)
			}
			r.Options.InlinePoll = inlinePoll
			if r.Options.ConfirmedBrokerMoves, err = brokerRefs(confirmMoves); err != nil {
				return withExitCode(exitError, err)
			}
			if errw := cmd.ErrOrStderr(); isTerminal(errw) && g.LogFormat != "json" {
				line := newStatusLine(errw)
				g.log.SetOutput(line)
				defer func() { line.clear(); g.log.SetOutput(errw) }()
				r.Progress = progressLine(line)
			}
			r.Options.ScopeIndexPath = state.indexPath(g, repo)
			if r.Options.StateStore, err = state.store(g, repo); err != nil {
				return withExitCode(exitError, err)
			}
			res, err := r.Sync(ctx)
			if err != nil {
				return withExitCode(exitError, err)
			}
			out := cmd.OutOrStdout()
			if res.Skipped {
				fmt.Fprintf(out, "Nothing to do: %s.\n", res.Reason)
				return nil
			}
			for _, e := range res.CatalogErrors {
				g.log.WithError(e).Warn("catalog not refreshed")
			}
			if res.Refused != "" {
				return withExitCode(exitError, fmt.Errorf("pass refused: %s", res.Refused))
			}
			printSyncSummary(out, res, g.secrets)
			if res.Failed() {
				return withExitCode(exitChanges, nil)
			}
			return nil
		},
	}
	pf.register(cmd, true)
	cmd.Flags().StringSliceVar(&confirmMoves, "confirm-broker-move", nil, "BROKER (ClusterServiceBroker) or NAMESPACE/BROKER (ServiceBroker) whose URL change you confirm: resources its new URL answers 404 for are created again there (a pass runs even when nothing else is due)")
	cmd.Flags().DurationVar(&inlinePoll, "inline-poll", 30*time.Second, "how long to keep polling async operations before leaving them to the next pass")
	state.register(cmd.Flags(), "do not keep pass state in the cache dir (every pass is a full pass)")
	return cmd
}
