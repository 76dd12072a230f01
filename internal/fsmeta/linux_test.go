package fsmeta

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestXattrs(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Longer than the first buffer, so the ERANGE retry is taken.
	long := strings.Repeat("v", 1000)
	if err := unix.Lsetxattr(p, "user.kiln.long", []byte(long), 0); errors.Is(err, unix.ENOTSUP) {
		t.Skipf("%s has no user xattrs", dir)
	} else if err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(p, "user.kiln.short", []byte("s"), 0); err != nil {
		t.Fatal(err)
	}
	names, err := ListXattrs(p)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"user.kiln.long", "user.kiln.short"}) {
		t.Errorf("ListXattrs = %q", names)
	}
	// The *at form, both through listxattrat(2) and through the path
	// kernels without it take.
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, fallback := range []bool{false, true} {
		noListxattrat.Store(fallback)
		got, err := ListXattrsAt(int(d.Fd()), dir, "f")
		slices.Sort(got)
		if err != nil || !slices.Equal(got, names) {
			t.Errorf("ListXattrsAt (path fallback %v) = %q, %v; want %q", fallback, got, err, names)
		}
	}
	noListxattrat.Store(false)
	// More names than the first buffer holds.
	many := filepath.Join(dir, "many")
	if err := os.WriteFile(many, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 40 {
		x := fmt.Sprintf("user.kiln.attribute-%02d", i)
		if err := unix.Lsetxattr(many, x, nil, 0); err != nil {
			t.Fatal(err)
		}
		want = append(want, x)
	}
	if got, err := ListXattrsAt(int(d.Fd()), dir, "many"); err != nil || !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Errorf("ListXattrsAt(40 names) = %q, %v", got, err)
	}
	if v, err := GetXattr(p, "user.kiln.long"); err != nil || string(v) != long {
		t.Errorf("GetXattr long = %d bytes, %v", len(v), err)
	}
	if _, err := GetXattr(p, "user.kiln.none"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("GetXattr of a missing name = %v, want ENODATA", err)
	}
	// A symlink is described itself: its target's xattrs are not its own.
	l := filepath.Join(dir, "l")
	if err := os.Symlink("f", l); err != nil {
		t.Fatal(err)
	}
	if names, err := ListXattrs(l); err != nil || len(names) != 0 {
		t.Errorf("ListXattrs(symlink) = %q, %v: followed the link", names, err)
	}
	if names, err := ListXattrsAt(int(d.Fd()), dir, "l"); err != nil || len(names) != 0 {
		t.Errorf("ListXattrsAt(symlink) = %q, %v: followed the link", names, err)
	}
	if names, err := ListXattrsAt(int(d.Fd()), dir, "none"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("ListXattrsAt(missing) = %q, %v; want ENOENT", names, err)
	}
}

func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("kiln"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"file", "link"} {
		f, err := OpenPathRegular(filepath.Join(dir, name), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != "kiln" {
			t.Errorf("%s: read %q, %v", name, b, err)
		}
	}
	// A FIFO with no writer would block an open forever: refused first.
	if _, err := OpenPathRegular(fifo, nil); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "(a FIFO)") {
		t.Errorf("fifo: %v, want ErrNotRegular naming a FIFO", err)
	}
	if _, err := OpenPathRegular(dir, nil); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "(a directory)") {
		t.Errorf("dir: %v, want ErrNotRegular naming a directory", err)
	}
	tooBig := errors.New("too big")
	_, err := OpenPathRegular(file, func(st *unix.Stat_t) error {
		if st.Size != 4 {
			t.Errorf("check saw size %d", st.Size)
		}
		return tooBig
	})
	if !errors.Is(err, tooBig) {
		t.Errorf("check's error = %v, want %v", err, tooBig)
	}
	if _, err := OpenPathRegular(filepath.Join(dir, "missing"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

// TestRemoveAllReadOnlyDirs removes, as a user without CAP_DAC_OVERRIDE, a
// tree of 0555 directories that os.RemoveAll cannot: the test binary runs
// itself as nobody on a tree nobody owns.
func TestRemoveAllReadOnlyDirs(t *testing.T) {
	if dir := os.Getenv("FSMETA_REMOVEALL_DIR"); dir != "" {
		if err := os.RemoveAll(dir); err == nil {
			t.Fatal("os.RemoveAll removed a read-only tree: the test proves nothing")
		}
		if err := RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still there: %v", dir, err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the check as another user")
	}
	const nobody = 65534
	// t.TempDir's directories are 0700 all the way: nobody could not reach
	// the tree, nor the test binary in go's build cache, so both go here.
	base, err := os.MkdirTemp("", "fsmeta-removeall-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o777); err != nil { // nobody removes tree itself from base
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "fsmeta.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(base, "tree")
	for _, d := range []string{"tree", "tree/ro", "tree/ro/deeper"} {
		p := filepath.Join(base, d)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "f"), nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	err = filepath.Walk(tree, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"tree/ro/deeper", "tree/ro"} {
		if err := os.Chmod(filepath.Join(base, d), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	// The cleanup needs no help: root ignores the modes.
	cmd := exec.Command(bin, "-test.run=^TestRemoveAllReadOnlyDirs$", "-test.v")
	cmd.Env = append(os.Environ(), "FSMETA_REMOVEALL_DIR="+tree)
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestRemoveAllReadOnlyDirs") {
		t.Fatalf("the check did not run as nobody:\n%s", out)
	}
}
