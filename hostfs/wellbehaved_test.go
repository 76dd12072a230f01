package hostfs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kilnbuild/kiln/hostfs"
	"golang.org/x/sys/unix"
)

// TestWellBehavedStage runs testdata/wellbehaved, which builds a small tree
// with every kiln_hostfs call, and checks the result on the host: exact
// modes whatever the umask, owners, device numbers, xattrs and nanosecond
// times.
func TestWellBehavedStage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the stage chowns, makes device nodes and sets trusted.* and security.* xattrs")
	}
	r, mod := guest(t, "wellbehaved")
	for _, res := range resolvers {
		t.Run(res.String(), func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			tree, sources := filepath.Join(base, "tree"), filepath.Join(base, "sources")
			mustDo(t, os.Mkdir(tree, 0o755))
			mustDo(t, os.Mkdir(sources, 0o755))
			mustDo(t, os.WriteFile(filepath.Join(sources, "input.txt"), []byte("from the sources\n"), 0o644))
			mounts := []hostfs.Mount{
				{GuestPath: "/", Root: openRoot(t, tree, res)},
				{GuestPath: "/run/kiln/sources", Root: openRoot(t, sources, res), ReadOnly: true},
			}
			stdout, stderr, code := runGuest(t, r, mod, mounts, "wellbehaved")
			if code != 0 {
				t.Fatalf("stage exited %d:\n%s%s", code, stdout, stderr)
			}
			checkTree(t, tree)
			if data, err := os.ReadFile(filepath.Join(sources, "input.txt")); err != nil || string(data) != "from the sources\n" {
				t.Errorf("read-only input changed: %q, %v", data, err)
			}
		})
	}
}

func checkTree(t *testing.T, tree string) {
	for _, c := range []struct {
		path     string
		mode     uint32 // full st_mode
		uid, gid uint32
		rdev     uint64
		mtime    *unix.Timespec
		atime    *unix.Timespec
		nlink    uint64
	}{
		{path: "etc", mode: unix.S_IFDIR | 0o755},
		{path: "etc/ssh", mode: unix.S_IFDIR | 0o755},
		{path: "etc/hostname", mode: unix.S_IFREG | 0o644,
			atime: &unix.Timespec{Sec: 1000, Nsec: 123456789}, mtime: &unix.Timespec{Sec: 2000, Nsec: 987654321}},
		{path: "etc/ssh/sshd_config", mode: unix.S_IFREG | 0o600, gid: 22,
			atime: &unix.Timespec{Sec: 4000}, mtime: &unix.Timespec{Sec: 6000, Nsec: 6}},
		{path: "etc/localtime", mode: unix.S_IFLNK | 0o777, mtime: &unix.Timespec{Sec: 3000, Nsec: 5}},
		{path: "usr/share/zoneinfo/UTC", mode: unix.S_IFREG | 0o600,
			atime: &unix.Timespec{Sec: 7000}, mtime: &unix.Timespec{Sec: 8000, Nsec: 8}},
		{path: "etc/alternatives/editor", mode: unix.S_IFLNK | 0o777, uid: 1000, gid: 1000},
		{path: "usr/bin/sudo", mode: unix.S_IFREG | unix.S_ISUID | 0o755, nlink: 2},
		{path: "home/user", mode: unix.S_IFDIR | 0o755, uid: 1000, gid: 1000},
		{path: "home/user/.profile", mode: unix.S_IFREG | 0o600, uid: 1000, gid: 100},
		{path: "run", mode: unix.S_IFDIR | unix.S_ISVTX | 0o755},
		{path: "dev/null", mode: unix.S_IFCHR | 0o666, rdev: unix.Mkdev(1, 3)},
		{path: "dev/sda", mode: unix.S_IFBLK | 0o660, rdev: unix.Mkdev(8, 0)},
		{path: "dev/big", mode: unix.S_IFCHR | 0o600, rdev: unix.Mkdev(4095, 1<<20-1)},
		{path: "run/initctl", mode: unix.S_IFIFO | 0o600},
		{path: "var/empty", mode: unix.S_IFREG | 0o640},
		{path: "usr/share/doc/input.txt", mode: unix.S_IFREG | 0o600},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(tree, c.path), &st); err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if st.Mode != c.mode || st.Uid != c.uid || st.Gid != c.gid || st.Rdev != c.rdev {
			t.Errorf("%s: mode %o uid %d gid %d rdev %#x; want %o %d %d %#x",
				c.path, st.Mode, st.Uid, st.Gid, st.Rdev, c.mode, c.uid, c.gid, c.rdev)
		}
		if c.mtime != nil && st.Mtim != *c.mtime {
			t.Errorf("%s: mtime %v, want %v", c.path, st.Mtim, *c.mtime)
		}
		if c.atime != nil && st.Atim != *c.atime {
			t.Errorf("%s: atime %v, want %v", c.path, st.Atim, *c.atime)
		}
		if c.nlink != 0 && st.Nlink != c.nlink {
			t.Errorf("%s: nlink %d, want %d", c.path, st.Nlink, c.nlink)
		}
	}
	for _, x := range []struct{ path, name, value string }{
		{"usr/bin/ping", "user.kiln.origin", "stage"},
		{"usr/bin/ping", "trusted.overlay.opaque", "y"},
		{"usr/bin/ping", "security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00" + string(make([]byte, 12))},
		{"etc/localtime", "trusted.kiln.link", "l"},
	} {
		buf := make([]byte, 256)
		n, err := unix.Lgetxattr(filepath.Join(tree, x.path), x.name, buf)
		if err != nil || !bytes.Equal(buf[:n], []byte(x.value)) {
			t.Errorf("%s %s = %q, %v; want %q", x.path, x.name, buf[:max(n, 0)], err, x.value)
		}
	}
	if _, err := unix.Lgetxattr(filepath.Join(tree, "usr/bin/ping"), "user.kiln.gone", nil); err != unix.ENODATA {
		t.Errorf("removed xattr: %v, want ENODATA", err)
	}
	data, err := os.ReadFile(filepath.Join(tree, "usr/share/doc/input.txt"))
	if err != nil || string(data) != "from the sources\n" {
		t.Errorf("copied input: %q, %v", data, err)
	}
}
