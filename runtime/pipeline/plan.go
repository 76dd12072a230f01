package pipeline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kilnbuild/kiln/assembler"
	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/manifest"
	"github.com/kilnbuild/kiln/runtime/schema"
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
// the option at fault.
func NewPlan(file string, m *manifest.Manifest, stages Stages, epoch int64) (*Plan, error) {
	return newPlan(file, &m.Pipeline, stages, strconv.FormatInt(epoch, 10))
}

// The epoch is part of every id: stages see it as their clock (the users
// stage writes its day into /etc/shadow) and assemblers clamp timestamps
// to it, so a result made at one epoch must not serve another.
func newPlan(file string, p *manifest.Pipeline, stages Stages, epoch string) (*Plan, error) {
	plan := &Plan{}
	if p.Build != nil {
		b, err := newPlan(file, &p.Build.Pipeline, stages, epoch)
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
		opts, err := checkOptions(file, ms, fmt.Sprintf("stage %d (%s)", i, ms.Name), info.Schema)
		if err != nil {
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
