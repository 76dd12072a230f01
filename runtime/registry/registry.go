// Package registry resolves the names a manifest uses: its stages and its
// assembler, through one lookup. Stages come from the stage library built
// into kiln and from the user's --stage-path directories, where
// DIR/NAME.wasm provides the stage NAME; assemblers are kiln's built-in Go
// assemblers (assembler.Builtins). A user stage replaces a built-in stage
// of the same name (the build says so); a user module without a
// kiln.stages section runs with its options unvalidated (the build says so
// too). Stages and assemblers are two namespaces, as in osbuild, where
// org.osbuild.tar is both.
package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/kilnbuild/kiln/assembler"
	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/runtime/schema"
	"github.com/kilnbuild/kiln/stages-wasm/library"
)

// ErrStagePath is wrapped by errors about a --stage-path directory or the
// modules in it: the user's input, not kiln's.
var ErrStagePath = errors.New("--stage-path")

// ErrUnknown is wrapped by Lookup's error for a name nothing provides.
var ErrUnknown = errors.New("unknown")

// ErrDuplicate is wrapped by New's error when two built-ins of one kind
// share a name: kiln's own mistake, which must not resolve to whichever
// came last.
var ErrDuplicate = errors.New("provided twice")

// Kind is what an entry provides.
type Kind int

const (
	Stage Kind = iota
	Assembler
)

func (k Kind) String() string {
	if k == Assembler {
		return "assembler"
	}
	return "stage"
}

// Entry is one stage or assembler a Registry knows.
type Entry struct {
	Kind    Kind
	Name    string
	Summary string
	Schema  []byte // nil for a user stage without metadata
	// Module provides a stage; Assembler is an assembler. An entry has
	// exactly one of them, as its Kind says.
	Module    *engine.Module
	Assembler assembler.Assembler
	// ModuleName is the built-in module's file name, or the user
	// module's path; "built-in" for an assembler.
	ModuleName string
	User       bool
	Shadows    bool

	once     sync.Once
	compiled *schema.Schema
	err      error
}

// Origin is where the entry comes from, for messages.
func (e *Entry) Origin() string {
	if e.User {
		return e.ModuleName
	}
	return "built-in"
}

// CompiledSchema is the entry's options schema, compiled once; nil (and
// no error) for a user stage without one.
func (e *Entry) CompiledSchema() (*schema.Schema, error) {
	if e.Schema == nil {
		return nil, nil
	}
	e.once.Do(func() {
		e.compiled, e.err = schema.Compile("kiln:"+e.Kind.String()+"/"+e.Name, e.Schema)
		if e.err != nil {
			e.err = fmt.Errorf("%s %s from %s: its schema: %w", e.Kind, e.Name, e.Origin(), e.err)
		}
	})
	return e.compiled, e.err
}

// Registry resolves stage and assembler names. It is safe for concurrent
// use: it is not changed after New returns.
type Registry struct {
	entries [2]map[string]*Entry // by Kind
	// noLibrary says why there are no built-in stages (nil if there are).
	noLibrary error
}

// Builtins is what a Registry starts from before the user's stages.
type Builtins struct {
	Stages     []BuiltinStage
	Assemblers []assembler.Assembler
	// NoLibrary, if set, says why Stages is empty; looking up a stage
	// name then says it too.
	NoLibrary error
}

// BuiltinStage is a stage that comes with kiln.
type BuiltinStage struct {
	Name, Summary string
	Schema        []byte
	Module        *engine.Module
	ModuleName    string
}

// New loads kiln's built-ins (the embedded stage library and the
// assemblers) and the user stages in stagePath. Without a built-in library
// (kiln built without `make stages`) only user stages are available, and
// looking up a built-in name says why.
func New(stagePath []string) (*Registry, error) {
	b, err := DefaultBuiltins()
	if err != nil {
		return nil, err
	}
	return NewFrom(b, stagePath)
}

// DefaultBuiltins is kiln's own stages and assemblers.
func DefaultBuiltins() (Builtins, error) {
	b := Builtins{Assemblers: assembler.Builtins()}
	lib, err := library.Stages()
	if errors.Is(err, library.ErrNotBuilt) {
		b.NoLibrary = err
	} else if err != nil {
		return b, err
	}
	modules := map[string]*engine.Module{} // one per digest, shared by its stages
	for _, s := range lib {
		mod := modules[s.ModuleDigest]
		if mod == nil {
			mod = engine.NewModuleWithDigest(s.Module, s.ModuleDigest)
			modules[s.ModuleDigest] = mod
		}
		b.Stages = append(b.Stages, BuiltinStage{Name: s.Name, Summary: s.Summary, Schema: s.Schema, Module: mod, ModuleName: s.ModuleName})
	}
	return b, nil
}

// NewFrom is New with the built-ins given, so that tests and programs
// embedding kiln resolve their own stages and assemblers the same way.
func NewFrom(b Builtins, stagePath []string) (*Registry, error) {
	r := &Registry{entries: [2]map[string]*Entry{{}, {}}, noLibrary: b.NoLibrary}
	for _, s := range b.Stages {
		if s.Module == nil {
			return nil, fmt.Errorf("built-in stage %s: no module", s.Name)
		}
		e := &Entry{Kind: Stage, Name: s.Name, Summary: s.Summary, Schema: s.Schema, Module: s.Module, ModuleName: s.ModuleName}
		if err := r.addBuiltin(e); err != nil {
			return nil, err
		}
	}
	for _, a := range b.Assemblers {
		e := &Entry{Kind: Assembler, Name: a.Name(), Summary: a.Summary(), Schema: a.Schema(), Assembler: a, ModuleName: "built-in"}
		if err := r.addBuiltin(e); err != nil {
			return nil, err
		}
	}
	for _, dir := range stagePath {
		if err := r.addUserDir(dir); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrStagePath, dir, err)
		}
	}
	return r, nil
}

func (r *Registry) addBuiltin(e *Entry) error {
	if e.Name == "" {
		return fmt.Errorf("built-in %s with an empty name", e.Kind)
	}
	m := r.entries[e.Kind]
	if old, ok := m[e.Name]; ok {
		return fmt.Errorf("built-in %s %s %w (%s and %s)", e.Kind, e.Name, ErrDuplicate, old.ModuleName, e.ModuleName)
	}
	m[e.Name] = e
	return nil
}

func (r *Registry) addUserDir(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%w", err)
	}
	stages := r.entries[Stage]
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".wasm")
		// A FIFO or a link to /dev/zero named x.wasm must neither
		// block kiln nor fill its memory.
		wasm, err := engine.ReadRegularFile(file, engine.MaxModuleSize)
		if err != nil {
			return fmt.Errorf("stage module: %w", err)
		}
		e := &Entry{Kind: Stage, Name: name, Module: engine.NewModule(wasm), ModuleName: file, User: true}
		metas, err := library.ModuleStages(file, wasm)
		switch {
		case errors.Is(err, library.ErrNoMetadata):
			e.Summary = "user stage (no metadata: options are not validated)"
		case err != nil:
			return fmt.Errorf("stage module %s: %w", file, err)
		default:
			// The file's name says which stage it provides; a module
			// describing others would run under a schema not its own.
			i := slices.IndexFunc(metas, func(s library.ModuleStage) bool { return s.Name == name })
			if i < 0 {
				var names []string
				for _, s := range metas {
					names = append(names, s.Name)
				}
				return fmt.Errorf("%s is named for the stage %q but its metadata describes %s", file, name, strings.Join(names, ", "))
			}
			e.Summary, e.Schema = metas[i].Summary, metas[i].Schema
		}
		if old, ok := stages[name]; ok {
			if old.User {
				return fmt.Errorf("stage %s is provided by both %s and %s", name, old.ModuleName, file)
			}
			e.Shadows = true
		}
		stages[name] = e
	}
	return nil
}

// Lookup returns the stage or assembler called name. The error for a name
// nothing provides wraps ErrUnknown and says where to look.
func (r *Registry) Lookup(kind Kind, name string) (*Entry, error) {
	if kind != Stage && kind != Assembler {
		return nil, fmt.Errorf("registry: lookup of %q: no kind %d", name, int(kind))
	}
	if e, ok := r.entries[kind][name]; ok {
		return e, nil
	}
	if kind == Stage && r.noLibrary != nil {
		return nil, fmt.Errorf("%w stage %q: this kiln was built without its stage library (%w)", ErrUnknown, name, r.noLibrary)
	}
	return nil, fmt.Errorf("%w %s %q (kiln stages list shows the %ss)", ErrUnknown, kind, name, kind)
}

// Entries returns every entry of kind, sorted by name.
func (r *Registry) Entries(kind Kind) []*Entry {
	if kind != Stage && kind != Assembler {
		return nil
	}
	out := make([]*Entry, 0, len(r.entries[kind]))
	for _, e := range r.entries[kind] {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}
