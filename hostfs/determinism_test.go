package hostfs_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kilnbuild/kiln/hostfs"
	"golang.org/x/sys/unix"
)

const testEpoch = 1_700_000_000

// TestDeterminism is issue 10 item 9: what a stage sees of its files must
// not depend on the host. testdata/determinism creates files in an unsorted
// order, a directory, a symlink, a hard link, an inode that dies, appends to
// a file of the tree, then lists and stats everything through WASI and
// kiln_hostfs. Before, the times were the host's clock, readdir came in the
// host filesystem's order and st_dev and st_ino were the host's. Now every
// run, on any filesystem and with either resolver, prints the same bytes:
// epoch times, sorted names, the mount's device and inode numbers counted
// from 1, with the hard link sharing its file's number; and the tree on the
// host holds the epoch as mtime.
func TestDeterminism(t *testing.T) {
	r, mod := guest(t, "determinism")
	type fsKind struct{ name, dir string }
	kinds := []fsKind{{"tempdir", t.TempDir()}}
	if os.Geteuid() == 0 {
		kinds = append(kinds, fsKind{"tmpfs", mountTmpfs(t, "size=16m")})
	} else {
		t.Log("not root: the tmpfs run, whose directory order and inode numbers differ from the temp dir's filesystem, is skipped")
	}
	var first string
	for _, k := range kinds {
		for _, res := range resolvers {
			t.Run(k.name+"/"+res.String(), func(t *testing.T) {
				tree, err := os.MkdirTemp(k.dir, "tree-")
				mustDo(t, err)
				old := filepath.Join(tree, "old")
				mustDo(t, os.WriteFile(old, []byte("old"), 0o644))
				mustDo(t, os.Chtimes(old, time.Unix(1000, 0), time.Unix(1000, 0)))
				root, err := hostfs.OpenRoot(tree, hostfs.WithResolver(res), hostfs.WithEpoch(testEpoch))
				mustDo(t, err)
				t.Cleanup(func() { _ = root.Close() })
				mounts := []hostfs.Mount{{GuestPath: "/", Root: root}}
				stdout, stderr, code := runGuest(t, r, mod, mounts, "determinism")
				if code != 0 {
					t.Fatalf("guest exited %d:\n%s%s", code, stdout, stderr)
				}
				checkDeterminism(t, tree, stdout)
				if first == "" {
					first = stdout
				} else if stdout != first {
					t.Errorf("output differs from the first run's:\n got:\n%s\nwant:\n%s", stdout, first)
				}
			})
		}
	}
}

func checkDeterminism(t *testing.T, tree, out string) {
	t.Helper()
	var names string
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if n, ok := strings.CutPrefix(l, "readdir "); ok {
			names = n
		} else {
			lines = append(lines, l)
		}
	}
	got := strings.Fields(names)
	want := []string{"B", "Z", "a", "a0", "b", "c", "hard", "link", "new", "sub", "é"}
	if !slices.Equal(got, want) {
		t.Errorf("readdir = %q, want sorted by bytes %q", got, want)
	}
	epochNs := strconv.FormatInt(testEpoch*1e9, 10)
	ino := map[string]string{}
	dev := ""
	for _, l := range lines {
		f := strings.Fields(l)
		p, kv := f[0], map[string][]string{}
		for _, x := range f[1:] {
			k, v, _ := strings.Cut(x, "=")
			kv[k] = append(kv[k], v)
		}
		for _, k := range []string{"atime", "mtime", "ctime"} {
			for _, v := range kv[k] {
				if p == "/old" && k == "atime" {
					// Only written, which leaves the tree's atime.
					if v != "1000000000000" {
						t.Errorf("%s: atime %s, want the tree's 1000 s", p, v)
					}
					continue
				}
				if v != epochNs {
					t.Errorf("%s: %s %s, want the epoch %s", p, k, v, epochNs)
				}
			}
		}
		if kv["ino"][0] != kv["ino"][1] || kv["dev"][0] != kv["dev"][1] {
			t.Errorf("%s: WASI and kiln_hostfs disagree: %s", p, l)
		}
		if dev == "" {
			dev = kv["dev"][0]
		} else if kv["dev"][0] != dev {
			t.Errorf("%s: dev %s, want the mount's %s", p, kv["dev"][0], dev)
		}
		ino[p] = kv["ino"][0]
		if p == "/d/gone" {
			continue // removed since
		}
		var host unix.Stat_t
		mustDo(t, unix.Lstat(filepath.Join(tree, p), &host))
		// Inode numbers are checked by the runs' outputs being equal: a
		// fresh tmpfs numbers its inodes from 1 too, but not in this order.
		if strconv.FormatUint(host.Dev, 10) == kv["dev"][0] {
			t.Errorf("%s: guest sees the host's device: %s, host dev %d", p, l, host.Dev)
		}
		if host.Mtim.Sec != testEpoch || host.Mtim.Nsec != 0 {
			t.Errorf("%s: mtime on the host %v, want the epoch", p, host.Mtim)
		}
		// Directories were listed, which moves their atime on the host.
		if host.Mode&unix.S_IFMT != unix.S_IFDIR && p != "/old" && host.Atim.Sec != testEpoch {
			t.Errorf("%s: atime on the host %v, want the epoch", p, host.Atim)
		}
	}
	if ino["/"] != "1" {
		t.Errorf("the tree is inode %s, want 1", ino["/"])
	}
	if ino["/d/hard"] != ino["/d/a"] {
		t.Errorf("hard link inode %s, its file's %s", ino["/d/hard"], ino["/d/a"])
	}
	seen := map[string]string{}
	for p, n := range ino {
		if p == "/d/hard" {
			continue
		}
		if q, dup := seen[n]; dup {
			t.Errorf("%s and %s share inode %s", p, q, n)
		}
		seen[n] = p
	}
}

// TestFullDiskErrno is issue 10 item 15: a stage filling its disk was told
// EIO, and printed "input/output error", because wazero's WASI has no
// ENOSPC. Now hostfs keeps the host errno, the SDK asks for it with
// kiln_hostfs eio_cause, and the stage says what and where.
func TestFullDiskErrno(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a 1 MiB tmpfs to fill")
	}
	r, mod := guest(t, "determinism")
	for _, res := range resolvers {
		t.Run(res.String(), func(t *testing.T) {
			tree := mountTmpfs(t, "size=1m")
			mounts := []hostfs.Mount{{GuestPath: "/", Root: openRoot(t, tree, res)}}
			stdout, stderr, code := runGuest(t, r, mod, mounts, "determinism", "fill", "/big")
			want := "determinism: write /big: no space left on device\n"
			if code != 1 || stderr != want {
				t.Errorf("guest exited %d, stderr %q (stdout %q); want 1, %q", code, stderr, stdout, want)
			}
		})
	}
}

func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Error(err)
		}
	})
	return dir
}
