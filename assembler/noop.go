package assembler

import (
	"context"
	"fmt"
)

// noop produces no output: a pipeline that only wants its tree (exported
// with --export) or only checks that its stages run.
type noop struct{}

func (noop) Name() string    { return "org.osbuild.noop" }
func (noop) Summary() string { return "Produce no output" }
func (noop) Version() string { return "1" }
func (noop) Schema() []byte  { return []byte(`{"type": "object", "additionalProperties": false}`) }
func (n noop) Assemble(ctx context.Context, in Input) error {
	if err := decode(in, n.Name(), &struct{}{}); err != nil {
		return err
	}
	return ctx.Err()
}

// failing fails on purpose, for testing what a build does when its
// assembler fails.
type failing struct{}

func (failing) Name() string    { return "org.osbuild.error" }
func (failing) Summary() string { return "Fail on purpose, for tests" }
func (failing) Version() string { return "1" }
func (failing) Schema() []byte {
	return []byte(`{"type": "object", "additionalProperties": false,
  "properties": {"returncode": {"type": "number", "default": 255, "description": "the code reported in the error"}}}`)
}

func (f failing) Assemble(_ context.Context, in Input) error {
	opts := struct {
		ReturnCode float64 `json:"returncode"`
	}{255}
	if err := decode(in, f.Name(), &opts); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s returns %v on purpose", ErrFailed, f.Name(), opts.ReturnCode)
}
