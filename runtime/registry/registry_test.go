package registry

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kilnbuild/kiln/assembler"
	"github.com/kilnbuild/kiln/runtime/engine"
)

// TestStagePathSpecialFiles: a FIFO or a symlink to /dev/zero named x.wasm
// in --stage-path once hung kiln (the FIFO's open blocks) or filled its
// memory (/dev/zero never ends). Both must be refused at once, naming the
// file, without opening it; a directory named x.wasm likewise.
func TestStagePathSpecialFiles(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"fifo", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "a FIFO"},
		{"symlink to /dev/zero", func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, "a character device"},
		{"directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "x.wasm")
			tt.make(t, file)
			_, err := New([]string{dir})
			if !errors.Is(err, ErrStagePath) || !errors.Is(err, engine.ErrNotRegular) {
				t.Fatalf("New = %v, want ErrStagePath and ErrNotRegular", err)
			}
			if !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s as %s", err, file, tt.want)
			}
		})
	}
}

// TestStagePathModuleTooLarge: a sparse file over the module size limit is
// refused from its size, before it is read.
func TestStagePathModuleTooLarge(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "big.wasm")
	if err := os.WriteFile(file, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, engine.MaxModuleSize+1); err != nil {
		t.Fatal(err)
	}
	_, err := New([]string{dir})
	if !errors.Is(err, engine.ErrTooLarge) || !strings.Contains(err.Error(), "over the limit of 64 MiB") {
		t.Fatalf("New = %v, want ErrTooLarge saying the limit", err)
	}
}

// minimalWasm is the smallest module: enough for the registry, which
// reads metadata and does not compile.
var minimalWasm = []byte("\x00asm\x01\x00\x00\x00")

// withMeta returns minimalWasm with a kiln.stages section describing the
// stages named (the format of stages-wasm/internal/wasmmeta, written here
// by hand as that package is internal to stages-wasm).
func withMeta(t *testing.T, names ...string) []byte {
	t.Helper()
	var metas []map[string]any
	for _, n := range names {
		metas = append(metas, map[string]any{"name": n, "summary": "user " + n,
			"schema": json.RawMessage(`{"type": "object", "additionalProperties": false}`)})
	}
	payload, err := json.Marshal(metas)
	if err != nil {
		t.Fatal(err)
	}
	uleb := func(b []byte, v int) []byte {
		for {
			c := byte(v & 0x7f)
			if v >>= 7; v != 0 {
				b = append(b, c|0x80)
				continue
			}
			return append(b, c)
		}
	}
	body := append(uleb(nil, len("kiln.stages")), "kiln.stages"...)
	body = append(body, payload...)
	out := append(append([]byte(nil), minimalWasm...), 0)
	return append(uleb(out, len(body)), body...)
}

func writeModule(t *testing.T, dir, name string, wasm []byte) string {
	t.Helper()
	p := filepath.Join(dir, name+".wasm")
	if err := os.WriteFile(p, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// builtins is a built-in stage library of two stages and kiln's
// assemblers.
func builtins() Builtins {
	mod := engine.NewModule(minimalWasm)
	return Builtins{
		Stages: []BuiltinStage{
			{Name: "org.osbuild.a", Summary: "a", Schema: []byte(`{"type": "object"}`), Module: mod, ModuleName: "lib.wasm"},
			{Name: "org.osbuild.tar", Summary: "the stage", Schema: []byte(`{"type": "object"}`), Module: mod, ModuleName: "lib.wasm"},
		},
		Assemblers: assembler.Builtins(),
	}
}

// TestLookupStagesAndAssemblers (issue 11 item 2): stages and assemblers
// resolve through the one lookup, in two namespaces (org.osbuild.tar is
// both a stage and an assembler, as in osbuild); a name nothing provides
// wraps ErrUnknown and says which kind.
func TestLookupStagesAndAssemblers(t *testing.T) {
	r, err := NewFrom(builtins(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Lookup(Stage, "org.osbuild.tar")
	if err != nil || s.Kind != Stage || s.Module == nil || s.Assembler != nil || s.Summary != "the stage" {
		t.Errorf("Lookup(Stage, org.osbuild.tar) = %+v, %v: want the stage", s, err)
	}
	a, err := r.Lookup(Assembler, "org.osbuild.tar")
	if err != nil || a.Kind != Assembler || a.Assembler == nil || a.Module != nil || a.Assembler.Name() != "org.osbuild.tar" {
		t.Fatalf("Lookup(Assembler, org.osbuild.tar) = %+v, %v: want the assembler", a, err)
	}
	if sch, err := a.CompiledSchema(); err != nil || sch == nil {
		t.Errorf("the assembler's schema: %v, %v", sch, err)
	}
	if again, _ := r.Lookup(Assembler, "org.osbuild.tar"); again != a {
		t.Error("a second lookup gives another entry (its schema would be compiled again)")
	}
	if len(r.Entries(Assembler)) != len(assembler.Builtins()) || len(r.Entries(Stage)) != 2 {
		t.Errorf("entries: %d assemblers, %d stages", len(r.Entries(Assembler)), len(r.Entries(Stage)))
	}
	for _, tt := range []struct {
		kind       Kind
		name, want string
	}{
		{Stage, "org.osbuild.qemu", `unknown stage "org.osbuild.qemu" (kiln stages list shows the stages)`},
		{Assembler, "org.osbuild.a", `unknown assembler "org.osbuild.a" (kiln stages list shows the assemblers)`},
	} {
		if _, err := r.Lookup(tt.kind, tt.name); !errors.Is(err, ErrUnknown) || err.Error() != tt.want {
			t.Errorf("Lookup(%s, %s) = %v, want ErrUnknown: %s", tt.kind, tt.name, err, tt.want)
		}
	}
	none, err := NewFrom(Builtins{NoLibrary: errors.New("stage library not built: run make stages")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Lookup(Stage, "org.osbuild.a"); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "built without its stage library") {
		t.Errorf("without a library: %v", err)
	}
}

// TestUserStageShadowsBuiltin: a user stage of a built-in's name replaces
// it and says so; one of another name is added; a user stage named as an
// assembler is a stage and leaves the assembler alone.
func TestUserStageShadowsBuiltin(t *testing.T) {
	dir := t.TempDir()
	shadow := writeModule(t, dir, "org.osbuild.a", withMeta(t, "org.osbuild.a"))
	added := writeModule(t, dir, "my.stage", minimalWasm)
	writeModule(t, dir, "org.osbuild.qemu", withMeta(t, "org.osbuild.qemu"))
	r, err := NewFrom(builtins(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.Lookup(Stage, "org.osbuild.a")
	if err != nil || !e.User || !e.Shadows || e.ModuleName != shadow || e.Origin() != shadow || e.Summary != "user org.osbuild.a" {
		t.Errorf("shadowing stage: %+v, %v", e, err)
	}
	e, err = r.Lookup(Stage, "my.stage")
	if err != nil || !e.User || e.Shadows || e.ModuleName != added || e.Schema != nil {
		t.Fatalf("added stage: %+v, %v", e, err)
	}
	if s, err := e.CompiledSchema(); s != nil || err != nil {
		t.Errorf("a module without metadata has schema %v, %v: want none (options unvalidated)", s, err)
	}
	if e, err := r.Lookup(Stage, "org.osbuild.tar"); err != nil || e.User {
		t.Errorf("unshadowed built-in: %+v, %v", e, err)
	}
	if a, err := r.Lookup(Assembler, "org.osbuild.qemu"); err != nil || a.User || a.Assembler == nil {
		t.Errorf("the qemu assembler after a user stage of its name: %+v, %v", a, err)
	}
	if e, err := r.Lookup(Stage, "org.osbuild.qemu"); err != nil || !e.User || e.Shadows {
		t.Errorf("the user stage named as an assembler: %+v, %v", e, err)
	}
}

// TestRegistryRefuses: what must not resolve to whichever entry came last
// is refused when the registry is made, naming both sources: one stage in
// two --stage-path directories, a built-in of one kind twice, and a user
// module whose metadata describes stages other than the one its file is
// named for (it would run under another stage's schema).
func TestRegistryRefuses(t *testing.T) {
	dup := func(t *testing.T) (Builtins, []string, []string) {
		a, b := t.TempDir(), t.TempDir()
		pa, pb := writeModule(t, a, "x.y", minimalWasm), writeModule(t, b, "x.y", minimalWasm)
		return builtins(), []string{a, b}, []string{"stage x.y is provided by both", pa, pb}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) (Builtins, []string, []string)
		is    error
	}{
		{"one stage in two stage-path directories", dup, ErrStagePath},
		{"built-in stage twice", func(t *testing.T) (Builtins, []string, []string) {
			b := builtins()
			b.Stages = append(b.Stages, BuiltinStage{Name: "org.osbuild.a", Module: b.Stages[0].Module, ModuleName: "other.wasm"})
			return b, nil, []string{"built-in stage org.osbuild.a provided twice", "lib.wasm", "other.wasm"}
		}, ErrDuplicate},
		{"built-in assembler twice", func(t *testing.T) (Builtins, []string, []string) {
			b := builtins()
			b.Assemblers = append(b.Assemblers, b.Assemblers[0])
			return b, nil, []string{"built-in assembler " + b.Assemblers[0].Name() + " provided twice"}
		}, ErrDuplicate},
		{"metadata for another stage", func(t *testing.T) (Builtins, []string, []string) {
			dir := t.TempDir()
			p := writeModule(t, dir, "x.y", withMeta(t, "x.z", "x.w"))
			return builtins(), []string{dir}, []string{p, `is named for the stage "x.y" but its metadata describes x.z, x.w`}
		}, ErrStagePath},
		{"missing directory", func(t *testing.T) (Builtins, []string, []string) {
			dir := filepath.Join(t.TempDir(), "none")
			return builtins(), []string{dir}, []string{dir}
		}, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, path, want := tt.setup(t)
			_, err := NewFrom(b, path)
			if !errors.Is(err, tt.is) {
				t.Fatalf("NewFrom = %v, want %v", err, tt.is)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestDefaultBuiltins: New's built-ins are the embedded library's stages
// (when built) and every assembler of the assembler package.
func TestDefaultBuiltins(t *testing.T) {
	b, err := DefaultBuiltins()
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Assemblers) != len(assembler.Builtins()) {
		t.Errorf("%d assemblers, want %d", len(b.Assemblers), len(assembler.Builtins()))
	}
	if (b.NoLibrary == nil) == (len(b.Stages) == 0) {
		t.Errorf("%d stages with NoLibrary %v", len(b.Stages), b.NoLibrary)
	}
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range assembler.Builtins() {
		if _, err := r.Lookup(Assembler, a.Name()); err != nil {
			t.Errorf("New: %v", err)
		}
	}
}
