package hostfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kilnbuild/kiln/internal/fsmeta"
	"github.com/kilnbuild/kiln/store/cowtree"
	"github.com/kilnbuild/kiln/store/treecopy"
	"github.com/kilnbuild/kiln/store/treesum"
)

// cowEnv is a base tree, a hardlink tree of it and a root on that tree
// with copy-up on: what a stage sees of a store object on ext4.
type cowEnv struct {
	base, tree, state string
	root              *Root
	before            map[string]string // describe(base) before the tree was linked
}

// describeFile is everything a committed file must keep: content, type
// and mode, owner, xattrs, atime, mtime and link count.
func describeFile(t *testing.T, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	// O_NOATIME: looking must not change what is looked at.
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOATIME, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	names, err := fsmeta.ListXattrs(p)
	if err != nil {
		t.Fatal(err)
	}
	var xs []string
	for _, n := range names {
		v, _ := fsmeta.GetXattr(p, n)
		xs = append(xs, n+"="+string(v))
	}
	slices.Sort(xs)
	return fmt.Sprintf("%q mode=%o uid=%d gid=%d xattrs=%v atime=%d mtime=%d nlink=%d",
		b, st.Mode, st.Uid, st.Gid, xs, st.Atim.Nano(), st.Mtim.Nano(), st.Nlink)
}

func describeBase(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, name := range []string{"f", "g1", "g2", "d/h"} {
		m[name] = describeFile(t, filepath.Join(dir, name))
	}
	return m
}

func newCowEnv(t *testing.T) *cowEnv {
	t.Helper()
	dir := t.TempDir()
	e := &cowEnv{base: filepath.Join(dir, "base"), tree: filepath.Join(dir, "tree"), state: filepath.Join(dir, "state")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(e.base, "d"), 0o755))
	for name, content := range map[string]string{"f": "base f\n", "g1": "group\n", "d/h": "base h\n"} {
		must(os.WriteFile(filepath.Join(e.base, name), []byte(content), 0o640))
	}
	must(os.Link(filepath.Join(e.base, "g1"), filepath.Join(e.base, "g2")))
	must(unix.Chmod(filepath.Join(e.base, "f"), 0o4750))
	if err := unix.Lsetxattr(filepath.Join(e.base, "f"), "user.kiln", []byte("base"), 0); err != nil {
		t.Skipf("needs user xattrs on %s: %v", dir, err)
	}
	ts := []unix.Timespec{{Sec: 1000}, {Sec: 2000}}
	for _, name := range []string{"f", "g1", "d/h"} {
		must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(e.base, name), ts, 0))
	}
	e.before = describeBase(t, e.base)
	shared := map[uint64]uint8{}
	must(treecopy.Copy(t.Context(), e.base, e.tree, treecopy.Options{Mode: treecopy.Hardlink, Shared: shared}))
	must(cowtree.Create(e.state, shared))
	var err error
	e.root, err = OpenRoot(e.tree, WithTreeState(e.state), WithEpoch(5000))
	must(err)
	t.Cleanup(func() { e.root.Close() })
	return e
}

// checkBase fails unless the base is as before the tree was linked, the
// link counts of the files a test copied up (copied) included; the others
// still have the tree's name too.
func (e *cowEnv) checkBase(t *testing.T, copied ...string) {
	t.Helper()
	after := describeBase(t, e.base)
	for name, want := range e.before {
		got := after[name]
		if !slices.Contains(copied, name) {
			// Still linked from the tree: one more name, nothing else.
			got = strings.Replace(got, fmt.Sprintf("nlink=%d", nlinkOf(t, filepath.Join(e.base, name))),
				fmt.Sprintf("nlink=%d", nlinkOf(t, filepath.Join(e.base, name))/2), 1)
		}
		if got != want {
			t.Errorf("base %s changed:\n was %s\n now %s", name, want, got)
		}
	}
}

func nlinkOf(t *testing.T, p string) uint64 {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Nlink
}

func (e *cowEnv) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.tree, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameInode(t *testing.T, a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Lstat(a, &sa) != nil || unix.Lstat(b, &sb) != nil {
		return false
	}
	return sa.Ino == sb.Ino
}

func writeFd(t *testing.T, fd int, s string) {
	t.Helper()
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// TestCopyUpLeavesBase: each operation that could change a shared file or
// its metadata acts on a private copy; the base keeps its content, mode,
// owner, xattrs, times and link count, and the tree sees the change.
func TestCopyUpLeavesBase(t *testing.T) {
	cases := []struct {
		name   string
		op     func(t *testing.T, e *cowEnv) error
		copied []string
		check  func(t *testing.T, e *cowEnv)
	}{
		{"open O_WRONLY", func(t *testing.T, e *cowEnv) error {
			fd, err := e.root.open("f", unix.O_WRONLY, 0)
			if err == nil {
				writeFd(t, fd, "NEW")
			}
			return err
		}, []string{"f"}, func(t *testing.T, e *cowEnv) {
			if got := e.read(t, "f"); got != "NEWe f\n" {
				t.Errorf("tree f = %q", got)
			}
		}},
		{"open O_RDWR", func(t *testing.T, e *cowEnv) error {
			fd, err := e.root.open("d/h", unix.O_RDWR, 0)
			if err == nil {
				writeFd(t, fd, "X")
			}
			return err
		}, []string{"d/h"}, nil},
		{"open O_TRUNC", func(t *testing.T, e *cowEnv) error {
			fd, err := e.root.open("f", unix.O_RDONLY|unix.O_TRUNC, 0)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}, []string{"f"}, func(t *testing.T, e *cowEnv) {
			if got := e.read(t, "f"); got != "" {
				t.Errorf("tree f = %q after O_TRUNC", got)
			}
		}},
		{"open O_APPEND", func(t *testing.T, e *cowEnv) error {
			fd, err := e.root.open("f", unix.O_WRONLY|unix.O_APPEND, 0)
			if err == nil {
				writeFd(t, fd, "more\n")
			}
			return err
		}, []string{"f"}, nil},
		{"create existing", func(t *testing.T, e *cowEnv) error {
			fd, err := e.root.open("f", unix.O_WRONLY|unix.O_CREAT, 0o644)
			if err == nil {
				writeFd(t, fd, "c")
			}
			return err
		}, []string{"f"}, nil},
		{"chmod", func(t *testing.T, e *cowEnv) error { return e.root.chmod("f", 0o600) }, []string{"f"}, nil},
		{"lchown", func(t *testing.T, e *cowEnv) error { return e.root.lchown("f", 12, 34) }, []string{"f"}, nil},
		{"utimens follow", func(t *testing.T, e *cowEnv) error {
			return e.root.utimens("f", [2]unix.Timespec{{Sec: 7}, {Sec: 8}}, true)
		}, []string{"f"}, nil},
		{"utimens nofollow", func(t *testing.T, e *cowEnv) error {
			return e.root.utimens("d/h", [2]unix.Timespec{{Sec: 7}, {Sec: 8}}, false)
		}, []string{"d/h"}, nil},
		{"setxattr", func(t *testing.T, e *cowEnv) error { return e.root.setxattr("f", "user.kiln", []byte("tree"), 0) }, []string{"f"}, nil},
		{"removexattr", func(t *testing.T, e *cowEnv) error { return e.root.removexattr("f", "user.kiln") }, []string{"f"}, nil},
		{"link then write the new name", func(t *testing.T, e *cowEnv) error {
			if err := e.root.link("f", "f2"); err != nil {
				return err
			}
			// The new name is a private inode: written in place.
			fd, err := reopen(mustLookup(t, e.root, "f2"), unix.O_WRONLY)
			if err == nil {
				writeFd(t, fd, "L")
			}
			return err
		}, []string{"f"}, func(t *testing.T, e *cowEnv) {
			if !sameInode(t, filepath.Join(e.tree, "f"), filepath.Join(e.tree, "f2")) || e.read(t, "f") != "Lase f\n" {
				t.Errorf("f and f2 are no longer one file: f = %q", e.read(t, "f"))
			}
		}},
		{"rename then write the new name", func(t *testing.T, e *cowEnv) error {
			if err := e.root.rename("f", "d/moved"); err != nil {
				return err
			}
			fd, err := e.root.open("d/moved", unix.O_WRONLY, 0)
			if err == nil {
				writeFd(t, fd, "R")
			}
			return err
		}, []string{"f"}, nil},
		{"fd utimens", func(t *testing.T, e *cowEnv) error {
			fsys := newFS(e.root, false, "/")
			f, errno := fsys.OpenFile("f", 0, 0)
			if errno != 0 {
				return errno
			}
			defer f.Close()
			if errno := f.Utimens(1e9, 2e9); errno != 0 {
				return errno
			}
			return nil
		}, []string{"f"}, func(t *testing.T, e *cowEnv) {
			var st unix.Stat_t
			_ = unix.Lstat(filepath.Join(e.tree, "f"), &st)
			if st.Mtim.Sec != 2 {
				t.Errorf("tree f mtime %d, want 2", st.Mtim.Sec)
			}
		}},
		{"write one name of an image hardlink", func(t *testing.T, e *cowEnv) error {
			fd, err := e.root.open("g2", unix.O_WRONLY|unix.O_TRUNC, 0)
			if err == nil {
				writeFd(t, fd, "changed\n")
			}
			return err
		}, []string{"g1", "g2"}, func(t *testing.T, e *cowEnv) {
			if got := e.read(t, "g1"); got != "changed\n" {
				t.Errorf("g1 = %q: the image's hardlink group was split", got)
			}
			if !sameInode(t, filepath.Join(e.tree, "g1"), filepath.Join(e.tree, "g2")) {
				t.Error("g1 and g2 are no longer one inode")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newCowEnv(t)
			sumBefore, err := treesum.Sum(t.Context(), e.base)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.op(t, e); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			e.checkBase(t, c.copied...)
			if sum, err := treesum.Sum(t.Context(), e.base); err != nil || sum != sumBefore {
				t.Errorf("base treesum %s (%v), was %s", sum, err, sumBefore)
			}
			for _, name := range c.copied {
				if sameInode(t, filepath.Join(e.base, name), filepath.Join(e.tree, name)) {
					t.Errorf("tree %s still shares the base's inode", name)
				}
			}
			if c.check != nil {
				c.check(t, e)
			}
			touched, err := cowtree.ReadJournal(e.state)
			if err != nil {
				t.Fatal(err)
			}
			if len(touched) == 0 {
				t.Error("the journal recorded nothing")
			}
		})
	}
}

func mustLookup(t *testing.T, r *Root, p string) int {
	t.Helper()
	fd, err := r.lookup(p, false)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestCopyUpKeepsMetadata: the private copy has the original's content,
// mode (setuid included), owner, xattrs and times.
func TestCopyUpKeepsMetadata(t *testing.T) {
	e := newCowEnv(t)
	before := describeFile(t, filepath.Join(e.tree, "f"))
	fd, err := e.root.open("f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if sameInode(t, filepath.Join(e.base, "f"), filepath.Join(e.tree, "f")) {
		t.Fatal("no copy-up")
	}
	after := describeFile(t, filepath.Join(e.tree, "f"))
	// The tree's name had two links before (base and tree), the copy one.
	if want := strings.Replace(before, "nlink=2", "nlink=1", 1); after != want {
		t.Errorf("copy differs:\n orig %s\n copy %s", want, after)
	}
}
