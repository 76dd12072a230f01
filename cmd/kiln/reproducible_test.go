package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// withAssembler returns the example manifest with its assembler replaced.
func withAssembler(t *testing.T, example string, assembler string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../examples", example))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if assembler != "" {
		m["pipeline"]["assembler"] = json.RawMessage(assembler)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return writeManifest(t, string(out))
}

// TestExamplesReproducible builds each example twice, each time in a
// store of its own (so nothing is cached), and checks that the outputs are
// byte-identical and that the real tools accept them.
func TestExamplesReproducible(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the examples own files as other users")
	}
	for _, tc := range []struct {
		name, manifest, output string
		check                  []string // a tool to run on the output ("%s" is its path)
	}{
		{"tar", withAssembler(t, "hello.json", ""), "root.tar.zst", []string{"tar", "-I", "zstd", "-tf"}},
		{"oci", withAssembler(t, "container.json", ""), "image.oci.tar", []string{"skopeo", "inspect", "oci-archive:"}},
		{"ext4", withAssembler(t, "hello.json", `{"name": "org.osbuild.rawfs", "options": {"filename": "root.ext4",
		  "root_fs_uuid": "6e4ff95f-f662-45ee-a82a-bdf44a2d0b75", "size": 67108864}}`), "root.ext4", []string{"e2fsck", "-fn"}},
		{"disk", withAssembler(t, "disk.json", ""), "disk.qcow2", []string{"qemu-img", "check"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := exec.LookPath(tc.check[0]); err != nil {
				t.Skipf("needs %s (installed by .ci/run)", tc.check[0])
			}
			var outputs [2][]byte
			for i := range outputs {
				out := t.TempDir()
				br, r := build(t, t.TempDir(), out, tc.manifest)
				if r.code != 0 || !br.Success {
					t.Fatalf("build %d: exit %d\n%s", i, r.code, r.stderr)
				}
				path := filepath.Join(out, tc.output)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				outputs[i] = b
				args := append([]string{}, tc.check[1:]...)
				if last := len(args) - 1; args[last] == "oci-archive:" {
					args[last] += path
				} else {
					args = append(args, path)
				}
				if o, err := exec.Command(tc.check[0], args...).CombinedOutput(); err != nil {
					t.Fatalf("%s %v: %v\n%s", tc.check[0], args, err, o)
				}
			}
			// qcow2 carries no timestamps, but it is not promised to be
			// reproducible; tar, OCI and ext4 are.
			if tc.name != "disk" && !bytes.Equal(outputs[0], outputs[1]) {
				t.Errorf("two builds of the same manifest gave different %s", tc.output)
			}
		})
	}
}
