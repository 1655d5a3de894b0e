package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/osbgit/osbgit/reconciler/statusview"
)

func init() { subcommands = append(subcommands, newStatusCommand) }

// exitUnhealthy is status's exit 1: a resource failed, or records were
// tampered with.
const exitUnhealthy = exitChanges

func newStatusCommand(g *globalOptions) *cobra.Command {
	var (
		statusBranch string
		filter       statusview.Filter
		kind         string
		output       string
	)
	cmd := &cobra.Command{
		Use:   "status [KIND/NAMESPACE/NAME]",
		Short: "List what osbgit recorded, or describe one resource (offline; exit 1 when one failed or was tampered with)",
		Long: `status shows the records of the trusted branch's status branch, as a pass
reads them: kind, name, broker, class/plan, phase, last operation, since,
message, and whether the records verify. With KIND/NAMESPACE/NAME it
describes one resource: conditions, IDs, Secret and keys, last operation,
retry and loss.

It reads only Git and the records key: no broker call. With the secret
store holding osbgit's records key (--secret-store, as for sync) records
are read from osbgit's records ref and are "verified" when its seal
checks, "tampered" when it does not (or the ref was deleted or moved back)
and on each record whose copy on the status branch was changed outside
osbgit. Without the key they are read from the status branch and
"unverified". status never creates the key.

Exit codes: 0 nothing failed or tampered (unverified is fine), 1 a
resource failed or records were tampered with, 2 error (also when a record
cannot be read).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "table", "json", "yaml":
			default:
				return withExitCode(exitError, fmt.Errorf("-o %q: want table, json or yaml", output))
			}
			if kind != "" {
				k, err := statusview.ParseKind(kind)
				if err != nil {
					return withExitCode(exitError, fmt.Errorf("--kind: %w", err))
				}
				filter.Kind = k
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			pf := passFlags{statusBranch: statusBranch}
			r, repo, err := newReconciler(ctx, cmd, g, &pf)
			if err != nil {
				return withExitCode(exitError, err)
			}
			defer repo.Close()
			r.Keys = recordKeys(r.Secrets, true)
			rep, err := r.ReadRecords(ctx)
			if err != nil {
				return withExitCode(exitError, err)
			}
			out := cmd.OutOrStdout()
			text := statusview.TextOptions{Now: time.Now()}
			var unhealthy bool
			if len(args) == 1 {
				ref, err := parseResourceRef(args[0])
				if err != nil {
					return withExitCode(exitError, err)
				}
				d, ok := statusview.Describe(rep, ref)
				if !ok {
					return withExitCode(exitError, fmt.Errorf("%s has no record on status branch %s%s", ref, rep.StatusBranch, unreadable(rep.Err)))
				}
				err = writeStatus(output, out, d, func() error { return statusview.Text(out, d, text) })
				if err != nil {
					return withExitCode(exitError, err)
				}
				unhealthy = d.Unhealthy()
			} else {
				v := statusview.Build(rep, filter)
				if err := writeStatus(output, out, v, func() error { return statusview.Table(out, v, text) }); err != nil {
					return withExitCode(exitError, err)
				}
				unhealthy = v.Unhealthy()
			}
			if rep.Err != nil {
				return withExitCode(exitError, rep.Err)
			}
			if unhealthy {
				return withExitCode(exitUnhealthy, nil)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&statusBranch, "status-branch", "", "branch holding .osbgit/ records (default: the trusted branch's osbgit.yaml statusBranch, else the trusted branch)")
	f.StringVarP(&filter.Namespace, "namespace", "n", "", "only resources in this namespace")
	f.StringVar(&kind, "kind", "", "only resources of this kind (ServiceInstance, ServiceBinding, ClusterServiceBroker, ServiceBroker)")
	f.BoolVar(&filter.Failed, "failed", false, "only resources that failed or were tampered with")
	f.StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// writeStatus writes model as JSON or YAML, or calls text for the table and
// describe views.
func writeStatus(output string, out io.Writer, model any, text func() error) error {
	switch output {
	case "json":
		return statusview.JSON(out, model)
	case "yaml":
		return statusview.YAML(out, model)
	}
	return text()
}

// unreadable adds to a message that some records could not be read.
func unreadable(err error) string {
	if err == nil {
		return ""
	}
	return " (some records could not be read: " + err.Error() + ")"
}
