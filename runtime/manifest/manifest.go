// Package manifest reads kiln manifests: osbuild's v1 format, accepted
// unchanged. A manifest has a pipeline (an optional nested build pipeline
// with its runner, a list of stages, an optional assembler) and top-level
// sources. Parse checks the structure against the v1 schema and reports
// every violation with the file and the JSON path at fault; what a stage's
// options must look like is checked later, against that stage's schema.
//
// Parse is stricter than JSON decoding, because what Go's decoder lets
// pass would make the manifest mean something else than it says: a key
// given twice (the decoder keeps the last, a reader may see the first),
// invalid UTF-8 or a lone surrogate escape in a string (both silently
// become U+FFFD), a number no stage can decode (1e400), and a manifest
// with nothing to build ({} once built nothing and exited 0).
package manifest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kilnbuild/kiln/runtime/schema"
)

// ErrInvalid is wrapped by every error about a manifest's content.
var ErrInvalid = errors.New("invalid manifest")

// Error is one problem in a manifest, located by a JSON path such as
// $.pipeline.stages[2].name.
type Error struct {
	File string // as given to Parse; "-" is standard input
	Path string
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s: %s", displayName(e.File), e.Path, e.Msg)
}

func (e *Error) Unwrap() error { return ErrInvalid }

func displayName(file string) string {
	if file == "-" {
		return "<stdin>"
	}
	return file
}

// Manifest is a parsed manifest.
type Manifest struct {
	Pipeline Pipeline                   `json:"pipeline"`
	Sources  map[string]json.RawMessage `json:"sources,omitempty"`
}

// Pipeline is a list of stages run one after another on one tree, with an
// optional build pipeline whose tree the stages see read-only, and an
// optional assembler that turns the finished tree into output files.
type Pipeline struct {
	Build     *Build  `json:"build,omitempty"`
	Stages    []Stage `json:"stages,omitempty"`
	Assembler *Stage  `json:"assembler,omitempty"`
}

// Build is a nested build pipeline. kiln needs no runner (stages are
// WebAssembly, not host programs); the runner is kept so that the manifest
// round-trips and is part of no id.
type Build struct {
	Pipeline Pipeline `json:"pipeline"`
	Runner   string   `json:"runner"`
}

// Stage is one step of a pipeline (or its assembler).
type Stage struct {
	Name    string          `json:"name"`
	Options json.RawMessage `json:"options,omitempty"`
	// Path is where the stage stands in its manifest, e.g.
	// $.pipeline.build.pipeline.stages[0]; errors about it start there.
	Path string `json:"-"`
}

//go:embed manifest-v1.schema.json
var v1Schema []byte

var compiled = func() *schema.Schema {
	s, err := schema.Compile("kiln:manifest-v1.json", v1Schema)
	if err != nil {
		panic(err) // the embedded schema is part of the program
	}
	return s
}()

// maxSize bounds what Load reads; tests lower it.
var maxSize int64 = 256 << 20

// Load reads and parses the manifest in file; "-" reads standard input.
func Load(file string) (*Manifest, error) {
	var data []byte
	var err error
	in := os.Stdin
	if file != "-" {
		// A directory is a wrong argument, not an I/O error; FIFOs stay
		// allowed, for kiln build <(osbuild-mpp ...).
		if st, serr := os.Stat(file); serr == nil && st.IsDir() {
			return nil, &Error{File: file, Path: "$", Msg: "is a directory, not a manifest file"}
		}
		if in, err = os.Open(file); err != nil {
			return nil, fmt.Errorf("reading manifest: %w", err)
		}
		defer in.Close()
	}
	// Bounded, so that /dev/zero is an error rather than all memory.
	data, err = io.ReadAll(io.LimitReader(in, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if int64(len(data)) > maxSize {
		return nil, &Error{File: file, Path: "$", Msg: fmt.Sprintf("larger than %d MiB, more than any manifest needs", maxSize>>20)}
	}
	return Parse(file, data)
}

// Parse parses a manifest. All structural problems are reported together,
// each as an *Error.
func Parse(file string, data []byte) (*Manifest, error) {
	if err := checkSyntax(file, data); err != nil {
		return nil, err
	}
	if err := checkVersion(file, data); err != nil {
		return nil, err
	}
	vs, err := compiled.Validate(data)
	if err != nil {
		return nil, &Error{File: file, Path: "$", Msg: err.Error()}
	}
	if len(vs) > 0 {
		errs := make([]error, len(vs))
		for i, v := range vs {
			errs[i] = &Error{File: file, Path: v.PathString("$"), Msg: v.Message}
		}
		return nil, errors.Join(errs...)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &Error{File: file, Path: "$", Msg: err.Error()}
	}
	m.Pipeline.setPaths("$.pipeline")
	if len(m.Pipeline.Stages) == 0 && m.Pipeline.Assembler == nil {
		path := "$.pipeline"
		if !bytes.Contains(data, []byte(`"pipeline"`)) {
			path = "$"
		}
		return nil, &Error{File: file, Path: path, Msg: "nothing to build: a manifest needs a pipeline with stages or an assembler"}
	}
	return &m, nil
}

// checkVersion refuses a manifest with a "version" key before the v1
// schema sees it: osbuild v1 has none, and the schema's answer to an
// osbuild v2 manifest ("additional properties 'version', 'pipelines' not
// allowed") says neither what the file is nor what to do about it.
func checkVersion(file string, data []byte) error {
	var top struct {
		Version json.RawMessage `json:"version"`
	}
	// Not an object: the schema says so, in its own words.
	if json.Unmarshal(data, &top) != nil || top.Version == nil {
		return nil
	}
	var v string
	if json.Unmarshal(top.Version, &v) != nil {
		v = "" // osbuild's versions are strings; 2 is not "2"
	}
	msg := fmt.Sprintf("manifest format version %s: kiln reads osbuild v1 manifests, which have no \"version\" key", top.Version)
	switch v {
	case "2":
		msg = `this is an osbuild v2 manifest ("version": "2", "pipelines"); kiln reads osbuild v1 manifests ` +
			`only, v2 is not supported yet. A v1 manifest has no "version" and one "pipeline" with "stages", ` +
			`an optional "assembler" and an optional nested "build" pipeline; osbuild-mpp writes v1 from a ` +
			`pre-processor file without "version" (or with "version": "1")`
	case "1":
		msg = `an osbuild v1 manifest has no "version" key (osbuild's v1 schema refuses it too): remove it`
	}
	return &Error{File: file, Path: "$.version", Msg: msg}
}

func (p *Pipeline) setPaths(prefix string) {
	if p.Build != nil {
		p.Build.Pipeline.setPaths(prefix + ".build.pipeline")
	}
	for i := range p.Stages {
		p.Stages[i].Path = fmt.Sprintf("%s.stages[%d]", prefix, i)
	}
	if p.Assembler != nil {
		p.Assembler.Path = prefix + ".assembler"
	}
}

// maxDepth bounds nesting, as encoding/json's Unmarshal does.
const maxDepth = 10000

// checkSyntax reports malformed JSON with its line and column, and what
// decodes but is ambiguous (duplicate keys, invalid UTF-8, lone
// surrogates) with its JSON path.
func checkSyntax(file string, data []byte) error {
	var stack []*frame
	path := func(withKey bool) string {
		var p []string
		for i, f := range stack {
			last := i == len(stack)-1
			switch {
			case f.array:
				p = append(p, strconv.Itoa(f.index))
			case !last || withKey:
				p = append(p, f.key)
			}
		}
		return schema.FormatPath("$", p)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	prev, done := int64(0), false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) > 0 {
				line, col := position(data, int64(len(data)))
				return &Error{File: file, Path: fmt.Sprintf("line %d, column %d", line, col), Msg: "malformed JSON: unexpected end of JSON input"}
			}
			if !done {
				return &Error{File: file, Path: "$", Msg: "malformed JSON: no value"}
			}
			return nil
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				line, col := position(data, se.Offset)
				return &Error{File: file, Path: fmt.Sprintf("line %d, column %d", line, col), Msg: "malformed JSON: " + se.Error()}
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				line, col := position(data, int64(len(data)))
				return &Error{File: file, Path: fmt.Sprintf("line %d, column %d", line, col), Msg: "malformed JSON: unexpected end of input"}
			}
			return &Error{File: file, Path: "$", Msg: "malformed JSON: " + err.Error()}
		}
		raw := data[prev:dec.InputOffset()]
		prev = dec.InputOffset()
		if done {
			return &Error{File: file, Path: "$", Msg: "malformed JSON: data after the manifest's object"}
		}
		if len(stack) == 0 {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return &Error{File: file, Path: "$", Msg: "a manifest is a JSON object"}
			}
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			done = len(stack) == 0
			if len(stack) > 0 {
				stack[len(stack)-1].advance()
			}
			continue
		}
		if top != nil && !top.array && top.isKey {
			key := tok.(string)
			if err := checkString(raw); err != "" {
				// The key as written: the decoded one has U+FFFD.
				lit := raw[bytes.IndexByte(raw, '"'):]
				return &Error{File: file, Path: path(false), Msg: fmt.Sprintf("key %q: %s", lit[1:len(lit)-1], err)}
			}
			top.key, top.isKey = key, false
			if top.keys[key] {
				return &Error{File: file, Path: path(true), Msg: fmt.Sprintf("duplicate key %s", strconv.Quote(key))}
			}
			top.keys[key] = true
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			if len(stack) >= maxDepth {
				return &Error{File: file, Path: path(true), Msg: fmt.Sprintf("nested more than %d deep", maxDepth)}
			}
			stack = append(stack, &frame{array: t == '[', isKey: t == '{', keys: map[string]bool{}})
			continue
		case string:
			if err := checkString(raw); err != "" {
				return &Error{File: file, Path: path(true), Msg: err}
			}
		}
		if top != nil {
			top.advance()
		}
	}
}

// frame is an object or array being read by checkSyntax.
type frame struct {
	array bool
	index int             // of the array element being read
	key   string          // of the object member being read
	isKey bool            // the next token of an object is a key
	keys  map[string]bool // seen so far
}

// advance moves past a finished element or member.
func (f *frame) advance() {
	if f.array {
		f.index++
	} else {
		f.isKey = true
	}
}

// checkString checks the raw bytes of a string token (with what precedes
// it since the last token) for invalid UTF-8 and for \u escapes of lone
// surrogates, which encoding/json turns into U+FFFD without a word.
func checkString(raw []byte) string {
	i := bytes.IndexByte(raw, '"')
	if i < 0 {
		return ""
	}
	lit := raw[i:]
	if !utf8.Valid(lit) {
		return "invalid UTF-8 in a string"
	}
	for i := 0; i < len(lit); i++ {
		if lit[i] != '\\' {
			continue
		}
		i++
		if i >= len(lit) || lit[i] != 'u' {
			continue
		}
		r := hex4(lit[i+1:])
		i += 4
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return "a lone surrogate (\\u" + strconv.FormatInt(int64(r), 16) + ") in a string"
		case r >= 0xd800 && r <= 0xdbff:
			if len(lit) < i+7 || lit[i+1] != '\\' || lit[i+2] != 'u' {
				return "a lone surrogate (\\u" + strconv.FormatInt(int64(r), 16) + ") in a string"
			}
			if lo := hex4(lit[i+3:]); lo < 0xdc00 || lo > 0xdfff {
				return "a lone surrogate (\\u" + strconv.FormatInt(int64(r), 16) + ") in a string"
			}
			i += 6
		}
	}
	return ""
}

func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	if err != nil {
		return -1
	}
	return rune(n)
}
func position(data []byte, offset int64) (line, col int) {
	before := string(data[:min(int(offset), len(data))])
	line = strings.Count(before, "\n") + 1
	col = len(before) - strings.LastIndex(before, "\n")
	return line, col
}
