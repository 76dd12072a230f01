package sdk

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// stages is the multi-call table filled by Register before Dispatch runs.
var stages = map[string]func(stdin io.Reader, stderr io.Writer) int{}

// Register adds a stage to a multi-call module: when the module runs with
// argv[0] == name, [Dispatch] decodes the options into a T and calls fn, as
// [Run] would. Call it from init or main before Dispatch. Registering a name
// twice panics, since two stages cannot answer to one name.
func Register[T any](name string, fn func(opts T) error) {
	if name == "" {
		panic("sdk.Register: empty stage name")
	}
	if _, dup := stages[name]; dup {
		panic("sdk.Register: stage " + name + " registered twice")
	}
	stages[name] = func(stdin io.Reader, stderr io.Writer) int {
		return run(name, stdin, stderr, fn)
	}
}

// Dispatch runs the registered stage named by argv[0] and exits the process
// with its status. An unknown name exits [ExitUsage] after listing the
// stages the module does contain. Dispatch does not return.
func Dispatch() {
	os.Exit(dispatch(Name(), os.Stdin, os.Stderr))
}

func dispatch(name string, stdin io.Reader, stderr io.Writer) int {
	stage, ok := stages[name]
	if !ok {
		names := make([]string, 0, len(stages))
		for n := range stages {
			names = append(names, n)
		}
		slices.Sort(names)
		_, _ = fmt.Fprintf(stderr, "%s: no such stage in this module (it has: %s)\n",
			name, strings.Join(names, ", "))
		return ExitUsage
	}
	return stage(stdin, stderr)
}
