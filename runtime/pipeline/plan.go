package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kilnbuild/kiln/assembler"
	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/runtime/schema"
	"github.com/kilnbuild/kiln/runtime/sources"
)

// StageInfo is the module that provides a stage.
type StageInfo struct {
	Name   string
	Module *engine.Module
	// Schema validates the stage's options; nil when the module carries
	// none, and the stage then runs with its options unvalidated.
	Schema *schema.Schema
	// Origin is "built-in" or the path of a user's .wasm file.
	Origin string
	// Shadows is set for a user stage that replaces a built-in stage of
	// the same name.
	Shadows bool
}

// Stages finds the module that provides a stage.
type Stages interface {
	Lookup(name string) (*StageInfo, error)
}

// ErrUnknownStage is returned by Stages.Lookup for a name nothing provides.
var ErrUnknownStage = errors.New("unknown stage")

// Stage is one planned stage.
type Stage struct {
	manifest.Stage
	Index   int    // within its pipeline
	ID      string // lowercase hex
	Info    *StageInfo
	options []byte // canonical JSON
}

// Assembler is the planned assembler.
type Assembler struct {
	manifest.Stage
	ID      string
	Impl    assembler.Assembler
	options []byte
}

// Plan is a manifest with every stage resolved and every id computed.
type Plan struct {
	Build     *Plan // nil without a build pipeline
	Runner    string
	Stages    []Stage
	Assembler *Assembler
	// BuildID is the id of the build pipeline's tree ("" for none), and
	// TreeID the id of this pipeline's tree (its last stage; "" if empty).
	BuildID, TreeID string
}

// NewPlan resolves and validates every stage of m and computes the ids for
// a build at SOURCE_DATE_EPOCH epoch. Problems with the manifest wrap
// manifest.ErrInvalid and name the stage's JSON path, index and name, and
// the option at fault. The manifest's sources section is parsed too, and
// a stage whose options name a source (by its checksum) the section lacks
// is refused here, rather than failing when it runs.
func NewPlan(file string, m *manifest.Manifest, stages Stages, epoch int64) (*Plan, error) {
	files, err := sources.Parse(m.Sources)
	if err != nil {
		var pe *sources.ParseError
		if errors.As(err, &pe) {
			return nil, &manifest.Error{File: file, Path: pe.Path, Msg: pe.Err.Error()}
		}
		return nil, &manifest.Error{File: file, Path: "$.sources", Msg: err.Error()}
	}
	known := make(map[string]bool, len(files))
	for _, f := range files {
		known[f.Checksum] = true
	}
	return newPlan(file, &m.Pipeline, stages, strconv.FormatInt(epoch, 10), known)
}

// The epoch is part of every id: stages see it as their clock (the users
// stage writes its day into /etc/shadow) and assemblers clamp timestamps
// to it, so a result made at one epoch must not serve another.
func newPlan(file string, p *manifest.Pipeline, stages Stages, epoch string, known map[string]bool) (*Plan, error) {
	plan := &Plan{}
	if p.Build != nil {
		b, err := newPlan(file, &p.Build.Pipeline, stages, epoch, known)
		if err != nil {
			return nil, err
		}
		plan.Build, plan.Runner, plan.BuildID = b, p.Build.Runner, b.TreeID
	}
	var errs []error
	base := ""
	for i, ms := range p.Stages {
		info, err := stages.Lookup(ms.Name)
		if err != nil {
			errs = append(errs, &manifest.Error{File: file, Path: ms.Path + ".name",
				Msg: fmt.Sprintf("stage %d (%s): %v", i, ms.Name, err)})
			continue
		}
		what := fmt.Sprintf("stage %d (%s)", i, ms.Name)
		opts, err := checkOptions(file, ms, what, info.Schema)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := checkSources(file, ms, what, opts, known); err != nil {
			errs = append(errs, err)
			continue
		}
		id := hashID("kiln-stage-v1", ms.Name, info.Module.Digest(), plan.BuildID, base, string(opts), epoch)
		plan.Stages = append(plan.Stages, Stage{Stage: ms, Index: i, ID: id, Info: info, options: opts})
		base = id
	}
	plan.TreeID = base
	if a := p.Assembler; a != nil {
		impl, ok := assembler.Lookup(a.Name)
		if !ok {
			errs = append(errs, &manifest.Error{File: file, Path: a.Path + ".name",
				Msg: fmt.Sprintf("unknown assembler %q (kiln stages list shows the assemblers)", a.Name)})
		} else if s, err := schema.Compile("kiln:assembler/"+a.Name, impl.Schema()); err != nil {
			return nil, fmt.Errorf("assembler %s: %w", a.Name, err)
		} else if opts, err := checkOptions(file, *a, "assembler "+a.Name, s); err != nil {
			errs = append(errs, err)
		} else {
			id := hashID("kiln-assembler-v1", a.Name, impl.Version(), plan.BuildID, plan.TreeID, string(opts), epoch)
			plan.Assembler = &Assembler{Stage: *a, ID: id, Impl: impl, options: opts}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return plan, nil
}

// checkOptions validates a stage's options and returns them canonical.
func checkOptions(file string, ms manifest.Stage, what string, s *schema.Schema) ([]byte, error) {
	opts, err := schema.Canonical(ms.Options)
	if err != nil {
		return nil, &manifest.Error{File: file, Path: ms.Path + ".options", Msg: err.Error()}
	}
	if s == nil {
		return opts, nil
	}
	vs, err := s.Validate(opts)
	if err != nil {
		return nil, &manifest.Error{File: file, Path: ms.Path + ".options", Msg: err.Error()}
	}
	if len(vs) == 0 {
		return opts, nil
	}
	msgs := make([]string, len(vs))
	for i, v := range vs {
		msgs[i] = fmt.Sprintf("%s: %s", v.PathString(ms.Path+".options"), v.Message)
	}
	return nil, &manifest.Error{File: file, Path: ms.Path + ".options",
		Msg: fmt.Sprintf("%s: bad options:\n  %s", what, strings.Join(msgs, "\n  "))}
}

// checkSources refuses options that name a source the manifest lacks. A
// stage names a source by its checksum (org.osbuild.untar's "source",
// kiln.copy's files[].source, a path under /run/kiln/sources): every
// checksum in a string of the options, key or value, counts, as at run
// time the stage sees the sources whose checksums its options contain.
func checkSources(file string, ms manifest.Stage, what string, opts []byte, known map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(opts))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return &manifest.Error{File: file, Path: ms.Path + ".options", Msg: err.Error()}
	}
	var missing []string
	var walk func(v any, path []string)
	walk = func(v any, path []string) {
		switch v := v.(type) {
		case string:
			for _, sum := range sources.Checksums(v) {
				if !known[sum] {
					missing = append(missing, fmt.Sprintf("%s names source %s", schema.FormatPath(ms.Path+".options", path), sum))
				}
			}
		case []any:
			for i, e := range v {
				walk(e, append(slices.Clip(path), strconv.Itoa(i)))
			}
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				p := append(slices.Clip(path), k)
				for _, sum := range sources.Checksums(k) {
					if !known[sum] {
						missing = append(missing, fmt.Sprintf("%s names source %s", schema.FormatPath(ms.Path+".options", p), sum))
					}
				}
				walk(v[k], p)
			}
		}
	}
	walk(v, nil)
	if len(missing) == 0 {
		return nil
	}
	return &manifest.Error{File: file, Path: ms.Path + ".options",
		Msg: fmt.Sprintf("%s: the manifest's sources (%s) lack what its options name:\n  %s", what, sources.FilesType, strings.Join(missing, "\n  "))}
}

// hashID hashes length-prefixed fields, so no two field lists share an id.
func hashID(fields ...string) string {
	h := sha256.New()
	for _, f := range fields {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Options returns the stage's options as canonical JSON, as the stage
// receives them.
func (s *Stage) CanonicalOptions() []byte { return s.options }
