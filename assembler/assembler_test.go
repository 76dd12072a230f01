package assembler

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/runtime/schema"
)

// lookup finds a built-in assembler by name.
func lookup(name string) (Assembler, bool) {
	for _, a := range Builtins() {
		if a.Name() == name {
			return a, true
		}
	}
	return nil, false
}

// Every built-in assembler's schema compiles and its metadata is filled
// in, and the list is sorted with each name once (runtime/registry
// refuses a duplicate name).
func TestBuiltins(t *testing.T) {
	all := Builtins()
	if len(all) < 2 {
		t.Fatalf("%d assemblers built in", len(all))
	}
	for i, a := range all {
		if i > 0 && all[i-1].Name() >= a.Name() {
			t.Errorf("Builtins: %s after %s: not sorted, or twice", a.Name(), all[i-1].Name())
		}
		if a.Summary() == "" || a.Version() == "" {
			t.Errorf("%s: empty summary or version", a.Name())
		}
		if _, err := schema.Compile("test:"+a.Name(), a.Schema()); err != nil {
			t.Errorf("%s: %v", a.Name(), err)
		}
	}
}

func TestNoopAndError(t *testing.T) {
	in := Input{Tree: t.TempDir(), Output: t.TempDir()}
	a, _ := lookup("org.osbuild.noop")
	if err := a.Assemble(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	e, _ := lookup("org.osbuild.error")
	in.Options = json.RawMessage(`{"returncode": 3}`)
	err := e.Assemble(t.Context(), in)
	if !errors.Is(err, ErrFailed) || err.Error() != "assembler failed: org.osbuild.error returns 3 on purpose" {
		t.Errorf("error assembler: %v", err)
	}
}

// TestValidateAtPlanTime (issue 11 item 9): what an assembler refuses in
// its options though its schema allows it is refused by Validate, which
// the plan calls before any stage runs, with the error Assemble gives.
func TestValidateAtPlanTime(t *testing.T) {
	const disk = `"filename": "d", "size": 33554432, "ptuuid": "0x14fc63d2", "root_fs_uuid": "9c6ae55b-cf88-45b8-84e8-64990759f39d"`
	const part = `"filename": "d", "size": 33554432, "format": "raw", "pttype": "dos", "ptuuid": "0x14fc63d2", "partitions": [{"start": 2048, "filesystem": {"type": %q, "uuid": "9c6ae55b-cf88-45b8-84e8-64990759f39d", "mountpoint": "/"}}]`
	tests := []struct {
		assembler, options, option string
	}{
		{"org.osbuild.qemu", `{"format": "raw", "bootloader": {"type": "zipl"}, ` + disk + `}`, "bootloader.type"},
		{"org.osbuild.qemu", `{"format": "raw", "bootloader": {"type": "grub2", "platform": "powerpc-ieee1275"}, ` + disk + `}`, "bootloader.platform"},
		{"org.osbuild.qemu", `{"format": "raw", "qcow2_compat": "1.1", ` + disk + `}`, "qcow2_compat"},
		{"org.osbuild.qemu", `{"format": "qcow2", "root_fs_type": "xfs", ` + disk + `}`, "root_fs_type"},
		{"org.osbuild.qemu", `{` + fmt.Sprintf(part, "btrfs") + `}`, "partitions[0].filesystem.type"},
		{"org.osbuild.qemu", `{` + fmt.Sprintf(part, "vfat") + `}`, "partitions[0].filesystem.uuid"},
		{"org.osbuild.qemu", `{` + fmt.Sprintf(part, "xfs") + `}`, "partitions[0].filesystem.type"},
		{"org.osbuild.rawfs", `{"filename": "fs", "size": 33554432, "root_fs_uuid": "9c6ae55b-cf88-45b8-84e8-64990759f39d", "fs_type": "xfs"}`, "fs_type"},
	}
	for _, tt := range tests {
		t.Run(tt.assembler+"/"+tt.option, func(t *testing.T) {
			a, _ := lookup(tt.assembler)
			v, ok := a.(Validator)
			if !ok {
				t.Fatalf("%s is no Validator", tt.assembler)
			}
			s, err := schema.Compile("test:"+a.Name(), a.Schema())
			if err != nil {
				t.Fatal(err)
			}
			if vs, err := s.Validate([]byte(tt.options)); err != nil || len(vs) != 0 {
				t.Fatalf("the schema refuses the case itself: %v %v", vs, err)
			}
			verr := v.Validate(json.RawMessage(tt.options))
			if !errors.Is(verr, ErrFailed) || !strings.Contains(verr.Error(), tt.option) {
				t.Fatalf("Validate = %v, want ErrFailed naming %s", verr, tt.option)
			}
			aerr := a.Assemble(t.Context(), Input{Tree: t.TempDir(), Output: t.TempDir(), Options: json.RawMessage(tt.options)})
			if aerr == nil || aerr.Error() != verr.Error() {
				t.Errorf("Assemble = %v, Validate = %v: want the same refusal", aerr, verr)
			}
		})
	}
}
