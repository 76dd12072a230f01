package library

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/kilnbuild/kiln/stages-wasm/internal/wasmmeta"
)

// modules holds the built .wasm files and a README.md that keeps the
// pattern valid when nothing is built.
//
//go:embed modules
var modules embed.FS

// ErrNotBuilt is returned when the binary was built without stage modules.
var ErrNotBuilt = errors.New("stage library not built: run make stages")

// ModuleStage is one stage a module describes in its kiln.stages section
// (the built-in library's or a user's --stage-path module): its name,
// schema and the module's bytes.
type ModuleStage struct {
	Name    string          // e.g. "org.osbuild.hostname"
	Summary string          // one line
	Schema  json.RawMessage // JSON Schema of the options
	// Module is the WASI command providing the stage. Stages of one
	// module share the same slice: do not modify it.
	Module       []byte
	ModuleDigest string // lowercase hex SHA-256 of Module
	ModuleName   string // file name, e.g. "kiln-stages.wasm"
}

var embedded = sync.OnceValues(func() ([]ModuleStage, error) {
	sub, err := fs.Sub(modules, "modules")
	if err != nil {
		return nil, err
	}
	return Load(sub)
})

// Stages returns the embedded library's stages sorted by name, or
// ErrNotBuilt.
func Stages() ([]ModuleStage, error) {
	return embedded()
}

// Lookup returns the embedded stage called name.
func Lookup(name string) (ModuleStage, bool) {
	stages, err := embedded()
	if err != nil {
		return ModuleStage{}, false
	}
	i, ok := slices.BinarySearchFunc(stages, name, func(s ModuleStage, n string) int { return strings.Compare(s.Name, n) })
	if !ok {
		return ModuleStage{}, false
	}
	return stages[i], true
}

// Load reads every *.wasm file at the top of fsys (a --stage-path
// directory, say) and returns the stages they describe, sorted by name. A
// module without a kiln.stages section, or two modules claiming one stage
// name, is an error naming the files. A directory without modules gives
// ErrNotBuilt.
func Load(fsys fs.FS) ([]ModuleStage, error) {
	names, err := fs.Glob(fsys, "*.wasm")
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, ErrNotBuilt
	}
	var stages []ModuleStage
	from := map[string]string{}
	for _, name := range names {
		wasm, err := readModule(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("stage module %s: %w", name, err)
		}
		metas, err := wasmmeta.Read(wasm)
		if err != nil {
			return nil, fmt.Errorf("stage module %s: %w", name, err)
		}
		sum := sha256.Sum256(wasm)
		digest := hex.EncodeToString(sum[:])
		for _, m := range metas {
			if other, dup := from[m.Name]; dup {
				return nil, fmt.Errorf("stage %s is provided by both %s and %s", m.Name, other, name)
			}
			from[m.Name] = name
			stages = append(stages, ModuleStage{
				Name: m.Name, Summary: m.Summary, Schema: m.Schema,
				Module: wasm, ModuleDigest: digest, ModuleName: path.Base(name),
			})
		}
	}
	slices.SortFunc(stages, func(a, b ModuleStage) int { return strings.Compare(a.Name, b.Name) })
	return stages, nil
}

// MaxModuleSize bounds a module file Load reads: the largest module of the
// library is a few MiB. (runtime/engine refuses larger modules too.)
const MaxModuleSize = 64 << 20

// ErrNotRegular is wrapped by the error for a module path that is not a
// regular file.
var ErrNotRegular = errors.New("not a regular file")

// readModule reads a module file of at most MaxModuleSize bytes. Its type is
// checked with Stat before the open, so a FIFO (whose open would block) or a
// device (whose open runs its driver) named x.wasm is refused without being
// opened; the open file is checked again, against a swap in between.
func readModule(fsys fs.FS, name string) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w (%s)", ErrNotRegular, fi.Mode().Type())
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w (%s)", ErrNotRegular, fi.Mode().Type())
	}
	if fi.Size() > MaxModuleSize {
		return nil, fmt.Errorf("%d bytes, over the limit of %d MiB", fi.Size(), MaxModuleSize>>20)
	}
	wasm, err := io.ReadAll(io.LimitReader(f, MaxModuleSize+1))
	if err != nil {
		return nil, err
	}
	if len(wasm) > MaxModuleSize {
		return nil, fmt.Errorf("over the limit of %d MiB", MaxModuleSize>>20)
	}
	return wasm, nil
}
