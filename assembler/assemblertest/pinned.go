package assemblertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Golden is the pinned-digests file: assembler name, then Version(), then
// case name.
type Golden map[string]map[string]map[string]Pin

// Pin is what one case of one assembler version writes for the fixed tree.
type Pin struct {
	Files map[string]string `json:"files"`           // name: sha256:HEX
	Tools map[string]string `json:"tools,omitempty"` // tool: its version line, as recorded
}

// Pinned assembles the fixed tree with every reproducible case of each
// config and compares the digests with the golden file, keyed by the
// assembler's name and Version():
//
//   - the same version with other bytes fails: the assembler's output
//     changed without a new Version(), so a store would serve the old
//     bytes for the new code; bump Version(), then run with -update;
//   - a version with no digests recorded fails too (run with -update);
//   - -update records digests for versions and cases not recorded yet,
//     and never rewrites a recorded one.
//
// Digests of cases that run host tools hold the tools' versions (e2fsprogs,
// xz, qemu-img write other bytes in other versions); where this host's
// differ, the case is skipped, naming both.
func Pinned(t *testing.T, golden string, configs []Config, update bool) {
	tree := filepath.Join(t.TempDir(), "tree")
	if !Tree(t, tree) {
		t.Skipf("the pinned tree needs real root (owners, a device node, an ACL); this is %s", describeTree(false))
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(tree, "ro"), 0o755) })
	g := Golden{}
	b, err := os.ReadFile(golden)
	if err == nil {
		err = json.Unmarshal(b, &g)
	}
	if err != nil && !(update && errors.Is(err, os.ErrNotExist)) {
		t.Fatalf("reading the pinned digests: %v", err)
	}
	changed := false
	for _, c := range configs {
		a := c.Assembler
		name, version := a.Name(), a.Version()
		t.Run(name, func(t *testing.T) {
			for _, cs := range c.Cases {
				if !cs.Reproducible {
					continue
				}
				t.Run(cs.Name, func(t *testing.T) {
					needTools(t, cs.Tools)
					tools := toolVersions(t, cs.Tools)
					_, got := Assemble(t, a, tree, cs)
					v, msg := g.check(name, version, cs.Name, Pin{Files: got, Tools: tools}, update)
					switch v {
					case skip:
						t.Skip(msg)
					case fail:
						t.Error(msg)
					case recorded:
						changed = true
						t.Log(msg)
					}
				})
			}
		})
	}
	if !changed {
		return
	}
	out, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(golden, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

type verdict int

const (
	same     verdict = iota // the recorded digests
	skip                    // recorded with other tool versions
	fail                    // other bytes, or nothing recorded
	recorded                // recorded now (-update)
)

// check compares what a case wrote with g's record for the assembler's
// name, version and case, recording it with update when there is none.
func (g Golden) check(name, version, cs string, got Pin, update bool) (verdict, string) {
	pin, ok := g[name][version][cs]
	switch {
	case ok && !maps.Equal(pin.Tools, got.Tools):
		return skip, fmt.Sprintf("digests of %s version %s were recorded with %v; this host has %v", name, version, pin.Tools, got.Tools)
	case ok && !maps.Equal(pin.Files, got.Files):
		return fail, fmt.Sprintf("%s (case %s): the output changed, but Version() is still %q (recorded %v, now %v).\n"+
			"Bump Version() of %s, then run go test ./assembler -run TestPinnedOutputs -update to record the new digest.",
			name, cs, version, pin.Files, got.Files, name)
	case ok:
		return same, ""
	case update:
		if g[name] == nil {
			g[name] = map[string]map[string]Pin{}
		}
		if g[name][version] == nil {
			g[name][version] = map[string]Pin{}
		}
		g[name][version][cs] = got
		return recorded, fmt.Sprintf("recorded %s version %s case %s: %v", name, version, cs, got.Files)
	}
	return fail, fmt.Sprintf("%s: Version() is %q, and no digest is recorded for it (case %s, output %v).\n"+
		"Run go test ./assembler -run TestPinnedOutputs -update to record it.", name, version, cs, got.Files)
}

// versionArgs is how each tool an assembler runs says its version.
var versionArgs = map[string][]string{
	"mkfs.ext4": {"-V"}, "debugfs": {"-V"}, "e2fsck": {"-V"},
	"qemu-img": {"--version"}, "xz": {"--version"},
	// mkfs.vfat has no version option; it names itself before failing on
	// a missing device, after the error on stderr.
	"mkfs.vfat": {"/nonexistent"}, "mcopy": {"--version"}, "mmd": {"--version"},
}

// versionPrefix is, for a tool whose version is not its first line, how
// the line starts.
var versionPrefix = map[string]string{"mkfs.vfat": "mkfs.fat "}

// toolVersions returns the first line each tool prints about its version.
func toolVersions(t *testing.T, tools []string) map[string]string {
	t.Helper()
	if len(tools) == 0 {
		return nil
	}
	v := map[string]string{}
	for _, tool := range slices.Sorted(slices.Values(tools)) {
		args, ok := versionArgs[tool]
		if !ok {
			t.Fatalf("no way to ask %s its version", tool)
		}
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil && len(out) == 0 {
			t.Fatalf("%s %v: %v", tool, args, err)
		}
		line, _, _ := bytes.Cut(out, []byte("\n"))
		if prefix, ok := versionPrefix[tool]; ok {
			for l := range strings.SplitSeq(string(out), "\n") {
				if strings.HasPrefix(l, prefix) {
					line = []byte(l)
					break
				}
			}
		}
		v[tool] = strings.TrimSpace(string(line))
	}
	return v
}
