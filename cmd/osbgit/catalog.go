package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/osbgit/osbgit/manifest"
	"github.com/osbgit/osbgit/osbclient/osbwire"
)

func init() { subcommands = append(subcommands, newCatalogCommand) }

// catalogView is the -o json/yaml shape of one broker's catalog.
type catalogView struct {
	Broker    manifest.Ref    `json:"broker"`
	FetchedAt string          `json:"fetchedAt,omitempty"`
	Live      bool            `json:"live"`
	Error     string          `json:"error,omitempty"`
	Catalog   osbwire.Catalog `json:"catalog"`
}

func newCatalogCommand(g *globalOptions) *cobra.Command {
	var (
		broker  string
		refresh bool
		output  string
	)
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "List the classes and plans of the brokers in the repo (cached, or live with --refresh)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "table", "json", "yaml":
			default:
				return withExitCode(exitError, fmt.Errorf("-o %q: want table, yaml or json", output))
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			var pf passFlags
			r, repo, err := newReconciler(ctx, cmd, g, &pf)
			if err != nil {
				return withExitCode(exitError, err)
			}
			defer repo.Close()
			cats, err := r.Catalogs(ctx, refresh)
			if err != nil {
				return withExitCode(exitError, err)
			}
			var views []catalogView
			found := false
			for _, c := range cats {
				if broker != "" && c.Broker.Name != broker && c.Broker.Namespace+"/"+c.Broker.Name != broker {
					continue
				}
				found = true
				v := catalogView{Broker: c.Broker, Live: c.Fetched}
				if c.Err != nil {
					v.Error = g.secrets.Scrub(c.Err.Error())
					g.log.WithError(c.Err).Warn("catalog not refreshed")
				}
				if c.Record != nil {
					v.Catalog = c.Record.Catalog
					v.FetchedAt = c.Record.FetchedAt.UTC().Format("2006-01-02T15:04:05Z")
				}
				views = append(views, v)
			}
			if broker != "" && !found {
				return withExitCode(exitError, fmt.Errorf("no broker %q in the repo", broker))
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(views)
			case "yaml":
				b, err := json.Marshal(views)
				if err != nil {
					return err
				}
				y, err := manifest.JSONToYAML(b)
				if err != nil {
					return err
				}
				_, err = out.Write(y)
				return err
			}
			return printCatalogTable(out, views)
		},
	}
	cmd.Flags().StringVar(&broker, "broker", "", "only this broker (name, or namespace/name for a ServiceBroker)")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "fetch the catalogs live (GET /v2/catalog) instead of using the cache")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, yaml or json")
	return cmd
}

func printCatalogTable(w io.Writer, views []catalogView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BROKER\tCLASS\tPLAN\tFREE\tBINDABLE\tUPDATEABLE\tDESCRIPTION")
	for _, v := range views {
		if len(v.Catalog.Services) == 0 {
			note := "(no catalog cached; run with --refresh)"
			if v.Error != "" {
				note = "(unavailable: " + v.Error + ")"
			}
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t%s\n", brokerLabel(v.Broker), note)
			continue
		}
		svcs := append([]osbwire.Service(nil), v.Catalog.Services...)
		sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
		for _, s := range svcs {
			for _, p := range s.Plans {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%v\t%s\n", brokerLabel(v.Broker), s.Name, p.Name,
					p.IsFree(), s.IsBindable(p), s.IsPlanUpdateable(p), oneLine(p.Description))
			}
		}
	}
	return tw.Flush()
}

func brokerLabel(r manifest.Ref) string {
	if r.Namespace != "" {
		return r.Namespace + "/" + r.Name
	}
	return r.Name
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}
