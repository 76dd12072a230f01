package cli

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/kilnbuild/kiln/runtime/pipeline"
)

func newInspectCmd() *cobra.Command {
	var stagePath []string
	var epochFlag string
	cmd := &cobra.Command{
		Use:   "inspect MANIFEST|-",
		Short: "Print a manifest with every computed id filled in",
		Long: `Print the manifest as JSON with the id of every stage, of the assembler and
of each pipeline's tree filled in, exactly as kiln build would compute them.
Nothing is built and the store is not touched, so this also checks a
manifest as kiln build does before it runs anything: stage and assembler
names, options against each one's schema, the assembler's own checks of
its options, and the sources the stages name.`,
		Example: `  kiln inspect manifest.json
  kiln inspect manifest.json | jq -r '.pipeline.stages[] | .id + "  " + .name'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("kiln inspect takes one manifest file (or -), got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			epoch, err := parseEpoch(epochFlag)
			if err != nil {
				return err
			}
			// The plan kiln build makes and runs, so that what inspect
			// accepts and the ids it shows are the build's.
			plan, err := pipeline.MakePlan(pipeline.BuildConfig{ManifestFile: args[0], StagePath: stagePath, Epoch: epoch})
			if err != nil {
				return buildUsage(err)
			}
			m := plan.Manifest
			out := map[string]any{"pipeline": inspectPipeline(plan)}
			if len(m.Sources) > 0 {
				out["sources"] = m.Sources
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
	cmd.Flags().StringArrayVar(&stagePath, "stage-path", nil, "directory of user stages, as for kiln build (repeatable)")
	cmd.Flags().StringVar(&epochFlag, "source-date-epoch", "", "the epoch the ids are for, as for kiln build (default $SOURCE_DATE_EPOCH, else 0)")
	return cmd
}

type inspectStage struct {
	Name    string          `json:"name"`
	ID      string          `json:"id"`
	Module  string          `json:"module,omitempty"`
	Options json.RawMessage `json:"options,omitempty"`
}

func inspectPipeline(p *pipeline.Plan) map[string]any {
	out := map[string]any{}
	if p.Build != nil {
		out["build"] = map[string]any{"pipeline": inspectPipeline(p.Build), "runner": p.Runner}
	}
	stages := make([]inspectStage, 0, len(p.Stages))
	for _, s := range p.Stages {
		stages = append(stages, inspectStage{Name: s.Name, ID: s.ID, Module: s.Info.Module.Digest(), Options: s.Options})
	}
	out["stages"] = stages
	if a := p.Assembler; a != nil {
		out["assembler"] = inspectStage{Name: a.Name, ID: a.ID, Options: a.Options}
	}
	out["tree_id"] = p.TreeID
	return out
}
