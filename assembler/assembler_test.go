package assembler

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/kilnbuild/kiln/runtime/schema"
)

// Every built-in assembler's schema compiles and its metadata is filled in.
func TestRegistry(t *testing.T) {
	if len(All()) < 2 {
		t.Fatalf("%d assemblers registered", len(All()))
	}
	for _, a := range All() {
		if a.Summary() == "" || a.Version() == "" {
			t.Errorf("%s: empty summary or version", a.Name())
		}
		if _, err := schema.Compile("test:"+a.Name(), a.Schema()); err != nil {
			t.Errorf("%s: %v", a.Name(), err)
		}
		if got, ok := Lookup(a.Name()); !ok || got.Name() != a.Name() {
			t.Errorf("Lookup(%s) = %v, %v", a.Name(), got, ok)
		}
	}
}

func TestNoopAndError(t *testing.T) {
	in := Input{Tree: t.TempDir(), Output: t.TempDir()}
	a, _ := Lookup("org.osbuild.noop")
	if err := a.Assemble(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	e, _ := Lookup("org.osbuild.error")
	in.Options = json.RawMessage(`{"returncode": 3}`)
	err := e.Assemble(t.Context(), in)
	if !errors.Is(err, ErrFailed) || err.Error() != "assembler failed: org.osbuild.error returns 3 on purpose" {
		t.Errorf("error assembler: %v", err)
	}
}
