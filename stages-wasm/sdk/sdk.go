// Package sdk is the Go side of kiln's stage ABI (docs/stage-abi.md) for
// stages built with GOOS=wasip1 GOARCH=wasm.
//
// A stage is a WASI command: kiln runs it with the tree to build mounted at
// "/", its inputs read-only under "/run/kiln/", its options as JSON on stdin
// and its name in argv[0]. [Run] decodes those options into the stage's own
// struct type and calls the stage; an error the stage returns is printed to
// stderr as "<stage>: <error>" and the process exits 1, which fails the build
// with that message. [Register] and [Dispatch] link many stages into one
// module and pick one by argv[0], busybox-style. The host calls WASI cannot
// express (chmod, lchown, mknod, xattrs, lstat, utimens) are in this package
// too, in hostcalls*.go, and [OpenDecompressed], which has the host
// decompress an input for the stage to read.
package sdk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"syscall"
)

// Exit codes a stage built with this package ends with. kiln treats every
// non-zero code as failure and shows stderr; the distinction is for humans.
const (
	// ExitFailure is the code for an error the stage returned, including
	// options that do not decode.
	ExitFailure = 1
	// ExitUsage is the code for a multi-call module asked for a stage it
	// does not contain (see [Dispatch]).
	ExitUsage = 127
)

// Run runs a single-stage module: it decodes the options on stdin into a T
// (see [DecodeOptions]), calls fn with them and exits the process, with 0 if
// fn returned nil and [ExitFailure] after reporting the error otherwise.
// Run does not return.
func Run[T any](fn func(opts T) error) {
	os.Exit(run(Name(), os.Stdin, os.Stderr, fn))
}

// Name is the running stage's name: argv[0], as kiln sets it. It falls back
// to "stage" so that messages never start with an empty name.
func Name() string {
	if len(os.Args) == 0 || os.Args[0] == "" {
		return "stage"
	}
	// kiln passes the bare name; a path is tolerated for running a module
	// by hand under another WASI runtime.
	return path.Base(os.Args[0])
}

// run is Run without the process exit, so that tests can call it.
func run[T any](name string, stdin io.Reader, stderr io.Writer, fn func(opts T) error) int {
	var opts T
	if err := DecodeOptions(stdin, &opts); err != nil {
		return fail(stderr, name, err)
	}
	if err := fn(opts); err != nil {
		return fail(stderr, name, err)
	}
	return 0
}

// fail reports err the way every kiln stage does and returns the exit code.
func fail(stderr io.Writer, name string, err error) int {
	err = explainEIO(err, eioCause)
	// Nothing useful can be done if stderr itself fails: the exit code
	// still fails the stage.
	_, _ = fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return ExitFailure
}

// eioCause is EIOCause on wasip1; elsewhere (the SDK's own tests) nil.
var eioCause func() syscall.Errno

// explainEIO rewrites the "input/output error" in err's message as the
// host error cause reports behind the EIO, so that a full disk reads "write
// /etc/x: no space left on device", path included. The message is rewritten
// as text because fmt.Errorf fixes a wrapper's message when it is made; the
// result still wraps err.
func explainEIO(err error, cause func() syscall.Errno) error {
	if cause == nil || !errors.Is(err, syscall.EIO) {
		return err
	}
	real := cause()
	if real == 0 || real == syscall.EIO {
		return err
	}
	// Go's wasip1 spells errnos capitalized ("No space left on device");
	// kiln's own messages, from Linux, do not.
	msg := real.Error()
	msg = strings.ToLower(msg[:1]) + msg[1:]
	return &explained{err, strings.ReplaceAll(err.Error(), syscall.EIO.Error(), msg)}
}

type explained struct {
	err error
	msg string
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }
