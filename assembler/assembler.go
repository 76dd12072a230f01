// Package assembler turns a finished tree into output files: a tarball, an
// OCI image, a filesystem or disk image. Assemblers are native Go (they are
// on the hot path and need no sandbox: they only read the tree). The
// pipeline hands an assembler the tree through a read-only bind mount, so a
// bug here cannot change the tree, and an empty output directory in the
// store's tmp/, which the pipeline commits to the store by rename once the
// assembler returns.
package assembler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kilnbuild/kiln/internal/stageopts"
)

// Assembler makes output files from a tree.
type Assembler interface {
	// Name is the manifest name, e.g. "org.osbuild.tar".
	Name() string
	// Summary is one line for kiln's listings.
	Summary() string
	// Version names the implementation: it changes whenever the same tree
	// and options would give different output, and it is part of the
	// assembler's id, so a changed assembler never serves stale output.
	Version() string
	// Schema is the JSON Schema of the options.
	Schema() []byte
	// Assemble writes the output into in.Output. On any error (bad
	// options, a cancelled ctx, a full disk) it leaves in.Output as it
	// found it; an error it returns because of the tree or the options
	// wraps ErrFailed, one about the output's filesystem wraps the errno
	// (ENOSPC, EROFS) instead. assemblertest.Run checks all of it.
	Assemble(ctx context.Context, in Input) error
}

// Input is what an assembler works from.
type Input struct {
	Tree    string          // the finished tree, read-only
	Output  string          // an empty directory to write the output into
	Options json.RawMessage // validated against Schema
	Epoch   int64           // SOURCE_DATE_EPOCH: clamp timestamps to it
}

// ErrFailed is wrapped by an assembler that fails on purpose or because of
// its input (not an I/O error).
var ErrFailed = errors.New("assembler failed")

// Validator is implemented by assemblers whose options need more than
// their schema to check (a value the schema allows but kiln refuses, such
// as qemu's bootloader, or options that depend on each other). The
// pipeline calls it when it makes the plan, so that such options are
// refused before any stage runs; Assemble checks them again. Validate
// returns what Assemble would return for the same options (an error
// wrapping ErrFailed that names the option), without touching any file.
type Validator interface {
	Validate(options json.RawMessage) error
}

// Builtins returns kiln's assemblers, sorted by name. It is a list and
// not a registry: runtime/registry resolves assembler names, beside the
// stages, through one lookup.
func Builtins() []Assembler {
	return []Assembler{failing{}, noop{}, ociArchive{}, qemu{}, rawfs{}, tarAssembler{}}
}

// decode reads the options into v exactly as a stage's are read
// (stageopts.Decode, which the Go SDK's DecodeOptions uses too): a member name must equal a field's json name byte
// for byte, and an unknown one is refused, so an assembler called without
// the schema takes no option the schema would refuse (encoding/json alone
// would ignore "bogus" and take "FILENAME" for "filename"). Errors name the
// option.
func decode(in Input, name string, v any) error {
	if len(in.Options) == 0 {
		return nil
	}
	err := stageopts.Decode(in.Options, v)
	if err == nil {
		return nil
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		return errOption(name, typ.Field, "%s is not a %s", typ.Value, typ.Type)
	}
	if errors.Is(err, stageopts.ErrOption) {
		// The message names the option already.
		return fmt.Errorf("%w: %s: %w", ErrFailed, name, err)
	}
	return fmt.Errorf("%w: %s: options: %w", ErrFailed, name, err)
}
