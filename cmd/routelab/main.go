// Command routelab is the one binary of routelab: the gateway, the
// simulator, the replayer and the research tools, as subcommands.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "routelab:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "routelab",
		Short:         "LLM routing gateway and reinforcement-learning testbed",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	// Subcommands are wired here explicitly, one per file.
	root.AddCommand(
		newPoliciesCmd(),
		newServeCmd(),
		newLoadgenCmd(),
		newSimCmd(),
		newScenariosCmd(),
		newReplayCmd(),
		newTrainCmd(),
		newNeuralCmd(),
		newCalibrateCmd(),
		newLogsCmd(),
		newExperimentCmd(),
		newBenchdataCmd(),
		newPromoteCmd(),
		newOPEBenchCmd(),
	)
	return root
}
