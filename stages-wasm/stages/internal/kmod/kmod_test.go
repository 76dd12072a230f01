package kmod

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func loadIndex(t testing.TB, dir string) *Index {
	t.Helper()
	x := NewIndex()
	for name, read := range map[string]func(*os.File) error{
		"modules.dep":     func(f *os.File) error { return x.ReadDep(f) },
		"modules.builtin": func(f *os.File) error { return x.ReadBuiltin(f) },
		"modules.softdep": func(f *os.File) error { return x.ReadSoftdep(f) },
		"modules.alias":   func(f *os.File) error { return x.ReadAlias(f) },
	} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		err = read(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return x
}

func names(ms []*Module) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return s
}

func TestResolve(t *testing.T) {
	x := loadIndex(t, "testdata")
	for _, tc := range []struct {
		req          []string
		load         []string
		builtin, mis []string
		err          error
	}{
		{req: []string{"virtio_blk"}, load: []string{"virtio_ring", "virtio", "virtio_blk"}},
		{req: []string{"virtio-pci", "virtio_blk"}, load: []string{"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci", "virtio_blk"}},
		// ext4's softdep names an alias with two modules, both loaded
		// first; jbd2's softdep then finds them done.
		{req: []string{"ext4"}, load: []string{"crc32c_generic", "crc32c_intel", "crc16", "mbcache", "jbd2", "ext4"}},
		{req: []string{"fs-ext4", "sd_mod"}, load: []string{"crc32c_generic", "crc32c_intel", "crc16", "mbcache", "jbd2", "ext4"}, builtin: []string{"sd_mod"}},
		{req: []string{"vfat"}, load: []string{"fat", "vfat", "crc16"}, mis: []string{"nls_missing"}},
		{req: []string{"nosuch"}, err: ErrUnknownModule},
	} {
		res, err := x.Resolve(tc.req)
		if !errors.Is(err, tc.err) {
			t.Errorf("Resolve(%q) error %v, want %v", tc.req, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if got := names(res.Load); !slices.Equal(got, tc.load) {
			t.Errorf("Resolve(%q) loads %q, want %q", tc.req, got, tc.load)
		}
		if !slices.Equal(res.Builtin, tc.builtin) || !slices.Equal(res.Missing, tc.mis) {
			t.Errorf("Resolve(%q) builtin %q missing %q, want %q %q", tc.req, res.Builtin, res.Missing, tc.builtin, tc.mis)
		}
	}
}

func TestDep(t *testing.T) {
	x := loadIndex(t, "testdata")
	res, err := x.Resolve([]string{"virtio_blk", "crc32c_intel"})
	if err != nil {
		t.Fatal(err)
	}
	got := Dep(res.Load, func(p string) string { return strings.TrimSuffix(p, ".xz") })
	want := "kernel/drivers/virtio/virtio_ring.ko:\nkernel/drivers/virtio/virtio.ko:\n" +
		"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n" +
		"kernel/arch/x86/crypto/crc32c-intel.ko:\n"
	if got != want {
		t.Errorf("Dep:\n%s\nwant\n%s", got, want)
	}
}

func TestReadDepRefuses(t *testing.T) {
	for _, in := range []string{
		"no colon here\n",
		"../../etc/shadow.ko:\n",
		"kernel/a.ko: kernel/../../x.ko\n",
		"kernel/a b.ko:\n",
		"kernel/a.ko: /abs/b.ko\n",
		"kernel/a.ko;reboot:\n",
		"kernel/a.ko:\nkernel/a.ko:\n",
	} {
		if err := NewIndex().ReadDep(strings.NewReader(in)); err == nil {
			t.Errorf("ReadDep(%q) accepted it", in)
		} else if !strings.Contains(err.Error(), "modules.dep line") {
			t.Errorf("ReadDep(%q) error %v does not name the line", in, err)
		}
	}
}

// TestResolveRealKernel resolves kiln.initramfs's default module list in
// a real Debian kernel's index (the shared debootstrapped tree).
func TestResolveRealKernel(t *testing.T) {
	tree := os.Getenv("KILN_DEBIAN_TREE")
	dirs, _ := filepath.Glob(filepath.Join(tree, "lib/modules/*"))
	if tree == "" || len(dirs) == 0 {
		t.Skip("needs a Debian tree with a kernel in KILN_DEBIAN_TREE")
	}
	x := loadIndex(t, dirs[0])
	res, err := x.Resolve([]string{"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range res.Load {
		pos[m.Path] = i
	}
	for i, m := range res.Load {
		for _, d := range m.Deps {
			if j, ok := pos[d]; !ok || j > i {
				t.Errorf("%s loads before its dependency %s", m.Name, d)
			}
		}
	}
	for _, want := range []string{"virtio_blk", "virtio_pci", "ext4", "jbd2", "crc32c_generic"} {
		if !slices.Contains(names(res.Load), want) {
			t.Errorf("%s not among %q", want, names(res.Load))
		}
	}
}

// TestModinfoMatchesDepmod builds the index from the modules' .modinfo
// sections, as kiln.initramfs does where depmod has not run, and requires
// the same resolution as from depmod's files in the same tree.
func TestModinfoMatchesDepmod(t *testing.T) {
	dirs, _ := filepath.Glob("/work/cache/vmtree/lib/modules/*")
	if len(dirs) == 0 {
		t.Skip("needs a Debian tree with a kernel at /work/cache/vmtree (issue 13's shared tree)")
	}
	want := loadIndex(t, dirs[0])
	got := NewIndex()
	err := filepath.WalkDir(dirs[0], func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := Modinfo(f)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(dirs[0], p)
		return got.AddModinfo(rel, info)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := got.ResolveModinfoDeps(); err != nil {
		t.Fatal(err)
	}
	got.Builtin = want.Builtin
	mods := []string{"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ext4", "virtio_net", "crypto-crc32c"}
	r1, err := want.Resolve(mods)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := got.Resolve(mods)
	if err != nil {
		t.Fatal(err)
	}
	// The same modules; the order may differ where either is valid
	// (modules.dep lists a closure, .modinfo direct dependencies).
	a, b := names(r1.Load), names(r2.Load)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Errorf("from .modinfo: %q\nfrom depmod's files: %q", b, a)
	}
	pos := map[string]int{}
	for i, m := range r2.Load {
		pos[m.Path] = i
	}
	for i, m := range r2.Load {
		for _, d := range want.Modules[m.Name].Deps {
			if j, ok := pos[d]; !ok || j > i {
				t.Errorf("from .modinfo, %s loads before its dependency %s", m.Name, d)
			}
		}
	}
	for name, m := range want.Modules {
		g, ok := got.Modules[name]
		if !ok {
			t.Errorf("%s: in modules.dep, not found from .modinfo", name)
			continue
		}
		// modules.dep lists the whole closure, .modinfo the direct
		// dependencies: each direct one must be in depmod's list.
		for _, d := range g.Deps {
			if !slices.Contains(m.Deps, d) {
				t.Errorf("%s: dependency %s not in modules.dep's %q", name, d, m.Deps)
			}
		}
	}
}

func TestAddModinfoRefuses(t *testing.T) {
	for _, tc := range []struct{ path, info string }{
		{"../x.ko", "depends="},
		{"kernel/a b.ko", ""},
		{"kernel/x.txt", ""},
	} {
		if err := NewIndex().AddModinfo(tc.path, []byte(tc.info)); err == nil {
			t.Errorf("AddModinfo(%q) accepted", tc.path)
		}
	}
	x := NewIndex()
	if err := x.AddModinfo("kernel/a.ko", []byte("license=GPL\x00depends=b,\x00")); err != nil {
		t.Fatal(err)
	}
	if err := x.ResolveModinfoDeps(); !errors.Is(err, ErrUnknownModule) {
		t.Errorf("a dependency no module has: %v, want ErrUnknownModule", err)
	}
}

func FuzzReadDep(f *testing.F) {
	seed, err := os.ReadFile("testdata/modules.dep")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed), "ext4")
	f.Add("a.ko: b.ko\nb.ko: a.ko\n", "a")
	f.Add("a.ko: missing.ko\n", "a")
	f.Fuzz(func(t *testing.T, dep, req string) {
		x := NewIndex()
		if err := x.ReadDep(strings.NewReader(dep)); err != nil {
			return
		}
		res, err := x.Resolve([]string{req})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, m := range res.Load {
			if seen[m.Name] {
				t.Fatalf("%s loaded twice", m.Name)
			}
			seen[m.Name] = true
			if !pathRE.MatchString(m.Path) || strings.Contains("/"+m.Path+"/", "/../") {
				t.Fatalf("path %q passed", m.Path)
			}
		}
	})
}

// FuzzReadIndex feeds softdep and alias text with a fixed modules.dep:
// whatever parses, Resolve terminates and loads each module once, after
// its dependencies.
func FuzzReadIndex(f *testing.F) {
	for _, p := range []string{"modules.softdep", "modules.alias"} {
		b, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "ext4")
	}
	f.Add("softdep ext4 pre: ext4\nalias crypto-crc32c ext4\n", "ext4")
	f.Add("softdep a pre: b\nsoftdep b pre: a\n", "a")
	f.Fuzz(func(t *testing.T, text, req string) {
		x := loadIndex(t, "testdata")
		soft, alias := NewIndex(), NewIndex()
		if soft.ReadSoftdep(strings.NewReader(text)) == nil {
			x.Pre, x.Post = soft.Pre, soft.Post
		}
		if alias.ReadAlias(strings.NewReader(text)) == nil {
			x.Aliases = alias.Aliases
		}
		res, err := x.Resolve([]string{req})
		if err != nil {
			return
		}
		pos := map[string]int{}
		for i, m := range res.Load {
			if _, dup := pos[m.Path]; dup {
				t.Fatalf("%s loaded twice", m.Name)
			}
			pos[m.Path] = i
		}
		for i, m := range res.Load {
			for _, d := range m.Deps {
				if j, ok := pos[d]; !ok || j > i {
					t.Fatalf("%s before its dependency %s", m.Name, d)
				}
			}
		}
	})
}
