package library

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/runtime/engine"
	"github.com/kilnbuild/kiln/store/treesum"
	"golang.org/x/sys/unix"
)

// TestUntarDifferential unpacks one archive, in every compression GNU tar
// writes, with org.osbuild.untar and with GNU tar itself, and requires the
// same tree: the same treesum (types, contents, modes, owners, xattrs,
// device numbers, symlink targets) and the same mtime on every entry. The
// tree holds what an OS tree holds: a few hundred files of mixed sizes
// (genTree, also the benchmark's), setuid and odd modes, other owners,
// hard links, absolute and climbing symlinks, device nodes, a FIFO and
// xattrs. It is what keeps untar's output the same whichever way the
// bytes reach it (decompressed in the guest before issue 14, in the host
// since).
func TestUntarDifferential(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the archive holds device nodes and files of other owners")
	}
	for _, tool := range []string{"tar", "gzip", "xz", "zstd", "bzip2"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to make and unpack the archives: %v", tool, err)
		}
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := genTree(src, 300); err != nil {
		t.Fatal(err)
	}
	if err := oddEntries(src); err != nil {
		t.Fatal(err)
	}
	stages, _ := builtLibrary(t)
	st := stages["org.osbuild.untar"]
	mod := engine.NewModule(st.Module)
	e := newEngine(t)
	for _, c := range []struct{ name, flag string }{
		{"tar", ""}, {"tar.gz", "-z"}, {"tar.xz", "-J"}, {"tar.zst", "--zstd"}, {"tar.bz2", "-j"},
	} {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			sources := filepath.Join(work, "sources")
			files := filepath.Join(sources, "org.osbuild.files")
			if err := os.MkdirAll(files, 0o755); err != nil {
				t.Fatal(err)
			}
			archive := filepath.Join(work, "a."+c.name)
			args := []string{"--numeric-owner", "--xattrs", "--xattrs-include=*", "-c", "-f", archive, "-C", src, "."}
			if c.flag != "" {
				args = append([]string{c.flag}, args...)
			}
			if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
				t.Fatalf("tar %v: %v\n%s", args, err, out)
			}
			data, err := os.ReadFile(archive)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			source := "sha256:" + hex.EncodeToString(sum[:])
			if err := os.WriteFile(filepath.Join(files, source), data, 0o644); err != nil {
				t.Fatal(err)
			}

			byTar, byKiln := filepath.Join(work, "tar"), filepath.Join(work, "kiln")
			for _, d := range []string{byTar, byKiln} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := exec.Command("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
				"-x", "-f", archive, "-C", byTar).CombinedOutput(); err != nil {
				t.Fatalf("tar -x: %v\n%s", err, out)
			}
			res, err := e.Run(context.Background(), engine.Invocation{
				Name: st.Name, ID: strings.Repeat("d1", 32), Module: mod,
				Options: []byte(fmt.Sprintf(`{"source":%q}`, source)),
				Tree:    byKiln, Sources: sources, Epoch: goldenEpoch,
			})
			if err != nil {
				t.Fatalf("%v\n%s", err, res.Log)
			}
			// The archive's "./" is the tree's root, which untar leaves as
			// the store made it and tar stamps: not a member to compare.
			for _, d := range []string{byTar, byKiln} {
				if err := unix.Lchown(d, 0, 0); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			want, got := treeState(t, byTar), treeState(t, byKiln)
			if got != want {
				t.Errorf("untar's tree differs from GNU tar's:\n%s", diffLines(want, got))
			}
		})
	}
}

// oddEntries adds to a genTree tree what it lacks of an OS tree.
func oddEntries(dir string) error {
	steps := []func() error{
		func() error { return os.WriteFile(filepath.Join(dir, "suid"), []byte("#!/bin/sh\n"), 0o644) },
		func() error { return unix.Chmod(filepath.Join(dir, "suid"), 0o4755) },
		func() error { return os.WriteFile(filepath.Join(dir, "owned"), []byte("x\n"), 0o600) },
		func() error { return unix.Lchown(filepath.Join(dir, "owned"), 1000, 1001) },
		func() error { return unix.Chmod(filepath.Join(dir, "owned"), 0o2751) },
		func() error { return os.Mkdir(filepath.Join(dir, "sticky"), 0o755) },
		func() error { return unix.Chmod(filepath.Join(dir, "sticky"), 0o1777) },
		func() error { return os.Symlink("/etc/passwd", filepath.Join(dir, "abs-link")) },
		func() error { return os.Symlink("../../d000", filepath.Join(dir, "d001", "up-link")) },
		func() error { return unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) },
		func() error {
			return unix.Mknod(filepath.Join(dir, "loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0)))
		},
		func() error { return unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644) },
		func() error {
			return unix.Lsetxattr(filepath.Join(dir, "owned"), "user.kiln", []byte("differential"), 0)
		},
		func() error {
			return unix.Lsetxattr(filepath.Join(dir, "suid"), "security.capability",
				[]byte("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), 0)
		},
		func() error { return os.Link(filepath.Join(dir, "owned"), filepath.Join(dir, "d002", "owned.hard")) },
		func() error {
			t := time.Unix(1600000000, 123456789)
			return os.Chtimes(filepath.Join(dir, "owned"), t, t)
		},
	}
	for i, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("odd entry %d: %w", i, err)
		}
	}
	return nil
}

// treeState is the tree's treesum and the mtime of each entry, one a line.
func treeState(t *testing.T, dir string) string {
	t.Helper()
	sum, err := treesum.Sum(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "treesum %s\n", sum)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s mtime %d.%09d\n", rel, st.Mtim.Sec, st.Mtim.Nsec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// diffLines lists the lines of want and got that the other lacks.
func diffLines(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}
