package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kilnbuild/kiln/assembler"
	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/runtime/registry"
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

// PlannedStage is a stage of the manifest (manifest.Stage) once planned:
// its module resolved and its id computed.
type PlannedStage struct {
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

// Plan is a manifest with every stage resolved and every id computed, and
// everything else the run needs that the ids depend on or refer to: the
// epoch the ids cover, the sources the stages name, and the stages the
// checkpoints and exports select. Run takes all of it from the plan, so a
// run cannot use an epoch or a selection other than the one planned.
type Plan struct {
	Build     *Plan // nil without a build pipeline
	Runner    string
	Stages    []PlannedStage
	Assembler *Assembler
	// BuildID is the id of the build pipeline's tree ("" for none), and
	// TreeID the id of this pipeline's tree (its last stage; "" if empty).
	BuildID, TreeID string

	// The rest is set on the top-level plan only.

	// File names the manifest ("-": standard input), and Manifest is it.
	File     string
	Manifest *manifest.Manifest
	// Epoch is SOURCE_DATE_EPOCH: every id covers it, and the stages and
	// the assembler run at it.
	Epoch int64
	// Sources are the manifest's sources.
	Sources []sources.File
	// Checkpoints and Exports are the selectors the plan was made with.
	Checkpoints, Exports []string

	keep    map[string]bool // ids to commit: checkpoints and exports
	exports []string        // ids to export, in selector order
}

// PlanConfig is what a plan is made with besides the manifest.
type PlanConfig struct {
	Epoch int64 // SOURCE_DATE_EPOCH
	// Checkpoints name stages to commit: an id (or a prefix of at least 8
	// hex digits), a stage name, or a glob over names.
	Checkpoints []string
	// Exports name trees to copy to the output directory, as checkpoints
	// do.
	Exports []string
}

// NewPlan resolves and validates every stage of m and its assembler
// through reg and computes the ids for a build at cfg.Epoch. Problems with
// the manifest wrap manifest.ErrInvalid and name the stage's JSON path,
// index and name, and the option at fault; the assembler's options are
// checked by the assembler too (assembler.Validator), so what it would
// refuse is refused before any stage runs. The manifest's sources section
// is parsed, and a stage whose options name a source (by its checksum)
// the section lacks is refused here, rather than failing when it runs. A
// checkpoint or export that selects no stage wraps ErrNoMatch.
func NewPlan(file string, m *manifest.Manifest, reg *registry.Registry, cfg PlanConfig) (*Plan, error) {
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
	plan, err := newPlan(file, &m.Pipeline, reg, strconv.FormatInt(cfg.Epoch, 10), known)
	if err != nil {
		return nil, err
	}
	plan.File, plan.Manifest, plan.Epoch, plan.Sources = file, m, cfg.Epoch, files
	if err := plan.selectCommits(cfg.Checkpoints, cfg.Exports); err != nil {
		return nil, err
	}
	return plan, nil
}

// baseDir is what file: sources are relative to: the manifest's
// directory, none for standard input.
func (p *Plan) baseDir() string {
	if p.File == "-" || p.File == "" {
		return ""
	}
	return filepath.Dir(p.File)
}

// The epoch is part of every id: stages see it as their clock (the users
// stage writes its day into /etc/shadow) and assemblers clamp timestamps
// to it, so a result made at one epoch must not serve another.
func newPlan(file string, p *manifest.Pipeline, reg *registry.Registry, epoch string, known map[string]bool) (*Plan, error) {
	plan := &Plan{}
	if p.Build != nil {
		b, err := newPlan(file, &p.Build.Pipeline, reg, epoch, known)
		if err != nil {
			return nil, err
		}
		plan.Build, plan.Runner, plan.BuildID = b, p.Build.Runner, b.TreeID
	}
	var errs []error
	base := ""
	for i, ms := range p.Stages {
		what := fmt.Sprintf("stage %d (%s)", i, ms.Name)
		e, err := reg.Lookup(registry.Stage, ms.Name)
		if err != nil {
			errs = append(errs, &manifest.Error{File: file, Path: ms.Path + ".name", Msg: fmt.Sprintf("%s: %v", what, err)})
			continue
		}
		s, err := e.CompiledSchema()
		if err != nil {
			// A user module's schema is the user's input.
			errs = append(errs, &manifest.Error{File: file, Path: ms.Path + ".name", Msg: fmt.Sprintf("%s: %v", what, err)})
			continue
		}
		info := &StageInfo{Name: e.Name, Module: e.Module, Schema: s, Origin: e.Origin(), Shadows: e.Shadows}
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
		plan.Stages = append(plan.Stages, PlannedStage{Stage: ms, Index: i, ID: id, Info: info, options: opts})
		base = id
	}
	plan.TreeID = base
	if a := p.Assembler; a != nil {
		pa, err := planAssembler(file, a, reg, plan, epoch)
		if err != nil {
			var me *manifest.Error
			if !errors.As(err, &me) {
				return nil, err
			}
			errs = append(errs, err)
		}
		plan.Assembler = pa
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return plan, nil
}

func planAssembler(file string, a *manifest.Stage, reg *registry.Registry, plan *Plan, epoch string) (*Assembler, error) {
	what := "assembler " + a.Name
	e, err := reg.Lookup(registry.Assembler, a.Name)
	if err != nil {
		return nil, &manifest.Error{File: file, Path: a.Path + ".name", Msg: err.Error()}
	}
	s, err := e.CompiledSchema()
	if err != nil {
		return nil, err
	}
	opts, err := checkOptions(file, *a, what, s)
	if err != nil {
		return nil, err
	}
	impl := e.Assembler
	if v, ok := impl.(assembler.Validator); ok {
		if err := v.Validate(opts); err != nil {
			return nil, &manifest.Error{File: file, Path: a.Path + ".options",
				Msg: fmt.Sprintf("%s: %s", what, strings.TrimPrefix(err.Error(), assembler.ErrFailed.Error()+": "+a.Name+": "))}
		}
	}
	id := hashID("kiln-assembler-v1", a.Name, impl.Version(), plan.BuildID, plan.TreeID, string(opts), epoch)
	return &Assembler{Stage: *a, ID: id, Impl: impl, options: opts}, nil
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

// CanonicalOptions returns the stage's options as canonical JSON, as the stage
// receives them.
func (s *PlannedStage) CanonicalOptions() []byte { return s.options }
