package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestPackageBoundaries keeps the layers apart: the store knows nothing of
// wasm or the CLI, hostfs nothing of the CLI or the store's pipeline, the
// assemblers nothing of the runtime that drives them. hostfs shares with the
// store only the copy-on-write tree state (store/cowtree: which inodes a
// hardlinked tree shares with its base, and the journal of what a stage
// touched) and the tree-copy code a copy-up uses (with the parallel
// directory walk it is built on, store/internal/parwalk), never objects,
// refs or commits.
func TestPackageBoundaries(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden []string
		allowed   []string // exceptions beneath a forbidden prefix
	}{
		{"github.com/kilnbuild/kiln/store/...", []string{"github.com/spf13/cobra", "github.com/tetratelabs/wazero", "github.com/kilnbuild/kiln/runtime"}, nil},
		{"github.com/kilnbuild/kiln/hostfs", []string{"github.com/spf13/cobra", "github.com/kilnbuild/kiln/runtime", "github.com/kilnbuild/kiln/store"},
			[]string{"github.com/kilnbuild/kiln/store/cowtree", "github.com/kilnbuild/kiln/store/treecopy", "github.com/kilnbuild/kiln/store/internal/parwalk", "github.com/kilnbuild/kiln/store/crashpoint"}},
		{"github.com/kilnbuild/kiln/assembler", []string{"github.com/spf13/cobra", "github.com/tetratelabs/wazero", "github.com/kilnbuild/kiln/runtime"}, nil},
		{"github.com/kilnbuild/kiln/runtime/...", []string{"github.com/spf13/cobra"}, nil},
	} {
		out, err := exec.Command("go", "list", "-deps", tc.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if slices.Contains(tc.allowed, dep) {
				continue
			}
			for _, f := range tc.forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s", tc.pkg, dep)
				}
			}
		}
	}
}
