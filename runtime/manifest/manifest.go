// Package manifest reads kiln manifests: osbuild's v1 format, accepted
// unchanged. A manifest has a pipeline (an optional nested build pipeline
// with its runner, a list of stages, an optional assembler) and top-level
// sources. Parse checks the structure against the v1 schema and reports
// every violation with the file and the JSON path at fault; what a stage's
// options must look like is checked later, against that stage's schema.
package manifest

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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

// Load reads and parses the manifest in file; "-" reads standard input.
func Load(file string) (*Manifest, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return Parse(file, data)
}

// Parse parses a manifest. All structural problems are reported together,
// each as an *Error.
func Parse(file string, data []byte) (*Manifest, error) {
	if err := checkSyntax(file, data); err != nil {
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
	return &m, nil
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

// checkSyntax reports malformed JSON with its line and column.
func checkSyntax(file string, data []byte) error {
	var v any
	err := json.Unmarshal(data, &v)
	if err == nil {
		if _, ok := v.(map[string]any); !ok {
			return &Error{File: file, Path: "$", Msg: "a manifest is a JSON object"}
		}
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(data, se.Offset)
		return &Error{File: file, Path: fmt.Sprintf("line %d, column %d", line, col), Msg: "malformed JSON: " + se.Error()}
	}
	return &Error{File: file, Path: "$", Msg: "malformed JSON: " + err.Error()}
}

func position(data []byte, offset int64) (line, col int) {
	before := string(data[:min(int(offset), len(data))])
	line = strings.Count(before, "\n") + 1
	col = len(before) - strings.LastIndex(before, "\n")
	return line, col
}
