package sdk

import (
	"fmt"
	"io"

	"github.com/kilnbuild/kiln/internal/stageopts"
)

// ErrOption is wrapped by every error DecodeOptions returns for a member
// name the stage does not take exactly (unknown, spelled in another case or
// given twice), so tests and callers can tell it from malformed JSON.
var ErrOption = stageopts.ErrOption

// DecodeOptions reads r (a stage's stdin) to the end and decodes the JSON
// object in it into v, a pointer to the stage's options struct.
//
// Empty input (only whitespace) means "no options" and leaves v untouched, so
// defaults set before the call survive. Decoding is exact, unlike
// encoding/json's: a member name must equal a field's json name byte for byte
// (encoding/json would also take "SIZE", or "ſize" with U+017F, for "size"),
// a member the struct has no field for is an error, and so is a name given
// twice in one object, maps included (encoding/json keeps the last). kiln
// validates options against the stage's schema, and a schema and a decoder
// that read the same bytes differently let a value the schema refused reach
// the stage. Malformed JSON, a value of the wrong type or trailing data is an
// error naming the byte offset or the field; a bad name is an error naming
// the option, e.g. `option "users.alice.ſize"`, that wraps [ErrOption]. The
// assemblers decode their options with the same code (internal/stageopts).
func DecodeOptions(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading options from stdin: %w", err)
	}
	return stageopts.Decode(data, v)
}
