// Package schema validates JSON values (manifests, stage and assembler
// options) against JSON Schemas and reports each violation with the JSON
// path of the offending value, so that an error can say exactly which
// option of which stage is wrong and what was expected.
//
// A schema must be self-contained: a $ref (or $schema) naming anything
// but the schema document itself or a JSON Schema draft's metaschema is
// refused when the schema is compiled. A user stage's schema is written by
// the stage's author, and the loader jsonschema uses by default opens
// files, so such a $ref could make kiln read a host file or block on a
// FIFO.
//
// Numbers are checked for what a stage can decode, beyond JSON Schema:
// a value whose schema type is "integer" must be written as an integer
// (1, not 1.0 or 1e0, which Go's and serde's integer decoding refuse) and
// fit in 64 bits, and no number may lie outside a 64-bit float's range
// (1e400 decodes nowhere).
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
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
	refused := &noLoader{}
	c.UseLoader(refused)
	c.RegisterVocabulary(strictNumbers)
	c.AssertVocabs()
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("schema %s: %w", url, err)
	}
	s, err := c.Compile(url)
	if len(refused.urls) > 0 {
		// jsonschema's errors do not unwrap to the loader's.
		return nil, fmt.Errorf("schema %s: %w to %s: a schema must be self-contained (kiln loads no file or URL for it)", url, ErrExternalRef, refused.urls[0])
	}
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
	// Checked first: the validator works on big.Rat, which a huge
	// exponent makes slow.
	if out := checkRange(v, nil, nil); len(out) > 0 {
		return out, nil
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
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// ErrExternalRef is wrapped by the error of Compile for a schema whose
// $ref or $schema names a file or a URL outside the schema.
var ErrExternalRef = errors.New("external reference")

// noLoader refuses every document the compiler asks for: the schema
// itself is added as a resource and the drafts' metaschemas are built
// into jsonschema, so anything it asks for is external.
type noLoader struct{ urls []string }

func (l *noLoader) Load(url string) (any, error) {
	l.urls = append(l.urls, url)
	return nil, fmt.Errorf("%w to %s", ErrExternalRef, url)
}

// maxExponent bounds the decimal exponent of a number: beyond it a
// 64-bit float is infinite or zero, and big.Rat, which the validator
// uses, takes time that grows with it.
const maxExponent = 400

// checkRange reports numbers no stage can decode as what they say.
func checkRange(v any, path []string, out []Violation) []Violation {
	switch v := v.(type) {
	case json.Number:
		if !finite(string(v)) {
			out = append(out, Violation{Path: slices.Clone(path), Message: fmt.Sprintf("%s is out of the range of a 64-bit float", truncate(string(v)))})
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = checkRange(v[k], append(path, k), out)
		}
	case []any:
		for i, e := range v {
			out = checkRange(e, append(path, strconv.Itoa(i)), out)
		}
	}
	return out
}

func finite(n string) bool {
	if i := strings.IndexAny(n, "eE"); i >= 0 {
		e, err := strconv.Atoi(strings.TrimPrefix(n[i+1:], "+"))
		if err != nil || e > maxExponent || e < -maxExponent {
			return false
		}
	}
	_, err := strconv.ParseFloat(n, 64)
	return err == nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// strictNumbers is kiln's vocabulary: it adds to every schema whose type
// is "integer" (and not also "number") the check that the value is
// written as an integer and fits in an int64.
var strictNumbers = &jsonschema.Vocabulary{
	URL: "https://kiln.build/vocab/strict-numbers",
	Compile: func(_ *jsonschema.CompilerContext, obj map[string]any) (jsonschema.SchemaExt, error) {
		var types []string
		switch t := obj["type"].(type) {
		case string:
			types = []string{t}
		case []any:
			for _, e := range t {
				if s, ok := e.(string); ok {
					types = append(types, s)
				}
			}
		}
		if slices.Contains(types, "integer") && !slices.Contains(types, "number") {
			return strictInteger{}, nil
		}
		return nil, nil
	},
}

var integerRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

type strictInteger struct{}

func (strictInteger) Validate(ctx *jsonschema.ValidatorContext, v any) {
	n, ok := v.(json.Number)
	if !ok {
		return
	}
	if !integerRE.MatchString(string(n)) {
		// 1.5 fails the type keyword; 1.0 and 1e3 pass it, and are
		// refused here.
		if isInt(string(n)) {
			ctx.AddError(&integerKind{got: string(n), msg: "write an integer without fraction or exponent (stages decode it as an integer)"})
		}
		return
	}
	if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
		ctx.AddError(&integerKind{got: string(n), msg: "out of the range of a 64-bit integer"})
	}
}

func isInt(n string) bool {
	if !finite(n) {
		return false
	}
	var r big.Rat
	if _, ok := r.SetString(n); !ok {
		return false
	}
	return r.IsInt()
}

type integerKind struct{ got, msg string }

func (k *integerKind) KeywordPath() []string { return []string{"type"} }

func (k *integerKind) LocalizedString(*message.Printer) string {
	return fmt.Sprintf("%s: %s", truncate(k.got), k.msg)
}
