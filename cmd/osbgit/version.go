package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func init() {
	subcommands = append(subcommands, func(*globalOptions) *cobra.Command {
		return &cobra.Command{
			Use:   "version",
			Short: "Print the osbgit version",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				fmt.Fprintf(cmd.OutOrStdout(), "osbgit %s\n", version)
				return nil
			},
		}
	})
}
