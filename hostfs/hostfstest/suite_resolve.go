package hostfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// testResolve reads through every kind of path: symlinks inside the tree
// resolve inside it, absolute ones and ".." included, and those aimed at the
// host find nothing.
func testResolve(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	for _, c := range []struct {
		path  string
		want  string
		errno experimentalsys.Errno
	}{
		{path: "etc/hostname", want: "kiln\n"},
		{path: "/etc/hostname", want: "kiln\n"},
		{path: "etc/localtime", want: "TZif"},
		{path: "up/etc/hostname", want: "kiln\n"},
		{path: "escape/etc/hostname", want: "kiln\n"},
		{path: "escape/up/escape/usr/share/zoneinfo/UTC", want: "TZif"},
		{path: "../../etc/hostname", want: "kiln\n"},
		{path: "dir/../../../../etc/localtime", want: "TZif"},
		{path: "up/up/up/etc/hostname", want: "kiln\n"},
		{path: "outlink/secret", errno: experimentalsys.ENOENT},
		{path: "rel", errno: experimentalsys.ENOENT},
		{path: "up/outside/secret", errno: experimentalsys.ENOENT},
		{path: "escape" + e.Outside + "/secret", errno: experimentalsys.ENOENT},
		{path: "loop", errno: experimentalsys.ELOOP},
		{path: "loop/x", errno: experimentalsys.ELOOP},
		{path: "etc/hostname/x", errno: experimentalsys.ENOTDIR},
		{path: "etc/hostname/", errno: experimentalsys.ENOTDIR},
		{path: "missing", errno: experimentalsys.ENOENT},
	} {
		got, errno := ReadFile(e.FS, c.path)
		if errno != c.errno || got != c.want {
			t.Errorf("read %q = %q, %v; want %q, %v", c.path, got, errno, c.want, c.errno)
		}
		if strings.Contains(got, "host secret") {
			t.Errorf("read %q leaked the host sentinel", c.path)
		}
		st, errno := e.FS.Stat(c.path)
		if errno != c.errno {
			t.Errorf("stat %q: errno %v, want %v", c.path, errno, c.errno)
		}
		if errno == 0 && st.Size != int64(len(c.want)) {
			t.Errorf("stat %q: size %d, want %d", c.path, st.Size, len(c.want))
		}
	}
	// Lstat and Readlink describe the link itself, never its target.
	st, errno := e.FS.Lstat("outlink")
	wantErrno(t, "lstat outlink", errno, 0)
	if st.Mode.Type() != os.ModeSymlink {
		t.Errorf("lstat outlink: mode %v, want a symlink", st.Mode)
	}
	target, errno := e.FS.Readlink("outlink")
	wantErrno(t, "readlink outlink", errno, 0)
	if target != e.Outside {
		t.Errorf("readlink outlink = %q, want %q verbatim", target, e.Outside)
	}
	e.CheckHost(t)
}

// testSymlinkHops checks the limit of 40 symlinks, the kernel's.
func testSymlinkHops(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	// hop0 -> hop1 -> ... -> hop40 -> /etc/hostname: 41 links from hop0.
	for i := range 41 {
		target := fmt.Sprintf("hop%d", i+1)
		if i == 40 {
			target = "/etc/hostname"
		}
		must(t, os.Symlink(target, filepath.Join(e.Tree, fmt.Sprintf("hop%d", i))))
	}
	if got, errno := ReadFile(e.FS, "hop1"); errno != 0 || got != "kiln\n" {
		t.Errorf("40 hops: %q, %v; want kiln", got, errno)
	}
	_, errno := ReadFile(e.FS, "hop0")
	wantErrno(t, "41 hops", errno, experimentalsys.ELOOP)
}

// testBadPaths feeds paths no kernel call could name.
func testBadPaths(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	long := strings.Repeat("a/", unix.PathMax/2) // 4096 bytes
	for _, c := range []struct {
		name, path string
		errno      experimentalsys.Errno
	}{
		{"NUL", "etc/hostname\x00/../../outside/secret", experimentalsys.EINVAL},
		{"NUL at end", "etc/hostname\x00", experimentalsys.EINVAL},
		{"PATH_MAX", long, experimentalsys.ENAMETOOLONG},
		{"long name", strings.Repeat("n", 256), experimentalsys.ENAMETOOLONG},
		{"long dots", strings.Repeat("../", 1300) + "etc/hostname", 0},
	} {
		_, errno := ReadFile(e.FS, c.path)
		wantErrno(t, "open "+c.name, errno, c.errno)
		if c.errno == 0 {
			continue
		}
		_, errno = e.FS.Lstat(c.path)
		wantErrno(t, "lstat "+c.name, errno, c.errno)
		wantErrno(t, "mkdir "+c.name, e.FS.Mkdir(c.path, 0o755), c.errno)
		if c.name != "long name" { // a long target is fine until followed
			wantErrno(t, "symlink to "+c.name, e.FS.Symlink(c.path, "newlink"), c.errno)
		}
	}
	if _, err := os.Lstat(filepath.Join(e.Tree, "newlink")); !os.IsNotExist(err) {
		t.Errorf("a symlink with a bad target was made: %v", err)
	}
	e.CheckHost(t)
}

// testClosed checks that a closed root refuses everything.
func testClosed(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	f, errno := e.FS.OpenFile("etc/hostname", experimentalsys.O_RDONLY, 0)
	wantErrno(t, "open", errno, 0)
	must(t, e.Root.Close())
	must(t, e.Root.Close()) // twice is fine
	_, errno = e.FS.OpenFile("etc/hostname", experimentalsys.O_RDONLY, 0)
	wantErrno(t, "open after close", errno, experimentalsys.EBADF)
	_, errno = e.FS.Lstat(".")
	wantErrno(t, "lstat after close", errno, experimentalsys.EBADF)
	wantErrno(t, "mkdir after close", e.FS.Mkdir("x", 0o755), experimentalsys.EBADF)
	// Files opened before stay usable: they hold their own descriptors.
	buf := make([]byte, 16)
	n, errno := f.Read(buf)
	if errno != 0 || string(buf[:n]) != "kiln\n" {
		t.Errorf("read from a file opened before close: %q, %v", buf[:n], errno)
	}
	wantErrno(t, "close file", f.Close(), 0)
}

// testSwapRace swaps a symlink between a directory in the tree and the host
// directory beside it while opening through it. Every open must see the
// tree's file or nothing; no timing is asserted, only outcomes.
func testSwapRace(t *testing.T, open Factory) {
	e := NewEnv(t, open)
	must(t, os.WriteFile(filepath.Join(e.Tree, "dir/secret"), []byte("tree secret\n"), 0o644))
	link := filepath.Join(e.Tree, "link")
	must(t, os.Symlink("dir", link))
	targets := []string{"dir", e.Outside, "../../outside", "/dir"}

	stop := SwapSymlink(t, link, targets)
	seen := map[string]int{}
	for range 3000 {
		got, errno := ReadFile(e.FS, "link/secret")
		switch {
		case errno == 0 && got == "tree secret\n":
			seen["tree"]++
		case errno == experimentalsys.ENOENT:
			seen["ENOENT"]++
		default:
			t.Fatalf("open link/secret during swaps: %q, %v", got, errno)
		}
		if errno := e.FS.Chmod("link/secret", 0o600); errno != 0 && errno != experimentalsys.ENOENT {
			t.Fatalf("chmod link/secret during swaps: %v", errno)
		}
	}
	stop()
	t.Logf("outcomes: %v", seen)
	e.CheckHost(t)
}

// SwapSymlink replaces the symlink link with one to each of targets in
// turn, as fast as it can, until the returned stop is called. rename(2)
// replaces the link atomically, so a resolver always finds one.
func SwapSymlink(t *testing.T, link string, targets []string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tmp := link + ".tmp"
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if err := os.Symlink(targets[i%len(targets)], tmp); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(tmp, link); err != nil {
				t.Error(err)
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
