// Package assemblertest holds what every assembler is tested with: a fixed
// tree built by the test (Tree), the suite every assembler passes (Run:
// reproducible, bad options refused naming the option, cancellation at
// every point the assembler checks its context, write errors leaving
// nothing half-written), and the pinned digests of each assembler's output
// for the fixed tree (Pinned), as store/storetest is for the store.
package assemblertest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Epoch is the SOURCE_DATE_EPOCH every suite and pinned run uses.
const Epoch = 1700000000

// Times in the fixed tree: before the epoch (kept, truncated to seconds)
// and after it (clamped to the epoch).
const (
	before = Epoch - 86400
	after  = Epoch + 86400
)

// Tree builds the fixed tree in dir, which must not exist: directories,
// regular files of several modes (setuid, setgid, read-only, a 1777
// directory, a 0555 one), foreign owners, absolute and relative symlinks,
// hardlinks, a sparse file with whole MiB holes, user xattrs and a POSIX
// ACL, a fifo, a device node, an empty file and a long path, each with a
// fixed mtime on either side of Epoch. It reports whether the tree is the
// pinned one: owners, the device node and the ACL need real root, and
// without them the tree differs (Pinned skips, the suite runs anyway).
// Changing the tree changes every pinned digest: remove
// assembler/testdata/digests.json and record it again with -update.
func Tree(t testing.TB, dir string) (pinned bool) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	root := os.Geteuid() == 0 && canChown(filepath.Dir(dir))
	must(os.Mkdir(dir, 0o755))
	var dirs []string // in creation order, for their times
	mkdir := func(name string, mode uint32) {
		p := filepath.Join(dir, name)
		must(os.Mkdir(p, 0o700))
		must(unix.Chmod(p, mode))
		dirs = append(dirs, p)
	}
	write := func(name string, content []byte, mode uint32) {
		p := filepath.Join(dir, name)
		must(os.WriteFile(p, content, 0o600))
		must(unix.Chmod(p, mode))
	}
	chown := func(name string, uid, gid int) {
		if root {
			must(os.Lchown(filepath.Join(dir, name), uid, gid))
		}
	}

	for _, d := range []string{"etc", "usr", "usr/bin", "usr/lib", "usr/share", "var", "var/lib", "home", "srv", "dev", "run",
		"usr/share/" + strings.Repeat("long-directory-name-", 4)} {
		mkdir(d, 0o755)
	}
	mkdir("tmp", 0o1777)
	mkdir("home/alice", 0o700)
	chown("home/alice", 1000, 1000)
	write("etc/hostname", []byte("kiln-pinned\n"), 0o644)
	must(unix.Lsetxattr(filepath.Join(dir, "etc/hostname"), "user.kiln.test", []byte("pinned value"), 0))
	must(unix.Lsetxattr(filepath.Join(dir, "etc"), "user.kiln.dir", []byte("on a directory"), 0))
	write("etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o640)
	chown("etc/shadow", 0, 42)
	write("etc/empty", nil, 0o644)
	// Names debugfs would read as syntax, were they on its command line.
	write(`etc/a "quoted" name`, []byte("q\n"), 0o644)
	write("etc/with space", []byte("s\n"), 0o644)
	write("usr/lib/os-release", []byte("NAME=\"kiln pinned tree\"\nID=kiln\n"), 0o644)
	must(os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(dir, "etc/localtime")))
	chown("etc/localtime", 7, 7)
	must(os.Symlink("../usr/lib/os-release", filepath.Join(dir, "etc/os-release")))
	write("usr/bin/su", []byte("#!/bin/sh\necho su\n"), 0o4755)
	must(os.Link(filepath.Join(dir, "usr/bin/su"), filepath.Join(dir, "usr/bin/su.hard")))
	write("usr/bin/wall", []byte("#!/bin/sh\necho wall\n"), 0o2755)
	chown("usr/bin/wall", 0, 5)
	// Data a compressor cannot shrink to nothing, the same on every run
	// and every Go version: sha256 in counter mode.
	var data []byte
	for i := uint64(0); len(data) < 200<<10; i++ {
		sum := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("kiln pinned tree "), i))
		data = append(data, sum[:]...)
	}
	write("usr/share/data", data, 0o644)
	chown("usr/share/data", 1000, 1000)
	write("usr/share/"+strings.Repeat("long-directory-name-", 4)+"/"+strings.Repeat("a-long-file-name-", 6), []byte("long\n"), 0o644)
	write("home/alice/.profile", []byte("# alice\n"), 0o644)
	chown("home/alice/.profile", 1000, 1000)
	write("srv/shared", []byte("shared with uid 1000\n"), 0o640)
	if root {
		// user::rw- user:1000:r-- group::r-- mask::r-- other::---
		must(unix.Lsetxattr(filepath.Join(dir, "srv/shared"), "system.posix_acl_access",
			posixACL([][3]uint32{{0x01, 6, ^uint32(0)}, {0x02, 4, 1000}, {0x04, 4, ^uint32(0)}, {0x10, 4, ^uint32(0)}, {0x20, 0, ^uint32(0)}}), 0))
		must(unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Chmod(filepath.Join(dir, "dev/null"), 0o666))
	}
	must(unix.Mkfifo(filepath.Join(dir, "run/initctl"), 0o600))
	must(unix.Chmod(filepath.Join(dir, "run/initctl"), 0o600))
	sparseFile(t, filepath.Join(dir, "var/lib/sparse"))
	mkdir("ro", 0o755)
	write("ro/file", []byte("read only\n"), 0o444)
	must(unix.Chmod(filepath.Join(dir, "ro"), 0o555))
	dirs = append(dirs, filepath.Join(dir, "ro"))

	// Times last, deepest first: creating an entry changes its directory's
	// mtime. Files alternate between before and after the epoch.
	i := 0
	must(filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		i++
		setTimes(t, p, []int64{before, after}[i%2])
		return nil
	}))
	for j := len(dirs) - 1; j >= 0; j-- {
		setTimes(t, dirs[j], []int64{before, after}[j%2])
	}
	must(unix.Chmod(dir, 0o755))
	if root {
		must(os.Lchown(dir, 0, 0))
	}
	setTimes(t, dir, before)
	return root
}

// sparseFile writes 4 MiB + 7 bytes with data in the first MiB, holes for
// the second and third (whole 1 MiB-aligned MiBs of zeros, which the tar
// stream leaves out) and data straddling the end.
func sparseFile(t testing.TB, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []struct {
		off  int64
		data string
	}{{0, "head of the sparse file\n"}, {3<<20 + 1000, "middle\n"}, {4<<20 - 3, "tail of it\n"}} {
		if _, err := f.WriteAt([]byte(w.data), w.off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
}

// posixACL encodes entries (tag, perm, id) as the kernel's
// system.posix_acl_access value (version 2).
func posixACL(entries [][3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

// setTimes gives p the mtime sec (with nanoseconds, which outputs drop)
// and an atime after it, not following symlinks.
func setTimes(t testing.TB, p string, sec int64) {
	t.Helper()
	ts := []unix.Timespec{{Sec: sec + 3600, Nsec: 5}, {Sec: sec, Nsec: 123456789}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatalf("utimes %s: %v", p, err)
	}
}

// Touch changes what a build must not depend on: every entry's atime and
// ctime (by setting the atime again), keeping mtimes.
func Touch(t testing.TB, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ts := []unix.Timespec{{Sec: after + 7200, Nsec: 99}, {Nsec: unix.UTIME_OMIT}}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// canChown reports whether files in dir can be given to other owners (not
// so for root mapped in an unprivileged user namespace).
func canChown(dir string) bool {
	p, err := os.MkdirTemp(dir, ".chown-")
	if err != nil {
		return false
	}
	defer os.Remove(p)
	return os.Lchown(p, 1, 1) == nil
}

// describeTree names the tree in messages.
func describeTree(pinned bool) string {
	if pinned {
		return "the pinned tree"
	}
	return fmt.Sprintf("the tree without owners, devices and ACLs (uid %d)", os.Geteuid())
}
