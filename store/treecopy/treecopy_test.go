package treecopy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnbuild/kiln/store/storetest"
	"github.com/kilnbuild/kiln/store/treecopy"
)

func TestCopyKeepsEverything(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	storetest.RichTree(t, src)
	if err := treecopy.Copy(t.Context(), src, dst, treecopy.Options{}); err != nil {
		t.Fatal(err)
	}
	if want, got := storetest.Describe(t, src), storetest.Describe(t, dst); !slices.Equal(want, got) {
		t.Errorf("copy differs:\nsrc: %s\ndst: %s", strings.Join(want, "\n     "), strings.Join(got, "\n     "))
	}
}

func TestCopyExclude(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	storetest.RichTree(t, src)
	if err := treecopy.Copy(t.Context(), src, dst, treecopy.Options{Exclude: []string{"usr/bin", "etc"}}); err != nil {
		t.Fatal(err)
	}
	for dir, wantEntries := range map[string]int{"usr/bin": 0, "etc": 0, "usr/share": 1, "ro": 1} {
		entries, err := os.ReadDir(filepath.Join(dst, dir))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != wantEntries {
			t.Errorf("%s holds %d entries, want %d", dir, len(entries), wantEntries)
		}
	}
	// An excluded directory keeps its own metadata.
	s, _ := os.Stat(filepath.Join(src, "etc"))
	d, _ := os.Stat(filepath.Join(dst, "etc"))
	if s.Mode() != d.Mode() || !s.ModTime().Equal(d.ModTime()) {
		t.Errorf("excluded etc/: mode %v mtime %v, source %v %v", d.Mode(), d.ModTime(), s.Mode(), s.ModTime())
	}
}

func TestCopyRefusesExistingDestination(t *testing.T) {
	if err := treecopy.Copy(t.Context(), t.TempDir(), t.TempDir(), treecopy.Options{}); err == nil {
		t.Error("Copy into an existing directory succeeded")
	}
}
