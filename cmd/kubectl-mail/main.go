// Command kubectl-mail is the kubectl plugin for kubemail (`kubectl mail ...`): it reads and
// changes kubemail's objects through the API server only, with kubectl's flag conventions.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kubemail/kubemail/internal/version"
)

// errReported is returned by a command that has already printed why it fails (dns --check
// finding differences): main exits non-zero without printing more.
var errReported = errors.New("reported")

func main() {
	if err := newRootCommand().Execute(); err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:           "kubectl-mail",
		Short:         "Inspect and operate kubemail mail clusters",
		Long:          "kubectl mail inspects and operates kubemail mail clusters through the API server.",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl mail"},
	}
	o.addFlags(root)
	// Defined here so cobra does not take -v, which kubectl users know as verbosity.
	root.Flags().Bool("version", false, "print the plugin's version")
	root.AddCommand(newStatusCommand(o), newDNSCommand(o), newPasswdCommand(o))
	return root
}
