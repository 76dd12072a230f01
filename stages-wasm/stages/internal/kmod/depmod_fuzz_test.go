package kmod

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// seedModules are the golden case's modules, built with gcc.
func seedModules(f *testing.F) {
	paths, _ := filepath.Glob("../../testdata/kiln.depmod/*/*.ko")
	if len(paths) == 0 {
		f.Fatal("no seed modules under ../../testdata/kiln.depmod")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "kernel/a.ko\n", "kernel/fs/ext4.ko\n", "ext4.alias=fs-ext4\x00", "search updates built-in\n")
	}
}

// FuzzDepmod runs RunDepmod on a module whose bytes, and on index and
// configuration files whose text, are the fuzzer's: all come from the
// tree. It must not panic, and must list the module once in modules.dep
// whatever its bytes, as depmod does.
func FuzzDepmod(f *testing.F) {
	seedModules(f)
	f.Fuzz(func(t *testing.T, module []byte, order, builtin, builtinModinfo, conf string) {
		dir := "lib/modules/6.1.0-fuzz"
		fsys := fstest.MapFS{
			dir + "/kernel/a.ko":                 {Data: module},
			dir + "/modules.order":               {Data: []byte(order)},
			dir + "/modules.builtin":             {Data: []byte(builtin)},
			dir + "/modules.builtin.modinfo":     {Data: []byte(builtinModinfo)},
			dir + "/kernel/other/b.ko.zst":       {Data: module},
			dir + "/kernel/other/not-module.ko~": {Data: module},
		}
		c, err := ParseDepmodConfig([]ConfigFile{{Path: "/etc/depmod.d/fuzz.conf", Data: []byte(conf)}}, "6.1.0-fuzz")
		if err != nil {
			return
		}
		res, err := RunDepmod(fsys, dir, c, decompress)
		if err != nil {
			if strings.Contains(err.Error(), "ASCII") || strings.Contains(err.Error(), "cycle") || strings.Contains(err.Error(), "no file name") {
				return
			}
			t.Fatal(err)
		}
		if n := bytes.Count(res.Files["modules.dep"], []byte("kernel/a.ko:")); n != 1 {
			t.Fatalf("modules.dep lists kernel/a.ko %d times:\n%s", n, res.Files["modules.dep"])
		}
		for _, name := range DepmodFiles {
			if _, ok := res.Files[name]; !ok {
				t.Fatalf("no %s", name)
			}
		}
	})
}
