// Package cli holds kiln's cobra commands. Each command is one file and one
// constructor; RunE only turns flags into options and calls the library
// packages (store, runtime, assembler), so the logic stays testable without
// cobra.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1 // a build step, a store check or an I/O operation failed
	exitUsage   = 2 // bad flags, arguments or manifest
)

// usageError marks an error as the caller's fault (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCodeError lets a command choose its exit code after printing its own
// report (fsck prints the problems, then exits 1 without a second message).
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// New returns kiln's root command.
func New() *cobra.Command {
	root := &cobra.Command{
		Use:   "kiln",
		Short: "Build OS and container images from a declarative manifest",
		Long: `kiln builds operating-system and container images from a declarative
manifest. Each build stage is a WebAssembly (WASI) program that runs in a
sandbox with no network and no view of the host, so a stage behaves the same
on every machine. Finished trees live in a content-addressed object store,
so unchanged stages are never run twice.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newVersionCmd(), newBuildCmd(), newInspectCmd(), newStagesCmd(), newStoreCmd(), newDebCmd())
	return root
}

// Main runs kiln with args and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	return Run(ctx, args, os.Stdout, os.Stderr)
}

// Run is Main with its output streams given, for tests.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := New()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ec exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	fmt.Fprintf(stderr, "kiln: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return exitUsage
	}
	return exitFailure
}
