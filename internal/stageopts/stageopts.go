// Package stageopts decodes a stage's or an assembler's options JSON
// strictly: exact member names, no unknown members, no duplicates. The Go
// SDK (inside wasip1 guests) and the host's assemblers share it so that both
// sides of kiln read options the same way the schema does. It imports
// nothing of kiln's and builds for any GOOS.
package stageopts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// ErrOption is wrapped by every error Decode returns for a member name the
// struct does not take exactly (unknown, spelled in another case or given
// twice), so tests and callers can tell it from malformed JSON.
var ErrOption = errors.New("bad option name")

// Decode decodes the JSON object in data into v, a pointer to an options
// struct.
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
// the option, e.g. `option "users.alice.ſize"`, that wraps [ErrOption].
func Decode(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	// Syntax and trailing data first, with encoding/json's own messages, so
	// that the walk below only meets well-formed JSON.
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("decoding options: %w", describe(err))
	}
	t := reflect.TypeOf(v)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := checkNames(dec, t, ""); err != nil {
		return fmt.Errorf("decoding options: %w", err)
	}
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
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

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// checkNames walks one JSON value from dec alongside the Go type t it will
// be decoded into, and refuses member names that are not exactly a field's
// json name and names given twice. t is nil where the type says nothing
// about names (any, json.RawMessage, a custom UnmarshalJSON, or a value whose
// JSON kind does not fit t, which the decoder reports afterwards); duplicates
// are still refused there. at is the option's path so far, for messages.
func checkNames(dec *json.Decoder, t reflect.Type, at string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	t = nameless(t)
	if delim == '[' {
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := checkNames(dec, elem, at+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = jsonFields(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name := tok.(string) // an object's keys are strings in valid JSON
		opt := name
		if at != "" {
			opt = at + "." + name
		}
		if seen[name] {
			return fmt.Errorf("option %q: given twice: %w", opt, ErrOption)
		}
		seen[name] = true
		next := elem
		if fields != nil {
			ft, ok := fields[name]
			if !ok {
				return unknownOption(opt, name, fields)
			}
			next = ft
		}
		if err := checkNames(dec, next, opt); err != nil {
			return err
		}
	}
	_, err = dec.Token() // '}'
	return err
}

// nameless dereferences pointers and returns nil for types whose member
// names checkNames cannot know.
func nameless(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	return t
}

// unknownOption is the error for a member no field is named exactly; a
// member encoding/json would have matched by case folding gets the field's
// real name as a hint, since it is the trick the exact match is there for.
func unknownOption(opt, name string, fields map[string]reflect.Type) error {
	for f := range fields {
		if strings.EqualFold(f, name) {
			return fmt.Errorf("option %q: no such option (names are matched exactly; the option is %q): %w", opt, f, ErrOption)
		}
	}
	return fmt.Errorf("option %q: no such option: %w", opt, ErrOption)
}

// jsonFields returns the member names encoding/json decodes into struct t,
// with each field's type, following its rules: the tag's name or else the
// field's, "-" skipped, unexported fields skipped, and the fields of an
// untagged embedded struct promoted unless a shallower field has the name
// (two at the same depth cancel out, as in encoding/json).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	type level struct {
		t     reflect.Type
		depth int
	}
	depthOf := map[string]int{}
	ambiguous := map[string]bool{}
	queue := []level{{t, 0}}
	visited := map[reflect.Type]bool{}
	for len(queue) > 0 {
		l := queue[0]
		queue = queue[1:]
		if visited[l.t] {
			continue
		}
		visited[l.t] = true
		for i := range l.t.NumField() {
			f := l.t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					queue = append(queue, level{et, l.depth + 1})
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if d, ok := depthOf[name]; ok {
				if d == l.depth {
					ambiguous[name] = true
				}
				continue
			}
			depthOf[name] = l.depth
			out[name] = ft
		}
	}
	for name := range ambiguous {
		delete(out, name)
	}
	return out
}
