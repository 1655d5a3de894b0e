package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/osbgit/osbgit/manifest"
)

func init() { subcommands = append(subcommands, newRetryCommand) }

func newRetryCommand(g *globalOptions) *cobra.Command {
	var (
		statusBranch string
		state        stateFlags
	)
	cmd := &cobra.Command{
		Use:   "retry KIND/NAMESPACE/NAME",
		Short: "Make the next pass repeat a failed call the broker refused (exit 0 done, 2 error)",
		Long: `A call the broker gave no verdict on (5xx, a timeout, 422
ConcurrencyError, ...) is retried by later passes on their own, with backoff.
A verdict (400, 403, 409, 422, an operation in state failed) stays until the
manifest changes, e.g. by bumping spec.updateRequests. A failed deprovision
or unbind has no manifest left to change: retry marks the resource's record
so that the next pass repeats the call. It calls no broker.

KIND is ServiceInstance or ServiceBinding (case-insensitive). Give it the
deployment's state flags (--state-configmap) so the next pass is not skipped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ref, err := parseResourceRef(args[0])
			if err != nil {
				return withExitCode(exitError, err)
			}
			r, repo, err := writingReconciler(ctx, cmd, g, statusBranch, "retry writes a signed record")
			if err != nil {
				return withExitCode(exitError, err)
			}
			defer repo.Close()
			if r.Options.StateStore, err = state.store(g, repo); err != nil {
				return withExitCode(exitError, err)
			}
			if err := r.Retry(ctx, ref); err != nil {
				return withExitCode(exitError, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is retried by the next pass.\n", ref)
			return nil
		},
	}
	cmd.Flags().StringVar(&statusBranch, "status-branch", "", "branch holding .osbgit/ records (default: the trusted branch's osbgit.yaml statusBranch, else the trusted branch)")
	state.register(cmd.Flags(), "do not touch the pass state in the cache dir")
	return cmd
}

// parseResourceRef parses KIND/NAMESPACE/NAME for an instance or binding.
func parseResourceRef(s string) (manifest.Ref, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return manifest.Ref{}, fmt.Errorf("%q: want KIND/NAMESPACE/NAME (ServiceInstance or ServiceBinding)", s)
	}
	var kind manifest.Kind
	for _, k := range []manifest.Kind{manifest.KindServiceInstance, manifest.KindServiceBinding} {
		if strings.EqualFold(parts[0], string(k)) {
			kind = k
		}
	}
	if kind == "" {
		return manifest.Ref{}, fmt.Errorf("%q: kind %q is not ServiceInstance or ServiceBinding", s, parts[0])
	}
	ref := manifest.Ref{Kind: kind, Namespace: parts[1], Name: parts[2]}
	if _, err := manifest.StatusPath(ref); err != nil {
		return manifest.Ref{}, fmt.Errorf("%q: %w", s, err)
	}
	return ref, nil
}
