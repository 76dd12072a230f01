package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kilnbuild/kiln/runtime/registry"
)

func loadRegistry(stagePath []string) (*registry.Registry, error) {
	reg, err := registry.New(stagePath)
	if errors.Is(err, registry.ErrStagePath) {
		return nil, usageError{err}
	}
	return reg, err
}

func newStagesCmd() *cobra.Command {
	var stagePath []string
	cmd := &cobra.Command{
		Use:   "stages",
		Short: "List the stages and assemblers kiln can run, and show their options",
		Long: `Every stage is a WebAssembly module that describes itself: its name, a
one-line summary and the JSON Schema of its options travel inside the .wasm
file. kiln's own stages are built in; add your own with --stage-path DIR, a
directory of NAME.wasm files. A user stage replaces a built-in one of the
same name.`,
		Example: `  kiln stages list
  kiln stages show org.osbuild.users
  kiln stages list --stage-path ./my-stages`,
	}
	cmd.PersistentFlags().StringArrayVar(&stagePath, "stage-path", nil, "directory of user stages, NAME.wasm each (repeatable)")
	list := &cobra.Command{
		Use:     "list",
		Short:   "List every stage and assembler with its summary",
		Example: `  kiln stages list`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := loadRegistry(stagePath)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STAGE\tFROM\tSUMMARY")
			entries := reg.Entries(registry.Stage)
			for _, e := range entries {
				from := e.ModuleName
				if e.Shadows {
					from += " (replaces the built-in)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, from, e.Summary)
			}
			if len(entries) == 0 {
				fmt.Fprintln(tw, "(none: this kiln was built without its stage library; run make stages)\t\t")
			}
			fmt.Fprintln(tw, "\t\t")
			fmt.Fprintln(tw, "ASSEMBLER\tFROM\tSUMMARY")
			for _, a := range reg.Entries(registry.Assembler) {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, a.Origin(), a.Summary)
			}
			return tw.Flush()
		},
	}
	show := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a stage's or assembler's summary, module and option schema",
		Example: `  kiln stages show org.osbuild.hostname`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("kiln stages show takes one stage name, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := loadRegistry(stagePath)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			name := args[0]
			if e, err := reg.Lookup(registry.Stage, name); err == nil {
				fmt.Fprintf(out, "stage    %s\nsummary  %s\nmodule   %s (sha256 %s)\n", e.Name, e.Summary, e.ModuleName, e.Module.Digest())
				if e.Shadows {
					fmt.Fprintln(out, "note     this user stage replaces the built-in one")
				}
				return printSchema(out, e.Schema)
			}
			if e, err := reg.Lookup(registry.Assembler, name); err == nil {
				fmt.Fprintf(out, "assembler %s\nsummary   %s\nversion   %s\n", e.Name, e.Summary, e.Assembler.Version())
				return printSchema(out, e.Schema)
			}
			return usagef("no stage or assembler %q (kiln stages list shows them)", name)
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func printSchema(w interface{ Write([]byte) (int, error) }, raw []byte) error {
	if raw == nil {
		_, err := fmt.Fprintln(w, "options  not described: the module carries no schema, so options are not validated")
		return err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	_, err := fmt.Fprintf(w, "options schema:\n%s\n", b.String())
	return err
}
