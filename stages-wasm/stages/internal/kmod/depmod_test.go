package kmod

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/stages-wasm/stages/internal/initramfs"
)

func decompress(kind string, data []byte) ([]byte, error) {
	return initramfs.DecompressModule("module."+kind, data)
}

// synthModule is one module of a synthetic tree: C compiled with gcc -c
// into an ELF relocatable object laid out as depmod reads a kernel
// module: .modinfo strings, exported symbols (in __ksymtab_strings, or
// as __crc_ symbols with modversions), undefined symbols it needs, and a
// __versions table.
type synthModule struct {
	path     string   // under lib/modules/VERSION
	modinfo  []string // key=value
	exports  []string
	needs    []string
	crcs     bool     // exports as __crc_ symbols (CONFIG_MODVERSIONS)
	versions []string // __versions entries
	compress string   // "", "xz" or "zst"
	garbage  bool     // not ELF at all
}

func (m synthModule) source() string {
	var b strings.Builder
	for i, kv := range m.modinfo {
		fmt.Fprintf(&b, "static const char __attribute__((section(\".modinfo\"), used, aligned(1))) mi%d[] = %q;\n", i, kv)
	}
	for _, e := range m.exports {
		fmt.Fprintf(&b, "void %s(void) {}\n", e)
	}
	if len(m.exports) > 0 && !m.crcs {
		fmt.Fprintf(&b, "static const char __attribute__((section(\"__ksymtab_strings\"), used, aligned(1))) ks[] = %q;\n", strings.Join(m.exports, "\x00"))
	}
	if m.crcs {
		for i, e := range m.exports {
			fmt.Fprintf(&b, "__asm__(\".globl __crc_%s\\n.set __crc_%s, 0x%x\");\n", e, e, 0x1000+i)
		}
	}
	if len(m.versions) > 0 {
		b.WriteString("struct modversion_info { unsigned long crc; char name[64 - sizeof(unsigned long)]; };\n")
		b.WriteString("static const struct modversion_info __attribute__((section(\"__versions\"), used)) versions[] = {\n")
		for i, v := range m.versions {
			fmt.Fprintf(&b, "\t{0x%x, %q},\n", 0x2000+i, v)
		}
		b.WriteString("};\n")
	}
	for _, n := range m.needs {
		fmt.Fprintf(&b, "extern void %s(void);\n", n)
	}
	b.WriteString("void kiln_test_init(void) {\n")
	for _, n := range m.needs {
		fmt.Fprintf(&b, "\t%s();\n", n)
	}
	b.WriteString("}\n")
	return b.String()
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s on PATH: %v", tool, err)
		}
	}
}

// buildSynthTree writes the modules under root/lib/modules/kver.
func buildSynthTree(t *testing.T, root, kver string, mods []synthModule) {
	t.Helper()
	dir := filepath.Join(root, "lib/modules", kver)
	src := t.TempDir()
	for i, m := range mods {
		dst := filepath.Join(dir, m.path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if m.garbage {
			if err := os.WriteFile(dst, []byte("this is not an ELF module\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		c := filepath.Join(src, fmt.Sprintf("m%d.c", i))
		if err := os.WriteFile(c, []byte(m.source()), 0o644); err != nil {
			t.Fatal(err)
		}
		obj := strings.TrimSuffix(dst, "."+m.compress)
		if out, err := exec.Command("gcc", "-c", "-O0", "-fno-pic", "-o", obj, c).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s\n%s", m.path, err, out, m.source())
		}
		switch m.compress {
		case "xz":
			if out, err := exec.Command("xz", "--check=crc32", "-q", obj).CombinedOutput(); err != nil {
				t.Fatalf("xz: %v: %s", err, out)
			}
		case "zst":
			if out, err := exec.Command("zstd", "-q", "--rm", obj).CombinedOutput(); err != nil {
				t.Fatalf("zstd: %v: %s", err, out)
			}
		}
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, s := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// kilnDepmod runs RunDepmod on root's tree as kiln.depmod does.
func kilnDepmod(t testing.TB, root, kver string) *Depmod {
	t.Helper()
	fsys := os.DirFS(root)
	names := map[string][]string{}
	var dirs []string
	for _, d := range DepmodConfigDirs {
		dirs = append(dirs, d)
		ents, err := os.ReadDir(filepath.Join(root, d))
		if err != nil {
			continue
		}
		for _, e := range ents {
			names[d] = append(names[d], e.Name())
		}
	}
	var files []ConfigFile
	for _, p := range ConfigFiles(dirs, names) {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, ConfigFile{Path: p, Data: b})
	}
	conf, err := ParseDepmodConfig(files, kver)
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunDepmod(fsys, ModuleDir(kver), conf, decompress)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// realDepmod runs kmod's depmod on root and returns what it wrote. Its
// configuration is root's depmod.d, not the host's.
func realDepmod(t testing.TB, root, kver string) map[string][]byte {
	t.Helper()
	args := []string{"-b", root}
	for _, d := range DepmodConfigDirs {
		args = append(args, "-C", filepath.Join(root, d))
	}
	cmd := exec.Command("depmod", append(args, kver)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("depmod: %v\n%s", err, out)
	}
	if len(out) > 0 {
		t.Logf("depmod says:\n%s", out)
	}
	files := map[string][]byte{}
	for _, name := range DepmodFiles {
		b, err := os.ReadFile(filepath.Join(root, "lib/modules", kver, name))
		if err != nil {
			t.Fatalf("depmod did not write %s: %v", name, err)
		}
		files[name] = b
	}
	return files
}

func compareDepmod(t *testing.T, got *Depmod, want map[string][]byte) {
	t.Helper()
	for _, name := range DepmodFiles {
		g, w := got.Files[name], want[name]
		if bytes.Equal(g, w) {
			continue
		}
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		if strings.HasSuffix(name, ".bin") {
			t.Errorf("%s: %d bytes, depmod's %d: first difference at byte %d", name, len(g), len(w), i)
		} else {
			t.Errorf("%s differs from depmod's at byte %d:\n--- kiln\n%s\n--- depmod\n%s", name, i, g, w)
		}
	}
}

// synthModules is a tree exercising what depmod reads: dependencies
// (direct and transitive, through __crc_ and __ksymtab_strings exports
// and __versions), aliases with patterns and brackets, softdeps,
// devnames, modules in updates/ and extra/ overriding kernel/ ones,
// compressed modules, a file that is not ELF, names with '-', and
// enough modules and symbols that the hash orders matter.
func synthModules() []synthModule {
	mods := []synthModule{
		{path: "kernel/lib/base.ko", modinfo: []string{"license=GPL", "vermagic=6.1.0-test SMP mod_unload modversions "}, exports: []string{"base_a", "base_b", "shared_sym"}, crcs: true, versions: []string{"module_layout"}},
		{path: "kernel/lib/mid-one.ko", modinfo: []string{"alias=mid-alias-1", "alias=pci:v00001AF4d00001000sv*sd*bc*sc*i*", "depends=base", "name=mid_one"}, exports: []string{"mid_one_fn"}, needs: []string{"base_a", "printk"}, crcs: true, versions: []string{"module_layout", "base_a", "printk"}},
		{path: "kernel/lib/mid_two.ko.xz", compress: "xz", modinfo: []string{"alias=of:N*T*Cvendor,dev-[0-9]", "softdep=pre: mid-one post: top"}, exports: []string{"mid_two_fn"}, needs: []string{"base_b"}},
		{path: "kernel/drivers/top.ko.zst", compress: "zst", modinfo: []string{"alias=devname:kilntest", "alias=char-major-10-242", "alias=usb:v1234p*"}, needs: []string{"mid_one_fn", "mid_two_fn", "base_a", "undefined_elsewhere"}},
		{path: "kernel/drivers/blockish.ko", modinfo: []string{"alias=block-major-259-*", "alias=devname:kilnblk", "alias=block-major-259-7", "alias=bad]alias"}, needs: []string{"shared_sym"}},
		{path: "kernel/drivers/devonly.ko", modinfo: []string{"alias=devname:nomajor"}},
		{path: "kernel/drivers/dup.ko", modinfo: []string{"alias=dup-kernel"}, exports: []string{"dup_fn"}},
		{path: "updates/dup.ko", modinfo: []string{"alias=dup-updates"}, exports: []string{"dup_fn"}},
		{path: "kernel/drivers/ovr.ko", modinfo: []string{"alias=ovr-kernel"}},
		{path: "extra/ovr.ko", modinfo: []string{"alias=ovr-extra"}},
		{path: "kernel/drivers/pinned.ko", modinfo: []string{"alias=pinned-kernel"}},
		{path: "updates/pinned.ko", modinfo: []string{"alias=pinned-updates"}},
		{path: "kernel/drivers/shadow.ko", exports: []string{"shared_sym"}},
		{path: "kernel/drivers/uses-dup.ko", needs: []string{"dup_fn"}, versions: []string{"module_layout", "dup_fn", "mid_two_fn"}},
		{path: "kernel/drivers/broken.ko", garbage: true},
		{path: "kernel/drivers/noinfo.ko"},
		{path: "build/ignored.ko", modinfo: []string{"alias=never"}},
		{path: "kernel/drivers/skipme/skipped.ko", modinfo: []string{"alias=never-either"}},
	}
	// Without xz or zstd the modules meant to be compressed are plain,
	// and the rest of the test still runs.
	for i, m := range mods {
		if m.compress == "" {
			continue
		}
		if _, err := exec.LookPath(map[string]string{"xz": "xz", "zst": "zstd"}[m.compress]); err != nil {
			mods[i].path, mods[i].compress = strings.TrimSuffix(m.path, "."+m.compress), ""
		}
	}
	for i := range 40 {
		m := synthModule{path: fmt.Sprintf("kernel/many/m%02d.ko", i), modinfo: []string{fmt.Sprintf("alias=many-%d", i), "alias=many-common"},
			exports: []string{fmt.Sprintf("many_%d_x", i), fmt.Sprintf("many_%d_y", i)}, crcs: i%2 == 0}
		if i > 0 {
			m.needs = []string{fmt.Sprintf("many_%d_x", i-1)}
		}
		if i%7 == 3 {
			m.needs = append(m.needs, "base_b", "mid_one_fn")
		}
		mods = append(mods, m)
	}
	return mods
}

func synthTree(t *testing.T, kver string) string {
	t.Helper()
	root := t.TempDir()
	mods := synthModules()
	buildSynthTree(t, root, kver, mods)
	var order strings.Builder
	for _, m := range mods {
		// Half the tree in modules.order, in a different order from the
		// hash's, with one module listed under its uncompressed name
		// and one that does not exist.
		if strings.Contains(m.path, "many/m1") || strings.HasPrefix(m.path, "kernel/lib") {
			order.WriteString(strings.TrimSuffix(strings.TrimSuffix(m.path, ".xz"), ".zst") + "\n")
		}
	}
	order.WriteString("kernel/gone.ko\n")
	// A directory of modules reached through a symbolic link, which
	// depmod follows.
	buildSynthTree(t, filepath.Join(root, "opt"), "mods", []synthModule{
		{path: "linked-mod.ko", modinfo: []string{"alias=linked"}, needs: []string{"base_b"}},
	})
	if err := os.Symlink("../../../../opt/lib/modules/mods", filepath.Join(root, "lib/modules", kver, "kernel/linked")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, map[string]string{
		"lib/modules/" + kver + "/modules.order":   order.String(),
		"lib/modules/" + kver + "/modules.builtin": "kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio-pci.ko\n\n#junk\nkernel/crypto/crc32c_generic.ko\n",
		"lib/modules/" + kver + "/modules.builtin.modinfo": "ext4.alias=fs-ext4\x00ext4.license=GPL\x00ext4.alias=ext3\x00" +
			"crc32c_generic.alias=crypto-crc32c\x00crc32c_generic.alias=crc32c-generic\x00noalias\x00virtio_pci.alias=pci:v00001AF4d*sv*sd*bc*sc*i*\x00",
		"etc/depmod.d/10-search.conf":   "# kiln test\nsearch updates extra \\\n built-in\nexclude skipme\n",
		"lib/depmod.d/20-override.conf": "override ovr 6\\.1\\..* extra\noverride pinned * kernel/drivers\noverride nomatch 5.* updates\nbogus line\ninclude foo\n",
		"lib/depmod.d/10-search.conf":   "search nothing-here\n", // hidden by /etc's file of the same name
	})
	return root
}

// TestDepmodMatchesKmod builds a tree of modules with gcc, runs kmod's
// depmod and RunDepmod on it, and compares every file byte for byte.
func TestDepmodMatchesKmod(t *testing.T) {
	needTools(t, "gcc", "depmod")
	const kver = "6.1.0-test"
	root := synthTree(t, kver)
	got := kilnDepmod(t, root, kver)
	if got.Modules != 54 {
		t.Errorf("%d modules, want 54", got.Modules)
	}
	for _, w := range got.Warnings {
		t.Logf("warning: %s", w)
	}
	// What depmod.d chose, so that a test passing because both ignored
	// the configuration shows.
	for _, want := range []string{"\nupdates/dup.ko:", "\nextra/ovr.ko:", "\nkernel/drivers/pinned.ko:", "kernel/drivers/uses-dup.ko: updates/dup.ko kernel/lib/mid_two.ko", "\nkernel/linked/linked-mod.ko: kernel/lib/base.ko\n"} {
		if !bytes.Contains(got.Files["modules.dep"], []byte(want)) {
			t.Errorf("modules.dep lacks %q", want)
		}
	}
	if bytes.Contains(got.Files["modules.dep"], []byte("skipped.ko")) || bytes.Contains(got.Files["modules.dep"], []byte("ignored.ko")) {
		t.Error("modules.dep lists a module under an excluded directory")
	}
	compareDepmod(t, got, realDepmod(t, root, kver))
}

// TestDepmodDefaultConfig is the same tree without depmod.d (the default
// search: updates/ first) and without modules.order and the builtin
// files, so the module order is depmod's hash order throughout.
func TestDepmodDefaultConfig(t *testing.T) {
	needTools(t, "gcc", "depmod")
	const kver = "6.1.0-test"
	root := synthTree(t, kver)
	for _, p := range []string{"etc/depmod.d", "lib/depmod.d", "lib/modules/" + kver + "/modules.order",
		"lib/modules/" + kver + "/modules.builtin", "lib/modules/" + kver + "/modules.builtin.modinfo"} {
		if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	compareDepmod(t, kilnDepmod(t, root, kver), realDepmod(t, root, kver))
}

// TestDepmodRealKernel compares with depmod on a real kernel's modules:
// KILN_DEBIAN_TREE is a tree with /lib/modules/VERSION (a debootstrap,
// or linux-image-*.deb unpacked with dpkg-deb -x).
func TestDepmodRealKernel(t *testing.T) {
	src := os.Getenv("KILN_DEBIAN_TREE")
	if src == "" {
		t.Skip("needs a tree with a Debian kernel's /lib/modules in KILN_DEBIAN_TREE")
	}
	needTools(t, "depmod", "cp")
	kvers, _ := filepath.Glob(filepath.Join(src, "lib/modules/*"))
	if len(kvers) == 0 {
		t.Skipf("%s has no lib/modules/VERSION", src)
	}
	for _, k := range kvers {
		kver := filepath.Base(k)
		t.Run(kver, func(t *testing.T) {
			root := t.TempDir()
			dst := filepath.Join(root, "lib/modules")
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("cp", "-a", k, dst+"/").CombinedOutput(); err != nil {
				t.Fatalf("cp: %v: %s", err, out)
			}
			start := time.Now()
			got := kilnDepmod(t, root, kver)
			took := time.Since(start)
			start = time.Now()
			want := realDepmod(t, root, kver)
			t.Logf("%s: %d modules: RunDepmod %v, depmod %v; modules.dep %d bytes, modules.alias.bin %d bytes",
				kver, got.Modules, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), len(want["modules.dep"]), len(want["modules.alias.bin"]))
			compareDepmod(t, got, want)
		})
	}
}
