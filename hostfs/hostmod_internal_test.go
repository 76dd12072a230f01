package hostfs

import (
	"context"
	"slices"
	"testing"

	"github.com/tetratelabs/wazero"
)

// TestHostFuncsErrnoShape checks the one shape of the kiln_hostfs exports:
// each is declared with its parameters and one i32 "errno" result, and
// each, called through the errnoFunc adapter with no mount table in the
// context, stores ENOTCAPABLE as that result before it reads a parameter
// or touches guest memory.
func TestHostFuncsErrnoShape(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	if _, err := Instantiate(ctx, r); err != nil {
		t.Fatal(err)
	}
	defs := r.Module(ModuleName).ExportedFunctionDefinitions()
	if len(defs) != len(hostFuncs) {
		t.Errorf("%d exports, want %d", len(defs), len(hostFuncs))
	}
	// A guest with one page of memory and nothing else, for the adapter's
	// api.Module.
	guest, err := r.Instantiate(ctx, []byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hostFuncs {
		def, ok := defs[h.name]
		if !ok {
			t.Errorf("%s: not exported", h.name)
			continue
		}
		if !slices.Equal(def.ParamTypes(), h.params) || !slices.Equal(def.ParamNames(), h.names) {
			t.Errorf("%s: params %v %v, want %v %v", h.name, def.ParamTypes(), def.ParamNames(), h.params, h.names)
		}
		if !slices.Equal(def.ResultNames(), []string{"errno"}) || !slices.Equal(def.ResultTypes(), []uint8{i32}) {
			t.Errorf("%s: results %v %v, want one i32 errno", h.name, def.ResultNames(), def.ResultTypes())
		}
		stack := make([]uint64, len(h.params))
		stack[0] = 0xdead
		h.fn.goModuleFunc()(ctx, guest, stack)
		if stack[0] != uint64(wasiENOTCAPABLE) {
			t.Errorf("%s without mounts stored %#x, want %d (ENOTCAPABLE)", h.name, stack[0], wasiENOTCAPABLE)
		}
	}
}
