package treecopy_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/store/storetest"
	"github.com/kilnbuild/kiln/store/treecopy"
)

func TestCopyKeepsEverything(t *testing.T) {
	for _, mode := range []treecopy.Mode{treecopy.Auto, treecopy.Plain, treecopy.Hardlink} {
		t.Run(mode.String(), func(t *testing.T) {
			src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
			storetest.RichTree(t, src)
			if err := treecopy.Copy(t.Context(), src, dst, treecopy.Options{Mode: mode}); err != nil {
				t.Fatal(err)
			}
			if want, got := storetest.Describe(t, src), storetest.Describe(t, dst); !slices.Equal(want, got) {
				t.Errorf("copy differs:\nsrc: %s\ndst: %s", strings.Join(want, "\n     "), strings.Join(got, "\n     "))
			}
		})
	}
}

// TestHardlinkShared: a hardlink copy links every regular file to the
// source's inode and reports each inode once, flagged as a group when it
// has more than one name in the tree; nothing else is linked.
func TestHardlinkShared(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	storetest.RichTree(t, src)
	shared := map[uint64]uint8{}
	if err := treecopy.Copy(t.Context(), src, dst, treecopy.Options{Mode: treecopy.Hardlink, Shared: shared}); err != nil {
		t.Fatal(err)
	}
	names := map[uint64]int{}
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st, sst unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		if err := unix.Lstat(filepath.Join(src, rel), &sst); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			if st.Ino == sst.Ino {
				t.Errorf("%s (mode %#o) shares the source's inode", rel, st.Mode)
			}
			return nil
		}
		if st.Ino != sst.Ino {
			t.Errorf("%s is not linked to the source", rel)
		}
		names[st.Ino]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(shared) != len(names) {
		t.Errorf("shared holds %d inodes, the copy has %d files", len(shared), len(names))
	}
	groups := 0
	for ino, n := range names {
		flag, ok := shared[ino]
		switch {
		case !ok:
			t.Errorf("inode %d missing from shared", ino)
		case (n > 1) != (flag == 1):
			t.Errorf("inode %d: %d names, flag %d", ino, n, flag)
		}
		if n > 1 {
			groups++
		}
	}
	if groups == 0 {
		t.Error("the rich tree has no hardlink group: the test checks nothing of groups")
	}
}

// TestCopyCancelled: a cancelled copy stops with the context's error, in
// every mode, and its workers end (the race detector and goleak-free
// test binary would hang otherwise).
func TestCopyCancelled(t *testing.T) {
	src := t.TempDir()
	for i := range 200 {
		storetest.WriteFile(t, src, fmt.Sprintf("d%02d/f%03d", i/10, i), "x")
	}
	for _, mode := range []treecopy.Mode{treecopy.Auto, treecopy.Plain, treecopy.Hardlink} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := treecopy.Copy(ctx, src, filepath.Join(t.TempDir(), "copy"), treecopy.Options{Mode: mode})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled copy: %v, want %v", err, context.Canceled)
			}
		})
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
