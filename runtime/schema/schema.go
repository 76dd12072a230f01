// Package schema validates JSON values (manifests, stage and assembler
// options) against JSON Schemas and reports each violation with the JSON
// path of the offending value, so that an error can say exactly which
// option of which stage is wrong and what was expected.
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema is a compiled JSON Schema, safe for concurrent use.
type Schema struct{ s *jsonschema.Schema }

// Compile compiles the schema document raw; url names it in errors.
func Compile(url string, raw []byte) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", url, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("schema %s: %w", url, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", url, err)
	}
	return &Schema{s}, nil
}

// Violation is one way a value breaks its schema.
type Violation struct {
	Path    []string // location of the offending value, outermost first
	Message string   // what was expected
}

// PathString renders the location from prefix, e.g. prefix
// "$.pipeline.stages[2].options" and path ["users","alice","uid"] give
// `$.pipeline.stages[2].options.users.alice.uid`.
func (v Violation) PathString(prefix string) string { return FormatPath(prefix, v.Path) }

// FormatPath renders a JSON location: object keys as .key (or ["key"] when
// not an identifier), array indices as [n].
func FormatPath(prefix string, path []string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, p := range path {
		if _, err := strconv.Atoi(p); err == nil {
			fmt.Fprintf(&b, "[%s]", p)
		} else if isIdent(p) {
			b.WriteString("." + p)
		} else {
			fmt.Fprintf(&b, "[%q]", p)
		}
	}
	return b.String()
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

var printer = message.NewPrinter(language.English)

// Validate checks raw (JSON) against the schema and returns the violations,
// deepest first within each branch; none means valid.
func (s *Schema) Validate(raw []byte) ([]Violation, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	err = s.s.Validate(v)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, err
	}
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, Violation{Path: slices.Clone(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out, nil
}

// Canonical returns raw re-encoded with sorted object keys and no
// insignificant whitespace; numbers are kept exactly as written. Equal
// options in any formatting give equal bytes, which stage ids rely on.
func Canonical(raw []byte) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return []byte("{}"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
