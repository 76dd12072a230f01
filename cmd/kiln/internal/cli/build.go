package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/runtime/pipeline"
	"github.com/kilnbuild/kiln/runtime/registry"
	"github.com/kilnbuild/kiln/store/mountns"
)

type buildFlags struct {
	store        string
	outputDir    string
	checkpoints  []string
	exports      []string
	stagePath    []string
	stageTimeout time.Duration
	epoch        string
	asJSON       bool
	progress     string
	memory       string
	fileRoots    []string
	exportMode   string
}

func newBuildCmd() *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build MANIFEST|-",
		Short: "Build the image a manifest describes",
		Long: `Build the pipeline of an osbuild v1 manifest: fetch its sources, run the
stages the store does not hold yet (each as a sandboxed WebAssembly program),
then run the assembler and copy its output to --output-directory.

Stages whose result is stored are not run again: a stage's id covers its
name, its module's digest, its options, the build pipeline, every stage
before it and SOURCE_DATE_EPOCH, so editing stage k re-runs stages k to n
only. Results are stored for the stages named by --checkpoint and --export,
for build pipelines, and for the assembler.

Exported trees (--export) keep their content as the store has it, setuid
files, file capabilities and device nodes included; so that no other local
user reaches those, each exported tree's top directory is 0700, and the
assembler's output files (an image holds the whole tree) are readable by
you only, unless --export-mode shared asks for their own modes. A build
removes the staging directories (.kiln-export-*) that a killed build left in
--output-directory.

Builds running at the same time share their work: a build that needs an
object another one is making waits for it ("waiting for another kiln
making ...") instead of running the same stages again.

A nested build pipeline is built first; its tree is visible read-only to the
stages at /run/kiln/build. Its "runner" is accepted and recorded, but kiln
needs none: stages are WebAssembly, not host programs.

Exit status: 0 built, 1 a stage or the assembler failed (its log is shown),
2 bad usage or an invalid manifest (the error names the JSON path).`,
		Example: `  kiln build examples/hello.json
  kiln build --output-directory out --checkpoint org.osbuild.users manifest.json
  kiln build --export org.osbuild.hostname --json manifest.json > result.json
  osbuild-mpp image.mpp.json - | kiln build -`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("kiln build takes one manifest file (or - for standard input), got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.store, "store", defaultStore(), "object store directory (shared by builds; see kiln store)")
	fl.StringVar(&f.outputDir, "output-directory", "out", "where the assembler's output and exports go")
	fl.StringArrayVar(&f.checkpoints, "checkpoint", nil, "commit the result of a stage: an id (or 8+ digit prefix), a stage name or a glob (repeatable)")
	fl.StringArrayVar(&f.exports, "export", nil, "copy a stage's tree to OUTPUT-DIRECTORY/<id>: an id, a stage name or a glob (repeatable)")
	fl.StringArrayVar(&f.stagePath, "stage-path", nil, "directory of user stages, NAME.wasm each; a user stage replaces a built-in of the same name (repeatable)")
	fl.DurationVar(&f.stageTimeout, "stage-timeout", engine.DefaultStageTimeout, "kill a stage that runs longer than this, e.g. 10m (0: no limit)")
	fl.StringVar(&f.epoch, "source-date-epoch", "", "stages' wall clock and the outputs' timestamps, in seconds since 1970 (default $SOURCE_DATE_EPOCH, else 0)")
	fl.BoolVar(&f.asJSON, "json", false, "print the result as JSON on stdout (progress goes to stderr)")
	fl.StringVar(&f.progress, "progress", "auto", "progress on stderr: auto (live on a terminal), plain or json")
	fl.StringVar(&f.memory, "stage-memory", "1G", "memory limit of each stage")
	fl.StringArrayVar(&f.fileRoots, "allow-file-sources", nil, "read file:// sources only from beneath this directory (repeatable; default: anything you can read)")
	fl.StringVar(&f.exportMode, "export-mode", "private", "who may reach into exported trees: private (trees' top directories 0700, output files readable by you only) or shared (their own modes: other local users reach a tree's setuid files, capabilities and device nodes, and read images)")
	return cmd
}

// parseEpoch reads SOURCE_DATE_EPOCH as the reproducible-builds spec says:
// a non-negative integer, and a malformed one is an error.
func parseEpoch(flag string) (int64, error) {
	v, what := flag, "--source-date-epoch"
	if v == "" {
		v, what = os.Getenv("SOURCE_DATE_EPOCH"), "$SOURCE_DATE_EPOCH"
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, usagef("%s=%q: want a whole number of seconds since 1970", what, v)
	}
	return n, nil
}

func runBuild(cmd *cobra.Command, file string, f *buildFlags) error {
	// Enter the private mount namespace before reading anything: the
	// re-executed kiln must still find the manifest on its stdin.
	if err := mountns.Enter(); err != nil {
		return err
	}
	epoch, err := parseEpoch(f.epoch)
	if err != nil {
		return err
	}
	mode := f.progress
	switch mode {
	case "auto":
		mode = "plain"
		if isTerminal(cmd.ErrOrStderr()) {
			mode = "tty"
		}
	case "plain", "json":
	default:
		return usagef("--progress %q: want auto, plain or json", f.progress)
	}
	memLimit, err := parseSize(f.memory)
	if err != nil {
		return usagef("--stage-memory: %v", err)
	}
	exportMode, err := pipeline.ParseExportMode(f.exportMode)
	if err != nil {
		return usagef("--export-mode: %v", err)
	}
	stderr := cmd.ErrOrStderr()
	var prog *progress
	defer func() {
		if prog != nil {
			prog.Close()
		}
	}()
	start := time.Now()
	res, err := pipeline.Build(cmd.Context(), pipeline.BuildConfig{
		ManifestFile: file, StagePath: f.stagePath,
		Epoch: epoch, Checkpoints: f.checkpoints, Exports: f.exports,
		StoreDir: f.store, MemoryLimit: uint64(memLimit), StageTimeout: f.stageTimeout,
		FileRoots: f.fileRoots, OutputDir: f.outputDir, ExportMode: exportMode,
		Events: func(ev pipeline.Event) {
			if ev.Kind == pipeline.Planned {
				if ev.Recovered > 0 {
					fmt.Fprintf(stderr, "kiln: removed %d leftover(s) of interrupted runs from %s\n", ev.Recovered, filepath.Join(ev.StoreRoot, "tmp"))
				}
				prog = newProgress(stderr, mode, stageCount(ev.Plan))
				prog.header(file, ev.Plan, ev.StoreRoot)
				start = time.Now()
				return
			}
			prog.event(ev)
		},
	})
	if res == nil && err != nil {
		// Nothing ran: the manifest, a flag or the store is at fault.
		return buildUsage(err)
	}
	prog.Close()
	prog = nil
	elapsed := time.Since(start)
	if f.asJSON {
		if jerr := writeResultJSON(cmd.OutOrStdout(), res, err); jerr != nil {
			return jerr
		}
	}
	if err != nil {
		if mode != "json" {
			showFailure(stderr, res)
			if errors.Is(err, pipeline.ErrStageFailed) && mountns.OwnIDOnly() {
				fmt.Fprintln(stderr, "kiln: note: running without root, kiln maps only your own user id, so stages cannot give files to other owners (chown fails with \"invalid argument\"); install uidmap and give your user ranges in /etc/subuid and /etc/subgid, or build as root")
			}
		}
		if errors.Is(err, pipeline.ErrStageFailed) {
			return err
		}
		return asUsage(err)
	}
	if !f.asJSON {
		out := cmd.OutOrStdout()
		ran := 0
		for _, s := range res.Stages {
			if !s.Cached {
				ran++
			}
		}
		fmt.Fprintf(out, "built in %s: %d of %d stages ran", elapsed.Round(time.Millisecond), ran, len(res.Stages))
		if a := res.Assembler; a != nil && a.Cached {
			fmt.Fprint(out, ", assembler output cached")
		}
		fmt.Fprintln(out)
		if res.TreeID != "" {
			fmt.Fprintf(out, "tree      %s\n", res.TreeID)
		}
		if res.AssemblerID != "" {
			fmt.Fprintf(out, "assembler %s\n", res.AssemblerID)
		}
		for _, o := range res.Outputs {
			fmt.Fprintf(out, "output    %s\n", o)
		}
		if len(res.Outputs) == 0 {
			fmt.Fprintln(out, "no output files (no assembler output and no --export)")
		}
	}
	return nil
}

// buildUsage gives the errors of planning a build their exit status: the
// caller's (2) for a missing or invalid manifest, a bad --stage-path or a
// selector matching nothing.
func buildUsage(err error) error {
	if errors.Is(err, pipeline.ErrNoManifest) || errors.Is(err, pipeline.ErrNoMatch) || errors.Is(err, registry.ErrStagePath) {
		return usageError{err}
	}
	return asUsage(err)
}

// asUsage makes manifest errors exit with status 2.
func asUsage(err error) error {
	if errors.Is(err, manifest.ErrInvalid) {
		return usageError{err}
	}
	return err
}

func displayFile(file string) string {
	if file == "-" {
		return "<stdin>"
	}
	return file
}

// showFailure prints the failed step's log, which says why it failed.
func showFailure(w io.Writer, res *pipeline.Result) {
	if res == nil {
		return
	}
	steps := res.Stages
	if res.Assembler != nil {
		steps = append(steps, res.Assembler)
	}
	for _, s := range steps {
		if s.Err == nil || len(s.Log) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nlog of %s (%s):\n", s.Name, shortID(s.ID))
		for _, line := range strings.Split(strings.TrimRight(string(s.Log), "\n"), "\n") {
			fmt.Fprintf(w, "  | %s\n", line)
		}
		fmt.Fprintln(w)
	}
}

type stageJSONOut struct {
	Pipeline     string  `json:"pipeline,omitempty"`
	Index        int     `json:"index"`
	Name         string  `json:"name"`
	ID           string  `json:"id"`
	Cached       bool    `json:"cached"`
	Checkpointed bool    `json:"checkpointed,omitempty"`
	Origin       string  `json:"origin,omitempty"`
	Shadows      bool    `json:"replaces_builtin,omitempty"`
	Unvalidated  bool    `json:"options_unvalidated,omitempty"`
	Duration     float64 `json:"duration_seconds"`
	Prepare      float64 `json:"prepare_seconds,omitempty"`
	Setup        float64 `json:"setup_seconds,omitempty"`
	Commit       float64 `json:"commit_seconds,omitempty"`
	Log          string  `json:"log"`
	Error        string  `json:"error,omitempty"`
}

func stageJSON(r *pipeline.StageResult) stageJSONOut {
	out := stageJSONOut{
		Pipeline: r.Pipeline, Index: r.Index, Name: r.Name, ID: r.ID, Cached: r.Cached,
		Checkpointed: r.Checkpointed, Origin: r.Origin, Shadows: r.Shadows, Unvalidated: r.Unvalidated,
		Duration: r.Duration.Seconds(), Prepare: r.Prepare.Seconds(), Setup: r.Setup.Seconds(), Commit: r.Commit.Seconds(), Log: string(r.Log),
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	return out
}

func writeResultJSON(w io.Writer, res *pipeline.Result, runErr error) error {
	out := struct {
		Success     bool           `json:"success"`
		Error       string         `json:"error,omitempty"`
		TreeID      string         `json:"tree_id"`
		BuildID     string         `json:"build_id,omitempty"`
		AssemblerID string         `json:"assembler_id,omitempty"`
		Stages      []stageJSONOut `json:"stages"`
		Assembler   *stageJSONOut  `json:"assembler,omitempty"`
		Outputs     []string       `json:"outputs"`
	}{Success: runErr == nil, Stages: []stageJSONOut{}, Outputs: []string{}}
	if runErr != nil {
		out.Error = runErr.Error()
	}
	if res != nil {
		out.TreeID, out.BuildID, out.AssemblerID = res.TreeID, res.BuildID, res.AssemblerID
		for _, s := range res.Stages {
			out.Stages = append(out.Stages, stageJSON(s))
		}
		if res.Assembler != nil {
			a := stageJSON(res.Assembler)
			out.Assembler = &a
		}
		if res.Outputs != nil {
			out.Outputs = res.Outputs
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
