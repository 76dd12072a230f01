// Package registry finds the module that provides each stage: the stage
// library built into kiln, and the user's own stages from --stage-path
// directories, where DIR/NAME.wasm provides the stage NAME. A user stage
// replaces a built-in stage of the same name (the build says so); a user
// module without a kiln.stages section runs with its options unvalidated
// (the build says so too).
package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/pipeline"
	"github.com/kilnbuild/kiln/runtime/schema"
	"github.com/kilnbuild/kiln/stages-wasm/library"
)

// ErrStagePath is wrapped by errors about a --stage-path directory or the
// modules in it: the user's input, not kiln's.
var ErrStagePath = errors.New("--stage-path")

// Entry is one stage a Registry knows.
type Entry struct {
	Name    string
	Summary string
	Schema  []byte // nil for a user stage without metadata
	Module  *engine.Module
	// ModuleName is the built-in module's file name, or the user
	// module's path.
	ModuleName string
	User       bool
	Shadows    bool

	once     sync.Once
	compiled *schema.Schema
	err      error
}

// Origin is where the stage comes from, for messages.
func (e *Entry) Origin() string {
	if e.User {
		return e.ModuleName
	}
	return "built-in"
}

// Registry resolves stage names. It is safe for concurrent use.
type Registry struct {
	entries map[string]*Entry
}

// New loads the built-in library and the user stages in stagePath.
// Without a built-in library (kiln built without `make stages`) only user
// stages are available, and looking up a built-in name says why.
func New(stagePath []string) (*Registry, error) {
	r := &Registry{entries: map[string]*Entry{}}
	builtin, err := library.Stages()
	if err != nil && !errors.Is(err, library.ErrNotBuilt) {
		return nil, err
	}
	modules := map[string]*engine.Module{} // one per digest, shared by its stages
	for _, s := range builtin {
		mod := modules[s.ModuleDigest]
		if mod == nil {
			mod = engine.NewModuleWithDigest(s.Module, s.ModuleDigest)
			modules[s.ModuleDigest] = mod
		}
		r.entries[s.Name] = &Entry{Name: s.Name, Summary: s.Summary, Schema: s.Schema, Module: mod, ModuleName: s.ModuleName}
	}
	for _, dir := range stagePath {
		if err := r.addUserDir(dir); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrStagePath, dir, err)
		}
	}
	return r, nil
}

func (r *Registry) addUserDir(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%w", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".wasm")
		// A FIFO or a link to /dev/zero named x.wasm must neither
		// block kiln nor fill its memory.
		wasm, err := engine.ReadRegularFile(file, engine.MaxModuleSize)
		if err != nil {
			return fmt.Errorf("stage module: %w", err)
		}
		e := &Entry{Name: name, Module: engine.NewModule(wasm), ModuleName: file, User: true}
		stages, err := library.ReadModule(file, wasm)
		switch {
		case errors.Is(err, library.ErrNoMetadata):
			e.Summary = "user stage (no metadata: options are not validated)"
		case err != nil:
			return fmt.Errorf("stage module %s: %w", file, err)
		default:
			i := slices.IndexFunc(stages, func(s library.Stage) bool { return s.Name == name })
			if i < 0 {
				var names []string
				for _, s := range stages {
					names = append(names, s.Name)
				}
				return fmt.Errorf("%s is named for the stage %q but its metadata describes %s", file, name, strings.Join(names, ", "))
			}
			e.Summary, e.Schema = stages[i].Summary, stages[i].Schema
		}
		if old, ok := r.entries[name]; ok {
			if old.User {
				return fmt.Errorf("stage %s is provided by both %s and %s", name, old.ModuleName, file)
			}
			e.Shadows = true
		}
		r.entries[name] = e
	}
	return nil
}

// Lookup implements pipeline.Stages.
func (r *Registry) Lookup(name string) (*pipeline.StageInfo, error) {
	e, ok := r.entries[name]
	if !ok {
		if _, err := library.Stages(); errors.Is(err, library.ErrNotBuilt) {
			return nil, fmt.Errorf("%w %q: this kiln was built without its stage library (%w)", pipeline.ErrUnknownStage, name, err)
		}
		return nil, fmt.Errorf("%w %q (kiln stages list shows the stages)", pipeline.ErrUnknownStage, name)
	}
	s, err := e.schema()
	if err != nil {
		return nil, err
	}
	return &pipeline.StageInfo{Name: name, Module: e.Module, Schema: s, Origin: e.Origin(), Shadows: e.Shadows}, nil
}

func (e *Entry) schema() (*schema.Schema, error) {
	if e.Schema == nil {
		return nil, nil
	}
	e.once.Do(func() {
		e.compiled, e.err = schema.Compile("kiln:stage/"+e.Name, e.Schema)
		if e.err != nil {
			e.err = fmt.Errorf("stage %s from %s: its schema: %w", e.Name, e.Origin(), e.err)
		}
	})
	return e.compiled, e.err
}

// Get returns the entry for name.
func (r *Registry) Get(name string) (*Entry, bool) {
	e, ok := r.entries[name]
	return e, ok
}

// Entries returns every stage, sorted by name.
func (r *Registry) Entries() []*Entry {
	out := make([]*Entry, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}
