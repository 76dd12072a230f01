package hostfstest

import (
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// testMetadata checks Lstat against Stat and against the host's own view.
func testMetadata(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	lst, errno := e.FS.Lstat("etc/localtime")
	wantErrno(t, "lstat", errno, 0)
	if lst.Mode.Type() != fs.ModeSymlink || lst.Size != int64(len("/usr/share/zoneinfo/UTC")) {
		t.Errorf("lstat etc/localtime: mode %v size %d", lst.Mode, lst.Size)
	}
	st, errno := e.FS.Stat("etc/localtime")
	wantErrno(t, "stat", errno, 0)
	var host unix.Stat_t
	must(t, unix.Stat(filepath.Join(e.Tree, "usr/share/zoneinfo/UTC"), &host))
	target, errno := e.FS.Lstat("usr/share/zoneinfo/UTC")
	wantErrno(t, "lstat target", errno, 0)
	// The guest sees its own device and inode numbers, never the host's
	// (docs/hostfs.md, "Determinism"), but one file has one number.
	if st.Ino != target.Ino || st.Dev != target.Dev || st.Ino == lst.Ino || st.Dev == host.Dev ||
		st.Size != 4 || st.Mode != 0o644 || st.Mtim != host.Mtim.Nano() {
		t.Errorf("stat etc/localtime = %+v, its target %+v, host %+v", st, target, host)
	}
	root, errno := e.FS.Lstat(".")
	wantErrno(t, "lstat root", errno, 0)
	must(t, unix.Stat(e.Tree, &host))
	if !root.Mode.IsDir() || root.Ino != 1 || root.Dev != st.Dev {
		t.Errorf("lstat . = %+v, want the tree, inode 1", root)
	}
	up, errno := e.FS.Stat("up")
	wantErrno(t, "stat up", errno, 0)
	if up.Ino != root.Ino {
		t.Errorf("stat up: ino %d, want the tree's %d: .. climbed past the root", up.Ino, root.Ino)
	}
	if st, errno := e.FS.Lstat("etc/hostname/"); errno != experimentalsys.ENOTDIR {
		t.Errorf("lstat with trailing slash on a file: %+v, %v", st, errno)
	}
	if st, errno := e.FS.Lstat("escape/"); errno != 0 || !st.Mode.IsDir() {
		t.Errorf("lstat escape/ must follow to the root: %+v, %v", st, errno)
	}
}

// testSpecialFiles checks that FIFOs, sockets and device nodes are refused
// on open, yet can be described and removed.
func testSpecialFiles(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	must(t, unix.Mkfifo(filepath.Join(e.Tree, "fifo"), 0o644))
	l, err := net.Listen("unix", filepath.Join(e.Tree, "sock"))
	must(t, err)
	defer l.Close()
	special := []string{"fifo", "sock"}
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(e.Tree, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, unix.Mknod(filepath.Join(e.Tree, "urandom"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 9))))
		must(t, unix.Mknod(filepath.Join(e.Tree, "sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
		special = append(special, "null", "urandom", "sda")
	} else {
		t.Log("not root: device nodes not checked (mknod needs CAP_MKNOD)")
	}
	must(t, os.Symlink("/urandom", filepath.Join(e.Tree, "rnd")))
	special = append(special, "rnd")
	for _, p := range special {
		for _, flag := range []experimentalsys.Oflag{
			experimentalsys.O_RDONLY,
			experimentalsys.O_WRONLY,
			experimentalsys.O_RDWR | experimentalsys.O_NONBLOCK,
			experimentalsys.O_RDWR | experimentalsys.O_CREAT,
			experimentalsys.O_WRONLY | experimentalsys.O_TRUNC,
		} {
			f, errno := e.FS.OpenFile(p, flag, 0o644)
			if p == "rnd" && os.Geteuid() != 0 {
				wantErrno(t, fmt.Sprintf("open %s %#x", p, flag), errno, experimentalsys.ENOENT)
			} else {
				wantErrno(t, fmt.Sprintf("open %s %#x", p, flag), errno, experimentalsys.EPERM)
			}
			if errno == 0 {
				f.Close()
			}
		}
		// Times follow the name without opening it: a FIFO would block.
		wantErrno(t, "lstat "+p, lstatErrno(e.FS, p), 0)
	}
	wantErrno(t, "utimens fifo", e.FS.Utimens("fifo", 5, 5), 0)
	wantErrno(t, "unlink fifo", e.FS.Unlink("fifo"), 0)
	e.CheckHost(t)
}

func lstatErrno(fsys experimentalsys.FS, p string) experimentalsys.Errno {
	_, errno := fsys.Lstat(p)
	return errno
}

// testReadOnly checks that the read-only FS reads with the same confinement
// and changes nothing at all.
func testReadOnly(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	tree := Capture(t, e.Tree)
	if got, errno := ReadFile(e.RO, "etc/localtime"); got != "TZif" || errno != 0 {
		t.Errorf("read-only read: %q, %v", got, errno)
	}
	for _, p := range []string{"outlink/secret", "rel", "up/outside/secret"} {
		_, errno := ReadFile(e.RO, p)
		wantErrno(t, "read-only read "+p, errno, experimentalsys.ENOENT)
	}
	const erofs = experimentalsys.EROFS
	for _, flag := range []experimentalsys.Oflag{
		experimentalsys.O_WRONLY,
		experimentalsys.O_RDWR,
		experimentalsys.O_RDONLY | experimentalsys.O_CREAT,
		experimentalsys.O_RDONLY | experimentalsys.O_TRUNC,
		experimentalsys.O_RDONLY | experimentalsys.O_APPEND,
	} {
		_, errno := e.RO.OpenFile("etc/hostname", flag, 0o644)
		wantErrno(t, fmt.Sprintf("read-only open %#x", flag), errno, erofs)
	}
	wantErrno(t, "mkdir", e.RO.Mkdir("x", 0o755), erofs)
	wantErrno(t, "chmod", e.RO.Chmod("etc/hostname", 0o777), erofs)
	wantErrno(t, "rename", e.RO.Rename("etc/hostname", "x"), erofs)
	wantErrno(t, "rmdir", e.RO.Rmdir("dir"), erofs)
	wantErrno(t, "unlink", e.RO.Unlink("etc/hostname"), erofs)
	wantErrno(t, "link", e.RO.Link("etc/hostname", "x"), erofs)
	wantErrno(t, "symlink", e.RO.Symlink("/", "x"), erofs)
	wantErrno(t, "utimens", e.RO.Utimens("etc/hostname", 1, 1), erofs)
	f, errno := e.RO.OpenFile("etc/hostname", experimentalsys.O_RDONLY, 0)
	wantErrno(t, "open", errno, 0)
	wantErrno(t, "file utimens", f.Utimens(1, 1), erofs)
	wantErrno(t, "file set append", f.SetAppend(true), erofs)
	_, errno = f.Write([]byte("x"))
	wantErrno(t, "file write", errno, experimentalsys.EBADF)
	f.Close()
	tree.Check(t)
	e.CheckHost(t)
}

// testReaddir lists a large directory in pages and checks rewinding.
func testReaddir(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	var want []string
	for i := range 1000 {
		name := fmt.Sprintf("entry-with-a-long-name-%04d", i)
		want = append(want, name)
		must(t, os.WriteFile(filepath.Join(e.Tree, "dir", name), nil, 0o644))
	}
	must(t, os.Symlink("/", filepath.Join(e.Tree, "dir/zlink")))
	must(t, os.Mkdir(filepath.Join(e.Tree, "dir/zsub"), 0o755))
	want = append(want, "zlink", "zsub")

	d, errno := e.FS.OpenFile("dir", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	wantErrno(t, "open dir", errno, 0)
	defer d.Close()
	for pass := range 2 {
		var got []string
		for {
			page, errno := d.Readdir(97)
			wantErrno(t, "readdir", errno, 0)
			for _, de := range page {
				got = append(got, de.Name)
				var wantType fs.FileMode
				switch de.Name {
				case "zlink":
					wantType = fs.ModeSymlink
				case "zsub":
					wantType = fs.ModeDir
				}
				if de.Type != wantType || de.Ino == 0 {
					t.Errorf("dirent %s: type %v ino %d", de.Name, de.Type, de.Ino)
				}
			}
			if len(page) < 97 {
				break
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("pass %d: readdir got %d names, want %d (no . or ..)", pass, len(got), len(want))
		}
		if _, errno := d.Seek(0, io.SeekStart); errno != 0 {
			t.Fatalf("rewind: %v", errno)
		}
	}
	if _, errno := d.Seek(5, io.SeekStart); errno != experimentalsys.EINVAL {
		t.Errorf("directory seek to 5: %v, want EINVAL", errno)
	}
	f, errno := e.FS.OpenFile("etc/hostname", experimentalsys.O_RDONLY, 0)
	wantErrno(t, "open file", errno, 0)
	_, errno = f.Readdir(-1)
	wantErrno(t, "readdir on a file", errno, experimentalsys.EBADF)
	f.Close()
}

// testFileOps exercises the File methods against the host's view.
func testFileOps(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	f, errno := e.FS.OpenFile("data", experimentalsys.O_RDWR|experimentalsys.O_CREAT, 0o644)
	wantErrno(t, "create", errno, 0)
	host := filepath.Join(e.Tree, "data")
	if n, errno := f.Write([]byte("hello world")); n != 11 || errno != 0 {
		t.Errorf("write: %d, %v", n, errno)
	}
	if n, errno := f.Pwrite([]byte("W"), 6); n != 1 || errno != 0 {
		t.Errorf("pwrite: %d, %v", n, errno)
	}
	buf := make([]byte, 5)
	if n, errno := f.Pread(buf, 6); string(buf[:n]) != "World" || errno != 0 {
		t.Errorf("pread: %q, %v", buf[:n], errno)
	}
	if _, errno := f.Pread(buf, -1); errno != experimentalsys.EINVAL {
		t.Errorf("pread at -1: %v", errno)
	}
	if off, errno := f.Seek(0, io.SeekStart); off != 0 || errno != 0 {
		t.Errorf("seek: %d, %v", off, errno)
	}
	if n, errno := f.Read(buf); string(buf[:n]) != "hello" || errno != 0 {
		t.Errorf("read: %q, %v", buf[:n], errno)
	}
	wantErrno(t, "truncate", f.Truncate(5), 0)
	wantErrno(t, "truncate -1", f.Truncate(-1), experimentalsys.EINVAL)
	wantErrno(t, "sync", f.Sync(), 0)
	wantErrno(t, "datasync", f.Datasync(), 0)
	wantErrno(t, "set append", f.SetAppend(true), 0)
	if !f.IsAppend() {
		t.Error("IsAppend false after SetAppend(true)")
	}
	if _, errno := f.Write([]byte("!")); errno != 0 {
		t.Errorf("append write: %v", errno)
	}
	if data, _ := os.ReadFile(host); string(data) != "hello!" {
		t.Errorf("file holds %q, want hello!", data)
	}
	wantErrno(t, "file utimens", f.Utimens(3_000_000_003, 4_000_000_004), 0)
	st, errno := f.Stat()
	wantErrno(t, "fstat", errno, 0)
	var hs unix.Stat_t
	must(t, unix.Stat(host, &hs))
	ino, _ := f.Ino()
	dev, _ := f.Dev()
	if st.Size != 6 || st.Mtim != 4_000_000_004 || st.Atim != 3_000_000_003 || ino != st.Ino || dev != st.Dev || dev == hs.Dev {
		t.Errorf("fstat = %+v, host %+v", st, hs)
	}
	if isDir, errno := f.IsDir(); isDir || errno != 0 {
		t.Errorf("IsDir: %v, %v", isDir, errno)
	}
	wantErrno(t, "close", f.Close(), 0)
	wantErrno(t, "close twice", f.Close(), 0)
	_, errno = f.Read(buf)
	wantErrno(t, "read after close", errno, experimentalsys.EBADF)
	wantErrno(t, "truncate after close", f.Truncate(0), experimentalsys.EBADF)

	d, errno := e.FS.OpenFile(".", experimentalsys.O_RDONLY, 0)
	wantErrno(t, "open root", errno, 0)
	if isDir, _ := d.IsDir(); !isDir {
		t.Error("root is not a directory")
	}
	_, errno = d.Read(buf)
	wantErrno(t, "read a directory", errno, experimentalsys.EISDIR)
	wantErrno(t, "truncate a directory", d.Truncate(0), experimentalsys.EISDIR)
	d.Close()
}
