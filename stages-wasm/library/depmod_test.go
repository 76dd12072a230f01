package library

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// depmodFiles are what kmod 30's depmod -a writes.
var depmodFiles = []string{
	"modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin",
	"modules.softdep", "modules.symbols", "modules.symbols.bin",
	"modules.builtin.bin", "modules.builtin.alias.bin", "modules.devname",
}

// TestDepmodStageRealKernel runs kiln.depmod in the engine on a real
// kernel's modules and depmod on a copy, and compares what they wrote:
// KILN_DEBIAN_TREE is a tree with /lib/modules/VERSION (a debootstrap, or
// a linux-image-*.deb unpacked with dpkg-deb -x).
func TestDepmodStageRealKernel(t *testing.T) {
	src := os.Getenv("KILN_DEBIAN_TREE")
	if src == "" {
		t.Skip("needs a tree with a Debian kernel's /lib/modules in KILN_DEBIAN_TREE")
	}
	if _, err := exec.LookPath("depmod"); err != nil {
		t.Skipf("needs depmod (Debian's kmod package): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the modules are root's and the copies must keep them so")
	}
	kvers, _ := filepath.Glob(filepath.Join(src, "lib/modules/*"))
	if len(kvers) == 0 {
		t.Skipf("%s has no lib/modules/VERSION", src)
	}
	kver := filepath.Base(kvers[0])
	copyModules := func() string {
		root := t.TempDir()
		dst := filepath.Join(root, "lib/modules")
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", kvers[0], dst+"/").CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		return root
	}
	stageTree, depmodTree := copyModules(), copyModules()
	start := time.Now()
	log := runStage(t, "kiln.depmod", stageTree, `{"kernels": ["`+kver+`"]}`)
	took := time.Since(start)
	start = time.Now()
	// depmod's configuration is the copy's depmod.d (none), not the host's.
	args := []string{"-b", depmodTree}
	for _, d := range []string{"/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d", "/lib/depmod.d"} {
		args = append(args, "-C", filepath.Join(depmodTree, d))
	}
	if out, err := exec.Command("depmod", append(args, kver)...).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v: %s", err, out)
	}
	t.Logf("kiln.depmod %v (engine, stage included), depmod %v; stage log:\n%s", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), log)
	for _, name := range depmodFiles {
		got, err := os.ReadFile(filepath.Join(stageTree, "lib/modules", kver, name))
		if err != nil {
			t.Errorf("kiln.depmod: %v", err)
			continue
		}
		want, err := os.ReadFile(filepath.Join(depmodTree, "lib/modules", kver, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, depmod's %d, not the same bytes", name, len(got), len(want))
		}
	}
}
