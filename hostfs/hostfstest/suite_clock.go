package hostfstest

import (
	"path/filepath"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// testFrozenClock checks the rule of docs/hostfs.md, "Determinism": every
// change through the FS sets the changed file's or directory's mtime to the
// root's epoch (the factory's roots have the default, 0), as if the clock
// had stopped there, and leaves atime alone; a renamed or hard-linked file
// keeps its inode number. Before, each change stamped the host's clock.
func testFrozenClock(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	const old = 5_000_000_000 // 5 s: neither the epoch nor the host clock
	age := func(paths ...string) {
		t.Helper()
		for _, p := range paths {
			ts := []unix.Timespec{unix.NsecToTimespec(old), unix.NsecToTimespec(old)}
			must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(e.Tree, p), ts, unix.AT_SYMLINK_NOFOLLOW))
		}
	}
	// frozen checks that each path's mtime is the epoch and its atime old.
	frozen := func(step string, paths ...string) {
		t.Helper()
		for _, p := range paths {
			var st unix.Stat_t
			must(t, unix.Lstat(filepath.Join(e.Tree, p), &st))
			if st.Mtim.Nano() != 0 || st.Atim.Nano() != old {
				t.Errorf("%s: %s has mtime %d atime %d, want the epoch 0 and the old %d", step, p, st.Mtim.Nano(), st.Atim.Nano(), int64(old))
			}
		}
	}
	ino := func(p string) uint64 {
		t.Helper()
		st, errno := e.FS.Lstat(p)
		wantErrno(t, "lstat "+p, errno, 0)
		return st.Ino
	}

	age("etc/hostname")
	f, errno := e.FS.OpenFile("etc/hostname", experimentalsys.O_RDWR, 0)
	wantErrno(t, "open", errno, 0)
	if _, errno := f.Pwrite([]byte("K"), 0); errno != 0 {
		t.Fatalf("pwrite: %v", errno)
	}
	frozen("pwrite", "etc/hostname")
	age("etc/hostname")
	wantErrno(t, "truncate", f.Truncate(2), 0)
	frozen("truncate", "etc/hostname")
	age("etc/hostname")
	if _, errno := f.Write([]byte("x")); errno != 0 {
		t.Fatalf("write: %v", errno)
	}
	frozen("write", "etc/hostname")
	wantErrno(t, "close", f.Close(), 0)

	age("etc/hostname")
	f, errno = e.FS.OpenFile("etc/hostname", experimentalsys.O_WRONLY|experimentalsys.O_TRUNC, 0)
	wantErrno(t, "open O_TRUNC", errno, 0)
	f.Close()
	frozen("open O_TRUNC", "etc/hostname")

	before := ino("etc/hostname")
	age("etc", "dir")
	wantErrno(t, "rename", e.FS.Rename("etc/hostname", "dir/hostname"), 0)
	frozen("rename", "etc", "dir")
	if got := ino("dir/hostname"); got != before {
		t.Errorf("rename: inode %d, was %d", got, before)
	}
	age("etc")
	wantErrno(t, "link", e.FS.Link("dir/hostname", "etc/again"), 0)
	frozen("link", "etc")
	if got := ino("etc/again"); got != before {
		t.Errorf("link: inode %d, its file's %d", got, before)
	}
	age("etc")
	wantErrno(t, "unlink", e.FS.Unlink("etc/again"), 0)
	frozen("unlink", "etc")
	wantErrno(t, "mkdir", e.FS.Mkdir("dir/sub", 0o755), 0)
	age("dir")
	wantErrno(t, "rmdir", e.FS.Rmdir("dir/sub"), 0)
	frozen("rmdir", "dir")

	// What is created gets the epoch as both times.
	wantErrno(t, "symlink", e.FS.Symlink("hostname", "dir/link"), 0)
	wantErrno(t, "mkdir", e.FS.Mkdir("dir/new", 0o755), 0)
	f, errno = e.FS.OpenFile("dir/file", experimentalsys.O_WRONLY|experimentalsys.O_CREAT|experimentalsys.O_EXCL, 0o644)
	wantErrno(t, "create", errno, 0)
	f.Close()
	for _, p := range []string{"dir/link", "dir/new", "dir/file"} {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(e.Tree, p), &st))
		if st.Mtim.Nano() != 0 || st.Atim.Nano() != 0 {
			t.Errorf("created %s: mtime %d atime %d, want the epoch 0", p, st.Mtim.Nano(), st.Atim.Nano())
		}
	}
	e.CheckHost(t)
}
