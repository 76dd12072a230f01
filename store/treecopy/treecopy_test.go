package treecopy_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// TestVisit: every directory of the source is visited once, with each
// entry's lstat result, in every mode; a visit's error ends the copy.
func TestVisit(t *testing.T) {
	for _, mode := range []treecopy.Mode{treecopy.Auto, treecopy.Plain, treecopy.Hardlink} {
		t.Run(mode.String(), func(t *testing.T) {
			src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
			storetest.RichTree(t, src)
			var mu sync.Mutex
			seen := map[string]unix.Stat_t{}
			visit := func(_ context.Context, dirfd int, rel string, names []string, sts []unix.Stat_t) error {
				if !slices.IsSorted(names) || len(names) != len(sts) {
					return fmt.Errorf("%s: %d names (sorted: %v), %d stats", rel, len(names), slices.IsSorted(names), len(sts))
				}
				mu.Lock()
				defer mu.Unlock()
				for i, name := range names {
					p := path.Join(rel, name)
					if _, again := seen[p]; again {
						return fmt.Errorf("%s visited twice", p)
					}
					var st unix.Stat_t
					if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
						return err
					}
					if st.Ino != sts[i].Ino || st.Mode != sts[i].Mode {
						return fmt.Errorf("%s: visit got inode %d mode %#o, the directory has %d %#o", p, sts[i].Ino, sts[i].Mode, st.Ino, st.Mode)
					}
					seen[p] = sts[i]
				}
				return nil
			}
			if err := treecopy.Copy(t.Context(), src, dst, treecopy.Options{Mode: mode, Visit: visit}); err != nil {
				t.Fatal(err)
			}
			var want []string
			err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				if err == nil && p != src {
					rel, _ := filepath.Rel(src, p)
					want = append(want, rel)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(maps.Keys(seen))
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("visited %q\nwant    %q", got, want)
			}

			stop := errors.New("stop")
			err = treecopy.Copy(t.Context(), src, filepath.Join(t.TempDir(), "copy"), treecopy.Options{Mode: mode,
				Visit: func(context.Context, int, string, []string, []unix.Stat_t) error { return stop }})
			if !errors.Is(err, stop) {
				t.Errorf("Copy with a failing visit = %v, want its error", err)
			}
		})
	}
}
