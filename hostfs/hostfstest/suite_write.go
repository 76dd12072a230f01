package hostfstest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// hostMode returns the Linux mode of a tree entry, without following it.
func hostMode(t *testing.T, p string) uint32 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return st.Mode
}

func writeFile(fsys experimentalsys.FS, path string, flag experimentalsys.Oflag, perm fs.FileMode, data string) experimentalsys.Errno {
	f, errno := fsys.OpenFile(path, flag, perm)
	if errno != 0 {
		return errno
	}
	if _, errno := f.Write([]byte(data)); errno != 0 {
		f.Close()
		return errno
	}
	return f.Close()
}

// testCreate creates files through escaping symlinks, dangling ones
// included: whatever gets made is made in the tree.
func testCreate(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	must(t, os.Symlink("/made-by-dangle", filepath.Join(e.Tree, "dangle")))
	must(t, os.Symlink("../../../made-by-rel-dangle", filepath.Join(e.Tree, "reldangle")))
	must(t, os.Symlink(filepath.Join(e.Outside, "pwned"), filepath.Join(e.Tree, "hostdangle")))
	// A relative dangling link reached through a symlinked directory: its
	// target is taken from where the link physically is, as the kernel does.
	must(t, os.MkdirAll(filepath.Join(e.Tree, "usr/lib"), 0o755))
	must(t, os.MkdirAll(filepath.Join(e.Tree, "usr/etc"), 0o755))
	must(t, os.Symlink("usr/lib", filepath.Join(e.Tree, "lib")))
	must(t, os.Symlink("../etc/x", filepath.Join(e.Tree, "usr/lib/link")))
	const rw = experimentalsys.O_RDWR | experimentalsys.O_CREAT
	for _, c := range []struct {
		path  string
		made  string // tree-relative file that must now exist
		errno experimentalsys.Errno
	}{
		{path: "new", made: "new"},
		{path: "/abs-new", made: "abs-new"},
		{path: "escape/new2", made: "new2"},
		{path: "up/new3", made: "new3"},
		{path: "../../new4", made: "new4"},
		{path: "dangle", made: "made-by-dangle"},
		{path: "reldangle", made: "made-by-rel-dangle"},
		{path: "lib/link", made: "usr/etc/x"},
		{path: "outlink/pwned", errno: experimentalsys.ENOENT},
		{path: "hostdangle", errno: experimentalsys.ENOENT},
		{path: "up/outside/pwned", errno: experimentalsys.ENOENT},
	} {
		errno := writeFile(e.FS, c.path, rw, 0o644, "made")
		wantErrno(t, "create "+c.path, errno, c.errno)
		if c.made == "" {
			continue
		}
		if data, err := os.ReadFile(filepath.Join(e.Tree, c.made)); err != nil || string(data) != "made" {
			t.Errorf("create %s: tree/%s holds %q, %v", c.path, c.made, data, err)
		}
	}
	e.CheckHost(t)
}

// testOpenFlags checks each open flag against open(2)'s behaviour.
func testOpenFlags(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	must(t, os.Symlink("/nowhere", filepath.Join(e.Tree, "dangle")))
	const (
		rd   = experimentalsys.O_RDONLY
		wr   = experimentalsys.O_WRONLY
		rw   = experimentalsys.O_RDWR
		excl = experimentalsys.O_CREAT | experimentalsys.O_EXCL
	)
	for _, c := range []struct {
		path  string
		flag  experimentalsys.Oflag
		errno experimentalsys.Errno
	}{
		{"etc/hostname", rw | excl, experimentalsys.EEXIST},
		{"escape", rw | excl, experimentalsys.EEXIST},
		{"dangle", rw | excl, experimentalsys.EEXIST},
		{".", rw | excl, experimentalsys.EEXIST},
		{"etc/localtime", rd | experimentalsys.O_NOFOLLOW, experimentalsys.ELOOP},
		{"etc/hostname", rd | experimentalsys.O_NOFOLLOW, 0},
		{"etc/hostname", rd | experimentalsys.O_DIRECTORY, experimentalsys.ENOTDIR},
		{"etc/localtime", rd | experimentalsys.O_DIRECTORY, experimentalsys.ENOTDIR},
		{"escape", rd | experimentalsys.O_DIRECTORY, 0},
		{"dir", wr, experimentalsys.EISDIR},
		{"dir", rw, experimentalsys.EISDIR},
		{"dir/", rw | experimentalsys.O_CREAT, experimentalsys.EISDIR},
		{"newdir/", rw | experimentalsys.O_CREAT, experimentalsys.EISDIR},
		{".", rd, 0},
		{"missing", rd, experimentalsys.ENOENT},
		{"missing/x", rw | experimentalsys.O_CREAT, experimentalsys.ENOENT},
	} {
		f, errno := e.FS.OpenFile(c.path, c.flag, 0o644)
		wantErrno(t, "open "+c.path, errno, c.errno)
		if errno == 0 {
			f.Close()
		}
	}

	// O_TRUNC empties, O_APPEND appends, O_EXCL creates.
	p := filepath.Join(e.Tree, "etc/hostname")
	wantErrno(t, "append", writeFile(e.FS, "etc/hostname", wr|experimentalsys.O_APPEND, 0, "more\n"), 0)
	if data, _ := os.ReadFile(p); string(data) != "kiln\nmore\n" {
		t.Errorf("after O_APPEND: %q", data)
	}
	wantErrno(t, "trunc", writeFile(e.FS, "etc/hostname", wr|experimentalsys.O_TRUNC, 0, "x"), 0)
	if data, _ := os.ReadFile(p); string(data) != "x" {
		t.Errorf("after O_TRUNC: %q", data)
	}
	wantErrno(t, "excl", writeFile(e.FS, "fresh", rw|excl, 0o600, "y"), 0)
	if data, _ := os.ReadFile(filepath.Join(e.Tree, "fresh")); string(data) != "y" {
		t.Errorf("after O_EXCL: %q", data)
	}
	// A file opened read-only cannot be written.
	f, errno := e.FS.OpenFile("etc/hostname", rd, 0)
	wantErrno(t, "open rd", errno, 0)
	_, errno = f.Write([]byte("no"))
	wantErrno(t, "write to O_RDONLY", errno, experimentalsys.EBADF)
	f.Close()
	e.CheckHost(t)
}

// testExactModes checks that created files and directories get the mode
// asked for, whatever the umask, and that chmod follows symlinks only inside
// the tree.
func testExactModes(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	for _, c := range []struct {
		path string
		perm fs.FileMode
		want uint32
		dir  bool
	}{
		{path: "f666", perm: 0o666, want: 0o666},
		{path: "f600", perm: 0o600, want: 0o600},
		{path: "f4755", perm: 0o755 | fs.ModeSetuid, want: 0o4755},
		{path: "d777", perm: 0o777, want: 0o777, dir: true},
		{path: "d700", perm: 0o700, want: 0o700, dir: true},
		{path: "d1777", perm: 0o777 | fs.ModeSticky, want: 0o1777, dir: true},
	} {
		var errno experimentalsys.Errno
		if c.dir {
			errno = e.FS.Mkdir(c.path, c.perm)
		} else {
			errno = writeFile(e.FS, c.path, experimentalsys.O_RDWR|experimentalsys.O_CREAT, c.perm, "")
		}
		wantErrno(t, "create "+c.path, errno, 0)
		if got := hostMode(t, filepath.Join(e.Tree, c.path)) & 0o7777; got != c.want {
			t.Errorf("%s: mode %o, want %o", c.path, got, c.want)
		}
	}
	wantErrno(t, "chmod", e.FS.Chmod("etc/hostname", 0o2750|fs.ModeSetgid), 0)
	if got := hostMode(t, filepath.Join(e.Tree, "etc/hostname")) & 0o7777; got != 0o2750 {
		t.Errorf("chmod setgid: mode %o, want 2750", got)
	}
	wantErrno(t, "chmod via symlink", e.FS.Chmod("etc/localtime", 0o600), 0)
	if got := hostMode(t, filepath.Join(e.Tree, "usr/share/zoneinfo/UTC")) & 0o7777; got != 0o600 {
		t.Errorf("chmod via etc/localtime: target mode %o, want 600", got)
	}
	for _, p := range []string{"outlink/secret", "rel", "up/outside/secret", "escape" + e.Outside + "/secret"} {
		wantErrno(t, "chmod "+p, e.FS.Chmod(p, 0o777), experimentalsys.ENOENT)
	}
	e.CheckHost(t)
}

// testMutations covers mkdir, rmdir, unlink, symlink, readlink and utimens.
func testMutations(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	wantErrno(t, "mkdir existing", e.FS.Mkdir("dir", 0o755), experimentalsys.EEXIST)
	wantErrno(t, "mkdir root", e.FS.Mkdir(".", 0o755), experimentalsys.EEXIST)
	wantErrno(t, "mkdir via escape", e.FS.Mkdir("escape/made", 0o755), 0)
	wantErrno(t, "mkdir via outlink", e.FS.Mkdir("outlink/made", 0o755), experimentalsys.ENOENT)
	if fi, err := os.Stat(filepath.Join(e.Tree, "made")); err != nil || !fi.IsDir() {
		t.Errorf("mkdir escape/made: tree/made: %v", err)
	}
	wantErrno(t, "rmdir root", e.FS.Rmdir("."), experimentalsys.EPERM)
	wantErrno(t, "rmdir symlink", e.FS.Rmdir("outlink"), experimentalsys.ENOTDIR)
	wantErrno(t, "rmdir", e.FS.Rmdir("made"), 0)
	wantErrno(t, "unlink dir", e.FS.Unlink("dir"), experimentalsys.EISDIR)
	wantErrno(t, "unlink via outlink", e.FS.Unlink("outlink/secret"), experimentalsys.ENOENT)
	wantErrno(t, "unlink outlink", e.FS.Unlink("outlink"), 0)
	wantErrno(t, "unlink localtime", e.FS.Unlink("etc/localtime"), 0)
	if _, err := os.Stat(filepath.Join(e.Tree, "usr/share/zoneinfo/UTC")); err != nil {
		t.Errorf("unlinking a symlink removed its target: %v", err)
	}

	// Absolute targets are allowed and kept verbatim.
	wantErrno(t, "symlink abs", e.FS.Symlink("/usr/share/zoneinfo/UTC", "etc/localtime"), 0)
	wantErrno(t, "symlink host", e.FS.Symlink(e.Outside+"/secret", "hostlink"), 0)
	wantErrno(t, "symlink existing", e.FS.Symlink("x", "escape"), experimentalsys.EEXIST)
	wantErrno(t, "symlink empty", e.FS.Symlink("", "empty"), experimentalsys.ENOENT)
	if got, _ := os.Readlink(filepath.Join(e.Tree, "etc/localtime")); got != "/usr/share/zoneinfo/UTC" {
		t.Errorf("symlink target on disk %q", got)
	}
	if got, errno := ReadFile(e.FS, "etc/localtime"); got != "TZif" || errno != 0 {
		t.Errorf("read new etc/localtime: %q, %v", got, errno)
	}
	_, errno := ReadFile(e.FS, "hostlink")
	wantErrno(t, "read hostlink", errno, experimentalsys.ENOENT)
	_, errno = e.FS.Readlink("etc/hostname")
	wantErrno(t, "readlink file", errno, experimentalsys.EINVAL)
	_, errno = e.FS.Readlink(".")
	wantErrno(t, "readlink root", errno, experimentalsys.EINVAL)

	// Utimens follows symlinks, inside the tree; UTIME_OMIT keeps a time.
	const atime, mtime = int64(1_000_000_001), int64(2_000_000_002)
	wantErrno(t, "utimens", e.FS.Utimens("etc/localtime", atime, mtime), 0)
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(e.Tree, "usr/share/zoneinfo/UTC"), &st))
	if st.Atim.Nano() != atime || st.Mtim.Nano() != mtime {
		t.Errorf("utimens: atime %d mtime %d, want %d %d", st.Atim.Nano(), st.Mtim.Nano(), atime, mtime)
	}
	wantErrno(t, "utimens omit", e.FS.Utimens("etc/localtime", experimentalsys.UTIME_OMIT, 7), 0)
	must(t, unix.Stat(filepath.Join(e.Tree, "usr/share/zoneinfo/UTC"), &st))
	if st.Atim.Nano() != atime || st.Mtim.Nano() != 7 {
		t.Errorf("utimens omit: atime %d mtime %d, want %d 7", st.Atim.Nano(), st.Mtim.Nano(), atime)
	}
	wantErrno(t, "utimens hostlink", e.FS.Utimens("hostlink", 1, 1), experimentalsys.ENOENT)
	wantErrno(t, "utimens rel", e.FS.Utimens("rel", 1, 1), experimentalsys.ENOENT)
	e.CheckHost(t)
}

// testLinkAndRename checks that hard links and renames never reach outside.
func testLinkAndRename(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	wantErrno(t, "link", e.FS.Link("etc/hostname", "hl"), 0)
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(e.Tree, "hl"), &st))
	if st.Nlink != 2 {
		t.Errorf("hard link: nlink %d, want 2", st.Nlink)
	}
	// A symlink to the host is linked itself, not its target.
	wantErrno(t, "link rel", e.FS.Link("rel", "hl-rel"), 0)
	wantErrno(t, "link outlink", e.FS.Link("outlink", "hl-outlink"), 0)
	for _, p := range []string{"hl-rel", "hl-outlink"} {
		if hostMode(t, filepath.Join(e.Tree, p))&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("link of a symlink: %s is not a symlink", p)
		}
	}
	for _, c := range []struct {
		old, new string
		errno    experimentalsys.Errno
	}{
		{"outlink/secret", "stolen", experimentalsys.ENOENT},
		{"up/outside/secret", "stolen", experimentalsys.ENOENT},
		{"etc/hostname", "outlink/planted", experimentalsys.ENOENT},
		{"dir", "dir2", experimentalsys.EPERM},
		{".", "root2", experimentalsys.EPERM},
		{"etc/hostname", "hl", experimentalsys.EEXIST},
	} {
		wantErrno(t, "link "+c.old+" "+c.new, e.FS.Link(c.old, c.new), c.errno)
	}

	for _, c := range []struct {
		from, to string
		errno    experimentalsys.Errno
		made     string
	}{
		{from: "etc/hostname", to: "up/moved", made: "moved"},
		{from: "escape/moved", to: "../../moved2", made: "moved2"},
		{from: "moved2", to: "outlink/moved", errno: experimentalsys.ENOENT},
		{from: "outlink/secret", to: "stolen", errno: experimentalsys.ENOENT},
		{from: ".", to: "x", errno: experimentalsys.EPERM},
		{from: "dir", to: ".", errno: experimentalsys.EPERM},
		{from: "dir", to: "dir/sub", errno: experimentalsys.EINVAL},
		{from: "outlink", to: "dir/outlink-moved", made: "dir/outlink-moved"},
	} {
		wantErrno(t, "rename "+c.from+" "+c.to, e.FS.Rename(c.from, c.to), c.errno)
		if c.made != "" {
			if _, err := os.Lstat(filepath.Join(e.Tree, c.made)); err != nil {
				t.Errorf("rename %s %s: %v", c.from, c.to, err)
			}
		}
	}
	e.CheckHost(t)
}
