package storetest

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta/fsmetatest"
)

// CanChown reports whether the process may give files away to other
// owners: real root can, root mapped in an unprivileged user namespace
// cannot.
func CanChown() bool {
	dir, err := os.MkdirTemp("", "kiln-chown-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	return os.Lchown(dir, 1, 1) == nil
}

// CanMknod reports whether the process may create device nodes: root can,
// root in a user namespace cannot, whatever ids it maps.
func CanMknod() bool {
	dir, err := os.MkdirTemp("", "kiln-mknod-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	return unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) == nil
}

// RichTree fills dir with every kind of entry the store must keep: modes
// with special bits, foreign ownership (when the process can chown), xattrs,
// timestamps, absolute and relative symlinks, a fifo, device nodes and
// trusted xattrs (as real root), hardlinks and a read-only directory.
func RichTree(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, content string, mode uint32) {
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(content), 0o600))
		must(unix.Chmod(p, mode))
	}
	write("etc/hostname", "kiln\n", 0o644)
	write("etc/shadow", "root:*:1::::::\n", 0o640)
	write("usr/bin/su", "#!/bin/sh\n", 0o4755)
	write("usr/bin/wall", "#!/bin/sh\n", 0o2755)
	write("usr/share/big", strings.Repeat("kiln", 1<<16), 0o644)
	must(os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
	must(unix.Chmod(filepath.Join(dir, "tmp"), 0o1777))
	must(os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(dir, "etc/localtime")))
	must(os.Symlink("../usr/bin/su", filepath.Join(dir, "etc/su-link")))
	must(os.Link(filepath.Join(dir, "usr/bin/su"), filepath.Join(dir, "usr/bin/su.hard")))
	must(unix.Mkfifo(filepath.Join(dir, "etc/initctl"), 0o600))
	must(unix.Lsetxattr(filepath.Join(dir, "etc/hostname"), "user.kiln.test", []byte("value"), 0))
	if CanChown() {
		must(os.Lchown(filepath.Join(dir, "etc/shadow"), 0, 42))
		must(os.Lchown(filepath.Join(dir, "usr/share/big"), 1000, 1000))
		must(os.Lchown(filepath.Join(dir, "etc/localtime"), 7, 7))
	}
	if CanMknod() {
		must(os.MkdirAll(filepath.Join(dir, "dev"), 0o755))
		must(unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(dir, "dev/sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
		// security.* and trusted.* need real root too.
		must(unix.Lsetxattr(filepath.Join(dir, "usr/bin/su"), "security.capability.test", nil, 0))
		must(unix.Lsetxattr(filepath.Join(dir, "etc/localtime"), "trusted.kiln", []byte("link"), 0))
	}
	must(os.Mkdir(filepath.Join(dir, "ro"), 0o755))
	write("ro/file", "read only\n", 0o444)
	must(unix.Chmod(filepath.Join(dir, "ro"), 0o555))
	when := time.Unix(1700000000, 123456789)
	must(filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(when.UnixNano()), unix.NsecToTimespec(when.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

// entry is what Describe records of one path.
type entry struct {
	mode     uint32
	uid, gid uint32
	rdev     uint64
	mtime    int64
	target   string
	content  string
	xattrs   string
	linkedTo string // first path with the same inode, if hardlinked
}

// Describe returns a line per path of dir with everything the store must
// keep, including mtimes and hardlink structure, sorted by path.
func Describe(t testing.TB, dir string) []string {
	t.Helper()
	inodes := map[uint64]string{}
	var lines []string
	err := fsmetatest.Walk(dir, func(fe *fsmetatest.Entry) error {
		st := &fe.Stat
		e := entry{mode: st.Mode, uid: st.Uid, gid: st.Gid, rdev: st.Rdev, mtime: st.Mtim.Nano(), target: fe.Target}
		if fe.Type() == unix.S_IFREG {
			b := fe.Content
			e.content = fmt.Sprintf("%d bytes %x", len(b), bytes.TrimSpace(b[:min(len(b), 16)]))
			if first, ok := inodes[st.Ino]; ok {
				e.linkedTo = first
			} else {
				inodes[st.Ino] = fe.Rel
			}
		}
		for _, x := range fe.Xattrs {
			e.xattrs += x.Name + "=" + string(x.Value) + ";"
		}
		lines = append(lines, fmt.Sprintf("%s %+v", fe.Rel, e))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// WriteFile writes content to name under dir, making parent directories.
// An existing file is replaced by a new one, never written in place, so
// that the suite's writers can run on trees that share inodes with their
// base (store.WithLinkedWrites).
func WriteFile(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ReadFile returns the content of name under dir, or "<missing>".
func ReadFile(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if os.IsNotExist(err) {
		return "<missing>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
