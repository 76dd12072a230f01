package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DecodeOptions reads r (a stage's stdin) to the end and decodes the JSON
// object in it into v, a pointer to the stage's options struct.
//
// Empty input (only whitespace) means "no options" and leaves v untouched, so
// defaults set before the call survive. Unknown fields are ignored: kiln
// validates options against the stage's schema before the stage runs, and a
// newer manifest field must not break an older stage. Malformed JSON, a
// value of the wrong type or trailing data is an error naming the byte offset
// or the field.
func DecodeOptions(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading options from stdin: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding options: %w", describe(err))
	}
	return nil
}

// describe adds where the JSON went wrong to the errors encoding/json returns
// without it, keeping the original in the chain.
func describe(err error) error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Errorf("%w (at byte %d)", err, syntax.Offset)
	}
	return err
}
